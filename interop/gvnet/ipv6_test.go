package gvnet

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/fault"
	ustack "github.com/ustack/ustack/stack"
)

var (
	ustack6 = netip.MustParsePrefix("fd09::1/64")
	gvisor6 = netip.MustParsePrefix("fd09::2/64")
)

// newTCPNet6 is newTCPNet over IPv6: ustack at fd09::1 and gVisor at
// fd09::2 on a Link (bare IP packets, so no neighbour discovery),
// dropping frames both ways when drop > 0.
func newTCPNet6(t *testing.T, drop float64) *tcpNet {
	t.Helper()
	g, err := New(Options{Addr: gvisor6})
	if err != nil {
		t.Fatal(err)
	}
	var ep link.Endpoint = NewLink(g)
	var loss *fault.Endpoint
	if drop > 0 {
		loss = fault.New(ep, fault.Config{Seed: 1, Tx: fault.Impairment{Drop: drop}, Rx: fault.Impairment{Drop: drop}})
		ep = loss
	}
	u := ustack.New(ustack.Options{})
	if _, err := u.AddNIC(ep, ustack6); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		u.Close()
		g.Close()
	})
	deadline := time.Now().Add(10 * time.Second)
	for len(u.Addresses(1)) == 0 { // duplicate address detection
		if time.Now().After(deadline) {
			t.Fatal("ustack's IPv6 address was not assigned")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &tcpNet{u: u, g: g, loss: loss}
}

var lossCases6 = []struct {
	name string
	drop float64
	size int64
}{
	{"clean", 0, echoBytes},
	{"loss1%", 0.01, lossBytes},
}

func TestIPv6GVisorClientUstackServer(t *testing.T) {
	for _, tc := range lossCases6 {
		t.Run(tc.name, func(t *testing.T) {
			n := newTCPNet6(t, tc.drop)
			l, err := n.u.ListenTCP(netip.AddrPortFrom(netip.IPv6Unspecified(), 7))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			echoServer(t, l)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := n.g.Dial(ctx, netip.AddrPortFrom(ustack6.Addr(), 7))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			echoCheck(t, c, tc.size)
			n.report(t, start, tc.size)
		})
	}
}

func TestIPv6UstackClientGVisorServer(t *testing.T) {
	for _, tc := range lossCases6 {
		t.Run(tc.name, func(t *testing.T) {
			n := newTCPNet6(t, tc.drop)
			l, err := n.g.Listen(7)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			echoServer(t, l)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := n.u.DialTCP(ctx, netip.AddrPortFrom(gvisor6.Addr(), 7))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			echoCheck(t, c, tc.size)
			n.report(t, start, tc.size)
		})
	}
}

// TestIPv6UDPWithGVisor echoes datagrams both ways over IPv6.
func TestIPv6UDPWithGVisor(t *testing.T) {
	n := newTCPNet6(t, 0)
	srv, err := n.g.ListenUDP(7)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go echoDatagrams(srv)
	c, err := n.u.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(gvisor6.Addr(), 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchangeDatagrams(t, c)

	usrv, err := n.u.ListenUDP(netip.AddrPortFrom(netip.IPv6Unspecified(), 8))
	if err != nil {
		t.Fatal(err)
	}
	defer usrv.Close()
	go echoDatagrams(usrv)
	gc, err := n.g.DialUDP(netip.AddrPortFrom(ustack6.Addr(), 8))
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	exchangeDatagrams(t, gc)
}
