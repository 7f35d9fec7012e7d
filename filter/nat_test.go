package filter

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ip"
)

// router is a NAT box: a LAN NIC (lan0) and a WAN NIC (wan0) whose
// address MASQUERADE uses.
func router(t *testing.T, rules ...string) *Filter {
	f := New(Config{LocalAddr: func(nic string, v6 bool) (netip.Addr, bool) {
		switch {
		case nic == "wan0" && !v6:
			return netip.MustParseAddr("198.51.100.1"), true
		case nic == "wan0":
			return netip.MustParseAddr("2001:db8:ffff::1"), true
		case nic == "lan0" && !v6:
			return netip.MustParseAddr("192.168.1.1"), true
		}
		return netip.Addr{}, false
	}})
	mustExec(t, f, rules...)
	return f
}

// forward passes p through prerouting, forward and postrouting.
func forward(f *Filter, p *Packet) Verdict {
	for _, h := range []Hook{Prerouting, Forward, Postrouting} {
		if v := f.Hook(h, p, t0); v.Action != Accept {
			return v
		}
	}
	return Verdict{}
}

func addrs(p *Packet) string {
	sp, dp := ports(p)
	if p.IP.Protocol == ip.ProtocolICMP || p.IP.Protocol == ip.ProtocolICMPv6 {
		return fmt.Sprintf("%s -> %s id %d", p.IP.Source, p.IP.Destination, binary.BigEndian.Uint16(p.IP.Payload[4:]))
	}
	return fmt.Sprintf("%s -> %s",
		netip.AddrPortFrom(p.IP.Source, sp), netip.AddrPortFrom(p.IP.Destination, dp))
}

func TestMasqueradeRoundTrip(t *testing.T) {
	tests := []struct {
		name          string
		cli, srv, pub string
		proto, typ    uint8
		rep           uint8
	}{
		{"tcp4", "192.168.1.10", "203.0.113.5", "198.51.100.1", 6, 0, 0},
		{"udp4", "192.168.1.10", "203.0.113.5", "198.51.100.1", 17, 0, 0},
		{"icmp4 echo", "192.168.1.10", "203.0.113.5", "198.51.100.1", 1, 8, 0},
		{"tcp6", "fd00::10", "2001:db8:5::5", "2001:db8:ffff::1", 6, 0, 0},
		{"udp6", "fd00::10", "2001:db8:5::5", "2001:db8:ffff::1", 17, 0, 0},
		{"icmp6 echo", "fd00::10", "2001:db8:5::5", "2001:db8:ffff::1", 58, 128, 129},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := router(t, "-t nat -A POSTROUTING -o wan0 -j MASQUERADE")
			// Occupy the client's port on the public address, so that
			// MASQUERADE must choose another.
			busy := mk(seg{src: tt.pub, dst: tt.srv, proto: tt.proto, sport: 40000, dport: 443, flags: flagSYN, icmpType: tt.typ, id: 40000}, "", "wan0")
			f.Hook(Output, busy, t0)
			out := mk(seg{src: tt.cli, dst: tt.srv, proto: tt.proto, sport: 40000, dport: 443, flags: flagSYN, win: 100, data: 33, icmpType: tt.typ, id: 40000}, "lan0", "wan0")
			if v := forward(f, out); v.Action != Accept {
				t.Fatalf("outbound %v", v)
			}
			verify(t, out)
			if out.IP.Source.String() != tt.pub {
				t.Errorf("outbound source %v, want %v", out.IP.Source, tt.pub)
			}
			var pubPort uint16
			if tt.proto == 1 || tt.proto == 58 {
				pubPort = binary.BigEndian.Uint16(out.IP.Payload[4:])
			} else {
				pubPort, _ = ports(out)
			}
			if pubPort == 40000 {
				t.Error("MASQUERADE kept a port already in use")
			}
			rt := tt.rep
			if tt.proto == 1 {
				rt = 0
			}
			in := mk(seg{src: tt.srv, dst: tt.pub, proto: tt.proto, sport: 443, dport: pubPort, flags: flagSYN | flagACK, ack: 34, win: 100, data: 17, icmpType: rt, id: pubPort}, "wan0", "lan0")
			if v := forward(f, in); v.Action != Accept {
				t.Fatalf("reply %v", v)
			}
			verify(t, in)
			want := mk(seg{src: tt.srv, dst: tt.cli, proto: tt.proto, sport: 443, dport: 40000, flags: flagSYN | flagACK, ack: 34, win: 100, data: 17, icmpType: rt, id: 40000}, "", "")
			if string(in.IP.Datagram) != string(want.IP.Datagram) {
				t.Errorf("reply translated to %s, want %s (bytes differ)", addrs(in), addrs(want))
			}
			if in.ctst != StateEstablished {
				t.Errorf("reply %s", stateString(in.ctst))
			}
		})
	}
}

func TestDNATPortForward(t *testing.T) {
	f := router(t, "-t nat -A PREROUTING -i wan0 -p tcp --dport 8080 -j DNAT --to-destination 192.168.1.20:80",
		"-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
		"-A FORWARD -i wan0 -d 192.168.1.20 -p tcp --dport 80 -j ACCEPT", "-P FORWARD DROP")
	in := mk(seg{src: "198.51.100.7", dst: "198.51.100.1", proto: 6, sport: 5555, dport: 8080, flags: flagSYN, win: 1000, seq: 1}, "wan0", "lan0")
	if v := forward(f, in); v.Action != Accept {
		t.Fatalf("forwarded SYN: %v", v)
	}
	verify(t, in)
	if got := addrs(in); got != "198.51.100.7:5555 -> 192.168.1.20:80" {
		t.Errorf("SYN to %s", got)
	}
	rep := mk(seg{src: "192.168.1.20", dst: "198.51.100.7", proto: 6, sport: 80, dport: 5555, flags: flagSYN | flagACK, seq: 9, ack: 2, win: 1000}, "lan0", "wan0")
	if v := forward(f, rep); v.Action != Accept {
		t.Fatalf("SYN,ACK: %v", v)
	}
	verify(t, rep)
	if got := addrs(rep); got != "198.51.100.1:8080 -> 198.51.100.7:5555" {
		t.Errorf("SYN,ACK from %s", got)
	}
	// Later packets use the binding, not the rules: a retransmitted SYN
	// is translated the same way.
	again := mk(seg{src: "198.51.100.7", dst: "198.51.100.1", proto: 6, sport: 5555, dport: 8080, flags: flagACK, win: 1000, seq: 2, ack: 10}, "wan0", "lan0")
	forward(f, again)
	verify(t, again)
	if got := addrs(again); got != "198.51.100.7:5555 -> 192.168.1.20:80" {
		t.Errorf("ACK to %s", got)
	}
	var b [1]byte
	_ = b
}

func TestRedirectAndOutputDNAT(t *testing.T) {
	f := router(t, "-t nat -A PREROUTING -i lan0 -p tcp --dport 80 -j REDIRECT --to-ports 3128",
		"-t nat -A OUTPUT -d 10.9.9.9 -p udp -j DNAT --to-destination 127.0.0.1:5353")
	// A LAN client's web request goes to the local proxy...
	in := mk(seg{src: "192.168.1.10", dst: "93.184.216.34", proto: 6, sport: 4444, dport: 80, flags: flagSYN, win: 100}, "lan0", "")
	f.Hook(Prerouting, in, t0)
	f.Hook(Input, in, t0)
	verify(t, in)
	if got := addrs(in); got != "192.168.1.10:4444 -> 192.168.1.1:3128" {
		t.Errorf("redirected to %s", got)
	}
	// ...whose answer looks like it came from the web server.
	out := mk(seg{src: "192.168.1.1", dst: "192.168.1.10", proto: 6, sport: 3128, dport: 4444, flags: flagSYN | flagACK, ack: 1, win: 100}, "", "lan0")
	f.Hook(Output, out, t0)
	f.Hook(Postrouting, out, t0)
	verify(t, out)
	if got := addrs(out); got != "93.184.216.34:80 -> 192.168.1.10:4444" {
		t.Errorf("proxy reply from %s", got)
	}
	// A local query DNATed at output; the reply is un-DNATed at input.
	q := mk(seg{src: "127.0.0.1", dst: "10.9.9.9", proto: 17, sport: 6000, dport: 53}, "", "lo")
	f.Hook(Output, q, t0)
	f.Hook(Postrouting, q, t0)
	verify(t, q)
	if got := addrs(q); got != "127.0.0.1:6000 -> 127.0.0.1:5353" {
		t.Errorf("query to %s", got)
	}
	r := mk(seg{src: "127.0.0.1", dst: "127.0.0.1", proto: 17, sport: 5353, dport: 6000}, "lo", "")
	f.Hook(Prerouting, r, t0)
	f.Hook(Input, r, t0)
	verify(t, r)
	if got := addrs(r); got != "10.9.9.9:53 -> 127.0.0.1:6000" {
		t.Errorf("reply from %s", got)
	}
	// REDIRECT with no address on the NIC is a counted drop.
	g := router(t, "-t nat -A PREROUTING -p tcp -j REDIRECT")
	x := mk(seg{src: "1.1.1.1", dst: "2.2.2.2", proto: 6, sport: 1, dport: 2, flags: flagSYN}, "nowhere0", "")
	if g.Hook(Prerouting, x, t0).Action != Drop || g.Stats().DropNATNoAddr.Load() != 1 {
		t.Error("REDIRECT without an address not a counted drop")
	}
}

// verifyBytes checks the checksums of a whole datagram from scratch.
func verifyBytes(t *testing.T, b []byte) {
	t.Helper()
	p := pkt(b, "", "")
	verify(t, p)
}

func TestNATICMPErrorTranslated(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		cli, srv, pub := "192.168.1.10", "203.0.113.5", "198.51.100.1"
		proto, errType := uint8(1), uint8(3)
		if v6 {
			cli, srv, pub = "fd00::10", "2001:db8:5::5", "2001:db8:ffff::1"
			proto, errType = 58, 1
		}
		f := router(t, "-t nat -A POSTROUTING -o wan0 -j MASQUERADE")
		busy := mk(seg{src: pub, dst: srv, proto: 17, sport: 5000, dport: 53}, "", "wan0")
		f.Hook(Output, busy, t0)
		out := mk(seg{src: cli, dst: srv, proto: 17, sport: 5000, dport: 53, data: 12}, "lan0", "wan0")
		forward(f, out)
		pubPort, _ := ports(out)
		// The server answers with port unreachable, quoting the whole
		// datagram as it received it.
		for _, router := range []bool{false, true} {
			from := srv
			if router {
				from = "203.0.113.254"
				if v6 {
					from = "2001:db8:5::fe"
				}
			}
			e := mk(seg{src: from, dst: pub, proto: proto, icmpType: errType, icmpCode: 3, quote: out.IP.Datagram}, "wan0", "lan0")
			if v := forward(f, e); v.Action != Accept {
				t.Fatalf("v6 %v: error %v", v6, v)
			}
			if e.ctst != StateRelated {
				t.Errorf("v6 %v: error %s", v6, stateString(e.ctst))
			}
			verify(t, e)
			if e.IP.Destination.String() != cli || e.IP.Source.String() != from {
				t.Errorf("v6 %v router %v: outer %v -> %v", v6, router, e.IP.Source, e.IP.Destination)
			}
			inner := e.IP.Payload[8:]
			verifyBytes(t, inner)
			ip := pkt(inner, "", "")
			if got, want := addrs(ip), fmt.Sprintf("%s -> %s", netip.AddrPortFrom(netip.MustParseAddr(cli), 5000), netip.AddrPortFrom(netip.MustParseAddr(srv), 53)); got != want {
				t.Errorf("v6 %v: quoted %s, want %s (public port %d)", v6, got, want, pubPort)
			}
		}
	}
}

func TestMasqueradePortAllocation(t *testing.T) {
	f := router(t, "-t nat -A POSTROUTING -o wan0 -j MASQUERADE")
	const n = 3000
	seen := map[uint16]int{}
	for i := range n {
		cli := netip.AddrFrom4([4]byte{192, 168, byte(1 + i/250), byte(1 + i%250)})
		p := mk(seg{src: cli.String(), dst: "203.0.113.5", proto: 6, sport: 40000, dport: 443, flags: flagSYN, win: 100}, "lan0", "wan0")
		if v := forward(f, p); v.Action != Accept {
			t.Fatalf("flow %d: %v", i, v)
		}
		sp, _ := ports(p)
		if sp < 1024 {
			t.Errorf("flow %d got port %d below 1024", i, sp)
		}
		if j, dup := seen[sp]; dup {
			t.Fatalf("flows %d and %d share public port %d", j, i, sp)
		}
		seen[sp] = i
	}
	// Every reply reaches its own client.
	for sp, i := range seen {
		r := mk(seg{src: "203.0.113.5", dst: "198.51.100.1", proto: 6, sport: 443, dport: sp, flags: flagSYN | flagACK, ack: 1, win: 100}, "wan0", "lan0")
		forward(f, r)
		want := netip.AddrFrom4([4]byte{192, 168, byte(1 + i/250), byte(1 + i%250)})
		if _, dp := ports(r); r.IP.Destination != want || dp != 40000 {
			t.Fatalf("reply to port %d went to %s, want %v:40000", sp, addrs(r), want)
		}
	}
	// Low ports stay low.
	p := mk(seg{src: "192.168.1.1", dst: "203.0.113.5", proto: 17, sport: 123, dport: 123}, "lan0", "wan0")
	busy := mk(seg{src: "198.51.100.1", dst: "203.0.113.5", proto: 17, sport: 123, dport: 123}, "", "wan0")
	f.Hook(Output, busy, t0)
	forward(f, p)
	if sp, _ := ports(p); sp >= 1024 || sp == 123 {
		t.Errorf("privileged source port remapped to %d", sp)
	}
}

func TestSNATPortExhaustion(t *testing.T) {
	f := router(t, "-t nat -A POSTROUTING -o wan0 -p udp -j SNAT --to-source 198.51.100.9:20000-20009")
	got := map[uint16]bool{}
	for i := range 11 {
		p := mk(seg{src: fmt.Sprintf("192.168.1.%d", i+10), dst: "203.0.113.5", proto: 17, sport: 5000, dport: 53}, "lan0", "wan0")
		v := forward(f, p)
		if i == 10 {
			if v.Action != Drop || f.Stats().DropNATNoPort.Load() != 1 {
				t.Errorf("11th flow: %v, DropNATNoPort %d", v, f.Stats().DropNATNoPort.Load())
			}
			continue
		}
		if v.Action != Accept {
			t.Fatalf("flow %d: %v", i, v)
		}
		sp, _ := ports(p)
		if p.IP.Source.String() != "198.51.100.9" || sp < 20000 || sp > 20009 || got[sp] {
			t.Errorf("flow %d: %s", i, addrs(p))
		}
		got[sp] = true
		verify(t, p)
	}
	// The refused flow left no entry behind; a port frees when a flow ends.
	if f.ct.Len() != 10 {
		t.Errorf("%d entries, want 10", f.ct.Len())
	}
	f.ct.Expire(t0.Add(31e9))
	p := mk(seg{src: "192.168.1.99", dst: "203.0.113.5", proto: 17, sport: 5000, dport: 53}, "lan0", "wan0")
	if v := forward(f, p); v.Action != Accept {
		t.Errorf("after expiry: %v", v)
	}
}

func TestSNATAddressRange(t *testing.T) {
	f := router(t, "-t nat -A POSTROUTING -o wan0 -j SNAT --to-source 198.51.100.1-198.51.100.4")
	used := map[netip.Addr]bool{}
	for i := range 64 {
		cli := fmt.Sprintf("192.168.1.%d", i+1)
		p := mk(seg{src: cli, dst: "203.0.113.5", proto: 17, sport: 5000, dport: 53}, "lan0", "wan0")
		forward(f, p)
		a := p.IP.Source
		if !netip.MustParsePrefix("198.51.100.0/29").Contains(a) || a.As4()[3] < 1 || a.As4()[3] > 4 {
			t.Fatalf("source %v outside the range", a)
		}
		used[a] = true
		// The same client keeps its address.
		q := mk(seg{src: cli, dst: "203.0.113.6", proto: 17, sport: 5001, dport: 53}, "lan0", "wan0")
		forward(f, q)
		if q.IP.Source != a {
			t.Errorf("client %s got %v then %v", cli, a, q.IP.Source)
		}
	}
	if len(used) < 2 {
		t.Errorf("only %d addresses of the range used", len(used))
	}
}

// A device completing the checksum (CHECKSUM_PARTIAL) holds the
// pseudo-header sum in the field: NAT keeps it the new addresses' sum.
func TestNATPartialChecksum(t *testing.T) {
	f := router(t, "-t nat -A POSTROUTING -o wan0 -j MASQUERADE")
	p := mk(seg{src: "192.168.1.10", dst: "203.0.113.5", proto: 6, sport: 1, dport: 2, flags: flagSYN, data: 10}, "lan0", "wan0")
	l4 := p.IP.Payload
	binary.BigEndian.PutUint16(l4[16:], checksum.PseudoHeader(p.IP.Source, p.IP.Destination, 6, uint16(len(l4))))
	p.IP.Offload.NeedsChecksum = true
	forward(f, p)
	want := checksum.PseudoHeader(p.IP.Source, p.IP.Destination, 6, uint16(len(l4)))
	if got := binary.BigEndian.Uint16(l4[16:]); got != want && ^got != ^want {
		t.Errorf("partial checksum %#04x, want %#04x", got, want)
	}
}
