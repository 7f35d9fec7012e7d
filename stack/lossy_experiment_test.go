package stack

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/fault"
	"github.com/ustack/ustack/tcp"
)

// TestLossyExperiment moves data each way between two stacks through
// realistic impairments (0.5 ms each way, default MinRTO) and logs the
// time and the recovery counters. It is a measurement, not a check: it
// runs only with USTACK_EXPERIMENT=1.
func TestLossyExperiment(t *testing.T) {
	if os.Getenv("USTACK_EXPERIMENT") == "" {
		t.Skip("set USTACK_EXPERIMENT=1")
	}
	cases := []struct {
		name string
		im   fault.Impairment
	}{
		{"clean", fault.Impairment{}},
		{"loss2", fault.Impairment{Drop: 0.02}},
		{"reorder5", fault.Impairment{Reorder: 0.05}},
		{"dup2", fault.Impairment{Duplicate: 0.02}},
		{"corrupt1", fault.Impairment{Corrupt: 0.01}},
		{"mix", fault.Impairment{Drop: 0.05, Duplicate: 0.01, Reorder: 0.05, Corrupt: 0.005, Jitter: 200 * time.Microsecond}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seed := uint64(7)
			cfg := tcp.DefaultConfig()
			a, b := pair(t, Options{TCP: &cfg}, func(ep link.Endpoint) link.Endpoint {
				seed++
				im := tc.im
				im.Delay = 500 * time.Microsecond
				return fault.New(ep, fault.Config{Seed: seed, Tx: im})
			})
			start := time.Now()
			transfer(t, a, b, 4<<20)
			st := a.Stats().TCP
			t.Logf("%-9s %6.2fs  a: timeouts %d fast %d retrans %d tlp %d rack %d dsackIn %d dsackOut %d spurious %d spurRTO %d undo %d", tc.name, time.Since(start).Seconds(),
				st.Timeouts, st.FastRetransmits, st.Retransmits, st.TLPProbes, st.RACKLosses, st.DSACKsReceived, st.DSACKsSent, st.SpuriousRetransmits, st.SpuriousRTOs, st.Undos)
		})
	}
}

// TestKernelLossyExperiment: the kernel in a namespace echoes through
// ustack over a TAP wrapped in fault impairments both ways (0.5 ms each
// way). Measurement only (USTACK_EXPERIMENT=1).
func TestKernelLossyExperiment(t *testing.T) {
	if os.Getenv("USTACK_EXPERIMENT") == "" {
		t.Skip("set USTACK_EXPERIMENT=1")
	}
	cases := []struct {
		name string
		im   fault.Impairment
	}{
		{"clean", fault.Impairment{}},
		{"loss2", fault.Impairment{Drop: 0.02}},
		{"reorder5", fault.Impairment{Reorder: 0.05}},
		{"dup2", fault.Impairment{Duplicate: 0.02}},
		{"corrupt1", fault.Impairment{Corrupt: 0.01}},
		{"mix", fault.Impairment{Drop: 0.05, Duplicate: 0.01, Reorder: 0.05, Corrupt: 0.005, Jitter: 200 * time.Microsecond}},
	}
	size := 8 << 20
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := netns.NewT(t)
			var tap *link.TAP
			if err := ns.Do(func() (err error) { tap, err = link.OpenTAP("ustap0", link.TAPOptions{}); return err }); err != nil {
				t.Fatal(err)
			}
			for _, c := range [][]string{{"ip", "link", "set", "lo", "up"}, {"ip", "link", "set", "ustap0", "up"}, {"ip", "addr", "add", kernelAddr.String(), "dev", "ustap0"}} {
				if _, err := ns.Run(c...); err != nil {
					t.Fatal(err)
				}
			}
			im := tc.im
			im.Delay = 500 * time.Microsecond
			ep := fault.New(tap, fault.Config{Seed: 99, Tx: im, Rx: im})
			s := New(Options{})
			t.Cleanup(func() { s.Close() })
			if _, err := s.AddNIC(ep, stackAddr); err != nil {
				t.Fatal(err)
			}
			k := &kernelNet{ns: ns, s: s, tap: tap}
			l, err := s.ListenTCP(netip.AddrPortFrom(netip.IPv4Unspecified(), 7))
			if err != nil {
				t.Fatal(err)
			}
			wait := echoServer(l)
			defer func() { l.Close(); wait() }()
			c, err := k.kernelDial(t, netip.AddrPortFrom(stackAddr.Addr(), 7))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := exchange(c, size, 1); err != nil {
				t.Fatal(err)
			}
			el := time.Since(start)
			c.Close()
			st := s.Stats().TCP
			t.Logf("%-9s kernel→ustack echo %d MiB %6.2fs  timeouts %d fast %d retrans %d tlp %d rack %d dsackIn %d dsackOut %d spurious %d spurRTO %d undo %d", tc.name, size>>20, el.Seconds(),
				st.Timeouts, st.FastRetransmits, st.Retransmits, st.TLPProbes, st.RACKLosses, st.DSACKsReceived, st.DSACKsSent, st.SpuriousRetransmits, st.SpuriousRTOs, st.Undos)
		})
	}
}
