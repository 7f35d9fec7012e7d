package stack

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/link"
)

// newKernelNetOffload is newKernelNet with the TAP device given to the
// stack directly (no capture in between), so that the stack reads and
// writes it with offload metadata; opts are the TAP's.
func newKernelNetOffload(t *testing.T, topts link.TAPOptions) *kernelNet {
	t.Helper()
	ns := netns.NewT(t)
	k := &kernelNet{ns: ns}
	if err := ns.Do(func() (err error) {
		k.tap, err = link.OpenTAP("ustap0", topts)
		return err
	}); err != nil {
		t.Fatalf("open TAP in %s: %v", ns.Name(), err)
	}
	for _, c := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "set", "ustap0", "up"},
		{"ip", "addr", "add", kernelAddr.String(), "dev", "ustap0"},
	} {
		if _, err := ns.Run(c...); err != nil {
			k.tap.Close()
			t.Fatal(err)
		}
	}
	k.s = New(Options{})
	t.Cleanup(func() { k.s.Close() })
	if _, err := k.s.AddNIC(k.tap, stackAddr); err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKernelTCPOffloads: over a TAP device with the default offloads, a
// kernel TCP client's 16 MiB come back intact through ustack's echo
// service, and the kernel's TSO super-segments and partial checksums
// arrived as such (with their metadata) and were cut and completed by the
// stack; ustack's 16 MiB to a kernel server arrive intact too. With
// NoOffloads none come. Over IPv6 with offloads (TSO6, GSO TCPv6) the
// echoes are 64 MiB each way.
func TestKernelTCPOffloads(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, off := range []bool{false, true} {
			name := "IPv4/Offloads"
			if v6 {
				name = "IPv6/Offloads"
			}
			if off {
				name = strings.Replace(name, "Offloads", "NoOffloads", 1)
			}
			t.Run(name, func(t *testing.T) { testKernelTCPOffloads(t, v6, off) })
		}
	}
}

func testKernelTCPOffloads(t *testing.T, v6, off bool) {
	leakcheck.Check(t)
	k := newKernelNetOffload(t, link.TAPOptions{NoOffloads: off})
	if got := k.tap.Offloads(); got.GRO == off {
		t.Fatalf("TAP offloads %+v", got)
	}
	network, wild, server, kserver, size := "tcp4", netip.IPv4Unspecified(), stackAddr.Addr(), kernelAddr.Addr(), 16<<20
	if v6 {
		k.addIPv6(t)
		network, wild, server, kserver = "tcp6", netip.IPv6Unspecified(), stackAddr6.Addr(), kernelAddr6.Addr()
		if !off {
			size = 64 << 20 // the figure; without offloads it would take CI too long
		}
	}
	l, err := k.s.ListenTCP(netip.AddrPortFrom(wild, 7))
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(l)
	t.Cleanup(func() { l.Close(); wait() })
	c, err := k.kernelDialNet(network, netip.AddrPortFrom(server, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if err := exchange(c, size, 3); err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel client: %d MiB echoed in %v", size>>20, time.Since(start))
	var kl net.Listener
	if err := k.ns.Do(func() (err error) {
		kl, err = net.Listen(network, netip.AddrPortFrom(kserver, 9100).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	kwait := echoServer(kl)
	defer func() { kl.Close(); kwait() }()
	uc := dial(t, k.s, netip.AddrPortFrom(kserver, 9100))
	defer uc.Close()
	start = time.Now()
	if err := exchange(uc, size, 4); err != nil {
		t.Fatal(err)
	}
	t.Logf("ustack client: %d MiB echoed in %v", size>>20, time.Since(start))
	st := k.s.Stats().Link
	t.Logf("frames in %d, super-segments in %d, out %d, checksums completed %d, bad offload %d, TAP drops %d",
		st.FramesIn, st.SuperSegmentsIn, st.SuperSegmentsOut, st.ChecksumsCompleted, st.DropBadOffload, k.tap.Drops())
	if st.DropBadOffload != 0 || k.tap.Drops() != 0 || k.s.Stats().TCP.DropBadChecksum != 0 {
		t.Errorf("drops: %+v, TAP %d, TCP bad checksum %d", st, k.tap.Drops(), k.s.Stats().TCP.DropBadChecksum)
	}
	// Super-segments leave either way (cut in software without
	// offloads); they arrive from the kernel only with them.
	if off != (st.SuperSegmentsIn == 0) || st.SuperSegmentsOut == 0 {
		t.Errorf("offloads %v: %d super-segments arrived, %d sent", !off, st.SuperSegmentsIn, st.SuperSegmentsOut)
	}
}
