package stack

import (
	"net/netip"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
)

// routeCache is a resolved egress decision: the NIC, source address and
// next hop for one destination and, once ARP knows it, the next hop's MAC
// address. A connection keeps one (tcpOutput.rt, UDPConn.rt), so that
// while it is valid a segment is sent without a route lookup under s.mu,
// without the ARP cache's lock and without a map lookup.
//
// It is valid while Stack.routeGen has the value gen: AddNIC, AddRoute,
// AddAddress, RemoveAddress and every change of an ARP entry that was
// complete (its MAC changed, it expired or was evicted; arp.Cache's
// Generation) bump that counter, and the next send resolves afresh. One
// counter for the whole stack: such changes are rare, and a connection
// that re-resolves needlessly costs one lookup.
type routeCache struct {
	gen uint64     // Stack.routeGen when resolved
	dst netip.Addr // the destination resolved
	nic *nic       // nil: nothing resolved
	src netip.Addr // the source address for dst (nic.sourceFor)
	hop netip.Addr // the next hop: dst on-link, else the gateway
	mtu int        // the NIC's MTU
	// mac is the link-layer destination of the frames, valid if macOK:
	// the next hop's MAC once ARP resolved it, the broadcast address for
	// a broadcast destination, nothing for a NIC without Ethernet.
	mac   link.MAC
	macOK bool
}

// resolve makes rc valid for dst, routing it if rc is stale or for
// another destination, and reports whether dst has a route.
func (s *Stack) resolve(rc *routeCache, dst netip.Addr) bool {
	// The generation is read before the lookup: a change that races with
	// it leaves rc with the older number, to be resolved again.
	gen := s.routeGen.Load()
	if rc.nic != nil && rc.gen == gen && rc.dst == dst {
		return true
	}
	n, hop, ok := s.route(dst)
	if !ok {
		*rc = routeCache{}
		return false
	}
	*rc = routeCache{gen: gen, dst: dst, nic: n, src: n.sourceFor(hop), hop: hop, mtu: n.mtuFor(dst)}
	switch {
	case !n.ethernet():
		rc.macOK = true
	case dst.Is6() && dst.IsMulticast():
		rc.mac, rc.macOK = ipv6.MulticastMAC(dst), true
	case n.isBroadcast(dst):
		rc.mac, rc.macOK = link.Broadcast, true
	}
	return true
}

// routeChanged invalidates every connection's routeCache.
func (s *Stack) routeChanged() { s.routeGen.Add(1) }

// arpChangedLocked bumps the stack's route generation if n's ARP cache
// changed a MAC address it handed out since the last call; n.arpMu is
// held.
func (n *nic) arpChangedLocked() {
	if g := n.arp.Generation(); g != n.arpGen {
		n.arpGen = g
		n.s.routeChanged()
	}
}

// sendIP routes the datagram p describes and sends it: its transport
// payload, p.Payload, sits at pb.b[headroom:]; p.Destination and
// p.Protocol are set, and p.Source, if valid, is the source address
// (otherwise the one the route selects). The route picks the family. It
// reports whether the datagram left (or waits for ARP).
func (s *Stack) sendIP(pb *packetBuf, p *ip.Packet) bool {
	var rc routeCache
	return s.sendCached(&rc, pb, p, nil)
}

// sendCached is sendIP through the route cache rc, which it revalidates
// and fills in; the caller owns rc (a connection, under its lock). With a
// queue q, a finished frame is queued there, pb with it, instead of
// written (a datagram that needs fragments is still written at once);
// the caller keeps pb otherwise.
func (s *Stack) sendCached(rc *routeCache, pb *packetBuf, p *ip.Packet, q frameQueue) bool {
	if !s.resolve(rc, p.Destination) {
		if p.Destination.Is6() {
			inc(&s.ctr.get().IPv6.DropNoRoute)
			return false
		}
		inc(&s.ctr.get().IPv4.DropNoRoute)
		return false
	}
	return rc.nic.sendIP(pb, p, rc, q)
}
