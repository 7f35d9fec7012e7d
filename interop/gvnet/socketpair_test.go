package gvnet

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/fault"
	ustack "github.com/ustack/ustack/stack"
)

// TestSocketpairBehindBridge runs ustack and a gVisor stack on its socket
// pair joined by a fault.Bridge (Ethernet and ARP through the bridge), and
// echoes 4 MiB at 1% loss each way.
func TestSocketpairBehindBridge(t *testing.T) {
	g, se, err := NewSocketpair(Options{Addr: netip.MustParsePrefix("10.9.0.2/24")})
	if err != nil {
		t.Fatal(err)
	}
	nic, far := link.NewPipe(link.PipeOptions{QueueLen: 4096})
	imp := fault.Impairment{Drop: 0.01}
	br, err := fault.NewBridge(far, se, fault.BridgeConfig{Seed: 5, AToB: imp, BToA: imp})
	if err != nil {
		t.Fatal(err)
	}
	u := ustack.New(ustack.Options{})
	t.Cleanup(func() {
		u.Close()
		g.Close()
		br.Close()
	})
	if _, err := u.AddNIC(nic, netip.MustParsePrefix("10.9.0.1/24")); err != nil {
		t.Fatal(err)
	}
	if se.HardwareAddr() == nic.HardwareAddr() || se.HardwareAddr().IsMulticast() {
		t.Fatalf("gVisor MAC %v", se.HardwareAddr())
	}
	l, err := g.Listen(7)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	echoServer(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := u.DialTCP(ctx, netip.MustParseAddrPort("10.9.0.2:7"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoCheck(t, c, 4<<20)
	s := br.Stats()
	if s.AToB.Frames == 0 || s.BToA.Frames == 0 || s.AToB.Errors+s.BToA.Errors != 0 {
		t.Errorf("bridge stats %+v", s)
	}
	t.Logf("bridge ustack→gVisor %+v, gVisor→ustack %+v", s.AToB, s.BToA)
}
