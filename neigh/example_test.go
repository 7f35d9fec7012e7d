package neigh_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/neigh"
)

// Example follows one IPv6 neighbour through NUD, the caller sending what
// the cache asks: resolution, confirmation by TCP, STALE, DELAY, a unicast
// probe and its answer.
func Example() {
	router := netip.MustParseAddr("fe80::1")
	mac, _ := link.ParseMAC("02:00:00:00:00:01")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)                       // from the stack's Clock
	c := neigh.New(neigh.Config{Rand: func(n int64) int64 { return n / 2 }}) // ReachableTime 30 s
	state := func() neigh.State { s, _ := c.State(router); return s }

	_, ok, solicit := c.Resolve(router, []byte("packet"), now)
	fmt.Println("resolved:", ok, "send a multicast NS:", solicit, "->", state())

	res := c.Advertisement(router, mac, neigh.Flags{Solicited: true, Router: true}, now.Add(time.Millisecond))
	fmt.Printf("NA: send %q to %v -> %v\n", res.Released[0], res.ReleasedMAC, state())

	c.Confirm(router, now.Add(20*time.Second)) // an ACK advanced: REACHABLE until 50 s
	c.Tick(now.Add(50*time.Second), nil, nil)
	fmt.Println("50 s:", state())

	c.Resolve(router, nil, now.Add(60*time.Second))
	fmt.Println("a packet to send:", state())
	c.Tick(now.Add(65*time.Second), func(s neigh.Solicit) {
		fmt.Println("65 s: send an NS to", s.Target, "unicast", s.Unicast, "at", s.MAC, "->", state())
	}, nil)
	c.Advertisement(router, mac, neigh.Flags{Solicited: true, Router: true}, now.Add(65*time.Second))
	fmt.Println("the answer:", state())
	// Output:
	// resolved: false send a multicast NS: true -> INCOMPLETE
	// NA: send "packet" to 02:00:00:00:00:01 -> REACHABLE
	// 50 s: STALE
	// a packet to send: DELAY
	// 65 s: send an NS to fe80::1 unicast true at 02:00:00:00:00:01 -> PROBE
	// the answer: REACHABLE
}
