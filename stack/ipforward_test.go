package stack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/filter"
	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vlan"
)

// The routed setup: host a (10.1.0.2) on one link, host b (10.2.0.2) on
// another, and the router r between them (10.1.0.1 and 10.2.0.1), each
// host's default gateway.
var (
	rtA  = netip.MustParsePrefix("10.1.0.2/24")
	rtR1 = netip.MustParsePrefix("10.1.0.1/24")
	rtR2 = netip.MustParsePrefix("10.2.0.1/24")
	rtB  = netip.MustParsePrefix("10.2.0.2/24")

	rt6A  = netip.MustParsePrefix("fd01::2/64")
	rt6R1 = netip.MustParsePrefix("fd01::1/64")
	rt6R2 = netip.MustParsePrefix("fd02::1/64")
	rt6B  = netip.MustParsePrefix("fd02::2/64")
)

// routed is the routed setup; ea and eb are the hosts' ends of their
// links when the test runs the host itself (raw).
type routed struct {
	a, r, b *Stack
	ea, eb  *link.PipeEnd // the hosts' ends (the stacks' NICs, or raw)
}

// routedOpts configures newRouted.
type routedOpts struct {
	r     Options // the router's (Forwarding is set unless noForward)
	a     Options // host a's
	noFwd bool
	mtuB  int  // the MTU of b's link; 0 means 1500
	mtuR2 int  // the MTU the router's NIC on b's link has, if not 0
	rawA  bool // no stack a: the test writes and reads ea itself
	rawB  bool // no stack b
	v6    bool // IPv6 addresses beside the IPv4 ones (rt6A...), DAD off
	// oflA and oflB give a's and b's links a virtio device's offloads.
	oflA, oflB link.Offloads
	filter     string
}

func newRouted(t testing.TB, o routedOpts) *routed {
	t.Helper()
	ra, rb := link.MAC{2, 0, 0, 0, 1, 1}, link.MAC{2, 0, 0, 0, 2, 1}
	ea, er1 := link.NewPipe(link.PipeOptions{QueueLen: 1024, MACA: link.MAC{2, 0, 0, 0, 1, 2}, MACB: ra, Offloads: o.oflA})
	er2, eb := link.NewPipe(link.PipeOptions{QueueLen: 1024, MTU: o.mtuB, MACA: rb, MACB: link.MAC{2, 0, 0, 0, 2, 2}, Offloads: o.oflB})
	rt := &routed{ea: ea, eb: eb}
	o.r.Forwarding = !o.noFwd
	if o.v6 {
		o.r.DADTransmits, o.a.DADTransmits = -1, -1
	}
	rt.r = New(o.r)
	t.Cleanup(func() { rt.r.Close() })
	if _, err := rt.r.AddNIC(er1, rtR1); err != nil {
		t.Fatal(err)
	}
	var r2 link.Endpoint = er2
	if o.mtuR2 != 0 {
		r2 = mtuEndpoint{er2, o.mtuR2}
	}
	if _, err := rt.r.AddNIC(r2, rtR2); err != nil {
		t.Fatal(err)
	}
	if o.v6 {
		for i, p := range []netip.Prefix{rt6R1, rt6R2} {
			if err := rt.r.AddAddress(NICID(i+1), p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if o.filter != "" {
		f := filter.New(filter.Config{LocalAddr: rt.r.LocalAddr})
		if err := f.Load(strings.NewReader(o.filter)); err != nil {
			t.Fatal(err)
		}
		rt.r.SetFilter(f)
	}
	host := func(ep link.Endpoint, addr netip.Prefix, gw netip.Addr, opts Options) *Stack {
		s := New(opts)
		t.Cleanup(func() { s.Close() })
		if _, err := s.AddNIC(ep, addr); err != nil {
			t.Fatal(err)
		}
		if err := s.AddRoute(ip.Route{Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: gw}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	host6 := func(s *Stack, addr netip.Prefix, gw netip.Addr) {
		if !o.v6 {
			return
		}
		if err := s.AddAddress(1, addr); err != nil {
			t.Fatal(err)
		}
		if err := s.AddRoute(ip.Route{Destination: netip.MustParsePrefix("::/0"), Gateway: gw, NIC: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if !o.rawA {
		rt.a = host(ea, rtA, rtR1.Addr(), o.a)
		host6(rt.a, rt6A, rt6R1.Addr())
	}
	if !o.rawB {
		rt.b = host(eb, rtB, rtR2.Addr(), Options{DADTransmits: -1})
		host6(rt.b, rt6B, rt6R2.Addr())
	}
	return rt
}

// mtuEndpoint is an Endpoint with a smaller MTU than its link's.
type mtuEndpoint struct {
	link.Endpoint
	mtu int
}

func (e mtuEndpoint) MTU() int { return e.mtu }

// pingWithin pings dst from s and reports whether a reply came within d.
func pingWithin(s *Stack, dst netip.Addr, size int, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, err := s.Ping(ctx, dst, size)
	return err
}

func TestForwardPingAndTCP(t *testing.T) {
	rt := newRouted(t, routedOpts{})
	if err := pingWithin(rt.a, rtB.Addr(), 56, 5*time.Second); err != nil {
		t.Fatalf("ping through the router: %v", err)
	}
	// The router's far address answers from the near side (a router takes
	// datagrams for any of its addresses).
	if err := pingWithin(rt.a, rtR2.Addr(), 56, 5*time.Second); err != nil {
		t.Fatalf("ping of the router's other address: %v", err)
	}
	// 1 MB echoed through the router, both ways, checked by SHA-256.
	l, err := rt.b.ListenTCP(netip.AddrPortFrom(rtB.Addr(), 7))
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(l)
	defer func() { l.Close(); wait() }()
	c := dial(t, rt.a, netip.AddrPortFrom(rtB.Addr(), 7))
	defer c.Close()
	if got := c.RemoteAddr().String(); got != "10.2.0.2:7" {
		t.Fatalf("remote %s", got)
	}
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	go c.Write(data)
	h := sha256.New()
	if _, err := io.CopyN(h, c, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("the echo through the router differs")
	}
	st := rt.r.Stats()
	// Segments a reader's GRO merged are forwarded as one super-segment
	// and cut on the way out, so Forwarded counts fewer than the
	// segments.
	if st.IPv4.Forwarded < 100 {
		t.Fatalf("Forwarded = %d, want the segments of 2 MB", st.IPv4.Forwarded)
	}
	if st.IPv4.DropNotForUs != 0 || st.IPv4.ForwardNoRoute != 0 {
		t.Fatalf("router drops: %v", st.Lines())
	}
}

func TestForwardOffByDefault(t *testing.T) {
	rt := newRouted(t, routedOpts{noFwd: true})
	if err := pingWithin(rt.a, rtB.Addr(), 56, 300*time.Millisecond); err == nil {
		t.Fatal("a host forwarded a ping")
	}
	st := rt.r.Stats()
	if st.IPv4.DropNotForUs == 0 || st.IPv4.Forwarded != 0 {
		t.Fatalf("DropNotForUs %d Forwarded %d", st.IPv4.DropNotForUs, st.IPv4.Forwarded)
	}
}

// TestForwardTTLExceeded: a datagram whose TTL would reach 0 is answered
// with time exceeded (RFC 1812 §5.3.1), from the router's address on a's
// link, and a TTL of 2 goes through with 1 left.
func TestForwardTTLExceeded(t *testing.T) {
	rt := newRouted(t, routedOpts{a: Options{TTL: 1}})
	if err := pingWithin(rt.a, rtB.Addr(), 8, 300*time.Millisecond); err == nil {
		t.Fatal("a TTL-1 ping went through")
	}
	waitFor(t, "time exceeded at a", func() bool { return rt.a.Stats().ICMP.ErrorsIn == 1 })
	st := rt.r.Stats()
	if st.IPv4.ForwardTimeExceeded != 1 || st.IPv4.Forwarded != 0 || st.ICMP.ErrorsOut != 1 {
		t.Fatalf("router: %v", st.Lines())
	}
}

// TestForwardRaw drives the router with frames written and read by the
// test: the TTL decremented with a checksum that verifies (RFC 1624), the
// MACs rewritten, nothing allocated per datagram, and the ICMP errors'
// bytes: time exceeded, net unreachable, fragmentation needed with the
// next-hop MTU, and no error about an ICMP error.
func TestForwardRaw(t *testing.T) {
	rt := newRouted(t, routedOpts{rawA: true, rawB: true, mtuB: 1000})
	ra := reader(t, rt.ea)
	macR1, macA := link.MAC{2, 0, 0, 0, 1, 1}, rt.ea.HardwareAddr()
	frame := func(dst netip.Addr, ttl uint8, df bool, size int) []byte {
		f := make([]byte, link.EthernetHeaderLen+ipv4.HeaderLen+8+size)
		link.PutEthernetHeader(f, macR1, macA, link.EtherTypeIPv4)
		ipv4.PutHeader(f[link.EthernetHeaderLen:], &ipv4.Fields{TotalLength: uint16(len(f) - link.EthernetHeaderLen),
			TTL: ttl, Protocol: ip.ProtocolUDP, Source: rtA.Addr(), Destination: dst, DontFragment: df, ID: 77})
		u := f[link.EthernetHeaderLen+ipv4.HeaderLen:]
		binary.BigEndian.PutUint16(u[0:], 1000)
		binary.BigEndian.PutUint16(u[2:], 2000)
		binary.BigEndian.PutUint16(u[4:], uint16(8+size))
		return f
	}
	// The router asks b's link for 10.2.0.2: answer, then the datagram.
	if err := rt.ea.WriteFrame(frame(rtB.Addr(), 64, false, 100)); err != nil {
		t.Fatal(err)
	}
	bbuf := make([]byte, 2048)
	readB := func() []byte {
		for {
			n, err := rt.eb.ReadFrame(bbuf)
			if err != nil {
				t.Fatal(err)
			}
			f := link.Ethernet(bbuf[:n])
			switch f.Type() {
			case link.EtherTypeARP:
				answerARP(t, rt.eb, f)
			case link.EtherTypeIPv4:
				return bbuf[:n]
			}
		}
	}
	got := readB()
	eth, _ := link.ParseEthernet(got)
	h, err := ipv4.ParseHeader(eth.Payload())
	if err != nil {
		t.Fatalf("forwarded header: %v", err)
	}
	if h.TTL() != 63 || h.Source() != rtA.Addr() || h.Destination() != rtB.Addr() || eth.Source() != (link.MAC{2, 0, 0, 0, 2, 1}) || eth.Destination() != rt.eb.HardwareAddr() {
		t.Fatalf("forwarded: ttl %d %v -> %v, MACs %v -> %v", h.TTL(), h.Source(), h.Destination(), eth.Source(), eth.Destination())
	}
	// Every TTL: the incremental update matches a checksum computed anew.
	for ttl := 2; ttl <= 255; ttl++ {
		f := frame(rtB.Addr(), uint8(ttl), false, 10)
		rt.ea.WriteFrame(f)
		g := readB()
		hdr := g[link.EthernetHeaderLen : link.EthernetHeaderLen+ipv4.HeaderLen]
		if hdr[8] != uint8(ttl-1) || checksum.Sum(hdr, 0) != 0xffff {
			t.Fatalf("TTL %d: forwarded with TTL %d and a checksum that does not verify", ttl, hdr[8])
		}
	}
	f := frame(rtB.Addr(), 64, false, 100)
	if a := testing.AllocsPerRun(200, func() {
		rt.ea.WriteFrame(f)
		readB()
	}); a != 0 {
		t.Fatalf("%v allocations per forwarded datagram", a)
	}
	// Fragmented to b's MTU of 1000 (no DF): 1400 bytes of UDP.
	rt.ea.WriteFrame(frame(rtB.Addr(), 64, false, 1400))
	total := 0
	for total < 1408 {
		g := readB()
		h, err := ipv4.ParseHeader(g[link.EthernetHeaderLen:])
		if err != nil || len(h) > 1000 || h.ID() != 77 || h.TTL() != 63 {
			t.Fatalf("fragment: %v len %d id %d ttl %d", err, len(h), h.ID(), h.TTL())
		}
		total += len(h.Payload())
	}

	expectICMP := func(what string, typ, code uint8, word uint32, quotedTTL uint8) {
		t.Helper()
		for {
			e := nextFrame(t, ra)
			if e.Type() != link.EtherTypeIPv4 {
				if e.Type() == link.EtherTypeARP {
					answerARP(t, rt.ea, e)
				}
				continue
			}
			h, err := ipv4.ParseHeader(e.Payload())
			if err != nil || h.Protocol() != ip.ProtocolICMP {
				t.Fatalf("%s: %v proto %d", what, err, h.Protocol())
			}
			m, err := ipv4.ParseICMP(h.Payload())
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			q, _ := ipv4.ParseQuote(m.Payload())
			if h.Source() != rtR1.Addr() || h.Destination() != rtA.Addr() || m.Type() != typ || m.Code() != code || m.RestOfHeader() != word || q.TTL() != quotedTTL || q.ID() != 77 {
				t.Fatalf("%s: %v -> %v type %d code %d word %#x quoted TTL %d", what, h.Source(), h.Destination(), m.Type(), m.Code(), m.RestOfHeader(), q.TTL())
			}
			return
		}
	}
	rt.ea.WriteFrame(frame(rtB.Addr(), 1, false, 10))
	expectICMP("time exceeded", ipv4.TypeTimeExceeded, ipv4.CodeTTLExceeded, 0, 1)
	rt.ea.WriteFrame(frame(netip.MustParseAddr("192.0.2.1"), 64, false, 10))
	expectICMP("no route", ipv4.TypeDestinationUnreachable, ipv4.CodeNetUnreachable, 0, 64)
	rt.ea.WriteFrame(frame(rtB.Addr(), 64, true, 1400))
	expectICMP("fragmentation needed", ipv4.TypeDestinationUnreachable, ipv4.CodeFragmentationNeeded, 1000, 64)

	// Never forwarded: martians, link-local, a directed broadcast, a
	// link-layer broadcast.
	for _, dst := range []string{"127.0.0.1", "169.254.1.1", "224.0.0.9", "240.0.0.1", "0.1.2.3", "10.2.0.255"} {
		rt.ea.WriteFrame(frame(netip.MustParseAddr(dst), 64, false, 10))
	}
	bc := frame(rtB.Addr(), 64, false, 10)
	copy(bc, link.Broadcast[:])
	rt.ea.WriteFrame(bc)
	waitFor(t, "the drops", func() bool { return rt.r.Stats().IPv4.ForwardNotForwardable == 7 })
	// An ICMP error is never answered with one: a time exceeded with TTL 1.
	te := frame(rtB.Addr(), 1, false, 0)
	te[link.EthernetHeaderLen+9] = ip.ProtocolICMP
	ipv4.PutHeader(te[link.EthernetHeaderLen:], &ipv4.Fields{TotalLength: 28, TTL: 1, Protocol: ip.ProtocolICMP, Source: rtA.Addr(), Destination: rtB.Addr(), ID: 78})
	copy(te[link.EthernetHeaderLen+20:], []byte{ipv4.TypeTimeExceeded, 0, 0xf4, 0xff, 0, 0, 0, 0})
	rt.ea.WriteFrame(te)
	waitFor(t, "the ICMP error's drop", func() bool { return rt.r.Stats().IPv4.ForwardTimeExceeded == 2 })
	st := rt.r.Stats()
	if st.ICMP.ErrorsOut != 3 || st.IPv4.ForwardNoRoute != 1 || st.IPv4.ForwardTooBig != 1 || st.IPv4.ForwardFragmented != 1 {
		t.Fatalf("router: %v", st.Lines())
	}
	select {
	case e := <-ra:
		t.Fatalf("unexpected frame to a: %x", e)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestForwardOffloads forwards TCP super-segments (the senders' TSO, the
// router's GRO) with partial checksums: through to a link whose device
// segments them, and cut by the router for a link without offloads; the
// bytes arrive intact both ways. Over IPv6 the router cuts every
// super-segment it receives (GSO TCPv6, the kernel's TSO6 or its own GRO)
// and routes the segments.
func TestForwardOffloads(t *testing.T) {
	full := link.Offloads{TxChecksum: true, RxChecksum: true, TSO4: true, TSO6: true, GRO: true}
	for _, tc := range []struct {
		name       string
		oflA, oflB link.Offloads
		v6         bool
	}{
		{"both", full, full, false},
		{"a only", full, link.Offloads{}, false},
		{"b only", link.Offloads{}, full, false},
		{"IPv6 both", full, full, true},
		{"IPv6 a only", full, link.Offloads{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := newRouted(t, routedOpts{oflA: tc.oflA, oflB: tc.oflB, a: Options{}, v6: tc.v6})
			dst := rtB.Addr()
			if tc.v6 {
				dst = rt6B.Addr()
			}
			peer := acceptEcho(t, rt.b, netip.AddrPortFrom(dst, 7))
			echoThrough(t, rt.a, netip.AddrPortFrom(dst, 7), peer)
			st := rt.r.Stats()
			if tc.v6 {
				if st.Link.DropBadOffload != 0 || st.IPv6.Forwarded == 0 || st.IPv6.ForwardTooBig != 0 || st.Link.SuperSegmentsIn == 0 {
					t.Fatalf("router: %v", st.Lines())
				}
				return
			}
			if st.Link.DropBadOffload != 0 || st.IPv4.Forwarded == 0 || st.Link.SuperSegmentsOut == 0 {
				t.Fatalf("router: %v", st.Lines())
			}
		})
	}
}

// TestForwardVLANOnAStick is a router on a stick: one link is a trunk
// carrying VLANs 10 and 20 (link/vlan on both ends); host a is on VLAN
// 10, host b on VLAN 20, and the router's two sub-NICs route between
// them, the FORWARD chain naming them.
func TestForwardVLANOnAStick(t *testing.T) {
	er, eh := link.NewPipe(link.PipeOptions{QueueLen: 1024})
	trR, err := vlan.NewTrunk(er)
	if err != nil {
		t.Fatal(err)
	}
	trH, err := vlan.NewTrunk(eh)
	if err != nil {
		t.Fatal(err)
	}
	sub := func(tr *vlan.Trunk, vid uint16) link.Endpoint {
		e, err := tr.Sub(vid, vlan.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	r := New(Options{Forwarding: true})
	a, b := New(Options{}), New(Options{})
	t.Cleanup(func() { r.Close(); a.Close(); b.Close(); trR.Close(); trH.Close() })
	for i, vid := range []uint16{10, 20} {
		id, err := r.AddNIC(sub(trR, vid), []netip.Prefix{rtR1, rtR2}[i])
		if err != nil {
			t.Fatal(err)
		}
		r.SetNICName(id, []string{"trunk.10", "trunk.20"}[i])
	}
	for i, h := range []*Stack{a, b} {
		if _, err := h.AddNIC(sub(trH, []uint16{10, 20}[i]), []netip.Prefix{rtA, rtB}[i]); err != nil {
			t.Fatal(err)
		}
		h.AddRoute(ip.Route{Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: []netip.Prefix{rtR1, rtR2}[i].Addr()})
	}
	f := filter.New(filter.Config{})
	if err := f.Load(strings.NewReader("*filter\n:FORWARD DROP [0:0]\n-A FORWARD -i trunk.10 -o trunk.20 -j ACCEPT\n-A FORWARD -i trunk.20 -o trunk.10 -j ACCEPT\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	r.SetFilter(f)
	if err := pingWithin(a, rtB.Addr(), 3000, 5*time.Second); err != nil {
		t.Fatalf("a fragmented ping from VLAN 10 to VLAN 20: %v", err)
	}
	peer := acceptEcho(t, b, netip.AddrPortFrom(rtB.Addr(), 7))
	if got := echoThrough(t, a, netip.AddrPortFrom(rtB.Addr(), 7), peer); !strings.HasPrefix(got, "10.1.0.2:") {
		t.Fatalf("b saw %s", got)
	}
	rs, _ := f.Rules(filter.TableFilter, "FORWARD")
	for _, rule := range rs {
		if p, _ := rule.Counters(); p == 0 {
			t.Fatalf("rule %s counted nothing", rule)
		}
	}
	if _, p, _, _ := f.Policy(filter.TableFilter, "FORWARD"); p != 0 {
		t.Fatalf("the FORWARD policy dropped %d", p)
	}
}

// BenchmarkForward measures one 1400-byte UDP datagram routed through a
// router without a filter: written to its first NIC, read from its
// second (b.ReportAllocs: 0 in the steady state).
func BenchmarkForward(b *testing.B) {
	rt := newRouted(b, routedOpts{rawA: true, rawB: true})
	f := make([]byte, link.EthernetHeaderLen+ipv4.HeaderLen+8+1400)
	link.PutEthernetHeader(f, link.MAC{2, 0, 0, 0, 1, 1}, rt.ea.HardwareAddr(), link.EtherTypeIPv4)
	ipv4.PutHeader(f[link.EthernetHeaderLen:], &ipv4.Fields{TotalLength: uint16(len(f) - link.EthernetHeaderLen),
		TTL: 64, Protocol: ip.ProtocolUDP, Source: rtA.Addr(), Destination: rtB.Addr()})
	buf := make([]byte, 2048)
	read := func() {
		for {
			n, err := rt.eb.ReadFrame(buf)
			if err != nil {
				b.Fatal(err)
			}
			switch link.Ethernet(buf[:n]).Type() {
			case link.EtherTypeARP:
				e := link.Ethernet(buf[:n])
				p, _ := arp.ParsePacket(e.Payload())
				r := make([]byte, link.EthernetHeaderLen+arp.PacketLen)
				link.PutEthernetHeader(r, p.SenderHardwareAddr(), rt.eb.HardwareAddr(), link.EtherTypeARP)
				arp.PutPacket(r[link.EthernetHeaderLen:], arp.OpReply, rt.eb.HardwareAddr(), p.TargetProtocolAddr(), p.SenderHardwareAddr(), p.SenderProtocolAddr())
				rt.eb.WriteFrame(r)
			case link.EtherTypeIPv4:
				return
			}
		}
	}
	rt.ea.WriteFrame(f)
	read()
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		rt.ea.WriteFrame(f)
		read()
	}
}

// TestForwardErrorsRateLimited: a router's ICMP errors share the stack's
// error rate limit (RFC 1812 §4.3.2.8).
func TestForwardErrorsRateLimited(t *testing.T) {
	rt := newRouted(t, routedOpts{rawA: true, r: Options{ICMPErrorRate: 0.001, ICMPErrorBurst: 1}})
	reader(t, rt.ea) // drain
	f := make([]byte, link.EthernetHeaderLen+ipv4.HeaderLen+8)
	link.PutEthernetHeader(f, link.MAC{2, 0, 0, 0, 1, 1}, rt.ea.HardwareAddr(), link.EtherTypeIPv4)
	ipv4.PutHeader(f[link.EthernetHeaderLen:], &ipv4.Fields{TotalLength: ipv4.HeaderLen + 8, TTL: 1, Protocol: ip.ProtocolUDP, Source: rtA.Addr(), Destination: rtB.Addr()})
	for range 3 {
		rt.ea.WriteFrame(f)
	}
	waitFor(t, "three time exceeded", func() bool { return rt.r.Stats().IPv4.ForwardTimeExceeded == 3 })
	if st := rt.r.Stats(); st.ICMP.ErrorsOut != 1 || st.ICMP.ErrorsRateLimited != 2 {
		t.Fatalf("errors out %d, rate-limited %d", st.ICMP.ErrorsOut, st.ICMP.ErrorsRateLimited)
	}
}
