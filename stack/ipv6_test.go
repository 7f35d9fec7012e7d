package stack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/netip"
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
	// A datagram to a closed port is answered with ICMPv6 port
	// unreachable, which a connected socket reports as ECONNREFUSED.
	c, err := a.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(addr6B.Addr(), 54))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(msg)
	waitFor(t, "the port unreachable", func() bool { return b.Stats().ICMPv6.ErrorsOut == 1 })
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
