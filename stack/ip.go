package stack

import (
	"errors"
	"net/netip"

	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
)

// deliverIPv4 validates a received datagram, reassembles fragments and
// hands the datagram to its transport. linkBcast reports that the frame
// was sent to the Ethernet broadcast address.
func (n *nic) deliverIPv4(b []byte, linkBcast bool) {
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
	dst := h.Destination()
	bcast := linkBcast
	switch {
	case dst == n.addr.Addr():
	case dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}), ipv4.IsSubnetBroadcast(n.addr, dst):
		bcast = true
	case !linkBcast && n.forwards(h.Protocol(), dst):
		// A forwarder takes TCP and UDP to any address (forwarder.go).
	default:
		// ustack is a host, not a router (RFC 1122 §3.3.1): datagrams for
		// other addresses are dropped, not forwarded.
		inc(&st.IPv4.DropNotForUs)
		return
	}
	if h.MoreFragments() || h.FragmentOffset() != 0 {
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
			return
		}
		if whole == nil {
			return
		}
		inc(&st.IPv4.Reassembled)
		if h, err = ipv4.ParseHeader(whole); err != nil {
			inc(&st.IPv4.DropReassembly)
			return
		}
	}
	switch h.Protocol() {
	case ipv4.ProtocolICMP:
		n.s.deliverICMP(n, h, bcast)
	default:
		if !n.s.deliverTransport(n, h, bcast) {
			inc(&st.IPv4.DropUnknownProtocol)
			// RFC 1122 §3.2.2.1: a host SHOULD generate Destination
			// Unreachable (protocol) when the transport is not supported.
			if ipv4.MayReplyWithError(h, bcast) {
				n.s.sendICMPError(h.Source(), h, ipv4.TypeDestinationUnreachable, ipv4.CodeProtocolUnreachable)
			}
		}
	}
}

// deliverTransport hands a datagram to a transport protocol and reports
// whether one took it. Transports register themselves here as they come.
func (s *Stack) deliverTransport(n *nic, h ipv4.Header, bcast bool) bool {
	switch h.Protocol() {
	case ipv4.ProtocolTCP:
		s.deliverTCP(n, h, bcast)
		return true
	case ipv4.ProtocolUDP:
		s.deliverUDP(n, h, bcast)
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

// sendIPv4 fills in the IPv4 and link headers in front of a payload of
// plen bytes at pb.b[headroom:], and sends the datagram to dst, routing,
// resolving the next hop and fragmenting as needed. src, if valid, is the
// source address; otherwise the outgoing NIC's address is used. It
// reports whether the datagram left (or waits for ARP).
func (s *Stack) sendIPv4(pb *packetBuf, plen int, src, dst netip.Addr, proto uint8) bool {
	st := s.ctr.get()
	n, hop, ok := s.route(dst)
	if !ok {
		inc(&st.IPv4.DropNoRoute)
		return false
	}
	return n.sendIPv4(pb, plen, src, dst, hop, proto)
}

// sendIPv4 is Stack.sendIPv4 through n to the next hop hop, for a caller
// that has already routed dst.
func (n *nic) sendIPv4(pb *packetBuf, plen int, src, dst, hop netip.Addr, proto uint8) bool {
	s := n.s
	if !src.IsValid() {
		src = n.addr.Addr()
	}
	pkt := pb.b[link.EthernetHeaderLen : headroom+plen]
	f := ipv4.Fields{
		TotalLength: uint16(len(pkt)),
		ID:          uint16(s.ipID.Add(1)),
		TTL:         s.ttl,
		Protocol:    proto,
		Source:      src,
		Destination: dst,
	}
	if proto == ipv4.ProtocolTCP {
		// TCP segments are sized to the path MTU; DF lets a router say so
		// (RFC 1191) instead of fragmenting.
		f.DontFragment = true
	}
	ipv4.PutHeader(pkt, &f)
	return n.output(pb, pkt, hop, dst)
}

// output sends the IPv4 datagram pkt, which sits at
// pb.b[EthernetHeaderLen:], to the next hop, fragmenting if it exceeds the
// MTU.
func (n *nic) output(pb *packetBuf, pkt []byte, hop, dst netip.Addr) bool {
	st := n.s.ctr.get()
	inc(&st.IPv4.PacketsOut)
	if len(pkt) <= n.mtu {
		return n.outputFrame(pb.b[:link.EthernetHeaderLen+len(pkt)], hop, dst)
	}
	// RFC 791 §2.3 fragmentation: pieces of at most MTU bytes, each sent
	// through the same next hop.
	fb := n.s.bufs.Get().(*packetBuf)
	defer n.s.bufs.Put(fb)
	err := ipv4.Fragment(pkt, n.mtu, fb.b[link.EthernetHeaderLen:], func(frag []byte) error {
		inc(&st.IPv4.FragmentsOut)
		n.outputFrame(fb.b[:link.EthernetHeaderLen+len(frag)], hop, dst)
		return nil
	})
	if err != nil {
		inc(&st.IPv4.DropFragmentationNeeded)
		return false
	}
	return true
}

// outputFrame writes the link header in front of the datagram at
// frame[EthernetHeaderLen:] and sends it, or queues it on the ARP entry of
// the next hop until that resolves.
func (n *nic) outputFrame(frame []byte, hop, dst netip.Addr) bool {
	if !n.ethernet() {
		n.writeFrame(frame[link.EthernetHeaderLen:])
		return true
	}
	var mac link.MAC
	if dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || ipv4.IsSubnetBroadcast(n.addr, dst) {
		mac = link.Broadcast
	} else {
		now := n.s.clock.Now()
		n.arpMu.Lock()
		m, ok, request := n.arp.Resolve(hop, frame[link.EthernetHeaderLen:], now)
		n.arpMu.Unlock()
		if request {
			n.sendARPRequest(hop)
			n.s.kick() // the cache has a new retry deadline
		}
		if !ok {
			return true // queued until the reply comes, or dropped and counted
		}
		mac = m
	}
	link.PutEthernetHeader(frame, mac, n.mac, link.EtherTypeIPv4)
	n.writeFrame(frame)
	return true
}
