package stack

import (
	"fmt"
	"net/netip"
	"reflect"

	"github.com/ustack/ustack/ipv4"
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
