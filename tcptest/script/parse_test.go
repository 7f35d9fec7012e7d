package script

import (
	"strconv"
	"strings"
	"testing"
)

// TestParseErrors checks that syntax ustack cannot run is an error naming
// the line, never a silent pass.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		line int
		want string
	}{
		{"garbage", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\nhello world\n", 2, "expected an event time"},
		{"unknown TCP option", "0 < S 0:0(0) win 100 <mss 1460,foo 3>\n", 1, `unknown TCP option "foo"`},
		{"inbound without window", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\n+0 < S 0:0(0)\n", 3, "window must be specified"},
		{"inbound any options", "0 < S 0:0(0) win 10 <...>\n", 1, "<...> for TCP options can only be used with outbound packets"},
		{"inconsistent length", "0 < . 1:11(5) ack 1 win 10\n", 1, "inconsistent TCP sequence numbers"},
		{"options not padded", "0 < S 0:0(0) win 10 <mss 1460,nop>\n", 1, "not padded correctly"},
		{"udp", "0 < udp (10)\n", 1, "not supported"},
		{"icmp", "0 > icmp echo_reply\n", 1, "not supported"},
		{"md5", "0 < S 0:0(0) win 10 <md5 0123>\n", 1, "md5"},
		{"fast open", "0 < S 0:0(0) win 10 <FO abcd,nop,nop>\n", 1, "FO"},
		{"ecn ip info", "0 < [ect0] S 0:0(0) win 10\n", 1, "IP information"},
		{"accecn flags", "0 < S 0:0(0) win 10\n+0 > 5 0:0(0)\n", 2, "AccECN"},
		{"bad flag", "0 < SX 0:0(0) win 10\n", 1, "unknown TCP flag"},
		{"syscall without result", "0 socket(..., SOCK_STREAM, IPPROTO_TCP)\n", 2, `expected "="`},
		{"negative time", "-1 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n", 1, "negative time"},
		{"range backwards", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n0.2~0.1 close(3) = 0\n", 2, "range ends before it starts"},
		{"unterminated comment", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n/* oops\n", 2, "unterminated"},
		{"unterminated string", "0 write(3, \"abc, 3) = 3\n", 1, "unterminated"},
		{"empty", "// nothing\n", 2, "no events"},
		{"ts without ecr", "0 < S 0:0(0) win 10 <TS val 1>\n", 1, `expected "ecr"`},
		{"window out of range", "0 < S 0:0(0) win 70000\n", 1, "out of range"},
		{"sack without blocks", "0 < . 1:1(0) ack 1 win 10 <nop,nop,sack>\n", 1, "at least one block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.pkt", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded, want an error with %q", tt.want)
			}
			msg := err.Error()
			wantPrefix := "x.pkt:line " + itoa(tt.line) + ":"
			if !strings.HasPrefix(msg, wantPrefix) || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q, want prefix %q and %q", msg, wantPrefix, tt.want)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestParse checks a script with every construct the runner supports.
func TestParse(t *testing.T) {
	src := `// comment
--tolerance_usecs=10000
--tcp_ts_ecr_scaled
` + "`../common/defaults.sh`" + `
/* block
   comment */
0      socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0     setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0
+0     bind(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("192.168.0.1")}, 16) = 0
+.1...0.2 accept(3, ..., ...) = 4
0.3~0.4 < [noecn] 40000>8080 S 0:0(0) win 65535 <mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7>
+0~+0.1 > S. 0:0(0) ack 1 <...>
*      > . 1:1(0) ack 1 urg 0 <nop,nop,sack 1:2 3:4>
+0     < - 1:1001(1000) win 20000
+0     fcntl(3, F_GETFL) = 0x802 (flags O_RDWR|O_NONBLOCK)
+0     read(4, ..., 100) = -1 EAGAIN (Resource temporarily unavailable)
+0     %{ assert tcpi_rto == 200000 }%
+0     ` + "`echo done`" + `
`
	s, err := Parse("all.pkt", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.options) != 2 || s.options[0].name != "tolerance_usecs" || s.options[0].value != "10000" || s.options[1].name != "tcp_ts_ecr_scaled" {
		t.Errorf("options %+v", s.options)
	}
	if len(s.setup) != 1 || len(s.notes) != 0 {
		t.Errorf("setup %+v, notes %q", s.setup, s.notes)
	}
	type ev struct {
		line  int
		kind  eventKind
		tkind timeKind
	}
	want := []ev{
		{7, evSyscall, timeAbs}, {8, evSyscall, timeRel}, {9, evSyscall, timeRel}, {10, evSyscall, timeRel},
		{11, evPacket, timeAbsRange}, {12, evPacket, timeRelRange}, {13, evPacket, timeAny}, {14, evPacket, timeRel},
		{15, evSyscall, timeRel}, {16, evSyscall, timeRel}, {17, evCode, timeRel}, {18, evCommand, timeRel},
	}
	if len(s.events) != len(want) {
		t.Fatalf("%d events, want %d", len(s.events), len(want))
	}
	for i, w := range want {
		e := s.events[i]
		if e.line != w.line || e.kind != w.kind || e.tkind != w.tkind {
			t.Errorf("event %d: line %d kind %d time %d, want %+v", i, e.line, e.kind, e.tkind, w)
		}
	}
	acc := s.events[3].call
	if !acc.blocking || acc.end.Seconds() != 0.2 || s.events[3].t.Seconds() != 0.1 {
		t.Errorf("accept: blocking %v end %v start %v", acc.blocking, acc.end, s.events[3].t)
	}
	syn := s.events[4]
	if !syn.ports || syn.src != 40000 || syn.dst != 8080 || syn.spec.String() != "40000>8080 S 0:0(0) win 65535 <mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7>" {
		t.Errorf("SYN: %v %d>%d %s", syn.ports, syn.src, syn.dst, syn.spec)
	}
	if got := s.events[5].spec.String(); got != "S. 0:0(0) ack 1 <...>" {
		t.Errorf("SYN-ACK spec %s", got)
	}
	if got := s.events[6].spec.String(); got != ". 1:1(0) ack 1 <nop,nop,sack 1:2 3:4>" {
		t.Errorf("ACK spec %s", got)
	}
	if got := s.events[7].spec.String(); got != "- 1:1001(1000) win 20000" {
		t.Errorf("no-flags spec %s", got)
	}
	if c := s.events[9].call; c.errno != "EAGAIN" || c.result.ival != -1 {
		t.Errorf("read: %+v", c)
	}
	if c := s.events[8].call; c.result.ival != 0x802 {
		t.Errorf("fcntl result %v", c.result)
	}
}

func TestParseICMP(t *testing.T) {
	for _, tc := range []struct {
		src, want string
	}{
		{"0 < icmp unreachable frag_needed mtu 1200 [1:1461(1460)]\n", ""},
		{"0 < [1:1461(1460)] icmp unreachable frag_needed mtu 1200\n", ""},
		{"0 < icmp unreachable host\n", ""},
		{"0 < icmp time_exceeded\n", ""},
		{"0 < icmp unreachable\n", "needs a code"},
		{"0 < icmp unreachable bogus\n", "unknown ICMP code"},
		{"0 < icmp echo_reply\n", "unknown or unsupported ICMP type"},
		{"0 < icmp unreachable host mtu 1200\n", "only for unreachable frag_needed"},
		{"0 < icmp unreachable frag_needed mtu 1200 [1:1461(1000)]\n", "inconsistent"},
		{"0 < [1:1461(1460)] icmp unreachable port [1:1461(1460)]\n", "given twice"},
		{"0 < [1:1461(1460)] . 1:1(0) ack 1 win 100\n", "belongs to an ICMP packet"},
		{"0 > icmp unreachable port\n", "outbound ICMP"},
	} {
		_, err := Parse("x.pkt", []byte(tc.src))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.src, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want one containing %q", tc.src, err, tc.want)
		}
	}
}
