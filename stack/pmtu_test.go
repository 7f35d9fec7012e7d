package stack

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
)

// routerAddr is the address of the narrow hop in front of stack A; it
// exists only inside the test's frames.
var routerAddr = netip.MustParseAddr("10.1.0.254")

// narrowHop wraps A's end of the pipe as a router with a smaller MTU on
// the way out would: an IPv4 datagram with DF set that is larger than mtu
// is dropped and answered with ICMP fragmentation needed (RFC 1191 §4),
// which reaches A through inject.
type narrowHop struct {
	link.Endpoint
	mtu int
	// code, when not 0, answers every TCP datagram with Destination
	// Unreachable of that code instead of passing it.
	code   uint8
	inject chan []byte
}

func (h *narrowHop) WriteFrame(f []byte) error {
	eth, err := link.ParseEthernet(f)
	if err == nil && eth.Type() == link.EtherTypeIPv4 {
		ip, err := ipv4.ParseHeader(eth.Payload())
		switch {
		case err != nil:
		case h.code != 0 && ip.Protocol() == ipv4.ProtocolTCP:
			h.inject <- unreachableFrame(eth.Source(), eth.Destination(), ip[:ip.HeaderLength()+8], h.code, 0)
			return nil
		case len(ip) > h.mtu && ip.DontFragment():
			h.inject <- fragNeededFrame(eth.Source(), eth.Destination(), ip[:ip.HeaderLength()+8], h.mtu)
			return nil
		}
	}
	return h.Endpoint.WriteFrame(f)
}

// fragNeededFrame is the Ethernet frame a router at routerAddr sends to
// the stack at mac about the datagram quoted.
func fragNeededFrame(mac, from link.MAC, quoted []byte, mtu int) []byte {
	return unreachableFrame(mac, from, quoted, ipv4.CodeFragmentationNeeded, uint32(mtu))
}

// unreachableFrame is a Destination Unreachable of code with the second
// word word from routerAddr.
func unreachableFrame(mac, from link.MAC, quoted []byte, code uint8, word uint32) []byte {
	icmp := make([]byte, ipv4.ICMPHeaderLen+len(quoted))
	n := ipv4.PutErrorWord(icmp, ipv4.TypeDestinationUnreachable, code, word, quoted)
	f := make([]byte, link.EthernetHeaderLen+ipv4.HeaderLen+n)
	link.PutEthernetHeader(f, mac, from, link.EtherTypeIPv4)
	ip := f[link.EthernetHeaderLen:]
	ipv4.PutHeader(ip, &ipv4.Fields{TotalLength: uint16(len(ip)), TTL: 64, Protocol: ipv4.ProtocolICMP, Source: routerAddr, Destination: addrA.Addr()})
	copy(ip[ipv4.HeaderLen:], icmp[:n])
	return f
}

// quotedTCP is the start of a TCP datagram from A to B: the IPv4 header
// and the first 8 octets of the TCP header.
func quotedTCP(t tcp.Tuple, seq uint32, total int) []byte {
	b := make([]byte, ipv4.HeaderLen+8)
	ipv4.PutHeader(b, &ipv4.Fields{TotalLength: uint16(total), TTL: 64, Protocol: ipv4.ProtocolTCP, DontFragment: true,
		Source: t.Local.Addr(), Destination: t.Remote.Addr()})
	binary.BigEndian.PutUint16(b[20:], t.Local.Port())
	binary.BigEndian.PutUint16(b[22:], t.Remote.Port())
	binary.BigEndian.PutUint32(b[24:], seq)
	return b
}

// narrowPair is pair with a narrow hop of mtu in front of A: A's segments
// to B larger than mtu draw a frag-needed.
func narrowPair(t *testing.T, mtu int, code uint8) (a, b *Stack) {
	t.Helper()
	ea, eb := link.NewPipe(link.PipeOptions{})
	hop := &narrowHop{Endpoint: ea, mtu: mtu, code: code, inject: make(chan []byte, 256)}
	a, b = New(Options{}), New(Options{})
	done := make(chan struct{})
	t.Cleanup(func() {
		a.Close()
		b.Close()
		close(hop.inject)
		<-done
	})
	if _, err := a.AddNIC(hop, addrA); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddNIC(eb, addrB); err != nil {
		t.Fatal(err)
	}
	n := a.nicByID(1)
	go func() { // the router's messages arrive as frames from the link
		defer close(done)
		for f := range hop.inject {
			n.deliver(f)
		}
	}()
	return a, b
}

// A frag-needed through the whole stack: the narrow hop's messages lower
// the live connection's MSS, the transfer completes intact, and the
// stack remembers the path MTU for the next connection (RFC 1191 §5).
func TestFragNeededThroughStack(t *testing.T) {
	leakcheck.Check(t)
	a, b := narrowPair(t, 1280, 0)
	transfer(t, a, b, 256<<10)
	st := a.Stats()
	if st.TCP.PMTUDecreases == 0 {
		t.Fatalf("no path MTU decrease counted: %v", st.Lines())
	}
	if mtu, ok := a.PathMTU(addrB.Addr()); !ok || mtu != 1280 {
		t.Fatalf("remembered path MTU %d %v, want 1280", mtu, ok)
	}
	// A new connection starts at the remembered MTU: its first data
	// segment fits, so no further message comes.
	before := st.TCP.PMTUDecreases
	c, s := connectedPair(t, a, b)
	if in := c.Info(); in.PathMTU != 1280 || int(in.MSS) != 1280-40-12 {
		t.Fatalf("new connection: path MTU %d MSS %d, want 1280 %d", in.PathMTU, in.MSS, 1280-40-12)
	}
	if in := s.Info(); in.PathMTU != 1500 {
		t.Fatalf("the other direction's path MTU %d, want 1500", in.PathMTU)
	}
	if got := a.Stats().TCP.PMTUDecreases; got != before {
		t.Fatalf("PMTUDecreases %d -> %d on a connection that starts at the remembered MTU", before, got)
	}
}

// Forged and malformed ICMP errors change nothing and are counted: a
// quoted sequence number out of the window, an MTU below 68 or not lower,
// a 4-tuple with no connection, a truncated or foreign quote.
func TestForgedICMPIgnoredThroughStack(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	c, _ := connectedPair(t, a, b)
	tu := tcp.Tuple{Local: netip.MustParseAddrPort(c.LocalAddr().String()), Remote: netip.MustParseAddrPort(c.RemoteAddr().String())}
	n := a.nicByID(1)
	macA, macB := n.mac, b.nicByID(1).mac
	before := a.Stats()
	deliver := func(quoted []byte, mtu int) { n.deliver(fragNeededFrame(macA, macB, quoted, mtu)) }
	// Nothing is in flight: every sequence number is out of the window.
	deliver(quotedTCP(tu, 12345, 1500), 1200)
	deliver(quotedTCP(tu, 0x80000000, 1500), 1200)
	other := tu
	other.Remote = netip.AddrPortFrom(tu.Remote.Addr(), tu.Remote.Port()+1)
	deliver(quotedTCP(other, 1, 1500), 1200)   // no connection
	deliver(quotedTCP(tu, 1, 1500)[:24], 1200) // 4 octets of TCP header
	deliver(quotedTCP(tu, 1, 1500)[:12], 1200) // a cut IPv4 header
	foreign := tcp.Tuple{Local: netip.MustParseAddrPort("10.9.9.9:1"), Remote: tu.Remote}
	deliver(quotedTCP(foreign, 1, 1500), 1200) // not from us
	st := a.Stats()
	if in := c.Info(); in.PathMTU != 1500 || in.MSS != 1448 {
		t.Fatalf("path MTU %d MSS %d after forged messages", in.PathMTU, in.MSS)
	}
	if _, ok := a.PathMTU(addrB.Addr()); ok {
		t.Fatal("a forged message entered the path MTU cache")
	}
	if got := st.TCP.ICMPIgnored - before.TCP.ICMPIgnored; got != 2 {
		t.Errorf("TCP.ICMPIgnored +%d, want 2 (out of window)", got)
	}
	if got := st.ICMP.ErrorsNoConnection - before.ICMP.ErrorsNoConnection; got != 1 {
		t.Errorf("ICMP.ErrorsNoConnection +%d, want 1", got)
	}
	if got := st.ICMP.DropBadQuote - before.ICMP.DropBadQuote; got != 3 {
		t.Errorf("ICMP.DropBadQuote +%d, want 3", got)
	}
	if got := st.ICMP.ErrorsIn - before.ICMP.ErrorsIn; got != 6 {
		t.Errorf("ICMP.ErrorsIn +%d, want 6", got)
	}
}

// A port unreachable answering a SYN is a hard error: the dial fails at
// once with ECONNREFUSED (RFC 1122 §4.2.3.9, as Linux).
func TestPortUnreachableRefusesDial(t *testing.T) {
	leakcheck.Check(t)
	a, _ := narrowPair(t, 1500, ipv4.CodePortUnreachable)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := a.DialTCP(ctx, netip.AddrPortFrom(addrB.Addr(), 7))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial: %v, want ECONNREFUSED", err)
	}
	if got := a.Stats().TCP.ICMPAborts; got != 1 {
		t.Fatalf("TCP.ICMPAborts %d, want 1", got)
	}
}

// The errors of ICMP messages reach the user as the errnos Linux reports.
func TestICMPErrorsMapToErrnos(t *testing.T) {
	for _, tc := range []struct {
		err   error
		errno syscall.Errno
	}{
		{tcp.ErrNetUnreachable, syscall.ENETUNREACH},
		{tcp.ErrHostUnreachable, syscall.EHOSTUNREACH},
		{tcp.ErrProtocolUnreachable, syscall.ENOPROTOOPT},
		{tcp.ErrSourceRouteFailed, syscall.EOPNOTSUPP},
		{tcp.ErrProtocolError, syscall.EPROTO},
	} {
		if got := mapError("read", tc.err); !errors.Is(got, tc.errno) {
			t.Errorf("%v maps to %v, want %v", tc.err, got, tc.errno)
		}
	}
}

// A lowered path MTU reaches every connection to the destination (RFC 1191
// §6.2), not only the one whose segment drew the message.
func TestPathMTUNotifiesOtherConnections(t *testing.T) {
	leakcheck.Check(t)
	a, b := narrowPair(t, 1280, 0)
	c1, s1 := connectedPair(t, a, b)
	c2, _ := connectedPair(t, a, b)
	if c2.Info().PathMTU != 1500 {
		t.Fatal("path MTU lowered before any message")
	}
	msg := make([]byte, 8000)
	go c1.Write(msg)
	if _, err := io.ReadFull(s1, make([]byte, len(msg))); err != nil {
		t.Fatal(err)
	}
	// The data can reach s1 (the first connection resends as soon as it
	// has the message) a moment before the stack has told the others:
	// wait for that event, with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	in := c2.Info()
	for in.PathMTU != 1280 && time.Now().Before(deadline) {
		runtime.Gosched()
		in = c2.Info()
	}
	if in.PathMTU != 1280 || int(in.MSS) != 1280-40-12 {
		t.Fatalf("idle connection: path MTU %d MSS %d, want 1280 %d", in.PathMTU, in.MSS, 1280-40-12)
	}
}
