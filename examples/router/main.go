// Command router builds, in memory, the network the notes draw: two
// subnets with a host each and a router between them, and a third
// subnet, "the internet", behind MASQUERADE. Every node is a ustack
// stack; the links are link.Pipe pairs. It shows that inside a subnet
// ARP finds the MAC, that outside it the packet goes to the gateway, and
// that the router keeps a routing table and rewrites the flows it
// masquerades. See README.md for the same network with kernels as hosts,
// in namespaces.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/ustack/ustack/filter"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/stack"
)

// node is one stack of the network.
type node struct {
	name string
	s    *stack.Stack
}

// attach adds a NIC named nic on ep with addr to n and, if gw is not
// empty, a default route through it.
func (n *node) attach(ep link.Endpoint, nic, addr, gw string) {
	p := netip.MustParsePrefix(addr)
	id, err := n.s.AddNIC(ep, p)
	if err != nil {
		log.Fatalf("%s: %v", n.name, err)
	}
	if err := n.s.SetNICName(id, nic); err != nil {
		log.Fatalf("%s: %v", n.name, err)
	}
	if gw != "" {
		if err := n.s.AddRoute(ip.Route{Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr(gw)}); err != nil {
			log.Fatalf("%s: %v", n.name, err)
		}
	}
}

// show prints n's routing table and neighbour (ARP) cache.
func (n *node) show() {
	fmt.Printf("%s:\n  routes:\n", n.name)
	for _, r := range n.s.Routes() {
		fmt.Printf("    %v (%s)\n", r, n.s.NICName(stack.NICID(r.NIC)))
	}
	fmt.Printf("  neighbours (ARP):\n")
	for _, e := range n.s.Neighbors() {
		if e.IP.Is4() {
			fmt.Printf("    %v at %v %v (%s)\n", e.IP, e.MAC, e.State, n.s.NICName(e.NIC))
		}
	}
}

// link joins a NIC of each of two nodes with a link.Pipe whose ends have
// the MACs 02:00:00:00:<net>:<a> and :<b>.
func pipe(net, a, b byte) (*link.PipeEnd, *link.PipeEnd) {
	return link.NewPipe(link.PipeOptions{MACA: link.MAC{2, 0, 0, 0, net, a}, MACB: link.MAC{2, 0, 0, 0, net, b}})
}

func main() {
	newNode := func(name string, o stack.Options) *node { return &node{name: name, s: stack.New(o)} }
	h1 := newNode("host 1 (subnet 10.1.0.0/24)", stack.Options{})
	h2 := newNode("host 2 (subnet 10.2.0.0/24)", stack.Options{})
	srv := newNode("server (the internet, 203.0.113.0/24)", stack.Options{})
	r := newNode("router", stack.Options{Forwarding: true})
	for _, n := range []*node{h1, h2, srv, r} {
		defer n.s.Close()
	}

	h1End, r1 := pipe(1, 10, 1)
	h2End, r2 := pipe(2, 20, 1)
	srvEnd, r3 := pipe(3, 80, 1)
	r.attach(r1, "lan1", "10.1.0.1/24", "")
	r.attach(r2, "lan2", "10.2.0.1/24", "")
	r.attach(r3, "wan", "203.0.113.1/24", "")
	h1.attach(h1End, "eth0", "10.1.0.10/24", "10.1.0.1")
	h2.attach(h2End, "eth0", "10.2.0.20/24", "10.2.0.1")
	srv.attach(srvEnd, "eth0", "203.0.113.80/24", "") // no route back to the 10.x subnets

	// The router's rules: what goes out to the internet is masqueraded
	// behind its address there; between the subnets, routing only.
	f := filter.New(filter.Config{LocalAddr: r.s.LocalAddr})
	if err := f.Load(strings.NewReader("-t nat -A POSTROUTING -o wan -j MASQUERADE\n")); err != nil {
		log.Fatal(err)
	}
	r.s.SetFilter(f)

	// Servers: host 2 and the internet server echo and say who called.
	for _, n := range []*node{h2, srv} {
		l, err := n.s.Listen("tcp", ":7")
		if err != nil {
			log.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "hello %s, from %s\n", c.RemoteAddr(), c.LocalAddr())
				c.Close()
			}
		}()
	}
	call := func(from *node, to string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := from.s.DialContext(ctx, "tcp", to)
		if err != nil {
			log.Fatalf("%s: dial %s: %v", from.name, to, err)
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		fmt.Printf("%s -> %s: %s", c.LocalAddr(), to, b)
	}
	ping := func(from *node, to string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rtt, err := from.s.Ping(ctx, netip.MustParseAddr(to), 56)
		fmt.Printf("ping %s from %s: %v %v\n", to, from.name, rtt.Round(time.Microsecond), err)
	}

	fmt.Println("== inside a subnet: ARP finds the MAC of the address itself")
	ping(h1, "10.1.0.1")
	fmt.Println("== outside it: the packet goes to the gateway's MAC, the router routes it on")
	ping(h1, "10.2.0.20")
	call(h1, "10.2.0.20:7")
	fmt.Println("== to the internet: MASQUERADE, the server sees the router's address")
	call(h1, "203.0.113.80:7")
	call(h2, "203.0.113.80:7")
	fmt.Println()
	for _, n := range []*node{h1, h2, r, srv} {
		n.show()
	}
	fmt.Println("\nthe router's connection tracking (conntrack -L):")
	f.Conntrack().List(os.Stdout, time.Now())
	st := r.s.Stats()
	fmt.Printf("\nthe router forwarded %d datagrams; host 1's ARP cache has the gateway's MAC, never host 2's\n", st.IPv4.Forwarded)
}
