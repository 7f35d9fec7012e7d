package stack

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/filter"
)

// echoOnce accepts one connection on l, echoes it and reports the
// peer's address on the channel.
func acceptEcho(t *testing.T, s *Stack, at netip.AddrPort) <-chan string {
	t.Helper()
	l, err := s.ListenTCP(at)
	if err != nil {
		t.Fatal(err)
	}
	peer := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			peer <- err.Error()
			return
		}
		peer <- c.RemoteAddr().String()
		io.Copy(c, c)
		c.Close()
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return peer
}

// echoThrough dials to from s, checks that 64 KB come back, and
// returns the address the server saw.
func echoThrough(t *testing.T, s *Stack, to netip.AddrPort, peer <-chan string) string {
	t.Helper()
	c := dial(t, s, to)
	defer c.Close()
	msg := make([]byte, 64<<10)
	for i := range msg {
		msg[i] = byte(i % 251)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("echo through the router: %v", err)
	}
	if string(got) != string(msg) {
		t.Fatal("the echo differs")
	}
	return <-peer
}

// TestForwardMasquerade: behind MASQUERADE on the router's b side, b
// sees the router's address for TCP, UDP and ping, and replies find
// their way back; a port unreachable from b about a's datagram reaches
// a's socket translated (ECONNREFUSED).
func TestForwardMasquerade(t *testing.T) {
	rt := newRouted(t, routedOpts{filter: "-t nat -A POSTROUTING -o nic2 -j MASQUERADE\n"})
	peer := acceptEcho(t, rt.b, netip.AddrPortFrom(rtB.Addr(), 80))
	if got := echoThrough(t, rt.a, netip.AddrPortFrom(rtB.Addr(), 80), peer); !strings.HasPrefix(got, "10.2.0.1:") {
		t.Fatalf("b saw %s, want the router's 10.2.0.1", got)
	}
	if err := pingWithin(rt.a, rtB.Addr(), 100, 5*time.Second); err != nil {
		t.Fatalf("ping through MASQUERADE: %v", err)
	}
	ub, err := rt.b.ListenUDP(netip.AddrPortFrom(rtB.Addr(), 53))
	if err != nil {
		t.Fatal(err)
	}
	defer ub.Close()
	ua, err := rt.a.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(rtB.Addr(), 53))
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	ua.Write([]byte("query"))
	buf := make([]byte, 100)
	ub.SetDeadline(time.Now().Add(5 * time.Second))
	n, from, err := ub.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "query" || !strings.HasPrefix(from.String(), "10.2.0.1:") {
		t.Fatalf("b read %q from %v: %v", buf[:n], from, err)
	}
	ub.WriteTo([]byte("answer"), from)
	ua.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err = ua.Read(buf); err != nil || string(buf[:n]) != "answer" {
		t.Fatalf("a read %q: %v", buf[:n], err)
	}
	// Nothing listens on b's port 9: its port unreachable goes to the
	// router's address and comes to a de-NATed.
	uc, err := rt.a.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(rtB.Addr(), 9))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.Write([]byte("x"))
	uc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := uc.Read(buf); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("read after a port unreachable through NAT: %v", err)
	}
	var ct strings.Builder
	rt.r.Filter().Conntrack().List(&ct, time.Now())
	if !strings.Contains(ct.String(), "dst=10.2.0.1") {
		t.Fatalf("conntrack has no masqueraded flow:\n%s", ct.String())
	}
}

// TestForwardDNAT: a port forward on the router's own address, to b.
func TestForwardDNAT(t *testing.T) {
	rt := newRouted(t, routedOpts{filter: "-t nat -A PREROUTING -i nic1 -p tcp --dport 8080 -j DNAT --to-destination 10.2.0.2:80\n"})
	peer := acceptEcho(t, rt.b, netip.AddrPortFrom(rtB.Addr(), 80))
	if got := echoThrough(t, rt.a, netip.AddrPortFrom(rtR1.Addr(), 8080), peer); !strings.HasPrefix(got, "10.1.0.2:") {
		t.Fatalf("b saw %s, want a's address", got)
	}
	if st := rt.r.Stats(); st.Filter.DropNATElsewhere != 0 || st.IPv4.Forwarded == 0 {
		t.Fatalf("router: %v", st.Lines())
	}
}

// TestForwardChain: a default-deny FORWARD chain with ESTABLISHED,RELATED,
// one port allowed from a to b, one rejected with a reset; pings
// dropped; the rules' counters count.
func TestForwardChain(t *testing.T) {
	rules := `*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i nic1 -o nic2 -p tcp --dport 7 -j ACCEPT
-A FORWARD -i nic1 -p tcp --dport 9 -j REJECT --reject-with tcp-reset
COMMIT
`
	// One rule set for both families, as the filter has it; a REJECT of a
	// forwarded IPv6 segment answers with the reset too.
	for _, v6 := range []bool{false, true} {
		name, dst := "IPv4", rtB.Addr()
		if v6 {
			name, dst = "IPv6", rt6B.Addr()
		}
		t.Run(name, func(t *testing.T) {
			rt := newRouted(t, routedOpts{filter: rules, v6: v6})
			peer := acceptEcho(t, rt.b, netip.AddrPortFrom(dst, 7))
			echoThrough(t, rt.a, netip.AddrPortFrom(dst, 7), peer)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := rt.a.DialTCP(ctx, netip.AddrPortFrom(dst, 9)); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("dial to the rejected port: %v", err)
			}
			if err := pingWithin(rt.a, dst, 8, 200*time.Millisecond); err == nil {
				t.Fatal("a ping went through a FORWARD chain that drops it")
			}
			rs, _ := rt.r.Filter().Rules(filter.TableFilter, "FORWARD")
			for i, want := range []bool{true, true, true} {
				if p, _ := rs[i].Counters(); (p > 0) != want {
					t.Fatalf("rule %d (%s): %d packets", i+1, rs[i], p)
				}
			}
			_, dropped, _, _ := rt.r.Filter().Policy(filter.TableFilter, "FORWARD")
			st := rt.r.Stats()
			if dropped == 0 || st.Filter.Dropped == 0 || st.Filter.Rejected != 1 {
				t.Fatalf("policy drops %d; router: %v", dropped, st.Lines())
			}
		})
	}
}

// TestForwardNotToOwnSockets: a datagram routed through the stack is not
// delivered to the stack's own socket on the same port.
func TestForwardNotToOwnSockets(t *testing.T) {
	rt := newRouted(t, routedOpts{})
	ur, err := rt.r.ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), 53))
	if err != nil {
		t.Fatal(err)
	}
	defer ur.Close()
	ub, err := rt.b.ListenUDP(netip.AddrPortFrom(rtB.Addr(), 53))
	if err != nil {
		t.Fatal(err)
	}
	defer ub.Close()
	ua, err := rt.a.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(rtB.Addr(), 53))
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	ua.Write([]byte("for b"))
	buf := make([]byte, 100)
	ub.SetDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := ub.ReadFrom(buf); err != nil || string(buf[:n]) != "for b" {
		t.Fatalf("b: %q %v", buf[:n], err)
	}
	if st := rt.r.Stats(); st.UDP.DatagramsIn != 0 {
		t.Fatalf("the router's socket took %d datagrams", st.UDP.DatagramsIn)
	}
}

// TestForwardPathMTU: the router's NIC on b's link has an MTU of 1000,
// below the 1500 of the hosts; a's TCP segments (DF) get fragmentation
// needed from the router (RFC 1191), a lowers its path MTU and the
// transfer completes.
func TestForwardPathMTU(t *testing.T) {
	rt := newRouted(t, routedOpts{mtuR2: 1000})
	peer := acceptEcho(t, rt.b, netip.AddrPortFrom(rtB.Addr(), 7))
	echoThrough(t, rt.a, netip.AddrPortFrom(rtB.Addr(), 7), peer)
	if mtu, ok := rt.a.PathMTU(rtB.Addr()); !ok || mtu != 1000 {
		t.Fatalf("a's path MTU to b: %d %v", mtu, ok)
	}
	if st := rt.r.Stats(); st.IPv4.ForwardTooBig == 0 {
		t.Fatalf("router: %v", st.Lines())
	}
}

// TestForwardRedirect: REDIRECT at prerouting takes a connection a
// opens through the router to b's port 80 into the router's own
// listener on 3128 (a transparent proxy); a still sees b's address.
func TestForwardRedirect(t *testing.T) {
	rt := newRouted(t, routedOpts{filter: "-t nat -A PREROUTING -i nic1 -p tcp --dport 80 -j REDIRECT --to-ports 3128\n"})
	peer := acceptEcho(t, rt.r, netip.AddrPortFrom(netip.IPv4Unspecified(), 3128))
	c := dial(t, rt.a, netip.AddrPortFrom(rtB.Addr(), 80))
	defer c.Close()
	if got := c.RemoteAddr().String(); got != "10.2.0.2:80" {
		t.Fatalf("a's connection is to %s", got)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo from the router's proxy: %q %v", buf, err)
	}
	if got := <-peer; !strings.HasPrefix(got, "10.1.0.2:") {
		t.Fatalf("the router's listener saw %s", got)
	}
	if st := rt.r.Stats(); st.IPv4.Forwarded != 0 {
		t.Fatalf("a redirected flow was forwarded: %v", st.Lines())
	}
}
