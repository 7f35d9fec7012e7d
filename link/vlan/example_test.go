package vlan_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vlan"
	"github.com/ustack/ustack/stack"
)

// Two stacks joined by one cable (a Pipe) that carries two VLANs, each
// its own subnet: each stack attaches a sub-endpoint per VLAN as a NIC.
func ExampleNewTrunk() {
	a, b := link.NewPipe(link.PipeOptions{})
	sa, sb := stack.New(stack.Options{}), stack.New(stack.Options{})
	defer sa.Close()
	defer sb.Close()
	for _, side := range []struct {
		ep   link.Endpoint
		s    *stack.Stack
		host string
	}{{a, sa, "1"}, {b, sb, "2"}} {
		trunk, err := vlan.NewTrunk(side.ep)
		if err != nil {
			panic(err)
		}
		for _, vid := range []uint16{10, 20} {
			sub, err := trunk.Sub(vid, vlan.Config{})
			if err != nil {
				panic(err)
			}
			addr := netip.MustParsePrefix(fmt.Sprintf("10.0.%d.%s/24", vid, side.host))
			if _, err := side.s.AddNIC(sub, addr); err != nil {
				panic(err)
			}
		}
	}
	for _, dst := range []string{"10.0.10.2", "10.0.20.2"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := sa.Ping(ctx, netip.MustParseAddr(dst), 56)
		cancel()
		fmt.Println("ping", dst, err == nil)
	}
	// Output:
	// ping 10.0.10.2 true
	// ping 10.0.20.2 true
}
