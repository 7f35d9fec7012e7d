package filter

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/ip"
)

// FuzzParseRule: no input panics the rule parser or the loader, and
// whatever parses lists (-S) into a spec that parses back to itself.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"-p tcp -s 192.168.1.0/24 -m tcp --dport 80 -j ACCEPT",
		"! -s 10.0.0.0/8 -i eth+ -p udp ! --sport 1:1023 -j DROP",
		"-p tcp --tcp-flags ALL SYN,FIN -m multiport --dports 1,2:3 -j REJECT --reject-with tcp-reset",
		"-m conntrack --ctstate NEW,INVALID -m limit --limit 1/day --limit-burst 9 -j LOG --log-prefix 'x y'",
		"-p tcp -j DNAT --to-destination [2001:db8::1]:1-2",
		"-p icmp --icmp-type 3/4 -j ACCEPT",
		"-j SNAT --to-source 10.0.0.1-10.0.0.9",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s)
		if err == nil {
			r2, err := ParseRule(r.String())
			if err != nil {
				t.Fatalf("%q lists as %q, which does not parse: %v", s, r.String(), err)
			}
			if r2.String() != r.String() {
				t.Fatalf("%q lists as %q, which lists as %q", s, r.String(), r2.String())
			}
		}
		fl := New(Config{})
		if fl.Load(strings.NewReader(s)) == nil {
			g := New(Config{})
			if err := g.Load(strings.NewReader(fl.SaveAll())); err != nil || g.SaveAll() != fl.SaveAll() {
				t.Fatalf("SaveAll of %q does not load back: %v", s, err)
			}
		}
	})
}

// fuzzFilter is a rule set touching every kind of match and target.
func fuzzFilter(t testing.TB) *Filter {
	f := New(Config{LocalAddr: func(string, bool) (netip.Addr, bool) { return netip.MustParseAddr("198.51.100.1"), true }})
	mustExec(t, f,
		"-N C", "-A C -p tcp --tcp-flags SYN,RST SYN -j RETURN", "-A C -j LOG",
		"-A INPUT -m conntrack --ctstate INVALID -j DROP",
		"-A INPUT -p tcp -m multiport --dports 1:100 -j C",
		"-A INPUT -p udp --dport 53 -j REJECT",
		"-A INPUT -p icmp --icmp-type 8 -m limit --limit 1/sec -j ACCEPT",
		"-A FORWARD -m state --state ESTABLISHED,RELATED -j ACCEPT",
		"-t nat -A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.0.0.2:8080",
		"-t nat -A PREROUTING -p udp -j REDIRECT --to-ports 5000-5010",
		"-t nat -A POSTROUTING -p udp -j SNAT --to-source 198.51.100.2:1000-1001",
		"-t nat -A POSTROUTING -j MASQUERADE")
	return f
}

// packetOf makes a Packet of arbitrary bytes: an IPv4 or IPv6 header
// when the bytes start with one, else a bare payload with the protocol
// and family taken from the first byte.
func packetOf(b []byte) *Packet {
	p := &ip.Packet{}
	switch {
	case len(b) >= 20 && b[0]>>4 == 4:
		p.Source, p.Destination = netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
		p.Protocol, p.Datagram = b[9], b
		hl := max(20, min(int(b[0]&15)*4, len(b)))
		p.Payload = b[hl:]
	case len(b) >= 40 && b[0]>>4 == 6:
		p.Source, p.Destination = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
		p.Protocol, p.Datagram, p.Payload = b[6], b, b[40:]
	case len(b) >= 1:
		p.Protocol = []uint8{6, 17, 1, 58, 47}[int(b[0])%5]
		if p.Protocol == 58 || b[0]&0x80 != 0 {
			p.Source, p.Destination = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
		} else {
			p.Source, p.Destination = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
		}
		p.Payload = b[1:]
		p.Offload.NeedsChecksum = b[0]&0x40 != 0
	default:
		p.Source, p.Destination = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	}
	return &Packet{IP: p, In: "eth0", Out: "eth1"}
}

// FuzzHook: arbitrary bytes through every hook of a rule set that uses
// every match and target, NAT included: no panic, and NAT never changes
// a packet's length.
func FuzzHook(f *testing.F) {
	f.Add(build(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: 6, sport: 1, dport: 80, flags: flagSYN, wscale: 3}))
	f.Add(build(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: 17, sport: 1, dport: 53, data: 4}))
	f.Add(build(seg{src: "2001:db8::1", dst: "2001:db8::2", proto: 58, icmpType: 128, id: 3}))
	q := build(seg{src: "10.0.0.2", dst: "10.0.0.1", proto: 17, sport: 53, dport: 1})
	f.Add(build(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: 1, icmpType: 3, quote: q}))
	f.Add([]byte{0x06, 0, 1, 0, 80})
	fl := fuzzFilter(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		n := len(b)
		for _, path := range [][]Hook{{Prerouting, Input}, {Prerouting, Forward, Postrouting}, {Output, Postrouting}} {
			c := append([]byte(nil), b...)
			p := packetOf(c)
			for _, h := range path {
				if fl.Hook(h, p, t0).Action != Accept {
					break
				}
			}
			if len(c) != n {
				t.Fatal("length changed")
			}
		}
	})
}

// FuzzConntrack drives one TCP flow (and ICMP errors about it) through
// conntrack with arbitrary segments, each 12 bytes of the input:
// direction and flags, sequence and acknowledgment deltas, window, data
// length. The table's bookkeeping stays consistent.
func FuzzConntrack(f *testing.F) {
	f.Add([]byte{0x02, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0x92, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0, 0})
	f.Add([]byte{0x02, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0x92, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0x10, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 10})
	f.Fuzz(conntrackStream)
}

func conntrackStream(t *testing.T, b []byte) {
	{
		fl := New(Config{Conntrack: ConntrackConfig{Max: 4}})
		ct := fl.ct
		var seq, ack [2]uint32
		now := t0
		for len(b) >= 12 {
			c := b[:12]
			b = b[12:]
			dir := int(c[0] >> 7)
			flags := c[0] & 0x3f
			seq[dir] += binary.BigEndian.Uint32(c[1:5])
			ack[dir] += binary.BigEndian.Uint32(c[5:9])
			win := binary.BigEndian.Uint16(c[9:11])
			data := int(c[11] & 0x3f)
			now = now.Add(timeFrom(c[11] >> 6))
			src, dst, sp, dp := "10.0.0.1", "10.0.0.2", uint16(1000), uint16(80)
			if dir == 1 {
				src, dst, sp, dp = dst, src, dp, sp
			}
			s := seg{src: src, dst: dst, proto: 6, sport: sp, dport: dp, flags: flags, seq: seq[dir], ack: ack[dir], win: win, data: data, wscale: int(c[10] & 0x0f)}
			if c[11]&0x3f == 0x3f {
				// An ICMP error quoting this segment.
				s = seg{src: dst, dst: src, proto: 1, icmpType: 3, quote: build(s)[:28]}
			}
			p := pkt(build(s), "", "")
			fl.Hook(Prerouting, p, now)
			if p.ctst == 0 {
				t.Fatal("no conntrack state")
			}
		}
		ct.mu.Lock()
		defer ct.mu.Unlock()
		n := 0
		for x := ct.head; x != nil; x = x.next {
			n++
			if x.dead || ct.get(x.tuple[0]) != x || ct.get(x.tuple[1]) != x {
				t.Fatal("listed entry not in the map")
			}
		}
		if n != ct.n || n > ct.cfg.Max || ct.tuples() > 2*n {
			t.Fatalf("%d listed, n %d, %d tuples", n, ct.n, ct.tuples())
		}
	}
}

// timeFrom is a time step of 0, 40, 80 or 120 s.
func timeFrom(b byte) time.Duration { return time.Duration(b) * 40 * time.Second }
