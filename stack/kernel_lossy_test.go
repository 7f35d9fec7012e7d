package stack

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/fault"
)

// lossyMix is the "mix" case of ustackbench -lossy (issue 7), each way:
// 5% loss, 1% duplicated, 5% held back 3 ms, 0.5% corrupted, 0.5 ms delay
// with up to 1 ms of jitter.
var lossyMix = fault.Impairment{
	Drop:         0.05,
	Duplicate:    0.01,
	Reorder:      0.05,
	ReorderDelay: 3 * time.Millisecond,
	Corrupt:      0.005,
	CorruptIP:    true,
	Delay:        500 * time.Microsecond,
	Jitter:       time.Millisecond,
}

// lossyKernelNet is the kernel in a test namespace behind a TAP device,
// joined to a ustack stack by a fault.Bridge between the TAP device and one
// end of a link.Pipe whose other end is the stack's NIC.
type lossyKernelNet struct {
	kernelNet
	bridge *fault.Bridge
}

func newLossyKernelNet(t *testing.T, cfg fault.BridgeConfig) *lossyKernelNet {
	t.Helper()
	ns := netns.NewT(t)
	k := &lossyKernelNet{kernelNet: kernelNet{ns: ns}}
	var tap *link.TAP
	if err := ns.Do(func() (err error) {
		tap, err = link.OpenTAP("ustap0", link.TAPOptions{})
		return err
	}); err != nil {
		t.Fatalf("open TAP in %s: %v", ns.Name(), err)
	}
	for _, c := range [][]string{
		{"ip", "link", "set", "ustap0", "up"},
		{"ip", "addr", "add", kernelAddr.String(), "dev", "ustap0"},
	} {
		if _, err := ns.Run(c...); err != nil {
			tap.Close()
			t.Fatal(err)
		}
	}
	nic, far := link.NewPipe(link.PipeOptions{MTU: tap.MTU(), QueueLen: 4096})
	var err error
	if k.bridge, err = fault.NewBridge(tap, far, cfg); err != nil {
		tap.Close()
		t.Fatal(err)
	}
	k.s = New(Options{})
	t.Cleanup(func() {
		k.s.Close()
		k.bridge.Close()
	})
	if _, err := k.s.AddNIC(nic, stackAddr); err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKernelTCPLossyBridge echoes 4 MiB from a kernel client through a
// ustack server (and 1 MiB from a ustack client through a kernel server,
// kept small for the test's run time) through a bridge that loses, duplicates, reorders, corrupts
// and delays frames (the mix case of issue 7) with a fixed seed, and checks
// every byte. It logs the time and ustack's recovery counters; it asserts
// no timing, but gives up with an error after a generous deadline instead
// of hanging.
func TestKernelTCPLossyBridge(t *testing.T) {
	leakcheck.Check(t)
	k := newLossyKernelNet(t, fault.BridgeConfig{Seed: 7, AToB: lossyMix, BToA: lossyMix})
	const deadline = 90 * time.Second
	l, err := k.s.ListenTCP(netip.AddrPortFrom(netip.IPv4Unspecified(), 7))
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(l)
	t.Cleanup(func() { l.Close(); wait() })

	run := func(t *testing.T, c net.Conn, size int, seed byte) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(deadline))
		before := k.s.Stats().TCP
		start := time.Now()
		if err := exchange(c, size, seed); err != nil {
			t.Fatalf("echo of %d bytes through the lossy bridge (deadline %v): %v\nbridge: %+v", size, deadline, err, k.bridge.Stats())
		}
		after := k.s.Stats().TCP
		t.Logf("echoed %d MiB in %v; ustack: %d timeouts, %d fast retransmits, %d retransmits, %d TLP probes, %d RACK losses, D-SACKs %d sent %d received, %d spurious retransmits, %d spurious RTOs, %d undos",
			size>>20, time.Since(start).Round(time.Millisecond),
			after.Timeouts-before.Timeouts, after.FastRetransmits-before.FastRetransmits, after.Retransmits-before.Retransmits,
			after.TLPProbes-before.TLPProbes, after.RACKLosses-before.RACKLosses,
			after.DSACKsSent-before.DSACKsSent, after.DSACKsReceived-before.DSACKsReceived,
			after.SpuriousRetransmits-before.SpuriousRetransmits, after.SpuriousRTOs-before.SpuriousRTOs, after.Undos-before.Undos)
	}

	t.Run("KernelClientToUstackEcho", func(t *testing.T) {
		c, err := k.kernelDial(t, netip.AddrPortFrom(stackAddr.Addr(), 7))
		if err != nil {
			t.Fatal(err)
		}
		run(t, c, 4<<20, 3)
	})
	t.Run("UstackClientToKernelEcho", func(t *testing.T) {
		kl := k.kernelListen(t, 9100)
		wait := echoServer(kl)
		defer func() { kl.Close(); wait() }()
		c := dial(t, k.s, netip.AddrPortFrom(kernelAddr.Addr(), 9100))
		run(t, c, 1<<20, 4)
	})
	s := k.bridge.Stats()
	t.Logf("bridge kernel→ustack: %+v", s.AToB)
	t.Logf("bridge ustack→kernel: %+v", s.BToA)
	if s.AToB.Dropped == 0 || s.BToA.Dropped == 0 || s.AToB.Reordered == 0 || s.AToB.Corrupted == 0 {
		t.Errorf("the bridge impaired too little to test anything: %+v", s)
	}
}
