package stack

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/ip"
)

// TestIPv6DestinationIsAnError checks that, until IPv6 arrives (issue 11),
// every way of sending to an IPv6 address returns an error, and that a
// datagram the network layer is asked to send to one is a counted drop:
// nothing panics.
func TestIPv6DestinationIsAnError(t *testing.T) {
	a, _ := pair(t, Options{}, nil)
	v6 := netip.MustParseAddrPort("[2001:db8::1]:80")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := a.DialTCP(ctx, v6); err == nil {
		c.Close()
		t.Error("DialTCP to an IPv6 address succeeded")
	}
	if c, err := a.DialUDP(netip.AddrPort{}, v6); err == nil {
		c.Close()
		t.Error("DialUDP to an IPv6 address succeeded")
	}
	u := listenUDP(t, a, netip.AddrPort{})
	if _, err := u.WriteToUDPAddrPort([]byte("x"), v6); err == nil {
		t.Error("WriteTo an IPv6 address succeeded")
	}
	if _, err := a.Ping(ctx, v6.Addr(), 8); err == nil {
		t.Error("Ping of an IPv6 address succeeded")
	}
	if err := a.AddRoute(ip.Route{Destination: netip.MustParsePrefix("::/0"), NIC: 1}); err == nil {
		t.Error("AddRoute took an IPv6 route with no IPv6 address on the stack")
	}

	before := a.Stats().IPv4.DropNoRoute
	pb := a.bufs.Get().(*packetBuf)
	defer a.bufs.Put(pb)
	p := ip.Packet{Destination: v6.Addr(), Protocol: ip.ProtocolUDP, Payload: pb.b[headroom : headroom+8]}
	if a.sendIP(pb, &p) {
		t.Error("sendIP to an IPv6 address reported it sent")
	}
	n := a.nicByID(1)
	p = ip.Packet{Destination: v6.Addr(), Protocol: ip.ProtocolUDP, Payload: pb.b[headroom : headroom+8]}
	rc := routeCache{dst: v6.Addr(), nic: n, hop: v6.Addr(), mtu: n.mtu}
	if n.sendIP(pb, &p, &rc, nil) {
		t.Error("nic.sendIP to an IPv6 address reported it sent")
	}
	if got := a.Stats().IPv4.DropNoRoute - before; got != 2 {
		t.Errorf("DropNoRoute grew by %d, want 2", got)
	}
}
