package stack

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
)

// TestGatewayRoute: inside the subnet a destination is resolved with ARP
// directly; outside it, the packet goes to the gateway's MAC, and ARP asks
// for the gateway, never for the far destination.
func TestGatewayRoute(t *testing.T) {
	leakcheck.Check(t)
	ea, eb := link.NewPipe(link.PipeOptions{})
	s := New(Options{})
	defer s.Close()
	if _, err := s.AddNIC(ea, addrA); err != nil {
		t.Fatal(err)
	}
	gw := netip.MustParseAddr("10.1.0.254")
	if err := s.AddRoute(ip.Route{Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: gw}); err != nil {
		t.Fatal(err)
	}
	frames := reader(t, eb)
	nextFrame(t, frames) // the gratuitous ARP

	far := netip.MustParseAddr("192.0.2.7")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Ping(ctx, far, 8)

	eth := nextFrame(t, frames)
	p, err := arp.ParsePacket(eth.Payload())
	if err != nil || p.TargetProtocolAddr() != gw {
		t.Fatalf("want an ARP request for the gateway %v, got %v (%v)", gw, p, err)
	}
	answerARP(t, eb, eth) // we are the gateway
	eth = nextFrame(t, frames)
	h, err := ipv4.ParseHeader(eth.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if eth.Destination() != eb.HardwareAddr() || h.Destination() != far {
		t.Fatalf("frame to %v carrying a packet to %v; want the gateway's MAC %v and %v", eth.Destination(), h.Destination(), eb.HardwareAddr(), far)
	}

	// Routes list like `ip route`: the default first.
	routes := s.Routes()
	if len(routes) != 2 || routes[0].Gateway != gw || routes[1].Destination != addrA.Masked() {
		t.Errorf("Routes() = %v", routes)
	}
}

// TestNoRoute: without a default route, a destination off every subnet
// has no route: ping fails, TCP dial reports ENETUNREACH.
func TestNoRoute(t *testing.T) {
	leakcheck.Check(t)
	a, _ := pair(t, Options{}, nil)
	far := netip.MustParseAddr("192.0.2.7")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.Ping(ctx, far, 8); !errors.Is(err, ErrNoRoute) {
		t.Errorf("ping: %v, want ErrNoRoute", err)
	}
	if _, err := a.DialTCP(ctx, netip.AddrPortFrom(far, 80)); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("dial: %v, want ENETUNREACH", err)
	}
	if a.Stats().IPv4.DropNoRoute != 1 {
		t.Errorf("DropNoRoute = %d", a.Stats().IPv4.DropNoRoute)
	}
	if err := a.AddRoute(ip.Route{Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: far}); err == nil {
		t.Error("a gateway off every subnet was accepted")
	}
}
