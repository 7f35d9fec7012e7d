package stack

import (
	"errors"
	"net/netip"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vnet"
)

// deliverIPv4 validates a received datagram, reassembles fragments and
// hands the datagram to its transport as an ip.Packet. linkBcast reports
// that the frame was sent to the Ethernet broadcast address.
func (n *nic) deliverIPv4(b []byte, linkBcast bool) { n.deliverIPv4Offload(b, linkBcast, nil) }

// deliverIPv4Offload is deliverIPv4 for a datagram with offload metadata
// o (nil: none), which it carries in the ip.Packet.
func (n *nic) deliverIPv4Offload(b []byte, linkBcast bool, o *ip.Offload) {
	st := n.s.ctr.get()
	h, err := ipv4.ParseHeader(b)
	if err != nil {
		switch {
		case errors.Is(err, ipv4.ErrChecksum):
			inc(&st.IPv4.DropBadChecksum)
		case errors.Is(err, ipv4.ErrTruncated), errors.Is(err, ipv4.ErrTotalLength):
			inc(&st.IPv4.DropTruncated)
		default:
			inc(&st.IPv4.DropBadHeader)
		}
		return
	}
	inc(&st.IPv4.PacketsIn)
	p := ip.Packet{
		Source:      h.Source(),
		Destination: h.Destination(),
		Protocol:    h.Protocol(),
		TTL:         h.TTL(),
		TOS:         h.TOS(),
		NIC:         int(n.id),
		Broadcast:   linkBcast,
		Multicast:   h.Destination().IsMulticast(),
		Datagram:    h,
		Payload:     h.Payload(),
	}
	if o != nil {
		p.Offload = *o
	}
	// Hook point: prerouting (DESIGN.md)
	dst := p.Destination
	switch {
	case n.hasAddr(dst):
	case n.isBroadcast(dst):
		p.Broadcast = true
	case !linkBcast && n.forwards(p.Protocol, dst):
		// A forwarder takes TCP and UDP to any address (forwarder.go):
		// like Linux's TPROXY, it terminates them here, as if they were
		// for us, rather than forwarding them.
	default:
		if !n.forward(&p) {
			return
		}
		// For another NIC's address, on a stack that forwards: a router
		// takes datagrams for any of its addresses (the weak host model).
	}
	if h.IsFragment() && !n.reassemble(h, &p) {
		return
	}
	n.s.deliverLocal(n, &p)
}

// reassemble adds the fragment h of p to n's reassembler and reports
// whether it completed a datagram, which p then describes (RFC 791 §3.2,
// "Reassembly"); a fragment that did not is kept or dropped, counted.
func (n *nic) reassemble(h ipv4.Header, p *ip.Packet) bool {
	st := n.s.ctr.get()
	inc(&st.IPv4.FragmentsIn)
	now := n.s.clock.Now()
	n.reasmMu.Lock()
	prev := n.reasm.NextDeadline()
	whole, err := n.reasm.Add(h, now)
	next := n.reasm.NextDeadline()
	n.reasmMu.Unlock()
	if !next.IsZero() && (prev.IsZero() || next.Before(prev)) {
		// A new earliest deadline: only the first datagram makes one
		// (they expire in creation order), so a flood of fragments
		// does not wake the timer goroutine for each.
		n.s.kick()
	}
	if err != nil {
		inc(&st.IPv4.DropReassembly)
		return false
	}
	if whole == nil {
		return false
	}
	inc(&st.IPv4.Reassembled)
	if h, err = ipv4.ParseHeader(whole); err != nil {
		inc(&st.IPv4.DropReassembly)
		return false
	}
	p.Datagram, p.Payload = h, h.Payload()
	return true
}

// deliverLocal hands a datagram for this host, reassembled, to its
// transport, or answers it with protocol unreachable.
func (s *Stack) deliverLocal(n *nic, p *ip.Packet) {
	// Hook points: prerouting and input (DESIGN.md), after reassembly.
	if !s.filterInput(n, p) {
		return
	}
	s.deliverUp(n, p)
}

// deliverUp hands a datagram for this host that passed the input hook to
// ICMP or its transport.
func (s *Stack) deliverUp(n *nic, p *ip.Packet) {
	switch p.Protocol {
	case ip.ProtocolICMP:
		s.deliverICMP(n, p)
	default:
		if !s.deliverTransport(n, p) {
			inc(&s.ctr.get().IPv4.DropUnknownProtocol)
			// RFC 1122 §3.2.2.1: a host SHOULD generate Destination
			// Unreachable (protocol) when the transport is not supported.
			s.sendUnreachable(p, ipv4.CodeProtocolUnreachable)
		}
	}
}

// deliverTransport hands a datagram to a transport protocol and reports
// whether one took it. Transports register themselves here as they come.
func (s *Stack) deliverTransport(n *nic, p *ip.Packet) bool {
	switch p.Protocol {
	case ip.ProtocolTCP:
		s.deliverTCP(n, p)
		return true
	case ip.ProtocolUDP:
		s.deliverUDP(n, p)
		return true
	}
	return false
}

// route finds the NIC, source address and next hop for dst.
func (s *Stack) route(dst netip.Addr) (n *nic, nextHop netip.Addr, ok bool) {
	s.mu.RLock()
	r, ok := s.routes.Lookup(dst)
	if ok && r.NIC >= 1 && r.NIC <= len(s.nics) {
		n = s.nics[r.NIC-1]
	}
	s.mu.RUnlock()
	if n == nil {
		return nil, netip.Addr{}, false
	}
	return n, r.NextHop(dst), true
}

// sendIP is Stack.sendIP through n over the route rc, resolved for
// p.Destination: the output hook, then the family's output.
func (n *nic) sendIP(pb *packetBuf, p *ip.Packet, rc *routeCache, q frameQueue) bool {
	if !p.Source.IsValid() {
		p.Source = rc.src
	}
	p.NIC = int(n.id)
	// Hook points: output and postrouting (DESIGN.md; IPv6's in
	// sendIPv6, which NDP's messages take too).
	if p.Destination.Is6() {
		return n.sendIPv6(pb, p, rc, q)
	}
	if !n.s.filterOutput(n, p) {
		return false
	}
	if !p.Destination.Is4() || !p.Source.Is4() {
		inc(&n.s.ctr.get().IPv4.DropNoRoute)
		return false
	}
	return n.sendIPv4(pb, p, rc, q)
}

// sendIPv4 fills in the IPv4 header of p in front of its payload at
// pb.b[headroom:] and sends the datagram over rc, fragmenting it if
// needed; with a queue q, a frame that needs no fragmenting is queued
// there instead of written.
func (n *nic) sendIPv4(pb *packetBuf, p *ip.Packet, rc *routeCache, q frameQueue) bool {
	s := n.s
	pkt := pb.b[link.EthernetHeaderLen : headroom+len(p.Payload)]
	ttl := p.TTL
	if ttl == 0 {
		ttl = s.ttl
	}
	ids := uint32(1)
	if p.Offload.GSOType != 0 {
		// One Identification per segment the super-segment becomes
		// (vnet.Split and a device's TSO increment it per segment).
		ids = uint32(vnet.Segments(len(p.Payload), int(p.Offload.GSOSize)))
	}
	f := ipv4.Fields{
		TotalLength: uint16(len(pkt)),
		TOS:         p.TOS,
		ID:          uint16(s.ipID.Add(ids) - ids + 1),
		TTL:         ttl,
		Protocol:    p.Protocol,
		Source:      p.Source,
		Destination: p.Destination,
	}
	if p.Protocol == ip.ProtocolTCP {
		// TCP segments are sized to the path MTU; DF lets a router say so
		// (RFC 1191) instead of fragmenting.
		f.DontFragment = true
	}
	ipv4.PutHeader(pkt, &f)
	p.Datagram = pkt
	pb.o = p.Offload
	// Hook point: postrouting (DESIGN.md)
	return n.output(pb, pkt, rc, q)
}

// output sends the IPv4 datagram pkt, which sits at
// pb.b[EthernetHeaderLen:], over rc, fragmenting if it exceeds rc's MTU.
// With a queue q, the frame is queued there, pb with it, instead of
// written; fragments are always written at once.
func (n *nic) output(pb *packetBuf, pkt []byte, rc *routeCache, q frameQueue) bool {
	st := n.s.ctr.get()
	inc(&st.IPv4.PacketsOut)
	if len(pkt) <= rc.mtu || pb.o.GSOType != 0 {
		return n.transmit(pb, pkt, rc, q)
	}
	// RFC 791 §2.3 fragmentation: pieces of at most MTU bytes, each sent
	// through the same next hop.
	fb := n.s.bufs.Get().(*packetBuf)
	defer n.s.bufs.Put(fb)
	err := ipv4.Fragment(pkt, rc.mtu, fb.b[link.EthernetHeaderLen:], func(frag []byte) error {
		inc(&st.IPv4.FragmentsOut)
		n.outputFrame(fb.b[:link.EthernetHeaderLen+len(frag)], rc)
		return nil
	})
	if err != nil {
		inc(&st.IPv4.DropFragmentationNeeded)
		return false
	}
	return true
}

// transmit sends the IPv4 or IPv6 datagram pkt, which sits at
// pb.b[EthernetHeaderLen:] and needs no fragmenting (it fits rc's MTU, or
// is a super-segment with its metadata in pb.o), over rc; with a queue q,
// the frame is queued there, pb with it, instead of written.
func (n *nic) transmit(pb *packetBuf, pkt []byte, rc *routeCache, q frameQueue) bool {
	if pb.o.GSOType != 0 && n.ethernet() && !rc.macOK {
		// A super-segment for a next hop ARP or NDP has not resolved: the
		// neighbour cache keeps datagrams, not super-segments, so it goes
		// as its segments.
		return n.outputSplit(pb, pkt, rc)
	}
	frame := pb.b[:link.EthernetHeaderLen+len(pkt)]
	if q == nil {
		if pb.o.GSOType != 0 {
			if n.linkHeader(frame, rc) {
				n.writeFrameOffload(frame[n.frameStart():], &pb.o)
			}
			pb.o = ip.Offload{}
			return true
		}
		return n.outputFrame(frame, rc)
	}
	if n.linkHeader(frame, rc) {
		if n.ethernet() {
			q.queueFrame(pb, 0, len(frame), n)
		} else {
			q.queueFrame(pb, link.EthernetHeaderLen, len(pkt), n)
		}
	}
	return true
}

// outputSplit sends the TCP super-segment pkt, at
// pb.b[EthernetHeaderLen:], as its segments, one outputFrame each.
func (n *nic) outputSplit(pb *packetBuf, pkt []byte, rc *routeCache) bool {
	fb := n.s.bufs.Get().(*packetBuf)
	defer n.s.bufs.Put(fb)
	mss := int(pb.o.GSOSize)
	pb.o = ip.Offload{}
	err := vnet.Split(pb.b[:link.EthernetHeaderLen+len(pkt)], link.EthernetHeaderLen, mss, fb.b[:], func(seg []byte) error {
		n.outputFrame(seg, rc)
		return nil
	})
	if err != nil {
		inc(&n.s.ctr.get().Link.DropBadOffload)
		return false
	}
	return true
}

// outputFrame writes the link header in front of the datagram at
// frame[EthernetHeaderLen:] and sends it to rc's next hop, or queues the
// datagram on the next hop's ARP entry until that resolves (linkHeader).
func (n *nic) outputFrame(frame []byte, rc *routeCache) bool {
	if !n.ethernet() {
		n.writeFrame(frame[link.EthernetHeaderLen:])
		return true
	}
	if n.linkHeader(frame, rc) {
		n.writeFrame(frame)
	}
	return true
}

// linkHeader writes the Ethernet header in front of the datagram at
// frame[EthernetHeaderLen:] for rc's next hop, resolving its MAC address
// (and keeping it in rc), and reports whether the frame is ready to
// write. If the address is not known yet, ARP keeps a copy of the
// datagram until the reply comes (or drops it, counted), and the frame is
// not to be written. A NIC without Ethernet needs no header.
func (n *nic) linkHeader(frame []byte, rc *routeCache) bool {
	if !n.ethernet() {
		return true
	}
	if rc.dst.Is6() {
		return n.linkHeader6(frame, rc)
	}
	if !rc.macOK {
		now := n.s.clock.Now()
		n.arpMu.Lock()
		m, ok, request := n.arp.Resolve(rc.hop, frame[link.EthernetHeaderLen:], now)
		n.arpChangedLocked() // Resolve restarts an expired entry
		n.arpMu.Unlock()
		if request {
			n.sendARPRequest(rc.hop)
			n.s.kick() // the cache has a new retry deadline
		}
		if !ok {
			return false // queued until the reply comes, or dropped and counted
		}
		rc.mac, rc.macOK = m, true
	}
	link.PutEthernetHeader(frame, rc.mac, n.mac, link.EtherTypeIPv4)
	return true
}
