package stack

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
)

// checkNICAddr reports why addr cannot be a NIC's address and subnet, or
// nil. RFC 1122 §3.2.1.3 lists the addresses no host may take as its own:
// {0, 0} "this host" (0.0.0.0, which the stack also takes as "every NIC"
// when listening), the limited broadcast {-1, -1}, a subnet's directed
// broadcast {<Network>, -1}, class D multicast and class E reserved
// addresses ("MUST NOT be used as a source address"), and the loopback
// network 127/8 ("MUST NOT appear outside a host"). The subnet's own
// {<Network>, 0} is refused too (RFC 1122 §3.3.6: a host must recognize
// it as a broadcast). RFC 3021's /31 has neither network nor broadcast
// address. A /0 subnet would put every destination on-link and hide the
// routing table.
func checkNICAddr(addr netip.Prefix) error {
	a := addr.Addr()
	bad := func(why string) error { return fmt.Errorf("%w: %v: %s", ErrInvalidAddress, addr, why) }
	b := a.As4()
	switch {
	case a.IsUnspecified():
		return bad("the unspecified address (RFC 1122 §3.2.1.3)")
	case addr.Bits() == 0:
		return bad("a /0 subnet makes every destination on-link")
	case b[0] == 0:
		return bad(`in 0.0.0.0/8, "this network" (RFC 1122 §3.2.1.3)`)
	case a.IsLoopback():
		return bad("a loopback address (RFC 1122 §3.2.1.3)")
	case a.IsMulticast():
		return bad("a multicast address (RFC 1122 §3.2.1.3)")
	case b[0] >= 240:
		return bad("a reserved or the limited broadcast address (RFC 1122 §3.2.1.3)")
	}
	if ipv4.IsSubnetBroadcast(addr, a) {
		return bad("a broadcast address of its subnet: host part all ones, or all zeros (RFC 1122 §3.2.1.3, §3.3.6)")
	}
	return nil
}

// checkAddrFor reports why addr cannot be an address of a NIC of MTU
// mtu: see checkNICAddr and checkNICAddr6; an IPv6 link needs an MTU of
// 1280 (RFC 8200 §5).
func checkAddrFor(mtu int, addr netip.Prefix) error {
	switch {
	case !addr.IsValid():
		return fmt.Errorf("%w: %v", ErrInvalidPrefix, addr)
	case addr.Addr().Is4():
		return checkNICAddr(addr)
	case mtu < ipv6.MinMTU:
		return fmt.Errorf("%w: %v: the link MTU %d is below IPv6's minimum %d (RFC 8200 §5)", ErrInvalidPrefix, addr, mtu, ipv6.MinMTU)
	}
	return checkNICAddr6(addr)
}

// checkEndpoint reports why ep cannot be a NIC: nil (or a nil pointer in
// the interface, such as a *link.TAP that failed to open), or an MTU
// outside 68-65535: RFC 791 has every host handle datagrams of 68
// octets, and an IPv4 datagram is at most 65535.
func checkEndpoint(ep link.Endpoint) error {
	if ep == nil {
		return ErrNilEndpoint
	}
	if v := reflect.ValueOf(ep); v.Kind() == reflect.Pointer && v.IsNil() {
		return fmt.Errorf("%w (a nil %T)", ErrNilEndpoint, ep)
	}
	if mtu := ep.MTU(); mtu < ipv4.MinMTU || mtu > 65535 {
		return fmt.Errorf("stack: endpoint MTU %d outside %d-65535 (RFC 791)", mtu, ipv4.MinMTU)
	}
	return nil
}

// nicAddrConflict reports why addr cannot join the stack beside the
// addresses of the NIC o: the same address, or overlapping subnets (the
// on-link routes would fight over the destinations both cover, and the
// source of a datagram to one of them would be ambiguous).
func nicAddrConflict(o *nic, addr netip.Prefix) error {
	for _, p := range o.addrList() {
		if p.Addr() == addr.Addr() {
			return fmt.Errorf("%w: %v: NIC %d has this address", ErrInvalidAddress, addr, o.id)
		}
		if p.Masked().Overlaps(addr.Masked()) {
			return fmt.Errorf("%w: %v: subnet overlaps NIC %d's %v", ErrInvalidAddress, addr, o.id, p)
		}
	}
	return nil
}

// addrList returns the NIC's addresses; the caller must not modify the
// slice.
func (n *nic) addrList() []netip.Prefix {
	if p := n.addrs.Load(); p != nil {
		return *p
	}
	return nil
}

// hasAddr reports whether a is one of the NIC's addresses (for IPv6, an
// assigned one: not tentative, RFC 4862 §5.4), its link-local address
// included.
func (n *nic) hasAddr(a netip.Addr) bool {
	for _, p := range n.addrList() {
		if p.Addr() == a {
			return true
		}
	}
	if a.Is6() {
		if ll := n.ll.Load(); ll != nil && *ll == a {
			return true
		}
	}
	return false
}

// isBroadcast reports whether a is the limited broadcast address or a
// broadcast address of one of the NIC's subnets (RFC 1122 §3.3.6).
func (n *nic) isBroadcast(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	if a == ipv4Broadcast {
		return true
	}
	for _, p := range n.addrList() {
		if ipv4.IsSubnetBroadcast(p, a) {
			return true
		}
	}
	return false
}

// sourceFor returns the source address of a datagram leaving through n to
// the next hop hop. RFC 1122 §3.3.4.3: a multihomed host picks "a source
// address corresponding to the physical interface" it sends on; of the
// NIC's addresses, the one whose subnet holds the next hop (so the
// neighbour can answer it on-link), else the NIC's first. It is the zero
// Addr if the NIC has no address left.
//
// For IPv6 (RFC 6724 §5, rule 2, "prefer appropriate scope"): the
// link-local address for a link-local or link-scope multicast hop, else
// the first global address, else the link-local one; and (rule 3, "avoid
// deprecated addresses") a deprecated SLAAC address only when no other
// would do.
func (n *nic) sourceFor(hop netip.Addr) netip.Addr {
	as := n.addrList()
	if hop.Is6() {
		if a := n.sourceFor6(as, hop, false); a.IsValid() {
			return a
		}
		if a := n.sourceFor6(as, hop, true); a.IsValid() {
			return a
		}
		return n.linkLocal()
	}
	for _, p := range as {
		if p.Contains(hop) {
			return p.Addr()
		}
	}
	for _, p := range as {
		if p.Addr().Is4() {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

// sourceFor6 is sourceFor's choice of a global IPv6 source among as for
// hop, deprecated ones too if deprecated is set; the zero Addr if there
// is none (or hop is link-local: the link-local address, also zero until
// assigned).
func (n *nic) sourceFor6(as []netip.Prefix, hop netip.Addr, deprecated bool) netip.Addr {
	for _, p := range as {
		if p.Contains(hop) && (deprecated || !n.isDeprecated(p.Addr())) {
			return p.Addr()
		}
	}
	if hop.IsLinkLocalUnicast() || hop.IsLinkLocalMulticast() || hop.IsInterfaceLocalMulticast() {
		return n.linkLocal()
	}
	for _, p := range as {
		if p.Addr().Is6() && (deprecated || !n.isDeprecated(p.Addr())) {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

// AddAddress gives the NIC id one more address addr (for example
// 10.0.1.2/24 or fd00::2/64), adds the on-link route for its subnet and
// announces an IPv4 one with a gratuitous ARP (RFC 5227 §3); an IPv6 one
// is tentative until duplicate address detection passes (RFC 4862 §5.4),
// and not assigned at all if it fails (NDPStats.DADFailed). The address
// is checked as AddNIC checks its own: an invalid prefix is
// ErrInvalidPrefix; one no host may have, one any NIC already has, or a
// subnet overlapping one of any NIC's is ErrInvalidAddress; an unknown id
// is ErrUnknownNIC.
func (s *Stack) AddAddress(id NICID, addr netip.Prefix) error {
	if err := s.usable(); err != nil {
		return err
	}
	if !addr.IsValid() {
		return fmt.Errorf("%w: %v", ErrInvalidPrefix, addr)
	}
	if s.closing.Load() {
		return ErrClosed
	}
	s.mu.Lock()
	n := s.nicLocked(id)
	if n == nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: %d", ErrUnknownNIC, id)
	}
	if err := checkAddrFor(n.mtu, addr); err != nil {
		s.mu.Unlock()
		return err
	}
	for _, o := range s.nics {
		if err := nicAddrConflict(o, addr); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	if addr.Addr().Is6() {
		s.mu.Unlock()
		if n.tentative(addr.Addr()) {
			return fmt.Errorf("%w: %v: NIC %d has this address (tentative)", ErrInvalidAddress, addr, id)
		}
		n.startDAD(addr, false, false)
		return nil
	}
	if err := s.routes.Add(ip.Route{Destination: addr.Masked(), NIC: int(id)}); err != nil {
		s.mu.Unlock()
		return err
	}
	as := append(slices.Clip(n.addrList()), addr)
	n.addrs.Store(&as)
	s.routeChanged()
	s.mu.Unlock()
	n.announce(addr.Addr())
	return nil
}

// RemoveAddress takes the address addr (as given to AddNIC or AddAddress)
// from the NIC id, with its on-link route: datagrams to it are no longer
// for this host, and it is no longer a source. Connections using it stay
// until they end or time out, as on Linux. An address the NIC does not
// have is ErrInvalidAddress; an unknown id is ErrUnknownNIC.
func (s *Stack) RemoveAddress(id NICID, addr netip.Prefix) error {
	if err := s.usable(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nicLocked(id)
	if n == nil {
		return fmt.Errorf("%w: %d", ErrUnknownNIC, id)
	}
	as := n.addrList()
	i := slices.Index(as, addr)
	if i < 0 {
		return fmt.Errorf("%w: %v: NIC %d does not have this address", ErrInvalidAddress, addr, id)
	}
	s.routes.Delete(ip.Route{Destination: addr.Masked(), NIC: int(id)})
	rest := slices.Delete(slices.Clone(as), i, i+1)
	n.addrs.Store(&rest)
	s.routeChanged()
	return nil
}

// Addresses returns the addresses of the NIC id, the one given to AddNIC
// first, or nil for an unknown id.
func (s *Stack) Addresses(id NICID) []netip.Prefix {
	if s.usable() != nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := s.nicLocked(id)
	if n == nil {
		return nil
	}
	return slices.Clone(n.addrList())
}

// nicLocked returns the NIC id, or nil; s.mu is held.
func (s *Stack) nicLocked(id NICID) *nic {
	if id < 1 || int(id) > len(s.nics) {
		return nil
	}
	return s.nics[id-1]
}

// LinkLocalAddress returns the IPv6 link-local address of the NIC id
// (formed from its MAC, RFC 4862 §5.3) once duplicate address detection
// assigned it, else the zero Addr: also for a NIC without Ethernet or with
// an MTU below 1280, and for an unknown id.
func (s *Stack) LinkLocalAddress(id NICID) netip.Addr {
	if s.usable() != nil {
		return netip.Addr{}
	}
	n := s.nicByID(int(id))
	if n == nil {
		return netip.Addr{}
	}
	return n.linkLocal()
}
