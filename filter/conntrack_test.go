package filter

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// flow drives packets of one TCP connection through a filter, client
// (original direction) at Output then Postrouting, server replies at
// Prerouting then Input, as a host's stack would.
type flow struct {
	t      testing.TB
	f      *Filter
	cli    string
	srv    string
	cp, sp uint16
	now    time.Time
}

func (fl *flow) send(flags uint8, seq, ack uint32, win uint16, data int) (*Packet, Verdict) {
	p := mk(seg{src: fl.cli, dst: fl.srv, proto: 6, sport: fl.cp, dport: fl.sp, flags: flags, seq: seq, ack: ack, win: win, data: data, wscale: 7}, "", "eth0")
	v := fl.f.Hook(Output, p, fl.now)
	if v.Action == Accept {
		v = fl.f.Hook(Postrouting, p, fl.now)
	}
	return p, v
}

func (fl *flow) recv(flags uint8, seq, ack uint32, win uint16, data int) (*Packet, Verdict) {
	p := mk(seg{src: fl.srv, dst: fl.cli, proto: 6, sport: fl.sp, dport: fl.cp, flags: flags, seq: seq, ack: ack, win: win, data: data, wscale: 7}, "eth0", "")
	v := fl.f.Hook(Prerouting, p, fl.now)
	if v.Action == Accept {
		v = fl.f.Hook(Input, p, fl.now)
	}
	return p, v
}

func (fl *flow) conn() *conn {
	t := Tuple{Src: netip.MustParseAddr(fl.cli), Dst: netip.MustParseAddr(fl.srv), SrcPort: fl.cp, DstPort: fl.sp, Proto: 6}
	c, _ := fl.f.ct.lookup(t, fl.now)
	if c != nil {
		c.mu.Unlock()
	}
	return c
}

func (fl *flow) expect(p *Packet, st State, tcp TCPState) {
	fl.t.Helper()
	if p.ctst != st {
		fl.t.Errorf("ctstate %v, want %v", stateString(p.ctst), stateString(st))
	}
	c := fl.conn()
	if c == nil {
		fl.t.Fatalf("no conntrack entry")
	}
	if c.tcp != tcp {
		fl.t.Errorf("TCP state %v, want %v", c.tcp, tcp)
	}
}

func stateString(s State) string {
	var n []string
	for _, x := range stateNames {
		if s&x.s != 0 {
			n = append(n, x.name)
		}
	}
	return strings.Join(n, ",")
}

func newFlow(t *testing.T, f *Filter) *flow {
	return &flow{t: t, f: f, cli: "10.0.0.1", srv: "203.0.113.5", cp: 40000, sp: 443, now: t0}
}

func TestConntrackTCPHandshakeAndClose(t *testing.T) {
	f := New(Config{})
	fl := newFlow(t, f)
	p, _ := fl.send(flagSYN, 1000, 0, 65535, 0)
	fl.expect(p, StateNew, TCPSynSent)
	p, _ = fl.send(flagSYN, 1000, 0, 65535, 0) // retransmitted
	fl.expect(p, StateNew, TCPSynSent)
	p, _ = fl.recv(flagSYN|flagACK, 5000, 1001, 65535, 0)
	fl.expect(p, StateEstablished, TCPSynRecv)
	p, _ = fl.send(flagACK, 1001, 5001, 512, 0)
	fl.expect(p, StateEstablished, TCPEstablished)
	if !fl.conn().assured {
		t.Error("not assured after the handshake")
	}
	p, _ = fl.send(flagACK|flagPSH, 1001, 5001, 512, 100)
	fl.expect(p, StateEstablished, TCPEstablished)
	p, _ = fl.recv(flagACK, 5001, 1101, 512, 1000)
	fl.expect(p, StateEstablished, TCPEstablished)
	// The client closes first (RFC 9293 §3.6, Figure 12).
	p, _ = fl.send(flagFIN|flagACK, 1101, 6001, 512, 0)
	fl.expect(p, StateEstablished, TCPFinWait)
	p, _ = fl.recv(flagFIN|flagACK, 6001, 1102, 512, 0)
	fl.expect(p, StateEstablished, TCPLastAck)
	p, _ = fl.send(flagACK, 1102, 6002, 512, 0)
	fl.expect(p, StateEstablished, TCPTimeWait)
	// TIME_WAIT lasts nf_conntrack_tcp_timeout_time_wait, 120 s.
	fl.now = t0.Add(119 * time.Second)
	if fl.conn() == nil {
		t.Fatal("TIME_WAIT entry gone before 120 s")
	}
	fl.now = t0.Add(239 * time.Second)
	if fl.conn() != nil {
		t.Error("TIME_WAIT entry still there after 120 s")
	}
	// A new SYN on the same tuple opens a new connection.
	p, _ = fl.send(flagSYN, 90000, 0, 65535, 0)
	fl.expect(p, StateNew, TCPSynSent)
}

func TestConntrackTCPServerCloseAndReset(t *testing.T) {
	f := New(Config{})
	fl := newFlow(t, f)
	fl.send(flagSYN, 1000, 0, 65535, 0)
	fl.recv(flagSYN|flagACK, 5000, 1001, 65535, 0)
	fl.send(flagACK, 1001, 5001, 512, 0)
	p, _ := fl.recv(flagFIN|flagACK, 5001, 1001, 512, 0)
	fl.expect(p, StateEstablished, TCPCloseWait)
	p, _ = fl.send(flagRST|flagACK, 1001, 5002, 0, 0)
	fl.expect(p, StateEstablished, TCPClose)
	fl.now = t0.Add(10 * time.Second) // nf_conntrack_tcp_timeout_close
	if fl.conn() != nil {
		t.Error("CLOSE entry outlived 10 s")
	}
}

func TestConntrackTCPOutOfWindowInvalid(t *testing.T) {
	f := New(Config{})
	mustExec(t, f, "-A INPUT -m conntrack --ctstate INVALID -j DROP", "-A OUTPUT -m conntrack --ctstate INVALID -j DROP")
	fl := newFlow(t, f)
	fl.send(flagSYN, 1000, 0, 65535, 0)
	fl.recv(flagSYN|flagACK, 5000, 1001, 65535, 0)
	fl.send(flagACK, 1001, 5001, 512, 0) // window 512<<7 = 65536
	tests := []struct {
		name string
		out  bool
		seq  uint32
		ack  uint32
		data int
		want State
	}{
		{"in window", true, 1001, 5001, 100, StateEstablished},
		{"beyond the receiver's window (I)", true, 1001 + 70000, 5001, 100, StateInvalid},
		{"older than a window (II)", true, 1001 + (1<<32 - 200000), 5001, 100, StateInvalid},
		{"acks unsent data (III)", false, 5001, 1101 + 5000, 0, StateInvalid},
		{"ack far behind (IV)", false, 5001, 1101 + (1<<32 - 100000), 0, StateInvalid},
		{"reply in window", false, 5001, 1101, 10, StateEstablished},
	}
	for _, tt := range tests {
		var p *Packet
		var v Verdict
		if tt.out {
			p, v = fl.send(flagACK, tt.seq, tt.ack, 512, tt.data)
		} else {
			p, v = fl.recv(flagACK, tt.seq, tt.ack, 512, tt.data)
		}
		if p.ctst != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, stateString(p.ctst), stateString(tt.want))
		}
		if (v.Action == Drop) != (tt.want == StateInvalid) {
			t.Errorf("%s: verdict %v", tt.name, v)
		}
	}
	if fl.conn().tcp != TCPEstablished {
		t.Errorf("invalid segments changed the state to %v", fl.conn().tcp)
	}
	if f.ct.Stats().Invalid != 4 {
		t.Errorf("Invalid = %d, want 4", f.ct.Stats().Invalid)
	}
	// Out of place: a SYN,ACK in the original direction, data before the
	// handshake completes.
	fl2 := &flow{t: t, f: f, cli: "10.0.0.1", srv: "203.0.113.6", cp: 1, sp: 2, now: t0}
	fl2.send(flagSYN, 1, 0, 1000, 0)
	if p, _ := fl2.recv(flagACK, 77, 2, 1000, 10); p.ctst != StateInvalid {
		t.Errorf("data before the SYN,ACK: %s", stateString(p.ctst))
	}
	if p, _ := fl2.recv(flagSYN|flagACK, 77, 99, 1000, 0); p.ctst != StateInvalid {
		t.Errorf("SYN,ACK acking the wrong sequence: %s", stateString(p.ctst))
	}
}

func TestConntrackTimeouts(t *testing.T) {
	f := New(Config{})
	ct := f.ct
	udp := func(src, dst string, sp, dp uint16, now time.Time) *Packet {
		p := mk(seg{src: src, dst: dst, proto: 17, sport: sp, dport: dp}, "", "")
		f.Hook(Prerouting, p, now)
		return p
	}
	udp("10.0.0.1", "10.0.0.2", 5000, 53, t0)
	if ct.Len() != 1 {
		t.Fatal("no entry")
	}
	if ct.Expire(t0.Add(29*time.Second)) != 0 || ct.Expire(t0.Add(30*time.Second)) != 1 {
		t.Error("unreplied UDP does not last exactly 30 s")
	}
	udp("10.0.0.1", "10.0.0.2", 5000, 53, t0)
	p := udp("10.0.0.2", "10.0.0.1", 53, 5000, t0.Add(time.Second))
	if p.ctst != StateEstablished {
		t.Errorf("UDP reply: %s", stateString(p.ctst))
	}
	udp("10.0.0.1", "10.0.0.2", 5000, 53, t0.Add(2*time.Second))
	if ct.Expire(t0.Add(121*time.Second)) != 0 || ct.Expire(t0.Add(122*time.Second)) != 1 {
		t.Error("UDP stream does not last 120 s after its last packet")
	}
	// ICMP echo: 30 s; a reply without a request is INVALID.
	e := mk(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: 1, icmpType: 8, id: 9}, "", "")
	f.Hook(Output, e, t0)
	r := mk(seg{src: "10.0.0.2", dst: "10.0.0.1", proto: 1, icmpType: 0, id: 9}, "", "")
	f.Hook(Prerouting, r, t0)
	if e.ctst != StateNew || r.ctst != StateEstablished {
		t.Errorf("echo %s, reply %s", stateString(e.ctst), stateString(r.ctst))
	}
	stray := mk(seg{src: "10.0.0.2", dst: "10.0.0.1", proto: 1, icmpType: 0, id: 10}, "", "")
	if f.Hook(Prerouting, stray, t0); stray.ctst != StateInvalid {
		t.Errorf("stray echo reply: %s", stateString(stray.ctst))
	}
	if ct.Expire(t0.Add(29*time.Second)) != 0 || ct.Expire(t0.Add(30*time.Second)) != 1 {
		t.Error("ICMP echo does not last 30 s")
	}
	// An established TCP connection lasts 5 days idle.
	fl := newFlow(t, f)
	fl.send(flagSYN, 1000, 0, 65535, 0)
	fl.recv(flagSYN|flagACK, 5000, 1001, 65535, 0)
	fl.send(flagACK, 1001, 5001, 512, 0)
	if ct.Expire(t0.Add(431999*time.Second)) != 0 || ct.Expire(t0.Add(432000*time.Second)) != 1 {
		t.Error("established TCP does not last 432000 s")
	}
	// Neighbour discovery is untracked.
	ns := mk(seg{src: "fe80::1", dst: "ff02::1:ff00:2", proto: 58, icmpType: 135}, "", "")
	if f.Hook(Prerouting, ns, t0); ns.ctst != StateUntracked || ct.Len() != 0 {
		t.Errorf("NDP: %s, %d entries", stateString(ns.ctst), ct.Len())
	}
}

func TestConntrackRelatedICMPError(t *testing.T) {
	f := New(Config{})
	mustExec(t, f, "-P INPUT DROP", "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT")
	out := mk(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: 17, sport: 5000, dport: 53, data: 20}, "", "eth0")
	f.Hook(Output, out, t0)
	quote := build(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: 17, sport: 5000, dport: 53, data: 20})
	icmp := mk(seg{src: "10.0.0.2", dst: "10.0.0.1", proto: 1, icmpType: 3, icmpCode: 3, quote: quote[:28]}, "eth0", "")
	f.Hook(Prerouting, icmp, t0)
	if icmp.ctst != StateRelated || f.Hook(Input, icmp, t0).Action != Accept {
		t.Errorf("port unreachable about a tracked flow: %s", stateString(icmp.ctst))
	}
	// From a router on the path: still RELATED.
	icmp = mk(seg{src: "192.0.2.1", dst: "10.0.0.1", proto: 1, icmpType: 11, quote: quote[:28]}, "eth0", "")
	if f.Hook(Prerouting, icmp, t0); icmp.ctst != StateRelated {
		t.Errorf("time exceeded from a router: %s", stateString(icmp.ctst))
	}
	other := build(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: 17, sport: 5001, dport: 53})
	icmp = mk(seg{src: "10.0.0.2", dst: "10.0.0.1", proto: 1, icmpType: 3, icmpCode: 3, quote: other[:28]}, "eth0", "")
	if f.Hook(Prerouting, icmp, t0); icmp.ctst != StateInvalid || f.Hook(Input, icmp, t0).Action != Drop {
		t.Errorf("error about an unknown flow: %s", stateString(icmp.ctst))
	}
	icmp = mk(seg{src: "10.0.0.2", dst: "10.0.0.1", proto: 1, icmpType: 3, icmpCode: 3, quote: quote[:24]}, "eth0", "")
	if f.Hook(Prerouting, icmp, t0); icmp.ctst != StateInvalid {
		t.Errorf("error with a truncated quote: %s", stateString(icmp.ctst))
	}
	// IPv6: packet too big about a TCP flow.
	fl := &flow{t: t, f: f, cli: "2001:db8::1", srv: "2001:db8:1::5", cp: 333, sp: 80, now: t0}
	fl.send(flagSYN, 1, 0, 1000, 0)
	q6 := build(seg{src: "2001:db8::1", dst: "2001:db8:1::5", proto: 6, sport: 333, dport: 80, flags: flagACK, wscale: -1})
	e6 := mk(seg{src: "2001:db8:ffff::1", dst: "2001:db8::1", proto: 58, icmpType: 2, quote: q6[:48]}, "eth0", "")
	if f.Hook(Prerouting, e6, t0); e6.ctst != StateRelated {
		t.Errorf("ICMPv6 packet too big: %s", stateString(e6.ctst))
	}
}

// TestStatelessVersusStateful is the network ACL versus security group
// of the issue: the same rules with and without --ctstate. A host allows
// inbound SSH only; replies to its own outbound connections are blocked
// by the stateless set and let in by the stateful one.
func TestStatelessVersusStateful(t *testing.T) {
	base := []string{"-P INPUT DROP", "-A INPUT -p tcp --dport 22 -j ACCEPT"}
	stateless := New(Config{})
	mustExec(t, stateless, base...)
	stateful := New(Config{})
	mustExec(t, stateful, append(base, "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT")...)
	for _, tc := range []struct {
		name string
		f    *Filter
		want Action
	}{{"stateless", stateless, Drop}, {"stateful", stateful, Accept}} {
		fl := newFlow(t, tc.f)
		if _, v := fl.send(flagSYN, 1000, 0, 65535, 0); v.Action != Accept {
			t.Fatalf("%s: outbound SYN %v", tc.name, v)
		}
		if _, v := fl.recv(flagSYN|flagACK, 5000, 1001, 65535, 0); v.Action != tc.want {
			t.Errorf("%s: the reply's SYN,ACK: %v, want %v", tc.name, v.Action, tc.want)
		}
		fl.send(flagACK, 1001, 5001, 512, 0)
		if _, v := fl.recv(flagACK, 5001, 1001, 512, 100); v.Action != tc.want {
			t.Errorf("%s: reply data: %v, want %v", tc.name, v.Action, tc.want)
		}
		// An unsolicited segment to the same port is dropped by both.
		p := mk(seg{src: "198.51.100.7", dst: "10.0.0.1", proto: 6, sport: 443, dport: 40001, flags: flagSYN | flagACK, seq: 1, ack: 1, win: 100}, "eth0", "")
		tc.f.Hook(Prerouting, p, t0)
		if v := tc.f.Hook(Input, p, t0); v.Action != Drop {
			t.Errorf("%s: unsolicited SYN,ACK accepted", tc.name)
		}
		// Inbound SSH works for both.
		s := mk(seg{src: "198.51.100.7", dst: "10.0.0.1", proto: 6, sport: 5555, dport: 22, flags: flagSYN, win: 100}, "eth0", "")
		tc.f.Hook(Prerouting, s, t0)
		if v := tc.f.Hook(Input, s, t0); v.Action != Accept {
			t.Errorf("%s: SSH refused", tc.name)
		}
	}
}

func TestConntrackBoundedUnderFlood(t *testing.T) {
	f := New(Config{Conntrack: ConntrackConfig{Max: 100}})
	ct := f.ct
	// 20 assured connections first.
	for i := range 20 {
		fl := newFlow(t, f)
		fl.cp = uint16(10000 + i)
		fl.send(flagSYN, 1000, 0, 65535, 0)
		fl.recv(flagSYN|flagACK, 5000, 1001, 65535, 0)
		fl.send(flagACK, 1001, 5001, 512, 0)
	}
	// Then a flood of spoofed SYNs, each a new flow.
	for i := range 5000 {
		src := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		p := mk(seg{src: src.String(), dst: "10.0.0.1", proto: 6, sport: uint16(i), dport: 80, flags: flagSYN, win: 100}, "eth0", "")
		f.Hook(Prerouting, p, t0)
	}
	st := ct.Stats()
	if ct.Len() != 100 || ct.tuples() != 200 {
		t.Errorf("table holds %d entries (%d tuples), want 100", ct.Len(), ct.tuples())
	}
	if st.EarlyDrop != 5000-80 {
		t.Errorf("EarlyDrop = %d, want %d", st.EarlyDrop, 5000-80)
	}
	assured := 0
	for x := ct.head; x != nil; x = x.next {
		if x.assured {
			assured++
		}
	}
	if assured != 20 {
		t.Errorf("%d assured entries survived, want 20", assured)
	}
	// A table full of assured entries refuses new ones: a counted drop.
	g := New(Config{Conntrack: ConntrackConfig{Max: 5}})
	for i := range 5 {
		fl := newFlow(t, g)
		fl.cp = uint16(20000 + i)
		fl.send(flagSYN, 1000, 0, 65535, 0)
		fl.recv(flagSYN|flagACK, 5000, 1001, 65535, 0)
		fl.send(flagACK, 1001, 5001, 512, 0)
	}
	p := mk(seg{src: "198.18.0.1", dst: "10.0.0.1", proto: 6, sport: 1, dport: 80, flags: flagSYN, win: 100}, "eth0", "")
	g.Hook(Prerouting, p, t0)
	if p.ctst != StateInvalid || g.ct.Stats().InsertFailed != 1 || g.Stats().DropConntrackFull.Load() != 1 {
		t.Errorf("full of assured: %s, InsertFailed %d", stateString(p.ctst), g.ct.Stats().InsertFailed)
	}
	// Expired entries make room before assured ones would be needed.
	p = mk(seg{src: "198.18.0.1", dst: "10.0.0.1", proto: 6, sport: 1, dport: 80, flags: flagSYN, win: 100}, "eth0", "")
	g.Hook(Prerouting, p, t0.Add(432001*time.Second))
	if p.ctst != StateNew {
		t.Errorf("after expiry: %s", stateString(p.ctst))
	}
}

func TestConntrackDroppedNewIsForgotten(t *testing.T) {
	f := New(Config{})
	mustExec(t, f, "-P INPUT DROP")
	for i := range 50 {
		p := mk(seg{src: "198.18.0.1", dst: "10.0.0.1", proto: 17, sport: uint16(i), dport: 80}, "eth0", "")
		f.Hook(Prerouting, p, t0)
		f.Hook(Input, p, t0)
	}
	if f.ct.Len() != 0 {
		t.Errorf("%d entries left by dropped flows", f.ct.Len())
	}
}

func TestConntrackList(t *testing.T) {
	f := New(Config{})
	fl := newFlow(t, f)
	fl.send(flagSYN, 1000, 0, 65535, 0)
	fl.recv(flagSYN|flagACK, 5000, 1001, 65535, 0)
	fl.send(flagACK, 1001, 5001, 512, 0)
	f.Hook(Output, mk(seg{src: "10.0.0.1", dst: "10.0.0.53", proto: 17, sport: 7777, dport: 53}, "", ""), t0)
	f.Hook(Output, mk(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: 1, icmpType: 8, id: 42}, "", ""), t0)
	var b strings.Builder
	if err := f.Conntrack().List(&b, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	want := `icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=42 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=42 mark=0 use=1
tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=203.0.113.5 sport=40000 dport=443 src=203.0.113.5 dst=10.0.0.1 sport=443 dport=40000 [ASSURED] mark=0 use=1
udp      17 29 src=10.0.0.1 dst=10.0.0.53 sport=7777 dport=53 [UNREPLIED] src=10.0.0.53 dst=10.0.0.1 sport=53 dport=7777 mark=0 use=1
`
	if b.String() != want {
		t.Errorf("List:\n%s\nwant:\n%s", b.String(), want)
	}
	f.Conntrack().Flush()
	if f.Conntrack().Len() != 0 {
		t.Error("Flush left entries")
	}
	_ = fmt.Sprint()
}

// A flow first seen mid-stream is picked up as ESTABLISHED (Linux's
// nf_conntrack_tcp_loose=1), and its unknown window scale is not held
// against it.
func TestConntrackPickup(t *testing.T) {
	f := New(Config{})
	fl := newFlow(t, f)
	p, _ := fl.send(flagACK, 1000, 5000, 100, 50)
	fl.expect(p, StateNew, TCPEstablished)
	p, _ = fl.recv(flagACK, 5000, 1050, 100, 1000)
	fl.expect(p, StateEstablished, TCPEstablished)
	// Far beyond the unscaled window: allowed, the scale being unknown.
	p, _ = fl.send(flagACK, 1050+100000, 6000, 100, 50)
	fl.expect(p, StateEstablished, TCPEstablished)
	// A bare RST or FIN does not start tracking.
	q := mk(seg{src: "10.0.0.7", dst: "10.0.0.8", proto: 6, sport: 1, dport: 2, flags: flagRST}, "", "")
	if f.Hook(Prerouting, q, t0); q.ctst != StateInvalid {
		t.Errorf("bare RST: %s", stateString(q.ctst))
	}
}
