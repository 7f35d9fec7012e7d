package stack

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/link"
)

// Second subnets of the two-address tests, beside addrA and addrB's
// 10.1.0.0/24.
var (
	addrA2 = netip.MustParsePrefix("10.2.0.1/24")
	addrB2 = netip.MustParsePrefix("10.2.0.2/24")
)

// twoAddrPair is pair with a second address on each stack's NIC.
func twoAddrPair(t *testing.T) (a, b *Stack) {
	t.Helper()
	a, b = pair(t, Options{}, nil)
	if err := a.AddAddress(1, addrA2); err != nil {
		t.Fatal(err)
	}
	if err := b.AddAddress(1, addrB2); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestTwoAddressesOnOneNIC: a NIC with two addresses answers pings, TCP
// and UDP on both, and each reply leaves from the address the request
// went to (source selection, RFC 1122 §3.3.4.3).
func TestTwoAddressesOnOneNIC(t *testing.T) {
	leakcheck.Check(t)
	a, b := twoAddrPair(t)
	if got := b.Addresses(1); !slices.Equal(got, []netip.Prefix{addrB, addrB2}) {
		t.Fatalf("Addresses = %v", got)
	}
	for _, dst := range []netip.Prefix{addrB, addrB2} {
		ping(t, a, dst.Addr(), 56)
	}

	l, err := b.ListenTCP(netip.AddrPortFrom(netip.IPv4Unspecified(), 7))
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(l)
	defer func() { l.Close(); wait() }()
	u := listenUDP(t, b, netip.AddrPortFrom(netip.IPv4Unspecified(), 9))
	uwait := udpEcho(u)
	defer func() { u.Close(); uwait() }()
	client := listenUDP(t, a, netip.AddrPort{})

	var conns []*TCPConn
	for i, tc := range []struct{ src, dst netip.Prefix }{{addrA, addrB}, {addrA2, addrB2}} {
		c := dial(t, a, netip.AddrPortFrom(tc.dst.Addr(), 7))
		if got := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); got != tc.src.Addr() {
			t.Errorf("TCP to %v left from %v, want %v", tc.dst.Addr(), got, tc.src.Addr())
		}
		(&echoedPair{c: c}).echo(t, i, []byte("hello "+tc.dst.String()))
		conns = append(conns, c) // open until b's table is checked below

		msg := []byte("datagram to " + tc.dst.String())
		if _, err := client.WriteToUDPAddrPort(msg, netip.AddrPortFrom(tc.dst.Addr(), 9)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		n, from := readWithin(t, client, buf)
		if string(buf[:n]) != string(msg) || from != netip.AddrPortFrom(tc.dst.Addr(), 9) {
			t.Errorf("UDP reply %q from %v, want %q from %v:9", buf[:n], from, msg, tc.dst.Addr())
		}
	}
	var locals []netip.Addr
	for _, ci := range b.Connections() {
		locals = append(locals, ci.Tuple.Local.Addr())
	}
	if !slices.Contains(locals, addrB.Addr()) || !slices.Contains(locals, addrB2.Addr()) {
		t.Errorf("b's connections are on %v, want both of its addresses", locals)
	}
	for _, c := range conns {
		c.Close()
	}
	waitFor(t, "b's connection on its second address to end", func() bool {
		return !slices.ContainsFunc(b.Connections(), func(ci TCPInfo) bool { return ci.Tuple.Local.Addr() == addrB2.Addr() })
	})

	// Removing the address stops it: a ping to it is not for b any more.
	if err := b.RemoveAddress(1, addrB2); err != nil {
		t.Fatal(err)
	}
	if got := b.Addresses(1); !slices.Equal(got, []netip.Prefix{addrB}) {
		t.Fatalf("Addresses after RemoveAddress = %v", got)
	}
	before := b.Stats().IPv4.DropNotForUs
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := a.Ping(ctx, addrB2.Addr(), 8); done <- err }()
	waitFor(t, "b to drop the ping to its removed address", func() bool { return b.Stats().IPv4.DropNotForUs > before })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("ping of the removed address: %v, want no reply", err)
	}
	ping(t, a, addrB.Addr(), 56) // the other address still answers
}

// TestARPForEveryAddress: ARP requests for each of a NIC's addresses are
// answered, with that address as the sender; once an address is removed
// its requests are not.
func TestARPForEveryAddress(t *testing.T) {
	leakcheck.Check(t)
	ea, eb := link.NewPipe(link.PipeOptions{})
	s := New(Options{})
	defer s.Close()
	frames := reader(t, eb)
	if _, err := s.AddNIC(ea, addrB); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAddress(1, addrB2); err != nil {
		t.Fatal(err)
	}
	request := func(from, target netip.Addr) {
		t.Helper()
		f := make([]byte, link.EthernetHeaderLen+arp.PacketLen)
		link.PutEthernetHeader(f, link.Broadcast, eb.HardwareAddr(), link.EtherTypeARP)
		arp.PutPacket(f[link.EthernetHeaderLen:], arp.OpRequest, eb.HardwareAddr(), from, link.MAC{}, target)
		if err := eb.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	// nextReply skips the gratuitous ARPs and returns the next reply's
	// sender address.
	nextReply := func() netip.Addr {
		t.Helper()
		for {
			eth := nextFrame(t, frames)
			p, err := arp.ParsePacket(eth.Payload())
			if err != nil {
				t.Fatalf("frame of type %#x: %v", eth.Type(), err)
			}
			if p.Op() == arp.OpReply {
				if p.SenderHardwareAddr() != ea.HardwareAddr() {
					t.Errorf("reply gives MAC %v, want %v", p.SenderHardwareAddr(), ea.HardwareAddr())
				}
				return p.SenderProtocolAddr()
			}
		}
	}
	for _, tc := range []struct{ from, target netip.Addr }{{addrA.Addr(), addrB.Addr()}, {addrA2.Addr(), addrB2.Addr()}} {
		request(tc.from, tc.target)
		if got := nextReply(); got != tc.target {
			t.Errorf("reply for %v names %v", tc.target, got)
		}
	}
	if err := s.RemoveAddress(1, addrB2); err != nil {
		t.Fatal(err)
	}
	// The NIC's reader handles frames in order: the reply to the second
	// request comes first only if the first was not answered.
	request(addrA2.Addr(), addrB2.Addr())
	request(addrA.Addr(), addrB.Addr())
	if got := nextReply(); got != addrB.Addr() {
		t.Errorf("after RemoveAddress the first reply names %v, want %v", got, addrB.Addr())
	}
}

// TestAddAddressErrors: AddAddress checks an address as AddNIC does, and
// RemoveAddress refuses one the NIC lacks.
func TestAddAddressErrors(t *testing.T) {
	a, _ := pair(t, Options{}, nil)
	for _, tc := range []struct {
		name string
		id   NICID
		p    string
		want error
	}{
		{"duplicate", 1, "10.1.0.1/24", ErrInvalidAddress},
		{"overlap", 1, "10.1.0.9/16", ErrInvalidAddress},
		{"default", 1, "0.0.0.0/0", ErrInvalidAddress},
		{"broadcast", 1, "10.3.0.255/24", ErrInvalidAddress},
		{"IPv6 multicast", 1, "ff02::1/64", ErrInvalidAddress},
		{"IPv6 link-local", 1, "fe80::1/64", ErrInvalidAddress},
		{"unknown NIC", 2, "10.3.0.1/24", ErrUnknownNIC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := a.AddAddress(tc.id, netip.MustParsePrefix(tc.p)); !errors.Is(err, tc.want) {
				t.Errorf("AddAddress(%d, %s) = %v, want %v", tc.id, tc.p, err, tc.want)
			}
		})
	}
	if err := a.RemoveAddress(1, addrA2); !errors.Is(err, ErrInvalidAddress) {
		t.Errorf("RemoveAddress of an address the NIC lacks: %v", err)
	}
	if err := a.RemoveAddress(3, addrA); !errors.Is(err, ErrUnknownNIC) {
		t.Errorf("RemoveAddress on an unknown NIC: %v", err)
	}
	if got := a.Addresses(1); !slices.Equal(got, []netip.Prefix{addrA}) {
		t.Errorf("Addresses = %v after refused changes", got)
	}
	var zero Stack
	if err := zero.AddAddress(1, addrA2); !errors.Is(err, ErrNotInitialized) {
		t.Errorf("zero Stack: %v", err)
	}
}
