package ipv4_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/ustack/ustack/ipv4"
)

func ExampleFragment() {
	pkt := make([]byte, 3000)
	ipv4.PutHeader(pkt, &ipv4.Fields{TotalLength: 3000, ID: 1, TTL: 64, Protocol: ipv4.ProtocolUDP,
		Source: netip.MustParseAddr("192.0.2.1"), Destination: netip.MustParseAddr("192.0.2.2")})

	r := ipv4.NewReassembler(ipv4.ReassemblyConfig{})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	scratch := make([]byte, 1500)
	ipv4.Fragment(pkt, 1500, scratch, func(frag []byte) error {
		h, err := ipv4.ParseHeader(frag)
		if err != nil {
			return err
		}
		fmt.Printf("fragment: offset %d, %d bytes, MF %v\n", h.FragmentOffset(), len(h.Payload()), h.MoreFragments())
		// Reassembler copies what it keeps, so scratch can be reused.
		if d, _ := r.Add(h, now); d != nil {
			fmt.Printf("reassembled %d bytes\n", len(d))
		}
		return nil
	})
	// Output:
	// fragment: offset 0, 1480 bytes, MF true
	// fragment: offset 1480, 1480 bytes, MF true
	// fragment: offset 2960, 20 bytes, MF false
	// reassembled 3000 bytes
}
