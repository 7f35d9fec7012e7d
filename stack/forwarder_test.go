package stack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
)

// Destinations no stack of these tests owns (RFC 5737's documentation
// ranges): the forwarder takes flows to them.
var (
	farTCP  = netip.MustParseAddrPort("198.51.100.7:80")
	farTCP2 = netip.MustParseAddrPort("203.0.113.9:443")
	farUDP  = netip.MustParseAddrPort("198.51.100.7:53")
	farUDP2 = netip.MustParseAddrPort("203.0.113.9:123")
)

// fwdFamily is what the forwarder tests need of an IP version: the
// client's and the forwarder's addresses (a and b) and destinations no
// stack owns.
type fwdFamily struct {
	name                             string
	a, b                             netip.Prefix
	farTCP, farTCP2, farUDP, farUDP2 netip.AddrPort
}

// fwdFamilies are IPv4 (RFC 5737's documentation ranges) and IPv6 (RFC
// 3849's).
var fwdFamilies = []fwdFamily{
	{"IPv4", addrA, addrB, farTCP, farTCP2, farUDP, farUDP2},
	{"IPv6", addr6A, addr6B, netip.MustParseAddrPort("[2001:db8::7]:80"), netip.MustParseAddrPort("[2001:db8:9::9]:443"),
		netip.MustParseAddrPort("[2001:db8::7]:53"), netip.MustParseAddrPort("[2001:db8:9::9]:123")},
}

// v6 reports whether fam is IPv6.
func (fam fwdFamily) v6() bool { return fam.a.Addr().Is6() }

// forFamilies runs test once per family, as subtests named after them.
func forFamilies(t *testing.T, test func(t *testing.T, fam fwdFamily)) {
	for _, fam := range fwdFamilies {
		t.Run(fam.name, func(t *testing.T) { test(t, fam) })
	}
}

// forwardPair is a client stack a (at addrA, and addr6A over IPv6) whose
// default route leads to the forwarding stack b (at addrB, addr6B) over a
// link.Pipe.
type forwardPair struct {
	a, b *Stack
	nic  NICID // b's NIC
	fam  fwdFamily
}

func newForwardPair(t *testing.T, bopts Options, f *Forwarder) *forwardPair {
	t.Helper()
	return newForwardPairFamily(t, fwdFamilies[0], bopts, f)
}

// newForwardPairFamily is newForwardPair with the default route of fam's
// family, and over IPv6 the IPv6 addresses, assigned (DAD off).
func newForwardPairFamily(t *testing.T, fam fwdFamily, bopts Options, f *Forwarder) *forwardPair {
	t.Helper()
	ea, eb := link.NewPipe(link.PipeOptions{QueueLen: 1024})
	bopts.DADTransmits = -1
	p := &forwardPair{a: New(Options{DADTransmits: -1}), b: New(bopts), fam: fam}
	t.Cleanup(func() { p.a.Close(); p.b.Close() })
	if _, err := p.a.AddNIC(ea, addrA); err != nil {
		t.Fatal(err)
	}
	id, err := p.b.AddNIC(eb, addrB)
	if err != nil {
		t.Fatal(err)
	}
	p.nic = id
	def := netip.MustParsePrefix("0.0.0.0/0")
	if fam.v6() {
		def = netip.MustParsePrefix("::/0")
		if err := p.a.AddAddress(1, fam.a); err != nil {
			t.Fatal(err)
		}
		if err := p.b.AddAddress(id, fam.b); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.a.AddRoute(ip.Route{Destination: def, Gateway: fam.b.Addr()}); err != nil {
		t.Fatal(err)
	}
	if err := p.b.SetForwarder(id, f); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestForwarderTCPAccept(t *testing.T) { forFamilies(t, testForwarderTCPAccept) }

func testForwarderTCPAccept(t *testing.T, fam fwdFamily) {
	leakcheck.Check(t)
	type seen struct {
		local, remote netip.AddrPort
		nic           NICID
		conn          net.Conn
	}
	got := make(chan seen, 4)
	p := newForwardPairFamily(t, fam, Options{}, &Forwarder{TCP: func(r *TCPForwardRequest) {
		c, err := r.Accept()
		if err != nil {
			t.Errorf("Accept %v: %v", r.LocalAddr(), err)
			return
		}
		got <- seen{r.LocalAddr(), r.RemoteAddr(), r.NIC(), c}
		io.Copy(c, c)
		c.Close()
	}})
	for _, dst := range []netip.AddrPort{fam.farTCP, fam.farTCP2} {
		c := dial(t, p.a, dst)
		if c.RemoteAddr().String() != dst.String() {
			t.Errorf("client's RemoteAddr %v, want %v", c.RemoteAddr(), dst)
		}
		s := <-got
		if s.local != dst || s.remote.Addr() != fam.a.Addr() || s.nic != p.nic {
			t.Errorf("request %v <- %v on NIC %d, want %v <- %v on %d", s.local, s.remote, s.nic, dst, fam.a.Addr(), p.nic)
		}
		// The accepted connection is the original destination's: the
		// client's stack matched the replies to its 4-tuple, so they
		// left from that address.
		if s.conn.LocalAddr().String() != dst.String() || s.conn.RemoteAddr().String() != c.LocalAddr().String() {
			t.Errorf("accepted %v <- %v, want %v <- %v", s.conn.LocalAddr(), s.conn.RemoteAddr(), dst, c.LocalAddr())
		}
		msg := bytes.Repeat([]byte(dst.String()), 5000)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		back := make([]byte, len(msg))
		if _, err := io.ReadFull(c, back); err != nil || !bytes.Equal(back, msg) {
			t.Fatalf("echo through the forwarder: %v", err)
		}
		c.Close()
	}
	st := p.b.Stats().Forward
	if st.TCPRequests != 2 || st.TCPAccepted != 2 || st.TCPRefused != 0 {
		t.Errorf("Forward stats %+v, want 2 requests, 2 accepted", st)
	}

	// An echo request to a forwarded address is dropped, unanswered.
	dropped := func() uint64 {
		if fam.v6() {
			return p.b.Stats().IPv6.DropNotForUs
		}
		return p.b.Stats().IPv4.DropNotForUs
	}
	before := dropped()
	ctx, cancel := context.WithCancel(context.Background())
	pinged := make(chan error, 1)
	go func() { _, err := p.a.Ping(ctx, fam.farTCP.Addr(), 8); pinged <- err }()
	waitFor(t, "the echo request dropped", func() bool { return dropped() > before })
	cancel()
	if err := <-pinged; err == nil {
		t.Error("ping of a forwarded address was answered")
	}
	if st := p.b.Stats(); st.ICMP.EchoRepliesOut != 0 || st.ICMPv6.EchoRepliesOut != 0 {
		t.Errorf("EchoRepliesOut %d, ICMPv6 %d, want 0", st.ICMP.EchoRepliesOut, st.ICMPv6.EchoRepliesOut)
	}
}

// rawClient drives a forwarding stack with hand-made segments from the
// other end of its link.
type rawClient struct {
	t      *testing.T
	s      *Stack
	ep     *link.PipeEnd
	smac   link.MAC
	frames <-chan []byte
	fam    fwdFamily
}

func newRawClient(t *testing.T, f *Forwarder) *rawClient {
	t.Helper()
	return newRawClientFamily(t, fwdFamilies[0], Options{}, f)
}

// newRawClientOptions is newRawClient with the forwarding stack's options.
func newRawClientOptions(t *testing.T, opts Options, f *Forwarder) *rawClient {
	t.Helper()
	return newRawClientFamily(t, fwdFamilies[0], opts, f)
}

// newRawClientFamily is newRawClientOptions whose client speaks fam's
// family from fam.a, the forwarding stack having fam.b too (DAD off).
func newRawClientFamily(t *testing.T, fam fwdFamily, opts Options, f *Forwarder) *rawClient {
	t.Helper()
	ea, eb := link.NewPipe(link.PipeOptions{QueueLen: 1024})
	opts.DADTransmits = -1
	r := &rawClient{t: t, s: New(opts), ep: ea, smac: eb.HardwareAddr(), fam: fam}
	t.Cleanup(func() { r.s.Close() })
	id, err := r.s.AddNIC(eb, addrB)
	if err != nil {
		t.Fatal(err)
	}
	if fam.v6() {
		if err := r.s.AddAddress(id, fam.b); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.s.SetForwarder(id, f); err != nil {
		t.Fatal(err)
	}
	r.frames = readerAll(t, ea)
	return r
}

// sendTCP sends a header-only segment from the client's address:port to
// dst.
func (r *rawClient) sendTCP(port uint16, dst netip.AddrPort, flags tcp.Flags, seq, ack uint32) {
	src := netip.AddrPortFrom(r.fam.a.Addr(), port)
	seg := make([]byte, tcp.HeaderLen)
	h := tcp.Header{SrcPort: src.Port(), DstPort: dst.Port(), Seq: tcp.Value(seq), Ack: tcp.Value(ack), Flags: flags, Window: 65535}
	h.Encode(seg)
	tcp.SetChecksum(seg, src.Addr(), dst.Addr())
	r.send(ip.ProtocolTCP, src.Addr(), dst.Addr(), seg)
}

// send sends the transport payload b of protocol proto from src to dst,
// in an IPv4 or IPv6 packet by their family.
func (r *rawClient) send(proto uint8, src, dst netip.Addr, b []byte) {
	f := ipFrame(r.smac, r.ep.HardwareAddr(), ipv4.Fields{Protocol: proto, Source: src, Destination: dst}, b)
	if dst.Is6() {
		f = eth6(r.smac, r.ep.HardwareAddr(), ipv6.Fields{NextHeader: proto, HopLimit: 64, Source: src, Destination: dst}, b)
	}
	if err := r.ep.WriteFrame(f); err != nil {
		r.t.Fatal(err)
	}
}

// next returns the next IPv4 datagram or IPv6 packet the stack sends but
// NDP's and MLD's, answering its ARP requests and Neighbor Solicitations
// for the client's address on the way.
func (r *rawClient) next() ip.Packet {
	r.t.Helper()
	for {
		eth := nextFrame(r.t, r.frames)
		switch eth.Type() {
		case link.EtherTypeARP:
			p, err := arp.ParsePacket(eth.Payload())
			if err == nil && p.Op() == arp.OpRequest && p.TargetProtocolAddr() == addrA.Addr() {
				answerARP(r.t, r.ep, eth)
			}
		case link.EtherTypeIPv4:
			h, err := ipv4.ParseHeader(eth.Payload())
			if err != nil {
				r.t.Fatal(err)
			}
			return ip.Packet{Source: h.Source(), Destination: h.Destination(), Protocol: h.Protocol(), Datagram: h, Payload: h.Payload()}
		case link.EtherTypeIPv6:
			h, err := ipv6.ParseHeader(eth.Payload())
			if err != nil {
				r.t.Fatal(err)
			}
			c, err := ipv6.ParseExtensions(h)
			if err != nil {
				r.t.Fatal(err)
			}
			p := ip.Packet{Source: h.Source(), Destination: h.Destination(), Protocol: c.Proto, Datagram: h, Payload: h[c.Offset:]}
			if c.Proto == ipv6.NextHeaderICMPv6 && len(p.Payload) > 0 && (p.Payload[0] >= ipv6.TypeMulticastListenerQuery && p.Payload[0] <= ipv6.TypeRedirect || p.Payload[0] == ipv6.TypeMulticastListenerReportV2) {
				// NDP (133-137) and MLD (130-132, 143): answer a
				// solicitation for the client, skip the rest.
				if m := p.Payload; m[0] == ipv6.TypeNeighborSolicitation && len(m) >= 24 && netip.AddrFrom16([16]byte(m[8:24])) == r.fam.a.Addr() && p.Source.IsValid() && !p.Source.IsUnspecified() {
					mac := r.ep.HardwareAddr()
					b := make([]byte, 100)
					n := ipv6.PutNeighborAdvertisement(b, r.fam.a.Addr(), p.Source, r.fam.a.Addr(), ipv6.FlagSolicited|ipv6.FlagOverride, mac[:])
					r.ep.WriteFrame(eth6(eth.Source(), mac, ipv6.Fields{NextHeader: ipv6.NextHeaderICMPv6, HopLimit: 255, Source: r.fam.a.Addr(), Destination: p.Source}, b[:n]))
				}
				continue
			}
			return p
		}
	}
}

// nextTCP returns the next segment the stack sends, checking it comes
// from src.
func (r *rawClient) nextTCP(src netip.AddrPort) tcp.Segment {
	r.t.Helper()
	h := r.next()
	if h.Protocol != ip.ProtocolTCP {
		r.t.Fatalf("got protocol %d, want TCP", h.Protocol)
	}
	seg, err := tcp.ParseSegment(h.Payload, h.Source, h.Destination)
	if err != nil {
		r.t.Fatal(err)
	}
	if h.Source != src.Addr() || seg.SourcePort() != src.Port() {
		r.t.Fatalf("segment from %v:%d, want from %v", h.Source, seg.SourcePort(), src)
	}
	return seg
}

// TestForwarderTCPRefuse refuses a SYN each way Refuse offers: with a RST,
// or with a Destination Unreachable of the SYN's family (ICMPv4 codes of
// RFC 792 and RFC 1812, ICMPv6 codes of RFC 4443 §3.1) from the original
// destination, quoting the SYN.
func TestForwarderTCPRefuse(t *testing.T) { forFamilies(t, testForwarderTCPRefuse) }

func testForwarderTCPRefuse(t *testing.T, fam fwdFamily) {
	leakcheck.Check(t)
	farTCP := fam.farTCP
	for _, tc := range []struct {
		how          Refusal
		code4, code6 int // -1: a RST
	}{
		{RefuseReset, -1, -1},
		{RefuseNetUnreachable, 0, 0},
		{RefuseHostUnreachable, 1, 3},
		{RefusePortUnreachable, 3, 4},
		{RefuseAdminProhibited, 13, 1},
	} {
		t.Run(tc.how.String(), func(t *testing.T) {
			errs := make(chan error, 2)
			r := newRawClientFamily(t, fam, Options{}, &Forwarder{TCP: func(req *TCPForwardRequest) {
				errs <- req.Refuse(tc.how)
				errs <- req.Refuse(tc.how) // decided already
			}})
			r.sendTCP(40000, farTCP, tcp.FlagSYN, 1000, 0)
			switch {
			case tc.code4 < 0:
				seg := r.nextTCP(farTCP)
				if seg.Flags() != tcp.FlagRST|tcp.FlagACK || seg.Ack() != 1001 {
					t.Errorf("got flags %v ack %d, want RST,ACK of 1001", seg.Flags(), seg.Ack())
				}
			case fam.v6():
				h := r.next()
				m, err := ipv6.ParseICMP(h.Payload, h.Source, h.Destination)
				if err != nil || h.Source != farTCP.Addr() || m.Type() != ipv6.TypeDestinationUnreachable || int(m.Code()) != tc.code6 {
					t.Fatalf("got %v from %v, want ICMPv6 destination unreachable code %d from %v (%v)", m, h.Source, tc.code6, farTCP.Addr(), err)
				}
				q, err := ipv6.ParseQuote(m.Payload())
				if err != nil || q.Destination() != farTCP.Addr() || q.Source() != fam.a.Addr() || q.NextHeader() != ipv6.NextHeaderTCP {
					t.Errorf("quote %v > %v, want the SYN (%v)", q.Source(), q.Destination(), err)
				}
			default:
				h := r.next()
				m, err := ipv4.ParseICMP(h.Payload)
				if err != nil || h.Source != farTCP.Addr() || m.Type() != ipv4.TypeDestinationUnreachable || int(m.Code()) != tc.code4 {
					t.Fatalf("got %v from %v, want destination unreachable code %d from %v (%v)", m, h.Source, tc.code4, farTCP.Addr(), err)
				}
				q, err := ipv4.ParseQuote(m.Payload())
				if err != nil || q.Destination() != farTCP.Addr() || q.Source() != addrA.Addr() || q.Protocol() != ipv4.ProtocolTCP {
					t.Errorf("quote %v > %v proto %d, want the SYN (%v)", q.Source(), q.Destination(), q.Protocol(), err)
				}
			}
			if err := <-errs; err != nil {
				t.Errorf("Refuse: %v", err)
			}
			if err := <-errs; !errors.Is(err, ErrRequestDecided) {
				t.Errorf("second Refuse: %v, want ErrRequestDecided", err)
			}
			if st := r.s.Stats().Forward; st.TCPRefused != 1 || st.TCPRequests != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
	t.Run("bad refusal", func(t *testing.T) {
		errs := make(chan error, 1)
		r := newRawClientFamily(t, fam, Options{}, &Forwarder{TCP: func(req *TCPForwardRequest) { errs <- req.Refuse(Refusal(99)) }})
		r.sendTCP(40000, farTCP, tcp.FlagSYN, 1000, 0)
		if err := <-errs; err == nil || !errors.Is(err, syscall.EINVAL) {
			t.Errorf("Refuse(99) = %v, want EINVAL", err)
		}
		// The handler returned without deciding: refused with a RST.
		if seg := r.nextTCP(farTCP); !seg.Flags().Has(tcp.FlagRST) {
			t.Errorf("got %v, want RST", seg.Flags())
		}
	})
}

// TestForwarderSYNRetransmission checks that SYNs retransmitted while the
// handler decides are absorbed, and that the accepted handshake runs
// through the listener core to a connection from the original
// destination.
func TestForwarderSYNRetransmission(t *testing.T) {
	forFamilies(t, testForwarderSYNRetransmission)
}

func testForwarderSYNRetransmission(t *testing.T, fam fwdFamily) {
	leakcheck.Check(t)
	farTCP := fam.farTCP
	release := make(chan struct{})
	accepted := make(chan net.Conn, 1)
	r := newRawClientFamily(t, fam, Options{}, &Forwarder{TCP: func(req *TCPForwardRequest) {
		<-release
		c, err := req.Accept()
		if err != nil {
			t.Errorf("Accept: %v", err)
			close(accepted)
			return
		}
		accepted <- c
	}})
	for range 3 {
		r.sendTCP(40000, farTCP, tcp.FlagSYN, 5000, 0)
	}
	waitFor(t, "two SYNs absorbed", func() bool { return r.s.Stats().Forward.TCPSYNsAbsorbed == 2 })
	if st := r.s.Stats().Forward; st.TCPRequests != 1 {
		t.Fatalf("%d requests for one SYN sent three times", st.TCPRequests)
	}
	close(release)
	synack := r.nextTCP(farTCP)
	if synack.Flags() != tcp.FlagSYN|tcp.FlagACK || synack.Ack() != 5001 {
		t.Fatalf("got %v ack %d, want SYN,ACK of 5001", synack.Flags(), synack.Ack())
	}
	r.sendTCP(40000, farTCP, tcp.FlagACK, 5001, uint32(synack.Seq())+1)
	c := <-accepted
	if c == nil {
		t.FailNow()
	}
	defer c.Close()
	if c.LocalAddr().String() != farTCP.String() {
		t.Errorf("LocalAddr %v, want %v", c.LocalAddr(), farTCP)
	}
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if seg := r.nextTCP(farTCP); string(seg.Payload()) != "hi" {
		t.Errorf("payload %q", seg.Payload())
	}
	if st := r.s.Stats().Forward; st.TCPAccepted != 1 || st.TCPRequests != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestForwarderHandshakeReset checks that a client's RST ends an accepted
// handshake at once.
func TestForwarderHandshakeReset(t *testing.T) {
	leakcheck.Check(t)
	errs := make(chan error, 1)
	r := newRawClient(t, &Forwarder{TCP: func(req *TCPForwardRequest) {
		_, err := req.Accept()
		errs <- err
	}})
	r.sendTCP(40000, farTCP, tcp.FlagSYN, 7000, 0)
	synack := r.nextTCP(farTCP)
	_ = synack
	r.sendTCP(40000, farTCP, tcp.FlagRST, 7001, 0)
	if err := <-errs; !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("Accept after RST: %v, want ECONNRESET", err)
	}
	if st := r.s.Stats().Forward; st.TCPHandshakeFailures != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestForwarderMaxInFlight(t *testing.T) {
	leakcheck.Check(t)
	release := make(chan struct{})
	r := newRawClient(t, &Forwarder{MaxInFlight: 2, TCP: func(req *TCPForwardRequest) {
		<-release
		req.Refuse(RefuseReset)
	}})
	for port := uint16(40000); port < 40003; port++ {
		r.sendTCP(port, farTCP, tcp.FlagSYN, 1, 0)
	}
	waitFor(t, "two requests and one SYN dropped", func() bool {
		st := r.s.Stats().Forward
		return st.TCPRequests == 2 && st.TCPDropInFlight == 1
	})
	close(release)
	r.nextTCP(farTCP)
	r.nextTCP(farTCP)
	// Room again: the third client's retransmission becomes a request.
	r.sendTCP(40002, farTCP, tcp.FlagSYN, 1, 0)
	if seg := r.nextTCP(farTCP); !seg.Flags().Has(tcp.FlagRST) || seg.DestinationPort() != 40002 {
		t.Errorf("got %v to %d, want the RST to 40002", seg.Flags(), seg.DestinationPort())
	}
	if st := r.s.Stats().Forward; st.TCPRequests != 3 || st.TCPDropInFlight != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestForwarderUDPIdleTimeout(t *testing.T) { forFamilies(t, testForwarderUDPIdleTimeout) }

func testForwarderUDPIdleTimeout(t *testing.T, fam fwdFamily) {
	leakcheck.Check(t)
	farUDP := fam.farUDP
	clock := NewManualClock(time.Unix(1e9, 0))
	type flowEnd struct {
		local, remote string
		got           []string
		err           error
	}
	ends := make(chan flowEnd, 2)
	p := newForwardPairFamily(t, fam, Options{Clock: clock}, &Forwarder{UDP: func(f *UDPFlow) {
		e := flowEnd{local: f.LocalAddr().String(), remote: f.RemoteAddr().String()}
		buf := make([]byte, 100)
		for {
			n, err := f.Read(buf)
			if err != nil {
				e.err = err
				break
			}
			e.got = append(e.got, string(buf[:n]))
			f.Write(append([]byte("re:"), buf[:n]...))
		}
		ends <- e
	}})
	c := dialUDP(t, p.a, netip.AddrPort{}, farUDP)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	ask := func(q string) {
		t.Helper()
		if _, err := c.Write([]byte(q)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		// The connected socket takes only datagrams from farUDP: the
		// answer left from the original destination.
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "re:"+q {
			t.Fatalf("answer %q, %v", buf[:n], err)
		}
	}
	ask("one")
	clock.Advance(29 * time.Second)
	ask("two") // the same flow: 29 s idle is not 30
	clock.Advance(31 * time.Second)
	e := <-ends
	if !errors.Is(e.err, ErrFlowIdle) || len(e.got) != 2 || e.local != farUDP.String() || e.remote != c.LocalAddr().String() {
		t.Errorf("flow %s <- %s got %q, ended with %v; want %v <- %v, 2 datagrams, ErrFlowIdle", e.local, e.remote, e.got, e.err, farUDP, c.LocalAddr())
	}
	ask("three") // a new flow
	st := p.b.Stats().Forward
	if st.UDPFlows != 2 || st.UDPIdleTimeouts != 1 {
		t.Errorf("stats %+v, want 2 flows, 1 idle timeout", st)
	}
}

func TestForwarderUDPFullCone(t *testing.T) { forFamilies(t, testForwarderUDPFullCone) }

func testForwarderUDPFullCone(t *testing.T, fam fwdFamily) {
	leakcheck.Check(t)
	farUDP, farUDP2 := fam.farUDP, fam.farUDP2
	flows := make(chan *UDPFullConeFlow, 2)
	p := newForwardPairFamily(t, fam, Options{}, &Forwarder{UDPFullCone: func(f *UDPFullConeFlow) { flows <- f }})
	c := listenUDP(t, p.a, netip.AddrPortFrom(fam.a.Addr(), 5000))
	for _, dst := range []netip.AddrPort{farUDP, farUDP2} {
		if _, err := c.WriteToUDPAddrPort([]byte("to "+dst.String()), dst); err != nil {
			t.Fatal(err)
		}
	}
	f := <-flows
	defer f.Close()
	if f.Client() != netip.AddrPortFrom(fam.a.Addr(), 5000) {
		t.Errorf("Client %v", f.Client())
	}
	f.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	// Both datagrams, in either order (the first may wait for ARP while
	// the second overtakes it).
	want := map[string]bool{farUDP.String(): true, farUDP2.String(): true}
	for range 2 {
		n, to, err := f.ReadFrom(buf)
		if err != nil || !want[to.String()] || string(buf[:n]) != "to "+to.String() {
			t.Fatalf("ReadFrom: %q to %v, %v; want one to each of %v", buf[:n], to, err, want)
		}
		delete(want, to.String())
	}
	// Any address may answer: one the client never wrote to, too.
	other := netip.MustParseAddrPort("192.0.2.55:999")
	if fam.v6() {
		other = netip.MustParseAddrPort("[2001:db8:55::55]:999")
	}
	if _, err := f.WriteTo([]byte("hello"), net.UDPAddrFromAddrPort(other)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil || from != other || string(buf[:n]) != "hello" {
		t.Errorf("client got %q from %v, %v; want hello from %v", buf[:n], from, err, other)
	}
	mcast := netip.MustParseAddrPort("224.0.0.1:5")
	if fam.v6() {
		mcast = netip.MustParseAddrPort("[ff02::1]:5")
	}
	if _, err := f.WriteToUDPAddrPort([]byte("x"), mcast); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("WriteTo from a multicast source: %v, want EINVAL", err)
	}
	select {
	case <-flows:
		t.Error("a second flow for one client address and port")
	default:
	}
	if st := p.b.Stats().Forward; st.UDPFlows != 1 {
		t.Errorf("stats %+v, want 1 flow", st)
	}
}

func TestSetForwarderRejects(t *testing.T) {
	leakcheck.Check(t)
	s := New(Options{})
	defer s.Close()
	ea, _ := link.NewPipe(link.PipeOptions{})
	id, err := s.AddNIC(ea, addrA)
	if err != nil {
		t.Fatal(err)
	}
	tcpH := func(*TCPForwardRequest) {}
	for _, tc := range []struct {
		name string
		id   NICID
		f    *Forwarder
		want string
	}{
		{"unknown NIC", 9, &Forwarder{TCP: tcpH}, "unknown NIC"},
		{"no handler", id, &Forwarder{}, "no handler"},
		{"both UDP", id, &Forwarder{UDP: func(*UDPFlow) {}, UDPFullCone: func(*UDPFullConeFlow) {}}, "both set"},
		{"MaxInFlight", id, &Forwarder{TCP: tcpH, MaxInFlight: -1}, "MaxInFlight"},
		{"MaxUDPFlows", id, &Forwarder{TCP: tcpH, MaxUDPFlows: -1}, "MaxUDPFlows"},
		{"UDPIdleTimeout", id, &Forwarder{TCP: tcpH, UDPIdleTimeout: -time.Second}, "UDPIdleTimeout"},
	} {
		if err := s.SetForwarder(tc.id, tc.f); err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
	if err := s.SetForwarder(id, &Forwarder{TCP: tcpH}); err != nil {
		t.Error(err)
	}
	if err := s.SetForwarder(id, nil); err != nil {
		t.Error(err)
	}
	if err := (&Stack{}).SetForwarder(1, &Forwarder{TCP: tcpH}); !errors.Is(err, ErrNotInitialized) {
		t.Errorf("zero Stack: %v", err)
	}
}

// TestForwarderUDPAllocs checks that a datagram of a flow that exists
// costs no allocation, in and out.
func TestForwarderUDPAllocs(t *testing.T) {
	leakcheck.Check(t)
	flows := make(chan *UDPFlow, 1)
	r := newRawClient(t, &Forwarder{UDP: func(f *UDPFlow) { flows <- f }})
	src := netip.AddrPortFrom(addrA.Addr(), 4000)
	d := make([]byte, 8+100)
	d[0], d[1], d[2], d[3] = byte(src.Port()>>8), byte(src.Port()), byte(farUDP.Port()>>8), byte(farUDP.Port())
	d[4], d[5] = 0, byte(len(d))
	frame := ipFrame(r.smac, r.ep.HardwareAddr(), ipv4.Fields{Protocol: ipv4.ProtocolUDP, Source: src.Addr(), Destination: farUDP.Addr()}, d)
	n := r.s.nicByID(1)
	n.deliver(frame)
	f := <-flows
	defer f.Close()
	buf := make([]byte, 200)
	if _, err := f.Read(buf); err != nil {
		t.Fatal(err)
	}
	f.Write(buf[:10]) // resolves the client's MAC
	r.next()
	go func() { // the frames sent below, until the reader ends at cleanup
		for range r.frames {
		}
	}()
	allocs := testing.AllocsPerRun(200, func() {
		n.deliver(frame)
		if k, err := f.Read(buf); err != nil || k != 100 {
			t.Fatalf("read %d, %v", k, err)
		}
		f.Write(buf[:10])
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per datagram in and out, want 0", allocs)
	}
}

// TestForwarderLeavesLocalTraffic checks that a forwarding NIC still
// serves its own address with the stack's listeners and sockets, and that
// a wildcard listener does not take a forwarded connection.
func TestForwarderLeavesLocalTraffic(t *testing.T) {
	leakcheck.Check(t)
	requests := make(chan netip.AddrPort, 2)
	p := newForwardPair(t, Options{}, &Forwarder{
		TCP: func(r *TCPForwardRequest) { requests <- r.LocalAddr(); r.Refuse(RefuseReset) },
		UDP: func(f *UDPFlow) { f.Close() },
	})
	l, err := p.b.ListenTCP(netip.MustParseAddrPort("0.0.0.0:80"))
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(l)
	defer func() { l.Close(); wait() }()
	c := dial(t, p.a, netip.AddrPortFrom(addrB.Addr(), 80))
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.a.DialTCP(ctx, farTCP); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial %v: %v, want refused by the handler", farTCP, err)
	}
	if got := <-requests; got != farTCP {
		t.Errorf("the handler saw %v, want %v", got, farTCP)
	}
	u := listenUDP(t, p.b, netip.MustParseAddrPort("0.0.0.0:53"))
	wait2 := udpEcho(u)
	defer func() { u.Close(); wait2() }()
	cu := dialUDP(t, p.a, netip.AddrPort{}, netip.AddrPortFrom(addrB.Addr(), 53))
	cu.SetReadDeadline(time.Now().Add(10 * time.Second))
	cu.Write([]byte("local"))
	buf := make([]byte, 10)
	if n, err := cu.Read(buf); err != nil || string(buf[:n]) != "local" {
		t.Errorf("local UDP echo: %q, %v", buf[:n], err)
	}
	if st := p.b.Stats().Forward; st.TCPRequests != 1 || st.UDPFlows != 0 {
		t.Errorf("stats %+v, want one request, no flow", st)
	}
}

// TestForwarderHandshakeTimeout checks that an accepted handshake counts
// against MaxInFlight until it ends, and that one the client never
// completes fails Accept with ETIMEDOUT once the listener core has given
// up its SYN-ACK retransmissions (on a manual clock).
func TestForwarderHandshakeTimeout(t *testing.T) {
	leakcheck.Check(t)
	clock := NewManualClock(time.Unix(1e9, 0))
	errs := make(chan error, 2)
	r := newRawClientOptions(t, Options{Clock: clock}, &Forwarder{MaxInFlight: 1, TCP: func(req *TCPForwardRequest) {
		c, err := req.Accept()
		if err == nil {
			c.Close()
		}
		errs <- err
	}})
	r.sendTCP(40000, farTCP, tcp.FlagSYN, 1, 0)
	if seg := r.nextTCP(farTCP); seg.Flags() != tcp.FlagSYN|tcp.FlagACK {
		t.Fatalf("got %v, want SYN,ACK", seg.Flags())
	}
	// The handshake is in flight: another client's SYN is over the bound.
	r.sendTCP(40001, farTCP, tcp.FlagSYN, 1, 0)
	waitFor(t, "the second SYN dropped", func() bool { return r.s.Stats().Forward.TCPDropInFlight == 1 })
	// The client never answers: SYN-ACK retransmissions after 1, 2, 4,
	// 8 and 16 s (tcp.DefaultConfig), then the entry goes 32 s later.
	for rto := time.Second; rto <= 16*time.Second; rto *= 2 {
		clock.Advance(rto)
		if seg := r.nextTCP(farTCP); seg.Flags() != tcp.FlagSYN|tcp.FlagACK {
			t.Fatalf("got %v, want the SYN,ACK again", seg.Flags())
		}
	}
	clock.Advance(32 * time.Second)
	if err := <-errs; !errors.Is(err, syscall.ETIMEDOUT) {
		t.Errorf("Accept of a handshake never completed: %v, want ETIMEDOUT", err)
	}
	r.sendTCP(40001, farTCP, tcp.FlagSYN, 1, 0)
	waitFor(t, "the second client's request", func() bool { return r.s.Stats().Forward.TCPRequests == 2 })
	if st := r.s.Stats().Forward; st.TCPHandshakeFailures != 1 || st.TCPDropInFlight != 1 {
		t.Errorf("stats %+v", st)
	}
}
