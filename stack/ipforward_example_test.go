package stack_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/ustack/ustack/filter"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/stack"
)

// A router between two hosts, each on its own link: the hosts' default
// routes go to it, it routes between its NICs, and MASQUERADE gives what
// leaves by its second NIC its address there.
func ExampleOptions_forwarding() {
	router := stack.New(stack.Options{Forwarding: true})
	a, b := stack.New(stack.Options{}), stack.New(stack.Options{})
	defer router.Close()
	defer a.Close()
	defer b.Close()

	aEnd, r1 := link.NewPipe(link.PipeOptions{MACA: link.MAC{2, 0, 0, 0, 1, 2}, MACB: link.MAC{2, 0, 0, 0, 1, 1}})
	r2, bEnd := link.NewPipe(link.PipeOptions{MACA: link.MAC{2, 0, 0, 0, 2, 1}, MACB: link.MAC{2, 0, 0, 0, 2, 2}})
	router.AddNIC(r1, netip.MustParsePrefix("10.1.0.1/24"))
	router.AddNIC(r2, netip.MustParsePrefix("10.2.0.1/24"))
	a.AddNIC(aEnd, netip.MustParsePrefix("10.1.0.2/24"))
	a.AddRoute(ip.Route{Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.1.0.1")})
	b.AddNIC(bEnd, netip.MustParsePrefix("10.2.0.2/24"))
	b.AddRoute(ip.Route{Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.2.0.1")})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := a.Ping(ctx, netip.MustParseAddr("10.2.0.2"), 56)
	fmt.Println("ping through the router:", err)

	// MASQUERADE on the router's second NIC (pipes are named nic1, nic2).
	f := filter.New(filter.Config{LocalAddr: router.LocalAddr})
	if err := f.Load(strings.NewReader("-t nat -A POSTROUTING -o nic2 -j MASQUERADE\n")); err != nil {
		fmt.Println(err)
		return
	}
	router.SetFilter(f)
	l, _ := b.Listen("tcp", "10.2.0.2:80")
	defer l.Close()
	go func() {
		c, err := a.DialContext(ctx, "tcp", "10.2.0.2:80")
		if err == nil {
			c.Close()
		}
	}()
	c, err := l.Accept()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	fmt.Println("b sees the connection from", strings.Split(c.RemoteAddr().String(), ":")[0])
	fmt.Println("forwarded:", router.Stats().IPv4.Forwarded > 0)
	// Output:
	// ping through the router: <nil>
	// b sees the connection from 10.2.0.1
	// forwarded: true
}
