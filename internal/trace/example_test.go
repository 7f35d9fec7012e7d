package trace_test

import (
	"fmt"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/internal/trace"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vlan"
	"net/netip"
)

// Trace an ARP request that came tagged for VLAN 10.
func ExampleAppend() {
	f := make([]byte, vlan.HeaderLen+arp.PacketLen)
	me := link.MAC{0x02, 0, 0, 0, 0, 1}
	vlan.PutHeader(f, link.Broadcast, me, vlan.Tag{VID: 10}, link.EtherTypeARP)
	arp.PutPacket(f[vlan.HeaderLen:], arp.OpRequest, me, netip.MustParseAddr("10.10.0.1"), link.MAC{}, netip.MustParseAddr("10.10.0.2"))
	fmt.Print(string(trace.Append(nil, &trace.Frame{Dir: trace.In, NIC: "tap0", Data: f})))
	// Output:
	// in tap0 46 bytes
	//   L2 02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, vlan 10 pcp 0, ARP
	//     L3 ARP who-has 10.10.0.2 tell 10.10.0.1 (02:00:00:00:00:01)
}
