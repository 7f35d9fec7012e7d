package gvnet

import (
	"fmt"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
)

// ListenUDP opens a UDP socket bound to port on the stack's address.
func (s *Stack) ListenUDP(port uint16) (*gonet.UDPConn, error) {
	return gonet.DialUDP(s.ns, &tcpip.FullAddress{
		NIC:  nicID,
		Addr: tcpip.AddrFrom4(s.addr.Addr().As4()),
		Port: port,
	}, nil, ipv4.ProtocolNumber)
}

// DialUDP opens a UDP socket connected to addr from an ephemeral port.
func (s *Stack) DialUDP(addr netip.AddrPort) (*gonet.UDPConn, error) {
	if !addr.Addr().Is4() {
		return nil, fmt.Errorf("gvnet: %v is not an IPv4 address", addr)
	}
	return gonet.DialUDP(s.ns, nil, &tcpip.FullAddress{
		NIC:  nicID,
		Addr: tcpip.AddrFrom4(addr.Addr().As4()),
		Port: addr.Port(),
	}, ipv4.ProtocolNumber)
}
