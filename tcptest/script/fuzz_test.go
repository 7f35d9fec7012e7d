package script

import "testing"

// FuzzParse checks that no input makes the lexer or parser panic, and that
// what parses formats back without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n"))
	f.Add([]byte("0 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7>\n+0 > S. 0:0(0) ack 1 <...>\n"))
	f.Add([]byte("--tolerance_usecs=1000\n`x`\n0.1~0.2 < 1>2 . 1:11(10) ack 1 win 5 <nop,nop,sack 1:2 3:4>\n* %{ x }%\n"))
	f.Add([]byte("+0...0.1 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = -1 EINVAL (bad)\n"))
	f.Add([]byte("--ip_version=ipv6\n--mtu=1520\n0 socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, {sa_family=AF_INET6, sin_port=htons(8080), sin_addr=inet_addr(\"fd3d:fa7b:d17d::1\")}, 28) = 0\n"))
	f.Add([]byte("0 < icmp packet_too_big mtu 1280 [1:1461(1460)]\n+0 < icmp unreachable admin_prohibited\n+0 < icmp parameter_problem unknown_next_header\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := Parse("f.pkt", src)
		if err != nil {
			return
		}
		for _, e := range s.events {
			if e.spec != nil {
				_ = e.spec.String()
			}
			if e.call != nil {
				_ = join(e.call.args, ",")
				_ = e.call.result.String()
			}
		}
	})
}

// FuzzSockaddr checks that no socket address argument makes the parser,
// parseSockaddr or addrValue panic, and that what parseSockaddr accepts
// is consistent: an address of the sockaddr's family, a port that fits.
func FuzzSockaddr(f *testing.F) {
	f.Add(`{sa_family=AF_INET6, sin_port=htons(8080), sin_addr=inet_addr("2001:db8::1")}`)
	f.Add(`{sin6_family=AF_INET6, sin6_port=htons(1), sin6_addr=inet6_addr("::ffff:192.0.2.1"), sin6_flowinfo=0, sin6_scope_id=0}`)
	f.Add(`{sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("192.0.2.1")}`)
	f.Add(`{sa_family=AF_INET, sin_addr=inet_addr("fe80::1%eth0")}`)
	f.Add(`{sin_addr=INADDR_ANY, sin_port=70000}`)
	f.Add(`inet6_addr("1.2.3.4")`)
	f.Add(`...`)
	f.Fuzz(func(t *testing.T, arg string) {
		toks, err := lex("0 connect(3, " + arg + ", 28) = 0\n")
		if err != nil {
			return
		}
		p := &parser{toks: toks}
		s := &Script{Name: "f.pkt"}
		if p.script(s) != nil || len(s.events) != 1 || s.events[0].call == nil || len(s.events[0].call.args) < 2 {
			return
		}
		e := s.events[0].call.args[1]
		_, _ = addrValue(e)
		sa, err := parseSockaddr(e)
		if err != nil {
			return
		}
		if a := sa.addr; a.IsValid() {
			if a.Zone() != "" {
				t.Fatalf("%s: address with a zone %v accepted", arg, a)
			}
			if sa.family == afInet && !a.Is4() || sa.family == afInet6 && !a.Is6() {
				t.Fatalf("%s: address %v accepted in family %d", arg, a, sa.family)
			}
		}
		if sa.family != -1 && sa.family != afInet && sa.family != afInet6 && sa.family != afUnspec {
			t.Fatalf("%s: family %d accepted", arg, sa.family)
		}
	})
}
