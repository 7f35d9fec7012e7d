package arp_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/link"
)

// Example shows how a stack drives a Cache: host A sends an IP packet to B,
// which it has to resolve first; B answers A's request. Frames are passed by
// hand here; a real stack writes them to its link.Endpoint.
func Example() {
	macA, _ := link.ParseMAC("02:00:00:00:00:0a")
	macB, _ := link.ParseMAC("02:00:00:00:00:0b")
	ipA := netip.MustParseAddr("192.168.1.10")
	ipB := netip.MustParseAddr("192.168.1.1")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // from the stack's Clock

	a := arp.NewCache(arp.Config{})
	b := arp.NewCache(arp.Config{})

	// A: output path. No entry for B yet, so the packet waits and A
	// broadcasts a request.
	_, ok, sendRequest := a.Resolve(ipB, []byte("ip packet 1"), now)
	fmt.Println("A resolved:", ok, "send request:", sendRequest)
	frame := make([]byte, arp.PacketLen)
	arp.PutPacket(frame, arp.OpRequest, macA, ipA, link.MAC{}, ipB)

	// B: input path. The request is for B: B learns A and must reply.
	req, err := arp.ParsePacket(frame)
	if err != nil {
		panic(err)
	}
	res := b.Input(req, func(ip netip.Addr) bool { return ip == ipB }, now)
	fmt.Println("B replies:", res.Reply)
	reply := make([]byte, arp.PacketLen)
	arp.PutReply(reply, req, macB)

	// A: input path. The reply completes the entry and releases the packet.
	now = now.Add(300 * time.Microsecond)
	rep, _ := arp.ParsePacket(reply)
	res = a.Input(rep, func(ip netip.Addr) bool { return ip == ipA }, now)
	for _, p := range res.Released {
		fmt.Printf("A sends %q to %v at %v\n", p, res.ReleasedTo, res.ReleasedMAC)
	}
	mac, ok := a.Lookup(ipB)
	fmt.Println("A lookup:", mac, ok)

	// A's entry is REACHABLE: B answered A's request. B learned A from a
	// request, which does not show that A hears B: STALE, to be probed
	// if B sends to A and no confirmation comes. The stack's timer sleeps
	// until NextDeadline, then calls Tick.
	st, _ := a.Neigh().State(ipB)
	fmt.Println("A's entry for B:", st, "until", a.NextDeadline().Sub(now) == a.Neigh().ReachableTime())
	for _, e := range b.Entries() {
		fmt.Println("B neighbour:", e.IP, e.MAC, e.State)
	}
	// Output:
	// A resolved: false send request: true
	// B replies: true
	// A sends "ip packet 1" to 192.168.1.1 at 02:00:00:00:00:0b
	// A lookup: 02:00:00:00:00:0b true
	// A's entry for B: REACHABLE until true
	// B neighbour: 192.168.1.10 02:00:00:00:00:0a STALE
}
