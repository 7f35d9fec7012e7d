package filter

import (
	"testing"

	"github.com/ustack/ustack/ip"
)

// TestTracer: a tracer learns each hook's decision: the rule that gave
// it by number and -S text (in a user chain too), the policy when none
// did, the conntrack state and TCP state; hooks where only empty ACCEPT
// chains ran name no chain; SetTracer(nil) stops it.
func TestTracer(t *testing.T) {
	f := New(Config{})
	mustExec(t, f,
		"-P INPUT DROP",
		"-N web",
		"-A web -p tcp --dport 80 -j ACCEPT",
		"-A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT",
		"-A INPUT -p udp -j DROP",
		"-A INPUT -p tcp -j web",
		"-A INPUT -p tcp --dport 81 -j REJECT --reject-with tcp-reset",
	)
	var got []Decision
	f.SetTracer(func(d *Decision) {
		if d.IP == nil {
			t.Error("a decision without its packet")
		}
		c := *d
		c.IP = nil
		got = append(got, c)
	})
	syn := func(dport uint16) *Packet {
		return mk(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: ip.ProtocolTCP, sport: 40000, dport: dport, flags: flagSYN, seq: 100, win: 1000}, "eth0", "")
	}
	in := func(p *Packet) {
		if f.Hook(Prerouting, p, t0).Action == Accept {
			f.Hook(Input, p, t0)
		}
	}
	in(syn(80))
	in(syn(81))
	in(syn(82))
	in(mk(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: ip.ProtocolUDP, sport: 1, dport: 2}, "eth0", ""))
	reply := mk(seg{src: "10.0.0.2", dst: "10.0.0.1", proto: ip.ProtocolTCP, sport: 80, dport: 40000, flags: flagSYN | flagACK, seq: 500, ack: 101, win: 1000}, "", "eth0")
	f.Hook(Output, reply, t0)
	ack := mk(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: ip.ProtocolTCP, sport: 40000, dport: 80, flags: flagACK, seq: 101, ack: 501, win: 1000}, "eth0", "")
	in(ack)

	want := []string{
		"PREROUTING ACCEPT (no rules), ct NEW SYN_SENT",
		`INPUT ACCEPT by rule 1 "-A web -p tcp -m tcp --dport 80 -j ACCEPT", ct NEW SYN_SENT`,
		"PREROUTING ACCEPT (no rules), ct NEW SYN_SENT",
		`INPUT REJECT --reject-with tcp-reset by rule 4 "-A INPUT -p tcp -m tcp --dport 81 -j REJECT --reject-with tcp-reset", ct NEW SYN_SENT`,
		"PREROUTING ACCEPT (no rules), ct NEW SYN_SENT",
		"INPUT DROP by policy of INPUT, ct NEW SYN_SENT",
		"PREROUTING ACCEPT (no rules), ct NEW",
		`INPUT DROP by rule 2 "-A INPUT -p udp -j DROP", ct NEW`,
		"OUTPUT ACCEPT (no rules), ct ESTABLISHED SYN_RECV",
		"PREROUTING ACCEPT (no rules), ct ESTABLISHED ESTABLISHED",
		`INPUT ACCEPT by rule 1 "-A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT", ct ESTABLISHED ESTABLISHED`,
	}
	if len(got) != len(want) {
		for _, d := range got {
			t.Log(d.String())
		}
		t.Fatalf("%d decisions, want %d", len(got), len(want))
	}
	for i := range want {
		if s := got[i].String(); s != want[i] {
			t.Errorf("decision %d:\n got %s\nwant %s", i, s, want[i])
		}
	}
	f.SetTracer(nil)
	n := len(got)
	in(syn(80))
	if len(got) != n {
		t.Error("SetTracer(nil) did not stop the tracer")
	}
}
