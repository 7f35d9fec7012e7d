package stack

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/ipv6"
)

// deliverICMP answers echo requests and completes pings (RFC 792).
func (s *Stack) deliverICMP(n *nic, p *ip.Packet) {
	st := s.ctr.get()
	m, err := ipv4.ParseICMP(p.Payload)
	if err != nil {
		inc(&st.ICMP.DropMalformed)
		return
	}
	switch m.Type() {
	case ipv4.TypeEchoRequest:
		inc(&st.ICMP.EchoRequestsIn)
		if p.Broadcast {
			// Like Linux's icmp_echo_ignore_broadcasts (RFC 1122 §3.2.2.6
			// lets a host discard broadcast echo requests).
			return
		}
		if !s.allowEchoReply() {
			inc(&st.ICMP.EchoRepliesRateLimited)
			return
		}
		pb := s.bufs.Get().(*packetBuf)
		defer s.bufs.Put(pb)
		l := ipv4.PutEchoReply(pb.b[headroom:], m)
		// RFC 1122 §3.2.2.6: the reply's source is the request's
		// specific destination address.
		if s.sendIP(pb, &ip.Packet{Source: p.Destination, Destination: p.Source, Protocol: ip.ProtocolICMP, Payload: pb.b[headroom : headroom+l]}) {
			inc(&st.ICMP.EchoRepliesOut)
		}
	case ipv4.TypeEchoReply:
		inc(&st.ICMP.EchoRepliesIn)
		s.pingReply(m.Ident(), m.Sequence())
	default:
		if ipv4.IsError(m.Type()) {
			inc(&st.ICMP.ErrorsIn)
			s.deliverICMPError(m)
		}
	}
}

// pingReply completes the Ping waiting for the echo reply of ident and
// seq, if any.
func (s *Stack) pingReply(ident, seq uint16) {
	key := uint32(ident)<<16 | uint32(seq)
	s.pingMu.Lock()
	ch, ok := s.pings[key]
	delete(s.pings, key)
	s.pingMu.Unlock()
	if ok {
		ch <- s.clock.Now()
	}
}

// allowEchoReply takes a token from the echo-reply bucket (Options.ICMPEchoRate).
func (s *Stack) allowEchoReply() bool {
	if s.echoLimiter == nil {
		return true
	}
	s.icmpMu.Lock()
	ok := s.echoLimiter.Allow(s.clock.Now())
	s.icmpMu.Unlock()
	return ok
}

// sendICMPError sends an ICMP error of type typ and code about the
// datagram offending to the address to, subject to the rate limit of
// RFC 1122 §3.2.2. The caller has checked ipv4.MayReplyWithError.
func (s *Stack) sendICMPError(to netip.Addr, offending []byte, typ, code uint8) {
	s.sendICMPErrorFrom(netip.Addr{}, to, offending, typ, code)
}

// sendICMPErrorFrom is sendICMPError from the source address src; the
// invalid Addr means the outgoing NIC's address.
func (s *Stack) sendICMPErrorFrom(src, to netip.Addr, offending []byte, typ, code uint8) {
	s.sendICMPErrorWord(src, to, offending, typ, code, 0)
}

// sendICMPErrorWord is sendICMPErrorFrom with the message's second word
// set to word (ipv4.PutErrorWord: the next-hop MTU of a fragmentation
// needed, RFC 1191 §4).
func (s *Stack) sendICMPErrorWord(src, to netip.Addr, offending []byte, typ, code uint8, word uint32) {
	st := s.ctr.get()
	s.icmpMu.Lock()
	ok := s.icmpLimiter.Allow(s.clock.Now())
	s.icmpMu.Unlock()
	if !ok {
		inc(&st.ICMP.ErrorsRateLimited)
		return
	}
	pb := s.bufs.Get().(*packetBuf)
	defer s.bufs.Put(pb)
	l := ipv4.PutErrorWord(pb.b[headroom:], typ, code, word, offending)
	if s.sendIP(pb, &ip.Packet{Source: src, Destination: to, Protocol: ip.ProtocolICMP, Payload: pb.b[headroom : headroom+l]}) {
		inc(&st.ICMP.ErrorsOut)
	}
}

// sendUnreachable answers the received datagram p with an ICMP
// destination unreachable of code, unless RFC 1122 §3.2.2 forbids an
// error about it (ipv4.MayReplyWithError: a broadcast, an ICMP error, a
// fragment other than the first, a source that names no single host).
//
// For IPv6 the ICMPv4 code is mapped to ICMPv6's: port unreachable to
// Destination Unreachable code 4 (RFC 4443 §3.1); others send nothing.
func (s *Stack) sendUnreachable(p *ip.Packet, code uint8) {
	if p.Destination.Is6() {
		if code == ipv4.CodePortUnreachable {
			s.sendUnreachable6(p, ipv6.CodePortUnreachable)
		}
		return
	}
	if !p.Is4() || !ipv4.MayReplyWithError(ipv4.Header(p.Datagram), p.Broadcast) {
		return
	}
	s.sendICMPError(p.Source, p.Datagram, ipv4.TypeDestinationUnreachable, code)
}

// pingIdent is the identifier of this stack's echo requests.
const pingIdent = 0x7573 // "us"

// Ping sends one ICMP echo request (ICMPv6 for an IPv6 dst, RFC 4443
// §4.1) with size bytes of data to dst and waits for the reply. It
// returns the round-trip time, or ctx's error if no reply came in time.
// A link-local dst may carry the zone of its NIC, as its name or number
// ("fe80::1%1").
func (s *Stack) Ping(ctx context.Context, dst netip.Addr, size int) (time.Duration, error) {
	if err := s.usable(); err != nil {
		return 0, err
	}
	if !dst.IsValid() {
		return 0, fmt.Errorf("stack: ping destination %v is not an address", dst)
	}
	if dst.Is6() {
		return s.ping6(ctx, dst, size)
	}
	if size < 0 || size > 65535-ipv4.HeaderLen-8 {
		return 0, fmt.Errorf("stack: ping size %d out of range", size)
	}
	if s.closing.Load() {
		return 0, ErrClosed
	}
	seq, ch, done := s.pingExpect()
	defer done()

	pb := s.bufs.Get().(*packetBuf)
	m := pb.b[headroom : headroom+8+size]
	m[0], m[1], m[2], m[3] = ipv4.TypeEchoRequest, 0, 0, 0 // type, code, checksum
	binary.BigEndian.PutUint16(m[4:], pingIdent)
	binary.BigEndian.PutUint16(m[6:], seq)
	for i := range m[8:] {
		m[8+i] = byte(i)
	}
	binary.BigEndian.PutUint16(m[2:], checksum.Checksum(m, 0))
	start := s.clock.Now()
	sent := s.sendIP(pb, &ip.Packet{Destination: dst, Protocol: ip.ProtocolICMP, Payload: m})
	s.bufs.Put(pb)
	if !sent {
		return 0, ErrNoRoute
	}
	inc(&s.ctr.get().ICMP.EchoRequestsOut)
	return s.pingWait(ctx, ch, start)
}

// pingExpect takes the next echo sequence number and registers the
// channel its reply is delivered on (either family: the identifier is
// pingIdent); done unregisters it.
func (s *Stack) pingExpect() (seq uint16, ch chan time.Time, done func()) {
	seq = uint16(s.pingSeq.Add(1))
	key := uint32(pingIdent)<<16 | uint32(seq)
	ch = make(chan time.Time, 1)
	s.pingMu.Lock()
	s.pings[key] = ch
	s.pingMu.Unlock()
	return seq, ch, func() {
		s.pingMu.Lock()
		delete(s.pings, key)
		s.pingMu.Unlock()
	}
}

// pingWait waits for the reply on ch to a request sent at start.
func (s *Stack) pingWait(ctx context.Context, ch chan time.Time, start time.Time) (time.Duration, error) {
	select {
	case at := <-ch:
		return at.Sub(start), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-s.done:
		return 0, ErrClosed
	}
}

// ping6 is Ping for an IPv6 dst.
func (s *Stack) ping6(ctx context.Context, dst netip.Addr, size int) (time.Duration, error) {
	if size < 0 || size > ipv6.MaxPayloadLength-ipv6.ICMPHeaderLen {
		return 0, fmt.Errorf("stack: ping size %d out of range", size)
	}
	via, err := s.zoneNIC(dst)
	if err != nil {
		return 0, err
	}
	dst = dst.WithZone("")
	if s.closing.Load() {
		return 0, ErrClosed
	}
	seq, ch, done := s.pingExpect()
	defer done()
	start := s.clock.Now()
	sent := s.sendICMPv6(via, netip.Addr{}, dst, func(b []byte, src netip.Addr) int {
		data := b[ipv6.ICMPHeaderLen : ipv6.ICMPHeaderLen+size]
		for i := range data {
			data[i] = byte(i)
		}
		return ipv6.PutEcho(b, ipv6.TypeEchoRequest, src, dst, pingIdent, seq, data)
	})
	if !sent {
		return 0, fmt.Errorf("%w: %v", ErrNoRoute, dst)
	}
	inc(&s.ctr.get().ICMPv6.EchoRequestsOut)
	return s.pingWait(ctx, ch, start)
}

// zoneNIC returns the NIC a's zone names (RFC 4007 §11: a link-local
// address's zone is its interface: a NIC's number, or the name of its
// device, such as "tap0"), or nil without a zone; an unknown zone is
// ErrUnknownNIC.
func (s *Stack) zoneNIC(a netip.Addr) (*nic, error) {
	z := a.Zone()
	if z == "" {
		// Without a zone, a link-local destination goes out of the only
		// NIC with a link-local address, or the first.
		if a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() {
			for _, n := range s.nicList() {
				if n.linkLocal().IsValid() {
					return n, nil
				}
			}
		}
		return nil, nil
	}
	id, err := strconv.Atoi(z)
	if n := s.nicByID(id); err == nil && n != nil {
		return n, nil
	}
	for _, n := range s.nicList() {
		if named, ok := n.ep.(interface{ Name() string }); ok && named.Name() == z {
			return n, nil
		}
	}
	return nil, fmt.Errorf("%w: zone %q of %v", ErrUnknownNIC, z, a)
}
