package gvnet

import (
	"fmt"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
)

// ListenUDP opens a UDP socket bound to port on the stack's address.
func (s *Stack) ListenUDP(port uint16) (*gonet.UDPConn, error) {
	return gonet.DialUDP(s.ns, &tcpip.FullAddress{
		NIC:  nicID,
		Addr: tcpAddr(s.addr.Addr()),
		Port: port,
	}, nil, netProto(s.addr.Addr()))
}

// DialUDP opens a UDP socket connected to addr from an ephemeral port.
func (s *Stack) DialUDP(addr netip.AddrPort) (*gonet.UDPConn, error) {
	if !addr.Addr().IsValid() || addr.Addr().Is4In6() {
		return nil, fmt.Errorf("gvnet: %v is not an IP address", addr)
	}
	return gonet.DialUDP(s.ns, nil, &tcpip.FullAddress{
		NIC:  nicID,
		Addr: tcpAddr(addr.Addr()),
		Port: addr.Port(),
	}, netProto(addr.Addr()))
}
