package stack

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/link"
)

// TestARPRetriesThenGivesUp drives the stack with a manual clock: a ping
// to an address nobody owns sends an ARP request at once and once a
// second after, then gives up and counts the queued packet as dropped.
func TestARPRetriesThenGivesUp(t *testing.T) {
	leakcheck.Check(t)
	clock := NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ea, eb := link.NewPipe(link.PipeOptions{})
	s := New(Options{Clock: clock})
	defer s.Close()
	if _, err := s.AddNIC(ea, addrA); err != nil {
		t.Fatal(err)
	}
	frames := reader(t, eb)
	if eth := nextFrame(t, frames); eth.Type() != link.EtherTypeARP { // the gratuitous ARP
		t.Fatalf("first frame has type %#x", eth.Type())
	}
	nobody := netip.MustParseAddr("10.1.0.99")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Ping(ctx, nobody, 56)

	expectRequest := func() {
		t.Helper()
		eth := nextFrame(t, frames)
		p, err := arp.ParsePacket(eth.Payload())
		if err != nil || p.Op() != arp.OpRequest || p.TargetProtocolAddr() != nobody {
			t.Fatalf("want an ARP request for %v, got type %#x: %v", nobody, eth.Type(), err)
		}
	}
	expectRequest()
	for i := 0; i < 2; i++ {
		// Nothing is due before a second has passed.
		clock.Advance(999 * time.Millisecond)
		select {
		case f := <-frames:
			t.Fatalf("frame %x before the retry interval", f)
		default:
		}
		clock.Advance(time.Millisecond)
		expectRequest()
	}
	clock.Advance(time.Second)
	waitFor(t, "ARP.DropTimeout == 1", func() bool { return s.Stats().ARP.DropTimeout == 1 })
	if st := s.Stats().ARP; st.RequestsOut != 3 {
		t.Errorf("RequestsOut = %d, want 3", st.RequestsOut)
	}
}
