package stack

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vnet"
	"github.com/ustack/ustack/neigh"
	"github.com/ustack/ustack/tcp"
)

// headroom6 is where the transport payload of an IPv6 packet sits in a
// packetBuf: after the Ethernet and IPv6 headers. A payload built at
// headroom (the IPv4 layout every transport uses) is moved there by
// sendIPv6.
const headroom6 = link.EthernetHeaderLen + ipv6.HeaderLen

// tentativeAddr is an address under duplicate address detection (RFC 4862
// §5.4): not yet assigned, not a source, and packets to it are dropped
// (but NDP's).
type tentativeAddr struct {
	addr      netip.Prefix
	linkLocal bool
	auto      bool // formed by SLAAC (RFC 4862 §5.5.3)
	left      int  // Neighbor Solicitations still to send
	deadline  time.Time
}

// initIPv6 makes n's IPv6 state: its neighbour cache, its reassembler
// and the all-nodes group, which every interface joins (RFC 4291 §2.8).
func (n *nic) initIPv6() {
	n.nd = neigh.New(n.s.opts.NDP)
	n.reasm6 = ipv6.NewReassembler(n.s.opts.Reassembly6)
	g := []netip.Addr{ipv6.AllNodes}
	n.groups.Store(&g)
}

// ipv6Capable reports whether n can carry IPv6: RFC 8200 §5 asks for a
// link MTU of at least 1280.
func (n *nic) ipv6Capable() bool { return n.mtu >= ipv6.MinMTU }

// startIPv6 forms the NIC's link-local address from its MAC by modified
// EUI-64 (RFC 4291 §2.5.6, Appendix A; RFC 4862 §5.3), or with
// Options.StableSecret as an RFC 7217 stable address, and starts its
// duplicate address detection; with Options.SLAAC it also solicits
// routers (RFC 4861 §6.3.7).
func (n *nic) startIPv6() {
	if !n.ethernet() || !n.ipv6Capable() {
		return
	}
	var counter uint8
	iid, ok := n.interfaceID(ipv6.LinkLocalPrefix, &counter)
	if !ok {
		return
	}
	ll := ipv6.AddrFromInterfaceID(ipv6.LinkLocalPrefix.Addr(), iid)
	n.startDAD(netip.PrefixFrom(ll, 64), true, false)
	if n.s.opts.SLAAC {
		n.sendRouterSolicitation()
	}
}

// dadTransmits is DupAddrDetectTransmits (RFC 4862 §5.1).
func (s *Stack) dadTransmits() int {
	switch t := s.opts.DADTransmits; {
	case t < 0:
		return 0
	case t == 0:
		return 1
	default:
		return t
	}
}

// retransTimer is RetransTimer (RFC 4861 §10), the spacing of DAD's
// solicitations.
func (s *Stack) retransTimer() time.Duration {
	if d := s.opts.NDP.RetransTimer; d > 0 {
		return d
	}
	return neigh.DefaultRetransTimer
}

// startDAD joins addr's solicited-node group and, unless DAD is off,
// makes it tentative and sends the first Neighbor Solicitation from the
// unspecified address (RFC 4862 §5.4.2); with DAD off the address is
// assigned at once.
func (n *nic) startDAD(addr netip.Prefix, linkLocal, auto bool) {
	a := addr.Addr()
	snm := ipv6.SolicitedNodeMulticast(a)
	// RFC 4862 §5.4.2: "the node MUST join the all-nodes multicast
	// address and the solicited-node multicast address of the tentative
	// address" before sending the solicitation.
	n.join(snm)
	transmits := n.s.dadTransmits()
	if transmits == 0 {
		n.assign(addr, linkLocal)
		return
	}
	now := n.s.clock.Now()
	n.ndMu.Lock()
	n.tent = append(n.tent, tentativeAddr{addr: addr, linkLocal: linkLocal, auto: auto, left: transmits - 1, deadline: now.Add(n.s.retransTimer())})
	n.ndMu.Unlock()
	inc(&n.s.ctr.get().NDP.DADStarted)
	n.sendDADSolicitation(a)
	n.s.kick()
}

// assign makes addr one of the NIC's addresses, with its on-link route
// (for a link-local address, fe80::/64 on this NIC).
func (n *nic) assign(addr netip.Prefix, linkLocal bool) {
	s := n.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if linkLocal {
		a := addr.Addr()
		n.ll.Store(&a)
		_ = s.routes.Add(ip.Route{Destination: ipv6.LinkLocalPrefix, NIC: int(n.id)}) // ErrRouteExists: kept
	} else {
		if err := s.routes.Add(ip.Route{Destination: addr.Masked(), NIC: int(n.id)}); err != nil && !errors.Is(err, ip.ErrRouteExists) {
			return
		}
		as := append(slices.Clip(n.addrList()), addr)
		n.addrs.Store(&as)
	}
	s.routeChanged()
}

// tentative reports whether a is one of n's tentative addresses.
func (n *nic) tentative(a netip.Addr) bool {
	n.ndMu.Lock()
	defer n.ndMu.Unlock()
	for _, t := range n.tent {
		if t.addr.Addr() == a {
			return true
		}
	}
	return false
}

// dadFailed ends the detection of the tentative address a, which another
// node has (RFC 4862 §5.4.5: "the address MUST NOT be assigned to the
// interface"), and leaves its solicited-node group.
func (n *nic) dadFailed(a netip.Addr) {
	n.ndMu.Lock()
	i := slices.IndexFunc(n.tent, func(t tentativeAddr) bool { return t.addr.Addr() == a })
	if i < 0 {
		n.ndMu.Unlock()
		return
	}
	n.tent = slices.Delete(n.tent, i, i+1)
	n.ndMu.Unlock()
	inc(&n.s.ctr.get().NDP.DADFailed)
	n.s.log.Warn("duplicate address detected", "nic", n.id, "addr", a)
	if !n.hasAddr(a) && !n.tentativeShares(ipv6.SolicitedNodeMulticast(a)) {
		n.leave(ipv6.SolicitedNodeMulticast(a))
	}
	n.autoDADFailed(a)
}

// tentativeShares reports whether another tentative or assigned address
// of n has the solicited-node group g.
func (n *nic) tentativeShares(g netip.Addr) bool {
	for _, p := range n.addrList() {
		if p.Addr().Is6() && ipv6.SolicitedNodeMulticast(p.Addr()) == g {
			return true
		}
	}
	if ll := n.ll.Load(); ll != nil && ipv6.SolicitedNodeMulticast(*ll) == g {
		return true
	}
	n.ndMu.Lock()
	defer n.ndMu.Unlock()
	for _, t := range n.tent {
		if ipv6.SolicitedNodeMulticast(t.addr.Addr()) == g {
			return true
		}
	}
	return false
}

// linkLocal returns the NIC's link-local address once assigned, else the
// zero Addr.
func (n *nic) linkLocal() netip.Addr {
	if ll := n.ll.Load(); ll != nil {
		return *ll
	}
	return netip.Addr{}
}

// joined reports whether n listens to the multicast group g.
func (n *nic) joined(g netip.Addr) bool {
	if p := n.groups.Load(); p != nil {
		return slices.Contains(*p, g)
	}
	return false
}

// joinedMAC reports whether the Ethernet multicast address m (33:33:xx,
// RFC 2464 §7) is that of a group n joined.
func (n *nic) joinedMAC(m link.MAC) bool {
	if p := n.groups.Load(); p != nil {
		for _, g := range *p {
			if ipv6.MulticastMAC(g) == m {
				return true
			}
		}
	}
	return false
}

// join adds g to the NIC's groups and reports it (RFC 3810 §6.1:
// an unsolicited report when the state of a group changes; the all-nodes
// group is never reported, §6).
func (n *nic) join(g netip.Addr) {
	n.ndMu.Lock()
	old := n.groups.Load()
	if slices.Contains(*old, g) {
		n.ndMu.Unlock()
		return
	}
	gs := append(slices.Clip(*old), g)
	n.groups.Store(&gs)
	n.ndMu.Unlock()
	n.sendMLDReport([]ipv6.MulticastAddressRecord{{Type: ipv6.ChangeToExclude, Group: g}})
}

// leave removes g from the NIC's groups and reports it.
func (n *nic) leave(g netip.Addr) {
	n.ndMu.Lock()
	old := *n.groups.Load()
	i := slices.Index(old, g)
	if i < 0 {
		n.ndMu.Unlock()
		return
	}
	gs := slices.Delete(slices.Clone(old), i, i+1)
	n.groups.Store(&gs)
	n.ndMu.Unlock()
	n.sendMLDReport([]ipv6.MulticastAddressRecord{{Type: ipv6.ChangeToInclude, Group: g}})
}

// sendMLDReport sends a Version 2 Multicast Listener Report (RFC 3810
// §5.2) with records to all MLDv2-capable routers, from the link-local
// address or, before it is valid, the unspecified address (§5.2.13).
func (n *nic) sendMLDReport(records []ipv6.MulticastAddressRecord) {
	if !n.ethernet() {
		return
	}
	pb := n.s.bufs.Get().(*packetBuf)
	defer n.s.bufs.Put(pb)
	l := ipv6.PutMLDv2Report(pb.b[link.EthernetHeaderLen:], n.linkLocal(), records)
	if l == 0 {
		return
	}
	frame := pb.b[:link.EthernetHeaderLen+l]
	link.PutEthernetHeader(frame, ipv6.MulticastMAC(ipv6.AllMLDv2Routers), n.mac, link.EtherTypeIPv6)
	inc(&n.s.ctr.get().NDP.MLDReportsOut)
	inc(&n.s.ctr.get().IPv6.PacketsOut)
	n.writeFrame(frame)
}

// reportGroups answers an MLD query (RFC 3810 §6.2) with a Current State
// Record for every group but all-nodes, at once rather than after a
// random delay.
func (n *nic) reportGroups() {
	var recs []ipv6.MulticastAddressRecord
	for _, g := range *n.groups.Load() {
		if g != ipv6.AllNodes {
			recs = append(recs, ipv6.MulticastAddressRecord{Type: ipv6.ModeIsExclude, Group: g})
		}
	}
	if len(recs) > 0 {
		n.sendMLDReport(recs)
	}
}

// onLink returns a route to dst straight out of n: dst is the next hop.
// For a multicast dst the MAC is its group's (RFC 2464 §7).
func (n *nic) onLink(dst netip.Addr) routeCache {
	rc := routeCache{gen: n.s.routeGen.Load(), dst: dst, nic: n, src: n.sourceFor(dst), hop: dst, mtu: n.mtu}
	if !n.ethernet() {
		rc.macOK = true
	} else if dst.IsMulticast() {
		rc.mac, rc.macOK = ipv6.MulticastMAC(dst), true
	}
	return rc
}

// sendNDP sends the NDP message built by put into b (from src, the
// caller's choice) from n to dst on-link, with Hop Limit 255 (RFC 4861
// §7.1: "The IP Hop Limit field has a value of 255").
func (n *nic) sendNDP(src, dst netip.Addr, put func(b []byte) int) bool {
	pb := n.s.bufs.Get().(*packetBuf)
	defer n.s.bufs.Put(pb)
	l := put(pb.b[headroom6 : headroom6+ipv6.MinMTU])
	if l == 0 {
		return false
	}
	rc := n.onLink(dst)
	p := ip.Packet{Source: src, Destination: dst, Protocol: ip.ProtocolICMPv6, TTL: ipv6.NDPHopLimit, Payload: pb.b[headroom6 : headroom6+l]}
	return n.sendIPv6(pb, &p, &rc, nil)
}

// sendDADSolicitation sends a Neighbor Solicitation for the tentative
// address a, from the unspecified address to its solicited-node group,
// without a Source Link-Layer Address option (RFC 4862 §5.4.2).
func (n *nic) sendDADSolicitation(a netip.Addr) {
	snm := ipv6.SolicitedNodeMulticast(a)
	if n.sendNDP(netip.IPv6Unspecified(), snm, func(b []byte) int {
		return ipv6.PutNeighborSolicitation(b, netip.IPv6Unspecified(), snm, a, nil)
	}) {
		inc(&n.s.ctr.get().NDP.SolicitationsOut)
	}
}

// sendSolicitation sends a Neighbor Solicitation for target (RFC 4861
// §7.2.2): to its solicited-node group for address resolution, to mac
// for a unicast probe (§7.3.3), with our link-layer address.
func (n *nic) sendSolicitation(target netip.Addr, unicast bool, mac link.MAC) {
	src := n.sourceFor(target)
	if !src.IsValid() || !src.Is6() {
		return
	}
	dst := ipv6.SolicitedNodeMulticast(target)
	if unicast {
		dst = target
	}
	pb := n.s.bufs.Get().(*packetBuf)
	defer n.s.bufs.Put(pb)
	l := ipv6.PutNeighborSolicitation(pb.b[headroom6:], src, dst, target, n.mac[:])
	rc := n.onLink(dst)
	if unicast {
		rc.mac, rc.macOK = mac, true
	}
	p := ip.Packet{Source: src, Destination: dst, Protocol: ip.ProtocolICMPv6, TTL: ipv6.NDPHopLimit, Payload: pb.b[headroom6 : headroom6+l]}
	if n.sendIPv6(pb, &p, &rc, nil) {
		inc(&n.s.ctr.get().NDP.SolicitationsOut)
	}
}

// sendRouterSolicitation asks the routers on the link to advertise (RFC
// 4861 §6.3.7), from the link-local address with our link-layer address,
// or from the unspecified address without it before that is valid.
func (n *nic) sendRouterSolicitation() {
	src := n.linkLocal()
	var lla []byte
	if src.IsValid() {
		lla = n.mac[:]
	} else {
		src = netip.IPv6Unspecified()
	}
	if n.sendNDP(src, ipv6.AllRouters, func(b []byte) int {
		return ipv6.PutRouterSolicitation(b, src, ipv6.AllRouters, lla)
	}) {
		inc(&n.s.ctr.get().NDP.RouterSolicitationsOut)
	}
}

// deliverIPv6 validates a received IPv6 packet (RFC 8200: its header, then
// its extension header chain), reassembles fragments and hands the packet
// to its upper layer as an ip.Packet. linkMcast reports that the frame
// was sent to an Ethernet multicast or broadcast address; o, unless nil,
// is the packet's offload metadata (a checksum verified or partial, a TCP
// super-segment: rxOffload.deliver, software GRO), which a reassembled
// packet does not keep.
func (n *nic) deliverIPv6(b []byte, linkMcast bool, o *ip.Offload) {
	st := n.s.ctr.get()
	if !n.ipv6Capable() {
		inc(&st.IPv6.DropNotForUs)
		return
	}
	h, err := ipv6.ParseHeader(b)
	if err != nil {
		if errors.Is(err, ipv6.ErrTruncated) {
			inc(&st.IPv6.DropTruncated)
		} else {
			inc(&st.IPv6.DropBadHeader)
		}
		return
	}
	inc(&st.IPv6.PacketsIn)
	dst := h.Destination()
	// Hook point: prerouting (DESIGN.md)
	fwd := false
	switch {
	case dst.IsMulticast():
		if !n.joined(dst) {
			inc(&st.IPv6.DropNotForUs)
			return
		}
	case n.hasAddr(dst):
	case !linkMcast && n.forwardable(dst):
		// A forwarder takes TCP and UDP to any address (forwarder.go), as
		// for IPv4; its upper-layer protocol, known after the extension
		// headers and reassembly, decides.
		fwd = true
	default:
		if o != nil && o.GSOType != 0 {
			// A TCP super-segment (the kernel's TSO6, software GRO) for
			// another address: routed as the segments it holds, as the
			// IPv6 forwarding path takes packets of the link's MTU.
			n.deliverSegments6(h, linkMcast, o)
			return
		}
		// Tentative addresses too (RFC 4862 §5.4: packets to them are
		// dropped, but NDP's, which go to multicast groups).
		if !n.forward6(h, linkMcast) {
			return
		}
	}
	c, err := ipv6.ParseExtensions(h)
	if err != nil {
		inc(&st.IPv6.DropBadExtension)
		if c.Problem.Send {
			n.s.sendICMPv6ErrorAbout(n, h, c, linkMcast, ipv6.TypeParameterProblem, c.Problem.Code, c.Problem.Pointer)
		}
		return
	}
	if fwd && c.Proto != ipv6.NextHeaderFragment && !n.forwards(c.Proto, dst) {
		// Not a flow the transparent forwarder takes: routed, or
		// dropped, as any packet for another address.
		if !n.forward6(h, linkMcast) {
			return
		}
		fwd = false
	}
	if c.Proto == ipv6.NextHeaderFragment {
		o = nil
		inc(&st.IPv6.FragmentsIn)
		now := n.s.clock.Now()
		n.reasm6Mu.Lock()
		prev := n.reasm6.NextDeadline()
		whole, err := n.reasm6.Add(h, c, now)
		next := n.reasm6.NextDeadline()
		n.reasm6Mu.Unlock()
		if !next.IsZero() && (prev.IsZero() || next.Before(prev)) {
			n.s.kick()
		}
		if err != nil {
			inc(&st.IPv6.DropReassembly)
			return
		}
		if whole == nil {
			return
		}
		inc(&st.IPv6.Reassembled)
		if h, err = ipv6.ParseHeader(whole); err != nil {
			inc(&st.IPv6.DropReassembly)
			return
		}
		if c, err = ipv6.ParseExtensions(h); err != nil || c.Proto == ipv6.NextHeaderFragment {
			inc(&st.IPv6.DropReassembly)
			return
		}
	}
	p := ip.Packet{
		Source:      h.Source(),
		Destination: dst,
		Protocol:    c.Proto,
		TTL:         h.HopLimit(),
		TOS:         h.TrafficClass(),
		NIC:         int(n.id),
		// A packet to a group must not be answered with an error or a
		// reset (RFC 4443 §2.4 (e.3), (e.4)).
		Broadcast: linkMcast || dst.IsMulticast(),
		Multicast: dst.IsMulticast(),
		Datagram:  h,
		Payload:   h[c.Offset:],
	}
	if fwd && !n.forwards(c.Proto, dst) {
		// Reassembled, and not the forwarder's: a router forwards
		// fragments as they came, never a reassembled packet.
		inc(&st.IPv6.DropNotForUs)
		return
	}
	if o != nil && c.Offset == ipv6.HeaderLen {
		// The metadata's offsets are from the fixed header's end
		// (vnet.Check); behind extension headers they do not apply.
		p.Offload = *o
	}
	n.s.deliverLocal6(n, &p, c)
}

// deliverSegments6 cuts the TCP/IPv6 super-segment h (metadata o) into
// its segments (vnet.Split, checksums completed) and delivers each.
func (n *nic) deliverSegments6(h ipv6.Header, linkMcast bool, o *ip.Offload) {
	fb := n.s.bufs.Get().(*packetBuf)
	defer n.s.bufs.Put(fb)
	if err := vnet.Split(h, 0, int(o.GSOSize), fb.b[:], func(seg []byte) error {
		n.deliverIPv6(seg, linkMcast, nil)
		return nil
	}); err != nil {
		inc(&n.s.ctr.get().Link.DropBadOffload)
	}
}

// deliverLocal6 hands a packet for this host, reassembled, to its upper
// layer, or answers it with a Parameter Problem (RFC 8200 §4: "an
// unrecognized Next Header type").
func (s *Stack) deliverLocal6(n *nic, p *ip.Packet, c ipv6.Chain) {
	// Hook points: prerouting and input (DESIGN.md), after reassembly.
	if !s.filterInput(n, p) {
		return
	}
	switch p.Protocol {
	case ip.ProtocolICMPv6:
		s.deliverICMPv6(n, p)
	case ipv6.NextHeaderNoNextHeader:
		// RFC 8200 §4.7: nothing follows; the packet is done.
	default:
		if !s.deliverTransport(n, p) {
			inc(&s.ctr.get().IPv6.DropUnknownProtocol)
			s.sendICMPv6ErrorAbout(n, ipv6.Header(p.Datagram), c, p.Broadcast, ipv6.TypeParameterProblem, ipv6.CodeUnrecognizedNextHeader, uint32(c.ProtoPointer))
		}
	}
}

// deliverICMPv6 handles an ICMPv6 message (RFC 4443): echo, errors, and
// NDP's and MLD's messages.
func (s *Stack) deliverICMPv6(n *nic, p *ip.Packet) {
	st := s.ctr.get()
	m, err := ipv6.ParseICMP(p.Payload, p.Source, p.Destination)
	if err != nil {
		inc(&st.ICMPv6.DropMalformed)
		return
	}
	h := ipv6.Header(p.Datagram)
	switch m.Type() {
	case ipv6.TypeEchoRequest:
		inc(&st.ICMPv6.EchoRequestsIn)
		if !s.allowEchoReply() {
			inc(&st.ICMPv6.EchoRepliesRateLimited)
			return
		}
		// RFC 4443 §4.2: the reply's source is the request's destination
		// if that was unicast; for a multicast request, an address of the
		// interface it came in on.
		src := p.Destination
		if src.IsMulticast() {
			src = netip.Addr{}
		}
		if s.sendICMPv6(n, src, p.Source, func(b []byte, src netip.Addr) int {
			return ipv6.PutEchoReply(b, m, src, p.Source)
		}) {
			inc(&st.ICMPv6.EchoRepliesOut)
		}
	case ipv6.TypeEchoReply:
		inc(&st.ICMPv6.EchoRepliesIn)
		s.pingReply(m.Ident(), m.Sequence())
	case ipv6.TypeNeighborSolicitation, ipv6.TypeNeighborAdvertisement, ipv6.TypeRouterAdvertisement,
		ipv6.TypeRouterSolicitation, ipv6.TypeRedirect:
		// RFC 4861 §6.1, §7.1: validate before acting on anything.
		if err := ipv6.ValidateNDP(h, m); err != nil {
			inc(&st.NDP.DropInvalid)
			return
		}
		switch m.Type() {
		case ipv6.TypeNeighborSolicitation:
			n.deliverNS(p, ipv6.NeighborSolicitation(m))
		case ipv6.TypeNeighborAdvertisement:
			n.deliverNA(p, ipv6.NeighborAdvertisement(m))
		case ipv6.TypeRouterAdvertisement:
			n.deliverRA(p, ipv6.RouterAdvertisement(m))
		default:
			inc(&st.ICMPv6.Ignored) // hosts ignore RS (§6.2.6); Redirect not acted on
		}
	case ipv6.TypeMulticastListenerQuery:
		if _, err := ipv6.ParseMLDQuery(h, m); err != nil {
			inc(&st.ICMPv6.DropMalformed)
			return
		}
		n.reportGroups()
	default:
		if ipv6.IsError(m.Type()) {
			inc(&st.ICMPv6.ErrorsIn)
			s.deliverICMPv6Error(m)
			return
		}
		inc(&st.ICMPv6.Ignored)
	}
}

// deliverNS handles a valid Neighbor Solicitation (RFC 4861 §7.2.3; RFC
// 4862 §5.4.3 while the target is tentative).
func (n *nic) deliverNS(p *ip.Packet, ns ipv6.NeighborSolicitation) {
	st := n.s.ctr.get()
	inc(&st.NDP.SolicitationsIn)
	target := ns.Target()
	src := p.Source
	if n.tentative(target) {
		// RFC 4862 §5.4.3: a solicitation from the unspecified address is
		// another node's DAD for the same address: ours fails. Others are
		// silently discarded.
		if src.IsUnspecified() {
			n.dadFailed(target)
		}
		return
	}
	if !n.hasAddr(target) {
		inc(&st.NDP.DropNotOurTarget)
		return
	}
	if !src.IsUnspecified() {
		if o := ipv6.FindOption(ns.Options(), ipv6.OptionSourceLinkLayerAddress); o != nil {
			now := n.s.clock.Now()
			n.ndMu.Lock()
			res := n.nd.Learn(src, o.LinkLayerAddress(), true, now)
			n.ndChangedLocked()
			n.releaseLocked(res)
			n.ndMu.Unlock()
		}
	}
	// §7.2.4: the advertisement goes to the solicitation's source with
	// Solicited set, or, from the unspecified address, to all nodes with
	// Solicited clear; Override is set, as the target is not anycast.
	dst, flags := src, uint8(ipv6.FlagSolicited|ipv6.FlagOverride)
	if src.IsUnspecified() {
		dst, flags = ipv6.AllNodes, ipv6.FlagOverride
	}
	if n.s.opts.Forwarding {
		flags |= ipv6.FlagRouter // §4.4: "R: Router flag. When set, the R-bit indicates that the sender is a router."
	}
	pb := n.s.bufs.Get().(*packetBuf)
	defer n.s.bufs.Put(pb)
	l := ipv6.PutNeighborAdvertisement(pb.b[headroom6:], target, dst, target, flags, n.mac[:])
	rc := n.onLink(dst)
	q := ip.Packet{Source: target, Destination: dst, Protocol: ip.ProtocolICMPv6, TTL: ipv6.NDPHopLimit, Payload: pb.b[headroom6 : headroom6+l]}
	if n.sendIPv6(pb, &q, &rc, nil) {
		inc(&st.NDP.AdvertisementsOut)
	}
}

// deliverNA handles a valid Neighbor Advertisement (RFC 4861 §7.2.5; RFC
// 4862 §5.4.4 when the target is tentative). The cache creates no entry
// for an unsolicited one.
func (n *nic) deliverNA(p *ip.Packet, na ipv6.NeighborAdvertisement) {
	inc(&n.s.ctr.get().NDP.AdvertisementsIn)
	target := na.Target()
	if n.tentative(target) {
		n.dadFailed(target) // §5.4.4: the address is in use
		return
	}
	var mac link.MAC
	if o := ipv6.FindOption(na.Options(), ipv6.OptionTargetLinkLayerAddress); o != nil {
		mac = o.LinkLayerAddress()
	}
	now := n.s.clock.Now()
	n.ndMu.Lock()
	res := n.nd.Advertisement(target, mac, neigh.Flags{Router: na.Router(), Solicited: na.Solicited(), Override: na.Override()}, now)
	n.ndChangedLocked()
	n.releaseLocked(res)
	n.ndMu.Unlock()
	if res.RouterLost {
		n.s.removeDefaultRouter(n, target)
	}
}

// releaseLocked sends the packets that waited for a neighbour's MAC,
// before n.ndMu is released (as deliverARP does, so later packets cannot
// overtake them).
func (n *nic) releaseLocked(res neigh.Result) {
	for _, pkt := range res.Released {
		pb := n.s.bufs.Get().(*packetBuf)
		f := pb.b[:link.EthernetHeaderLen+len(pkt)]
		link.PutEthernetHeader(f, res.ReleasedMAC, n.mac, link.EtherTypeIPv6)
		copy(f[link.EthernetHeaderLen:], pkt)
		n.writeFrame(f)
		n.s.bufs.Put(pb)
	}
}

// ndChangedLocked bumps the route generation when the neighbour cache
// changed an address it handed out; n.ndMu is held.
func (n *nic) ndChangedLocked() {
	if g := n.nd.Generation(); g != n.ndGen {
		n.ndGen = g
		n.s.routeChanged()
	}
}

// runTimers6 does n's IPv6 work due at now (DAD's solicitations and
// completions, neighbour cache timers, reassembly timeouts, the lifetimes
// of routers, prefixes and SLAAC addresses) and returns its next
// deadline.
func (n *nic) runTimers6(now time.Time) time.Time {
	var next time.Time
	earlier := func(d time.Time) {
		if !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	var probe []netip.Addr
	var done []tentativeAddr
	n.ndMu.Lock()
	for i := 0; i < len(n.tent); i++ {
		t := &n.tent[i]
		if now.Before(t.deadline) {
			earlier(t.deadline)
			continue
		}
		if t.left > 0 {
			t.left--
			t.deadline = now.Add(n.s.retransTimer())
			probe = append(probe, t.addr.Addr())
			earlier(t.deadline)
			continue
		}
		done = append(done, *t)
		n.tent = slices.Delete(n.tent, i, i+1)
		i--
	}
	var sol []neigh.Solicit
	var failed int
	n.nd.Tick(now, func(s neigh.Solicit) { sol = append(sol, s) }, func(f neigh.Failure) { failed++ })
	n.ndChangedLocked()
	earlier(n.nd.NextDeadline())
	n.ndMu.Unlock()
	for _, a := range probe {
		n.sendDADSolicitation(a)
	}
	for _, t := range done {
		// RFC 4862 §5.4: no answer within RetransTimer of the last
		// solicitation: the address is unique and assigned.
		inc(&n.s.ctr.get().NDP.DADSucceeded)
		n.assign(t.addr, t.linkLocal)
		if t.linkLocal {
			// §5.2.13 of RFC 3810: reports go from the link-local address
			// once it is valid.
			n.reportGroups()
		}
	}
	for _, s := range sol {
		n.sendSolicitation(s.Target, s.Unicast, s.MAC)
	}

	var expired [][]byte
	n.reasm6Mu.Lock()
	n.reasm6.Expire(now, func(first []byte) { expired = append(expired, append([]byte(nil), first...)) })
	earlier(n.reasm6.NextDeadline())
	n.reasm6Mu.Unlock()
	for _, first := range expired {
		// RFC 8200 §4.5: Time Exceeded, Fragment Reassembly Time Exceeded,
		// to the source of fragment zero.
		if h, err := ipv6.ParseHeader(first); err == nil {
			n.s.sendICMPv6ErrorAbout(n, h, ipv6.Chain{}, false, ipv6.TypeTimeExceeded, ipv6.CodeFragmentReassemblyTimeExceeded, 0)
		}
	}
	earlier(n.expireAuto6(now))
	return next
}

// mtuFor returns the MTU of n for packets to dst: for IPv6, the link MTU
// a router advertised if lower (RFC 4861 §6.3.4).
func (n *nic) mtuFor(dst netip.Addr) int {
	if dst.Is6() {
		if m := int(n.mtu6.Load()); m > 0 {
			return m
		}
	}
	return n.mtu
}

// sendIPv6 fills in the IPv6 header of p in front of its payload and
// sends the packet over rc, fragmenting it if it exceeds the MTU (RFC
// 8200 §4.5; the source fragments, routers never do). The payload sits at
// pb.b[headroom6:], or at pb.b[headroom:] (the transports' layout), from
// where it is moved 20 bytes on. With a queue q, a frame that needs no
// fragmenting is queued there instead of written.
func (n *nic) sendIPv6(pb *packetBuf, p *ip.Packet, rc *routeCache, q frameQueue) bool {
	s := n.s
	st := s.ctr.get()
	l := len(p.Payload)
	if l > ipv6.MaxPayloadLength || !p.Source.Is6() {
		inc(&st.IPv6.DropNoRoute)
		return false
	}
	// Hook points: output and postrouting (DESIGN.md), for every packet
	// the stack sends, NDP's included (as ip6tables' OUTPUT sees them).
	if !s.filterOutput(n, p) {
		return false
	}
	if l > 0 && &p.Payload[0] != &pb.b[headroom6] {
		copy(pb.b[headroom6:], p.Payload)
		p.Payload = pb.b[headroom6 : headroom6+l]
	}
	pkt := pb.b[link.EthernetHeaderLen : headroom6+l]
	hl := p.TTL
	if hl == 0 {
		hl = s.ttl // RFC 8200 §3: Hop Limit; RFC 4861 §6.3.2 CurHopLimit default 64
	}
	ipv6.PutHeader(pkt, &ipv6.Fields{
		TrafficClass:  p.TOS,
		PayloadLength: uint16(l),
		NextHeader:    p.Protocol,
		HopLimit:      hl,
		Source:        p.Source,
		Destination:   p.Destination,
	})
	p.Datagram = pkt
	pb.o = p.Offload // a TCP super-segment's (GSO TCPv6), cut by the device or vnet.Split
	// Hook point: postrouting (DESIGN.md)
	inc(&st.IPv6.PacketsOut)
	if len(pkt) <= rc.mtu || pb.o.GSOType != 0 {
		return n.transmit(pb, pkt, rc, q)
	}
	fb := s.bufs.Get().(*packetBuf)
	defer s.bufs.Put(fb)
	// RFC 7739 §5: an unpredictable Identification per packet; the
	// counter is shared with IPv4's and mixed with a random start.
	id := s.ipID.Add(1)*0x9e3779b9 ^ s.fragSalt
	err := ipv6.Fragment(pkt, max(rc.mtu, ipv6.MinMTU), id, fb.b[link.EthernetHeaderLen:], func(frag []byte) error {
		inc(&st.IPv6.FragmentsOut)
		n.outputFrame(fb.b[:link.EthernetHeaderLen+len(frag)], rc)
		return nil
	})
	if err != nil {
		inc(&st.IPv6.DropTooBig)
		return false
	}
	return true
}

// linkHeader6 is linkHeader for an IPv6 packet: the next hop's MAC from
// the neighbour cache, which keeps the packet and asks for a solicitation
// when it is not known yet (RFC 4861 §7.2.2).
func (n *nic) linkHeader6(frame []byte, rc *routeCache) bool {
	if !rc.macOK {
		now := n.s.clock.Now()
		n.ndMu.Lock()
		m, ok, solicit := n.nd.Resolve(rc.hop, frame[link.EthernetHeaderLen:], now)
		n.ndChangedLocked()
		n.ndMu.Unlock()
		if solicit {
			n.sendSolicitation(rc.hop, false, link.MAC{})
			n.s.kick()
		}
		if !ok {
			return false
		}
		rc.mac, rc.macOK = m, true
	}
	link.PutEthernetHeader(frame, rc.mac, n.mac, link.EtherTypeIPv6)
	return true
}

// icmpv6Route returns the route for an ICMPv6 message to dst: out of the
// NIC via it concerns when dst is link-local or multicast (its scope is
// that link, RFC 4007), else the routing table's.
func (s *Stack) icmpv6Route(via *nic, dst netip.Addr) (routeCache, bool) {
	if via != nil && (dst.IsLinkLocalUnicast() || dst.IsMulticast()) {
		return via.onLink(dst), true
	}
	var rc routeCache
	ok := s.resolve(&rc, dst)
	return rc, ok
}

// sendICMPv6 builds an ICMPv6 message with put (given the buffer and the
// source address, which its checksum covers) and sends it to dst from src
// (the invalid Addr: the route's source), through via for link-local and
// multicast destinations. It reports whether the message left.
func (s *Stack) sendICMPv6(via *nic, src, dst netip.Addr, put func(b []byte, src netip.Addr) int) bool {
	st := s.ctr.get()
	rc, ok := s.icmpv6Route(via, dst)
	if !ok {
		inc(&st.IPv6.DropNoRoute)
		return false
	}
	if !src.IsValid() {
		src = rc.src
	}
	if !src.Is6() {
		inc(&st.IPv6.DropNoRoute)
		return false
	}
	pb := s.bufs.Get().(*packetBuf)
	defer s.bufs.Put(pb)
	l := put(pb.b[headroom6:maxFrame], src)
	if l == 0 {
		return false
	}
	p := ip.Packet{Source: src, Destination: dst, Protocol: ip.ProtocolICMPv6, Payload: pb.b[headroom6 : headroom6+l]}
	return rc.nic.sendIPv6(pb, &p, &rc, nil)
}

// sendICMPv6ErrorAbout sends an ICMPv6 error of type typ and code (and
// word: the pointer or the MTU) about the received packet h, whose chain
// is c, received on n, unless RFC 4443 §2.4 (e) forbids one, within the
// error rate limit (§2.4 (f)). Its source is the packet's destination if
// that is ours and unicast (§2.2).
func (s *Stack) sendICMPv6ErrorAbout(n *nic, h ipv6.Header, c ipv6.Chain, linkMcast bool, typ, code uint8, word uint32) {
	src := h.Destination()
	if src.IsMulticast() || !s.isLocalAddr(src) {
		src = netip.Addr{}
	}
	s.sendICMPv6ErrorFrom(n, src, h, c, linkMcast, typ, code, word)
}

// sendICMPv6ErrorFrom is sendICMPv6ErrorAbout from the source src (the
// route's if zero): the forwarder's refusals come from the original
// destination, as ICMP's do (sendICMPErrorFrom).
func (s *Stack) sendICMPv6ErrorFrom(n *nic, src netip.Addr, h ipv6.Header, c ipv6.Chain, linkMcast bool, typ, code uint8, word uint32) {
	if !ipv6.MayReplyWithError(h, c, linkMcast, typ, code) {
		return
	}
	st := s.ctr.get()
	s.icmpMu.Lock()
	ok := s.icmpLimiter.Allow(s.clock.Now())
	s.icmpMu.Unlock()
	if !ok {
		inc(&st.ICMPv6.ErrorsRateLimited)
		return
	}
	to := h.Source()
	if s.sendICMPv6(n, src, to, func(b []byte, src netip.Addr) int {
		return ipv6.PutError(b, typ, code, word, src, to, h)
	}) {
		inc(&st.ICMPv6.ErrorsOut)
	}
}

// sendUnreachable6 answers the received packet p with a Destination
// Unreachable of code (RFC 4443 §3.1; port unreachable for UDP, §3.1
// code 4).
func (s *Stack) sendUnreachable6(p *ip.Packet, code uint8) {
	h := ipv6.Header(p.Datagram)
	c, err := ipv6.ParseExtensions(h)
	if err != nil {
		return
	}
	s.sendICMPv6ErrorAbout(s.nicByID(p.NIC), h, c, p.Broadcast, ipv6.TypeDestinationUnreachable, code, 0)
}

// deliverICMPv6Error hands an ICMPv6 error about one of our packets to
// its transport: Packet Too Big feeds path MTU discovery (RFC 8201 §4),
// the others are hard or soft errors (RFC 4443 §3, RFC 5461).
func (s *Stack) deliverICMPv6Error(m ipv6.ICMP) {
	st := s.ctr.get()
	q, err := ipv6.ParseQuote(m.Payload())
	if err != nil || !s.isLocalAddr(q.Source()) {
		inc(&st.ICMPv6.DropBadQuote)
		return
	}
	c, _ := ipv6.ParseExtensions(q)
	if c.Offset == 0 || c.Offset > len(q) {
		inc(&st.ICMPv6.DropBadQuote)
		return
	}
	qp := ip.Packet{Source: q.Source(), Destination: q.Destination(), Protocol: c.Proto, TTL: q.HopLimit(), Datagram: q, Payload: q[c.Offset:]}
	kind, mtu, ok := icmpv6Kind(m)
	if !ok {
		inc(&st.ICMP.ErrorsIgnored)
		return
	}
	s.deliverTransportError(m, kind, mtu, &qp)
}

// checkNICAddr6 reports why addr cannot be a NIC's IPv6 address and
// prefix, or nil: the unspecified and loopback addresses (RFC 4291
// §2.5.2, §2.5.3: "must not be assigned to any physical interface"),
// multicast (§2.7: never a source), IPv4-mapped (§2.5.5.2), link-local
// (the stack forms its own, RFC 4862 §5.3), a zone, and a /0 prefix.
func checkNICAddr6(addr netip.Prefix) error {
	a := addr.Addr()
	bad := func(why string) error { return fmt.Errorf("%w: %v: %s", ErrInvalidAddress, addr, why) }
	switch {
	case a.IsUnspecified():
		return bad("the unspecified address (RFC 4291 §2.5.2)")
	case a.IsLoopback():
		return bad("the loopback address (RFC 4291 §2.5.3)")
	case a.IsMulticast():
		return bad("a multicast address (RFC 4291 §2.7)")
	case a.Is4In6():
		return bad("an IPv4-mapped address (RFC 4291 §2.5.5.2)")
	case a.IsLinkLocalUnicast():
		return bad("a link-local address: the stack forms one per NIC (RFC 4862 §5.3)")
	case a.Zone() != "":
		return bad("an address with a zone")
	case addr.Bits() == 0:
		return bad("a /0 prefix makes every destination on-link")
	}
	return nil
}

// icmpv6Kind maps an ICMPv6 error to what it means for the transports:
// the kind tcp.ICMPv6KindOf gives its type and code (RFC 4443 §3, after
// RFC 5461's hard and soft errors), and for Packet Too Big its MTU (RFC
// 8201 §4: never below the IPv6 minimum).
func icmpv6Kind(m ipv6.ICMP) (kind tcp.ICMPKind, mtu int, ok bool) {
	kind, ok = tcp.ICMPv6KindOf(m.Type(), m.Code())
	if ok && m.Type() == ipv6.TypePacketTooBig {
		mtu = max(int(min(m.MTU(), 65535)), ipv6.MinMTU)
	}
	return kind, mtu, ok
}

// udpICMPv6Errno is udpICMPErrno for ICMPv6 (Linux's icmpv6_err_convert):
// port unreachable is ECONNREFUSED and parameter problem EPROTO, both
// hard; administratively prohibited and the policy codes EACCES, hard;
// the rest soft.
func udpICMPv6Errno(typ, code uint8) (syscall.Errno, bool) {
	switch typ {
	case ipv6.TypeDestinationUnreachable:
		switch code {
		case ipv6.CodePortUnreachable:
			return syscall.ECONNREFUSED, true
		case ipv6.CodeAdminProhibited, ipv6.CodeSourcePolicyFailed, ipv6.CodeRejectRoute:
			return syscall.EACCES, true
		}
	case ipv6.TypeParameterProblem:
		return syscall.EPROTO, true
	}
	return 0, false
}

// deliverTransportError hands the ICMPv6 error of kind (mtu for Packet Too
// Big) about the quoted packet q to its transport.
func (s *Stack) deliverTransportError(m ipv6.ICMP, kind tcp.ICMPKind, mtu int, q *ip.Packet) {
	switch q.Protocol {
	case ip.ProtocolTCP:
		s.deliverTCPICMPError(mtu, kind, q, len(q.Datagram))
	case ip.ProtocolUDP:
		errno, hard := udpICMPv6Errno(m.Type(), m.Code())
		s.deliverUDPICMPError(errno, hard, q)
	default:
		inc(&s.ctr.get().ICMP.ErrorsIgnored)
	}
}
