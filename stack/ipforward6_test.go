package stack

import (
	"net/netip"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/neigh"
	"strings"
	"testing"
	"time"
)

// TestForward6 routes IPv6 through the router: ping and TCP (RFC 8200 §3,
// the Hop Limit one less), and the router's far address answers.
func TestForward6(t *testing.T) {
	rt := newRouted(t, routedOpts{v6: true})
	if err := pingWithin(rt.a, rt6B.Addr(), 56, 5*time.Second); err != nil {
		t.Fatalf("ping6 through the router: %v", err)
	}
	if err := pingWithin(rt.a, rt6R2.Addr(), 56, 5*time.Second); err != nil {
		t.Fatalf("ping6 of the router's other address: %v", err)
	}
	peer := acceptEcho(t, rt.b, netip.AddrPortFrom(rt6B.Addr(), 7))
	if got := echoThrough(t, rt.a, netip.AddrPortFrom(rt6B.Addr(), 7), peer); !strings.HasPrefix(got, "[fd01::2]:") {
		t.Fatalf("b saw %s", got)
	}
	if st := rt.r.Stats(); st.IPv6.Forwarded == 0 || st.IPv6.DropNotForUs != 0 {
		t.Fatalf("router: %v", st.Lines())
	}
}

// TestForward6Errors: Time Exceeded for a Hop Limit of 1 (RFC 4443 §3.3),
// Packet Too Big for a packet above the outgoing MTU (§3.2; routers do
// not fragment), Destination Unreachable for no route (§3.1), each
// reaching a; and nothing forwarded when forwarding is off.
func TestForward6Errors(t *testing.T) {
	rt := newRouted(t, routedOpts{v6: true, mtuR2: 1280, a: Options{TTL: 1}})
	if err := pingWithin(rt.a, rt6B.Addr(), 8, 200*time.Millisecond); err == nil {
		t.Fatal("a ping with Hop Limit 1 went through")
	}
	waitFor(t, "time exceeded", func() bool { return rt.a.Stats().ICMPv6.ErrorsIn == 1 })
	rt2 := newRouted(t, routedOpts{v6: true, mtuR2: 1280})
	pingWithin(rt2.a, rt6B.Addr(), 1400, 200*time.Millisecond)
	waitFor(t, "packet too big", func() bool { return rt2.a.Stats().ICMPv6.ErrorsIn == 1 })
	if err := pingWithin(rt2.a, rt6B.Addr(), 1000, 5*time.Second); err != nil {
		t.Fatalf("a ping below the MTU: %v", err)
	}
	pingWithin(rt2.a, netip.MustParseAddr("fd09::1"), 8, 200*time.Millisecond)
	waitFor(t, "no route", func() bool { return rt2.a.Stats().ICMPv6.ErrorsIn == 2 })
	st, st2 := rt.r.Stats(), rt2.r.Stats()
	if st.IPv6.ForwardTimeExceeded != 1 || st2.IPv6.ForwardTooBig != 1 || st2.IPv6.ForwardNoRoute != 1 {
		t.Fatalf("routers: %v\n%v", st.Lines(), st2.Lines())
	}
	off := newRouted(t, routedOpts{v6: true, noFwd: true})
	if err := pingWithin(off.a, rt6B.Addr(), 8, 200*time.Millisecond); err == nil {
		t.Fatal("a host forwarded IPv6")
	}
	if st := off.r.Stats(); st.IPv6.Forwarded != 0 || st.IPv6.DropNotForUs == 0 {
		t.Fatalf("host: %v", st.Lines())
	}
}

// TestForward6SNAT: NAT66 where a rule asks for it, on forwarded
// traffic: a's flows leave with the source fd03::1, a prefix b routes to
// the router, whose replies the router translates back at prerouting.
// TestForward6Masquerade does the same to the router's own address.
func TestForward6SNAT(t *testing.T) {
	rt := newRouted(t, routedOpts{v6: true, filter: "-t nat -A POSTROUTING -o nic2 -s fd01::/64 -j SNAT --to-source fd03::1\n"})
	if err := rt.b.AddRoute(ip.Route{Destination: netip.MustParsePrefix("fd03::/64"), Gateway: rt6R2.Addr(), NIC: 1}); err != nil {
		t.Fatal(err)
	}
	peer := acceptEcho(t, rt.b, netip.AddrPortFrom(rt6B.Addr(), 7))
	if got := echoThrough(t, rt.a, netip.AddrPortFrom(rt6B.Addr(), 7), peer); !strings.HasPrefix(got, "[fd03::1]:") {
		t.Fatalf("b saw %s, want fd03::1", got)
	}
	if err := pingWithin(rt.a, rt6B.Addr(), 56, 5*time.Second); err != nil {
		t.Fatalf("ping6 through NAT66: %v", err)
	}
	// IPv4 is not translated by that rule.
	peer4 := acceptEcho(t, rt.b, netip.AddrPortFrom(rtB.Addr(), 7))
	if got := echoThrough(t, rt.a, netip.AddrPortFrom(rtB.Addr(), 7), peer4); !strings.HasPrefix(got, "10.1.0.2:") {
		t.Fatalf("b saw %s for IPv4", got)
	}
}

// TestForward6Masquerade: MASQUERADE on IPv6 (NAT66 asked for by the
// rule): b sees the router's own address on its link, and the replies,
// datagrams for the router, are translated back at prerouting before
// they would be delivered to it.
func TestForward6Masquerade(t *testing.T) {
	rt := newRouted(t, routedOpts{v6: true, filter: "-t nat -A POSTROUTING -o nic2 -j MASQUERADE\n"})
	peer := acceptEcho(t, rt.b, netip.AddrPortFrom(rt6B.Addr(), 7))
	want := "[" + rt6R2.Addr().String() + "]:"
	if got := echoThrough(t, rt.a, netip.AddrPortFrom(rt6B.Addr(), 7), peer); !strings.HasPrefix(got, want) {
		t.Fatalf("b saw %s, want %s", got, want)
	}
	if err := pingWithin(rt.a, rt6B.Addr(), 56, 5*time.Second); err != nil {
		t.Fatalf("ping6 through MASQUERADE: %v", err)
	}
}

// TestForward6Tentative: a packet for the router's own address while it
// is still tentative (RFC 4862 §5.4) is dropped, not routed back out to
// the link as a neighbour's.
func TestForward6Tentative(t *testing.T) {
	ea, er := link.NewPipe(link.PipeOptions{QueueLen: 64})
	r := New(Options{Forwarding: true, NDP: neigh.Config{RetransTimer: time.Hour}})
	defer r.Close()
	if _, err := r.AddNIC(er, rt6R1); err != nil {
		t.Fatal(err)
	}
	f := make([]byte, link.EthernetHeaderLen+ipv6.HeaderLen+8)
	link.PutEthernetHeader(f, er.HardwareAddr(), ea.HardwareAddr(), link.EtherTypeIPv6)
	ipv6.PutHeader(f[link.EthernetHeaderLen:], &ipv6.Fields{PayloadLength: 8, NextHeader: ip.ProtocolUDP, HopLimit: 64, Source: rt6A.Addr(), Destination: rt6R1.Addr()})
	if err := ea.WriteFrame(f); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the drop", func() bool { return r.Stats().IPv6.DropNotForUs == 1 })
	if st := r.Stats(); st.IPv6.Forwarded != 0 || st.IPv6.ForwardNoRoute != 0 {
		t.Fatalf("router: %v", st.Lines())
	}
}

// TestForward6RouterFlag: a router's neighbour advertisements carry the
// Router flag (RFC 4861 §4.4, §7.2.4), which its hosts' caches record.
func TestForward6RouterFlag(t *testing.T) {
	rt := newRouted(t, routedOpts{v6: true})
	if err := pingWithin(rt.a, rt6R1.Addr(), 8, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, e := range rt.a.Neighbors() {
		if e.IP == rt6R1.Addr() {
			if !e.Router {
				t.Fatalf("a's entry for the router: %+v, want Router", e.Entry)
			}
			return
		}
	}
	t.Fatal("a has no entry for the router")
}
