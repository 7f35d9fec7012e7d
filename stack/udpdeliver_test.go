package stack

import (
	"net/netip"
	"testing"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/udp"
)

// udpFrame builds an Ethernet frame to dstMAC carrying a UDP datagram of
// payload from src to dst with a correct checksum; mangle, if not nil,
// then edits the UDP bytes (header and payload).
func udpFrame(dstMAC, srcMAC link.MAC, src, dst netip.AddrPort, payload []byte, mangle func(d []byte)) []byte {
	d := make([]byte, udp.HeaderLen+len(payload))
	copy(d[udp.HeaderLen:], payload)
	udp.PutHeader(d, src.Port(), dst.Port(), len(payload))
	udp.SetChecksum(d, src.Addr(), dst.Addr())
	if mangle != nil {
		mangle(d)
	}
	return ipFrame(dstMAC, srcMAC, ipv4.Fields{TTL: 64, Protocol: ipv4.ProtocolUDP, Source: src.Addr(), Destination: dst.Addr()}, d)
}

// udpDeliverStack is a stack on a capture endpoint, whose frames a test
// hands to the NIC's deliver as its reader would, with a socket on
// addrA:9.
func udpDeliverStack(t *testing.T) (*Stack, *nic, *captureEndpoint, *UDPConn) {
	t.Helper()
	ep := newCaptureEndpoint()
	s := New(Options{})
	t.Cleanup(func() { s.Close() })
	if _, err := s.AddNIC(ep, addrA); err != nil {
		t.Fatal(err)
	}
	ep.take() // the gratuitous ARP
	return s, s.nicByID(1), ep, listenUDP(t, s, netip.AddrPortFrom(addrA.Addr(), 9))
}

// TestUDPDeliverDrops feeds the deliver path datagrams that must be
// dropped, each counted under its reason, and a zero checksum, which
// IPv4 accepts (RFC 768).
func TestUDPDeliverDrops(t *testing.T) {
	leakcheck.Check(t)
	s, n, ep, c := udpDeliverStack(t)
	from := netip.AddrPortFrom(addrB.Addr(), 5000)
	to := netip.AddrPortFrom(addrA.Addr(), 9)
	for _, tc := range []struct {
		name   string
		src    netip.AddrPort
		mangle func(d []byte)
		want   func(UDPStats) uint64
	}{
		{"bad checksum", from, func(d []byte) { d[len(d)-1] ^= 1 }, func(u UDPStats) uint64 { return u.DropBadChecksum }},
		{"length below 8", from, func(d []byte) { d[4], d[5] = 0, 7 }, func(u UDPStats) uint64 { return u.DropBadLength }},
		{"length beyond the datagram", from, func(d []byte) { d[4], d[5] = 0, 200 }, func(u UDPStats) uint64 { return u.DropBadLength }},
		{"truncated header", from, func(d []byte) {}, func(u UDPStats) uint64 { return u.DropBadLength }},
		{"broadcast source", netip.AddrPortFrom(netip.MustParseAddr("10.1.0.255"), 5000), nil, func(u UDPStats) uint64 { return u.DropBadSource }},
		{"multicast source", netip.AddrPortFrom(netip.MustParseAddr("224.0.0.1"), 5000), nil, func(u UDPStats) uint64 { return u.DropBadSource }},
	} {
		f := udpFrame(n.mac, demuxMAC, tc.src, to, []byte("payload"), tc.mangle)
		if tc.name == "truncated header" {
			// An IP datagram carrying 5 bytes of UDP.
			f = ipFrame(n.mac, demuxMAC, ipv4.Fields{TTL: 64, Protocol: ipv4.ProtocolUDP, Source: from.Addr(), Destination: to.Addr()}, []byte{1, 2, 3, 4, 5})
		}
		before := tc.want(s.Stats().UDP)
		n.deliver(f)
		if got := tc.want(s.Stats().UDP) - before; got != 1 {
			t.Errorf("%s: counted %d, want 1", tc.name, got)
		}
	}
	if st := s.Stats().UDP; st.DatagramsIn != 0 || st.NoPort != 0 {
		t.Fatalf("a dropped datagram was delivered: %+v", st)
	}
	n.deliver(udpFrame(n.mac, demuxMAC, from, to, []byte("no sum"), func(d []byte) { d[6], d[7] = 0, 0 }))
	// deliver queued it: the read does not wait.
	buf := make([]byte, 20)
	if k, got, err := c.ReadFromUDPAddrPort(buf); err != nil || got != from || string(buf[:k]) != "no sum" {
		t.Fatalf("zero checksum: %q from %v, %v", buf[:k], got, err)
	}
	if frames := ep.take(); len(frames) != 0 {
		t.Errorf("the stack answered %d of the dropped datagrams", len(frames))
	}
}

// TestUDPDeliverNoPort: a unicast datagram to a port without a socket
// draws a port unreachable quoting it; a broadcast one draws nothing.
func TestUDPDeliverNoPort(t *testing.T) {
	leakcheck.Check(t)
	s, n, ep, _ := udpDeliverStack(t)
	from := netip.AddrPortFrom(addrB.Addr(), 5000)
	n.deliver(udpFrame(link.Broadcast, demuxMAC, from, netip.MustParseAddrPort("10.1.0.255:10"), []byte("b"), nil))
	n.deliver(udpFrame(n.mac, demuxMAC, from, netip.MustParseAddrPort("255.255.255.255:10"), []byte("b"), nil))
	n.deliver(udpFrame(link.Broadcast, demuxMAC, from, netip.AddrPortFrom(addrA.Addr(), 10), []byte("b"), nil))
	if frames := ep.take(); len(frames) != 0 {
		t.Fatalf("%d frames answered broadcasts", len(frames))
	}
	if st := s.Stats().UDP; st.IgnoredBroadcast != 2 || st.NoPort != 1 {
		t.Fatalf("ignored %d, no port %d; want 2 and 1", st.IgnoredBroadcast, st.NoPort)
	}
	// An ARP request from the peer teaches the cache its MAC (RFC 826),
	// so that the reply leaves at once.
	n.deliver(arpFrame(link.Broadcast, arp.OpRequest, demuxMAC, addrB.Addr(), link.MAC{}, addrA.Addr()))
	ep.take()
	n.deliver(udpFrame(n.mac, demuxMAC, from, netip.AddrPortFrom(addrA.Addr(), 10), []byte("anyone?"), nil))
	var got ipv4.ICMP
	for _, f := range ep.take() {
		eth, _ := link.ParseEthernet(f)
		if h, err := ipv4.ParseHeader(eth.Payload()); err == nil && h.Protocol() == ipv4.ProtocolICMP {
			got, _ = ipv4.ParseICMP(h.Payload())
		}
	}
	if got == nil || got.Type() != ipv4.TypeDestinationUnreachable || got.Code() != ipv4.CodePortUnreachable {
		t.Fatalf("no port unreachable sent (%x)", got)
	}
	q, err := ipv4.ParseQuote(got.Payload())
	if err != nil || q.Protocol() != ipv4.ProtocolUDP || len(q.Payload()) != 8 || q.Payload()[3] != 10 {
		t.Fatalf("quote % x: %v", got.Payload(), err)
	}
}

// TestUDPDeliverAllocs: receiving into a socket's queue, once it has
// grown, and reading the datagram out allocate nothing.
func TestUDPDeliverAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	_, n, _, c := udpDeliverStack(t)
	f := udpFrame(n.mac, demuxMAC, netip.AddrPortFrom(addrB.Addr(), 5000), netip.AddrPortFrom(addrA.Addr(), 9), make([]byte, 1000), nil)
	buf := make([]byte, 2000)
	// Grow the queue and make the read deadline's channel first.
	n.deliver(f)
	c.ReadFromUDPAddrPort(buf)
	if a := testing.AllocsPerRun(1000, func() { n.deliver(f); c.ReadFromUDPAddrPort(buf) }); a != 0 {
		t.Fatalf("%.1f allocations per datagram delivered and read, want 0", a)
	}
}
