package stack

import (
	"net/netip"
	"testing"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/link"
)

// TestGSOOverPipe echoes 8 MiB between two stacks over a Pipe, verified
// by SHA-256: with a TAP device's offloads (TSO4, GRO, checksum offload)
// the connection's super-segments cross the link whole and are taken
// whole (SuperSegmentsOut on one side, SuperSegmentsIn on the other, and
// fewer frames than MSS-sized segments); over a plain Pipe they are cut
// in software before the link (no frame beyond the MTU, which the Pipe
// would refuse) and merged again by the reader's software GRO; with
// Options.NoGSO and no TSO none is made. Each case runs over IPv4 and over IPv6
// (TSO6, GSO TCPv6); a device with TSO4 alone gets IPv6 segments one by
// one.
func TestGSOOverPipe(t *testing.T) {
	full := link.Offloads{TxChecksum: true, RxChecksum: true, TSO4: true, TSO6: true, GRO: true}
	for _, v6 := range []bool{false, true} {
		for _, tc := range []struct {
			name string
			ofl  link.Offloads
			gso  bool // software GSO where the device has no TSO (Options.NoGSO false)
		}{
			// A device with TSO gets super-segments by default.
			{"offloads", full, false},
			{"offloads and software GSO", full, true},
			{"software GSO", link.Offloads{}, true},
			{"GSO off", link.Offloads{}, false},
			{"TSO without GRO", link.Offloads{TxChecksum: true, TSO4: true, TSO6: true}, false},
			{"TSO4 only", link.Offloads{TxChecksum: true, TSO4: true}, false},
		} {
			name := "IPv4/" + tc.name
			if v6 {
				name = "IPv6/" + tc.name
			}
			t.Run(name, func(t *testing.T) { testGSOOverPipe(t, v6, tc.ofl, tc.gso) })
		}
	}
}

func testGSOOverPipe(t *testing.T, v6 bool, ofl link.Offloads, gso bool) {
	leakcheck.Check(t)
	// No super-segment may leave without software GSO or the family's TSO.
	noGSO := !gso && !(ofl.TxChecksum && (ofl.TSO4 && !v6 || ofl.TSO6 && v6))
	ea, eb := link.NewPipe(link.PipeOptions{QueueLen: 1024, Offloads: ofl})
	opts := fastNDP
	opts.NoGSO = !gso
	a, b := New(opts), New(opts)
	t.Cleanup(func() { a.Close(); b.Close() })
	if _, err := a.AddNIC(ea, addrA); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddNIC(eb, addrB); err != nil {
		t.Fatal(err)
	}
	server := netip.AddrPortFrom(addrB.Addr(), 7)
	if v6 {
		if err := a.AddAddress(1, addr6A); err != nil {
			t.Fatal(err)
		}
		if err := b.AddAddress(1, addr6B); err != nil {
			t.Fatal(err)
		}
		waitAssigned(t, a, addr6A.Addr())
		waitAssigned(t, b, addr6B.Addr())
		server = netip.AddrPortFrom(addr6B.Addr(), 7)
	}
	l, err := b.ListenTCP(server)
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(l)
	t.Cleanup(func() { l.Close(); wait() })
	c := dial(t, a, server)
	defer c.Close()
	if err := exchange(c, 8<<20, 5); err != nil {
		t.Fatal(err)
	}
	sa, sb := a.Stats(), b.Stats()
	t.Logf("a: frames out %d, super-segments out %d; b: frames in %d, super-segments in %d, coalesced %d; TCP segments out %d",
		sa.Link.FramesOut, sa.Link.SuperSegmentsOut, sb.Link.FramesIn, sb.Link.SuperSegmentsIn, sb.Link.SegmentsCoalesced, sa.TCP.SegmentsOut)
	// The pipe may drop frames when its queue is full, as a link
	// does: TCP repairs that. Nothing may be malformed.
	if sa.Link.WriteErrors != 0 || sb.Link.DropBadOffload != 0 || sb.TCP.DropBadChecksum != 0 {
		t.Errorf("errors: write %d, bad offload %d, bad checksum %d",
			sa.Link.WriteErrors, sb.Link.DropBadOffload, sb.TCP.DropBadChecksum)
	}
	switch {
	case noGSO:
		if sa.Link.SuperSegmentsOut != 0 {
			t.Errorf("GSO off: %d super-segments", sa.Link.SuperSegmentsOut)
		}
	case ofl.GRO:
		if sb.Link.SuperSegmentsIn == 0 || sb.Link.FramesIn*2 > sa.TCP.SegmentsOut {
			t.Errorf("%d super-segments in, %d frames for %d segments", sb.Link.SuperSegmentsIn, sb.Link.FramesIn, sa.TCP.SegmentsOut)
		}
	default:
		if sa.Link.SuperSegmentsOut == 0 || sb.Link.SuperSegmentsIn != 0 {
			t.Errorf("%d super-segments out, %d in: want them cut before the link", sa.Link.SuperSegmentsOut, sb.Link.SuperSegmentsIn)
		}
		// A super-segment's pieces reach the pipe together, so the
		// reader finds them queued and software GRO merges them.
		if sb.Link.SegmentsCoalesced == 0 {
			t.Error("software GRO merged nothing")
		}
	}
}
