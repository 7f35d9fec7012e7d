package stack

import (
	"net/netip"
	"testing"

	"github.com/ustack/ustack/link"
)

// synListener is a stack with a listener on port 7 of addrA, its NIC
// (whose deliver takes frames as the reader would) and the pipe's two
// ends; all closed when tb ends.
func synListener(tb testing.TB) (*Stack, *nic, *link.PipeEnd, *link.PipeEnd) {
	tb.Helper()
	ea, eb := link.NewPipe(link.PipeOptions{})
	tb.Cleanup(func() { eb.Close() })
	s := New(Options{})
	tb.Cleanup(func() { s.Close() })
	if _, err := s.AddNIC(ea, addrA); err != nil {
		tb.Fatal(err)
	}
	l, err := s.ListenTCP(netip.AddrPortFrom(addrA.Addr(), 7))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return s, s.nics[0], ea, eb
}

// BenchmarkSYNNoRoute is the per-frame cost of a spoofed SYN flood from
// sources no route leads back to, past the device read: the Ethernet,
// IPv4 and TCP parsing, the demultiplexing and the drop
// (DropSYNNoRoute), for frames from 1024 sources to a listener. It
// allocates nothing.
func BenchmarkSYNNoRoute(b *testing.B) {
	s, n, ea, eb := synListener(b)
	frames := make([][]byte, 1024)
	for i := range frames {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), uint16(1024+i))
		frames[i] = spoofedSYN(eb.HardwareAddr(), ea.HardwareAddr(), src, netip.AddrPortFrom(addrA.Addr(), 7), uint32(i)*7919)
	}
	before := s.Stats().TCP.DropSYNNoRoute
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		n.deliver(frames[i%len(frames)])
		i++
	}
	if got := s.Stats().TCP.DropSYNNoRoute - before; got != uint64(i) {
		b.Fatalf("DropSYNNoRoute counted %d of %d SYNs", got, i)
	}
}

// TestSYNNoRouteDroppedFirst: a SYN from a source no route leads back to
// is dropped and counted before the demultiplexer sees it, to a listener
// and to a closed port alike, and nothing is sent (neither a SYN-ACK nor
// a reset could leave); a SYN from a routable source to the closed port
// is answered with a reset as before.
func TestSYNNoRouteDroppedFirst(t *testing.T) {
	s, n, ea, eb := synListener(t)
	spoofed := netip.AddrPortFrom(netip.MustParseAddr("198.18.0.1"), 4000)
	for _, port := range []uint16{7, 8} {
		before := s.Stats()
		n.deliver(spoofedSYN(eb.HardwareAddr(), ea.HardwareAddr(), spoofed, netip.AddrPortFrom(addrA.Addr(), port), 1))
		after := s.Stats()
		if d := after.TCP.DropSYNNoRoute - before.TCP.DropSYNNoRoute; d != 1 {
			t.Errorf("port %d: DropSYNNoRoute +%d, want +1", port, d)
		}
		if after.TCP.DropNoConnection != before.TCP.DropNoConnection || after.TCP.SYNsReceived != before.TCP.SYNsReceived ||
			after.Link.FramesOut != before.Link.FramesOut {
			t.Errorf("port %d: the SYN went further: %+v then %+v", port, before.TCP, after.TCP)
		}
	}
	before := s.Stats()
	routable := netip.AddrPortFrom(addrB.Addr(), 4000)
	n.deliver(spoofedSYN(eb.HardwareAddr(), ea.HardwareAddr(), routable, netip.AddrPortFrom(addrA.Addr(), 8), 1))
	if after := s.Stats(); after.TCP.DropNoConnection != before.TCP.DropNoConnection+1 || after.TCP.DropSYNNoRoute != before.TCP.DropSYNNoRoute {
		t.Errorf("a routable SYN to a closed port: DropNoConnection +%d, DropSYNNoRoute +%d; want +1, +0",
			after.TCP.DropNoConnection-before.TCP.DropNoConnection, after.TCP.DropSYNNoRoute-before.TCP.DropSYNNoRoute)
	}
}
