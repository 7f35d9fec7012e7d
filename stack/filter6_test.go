package stack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/filter"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
)

// rules6 is statefulRules for IPv6, as an ip6tables user writes it:
// default deny, replies let in, ICMPv6 (neighbour discovery with it)
// accepted, the /64 on port 80, port 81 refused with a reset, port 82
// with ICMPv6 administratively prohibited, UDP 5353 open, UDP 54 with
// REJECT's default (port unreachable, given as ICMPv6's).
const rules6 = `*filter
:INPUT DROP [0:0]
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p ipv6-icmp -j ACCEPT
-A INPUT -p tcp -s fd00::/64 -m tcp --dport 80 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 81 -j REJECT --reject-with tcp-reset
-A INPUT -p tcp -m tcp --dport 82 -j REJECT --reject-with icmp6-adm-prohibited
-A INPUT -p udp -m udp --dport 5353 -j ACCEPT
-A INPUT -p udp -m udp --dport 54 -j REJECT
COMMIT
`

// TestFilterIPv6: the IPv6 packets of a stack behind SetFilter pass its
// hooks as ip6tables' do: neighbour discovery through the ipv6-icmp rule
// (the peer resolves the stack), port 80 from the /64 accepted, 81
// refused with a reset, 82 with an ICMPv6 error, the rest dropped, a
// fragmented UDP datagram judged whole, a UDP REJECT answered with
// ICMPv6 port unreachable; the stack's own connection out comes back
// ESTABLISHED.
func TestFilterIPv6(t *testing.T) {
	a, b := pair6(t, fastNDP, nil)
	f := loadFilter(t, rules6)
	b.SetFilter(f)
	echoPorts(t, b, addr6B.Addr(), 80, 81, 82, 83)
	// a has never resolved b: the first SYN waits on a Neighbor
	// Solicitation that b's INPUT must let in.
	c := dial(t, a, netip.AddrPortFrom(addr6B.Addr(), 80))
	if err := exchange(c, 256<<10, 1); err != nil {
		t.Fatalf("port 80 over IPv6: %v", err)
	}
	c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := a.DialTCP(ctx, netip.AddrPortFrom(addr6B.Addr(), 81)); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("port 81: %v, want connection refused (REJECT tcp-reset)", err)
	}
	errsOut := b.Stats().ICMPv6.ErrorsOut
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if c, err := a.DialTCP(ctx2, netip.AddrPortFrom(addr6B.Addr(), 82)); err == nil {
		c.Close()
		t.Fatal("port 82 behind REJECT connected")
	}
	waitFor(t, "the ICMPv6 error for port 82", func() bool { return b.Stats().ICMPv6.ErrorsOut > errsOut })
	ctx3, cancel3 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel3()
	if c, err := a.DialTCP(ctx3, netip.AddrPortFrom(addr6B.Addr(), 83)); !errors.Is(err, context.DeadlineExceeded) {
		if c != nil {
			c.Close() // or the echo server's cleanup waits for it
		}
		t.Fatalf("port 83: %v, want a timeout (dropped silently)", err)
	}

	// A UDP datagram of 3000 bytes goes in fragments: the filter sees it
	// reassembled, with its ports.
	srv := listenUDP(t, b, netip.AddrPortFrom(netip.IPv6Unspecified(), 5353))
	cl := listenUDP(t, a, netip.AddrPort{})
	big := bytes.Repeat([]byte("fragmented"), 300)
	if _, err := cl.WriteToUDPAddrPort(big, netip.AddrPortFrom(addr6B.Addr(), 5353)); err != nil {
		t.Fatal(err)
	}
	srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4000)
	if n, _, err := srv.ReadFromUDPAddrPort(buf); err != nil || !bytes.Equal(buf[:n], big) {
		t.Fatalf("fragmented datagram through the filter: %d bytes, %v", n, err)
	}
	if b.Stats().IPv6.Reassembled == 0 {
		t.Error("the datagram was not fragmented: the test proves nothing")
	}
	// UDP 54: REJECT's default, ICMPv6 port unreachable, which a
	// connected socket reports as ECONNREFUSED.
	u, err := a.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(addr6B.Addr(), 54))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.Write([]byte("x"))
	u.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := u.Read(buf); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("UDP behind REJECT: %v, want ECONNREFUSED (ICMPv6 port unreachable)", err)
	}
	st := b.Stats().Filter
	if st.Rejected != 3 || st.Dropped < 1 {
		t.Errorf("filter stats %+v: want 3 rejected (81, 82, UDP 54) and the SYNs to 83 dropped", st)
	}
	list := f.List(filter.TableFilter)
	t.Logf("\n%s", list)

	// The stack's own connection out over IPv6: its replies are
	// ESTABLISHED.
	la, err := a.ListenTCP(netip.AddrPortFrom(addr6A.Addr(), 9000))
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(la)
	t.Cleanup(func() { la.Close(); wait() })
	out := dial(t, b, netip.AddrPortFrom(addr6A.Addr(), 9000))
	if err := exchange(out, 64<<10, 2); err != nil {
		t.Fatalf("outbound over IPv6 behind stateful rules: %v", err)
	}
	out.Close()
	var ct strings.Builder
	f.Conntrack().List(&ct, time.Now())
	if !strings.Contains(ct.String(), "dst=fd00::1 sport=") {
		t.Errorf("conntrack has no IPv6 entry:\n%s", ct.String())
	}
}

// TestFilterIPv6NDPNeedsICMPv6: without an ICMPv6 rule, a default-DROP
// INPUT drops the Neighbor Solicitations too, so the peer never
// resolves the stack's address (as with ip6tables); the output hook sees
// the stack's own NDP, and an OUTPUT rule dropping them leaves the stack
// unable to answer.
func TestFilterIPv6NDPNeedsICMPv6(t *testing.T) {
	for _, tc := range []struct{ name, rules string }{
		{"input", "*filter\n:INPUT DROP [0:0]\n-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n-A INPUT -p tcp --dport 80 -j ACCEPT\nCOMMIT\n"},
		{"output", "*filter\n-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j DROP\nCOMMIT\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := pair6(t, fastNDP, nil)
			b.SetFilter(loadFilter(t, tc.rules))
			l, err := b.ListenTCP(netip.AddrPortFrom(addr6B.Addr(), 80))
			if err != nil {
				t.Fatal(err)
			}
			wait := echoServer(l)
			t.Cleanup(func() { l.Close(); wait() })
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			if c, err := a.DialTCP(ctx, netip.AddrPortFrom(addr6B.Addr(), 80)); err == nil {
				c.Close()
				t.Fatal("connected: neighbour discovery went through a filter that should have stopped it")
			}
			if st := b.Stats().Filter; st.Dropped == 0 {
				t.Errorf("filter stats %+v: no NDP message dropped", st)
			}
			if b.Stats().NDP.AdvertisementsOut != 0 && tc.name == "input" {
				t.Errorf("b advertised: the solicitation reached NDP")
			}
			// The same pair with the filter gone: resolution works.
			b.SetFilter(nil)
			dial(t, a, netip.AddrPortFrom(addr6B.Addr(), 80)).Close()
		})
	}
}

// TestFilterIPv6ExtensionHeaders: -p tcp matches the upper-layer
// protocol behind a Destination Options header (RFC 8200 §4.6), as
// ip6tables walks the chain: a SYN to port 80 behind one is answered, to
// port 83 dropped by the policy.
func TestFilterIPv6ExtensionHeaders(t *testing.T) {
	s, peer, frames := rawPeer6(t)
	s.SetFilter(loadFilter(t, "*filter\n:INPUT DROP [0:0]\n-A INPUT -p ipv6-icmp -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\nCOMMIT\n"))
	for _, port := range []uint16{80, 83} {
		l, err := s.ListenTCP(netip.AddrPortFrom(addr6A.Addr(), port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	}
	macA, macB := s.nicByID(1).mac, peer.HardwareAddr()
	src, dst := addr6B.Addr(), addr6A.Addr()
	// Learn the peer first, so that the answer needs no resolution.
	b := make([]byte, 200)
	snm := ipv6.SolicitedNodeMulticast(dst)
	n := ipv6.PutNeighborSolicitation(b, src, snm, dst, macB[:])
	peer.WriteFrame(eth6(ipv6.MulticastMAC(snm), macB, ipv6.Fields{NextHeader: ipv6.NextHeaderICMPv6, HopLimit: 255, Source: src, Destination: snm}, b[:n]))
	waitFor(t, "the peer learnt", func() bool { return hasNeighbor(s, src) })

	syn := func(port uint16) []byte {
		seg := make([]byte, tcp.HeaderLen+4)
		h := tcp.Header{SrcPort: 40000, DstPort: port, Seq: 1000, Flags: tcp.FlagSYN, Window: 65535, Options: &tcp.Options{MSS: 1440, WindowScale: -1}}
		h.Encode(seg)
		tcp.SetChecksum(seg, src, dst)
		// RFC 8200 §4.6: Next Header TCP, length 0 (8 bytes), PadN.
		opts := append([]byte{ipv6.NextHeaderTCP, 0, 1, 4, 0, 0, 0, 0}, seg...)
		return eth6(macA, macB, ipv6.Fields{NextHeader: ipv6.NextHeaderDestOptions, HopLimit: 64, Source: src, Destination: dst}, opts)
	}
	synAck := func(port uint16, within time.Duration) bool {
		deadline := time.After(within)
		for {
			select {
			case fr := <-frames:
				eth, err := link.ParseEthernet(fr)
				if err != nil || eth.Type() != link.EtherTypeIPv6 {
					continue
				}
				h, err := ipv6.ParseHeader(eth.Payload())
				if err != nil || h.NextHeader() != ipv6.NextHeaderTCP {
					continue
				}
				seg, err := tcp.ParseSegment(h.Payload(), h.Source(), h.Destination())
				if err == nil && seg.SourcePort() == port && seg.Flags().Has(tcp.FlagSYN|tcp.FlagACK) {
					return true
				}
			case <-deadline:
				return false
			}
		}
	}
	dropped := s.Stats().Filter.Dropped
	peer.WriteFrame(syn(83))
	waitFor(t, "the SYN to 83 dropped", func() bool { return s.Stats().Filter.Dropped == dropped+1 })
	if synAck(83, 100*time.Millisecond) {
		t.Fatal("port 83 answered behind a default-DROP INPUT")
	}
	peer.WriteFrame(syn(80))
	if !synAck(80, 10*time.Second) {
		t.Fatal("no SYN-ACK from port 80: -p tcp did not see TCP behind the destination options")
	}
}

// TestFilterAllocsPerDatagram: with a filter on both stacks (conntrack
// on, the matching rule after others), a UDP echo of an established flow
// allocates nothing, as without one, over IPv4 and over IPv6: the
// filter's copy of the packet comes from a pool, not the heap.
func TestFilterAllocsPerDatagram(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	const rules = `*filter
:INPUT DROP [0:0]
:OUTPUT DROP [0:0]
-A INPUT -p tcp --dport 22 -j ACCEPT
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p ipv6-icmp -j ACCEPT
-A INPUT -p udp -m udp --dport 9 -j ACCEPT
-A OUTPUT -p ipv6-icmp -j ACCEPT
-A OUTPUT -p udp -j ACCEPT
COMMIT
`
	a, b := pair6(t, fastNDP, nil)
	for _, dst := range []netip.Addr{addrB.Addr(), addr6B.Addr()} {
		srv := listenUDP(t, b, netip.AddrPortFrom(dst, 9))
		cl := dialUDP(t, a, netip.AddrPort{}, netip.AddrPortFrom(dst, 9))
		out := udpPattern(200)
		buf := make([]byte, 2000)
		rt := func() {
			cl.Write(out)
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := srv.WriteToUDPAddrPort(buf[:n], from); err != nil {
				t.Fatal(err)
			}
			if _, err := cl.Read(buf); err != nil {
				t.Fatal(err)
			}
		}
		a.SetFilter(nil)
		b.SetFilter(nil)
		rt() // resolves the neighbour, grows the queues
		base := testing.AllocsPerRun(1000, rt)
		a.SetFilter(loadFilter(t, rules))
		b.SetFilter(loadFilter(t, rules))
		rt() // makes the flow's conntrack entries
		if n := testing.AllocsPerRun(1000, rt); n != base {
			t.Errorf("to %v: %v allocations per filtered echo round trip, %v without a filter", dst, n, base)
		}
		if base != 0 {
			t.Errorf("to %v: %v allocations per round trip without a filter, want 0", dst, base)
		}
		t.Logf("to %v: %v allocations per round trip, with a filter or without", dst, base)
		if st := b.Stats().Filter; st.Dropped != 0 {
			t.Errorf("filter stats %+v: the exchange was not all accepted", st)
		}
	}
}

// TestFilterConntrackFlood: a flood of new flows from spoofed sources
// (a prefix routed nowhere) at a stack behind a stateful filter with a
// small conntrack table: the table stays at its bound, the flows pushed
// out are counted as early drops, and an established connection, whose
// entry is assured, keeps its entry and goes on working.
func TestFilterConntrackFlood(t *testing.T) {
	const max = 64
	a, b := pair(t, Options{}, nil)
	f := filter.New(filter.Config{Conntrack: filter.ConntrackConfig{Max: max}})
	if err := f.Load(strings.NewReader(statefulRules)); err != nil {
		t.Fatal(err)
	}
	b.SetFilter(f)
	l, err := b.ListenTCP(netip.AddrPortFrom(addrB.Addr(), 80))
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(l)
	t.Cleanup(func() { l.Close(); wait() })
	c := dial(t, a, netip.AddrPortFrom(addrB.Addr(), 80))
	defer c.Close()
	roundTrip := func(what string) {
		t.Helper()
		msg := bytes.Repeat([]byte(what), 1000)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("%s: echoed %v", what, err)
		}
	}
	roundTrip("before ")
	est := func() bool {
		var sb strings.Builder
		f.Conntrack().List(&sb, time.Now())
		return strings.Contains(sb.String(), "sport="+portOf(c.LocalAddr().String())+" dport=80") && strings.Contains(sb.String(), "[ASSURED]")
	}
	if !est() {
		t.Fatal("the established connection has no assured entry")
	}

	// The flood: SYNs to port 80 from spoofed's addresses, let in by a
	// rule of their own so that each makes an entry (a NEW flow the
	// filter drops is forgotten at once, and would prove nothing).
	if err := f.Exec("-I INPUT 2 -p tcp -s " + spoofed.String() + " -m tcp --dport 80 -j ACCEPT"); err != nil {
		t.Fatal(err)
	}
	n := b.nicByID(1)
	const flows = 2000
	for i := range flows {
		src := spoofedAddr(i)
		seg := make([]byte, tcp.HeaderLen)
		h := tcp.Header{SrcPort: uint16(1024 + i%60000), DstPort: 80, Seq: tcp.Value(uint32(i) * 7919), Flags: tcp.FlagSYN, Window: 65535}
		h.Encode(seg)
		tcp.SetChecksum(seg, src, addrB.Addr())
		n.deliver(ipFrame(n.mac, link.MAC{0x02, 0, 0, 0, 0, 0x77}, ipv4.Fields{Protocol: ipv4.ProtocolTCP, Source: src, Destination: addrB.Addr(), ID: uint16(i)}, seg))
	}
	ct := f.Conntrack()
	if got := ct.Len(); got > max {
		t.Errorf("conntrack holds %d entries, bound %d", got, max)
	}
	st := ct.Stats()
	if st.EarlyDrop < flows-max {
		t.Errorf("conntrack stats %+v: want at least %d early drops", st, flows-max)
	}
	if !est() {
		t.Error("the flood evicted the established connection's entry")
	}
	roundTrip("after the flood ")
	t.Logf("after %d spoofed flows: %d entries, %+v", flows, ct.Len(), st)
}
