package stack

import (
	"fmt"
	"net/netip"
)

// checkNICAddr reports why addr cannot be a NIC's address and subnet, or
// nil. RFC 1122 §3.2.1.3 lists the addresses no host may take as its own:
// {0, 0} "this host" (0.0.0.0, which the stack also takes as "every NIC"
// when listening), the limited broadcast {-1, -1}, a subnet's directed
// broadcast {<Network>, -1}, class D multicast and class E reserved
// addresses ("MUST NOT be used as a source address"), and the loopback
// network 127/8 ("MUST NOT appear outside a host"). The subnet's own
// {<Network>, 0} is refused too (RFC 1122 §3.3.6: a host SHOULD take it
// as a broadcast). RFC 3021's /31 has neither network nor broadcast
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
	if addr.Bits() <= 30 {
		network := addr.Masked().Addr()
		if a == network {
			return bad("the subnet's network address (RFC 1122 §3.3.6)")
		}
		if a == directedBroadcast(addr) {
			return bad("the subnet's broadcast address (RFC 1122 §3.2.1.3)")
		}
	}
	return nil
}

// directedBroadcast returns the broadcast address of p's subnet: its host
// bits all ones.
func directedBroadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// nicAddrConflict reports why addr cannot join the stack beside the NIC
// o: the same address, or overlapping subnets (the on-link routes would
// fight over the destinations both cover, and ustack has one address per
// NIC and no multihoming rules to pick between them).
func nicAddrConflict(o *nic, addr netip.Prefix) error {
	if o.addr.Addr() == addr.Addr() {
		return fmt.Errorf("%w: %v: NIC %d has this address", ErrInvalidAddress, addr, o.id)
	}
	if o.addr.Masked().Overlaps(addr.Masked()) {
		return fmt.Errorf("%w: %v: subnet overlaps NIC %d's %v", ErrInvalidAddress, addr, o.id, o.addr)
	}
	return nil
}
