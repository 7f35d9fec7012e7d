package filter

import (
	"fmt"
	"testing"
)

// established returns a filter with rules rules ahead of an ESTABLISHED
// accept, and a packet of an established flow to feed it.
func established(tb testing.TB, rules int) (*Filter, func() *Packet) {
	f := New(Config{})
	for i := range rules {
		// Rules that look at the packet and miss, as a real rule set's
		// earlier rules do for most packets.
		mustExec(tb, f, fmt.Sprintf("-A INPUT -s 10.%d.0.0/16 -p tcp -m tcp --dport %d -j DROP", i, 1000+i))
	}
	mustExec(tb, f, "-A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT", "-P INPUT DROP")
	fl := &flow{t: nil, f: f, cli: "10.200.0.1", srv: "203.0.113.5", cp: 40000, sp: 443, now: t0}
	fl.send(flagSYN, 1000, 0, 65535, 0)
	fl.recv(flagSYN|flagACK, 5000, 1001, 65535, 0)
	fl.send(flagACK, 1001, 5001, 512, 0)
	p := mk(seg{src: "203.0.113.5", dst: "10.200.0.1", proto: 6, sport: 443, dport: 40000, flags: flagACK, seq: 5001, ack: 1001, win: 512, data: 100}, "eth0", "")
	return f, func() *Packet { p.Reset(); return p }
}

func TestEstablishedPathAllocatesNothing(t *testing.T) {
	f, next := established(t, 50)
	run := func() {
		p := next()
		if f.Hook(Prerouting, p, t0).Action != Accept || f.Hook(Input, p, t0).Action != Accept || p.ctst != StateEstablished {
			t.Fatal("established packet not accepted")
		}
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("%.1f allocations per packet on the established path", n)
	}
}

// BenchmarkHook measures prerouting plus input for one packet of an
// established flow: the conntrack hit and N rules before the accept.
func BenchmarkHook(b *testing.B) {
	for _, n := range []int{0, 10, 50} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			f, next := established(b, n)
			b.ReportAllocs()
			for b.Loop() {
				p := next()
				f.Hook(Prerouting, p, t0)
				f.Hook(Input, p, t0)
			}
		})
	}
}

// BenchmarkConntrackHit is the conntrack lookup and TCP window check
// alone (prerouting, with no nat rule).
func BenchmarkConntrackHit(b *testing.B) {
	f, next := established(b, 0)
	b.ReportAllocs()
	for b.Loop() {
		f.Hook(Prerouting, next(), t0)
	}
}
