package stack

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"

	"github.com/ustack/ustack/filter"
	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vnet"
)

// This file is the stack as a router (Options.Forwarding): IPv4
// datagrams for addresses the stack does not have are routed on, as RFC
// 1812 §5.2 describes, through the hook points prerouting, forward and
// postrouting (DESIGN.md). It is not the transparent forwarder of
// forwarder.go, which terminates TCP and UDP flows as if they were for
// the stack; ipforward6.go is the same for IPv6.
//
// A forwarded datagram goes, in Linux's order (ip_rcv, ip_forward,
// ip_output):
//
//	prerouting hook (DNAT may change the destination: route after it)
//	route lookup (fwdLookup, cached by destination)
//	TTL check (RFC 1812 §5.3.1): time exceeded
//	MTU check (RFC 1191 §4): fragmentation needed when DF is set
//	forward hook (the FORWARD chain)
//	TTL decrement with the incremental checksum update (RFC 1624)
//	postrouting hook (SNAT, MASQUERADE)
//	neighbour resolution and out, in fragments if larger than the MTU
//
// Without a filter nothing allocates: the datagram is copied once into a
// pooled buffer with room for the outgoing link header, and the route
// comes from fwdCache without the stack's lock.

// fwdCacheSlots is the number of destinations fwdCache holds (8 KB of
// pointers, made only for a stack that forwards). Past about as many
// destinations in use at once, slots are taken over by other
// destinations, and each miss costs a route lookup under the stack's
// read lock and, once the next hop's MAC is known, a small allocation.
const fwdCacheSlots = 1024

// fwdCache caches forwarding decisions by destination, direct-mapped:
// each slot holds an immutable fwdRoute, read with one atomic load and
// valid while Stack.routeGen has its generation (routes, addresses and
// ARP or NDP entries that change bump it, as for connections' route
// caches). A decision is stored only once complete (the next hop's MAC
// known), so the readers of several NICs never write to a shared entry.
type fwdCache struct {
	slots [fwdCacheSlots]atomic.Pointer[fwdRoute]
}

// fwdRoute is the forwarding decision for one destination.
type fwdRoute struct {
	// rc is the route out; rc.nic is nil when there is none (for a
	// local destination too).
	rc routeCache
	// local: the destination is one of the stack's addresses (on another
	// NIC than the datagram came in on).
	local bool
	// bcast: the destination is a directed broadcast address of the
	// outgoing NIC's subnet.
	bcast bool
}

// fwdSlot is the slot of fwdCache for a.
func fwdSlot(a netip.Addr) uint {
	b := a.As16()
	h := binary.LittleEndian.Uint64(b[:8]) ^ binary.LittleEndian.Uint64(b[8:])
	return uint((h * 0x9e3779b97f4a7c15) >> (64 - 10)) // Fibonacci hashing; 10 bits for 1024 slots
}

// fwdLookup returns the forwarding decision for dst: from the cache
// while its generation holds, else routed afresh (and cached once
// complete).
func (s *Stack) fwdLookup(dst netip.Addr) fwdRoute {
	gen := s.routeGen.Load()
	if e := s.fwdRoutes.slots[fwdSlot(dst)].Load(); e != nil && e.rc.gen == gen && e.rc.dst == dst {
		return *e
	}
	e := fwdRoute{rc: routeCache{gen: gen, dst: dst}}
	switch {
	case s.isLocalAddr(dst):
		e.local = true
	case s.resolve(&e.rc, dst):
		e.bcast = e.rc.nic.isBroadcast(dst)
	default:
		e.rc = routeCache{gen: gen, dst: dst} // no route: remembered too
	}
	if e.rc.nic == nil || e.rc.macOK {
		s.fwdStore(e)
	}
	return e
}

// fwdStore caches e for its destination.
func (s *Stack) fwdStore(e fwdRoute) {
	c := e
	s.fwdRoutes.slots[fwdSlot(e.rc.dst)].Store(&c)
}

// fwdLearned caches the route rc a forwarded datagram went out by, if
// sending it resolved the next hop's MAC that the cached decision e did
// not have.
func (s *Stack) fwdLearned(e *fwdRoute, rc *routeCache) {
	if rc.macOK && !e.rc.macOK && rc.gen == s.routeGen.Load() {
		s.fwdStore(fwdRoute{rc: *rc, bcast: e.bcast})
	}
}

// forwardable4 reports whether a may be the source or destination of a
// forwarded datagram. RFC 1812 §5.3.7: "A router SHOULD NOT forward any
// packet that has an invalid IP source address or a source address on
// network 0", nor one on network 127, and the same for destinations,
// Class E included (§4.2.3.1); multicast needs a multicast router, which
// ustack is not; RFC 3927 §7: "A router MUST NOT forward a packet with
// an IPv4 Link-Local source or destination address".
func forwardable4(a netip.Addr) bool {
	b := a.As4()
	switch {
	case b[0] == 0, b[0] == 127, b[0] >= 224: // network 0, loopback, multicast, Class E, 255.255.255.255
		return false
	case b[0] == 169 && b[1] == 254: // 169.254/16
		return false
	}
	return true
}

// forward decides a datagram received on n for an address n does not
// have (p describes it; p.Broadcast is the link layer's broadcast): it
// reports true when the destination is another of the stack's addresses,
// which a router takes for itself, and otherwise routes the datagram on
// (Options.Forwarding) or drops it, counted (a host, RFC 1122 §3.3.1).
func (n *nic) forward(p *ip.Packet) (local bool) {
	s := n.s
	st := s.ctr.get()
	if !s.opts.Forwarding {
		inc(&st.IPv4.DropNotForUs)
		return false
	}
	// RFC 1812 §5.3.4: a datagram sent to a link-layer broadcast whose
	// IP destination is not a broadcast "MUST be silently discarded".
	if p.Broadcast || !forwardable4(p.Source) || !forwardable4(p.Destination) {
		inc(&st.IPv4.ForwardNotForwardable)
		return false
	}
	e := s.fwdLookup(p.Destination)
	if e.local {
		return true
	}
	// Hook point: prerouting (DESIGN.md), for datagrams to forward.
	if f := s.filt.Load(); f != nil {
		s.forwardHooks(f, n, p, e)
		return false
	}
	s.forwardIPv4(n, p, e, nil, nil)
	return false
}

// forwardIPv4 routes the datagram p, received on in, by e after the
// prerouting hook: the checks of RFC 1812 §5.2 with their ICMP errors,
// the forward hook, the TTL decrement, the postrouting hook and out. f
// and fp are the filter and the datagram's filter.Packet (fp.IP is p),
// nil without a filter.
func (s *Stack) forwardIPv4(in *nic, p *ip.Packet, e fwdRoute, f *filter.Filter, fp *filter.Packet) {
	st := s.ctr.get()
	h := ipv4.Header(p.Datagram)
	out := e.rc.nic
	switch {
	case out == nil:
		// RFC 1812 §5.2.7.1: "If a router cannot forward a packet because
		// it has no routes at all ... to the destination specified in the
		// packet, then the router MUST generate a Destination Unreachable,
		// Code 0 (Network Unreachable) ICMP message."
		inc(&st.IPv4.ForwardNoRoute)
		s.forwardError4(p, ipv4.TypeDestinationUnreachable, ipv4.CodeNetUnreachable, 0)
		return
	case e.bcast:
		// RFC 2644: "routers MUST ... have an option to turn off" the
		// forwarding of directed broadcasts, "and this option MUST default
		// to blocking"; ustack has none to turn on.
		inc(&st.IPv4.ForwardNotForwardable)
		return
	case p.TTL <= 1:
		// RFC 1812 §5.3.1: "If the TTL is reduced to zero (or less), the
		// packet MUST be discarded, and if the destination is not a
		// multicast address the router MUST send an ICMP Time Exceeded
		// message, Code 0 (TTL Exceeded in Transit)".
		inc(&st.IPv4.ForwardTimeExceeded)
		s.forwardError4(p, ipv4.TypeTimeExceeded, ipv4.CodeTTLExceeded, 0)
		return
	}
	mtu := e.rc.mtu
	if forwardSize4(h, &p.Offload) > mtu && h.DontFragment() {
		// RFC 1191 §4: a router that must not fragment sends
		// Destination Unreachable, Code 4, with "the MTU of the
		// next-hop network" in the low-order 16 bits of the second word.
		inc(&st.IPv4.ForwardTooBig)
		s.forwardError4(p, ipv4.TypeDestinationUnreachable, ipv4.CodeFragmentationNeeded, uint32(mtu))
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
	decrementTTL(pkt)
	p.Datagram, p.Payload, p.TTL = pkt, pkt[h.HeaderLength():], p.TTL-1
	if f != nil {
		// Hook point: postrouting (DESIGN.md)
		if v := f.Hook(filter.Postrouting, fp, now); v.Action != filter.Accept {
			s.refuseForward(in, p, v)
			return
		}
	}
	pb.o = p.Offload
	pb.o.DataValid = false
	if pb.o.GSOType == 0 && pb.o.NeedsChecksum {
		// A checksum the sending host left to its device (the kernel's
		// CHECKSUM_PARTIAL over a TAP): completed here, for a next hop
		// that is not that device.
		if !vnet.CompleteChecksum(pkt, int(pb.o.ChecksumStart), int(pb.o.ChecksumOffset)) {
			inc(&st.Link.DropBadOffload)
			return
		}
		pb.o = ip.Offload{}
	}
	if pb.o.GSOType == 0 && len(pkt) > mtu {
		inc(&st.IPv4.ForwardFragmented) // RFC 1812 §5.2.6; output cuts it (RFC 791 §3.2)
	}
	rc := e.rc
	if out.output(pb, pkt, &rc, nil) {
		inc(&st.IPv4.Forwarded)
	}
	pb.o = ip.Offload{}
	s.fwdLearned(&e, &rc)
}

// forwardSize4 is the size of the largest datagram h becomes on the wire:
// h itself, or for a TCP super-segment (o.GSOType) its headers and one
// segment's payload, which is what the MTU check of a router that
// segments it applies to (Linux's skb_gso_validate_network_len).
func forwardSize4(h ipv4.Header, o *ip.Offload) int {
	if o.GSOType == 0 {
		return len(h)
	}
	thl := 20
	if pl := h.Payload(); len(pl) > 12 {
		thl = int(pl[12]>>4) * 4
	}
	return min(len(h), h.HeaderLength()+thl+int(o.GSOSize))
}

// decrementTTL takes one from the TTL of the IPv4 header at pkt and
// updates its checksum incrementally: RFC 1812 §5.3.1 ("When a router
// forwards a packet, it MUST reduce the TTL by at least one"), RFC 1624
// eqn. 3 over the 16-bit word TTL and Protocol share (RFC 1141 did this
// for the TTL first). The caller has checked that the TTL is above 1.
func decrementTTL(pkt []byte) {
	old := binary.BigEndian.Uint16(pkt[8:])
	pkt[8]--
	hc := checksum.Update(binary.BigEndian.Uint16(pkt[10:]), old, binary.BigEndian.Uint16(pkt[8:]))
	binary.BigEndian.PutUint16(pkt[10:], hc)
}

// forwardError4 answers the datagram p a router could not forward with
// the ICMP error typ and code (and word, the next-hop MTU of a
// fragmentation needed), unless RFC 1812 §4.3.2.7 forbids one (the rules
// of RFC 1122 §3.2.2: not about an ICMP error, a broadcast or multicast,
// a non-initial fragment, a source that names no host), within the
// error rate limit (§4.3.2.8). Its source is the address of the NIC it
// leaves by (§4.3.2.4: "one of the IP addresses associated with the
// physical interface over which the ICMP message is transmitted").
func (s *Stack) forwardError4(p *ip.Packet, typ, code uint8, word uint32) {
	h := ipv4.Header(p.Datagram)
	if !ipv4.MayReplyWithError(h, p.Broadcast) {
		return
	}
	s.sendICMPErrorWord(netip.Addr{}, p.Source, h, typ, code, word)
}
