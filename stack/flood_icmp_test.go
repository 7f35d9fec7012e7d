package stack

import (
	"testing"
	"time"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
)

// TestEchoFloodRateLimited floods a stack on a manual clock with echo
// requests from spoofed sources: it answers the bucket's burst, counts the
// rest as rate-limited, and after the bucket refills answers a genuine
// neighbour again.
func TestEchoFloodRateLimited(t *testing.T) {
	leakcheck.Check(t)
	clock := NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ea, eb := link.NewPipe(link.PipeOptions{})
	s := New(Options{Clock: clock})
	defer s.Close()
	if _, err := s.AddNIC(ea, addrA); err != nil {
		t.Fatal(err)
	}
	frames := reader(t, eb)
	n := s.nicByID(1)
	macA, macB := ea.HardwareAddr(), eb.HardwareAddr()
	// The genuine neighbour introduces itself, so replies to it need no
	// resolution.
	n.deliver(arpFrame(macA, arp.OpRequest, macB, addrB.Addr(), link.MAC{}, addrA.Addr()))

	const flood = 20000
	data := make([]byte, 56)
	for i := 0; i < flood; i++ {
		n.deliver(ipFrame(macA, macB, ipv4.Fields{Protocol: ipv4.ProtocolICMP, Source: spoofedAddr(i), Destination: addrA.Addr()},
			echoRequest(uint16(i), 1, data)))
	}
	st := s.Stats()
	const burst = 50
	if st.ICMP.EchoRequestsIn != flood || st.ICMP.EchoRepliesRateLimited != flood-burst {
		t.Fatalf("after %d requests at one instant: EchoRequestsIn %d, EchoRepliesRateLimited %d, want %d limited",
			flood, st.ICMP.EchoRequestsIn, st.ICMP.EchoRepliesRateLimited, flood-burst)
	}
	// The burst's replies had nowhere to go: the spoofed prefix is routed
	// nowhere.
	if st.IPv4.DropNoRoute != burst || st.ICMP.EchoRepliesOut != 0 {
		t.Fatalf("DropNoRoute %d, EchoRepliesOut %d; want %d and 0", st.IPv4.DropNoRoute, st.ICMP.EchoRepliesOut, burst)
	}

	// 10 ms at 1000/s is 10 tokens: of 100 requests from the neighbour,
	// 10 are answered.
	clock.Advance(10 * time.Millisecond)
	for i := 0; i < 100; i++ {
		n.deliver(ipFrame(macA, macB, ipv4.Fields{Protocol: ipv4.ProtocolICMP, Source: addrB.Addr(), Destination: addrA.Addr()},
			echoRequest(7, uint16(i), data)))
	}
	st = s.Stats()
	if st.ICMP.EchoRepliesOut != 10 || st.ICMP.EchoRepliesRateLimited != flood-burst+90 {
		t.Fatalf("after 10 ms: EchoRepliesOut %d, EchoRepliesRateLimited %d; want 10 and %d",
			st.ICMP.EchoRepliesOut, st.ICMP.EchoRepliesRateLimited, flood-burst+90)
	}
	// The replies are on the wire (after the gratuitous ARP and the ARP
	// reply to the neighbour's request).
	replies := 0
	for replies < 10 {
		eth := nextFrame(t, frames)
		if eth.Type() != link.EtherTypeIPv4 {
			continue
		}
		h, err := ipv4.ParseHeader(eth.Payload())
		if err != nil {
			t.Fatal(err)
		}
		m, err := ipv4.ParseICMP(h.Payload())
		if err != nil || m.Type() != ipv4.TypeEchoReply || h.Destination() != addrB.Addr() {
			t.Fatalf("frame %d: want an echo reply to %v, got %v to %v (%v)", replies, addrB.Addr(), m, h.Destination(), err)
		}
		replies++
	}

	// A second later the bucket holds its burst again, not 1000 tokens.
	clock.Advance(time.Second)
	for i := 0; i < 2*burst; i++ {
		n.deliver(ipFrame(macA, macB, ipv4.Fields{Protocol: ipv4.ProtocolICMP, Source: addrB.Addr(), Destination: addrA.Addr()},
			echoRequest(8, uint16(i), data)))
	}
	if got := s.Stats().ICMP.EchoRepliesOut; got != 10+burst {
		t.Fatalf("after a second: EchoRepliesOut %d, want %d (the burst)", got, 10+burst)
	}
}

// TestEchoRateUnlimited checks that a negative ICMPEchoRate turns the
// limit off.
func TestEchoRateUnlimited(t *testing.T) {
	leakcheck.Check(t)
	clock := NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ea, eb := link.NewPipe(link.PipeOptions{})
	s := New(Options{Clock: clock, ICMPEchoRate: -1})
	defer s.Close()
	if _, err := s.AddNIC(ea, addrA); err != nil {
		t.Fatal(err)
	}
	reader(t, eb)
	n := s.nicByID(1)
	for i := 0; i < 1000; i++ {
		n.deliver(ipFrame(ea.HardwareAddr(), eb.HardwareAddr(), ipv4.Fields{Protocol: ipv4.ProtocolICMP, Source: spoofedAddr(i), Destination: addrA.Addr()},
			echoRequest(1, uint16(i), nil)))
	}
	if st := s.Stats(); st.ICMP.EchoRepliesRateLimited != 0 || st.IPv4.DropNoRoute != 1000 {
		t.Fatalf("unlimited: EchoRepliesRateLimited %d, DropNoRoute %d; want 0 and 1000", st.ICMP.EchoRepliesRateLimited, st.IPv4.DropNoRoute)
	}
}
