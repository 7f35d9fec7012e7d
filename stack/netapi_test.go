package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"

	"github.com/ustack/ustack/internal/leakcheck"
)

// describeErr renders an error with the types along its chain and the
// fields of a *net.OpError, so that two errors compare equal only if
// they would look the same to every check a caller of package net can
// make.
func describeErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%q", err.Error())
	for e := err; e != nil; e = errors.Unwrap(e) {
		name := fmt.Sprintf("%T", e)
		if i := strings.LastIndexByte(name, '.'); i >= 0 && !unicode.IsUpper(rune(name[i+1])) {
			// A caller cannot name an unexported type (package net's
			// timeoutError, say): only what it can ask of it counts.
			var ne net.Error
			isNE := errors.As(e, &ne)
			name = fmt.Sprintf("unexported{net.Error:%v Timeout:%v DeadlineExceeded:%v Canceled:%v}",
				isNE, isNE && ne.Timeout(), errors.Is(e, context.DeadlineExceeded), errors.Is(e, context.Canceled))
		}
		b.WriteString(" " + name)
		switch e := e.(type) {
		case *net.OpError:
			fmt.Fprintf(&b, "{Op:%s Net:%s Source:%v Addr:%v}", e.Op, e.Net, e.Source, e.Addr)
		case *net.DNSError:
			fmt.Fprintf(&b, "{NotFound:%v Timeout:%v}", e.IsNotFound, e.IsTimeout)
		case syscall.Errno:
			fmt.Fprintf(&b, "(%d)", e)
		}
	}
	return b.String()
}

// TestNetAPIErrorsAsNet: for a bad network or address, DialContext,
// Listen and ListenPacket return what package net returns for the same
// input, down to the types along the error chain. Every input here is
// refused before package net would send a packet (or binds an address
// no host has).
func TestNetAPIErrorsAsNet(t *testing.T) {
	leakcheck.Check(t)
	a, _ := pair(t, Options{}, nil)
	cases := []struct{ call, network, address string }{
		{"dial", "foo", "10.1.0.2:80"},
		{"dial", "tcp", ""},
		{"dial", "udp", ""},
		{"dial", "tcp", "10.1.0.2"},
		{"dial", "tcp", "[10.1.0.2:80"},
		{"dial", "tcp", "10.1.0.2:80:90"},
		{"dial", "tcp", "10.1.0.2:99999"},
		{"dial", "tcp", "10.1.0.2:-1"},
		{"dial", "udp", "10.1.0.2:nosuchservice"},
		{"dial", "tcp6", "10.1.0.2:80"},
		{"dial", "udp6", "10.1.0.2:53"},
		{"dial", "tcp6", "[::ffff:10.1.0.2]:80"},
		{"listen", "foo", ":0"},
		{"listen", "udp", ":0"},
		{"listen", "tcp", "10.1.0.1"},
		{"listen", "tcp", ":99999"},
		{"listen", "tcp4", ":nosuchservice"},
		{"listen", "tcp", "192.0.2.1:0"},
		{"listen", "tcp4", "192.0.2.1:80"},
		{"listen", "tcp4", "[::1]:0"},
		{"listenpacket", "foo", ":0"},
		{"listenpacket", "tcp", ":0"},
		{"listenpacket", "udp", ":99999"},
		{"listenpacket", "udp", "192.0.2.1:0"},
		{"listenpacket", "udp4", "[2001:db8::1]:0"},
	}
	for _, c := range cases {
		var theirs, ours error
		switch c.call {
		case "dial":
			_, theirs = (&net.Dialer{}).DialContext(context.Background(), c.network, c.address)
			_, ours = a.DialContext(context.Background(), c.network, c.address)
		case "listen":
			var l net.Listener
			if l, theirs = net.Listen(c.network, c.address); l != nil {
				l.Close()
			}
			_, ours = a.Listen(c.network, c.address)
		case "listenpacket":
			var pc net.PacketConn
			if pc, theirs = net.ListenPacket(c.network, c.address); pc != nil {
				pc.Close()
			}
			_, ours = a.ListenPacket(c.network, c.address)
		}
		if theirs == nil {
			t.Fatalf("%s(%q, %q): package net succeeded; the case is wrong", c.call, c.network, c.address)
		}
		want := describeErr(theirs)
		// The port's lookup error names the network as given by the
		// host's cgo resolver ("tcp4/x"), as Go's resolver, the stack's,
		// without the family ("tcp/x").
		want = strings.NewReplacer("tcp4/", "tcp/", "udp4/", "udp/").Replace(want)
		if got := describeErr(ours); got != want {
			t.Errorf("%s(%q, %q):\n got %s\nwant %s", c.call, c.network, c.address, got, want)
		}
	}
}

// TestNetAPIErrorsAsNetOnLoopback compares errors that need a peer: a
// refused connection, a port in use, and a dial whose context has ended
// already, against package net on the host's loopback. The addresses
// differ (127.0.0.1 there, the stack's here) and nothing else may.
func TestNetAPIErrorsAsNetOnLoopback(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hostPort := hl.Addr().(*net.TCPAddr).Port
	bl, err := b.Listen("tcp", fmt.Sprintf("10.1.0.2:%d", hostPort))
	if err != nil {
		t.Fatal(err)
	}
	defer bl.Close()
	same := func(what string, ours, theirs error, ourAddr string) {
		t.Helper()
		want := strings.ReplaceAll(describeErr(theirs), "127.0.0.1", ourAddr)
		if got := describeErr(ours); got != want {
			t.Errorf("%s:\n got %s\nwant %s", what, got, want)
		}
	}

	// The port in use, with its listener still open.
	_, theirs := net.Listen("tcp", hl.Addr().String())
	_, ours := b.Listen("tcp", bl.Addr().String())
	same("listen on a port in use", ours, theirs, "10.1.0.2")
	hc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer hc.Close()
	bc, err := b.ListenPacket("udp", fmt.Sprintf("10.1.0.2:%d", hc.LocalAddr().(*net.UDPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	_, theirs = net.ListenPacket("udp", hc.LocalAddr().String())
	_, ours = b.ListenPacket("udp", bc.LocalAddr().String())
	same("listen on a UDP port in use", ours, theirs, "10.1.0.2")

	// A context that has ended.
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	for _, ctx := range []context.Context{expired, canceled} {
		for _, network := range []string{"tcp", "udp4"} {
			_, theirs := (&net.Dialer{}).DialContext(ctx, network, hl.Addr().String())
			_, ours := a.DialContext(ctx, network, fmt.Sprintf("10.1.0.2:%d", hostPort))
			same(fmt.Sprintf("dial %s with %v", network, ctx.Err()), ours, theirs, "10.1.0.2")
			if !errors.Is(ours, ctx.Err()) {
				t.Errorf("dial with %v: errors.Is(%v, ctx.Err()) is false", ctx.Err(), ours)
			}
		}
	}

	// Refused: nothing listens any more.
	hl.Close()
	bl.Close()
	_, theirs = net.Dial("tcp", hl.Addr().String())
	_, ours = a.DialContext(context.Background(), "tcp", fmt.Sprintf("10.1.0.2:%d", hostPort))
	same("dial a closed port", ours, theirs, "10.1.0.2")
	if !errors.Is(ours, syscall.ECONNREFUSED) {
		t.Errorf("dial a closed port: %v is not ECONNREFUSED", ours)
	}
}

// TestDialContextTimeout: a context whose deadline passes during the
// handshake (the address does not answer ARP) ends the dial with
// package net's "i/o timeout", which is context.DeadlineExceeded and a
// net.Error with Timeout.
func TestDialContextTimeout(t *testing.T) {
	leakcheck.Check(t)
	a, _ := pair(t, Options{}, nil)
	for _, network := range []string{"tcp", "tcp4"} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		c, err := a.DialContext(ctx, network, "10.1.0.9:80")
		cancel()
		var ne net.Error
		var oe *net.OpError
		if c != nil || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, os.ErrDeadlineExceeded) ||
			!errors.As(err, &ne) || !ne.Timeout() || !errors.As(err, &oe) ||
			oe.Op != "dial" || oe.Net != network || oe.Addr.String() != "10.1.0.9:80" || err.Error() != "dial "+network+" 10.1.0.9:80: i/o timeout" {
			t.Errorf("DialContext(%s) past its deadline: %v, %s", network, c, describeErr(err))
		}
	}
}

// TestNetAPIIPv6: IPv6 networks and addresses fail as on a host whose
// IPv6 has no route to them or no such address, and the IPv6 wildcard
// binds.
func TestNetAPIIPv6(t *testing.T) {
	leakcheck.Check(t)
	a, _ := pair(t, Options{}, nil)
	for _, c := range []struct{ network, address, want string }{
		{"tcp", "[2001:db8::1]:80", "dial tcp [2001:db8::1]:80: connect: network is unreachable"},
		{"tcp6", "[2001:db8::1]:80", "dial tcp6 [2001:db8::1]:80: connect: network is unreachable"},
		{"tcp6", ":80", "dial tcp6 :80: connect: network is unreachable"},
	} {
		_, err := a.DialContext(context.Background(), c.network, c.address)
		var oe *net.OpError
		if !errors.As(err, &oe) || !errors.Is(err, syscall.ENETUNREACH) || err.Error() != c.want {
			t.Errorf("DialContext(%s, %s): %s, want %q", c.network, c.address, describeErr(err), c.want)
		}
	}
	for _, c := range []struct{ network, address, want string }{
		{"tcp", "[::1]:80", "listen tcp [::1]:80: bind: cannot assign requested address"},
		{"tcp6", "[fd00::9]:80", "listen tcp6 [fd00::9]:80: bind: cannot assign requested address"},
	} {
		if _, err := a.Listen(c.network, c.address); err == nil || err.Error() != c.want {
			t.Errorf("Listen(%s, %s): %v, want %q", c.network, c.address, err, c.want)
		}
		udp := strings.Replace(c.network, "tcp", "udp", 1)
		want := strings.Replace(c.want, "tcp", "udp", 1)
		if _, err := a.ListenPacket(udp, c.address); err == nil || err.Error() != want {
			t.Errorf("ListenPacket(%s, %s): %v, want %q", udp, c.address, err, want)
		}
	}
	for _, c := range []struct{ network, address string }{{"tcp6", ":0"}, {"tcp", "[::]:0"}} {
		l, err := a.Listen(c.network, c.address)
		if err != nil {
			t.Errorf("Listen(%s, %s): %v", c.network, c.address, err)
			continue
		}
		if ap := netip.MustParseAddrPort(l.Addr().String()); ap.Addr() != netip.IPv6Unspecified() || ap.Port() == 0 {
			t.Errorf("Listen(%s, %s) bound %v", c.network, c.address, l.Addr())
		}
		l.Close()
		udp := strings.Replace(c.network, "tcp", "udp", 1)
		p, err := a.ListenPacket(udp, c.address)
		if err != nil {
			t.Errorf("ListenPacket(%s, %s): %v", udp, c.address, err)
			continue
		}
		p.Close()
	}
}

// dnsPair is two stacks on a Pipe: a's Resolver asks b, which serves
// DNS (testDNS) on its port 53 with these names.
func dnsPair(t *testing.T, opts Options) (a, b *Stack, d *testDNS) {
	t.Helper()
	if opts.Nameservers == nil {
		opts.Nameservers = []netip.AddrPort{netip.AddrPortFrom(addrB.Addr(), 0)}
	}
	a, b = pair(t, opts, nil)
	d = &testDNS{
		names: map[string][]netip.Addr{
			"web.test.":  {addrB.Addr()},
			"self.test.": {addrA.Addr()},
			"two.test.":  {netip.MustParseAddr("10.1.0.9"), addrB.Addr()},
			"none.test.": {netip.MustParseAddr("10.1.0.9"), netip.MustParseAddr("10.1.0.8")},
			"big.test.":  bigRecordSet(),
		},
		truncate: map[string]bool{"big.test.": true},
	}
	serveDNS(t, b, addrB.Addr(), d)
	return a, b, d
}

// bigRecordSet is 100 A records, 1,600 bytes of answers: more than the
// 1,232 bytes Go's resolver accepts over UDP.
func bigRecordSet() []netip.Addr {
	var as []netip.Addr
	for i := range 100 {
		as = append(as, netip.AddrFrom4([4]byte{10, 2, byte(i / 256), byte(i)}))
	}
	return as
}

// TestHTTPByHostName: net/http with http.Transport{DialContext:
// a.DialContext} fetches http://web.test/ from a server on b, the name
// resolved by a's Resolver over the stack's UDP. The name was asked
// rooted, never with the host's search domains.
func TestHTTPByHostName(t *testing.T) {
	leakcheck.Check(t)
	a, b, d := dnsPair(t, Options{})
	l, err := b.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s to %s", r.Host, r.RemoteAddr)
	})}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	defer func() { srv.Close(); <-done }()
	tr := &http.Transport{DialContext: a.DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := client.Get("http://web.test/")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !strings.HasPrefix(string(body), "hello from web.test to 10.1.0.1:") {
		t.Fatalf("body %q, %v", body, err)
	}
	for _, n := range d.queriedNames() {
		if n != "web.test." {
			t.Errorf("the server was asked for %q", n)
		}
	}
	if d.udpQueries.Load() == 0 || d.tcpQueries.Load() != 0 {
		t.Errorf("%d queries over UDP, %d over TCP; want some and none", d.udpQueries.Load(), d.tcpQueries.Load())
	}
}

// TestDialContextByName: UDP by name, a listener on a name, each address
// of a name tried in turn within the context (the first one does not
// answer ARP; its share of a 4 s context is 2 s), and the first error
// when none answers.
func TestDialContextByName(t *testing.T) {
	leakcheck.Check(t)
	a, b, _ := dnsPair(t, Options{})
	echo, err := b.ListenPacket("udp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	wait := udpEcho(echo.(*UDPConn))
	defer func() { echo.Close(); wait() }()
	c, err := a.DialContext(context.Background(), "udp", "web.test:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("by name")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "by name" || c.RemoteAddr().String() != "10.1.0.2:7" {
		t.Fatalf("echo %q from %v: %v", buf[:n], c.RemoteAddr(), err)
	}

	l, err := a.Listen("tcp4", "self.test:0")
	if err != nil {
		t.Fatal(err)
	}
	if ap := l.Addr().(*net.TCPAddr).AddrPort(); ap.Addr() != addrA.Addr() || ap.Port() == 0 {
		t.Errorf("Listen(self.test:0).Addr() = %v", l.Addr())
	}
	l.Close()

	bl, err := b.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer bl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	tc, err := a.DialContext(ctx, "tcp", "two.test:http") // a service name, as for package net
	if err != nil {
		t.Fatalf("dial two.test: %v", err)
	}
	if tc.RemoteAddr().String() != "10.1.0.2:80" {
		t.Errorf("connected to %v", tc.RemoteAddr())
	}
	tc.Close()

	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = a.DialContext(ctx, "tcp", "none.test:80")
	// Less than 2 s: the first address takes all of it, and then, as
	// net's dialSerial, the error names the address that was next.
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Addr.String() != "10.1.0.8:80" || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("dial none.test: %s, want a timeout at the second address", describeErr(err))
	}
}

// TestResolverErrors: a name the server does not know is a *net.DNSError
// with IsNotFound inside the dial's *net.OpError (no Addr, as package
// net's), naming the host as given and the stack's nameserver; a name
// with no IPv4 address is net's "no suitable address"; without
// nameservers a lookup says so.
func TestResolverErrors(t *testing.T) {
	leakcheck.Check(t)
	a, _, _ := dnsPair(t, Options{})
	_, err := a.DialContext(context.Background(), "tcp", "nosuch.test:80")
	var oe *net.OpError
	var de *net.DNSError
	if !errors.As(err, &oe) || oe.Op != "dial" || oe.Net != "tcp" || oe.Addr != nil || oe.Source != nil ||
		!errors.As(err, &de) || !de.IsNotFound || de.Name != "nosuch.test" || de.Server != "10.1.0.2:53" ||
		err.Error() != "dial tcp: lookup nosuch.test on 10.1.0.2:53: no such host" {
		t.Errorf("dial nosuch.test: %s", describeErr(err))
	}
	if _, err := a.Resolver().LookupHost(context.Background(), "nosuch.test."); !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("LookupHost(nosuch.test.): %s", describeErr(err))
	}
	// web.test has no AAAA record: "ip6" finds nothing, as for package net.
	_, err = a.Listen("tcp6", "web.test:0")
	if !errors.As(err, &de) || !de.IsNotFound || err.Error() != "listen tcp6: lookup web.test on 10.1.0.2:53: no such host" {
		t.Errorf("Listen(tcp6, web.test:0): %s", describeErr(err))
	}

	none, _ := pair(t, Options{}, nil)
	_, err = none.DialContext(context.Background(), "tcp", "web.test:80")
	if !errors.As(err, &de) || de.Err != ErrNoNameservers.Error() || de.Server != "" ||
		err.Error() != "dial tcp: lookup web.test: "+ErrNoNameservers.Error() {
		t.Errorf("dial without nameservers: %s", describeErr(err))
	}
	if _, err := none.Resolver().LookupNetIP(context.Background(), "ip4", "web.test."); !errors.As(err, &de) || !strings.Contains(err.Error(), "Options.Nameservers is empty") {
		t.Errorf("lookup without nameservers: %s", describeErr(err))
	}
	if (&Stack{}).Resolver() == nil {
		t.Error("a zero Stack's Resolver is nil")
	}
	if _, err := (&Stack{}).DialContext(context.Background(), "tcp", "10.1.0.2:80"); !errors.Is(err, ErrNotInitialized) {
		t.Errorf("DialContext on a zero Stack: %v", err)
	}
	if _, err := (&Stack{}).Listen("tcp", ":0"); !errors.Is(err, ErrNotInitialized) {
		t.Errorf("Listen on a zero Stack: %v", err)
	}
	//lint:ignore SA1012 a nil context is the bad argument under test
	if _, err := a.DialContext(nil, "tcp", "10.1.0.2:80"); err == nil || !strings.Contains(err.Error(), "nil context") { //nolint:staticcheck
		t.Errorf("DialContext(nil ctx): %v", err)
	}
}

// TestResolverTruncatedAnswerOverTCP: an answer too big for UDP comes
// with the TC bit, and Go's resolver asks again over the stack's TCP
// (RFC 1123 §6.1.3.2), which carries all 100 records.
func TestResolverTruncatedAnswerOverTCP(t *testing.T) {
	leakcheck.Check(t)
	a, _, d := dnsPair(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := a.Resolver().LookupNetIP(ctx, "ip4", "big.test.")
	if err != nil {
		t.Fatal(err)
	}
	want := bigRecordSet()
	if len(ips) != len(want) {
		t.Fatalf("%d addresses, want %d", len(ips), len(want))
	}
	seen := map[netip.Addr]bool{}
	for _, ip := range ips {
		seen[ip] = true
	}
	for _, ip := range want {
		if !seen[ip] {
			t.Errorf("%v missing", ip)
		}
	}
	if d.udpQueries.Load() == 0 || d.tcpQueries.Load() == 0 {
		t.Errorf("%d queries over UDP, %d over TCP; want both", d.udpQueries.Load(), d.tcpQueries.Load())
	}
}

// TestResolverFailover: the first nameserver has no server on its port
// (an ICMP port unreachable comes back, ECONNREFUSED); the resolver's
// next try goes to the second, and later queries stay there.
func TestResolverFailover(t *testing.T) {
	leakcheck.Check(t)
	second := netip.AddrPortFrom(addrB.Addr(), 53)
	a, _, d := dnsPair(t, Options{Nameservers: []netip.AddrPort{netip.AddrPortFrom(addrB.Addr(), 5353), second}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := a.Resolver().LookupNetIP(ctx, "ip4", "web.test.")
	if err != nil {
		// Go's resolver tries attempts × (the host's nameservers) times,
		// 2 × 1 by default; were it once, this lookup found only the
		// first nameserver, and the next goes to the second.
		t.Logf("first lookup: %v", err)
		ips, err = a.Resolver().LookupNetIP(ctx, "ip4", "web.test.")
	}
	if err != nil || len(ips) != 1 || ips[0] != addrB.Addr() {
		t.Fatalf("lookup: %v, %v", ips, err)
	}
	if got := a.dnsServer(); got != second {
		t.Errorf("queries go to %v, want %v", got, second)
	}
	before := d.udpQueries.Load()
	if _, err := a.Resolver().LookupNetIP(ctx, "ip4", "web.test."); err != nil {
		t.Fatal(err)
	}
	if d.udpQueries.Load() != before+1 {
		t.Errorf("the second lookup made %d queries, want 1", d.udpQueries.Load()-before)
	}
}

// TestOptionsNameservers: a nameserver must be a unicast IPv4 address;
// the error names the field; port 0 means 53.
func TestOptionsNameservers(t *testing.T) {
	leakcheck.Check(t)
	for _, ns := range []netip.AddrPort{
		{},
		netip.MustParseAddrPort("[2001:db8::1]:53"),
		netip.MustParseAddrPort("0.0.0.0:53"),
		netip.MustParseAddrPort("224.0.0.251:5353"),
		netip.MustParseAddrPort("255.255.255.255:53"),
	} {
		_, err := NewStack(Options{Nameservers: []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:53"), ns}})
		if err == nil || !strings.Contains(err.Error(), "Options.Nameservers[1]") {
			t.Errorf("nameserver %v: %v", ns, err)
		}
	}
	s, err := NewStack(Options{Nameservers: []netip.AddrPort{netip.MustParseAddrPort("[::ffff:10.0.0.1]:0")}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.dnsServer(); got != netip.MustParseAddrPort("10.0.0.1:53") {
		t.Errorf("nameserver %v, want 10.0.0.1:53", got)
	}
}
