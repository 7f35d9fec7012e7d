package bench

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/ustack/ustack/interop/gvnet"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/stack"
)

// ustackPeer adapts a ustack Stack with one address to Peer.
type ustackPeer struct {
	s    *stack.Stack
	addr netip.Addr
}

func (u ustackPeer) Listen(port uint16) (net.Listener, error) {
	l, err := u.s.ListenTCP(netip.AddrPortFrom(u.addr, port))
	if err != nil {
		return nil, err // not a typed nil in a non-nil interface
	}
	return l, nil
}

func (u ustackPeer) Dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	c, err := u.s.DialTCP(ctx, addr)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// newUstack returns a ustack stack with ep attached at addr.
func newUstack(ep link.Endpoint, addr netip.Prefix) (*stack.Stack, error) {
	var opts stack.Options
	if addr.Addr().Is6() {
		// No duplicate address detection: the address is usable at once
		// (the link holds the two stacks only).
		opts.DADTransmits = -1
	}
	return newUstackOpts(ep, addr, opts)
}

// newUstackOpts is newUstack with options o.
func newUstackOpts(ep link.Endpoint, addr netip.Prefix, o stack.Options) (*stack.Stack, error) {
	s := stack.New(o)
	if _, err := s.AddNIC(ep, addr); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// UstackPair returns two ustack stacks over a link.Pipe (Ethernet and ARP)
// whose queues hold 4096 frames each way, like gVisor's channel endpoints
// in GVisorPair.
func UstackPair(mtu int) (*Pair, error) {
	return ustackPipePair("ustack", link.PipeOptions{MTU: mtu, QueueLen: 4096}, ClientPrefix, ServerPrefix)
}

// UstackOffloadPair is UstackPair over a link.Pipe with the offloads of a
// TAP device (checksum both ways, TSO4, TSO6 and GRO): TCP's
// super-segments cross it whole with their metadata. Its queues hold 256
// frames each way (of up to 64 KiB each).
func UstackOffloadPair(mtu int) (*Pair, error) {
	return ustackPipePair("ustack, offloads", offloadPipe(mtu), ClientPrefix, ServerPrefix)
}

// offloadPipe is the link of UstackOffloadPair.
func offloadPipe(mtu int) link.PipeOptions {
	ofl := link.Offloads{TxChecksum: true, RxChecksum: true, TSO4: true, TSO6: true, GRO: true}
	return link.PipeOptions{MTU: mtu, QueueLen: 256, Offloads: ofl}
}

// The addresses of the IPv4 pairs whatever UseIPv6 says.
var (
	clientPrefix4 = netip.MustParsePrefix("10.9.0.1/24")
	serverPrefix4 = netip.MustParsePrefix("10.9.0.2/24")
)

// UstackIPv4Pair is UstackPair over IPv4 even after UseIPv6: the
// reference an IPv6 run compares its UstackPair with, in the same run.
func UstackIPv4Pair(mtu int) (*Pair, error) {
	return ustackPipePair("ustack IPv4", link.PipeOptions{MTU: mtu, QueueLen: 4096}, clientPrefix4, serverPrefix4)
}

// UstackOffloadIPv4Pair is UstackOffloadPair over IPv4 even after
// UseIPv6.
func UstackOffloadIPv4Pair(mtu int) (*Pair, error) {
	return ustackPipePair("ustack IPv4, offloads", offloadPipe(mtu), clientPrefix4, serverPrefix4)
}

// ustackPipePair returns the pair named name: two ustack stacks over a
// link.Pipe made with opts, the client at cp and the server at sp.
func ustackPipePair(name string, opts link.PipeOptions, cp, sp netip.Prefix) (*Pair, error) {
	a, b := link.NewPipe(opts)
	sa, err := newUstack(a, cp)
	if err != nil {
		return nil, fmt.Errorf("%s pair: %w", name, err)
	}
	sb, err := newUstack(b, sp)
	if err != nil {
		sa.Close()
		return nil, fmt.Errorf("%s pair: %w", name, err)
	}
	return &Pair{
		Name:       name,
		Client:     ustackPeer{sa, cp.Addr()},
		Server:     ustackPeer{sb, sp.Addr()},
		ClientUDP:  ustackPeer{sa, cp.Addr()},
		ServerUDP:  ustackPeer{sb, sp.Addr()},
		ServerAddr: sp.Addr(),
		MTU:        opts.MTU,
		closers:    []func() error{sa.Close, sb.Close},
	}, nil
}

// mixed returns a ustack stack at ustackAddr and a gVisor stack at
// gvisorAddr joined by a gvnet.Link.
func mixed(mtu int, ustackAddr, gvisorAddr netip.Prefix) (*stack.Stack, *gvnet.Stack, error) {
	g, err := gvnet.New(gvnet.Options{Addr: gvisorAddr, MTU: mtu})
	if err != nil {
		return nil, nil, err
	}
	u, err := newUstack(gvnet.NewLink(g), ustackAddr)
	if err != nil {
		g.Close()
		return nil, nil, err
	}
	return u, g, nil
}

// UstackToGVisor returns a ustack client and a gVisor server over a
// gvnet.Link (bare IPv4 packets, no Ethernet).
func UstackToGVisor(mtu int) (*Pair, error) {
	u, g, err := mixed(mtu, ClientPrefix, ServerPrefix)
	if err != nil {
		return nil, fmt.Errorf("ustack→gVisor pair: %w", err)
	}
	return &Pair{
		Name:       "ustack→gVisor",
		Client:     ustackPeer{u, ClientPrefix.Addr()},
		Server:     g,
		ClientUDP:  ustackPeer{u, ClientPrefix.Addr()},
		ServerUDP:  gvisorUDP{g},
		ServerAddr: g.Addr(),
		MTU:        mtu,
		closers:    []func() error{g.Close, u.Close},
	}, nil
}

// GVisorToUstack returns a gVisor client and a ustack server over a
// gvnet.Link.
func GVisorToUstack(mtu int) (*Pair, error) {
	u, g, err := mixed(mtu, ServerPrefix, ClientPrefix)
	if err != nil {
		return nil, fmt.Errorf("gVisor→ustack pair: %w", err)
	}
	return &Pair{
		Name:       "gVisor→ustack",
		Client:     g,
		Server:     ustackPeer{u, ServerPrefix.Addr()},
		ClientUDP:  gvisorUDP{g},
		ServerUDP:  ustackPeer{u, ServerPrefix.Addr()},
		ServerAddr: ServerPrefix.Addr(),
		MTU:        mtu,
		closers:    []func() error{g.Close, u.Close},
	}, nil
}
