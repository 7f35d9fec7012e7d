package stack

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
)

var (
	addrA = netip.MustParsePrefix("10.1.0.1/24")
	addrB = netip.MustParsePrefix("10.1.0.2/24")
)

// pair returns two stacks joined by a link.Pipe (each end optionally
// wrapped), closed when the test ends.
func pair(t *testing.T, opts Options, wrap func(link.Endpoint) link.Endpoint) (a, b *Stack) {
	t.Helper()
	ea, eb := link.NewPipe(link.PipeOptions{})
	var epa, epb link.Endpoint = ea, eb
	if wrap != nil {
		epa, epb = wrap(epa), wrap(epb)
	}
	a, b = New(opts), New(opts)
	t.Cleanup(func() { a.Close(); b.Close() })
	if _, err := a.AddNIC(epa, addrA); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddNIC(epb, addrB); err != nil {
		t.Fatal(err)
	}
	return a, b
}

func ping(t *testing.T, s *Stack, dst netip.Addr, size int) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rtt, err := s.Ping(ctx, dst, size)
	if err != nil {
		t.Fatalf("ping %v (%d bytes): %v", dst, size, err)
	}
	return rtt
}

func TestPingOverPipe(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	for i := 0; i < 20; i++ {
		ping(t, a, addrB.Addr(), 56)
		ping(t, b, addrA.Addr(), 56)
	}
	// A's last reply is counted after it left, so b may have seen it
	// first: wait for the counter.
	waitFor(t, "a's 20th echo reply counted", func() bool { return a.Stats().ICMP.EchoRepliesOut == 20 })
	sa := a.Stats()
	if sa.ICMP.EchoRepliesIn != 20 || sa.ICMP.EchoRepliesOut != 20 {
		t.Errorf("a's ICMP counters: %+v", sa.ICMP)
	}
	if sa.ARP.RequestsOut != 1 {
		t.Errorf("a sent %d ARP requests, want 1 (the cache should hold b)", sa.ARP.RequestsOut)
	}
	var found bool
	for _, n := range a.Neighbors() {
		if n.IP == addrB.Addr() {
			found = true
		}
	}
	if !found {
		t.Errorf("a's neighbours %v lack %v", a.Neighbors(), addrB.Addr())
	}
}

func TestPingFragmented(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	ping(t, a, addrB.Addr(), 4000)
	ping(t, a, addrB.Addr(), 65000)
	sb := b.Stats()
	if sb.IPv4.Reassembled != 2 || sb.IPv4.FragmentsOut == 0 {
		t.Errorf("b's IPv4 counters: %+v", sb.IPv4)
	}
}

func TestUnknownProtocolAnswersProtocolUnreachable(t *testing.T) {
	leakcheck.Check(t)
	ea, eb := link.NewPipe(link.PipeOptions{})
	s := New(Options{})
	defer s.Close()
	if _, err := s.AddNIC(ea, addrA); err != nil {
		t.Fatal(err)
	}
	// The peer end is driven by hand: frame a UDP-less datagram (protocol
	// 253, reserved for experiments by RFC 3692) to the stack.
	peerMAC := eb.HardwareAddr()
	frame := make([]byte, link.EthernetHeaderLen+ipv4.HeaderLen+8)
	link.PutEthernetHeader(frame, ea.HardwareAddr(), peerMAC, link.EtherTypeIPv4)
	ipv4.PutHeader(frame[link.EthernetHeaderLen:], &ipv4.Fields{
		TotalLength: ipv4.HeaderLen + 8, ID: 1, TTL: 64, Protocol: 253,
		Source: addrB.Addr(), Destination: addrA.Addr(),
	})
	if err := eb.WriteFrame(frame); err != nil {
		t.Fatal(err)
	}
	// Expect an ARP request for the peer (the stack must resolve it to
	// answer), then, after we answer, the ICMP error.
	frames := reader(t, eb)
	for {
		eth := nextFrame(t, frames)
		if eth.Type() == link.EtherTypeARP {
			answerARP(t, eb, eth)
			continue
		}
		h, err := ipv4.ParseHeader(eth.Payload())
		if err != nil || h.Protocol() != ipv4.ProtocolICMP {
			continue
		}
		m, err := ipv4.ParseICMP(h.Payload())
		if err != nil {
			t.Fatal(err)
		}
		if m.Type() != ipv4.TypeDestinationUnreachable || m.Code() != ipv4.CodeProtocolUnreachable {
			t.Fatalf("ICMP type %d code %d, want 3/2", m.Type(), m.Code())
		}
		break
	}
	if st := s.Stats(); st.IPv4.DropUnknownProtocol != 1 || st.ICMP.ErrorsOut != 1 {
		t.Errorf("stats: %+v %+v", st.IPv4, st.ICMP)
	}
}
