package tcptest

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/ustack/ustack/tcp"
)

// ICMP is an ICMP error message (RFC 792) or, on an IPv6 connection, an
// ICMPv6 error message (RFC 4443) that reaches the stack about a segment
// it sent, as a router on the path or the peer would send it.
type ICMP struct {
	// Type and Code are the message's. ICMPv4: 3 Destination Unreachable
	// with its codes, 11 Time Exceeded, 12 Parameter Problem
	// (tcp.ICMPKindOf). ICMPv6: 1 Destination Unreachable, 2 Packet Too
	// Big, 3 Time Exceeded, 4 Parameter Problem (tcp.ICMPv6KindOf).
	// Others are ignored.
	Type, Code uint8
	// MTU is the Next-Hop MTU of a fragmentation-needed message
	// (RFC 1191 §4; 0 as from a router that predates it), or the MTU of
	// a Packet Too Big message (RFC 4443 §3.2).
	MTU int
	// Seq is the sequence number of the quoted segment.
	Seq tcp.Value
	// QuotedLength is the Total Length of the quoted IPv4 datagram (the
	// 40-octet header and Payload Length of an IPv6 one).
	QuotedLength int
}

// InjectICMP delivers m, about a segment of 4-tuple t, as the stack does
// (stack's deliverICMPError): to the connection of the quoted 4-tuple
// through tcp.Conn.HandleICMP. A message for no connection, or of a type
// that means nothing to TCP, is counted in Stats().ICMPIgnored. It returns
// what the connection did.
func (s *Stack) InjectICMP(t tcp.Tuple, m ICMP) tcp.ICMPResult {
	kindOf := tcp.ICMPKindOf
	if t.Remote.Addr().Is6() {
		kindOf = tcp.ICMPv6KindOf
	}
	kind, ok := kindOf(m.Type, m.Code)
	e, found := s.demux.Lookup(t)
	if !ok || !found {
		s.stats.ICMPIgnored.Add(1)
		return tcp.ICMPIgnored
	}
	r := e.c.HandleICMP(s.now, tcp.ICMPError{Kind: kind, MTU: m.MTU, Seq: m.Seq, QuotedLength: m.QuotedLength}, &s.out)
	if r == tcp.ICMPMTULowered {
		s.lowerPathMTU(e, t.Remote.Addr(), e.c.PathMTU())
	}
	s.settle()
	return r
}

// pmtuTimeout is how long a lowered path MTU is remembered for new
// connections, as package stack does: RFC 1191 §6.3, "When a PMTU value
// has not been decreased for a while (on the order of 10 minutes), the
// PMTU estimate should be set to the first-hop data-link MTU" (RFC 8201
// §4 says the same for IPv6).
const pmtuTimeout = 10 * time.Minute

type pmtuEntry struct {
	mtu     int
	expires time.Time
}

// lowerPathMTU remembers mtu for dst, as package stack's path MTU cache
// does, and lowers it on the other live connections to dst (RFC 1191
// §6.2: "Any packetization layer instance (for example, a TCP connection)
// that is actively using the path must be notified if the PMTU estimate
// is decreased").
func (s *Stack) lowerPathMTU(from *entry, dst netip.Addr, mtu int) {
	if s.pmtu == nil {
		s.pmtu = make(map[netip.Addr]pmtuEntry)
	}
	s.pmtu[dst] = pmtuEntry{mtu: mtu, expires: s.now.Add(pmtuTimeout)}
	for _, e := range s.order {
		if e != from && e.c.Tuple().Remote.Addr() == dst {
			e.c.SetPathMTU(mtu)
		}
	}
}

// applyPathMTU gives a new connection the path MTU remembered for its
// destination, as package stack does.
func (s *Stack) applyPathMTU(c *tcp.Conn) {
	if mtu, ok := s.PathMTU(c.Tuple().Remote.Addr()); ok {
		c.SetPathMTU(mtu)
	}
}

// PathMTU returns the path MTU the stack remembers for dst from an ICMP
// message that lowered a connection's (for pmtuTimeout, 10 minutes), as
// package stack's Stack.PathMTU does.
func (s *Stack) PathMTU(dst netip.Addr) (int, bool) {
	e, ok := s.pmtu[dst]
	if !ok || !s.now.Before(e.expires) {
		return 0, false
	}
	return e.mtu, true
}

// SendICMP delivers m about a segment of the flow. m.Seq is in script
// space (relative to the stack's ISN, as the stack's segments are
// written); a zero QuotedLength names the stack's latest segment on the
// flow, and m.Seq that segment's sequence number too when quoteLast is
// set (packetdrill quotes the last outbound packet when a script names
// none).
func (f *Flow) SendICMP(m ICMP, quoteLast bool) (tcp.ICMPResult, error) {
	if quoteLast {
		p, ok := f.lastOut()
		if !ok {
			return tcp.ICMPIgnored, fmt.Errorf("no outbound segment on %v to quote", f.t)
		}
		d, err := decode(p.Data)
		if err != nil {
			return tcp.ICMPIgnored, err
		}
		m.Seq = tcp.Value(d.seq)
		m.QuotedLength = ipHeaderLen(p.Tuple) + len(p.Data)
	} else {
		m.Seq = m.Seq.Add(f.localOffset(false))
	}
	return f.s.InjectICMP(f.t, m), nil
}

// lastOut returns the latest segment the stack sent on the flow.
func (f *Flow) lastOut() (Packet, bool) {
	for i := len(f.s.log) - 1; i >= 0; i-- {
		if p := f.s.log[i]; p.Dir == Out && p.Tuple == f.t {
			return p, true
		}
	}
	return Packet{}, false
}

// ipHeaderLen is the length of the fixed IP header of the tuple's family:
// 20 octets for IPv4 (RFC 791, no options), 40 for IPv6 (RFC 8200 §3).
func ipHeaderLen(t tcp.Tuple) int {
	if t.Remote.Addr().Is6() {
		return 40
	}
	return 20
}
