package ip_test

import (
	"fmt"
	"net/netip"

	"github.com/ustack/ustack/ip"
)

func ExampleTable() {
	var t ip.Table
	t.Add(ip.Route{Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("192.168.1.1"), NIC: 1})
	t.Add(ip.Route{Destination: netip.MustParsePrefix("192.168.1.0/24"), NIC: 1})
	for _, dst := range []string{"192.168.1.7", "203.0.113.9"} {
		a := netip.MustParseAddr(dst)
		r, _ := t.Lookup(a)
		fmt.Printf("%s: %v, next hop %s\n", dst, r, r.NextHop(a))
	}
	// Output:
	// 192.168.1.7: 192.168.1.0/24 dev 1, next hop 192.168.1.7
	// 203.0.113.9: default via 192.168.1.1 dev 1, next hop 192.168.1.1
}
