package stack

import (
	"net/netip"
	"sync"
	"time"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/tcp"
)

// deliverICMPError hands an ICMP error message (RFC 792) to the transport
// connection whose datagram it quotes (RFC 1122 §3.2.2: "the ICMP error
// message ... MUST be passed to the transport layer"). The quote must be
// an IPv4 header that parses (ipv4.ParseQuote), from one of our
// addresses, of the first fragment of a TCP segment, with the 8 octets of
// TCP header that carry the ports and the sequence number; the outer
// message's checksum was verified by ParseICMP. What the message means
// for the connection is the TCP core's (tcp.Conn.HandleICMP), which
// checks the quoted sequence number (RFC 5927 §4.1). A quoted UDP
// datagram goes to its connected socket (deliverUDPICMPError).
func (s *Stack) deliverICMPError(m ipv4.ICMP) {
	st := s.ctr.get()
	kind, ok := tcp.ICMPKindOf(m.Type(), m.Code())
	if !ok {
		// Source Quench (deprecated by RFC 6633: "hosts MUST silently
		// discard" it), Redirect (for the IP layer; a host that is not
		// told otherwise keeps its routes) and codes without a meaning
		// for TCP.
		inc(&st.ICMP.ErrorsIgnored)
		return
	}
	q, err := ipv4.ParseQuote(m.Payload())
	if err != nil || !s.isLocalAddr(q.Source()) || q.FragmentOffset() != 0 {
		inc(&st.ICMP.DropBadQuote)
		return
	}
	qp := ip.Packet{
		Source:      q.Source(),
		Destination: q.Destination(),
		Protocol:    q.Protocol(),
		TTL:         q.TTL(),
		TOS:         q.TOS(),
		Datagram:    q,
		Payload:     q.Payload(),
	}
	switch qp.Protocol {
	case ip.ProtocolTCP:
		s.deliverTCPICMPError(int(m.NextHopMTU()), kind, &qp, int(q.TotalLength()))
	case ip.ProtocolUDP:
		errno, hard := udpICMPErrno(m.Type(), m.Code())
		s.deliverUDPICMPError(errno, hard, &qp)
	default:
		inc(&st.ICMP.ErrorsIgnored) // no other transport yet
	}
}

// deliverTCPICMPError hands an ICMP or ICMPv6 error of kind about q, a
// quoted TCP segment of quotedLen bytes (the quoted IP header's length
// field), to its connection or to a listener's half-open entry; mtu is
// the Next-Hop MTU of a fragmentation-needed message or the MTU of an
// ICMPv6 Packet Too Big.
func (s *Stack) deliverTCPICMPError(mtu int, kind tcp.ICMPKind, q *ip.Packet, quotedLen int) {
	st := s.ctr.get()
	src, dst, seq, err := tcp.ParseQuotedSegment(q.Payload)
	if err != nil {
		inc(&st.ICMP.DropBadQuote)
		return
	}
	t := tcp.Tuple{
		Local:  netip.AddrPortFrom(q.Source, src),
		Remote: netip.AddrPortFrom(q.Destination, dst),
	}
	ep, _ := s.tcp.demux.Lookup(t)
	e := tcp.ICMPError{Kind: kind, Seq: seq, QuotedLength: quotedLen}
	if kind == tcp.ICMPFragmentationNeeded {
		e.MTU = mtu
	}
	if ep == nil {
		// Perhaps a SYN-ACK of a listener's half-open entry.
		found := false
		if dl, ok := s.tcp.demux.Listener(t.Local); ok {
			l := (*TCPListener)(dl)
			l.mu.Lock()
			_, found = l.l.HandleICMP(t, e)
			l.mu.Unlock()
		}
		if !found {
			inc(&st.ICMP.ErrorsNoConnection)
		}
		return
	}
	ep.lock()
	if !ep.removed {
		now := s.clock.Now()
		lowered := ep.c.HandleICMP(now, e, &ep.out) == tcp.ICMPMTULowered
		mtu := ep.c.PathMTU()
		ep.afterLocked()
		ep.release()
		if lowered {
			s.pmtu.lower(t.Remote.Addr(), mtu, now)
			s.notifyPathMTU(ep, t.Remote.Addr(), mtu)
		}
		return
	}
	inc(&st.ICMP.ErrorsNoConnection)
	ep.release()
}

// notifyPathMTU lowers the path MTU of every other connection to dst
// (RFC 1191 §6.2: "Any packetization layer instance (for example, a TCP
// connection) that is actively using the path must be notified if the
// PMTU estimate is decreased"). Accepted messages are rare (each lowers
// an estimate), so the walk over the table costs little.
func (s *Stack) notifyPathMTU(from *tcpEndpoint, dst netip.Addr, mtu int) {
	var eps []*tcpEndpoint
	s.tcp.demux.Range(func(t tcp.Tuple, ep *tcpEndpoint) bool {
		if t.Remote.Addr() == dst && ep != from {
			eps = append(eps, ep)
		}
		return true
	})
	for _, ep := range eps {
		ep.lock()
		if !ep.removed && ep.c != nil {
			ep.c.SetPathMTU(mtu)
			ep.afterLocked()
		}
		ep.release()
	}
}

// pmtuTimeout is how long a lowered path MTU is remembered for new
// connections: RFC 1191 §6.3, "When a PMTU value has not been decreased
// for a while (on the order of 10 minutes), the PMTU estimate should be
// set to the first-hop data-link MTU".
const pmtuTimeout = 10 * time.Minute

// pmtuCacheMax bounds the cache. Only messages a connection accepted (its
// sequence number in flight) add entries, so the bound is seldom reached;
// then expired entries go first, else an arbitrary one.
const pmtuCacheMax = 4096

// pmtuCache remembers, per destination, a path MTU lowered by a
// fragmentation-needed message, for the connections opened afterwards
// (RFC 1191 §6.2: "the IP layer should associate each PMTU value that it
// has learned with a specific path"; ustack is single-homed per route, so
// the destination names the path).
type pmtuCache struct {
	mu sync.Mutex // guards m
	m  map[netip.Addr]pmtuEntry
}

type pmtuEntry struct {
	mtu     int
	expires time.Time
}

// lower records mtu for dst until now+pmtuTimeout.
func (c *pmtuCache) lower(dst netip.Addr, mtu int, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[netip.Addr]pmtuEntry)
	}
	if _, ok := c.m[dst]; !ok && len(c.m) >= pmtuCacheMax {
		for a, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, a)
			}
		}
		for a := range c.m {
			if len(c.m) < pmtuCacheMax {
				break
			}
			delete(c.m, a)
		}
	}
	c.m[dst] = pmtuEntry{mtu: mtu, expires: now.Add(pmtuTimeout)}
}

// lookup returns the remembered path MTU of dst, if one has not aged out.
func (c *pmtuCache) lookup(dst netip.Addr, now time.Time) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[dst]
	if !ok {
		return 0, false
	}
	if !now.Before(e.expires) {
		delete(c.m, dst)
		return 0, false
	}
	return e.mtu, true
}

// applyPathMTU gives a new connection the path MTU remembered for its
// destination.
func (s *Stack) applyPathMTU(c *tcp.Conn, now time.Time) {
	if mtu, ok := s.pmtu.lookup(c.Tuple().Remote.Addr(), now); ok {
		c.SetPathMTU(mtu)
	}
}

// PathMTU returns the path MTU the stack remembers for dst from an ICMP
// fragmentation-needed message (RFC 1191), if it has not aged out.
func (s *Stack) PathMTU(dst netip.Addr) (int, bool) {
	if s.usable() != nil {
		return 0, false
	}
	return s.pmtu.lookup(dst, s.clock.Now())
}
