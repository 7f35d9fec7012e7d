// Package bench measures ustack and gVisor netstack doing the same work
// over in-memory links, so the two can be compared side by side in one run
// (DESIGN.md, Performance).
//
// Every metric takes a Pair: a client Peer and a server Peer joined by an
// in-memory link. Constructors build pairs of each kind: GVisorPair (two
// gVisor stacks over channel endpoints pumped by goroutines), UstackPair
// (two ustack stacks over link.Pipe) and the mixed pairs UstackToGVisor and
// GVisorToUstack (a ustack stack and a gVisor stack over gvnet.Link).
package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/ustack/ustack/interop/gvnet"
)

// Peer is one TCP/IP stack as the benchmarks see it.
type Peer interface {
	// Listen listens for TCP connections on the peer's address and port.
	Listen(port uint16) (net.Listener, error)
	// Dial opens a TCP connection to addr.
	Dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error)
}

// Pair is a client and a server joined by a link: in memory, or a TAP
// device or veth pair inside network namespaces (tap.go).
type Pair struct {
	Name   string // for example "gVisor"
	Client Peer   // dials
	Server Peer   // listens
	// ClientUDP and ServerUDP are the two ends' UDP, nil on a pair
	// without it.
	ClientUDP, ServerUDP UDPPeer
	ServerAddr           netip.Addr // the server's address
	MTU                  int        // link MTU
	closers              []func() error
}

// MSS is the TCP maximum segment size on the pair's link: the MTU less the
// minimal IPv4 and TCP headers.
func (p *Pair) MSS() int { return p.MTU - 40 }

// Close stops both stacks and the link.
func (p *Pair) Close() error {
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		errs = append(errs, p.closers[i]())
	}
	p.closers = nil
	return errors.Join(errs...)
}

// PairFunc builds a pair on a link with the given MTU.
type PairFunc func(mtu int) (*Pair, error)

// ErrUnavailable reports that a pair cannot be built in this build, for
// example one whose stack failed to start.
var ErrUnavailable = errors.New("bench: pair unavailable")

// Addresses of the client and the server in every pair (UseIPv6 changes
// them).
var (
	ClientPrefix = netip.MustParsePrefix("10.9.0.1/24")
	ServerPrefix = netip.MustParsePrefix("10.9.0.2/24")
)

// UseIPv6 makes the in-memory pairs speak IPv6: the client at fd09::1/64,
// the server at fd09::2/64. Call it before building any pair.
func UseIPv6() {
	ClientPrefix = netip.MustParsePrefix("fd09::1/64")
	ServerPrefix = netip.MustParsePrefix("fd09::2/64")
}

// GVisorPair returns two gVisor stacks over channel endpoints joined by one
// pumping goroutine per direction (gvnet.Pair).
func GVisorPair(mtu int) (*Pair, error) {
	gp, err := gvnet.NewPair(gvnet.PairOptions{A: ClientPrefix, B: ServerPrefix, MTU: mtu})
	if err != nil {
		return nil, fmt.Errorf("gVisor pair: %w", err)
	}
	return &Pair{
		Name:       "gVisor",
		Client:     gp.A,
		Server:     gp.B,
		ClientUDP:  gvisorUDP{gp.A},
		ServerUDP:  gvisorUDP{gp.B},
		ServerAddr: gp.B.Addr(),
		MTU:        mtu,
		closers:    []func() error{gp.Close},
	}, nil
}
