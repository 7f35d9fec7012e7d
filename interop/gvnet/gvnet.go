// Package gvnet runs gVisor's netstack in process as a peer for ustack's
// interoperability tests and benchmarks.
//
// A Stack is one gVisor netstack with a single L3 NIC: a
// pkg/tcpip/link/channel endpoint that carries bare IPv4 packets (no
// Ethernet, no ARP). Two shapes of link are offered:
//
//   - Pair: two gVisor stacks whose channel endpoints are joined by one
//     goroutine pumping each direction, the in-memory peer DESIGN.md
//     measures gVisor with.
//   - Link: an adapter that makes a Stack's channel endpoint look like a
//     ustack link.Endpoint with the zero MAC, so a ustack Stack attached to
//     it treats it as a TUN-like L3 link.
//
// NewTAP instead builds a Stack on a Linux TAP device (gVisor's fdbased
// endpoint, Ethernet and ARP), to measure gVisor against the kernel.
//
// Listen and Dial use gVisor's gonet adapters, so both ends of a test speak
// net.Listener and net.Conn.
package gvnet

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// nicID is the only NIC of every Stack.
const nicID tcpip.NICID = 1

// Options configure New. The zero value of every field but Addr is usable.
type Options struct {
	// Addr is the stack's address and subnet, for example 10.9.0.2/24 or
	// fd09::2/64. The subnet becomes the on-link route; there is no other
	// route. The stack speaks IPv4 and IPv6 either way.
	Addr netip.Prefix
	// MTU is the link MTU (the largest IPv4 packet); 0 means 1500.
	MTU int
	// QueueLen is the length of the channel endpoint's outbound queue.
	// gVisor drops a packet written while it is full; 0 means 4096, enough
	// that a bulk transfer over an in-memory link never overflows it.
	QueueLen int
	// NoSACK turns off TCP selective acknowledgements (RFC 2018), which
	// gVisor enables by default.
	NoSACK bool
}

// Stack is one gVisor netstack with one channel-endpoint NIC.
type Stack struct {
	ns   *stack.Stack
	ep   *channel.Endpoint // nil for a stack on a TAP device (NewTAP)
	addr netip.Prefix
	mtu  int
	// closeLink releases the link after the stack has stopped using it.
	closeLink func()

	closeOnce sync.Once
}

// New builds a gVisor stack with IPv4, ICMPv4 and TCP, one NIC on a channel
// endpoint, opts.Addr on that NIC and the on-link route for its subnet.
func New(opts Options) (*Stack, error) {
	if !opts.Addr.IsValid() || opts.Addr.Addr().Is4In6() {
		return nil, fmt.Errorf("gvnet: %v is not an IP prefix", opts.Addr)
	}
	mtu := opts.MTU
	if mtu == 0 {
		mtu = 1500
	}
	qlen := opts.QueueLen
	if qlen == 0 {
		qlen = 4096
	}
	ep := channel.New(qlen, uint32(mtu), "")
	ns, err := newNetstack(opts, ep, false)
	if err != nil {
		return nil, err
	}
	return &Stack{ns: ns, ep: ep, addr: opts.Addr, mtu: mtu, closeLink: ep.Close}, nil
}

// newNetstack builds a gVisor stack with IPv4, ICMPv4 and TCP (and ARP if
// withARP), one NIC on ep, opts.Addr on that NIC and the on-link route for
// its subnet.
func newNetstack(opts Options, ep stack.LinkEndpoint, withARP bool) (*stack.Stack, error) {
	protos := []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol}
	if withARP {
		protos = append(protos, arp.NewProtocol)
	}
	ns := stack.New(stack.Options{
		NetworkProtocols:   protos,
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
	})
	if opts.NoSACK {
		sack := tcpip.TCPSACKEnabled(false)
		if err := ns.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
			ns.Destroy()
			return nil, fmt.Errorf("gvnet: disabling SACK: %s", err)
		}
	}
	if err := ns.CreateNIC(nicID, ep); err != nil {
		ns.Destroy()
		return nil, fmt.Errorf("gvnet: CreateNIC: %s", err)
	}
	pa := tcpip.ProtocolAddress{
		Protocol: netProto(opts.Addr.Addr()),
		AddressWithPrefix: tcpip.AddressWithPrefix{
			Address:   tcpAddr(opts.Addr.Addr()),
			PrefixLen: opts.Addr.Bits(),
		},
	}
	if err := ns.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
		ns.Destroy()
		return nil, fmt.Errorf("gvnet: AddProtocolAddress: %s", err)
	}
	ns.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: nicID}})
	return ns, nil
}

// netProto is the gVisor network protocol of a's family.
func netProto(a netip.Addr) tcpip.NetworkProtocolNumber {
	if a.Is4() {
		return ipv4.ProtocolNumber
	}
	return ipv6.ProtocolNumber
}

// tcpAddr is a as a gVisor address.
func tcpAddr(a netip.Addr) tcpip.Address {
	if a.Is4() {
		return tcpip.AddrFrom4(a.As4())
	}
	return tcpip.AddrFrom16(a.As16())
}

// Netstack returns the underlying gVisor stack, for options this package
// does not wrap.
func (s *Stack) Netstack() *stack.Stack { return s.ns }

// Channel returns the stack's channel endpoint, or nil for a stack built
// by NewTAP. Packets the stack sends are read from it with ReadContext;
// packets for the stack are delivered with InjectInbound.
func (s *Stack) Channel() *channel.Endpoint { return s.ep }

// Addr returns the stack's address.
func (s *Stack) Addr() netip.Addr { return s.addr.Addr() }

// MTU returns the link MTU.
func (s *Stack) MTU() int { return s.mtu }

// Listen listens for TCP connections on the stack's address and port.
func (s *Stack) Listen(port uint16) (net.Listener, error) {
	return gonet.ListenTCP(s.ns, tcpip.FullAddress{
		NIC:  nicID,
		Addr: tcpAddr(s.addr.Addr()),
		Port: port,
	}, netProto(s.addr.Addr()))
}

// Dial opens a TCP connection to addr.
func (s *Stack) Dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	if !addr.Addr().IsValid() || addr.Addr().Is4In6() {
		return nil, fmt.Errorf("gvnet: %v is not an IP address", addr)
	}
	return gonet.DialContextTCP(ctx, s.ns, tcpip.FullAddress{
		NIC:  nicID,
		Addr: tcpAddr(addr.Addr()),
		Port: addr.Port(),
	}, netProto(addr.Addr()))
}

// Close aborts every endpoint, waits for the stack's goroutines and closes
// the channel endpoint. It is safe to call more than once.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		s.ns.Close()
		s.ns.Wait() // removes the NIC, which detaches the link endpoint
		s.closeLink()
	})
	return nil
}

// inject delivers one IP packet, held in b, to the stack, as IPv6 if its
// version nibble says 6, else IPv4. The stack takes the buffer's
// references.
func (s *Stack) inject(b buffer.Buffer) {
	proto := ipv4.ProtocolNumber
	if v, ok := b.PullUp(0, 1); ok && v.AsSlice()[0]>>4 == 6 {
		proto = ipv6.ProtocolNumber
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: b})
	s.ep.InjectInbound(proto, pkt)
	pkt.DecRef()
}
