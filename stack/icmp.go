package stack

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
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
		key := uint32(m.Ident())<<16 | uint32(m.Sequence())
		s.pingMu.Lock()
		ch, ok := s.pings[key]
		delete(s.pings, key)
		s.pingMu.Unlock()
		if ok {
			ch <- s.clock.Now()
		}
	default:
		if ipv4.IsError(m.Type()) {
			inc(&st.ICMP.ErrorsIn)
			s.deliverICMPError(m)
		}
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
	l := ipv4.PutError(pb.b[headroom:], typ, code, offending)
	if s.sendIP(pb, &ip.Packet{Source: src, Destination: to, Protocol: ip.ProtocolICMP, Payload: pb.b[headroom : headroom+l]}) {
		inc(&st.ICMP.ErrorsOut)
	}
}

// sendUnreachable answers the received datagram p with an ICMP
// destination unreachable of code, unless RFC 1122 §3.2.2 forbids an
// error about it (ipv4.MayReplyWithError: a broadcast, an ICMP error, a
// fragment other than the first, a source that names no single host).
func (s *Stack) sendUnreachable(p *ip.Packet, code uint8) {
	if !p.Is4() || !ipv4.MayReplyWithError(ipv4.Header(p.Datagram), p.Broadcast) {
		return
	}
	s.sendICMPError(p.Source, p.Datagram, ipv4.TypeDestinationUnreachable, code)
}

// pingIdent is the identifier of this stack's echo requests.
const pingIdent = 0x7573 // "us"

// Ping sends one ICMP echo request with size bytes of data to dst and
// waits for the reply. It returns the round-trip time, or ctx's error if
// no reply came in time.
func (s *Stack) Ping(ctx context.Context, dst netip.Addr, size int) (time.Duration, error) {
	if err := s.usable(); err != nil {
		return 0, err
	}
	if size < 0 || size > 65535-ipv4.HeaderLen-8 {
		return 0, fmt.Errorf("stack: ping size %d out of range", size)
	}
	if !dst.Is4() {
		return 0, fmt.Errorf("stack: ping destination %v is not an IPv4 address", dst)
	}
	if s.closing.Load() {
		return 0, ErrClosed
	}
	seq := uint16(s.pingSeq.Add(1))
	key := uint32(pingIdent)<<16 | uint32(seq)
	ch := make(chan time.Time, 1)
	s.pingMu.Lock()
	s.pings[key] = ch
	s.pingMu.Unlock()
	defer func() {
		s.pingMu.Lock()
		delete(s.pings, key)
		s.pingMu.Unlock()
	}()

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
	select {
	case at := <-ch:
		return at.Sub(start), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-s.done:
		return 0, ErrClosed
	}
}
