package filter

import (
	"encoding/binary"
	"net/netip"
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

// TestPrefix4: the mask form of an IPv4 prefix matches what
// netip.Prefix.Contains does, at every length from /0 to /32.
func TestPrefix4(t *testing.T) {
	addrs := []netip.Addr{netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("10.1.255.3"), netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255")}
	for _, base := range addrs {
		for bits := 0; bits <= 32; bits++ {
			p := netip.PrefixFrom(base, bits)
			p4 := newPrefix4(p)
			if !p4.ok {
				t.Fatalf("%v: not taken", p)
			}
			for _, a := range addrs {
				b := a.As4()
				if got := binary.BigEndian.Uint32(b[:])&p4.mask == p4.addr; got != p.Contains(a) {
					t.Errorf("%v contains %v: mask form %v, netip %v", p, a, got, p.Contains(a))
				}
			}
		}
	}
	if newPrefix4(netip.MustParsePrefix("fd00::/8")).ok || newPrefix4(netip.Prefix{}).ok {
		t.Error("an IPv6 or invalid prefix taken as IPv4")
	}
}
