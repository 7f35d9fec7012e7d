package script

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/tcptest"
)

func TestParseIPVersion(t *testing.T) {
	for _, v := range []IPVersion{IPv4, IPv4MappedIPv6, IPv6} {
		if w, err := ParseIPVersion(v.String()); err != nil || w != v {
			t.Errorf("ParseIPVersion(%q) = %v, %v", v, w, err)
		}
	}
	for _, s := range []string{"", "ipv5", "IPv6", "ipv4-mapped"} {
		if _, err := ParseIPVersion(s); err == nil {
			t.Errorf("ParseIPVersion(%q) succeeded", s)
		}
	}
}

// mustPass runs src with opts and fails the test with the failure's
// detail.
func mustPass(t *testing.T, src string, opts Options) *Result {
	t.Helper()
	res := run(t, src, opts)
	if !res.Passed() {
		var f *Failure
		if errors.As(res.Err, &f) {
			t.Fatal(f.Detail())
		}
		t.Fatal(res.Err)
	}
	return res
}

// An IPv6 run puts IPv6 on the wire: every packet is between
// tcptest.LocalAddr6 and RemoteAddr6, and the capture holds IPv6 headers.
// A script's own --ip_version=ipv6 line does the same, and Options
// override it.
func TestRunIPv6Wire(t *testing.T) {
	src := "0 socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP) = 3\n" + handshake[len("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"):]
	src = strings.Replace(src, "<mss 1460,", "<mss 1440,", 1)
	for _, tc := range []struct {
		src  string
		opts Options
	}{
		{src, Options{IPVersion: IPv6}},
		{"--ip_version=ipv6\n" + src, Options{}},
		{"--ip_version=ipv4\n" + src, Options{IPVersion: IPv6}},
	} {
		res := mustPass(t, tc.src, tc.opts)
		for _, p := range res.Packets {
			if p.Tuple.Local.Addr() != tcptest.LocalAddr6 || p.Tuple.Remote.Addr() != tcptest.RemoteAddr6 {
				t.Fatalf("packet %v is not between the IPv6 addresses", p)
			}
		}
		var buf bytes.Buffer
		if err := res.WritePcap(&buf); err != nil {
			t.Fatal(err)
		}
		if h, err := ipv6.ParseHeader(buf.Bytes()[24+16:]); err != nil || h.Source() != tcptest.RemoteAddr6 {
			t.Fatalf("first captured packet: %v %v", h, err)
		}
	}
	// The default MTU over IPv6 is 1500: the MSS is 1440 (RFC 8200 §8.3);
	// --mtu=1520 (or Options.MTU) makes it 1460.
	mustPass(t, "--mtu=1520\n"+handshake, Options{IPVersion: IPv6})
	mustPass(t, handshake, Options{IPVersion: IPv6, MTU: 1520})
	mustPass(t, "--mtu=1000\n"+handshake, Options{IPVersion: IPv6, MTU: 1520})
}

// Socket domains, bind and connect addresses in each version.
func TestRunIPv6Sockets(t *testing.T) {
	const listen6 = `0 socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, {sa_family=AF_INET6, sin_port=htons(8081), sin_addr=inet_addr("fd3d:fa7b:d17d::1")}, 28) = 0
+0 listen(3, 1) = 0
+0 < 40000>8081 S 0:0(0) win 65535 <mss 1440>
+0 > 8081>40000 S. 0:0(0) ack 1 win 65535 <mss 1460>
+0 < 40000>8081 . 1:1(0) ack 1 win 65535
+0 accept(3, ..., ...) = 4
`
	mustPass(t, listen6, Options{IPVersion: IPv6, MTU: 1520})
	// The wildcard, with the sockaddr_in6 field names.
	mustPass(t, strings.Replace(listen6, `{sa_family=AF_INET6, sin_port=htons(8081), sin_addr=inet_addr("fd3d:fa7b:d17d::1")}`,
		`{sin6_family=AF_INET6, sin6_port=htons(8081), sin6_addr=inet6_addr("::"), sin6_flowinfo=0, sin6_scope_id=0}`, 1), Options{IPVersion: IPv6, MTU: 1520})

	const connect6 = `0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 connect(3, {sa_family=AF_INET6, sin6_port=htons(9000), sin6_addr=inet6_addr("2001:db8::99")}, 28) = -1 EINPROGRESS (Operation now in progress)
+0 > S 0:0(0) <mss 1440,sackOK,TS val 100 ecr 0,nop,wscale 3>
`
	res := mustPass(t, connect6, Options{IPVersion: IPv6})
	if r := res.Packets[0].Tuple.Remote; r != netip.MustParseAddrPort("[2001:db8::99]:9000") {
		t.Fatalf("connect went to %v", r)
	}
	// ipv4-mapped-ipv6: AF_INET6 sockets with mapped addresses, IPv4 on
	// the wire.
	const connectMapped = `0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 connect(3, {sa_family=AF_INET6, sin_port=htons(9000), sin_addr=inet_addr("::ffff:192.0.2.7")}, 28) = -1 EINPROGRESS (Operation now in progress)
+0 > S 0:0(0) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 3>
`
	res = mustPass(t, connectMapped, Options{IPVersion: IPv4MappedIPv6})
	if r := res.Packets[0].Tuple.Remote; r != netip.MustParseAddrPort("192.0.2.7:9000") {
		t.Fatalf("mapped connect went to %v", r)
	}

	// Errno results as Linux gives them.
	for _, tc := range []struct {
		name, line string
		ver        IPVersion
	}{
		{"bind another address", `bind(3, {sa_family=AF_INET6, sin_port=htons(8080), sin_addr=inet_addr("2001:db8::5")}, 28) = -1 EADDRNOTAVAIL`, IPv6},
		{"bind AF_INET on AF_INET6", `bind(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("192.168.0.1")}, 16) = -1 EAFNOSUPPORT`, IPv6},
		{"connect AF_INET6 on AF_INET", `connect(3, {sa_family=AF_INET6, sin_port=htons(8080), sin_addr=inet_addr("2001:db8::1")}, 28) = -1 EAFNOSUPPORT`, IPv4},
		{"bind the mapped local address", `bind(3, {sa_family=AF_INET6, sin_port=htons(8080), sin_addr=inet_addr("::ffff:192.168.0.1")}, 28) = 0`, IPv4MappedIPv6},
		{"bind the IPv4 local address", `bind(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("192.168.0.1")}, 16) = 0`, IPv4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustPass(t, "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 "+tc.line+"\n", Options{IPVersion: tc.ver})
		})
	}

	// Errors naming the line: what the run's stack cannot do.
	for _, tc := range []struct {
		name, src, want string
		ver             IPVersion
	}{
		{"AF_INET socket in ipv6", "0 socket(AF_INET, SOCK_STREAM, IPPROTO_TCP) = 3\n", "AF_INET socket in an --ip_version=ipv6 run", IPv6},
		{"AF_INET6 socket in ipv4", "0 socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP) = 3\n", "AF_INET6 socket in an --ip_version=ipv4 run", IPv4},
		{"mapped address in ipv6", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 connect(3, {sa_family=AF_INET6, sin_port=htons(1), sin_addr=inet_addr(\"::ffff:192.0.2.1\")}, 28) = 0\n",
			"would put IPv4 packets on the wire", IPv6},
		{"IPv6 address in mapped", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 connect(3, {sa_family=AF_INET6, sin_port=htons(1), sin_addr=inet_addr(\"2001:db8::1\")}, 28) = 0\n",
			"would put IPv6 packets on the wire", IPv4MappedIPv6},
		{"bad address", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 connect(3, {sa_family=AF_INET6, sin_port=htons(1), sin_addr=inet_addr(\"2001:db8::zz\")}, 28) = 0\n",
			"not an IP address", IPv6},
		{"family and address disagree", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 connect(3, {sa_family=AF_INET, sin_port=htons(1), sin_addr=inet_addr(\"2001:db8::1\")}, 16) = 0\n",
			"does not belong to family AF_INET", IPv4},
		{"unknown field", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 connect(3, {sa_family=AF_INET6, sin6_port=htons(1), sin6_zone=3}, 28) = 0\n",
			"unknown sockaddr field sin6_zone", IPv6},
		{"unspecified peer", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 connect(3, {sa_family=AF_INET6, sin6_port=htons(1), sin6_addr=inet6_addr(\"::\")}, 28) = 0\n",
			"unspecified address", IPv6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, tc.src, Options{IPVersion: tc.ver})
			var f *Failure
			if !errors.As(res.Err, &f) || !strings.Contains(f.Msg, tc.want) || f.Line != strings.Count(tc.src, "\n") {
				t.Fatalf("%v, want a failure at line %d naming %q", res.Err, strings.Count(tc.src, "\n"), tc.want)
			}
		})
	}
}

// ICMP lines in an IPv6 run are ICMPv6: packet_too_big, and the ICMPv4
// names of the IPv4 scripts mapped to their counterparts (frag_needed to
// Packet Too Big); ICMPv6 names in an IPv4 run, and ICMPv4 messages with
// no ICMPv6 counterpart in an IPv6 run, are errors naming the line.
func TestRunICMPv6(t *testing.T) {
	const data = "+0.1 write(4, ..., 1460) = 1460\n+0 > P. 1:1461(1460) ack 1\n"
	for _, tc := range []struct {
		icmp string
		ver  IPVersion
		want string // "" to pass
	}{
		{"+0 < icmp packet_too_big mtu 1400 [1:1461(1460)]\n+0 > . 1:1341(1340) ack 1\n+0 > P. 1341:1461(120) ack 1\n", IPv6, ""},
		{"+0 < icmp unreachable frag_needed mtu 1400\n+0 > . 1:1341(1340) ack 1\n+0 > P. 1341:1461(120) ack 1\n", IPv6, ""},
		{"+0 < icmp unreachable frag_needed mtu 1400\n+0 > . 1:1361(1360) ack 1\n+0 > P. 1361:1461(100) ack 1\n", IPv4, ""},
		{"+0 < icmp packet_too_big mtu 1200\n", IPv6, ""}, // discarded (RFC 8201 §4): nothing is sent
		{"+0 < icmp unreachable admin_prohibited\n+0 < icmp unreachable address_unreachable\n+0 < icmp time_exceeded exceeded_hop_limit\n+0 < icmp parameter_problem unknown_next_header\n", IPv6, ""},
		{"+0 < icmp packet_too_big mtu 1400\n", IPv4, "ICMP type packet_too_big is ICMPv6's"},
		{"+0 < icmp unreachable admin_prohibited\n", IPv4, "ICMP code admin_prohibited is ICMPv6's"},
		{"+0 < icmp source_quench\n", IPv6, "source_quench has no ICMPv6 counterpart"},
		{"+0 < icmp unreachable source_route_failed\n", IPv6, "unreachable source_route_failed has no ICMPv6 counterpart"},
		{"+0 < icmp unreachable frag_needed mtu 70000\n", IPv4, "out of 16-bit range"},
	} {
		opts := Options{IPVersion: tc.ver}
		if tc.ver == IPv6 {
			opts.MTU = 1520
		}
		src := strings.Replace(handshake, "<mss 1000,", "<mss 1460,", 1) + data + tc.icmp
		res := run(t, src, opts)
		var f *Failure
		switch {
		case tc.want == "" && !res.Passed():
			t.Errorf("%v %q: %v", tc.ver, tc.icmp, res.Err)
		case tc.want != "" && (!errors.As(res.Err, &f) || !strings.Contains(f.Msg, tc.want) || f.Line != 10):
			t.Errorf("%v %q: %v, want a failure at line 10 naming %q", tc.ver, tc.icmp, res.Err, tc.want)
		}
	}
}
