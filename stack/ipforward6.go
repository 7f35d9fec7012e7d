package stack

import (
	"net/netip"

	"github.com/ustack/ustack/filter"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
)

// forwardable6 reports whether a may be the source or destination of a
// forwarded packet: not unspecified, loopback or multicast (ustack
// routes no multicast), and not link-local (RFC 4291 §2.5.6: "Routers
// must not forward any packets with Link-Local source or destination
// addresses to other links"; a link-local source is answered, in
// forward6).
func forwardable6(a netip.Addr) bool {
	return !a.IsUnspecified() && !a.IsLoopback() && !a.IsMulticast() && !a.IsLinkLocalUnicast() && !a.Is4In6()
}

// forward6 decides an IPv6 packet h received on n for an address n does
// not have (linkMcast: sent to a link-layer multicast or broadcast): it
// reports true when the destination is another of the stack's
// addresses, and otherwise routes the packet on (Options.Forwarding, RFC
// 8200 §3) or drops it, counted (a host).
func (n *nic) forward6(h ipv6.Header, linkMcast bool) (local bool) {
	s := n.s
	st := s.ctr.get()
	if !s.opts.Forwarding {
		inc(&st.IPv6.DropNotForUs)
		return false
	}
	src, dst := h.Source(), h.Destination()
	if linkMcast || !forwardable6(dst) || (!forwardable6(src) && !src.IsLinkLocalUnicast()) {
		inc(&st.IPv6.ForwardNotForwardable)
		return false
	}
	e := s.fwdLookup(dst)
	if e.local {
		return true
	}
	if (e.rc.nic == nil || e.rc.nic == n) && n.tentative(dst) {
		// Our own address under duplicate address detection (RFC 4862
		// §5.4: packets to it are dropped), not a neighbour's to route to.
		inc(&st.IPv6.DropNotForUs)
		return false
	}
	c, err := ipv6.ParseExtensions(h)
	if err != nil {
		// A router does not examine the options that are its
		// destination's (RFC 8200 §4: "extension headers ... are not
		// processed, inserted, or deleted by any node along a packet's
		// delivery path"): the packet goes on as it is.
		c = ipv6.Chain{Proto: h.NextHeader(), Offset: ipv6.HeaderLen}
	}
	p := ip.Packet{
		Source:      src,
		Destination: dst,
		Protocol:    c.Proto,
		TTL:         h.HopLimit(),
		TOS:         h.TrafficClass(),
		NIC:         int(n.id),
		Datagram:    h,
		Payload:     h[c.Offset:],
	}
	if src.IsLinkLocalUnicast() {
		// RFC 4443 §3.1: Code 2, "beyond scope of source address", when
		// "the destination is beyond the scope of the source address".
		inc(&st.IPv6.ForwardNotForwardable)
		s.sendICMPv6ErrorAbout(n, h, c, false, ipv6.TypeDestinationUnreachable, ipv6.CodeBeyondScope, 0)
		return false
	}
	// Hook point: prerouting (DESIGN.md), for packets to forward.
	if f := s.filt.Load(); f != nil {
		s.forwardHooks(f, n, &p, e)
		return false
	}
	s.forwardIPv6(n, &p, c, e, nil, nil)
	return false
}

// forwardIPv6 routes the packet p (its extension header chain c),
// received on in, by e after the prerouting hook: no route, hop limit
// and MTU checks with their ICMPv6 errors, the forward hook, the Hop
// Limit decrement, the postrouting hook and out. Routers never fragment
// (RFC 8200 §4.5). f and fp are nil without a filter.
func (s *Stack) forwardIPv6(in *nic, p *ip.Packet, c ipv6.Chain, e fwdRoute, f *filter.Filter, fp *filter.Packet) {
	st := s.ctr.get()
	h := ipv6.Header(p.Datagram)
	out := e.rc.nic
	switch {
	case out == nil:
		// RFC 4443 §3.1: Code 0, "no route to destination".
		inc(&st.IPv6.ForwardNoRoute)
		s.sendICMPv6ErrorAbout(in, h, c, false, ipv6.TypeDestinationUnreachable, ipv6.CodeNoRoute, 0)
		return
	case p.TTL <= 1:
		// RFC 8200 §3: "the packet is discarded if Hop Limit was zero when
		// received or is decremented to zero"; RFC 4443 §3.3: "If a router
		// receives a packet with a Hop Limit of zero, or if a router
		// decrements a packet's Hop Limit to zero, it MUST discard the
		// packet and originate an ICMPv6 Time Exceeded message with Code 0".
		inc(&st.IPv6.ForwardTimeExceeded)
		s.sendICMPv6ErrorAbout(in, h, c, false, ipv6.TypeTimeExceeded, ipv6.CodeHopLimitExceeded, 0)
		return
	case len(h) > e.rc.mtu:
		// RFC 4443 §3.2: "A Packet Too Big MUST be sent by a router in
		// response to a packet that it cannot forward because the packet
		// is larger than the MTU of the outgoing link", the MTU field
		// set to "the Maximum Transmission Unit of the next-hop link".
		inc(&st.IPv6.ForwardTooBig)
		s.sendICMPv6ErrorAbout(in, h, c, false, ipv6.TypePacketTooBig, 0, uint32(e.rc.mtu))
		return
	}
	now, ok := s.forwardChain(f, in, out, fp)
	if !ok {
		return
	}
	pb := s.bufs.Get().(*packetBuf)
	defer s.bufs.Put(pb)
	pkt := pb.b[link.EthernetHeaderLen : link.EthernetHeaderLen+len(h)]
	copy(pkt, h)
	pkt[7]-- // RFC 8200 §3: Hop Limit, "Decremented by 1 by each node that forwards the packet"
	p.Datagram, p.Payload, p.TTL = pkt, pkt[c.Offset:], p.TTL-1
	if f != nil {
		// Hook point: postrouting (DESIGN.md)
		if v := f.Hook(filter.Postrouting, fp, now); v.Action != filter.Accept {
			s.refuseForward(in, p, v)
			return
		}
	}
	rc := e.rc
	inc(&st.IPv6.PacketsOut)
	if out.outputFrame(pb.b[:link.EthernetHeaderLen+len(pkt)], &rc) {
		inc(&st.IPv6.Forwarded)
	}
	s.fwdLearned(&e, &rc)
}
