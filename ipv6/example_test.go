package ipv6_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/ustack/ustack/ipv6"
)

// Example_receive shows the receive path: parse the header, walk the
// extension headers, reassemble fragments, then dispatch on the
// upper-layer protocol.
func Example_receive() {
	src, dst := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	pkt := make([]byte, ipv6.HeaderLen+3000)
	ipv6.PutHeader(pkt, &ipv6.Fields{PayloadLength: 3000, NextHeader: ipv6.NextHeaderUDP, HopLimit: 64,
		Source: src, Destination: dst})
	copy(pkt[ipv6.HeaderLen:], []byte{0x30, 0x39, 0x00, 0x35, 0x0b, 0xb8}) // a UDP header's ports and length

	r := ipv6.NewReassembler(ipv6.ReassemblyConfig{})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	receive := func(b []byte) {
		h, err := ipv6.ParseHeader(b)
		if err != nil {
			return // counted drop
		}
		c, err := ipv6.ParseExtensions(h)
		if err != nil {
			if c.Problem.Send && ipv6.MayReplyWithError(h, c, false, ipv6.TypeParameterProblem, c.Problem.Code) {
				fmt.Println("send parameter problem, pointer", c.Problem.Pointer)
			}
			return
		}
		if c.Proto == ipv6.NextHeaderFragment {
			fmt.Printf("fragment at offset %d\n", ipv6.FragmentAt(h, c.Fragment).Offset())
			whole, err := r.Add(h, c, now)
			if whole == nil || err != nil {
				return
			}
			h, _ = ipv6.ParseHeader(whole)
			if c, err = ipv6.ParseExtensions(h); err != nil {
				return
			}
		}
		fmt.Printf("%d bytes of protocol %d from %v\n", len(h)-c.Offset, c.Proto, h.Source())
	}
	ipv6.Fragment(pkt, ipv6.MinMTU, 1, make([]byte, ipv6.MinMTU), func(frag []byte) error {
		receive(frag) // the Reassembler copies what it keeps: the scratch buffer can be reused
		return nil
	})
	// Output:
	// fragment at offset 0
	// fragment at offset 1232
	// fragment at offset 2464
	// 3000 bytes of protocol 17 from 2001:db8::1
}

// ExampleLinkLocalFromMAC forms the addresses a NIC needs before it can
// answer neighbour solicitations.
func ExampleLinkLocalFromMAC() {
	mac := [6]byte{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	ll := ipv6.LinkLocalFromMAC(mac)
	group := ipv6.SolicitedNodeMulticast(ll)
	fmt.Println(ll, group, fmt.Sprintf("%x", ipv6.MulticastMAC(group)))
	// Output: fe80::5eff:fe10:1 ff02::1:ff10:1 3333ff100001
}

// ExampleNeighborSolicitation answers a neighbour solicitation for one of
// our addresses with a solicited advertisement (RFC 4861 §7.2.4).
func ExampleNeighborSolicitation() {
	peer, local := netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fe80::2")
	peerMAC, localMAC := []byte{2, 0, 0, 0, 0, 1}, []byte{2, 0, 0, 0, 0, 2}
	group := ipv6.SolicitedNodeMulticast(local)

	ns := make([]byte, ipv6.HeaderLen+64)
	n := ipv6.PutNeighborSolicitation(ns[ipv6.HeaderLen:], peer, group, local, peerMAC)
	ipv6.PutHeader(ns, &ipv6.Fields{PayloadLength: uint16(n), NextHeader: ipv6.NextHeaderICMPv6,
		HopLimit: ipv6.NDPHopLimit, Source: peer, Destination: group})

	h, _ := ipv6.ParseHeader(ns[:ipv6.HeaderLen+n])
	m, err := ipv6.ParseICMP(h.Payload(), h.Source(), h.Destination())
	if err != nil {
		return
	}
	if err := ipv6.ValidateNDP(h, m); err != nil {
		return
	}
	sol := ipv6.NeighborSolicitation(m)
	lla := ipv6.FindOption(sol.Options(), ipv6.OptionSourceLinkLayerAddress)
	fmt.Printf("who has %v? tell %v at %x\n", sol.Target(), h.Source(), lla.LinkLayerAddress())

	na := make([]byte, 64)
	n = ipv6.PutNeighborAdvertisement(na, local, h.Source(), sol.Target(), ipv6.FlagSolicited|ipv6.FlagOverride, localMAC)
	adv := ipv6.NeighborAdvertisement(na[:n])
	fmt.Printf("%v is at %x, solicited %v\n", adv.Target(),
		ipv6.FindOption(adv.Options(), ipv6.OptionTargetLinkLayerAddress).LinkLayerAddress(), adv.Solicited())
	// Output:
	// who has fe80::2? tell fe80::1 at 020000000001
	// fe80::2 is at 020000000002, solicited true
}
