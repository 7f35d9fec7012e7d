package stack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/fault"
	"github.com/ustack/ustack/neigh"
)

var (
	addr6A = netip.MustParsePrefix("fd00::1/64")
	addr6B = netip.MustParsePrefix("fd00::2/64")
)

// fastNDP is the Options of the IPv6 tests: DAD and solicitations 50 ms
// apart, so that an address is assigned within a test's patience.
var fastNDP = Options{NDP: neigh.Config{RetransTimer: 50 * time.Millisecond}}

// pair6 is pair with the IPv6 addresses addr6A and addr6B besides the
// IPv4 ones, and waits until DAD assigned them and the link-local ones.
func pair6(t *testing.T, opts Options, wrap func(link.Endpoint) link.Endpoint) (a, b *Stack) {
	t.Helper()
	a, b = pair(t, opts, wrap)
	if err := a.AddAddress(1, addr6A); err != nil {
		t.Fatal(err)
	}
	if err := b.AddAddress(1, addr6B); err != nil {
		t.Fatal(err)
	}
	waitAssigned(t, a, addr6A.Addr())
	waitAssigned(t, b, addr6B.Addr())
	return a, b
}

// waitAssigned waits until s has a (DAD passed) and its NIC 1 its
// link-local address.
func waitAssigned(t *testing.T, s *Stack, a netip.Addr) {
	t.Helper()
	waitFor(t, "DAD to assign "+a.String(), func() bool {
		return s.isLocalAddr(a) && s.LinkLocalAddress(1).IsValid()
	})
}

func TestIPv6LinkLocalFromMAC(t *testing.T) {
	leakcheck.Check(t)
	a, _ := pair(t, fastNDP, nil)
	waitFor(t, "the link-local address", func() bool { return a.LinkLocalAddress(1).IsValid() })
	mac := a.nicByID(1).mac
	if got, want := a.LinkLocalAddress(1), ipv6.LinkLocalFromMAC(mac); got != want {
		t.Errorf("link-local %v, want %v (modified EUI-64 of %v)", got, want, mac)
	}
	if st := a.Stats().NDP; st.DADStarted != 1 || st.DADSucceeded != 1 || st.MLDReportsOut == 0 {
		t.Errorf("NDP counters %+v: want one DAD started and passed, MLD reports sent", st)
	}
}

func TestIPv6AddressChecks(t *testing.T) {
	a, _ := pair(t, fastNDP, nil)
	for _, p := range []string{"::/64", "::1/128", "ff02::1/64", "::ffff:10.0.0.1/96", "fe80::1/64", "fd00::1/0"} {
		if err := a.AddAddress(1, netip.MustParsePrefix(p)); !errors.Is(err, ErrInvalidAddress) {
			t.Errorf("AddAddress(%s) = %v, want ErrInvalidAddress", p, err)
		}
	}
	small, _ := link.NewPipe(link.PipeOptions{MTU: 1000})
	if _, err := a.AddNIC(small, addr6B); !errors.Is(err, ErrInvalidPrefix) {
		t.Errorf("AddNIC with MTU 1000 and an IPv6 address = %v, want ErrInvalidPrefix", err)
	}
	small.Close()
}

func TestIPv6PingOverPipe(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair6(t, fastNDP, nil)
	for range 5 {
		ping(t, a, addr6B.Addr(), 56)
		ping(t, b, addr6A.Addr(), 56)
	}
	ping(t, a, b.LinkLocalAddress(1), 56)
	ping(t, a, b.LinkLocalAddress(1).WithZone("1"), 56)
	waitFor(t, "a's echo replies counted", func() bool { return a.Stats().ICMPv6.EchoRepliesOut == 5 })
	sa := a.Stats()
	if sa.ICMPv6.EchoRepliesIn != 7 || sa.ICMPv6.EchoRequestsOut != 7 {
		t.Errorf("a's ICMPv6 counters: %+v", sa.ICMPv6)
	}
	if sa.NDP.SolicitationsIn == 0 && sa.NDP.AdvertisementsIn == 0 {
		t.Errorf("a's NDP counters show no resolution: %+v", sa.NDP)
	}
	var found bool
	for _, n := range a.Neighbors() {
		if n.IP == addr6B.Addr() && n.MAC == b.nicByID(1).mac {
			found = true
		}
	}
	if !found {
		t.Errorf("a's neighbours %v lack %v", a.Neighbors(), addr6B.Addr())
	}
	// IPv4 on the same NIC is unaffected.
	ping(t, a, addrB.Addr(), 56)
	if _, err := a.Ping(context.Background(), netip.MustParseAddr("fe80::1%9"), 8); !errors.Is(err, ErrUnknownNIC) {
		t.Errorf("ping with an unknown zone: %v, want ErrUnknownNIC", err)
	}
}

func TestIPv6PingFragmented(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair6(t, fastNDP, nil)
	ping(t, a, addr6B.Addr(), 4000)
	ping(t, a, addr6B.Addr(), 65000)
	sb, sa := b.Stats(), a.Stats()
	if sb.IPv6.Reassembled != 2 || sa.IPv6.FragmentsOut == 0 || sa.IPv6.Reassembled != 2 {
		t.Errorf("IPv6 counters: a %+v, b %+v", sa.IPv6, sb.IPv6)
	}
}

// transfer6 sends n bytes from a to an echo-less sink on b over IPv6 and
// checks their SHA-256.
func transfer6(t *testing.T, a, b *Stack, n int) {
	t.Helper()
	l, err := b.ListenTCP(netip.AddrPortFrom(netip.IPv6Unspecified(), 5001))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		m, err := io.Copy(h, c)
		res <- result{sum: [32]byte(h.Sum(nil)), n: m, err: err}
	}()
	c := dial(t, a, netip.AddrPortFrom(addr6B.Addr(), 5001))
	if got := c.LocalAddr().String(); got != "[fd00::1]:"+portOf(c.LocalAddr().String()) {
		t.Errorf("local address %s, want fd00::1", got)
	}
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i>>10)
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.Close()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.n != int64(n) || r.sum != sha256.Sum256(data) {
		t.Fatalf("received %d bytes, SHA-256 %x; want %d, %x", r.n, r.sum, n, sha256.Sum256(data))
	}
}

func portOf(hostport string) string {
	i := bytes.LastIndexByte([]byte(hostport), ':')
	return hostport[i+1:]
}

func TestIPv6TCPTransfer(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair6(t, fastNDP, nil)
	transfer6(t, a, b, 4<<20)
	if a.Stats().IPv6.PacketsOut < 100 {
		t.Errorf("a sent %d IPv6 packets", a.Stats().IPv6.PacketsOut)
	}
}

func TestIPv6TCPTransferLossy(t *testing.T) {
	leakcheck.Check(t)
	seed := uint64(0)
	a, b := pair6(t, fastNDP, func(ep link.Endpoint) link.Endpoint {
		seed++
		return fault.New(ep, fault.Config{Seed: seed, Tx: fault.Impairment{Drop: 0.02, Reorder: 0.01}})
	})
	transfer6(t, a, b, 1<<20)
}

func TestIPv6TCPClosedPortRefused(t *testing.T) {
	leakcheck.Check(t)
	a, _ := pair6(t, fastNDP, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := a.DialTCP(ctx, netip.AddrPortFrom(addr6B.Addr(), 9))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial to a closed port: %v, want ECONNREFUSED", err)
	}
}

func TestIPv6UDP(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair6(t, fastNDP, nil)
	srv := listenUDP(t, b, netip.AddrPortFrom(netip.IPv6Unspecified(), 53))
	cl := listenUDP(t, a, netip.AddrPort{})
	msg := []byte("hello over IPv6")
	if _, err := cl.WriteToUDPAddrPort(msg, netip.AddrPortFrom(addr6B.Addr(), 53)); err != nil {
		t.Fatal(err)
	}
	srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	n, from, err := srv.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:n], msg) || from.Addr() != addr6A.Addr() {
		t.Fatalf("got %q from %v", buf[:n], from)
	}
	// A socket on 0.0.0.0 takes IPv4 only: an IPv6 datagram to its port
	// finds no socket.
	v4only := listenUDP(t, b, netip.MustParseAddrPort("0.0.0.0:55"))
	before := b.Stats().UDP.NoPort
	if _, err := cl.WriteToUDPAddrPort(msg, netip.AddrPortFrom(addr6B.Addr(), 55)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the IPv6 datagram to a 0.0.0.0 socket refused", func() bool { return b.Stats().UDP.NoPort == before+1 })
	v4only.Close()
	// A datagram to a closed port is answered with ICMPv6 port
	// unreachable, which a connected socket reports as ECONNREFUSED.
	c, err := a.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(addr6B.Addr(), 54))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(msg)
	waitFor(t, "the port unreachable", func() bool { return b.Stats().ICMPv6.ErrorsOut == 2 })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(buf); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("read after port unreachable: %v, want ECONNREFUSED", err)
	}
}

func TestIPv6DADFailure(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair6(t, fastNDP, nil)
	// b asks for an address a has: a answers its DAD probe, and b does
	// not take the address.
	dup := netip.MustParsePrefix("fd01::1/64")
	if err := a.AddAddress(1, dup); err != nil {
		t.Fatal(err)
	}
	waitAssigned(t, a, dup.Addr())
	if err := b.AddAddress(1, dup); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "DAD to fail", func() bool { return b.Stats().NDP.DADFailed == 1 })
	if b.isLocalAddr(dup.Addr()) || b.nicByID(1).tentative(dup.Addr()) {
		t.Errorf("b has the duplicate %v", dup)
	}
	if !a.isLocalAddr(dup.Addr()) {
		t.Errorf("a lost %v", dup)
	}
}

// rawPeer6 is a stack with addr6A on one end of a Pipe, the test holding
// the other end as a raw peer with addr6B.
func rawPeer6(t *testing.T) (s *Stack, peer *link.PipeEnd, frames <-chan []byte) {
	t.Helper()
	ea, eb := link.NewPipe(link.PipeOptions{})
	s = New(Options{DADTransmits: -1})
	t.Cleanup(func() { s.Close() })
	if _, err := s.AddNIC(ea, addr6A); err != nil {
		t.Fatal(err)
	}
	return s, eb, readerAll(t, eb)
}

func hasNeighbor(s *Stack, a netip.Addr) bool {
	for _, n := range s.Neighbors() {
		if n.IP == a {
			return true
		}
	}
	return false
}

// TestNDPSpoofing: an unsolicited advertisement creates no entry (RFC
// 4861 §7.2.5), and NDP messages with a hop limit other than 255 (sent
// from off the link, §7.1.1) are dropped, counted, without effect.
func TestNDPSpoofing(t *testing.T) {
	leakcheck.Check(t)
	s, peer, _ := rawPeer6(t)
	macB := peer.HardwareAddr()
	src, dst := addr6B.Addr(), addr6A.Addr()
	b := make([]byte, 200)

	n := ipv6.PutNeighborAdvertisement(b, src, ipv6.AllNodes, src, ipv6.FlagOverride, macB[:])
	if err := peer.WriteFrame(eth6(ipv6.MulticastMAC(ipv6.AllNodes), macB, ipv6.Fields{NextHeader: ipv6.NextHeaderICMPv6, HopLimit: 255, Source: src, Destination: ipv6.AllNodes}, b[:n])); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unsolicited NA counted", func() bool { return s.Stats().NDP.DropUnsolicited == 1 })
	if hasNeighbor(s, src) {
		t.Errorf("an unsolicited NA created an entry: %v", s.Neighbors())
	}

	// An NS with hop limit 64 carrying the peer's MAC: dropped, and no
	// entry learned from it.
	snm := ipv6.SolicitedNodeMulticast(dst)
	n = ipv6.PutNeighborSolicitation(b, src, snm, dst, macB[:])
	if err := peer.WriteFrame(eth6(ipv6.MulticastMAC(snm), macB, ipv6.Fields{NextHeader: ipv6.NextHeaderICMPv6, HopLimit: 64, Source: src, Destination: snm}, b[:n])); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the NS with hop limit 64 dropped", func() bool { return s.Stats().NDP.DropInvalid == 1 })
	if hasNeighbor(s, src) || s.Stats().NDP.AdvertisementsOut != 0 {
		t.Errorf("an off-link NS was acted on: %v, %+v", s.Neighbors(), s.Stats().NDP)
	}
	// The same NS with hop limit 255 is answered and learned from.
	if err := peer.WriteFrame(eth6(ipv6.MulticastMAC(snm), macB, ipv6.Fields{NextHeader: ipv6.NextHeaderICMPv6, HopLimit: 255, Source: src, Destination: snm}, b[:n])); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the NA", func() bool { return s.Stats().NDP.AdvertisementsOut == 1 })
	if !hasNeighbor(s, src) {
		t.Errorf("a valid NS left no entry: %v", s.Neighbors())
	}
	// A frame to a multicast group the NIC has not joined is not taken.
	before := s.Stats().Link.DropNotForUs
	other := netip.MustParseAddr("ff02::1:ff12:3456")
	n = ipv6.PutEcho(b, ipv6.TypeEchoRequest, src, other, 1, 1, nil)
	peer.WriteFrame(eth6(ipv6.MulticastMAC(other), macB, ipv6.Fields{NextHeader: ipv6.NextHeaderICMPv6, HopLimit: 64, Source: src, Destination: other}, b[:n]))
	waitFor(t, "the frame to another group dropped", func() bool { return s.Stats().Link.DropNotForUs == before+1 })
}

// TestIPv6BadInputCounted: truncated, bad-version and bad-extension
// packets are counted drops; an unknown next header is answered with a
// Parameter Problem pointing at it (RFC 8200 §4, RFC 4443 §3.4).
func TestIPv6BadInputCounted(t *testing.T) {
	leakcheck.Check(t)
	s, peer, frames := rawPeer6(t)
	macA, macB := s.nicByID(1).mac, peer.HardwareAddr()
	src, dst := addr6B.Addr(), addr6A.Addr()
	// Learn the peer first, so that the answer needs no resolution.
	b := make([]byte, 200)
	snm := ipv6.SolicitedNodeMulticast(dst)
	n := ipv6.PutNeighborSolicitation(b, src, snm, dst, macB[:])
	peer.WriteFrame(eth6(ipv6.MulticastMAC(snm), macB, ipv6.Fields{NextHeader: ipv6.NextHeaderICMPv6, HopLimit: 255, Source: src, Destination: snm}, b[:n]))

	good := eth6(macA, macB, ipv6.Fields{NextHeader: 253, HopLimit: 64, Source: src, Destination: dst}, []byte("12345678"))
	peer.WriteFrame(good[:link.EthernetHeaderLen+20]) // truncated
	bad := append([]byte(nil), good...)
	bad[link.EthernetHeaderLen] = 0x40 // version 4 in an IPv6 frame
	peer.WriteFrame(bad)
	hbh := eth6(macA, macB, ipv6.Fields{NextHeader: ipv6.NextHeaderDestOptions, HopLimit: 64, Source: src, Destination: dst}, []byte{253, 5, 1, 2}) // runs past the packet
	peer.WriteFrame(hbh)
	peer.WriteFrame(good)
	waitFor(t, "the drops counted", func() bool {
		st := s.Stats().IPv6
		return st.DropTruncated == 1 && st.DropBadHeader == 1 && st.DropBadExtension == 1 && st.DropUnknownProtocol == 1
	})
	deadline := time.After(10 * time.Second)
	for {
		select {
		case f := <-frames:
			eth, err := link.ParseEthernet(f)
			if err != nil || eth.Type() != link.EtherTypeIPv6 {
				continue
			}
			h, err := ipv6.ParseHeader(eth.Payload())
			if err != nil || h.NextHeader() != ipv6.NextHeaderICMPv6 || h.Destination() != src {
				continue
			}
			m, err := ipv6.ParseICMP(h.Payload(), h.Source(), h.Destination())
			if err != nil || m.Type() != ipv6.TypeParameterProblem {
				continue
			}
			if m.Code() != ipv6.CodeUnrecognizedNextHeader || m.Pointer() != 6 {
				t.Fatalf("parameter problem code %d pointer %d, want 1 and 6", m.Code(), m.Pointer())
			}
			return
		case <-deadline:
			t.Fatal("no parameter problem")
		}
	}
}

// ptbRouter stands for a router with a 1280-byte next hop in front of
// the stack it wraps the endpoint of: an IPv6 packet longer than that is
// not sent on but answered with an ICMPv6 Packet Too Big (RFC 4443 §3.2)
// from the destination's address, delivered to the stack.
type ptbRouter struct {
	link.Endpoint
	s    *Stack
	sent atomic.Int32
}

func (r *ptbRouter) WriteFrame(f []byte) error {
	const mtu = ipv6.MinMTU
	if len(f) <= link.EthernetHeaderLen+mtu || f[12] != 0x86 || f[13] != 0xdd {
		return r.Endpoint.WriteFrame(f)
	}
	h, err := ipv6.ParseHeader(f[link.EthernetHeaderLen:])
	if err != nil {
		return nil
	}
	b := make([]byte, ipv6.MaxErrorLen)
	n := ipv6.PutError(b, ipv6.TypePacketTooBig, 0, mtu, h.Destination(), h.Source(), h)
	reply := eth6(link.MAC(f[6:12]), link.MAC(f[0:6]), ipv6.Fields{NextHeader: ipv6.NextHeaderICMPv6, HopLimit: 64, Source: h.Destination(), Destination: h.Source()}, b[:n])
	r.sent.Add(1)
	go r.s.nicByID(1).deliver(reply) // as if read: not under the writer's locks
	return nil
}

// TestIPv6PacketTooBigLowersPathMTU: a Packet Too Big about a TCP segment
// lowers the connection's path MTU to 1280 (RFC 8201 §4), its segments to
// 1280 - 60 bytes of headers, and the transfer completes.
func TestIPv6PacketTooBigLowersPathMTU(t *testing.T) {
	leakcheck.Check(t)
	var r *ptbRouter
	first := true
	a, b := pair6(t, fastNDP, func(ep link.Endpoint) link.Endpoint {
		if first {
			first = false
			r = &ptbRouter{Endpoint: ep}
			return r
		}
		return ep
	})
	r.s = a
	transfer6(t, a, b, 1<<20)
	if r.sent.Load() == 0 {
		t.Fatal("no packet was too big")
	}
	if mtu, ok := a.PathMTU(addr6B.Addr()); !ok || mtu != ipv6.MinMTU {
		t.Errorf("path MTU %d, %v; want %d", mtu, ok, ipv6.MinMTU)
	}
	if a.Stats().ICMPv6.ErrorsIn == 0 {
		t.Errorf("ICMPv6 counters %+v", a.Stats().ICMPv6)
	}
}
