package stack

import (
	"testing"
	"time"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/link"
)

// reader reads frames from ep into a channel until ep is closed; the
// test's cleanup closes ep so the goroutine ends.
func reader(t *testing.T, ep link.Endpoint) <-chan []byte {
	ch := make(chan []byte, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		for {
			buf := make([]byte, 70000)
			n, err := ep.ReadFrame(buf)
			if err != nil {
				return
			}
			ch <- buf[:n]
		}
	}()
	t.Cleanup(func() { ep.Close(); <-done })
	return ch
}

// nextFrame waits up to 10 s for the next frame.
func nextFrame(t *testing.T, ch <-chan []byte) link.Ethernet {
	t.Helper()
	select {
	case f, ok := <-ch:
		if !ok {
			t.Fatal("endpoint closed")
		}
		eth, err := link.ParseEthernet(f)
		if err != nil {
			t.Fatalf("bad frame: %v", err)
		}
		return eth
	case <-time.After(10 * time.Second):
		t.Fatal("no frame within 10 s")
	}
	return nil
}

// answerARP replies to an ARP request received on ep as the owner of the
// requested address.
func answerARP(t *testing.T, ep link.Endpoint, eth link.Ethernet) {
	t.Helper()
	p, err := arp.ParsePacket(eth.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if p.Op() != arp.OpRequest {
		return
	}
	f := make([]byte, link.EthernetHeaderLen+arp.PacketLen)
	link.PutEthernetHeader(f, p.SenderHardwareAddr(), ep.HardwareAddr(), link.EtherTypeARP)
	arp.PutPacket(f[link.EthernetHeaderLen:], arp.OpReply, ep.HardwareAddr(), p.TargetProtocolAddr(), p.SenderHardwareAddr(), p.SenderProtocolAddr())
	if err := ep.WriteFrame(f); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing the test after 10 s. It is
// for state that another goroutine changes with no event to wait on.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, 10*time.Second, what, cond)
}

// waitWithin is waitFor with a time limit of d.
func waitWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(d)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
