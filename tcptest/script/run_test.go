package script

import (
	"errors"
	"strings"
	"testing"

	"github.com/ustack/ustack/tcp"
	"github.com/ustack/ustack/tcptest"
)

// handshake is a passive open every runner test starts with.
const handshake = `0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1000,nop,wscale 7>
+0 > S. 0:0(0) ack 1 win 65535 <mss 1460,nop,wscale 3>
+0.1 < . 1:1(0) ack 1 win 512
+0 accept(3, ..., ...) = 4
`

func run(t *testing.T, src string, opts Options) *Result {
	t.Helper()
	s, err := Parse("t.pkt", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return s.Run(opts)
}

// TestRunFailures checks that every kind of mismatch fails the script at
// the right line with a message that says what differs.
func TestRunFailures(t *testing.T) {
	tests := []struct {
		name   string
		script string // appended to handshake (lines 8...)
		line   int
		want   []string // substrings of the failure's Detail
	}{
		{"missing packet", "+0 > P. 1:11(10) ack 1\n", 8,
			[]string{"expected outbound packet, but the stack sent none", "expected: 0.100000 > P. 1:11(10) ack 1"}},
		{"wrong field", "+0 write(4, ..., 10) = 10\n+0 > P. 1:11(10) ack 2\n", 9,
			[]string{"ack: got 1, want 2", "actual:   0.100000 > P. 1:11(10) ack 1 win 32768"}},
		{"wrong flags and length", "+0 write(4, ..., 10) = 10\n+0 > F. 1:21(20) ack 1\n", 9,
			[]string{"flags: got P., want F.", "payload length: got 10, want 20"}},
		{"too early", "+0 write(4, ..., 10) = 10\n+0.1 > P. 1:11(10) ack 1\n", 9,
			[]string{"timing error: expected outbound packet at 0.200000 sec but happened at 0.100000 sec; tolerance 0.004000 sec"}},
		{"too late", "+0.1 < P. 1:11(10) ack 1 win 512\n+0 > . 1:1(0) ack 11\n", 9,
			[]string{"happened at 0.240000 sec"}},
		{"range", "+0.1 < P. 1:11(10) ack 1 win 512\n+0.1~+0.2 > . 1:1(0) ack 11\n", 9,
			[]string{"in time range 0.300000~0.400000 sec but happened at 0.240000 sec"}},
		{"unexpected at end", "+0 write(4, ..., 10) = 10\n", 8,
			[]string{"unexpected outbound packet after the last line", "actual:   0.100000 > P. 1:11(10) ack 1"}},
		{"extra before expected", "+0 write(4, ..., 10) = 10\n+0 close(4) = 0\n+0 > F. 11:11(0) ack 1\n", 10,
			[]string{"flags: got P., want F.", "seq: got 1, want 11"}},
		{"options", "+0 write(4, ..., 10) = 10\n+0 > P. 1:11(10) ack 1 <nop,nop,sack 1:2>\n", 9,
			[]string{"options: got <>, want <nop,nop,sack 1:2>"}},
		{"syscall result", "+0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n+0 read(4, ..., 10) = 10\n", 9,
			[]string{"read: expected result 10 but got -1 EAGAIN"}},
		{"syscall errno", "+0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n+0 read(4, ..., 10) = -1 ECONNRESET\n", 9,
			[]string{"expected errno ECONNRESET but got EAGAIN"}},
		{"blocked at end", "+0...0.5 read(4, ..., 10) = 10\n", 8,
			[]string{"blocking system call read did not return"}},
		{"blocked forever", "+0 read(4, ..., 10) = 10\n", 8,
			[]string{"would block forever"}},
		{"blocking return late", "+0...0.15 read(4, ..., 10) = 10\n+0.1 < P. 1:11(10) ack 1 win 512\n", 8,
			[]string{"expected system call return at 0.250000 sec but happened at 0.200000 sec"}},
		{"two blocking calls", "+0...0.5 read(4, ..., 10) = 10\n+0 write(4, ..., 10) = 10\n", 9,
			[]string{"while the blocking read of line 8 is in progress"}},
		{"unsupported call", "+0 poll([{fd=4, events=POLLIN}], 1, 0) = 0\n", 8,
			[]string{"system call poll is not supported"}},
		{"unsupported sockopt", "+0 setsockopt(4, SOL_TCP, TCP_CORK, [1], 4) = 0\n", 8,
			[]string{"TCP_CORK is not supported"}},
		{"getsockopt value", "+0 getsockopt(4, SOL_TCP, TCP_MAXSEG, [1460], [4]) = 0\n", 8,
			[]string{"expected 1460, got 1000"}},
		{"time backwards", "1 write(4, ..., 10) = 10\n0.5 write(4, ..., 10) = 10\n", 9,
			[]string{"time goes backward"}},
		{"ecr without mapping", "+0 < . 1:1(0) ack 1 win 512 <nop,nop,TS val 5 ecr 77>\n", 8,
			[]string{"unable to infer live TS ecr for script TS ecr 77"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, handshake+tt.script, Options{})
			var f *Failure
			if !errors.As(res.Err, &f) {
				t.Fatalf("result %v, want a *Failure", res.Err)
			}
			if f.Line != tt.line {
				t.Errorf("failure at line %d, want %d: %s", f.Line, tt.line, f.Detail())
			}
			d := f.Detail()
			for _, w := range tt.want {
				if !strings.Contains(d, w) {
					t.Errorf("failure does not contain %q:\n%s", w, d)
				}
			}
			if !strings.Contains(d, "last packets seen:") {
				t.Errorf("failure lists no packets:\n%s", d)
			}
		})
	}
}

func TestRunPasses(t *testing.T) {
	tests := []struct {
		name   string
		script string
		opts   Options
	}{
		{"tolerance", "+0 write(4, ..., 10) = 10\n+0.003 > P. 1:11(10) ack 1\n", Options{}},
		{"tolerance option", "--tolerance_usecs=50000\n" + handshake + "+0.1 < P. 1:11(10) ack 1 win 512\n+0 > . 1:1(0) ack 11\n", Options{}},
		{"tolerance percent", "+0.1 < P. 1:11(10) ack 1 win 512\n+0.03 > . 1:1(0) ack 11\n", Options{TolerancePercent: 50}},
		{"any time", "+0.1 < P. 1:11(10) ack 1 win 512\n* > . 1:1(0) ack 11\n", Options{}},
		{"lenient options", "+0 write(4, ..., 10) = 10\n+0 > P. 1:11(10) ack 1\n", Options{LenientOptions: true}},
		{"ignore push", "+0 write(4, ..., 10) = 10\n+0 > . 1:11(10) ack 1\n", Options{IgnorePush: true}},
		{"aggregate", "+0 write(4, ..., 5000) = 5000\n+0 > P. 1:5001(5000) ack 1\n", Options{}},
		{"blocking accept", "+0...0.2 accept(3, ..., ...) = 5\n+0.1 < 40001>8080 S 0:0(0) win 100 <mss 1000>\n+0 > 8080>40001 S. 0:0(0) ack 1 win 65535 <mss 1460>\n+0.1 < 40001>8080 . 1:1(0) ack 1 win 100\n", Options{}},
		{"blocking write", "+0 setsockopt(4, SOL_SOCKET, SO_SNDBUF, [1000], 4) = 0\n", Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.script
			if !strings.HasPrefix(src, "--") {
				src = handshake + src
			}
			if res := run(t, src, tt.opts); !res.Passed() {
				var f *Failure
				if errors.As(res.Err, &f) {
					t.Fatal(f.Detail())
				}
				t.Fatal(res.Err)
			}
		})
	}
}

func TestRunNotes(t *testing.T) {
	res := run(t, "--local_ip=192.168.0.1\n`sysctl -q net.ipv4.tcp_timestamps=0`\n"+handshake+"+0 %{ print(tcpi_rto) }%\n", Options{})
	if !res.Passed() {
		t.Fatal(res.Err)
	}
	all := strings.Join(res.Notes, "\n")
	for _, w := range []string{"--local_ip ignored", "shell command `sysctl", "code block %{ }% skipped"} {
		if !strings.Contains(all, w) {
			t.Errorf("notes %q lack %q", res.Notes, w)
		}
	}
}

func TestRunOptionErrors(t *testing.T) {
	for _, src := range []string{"--ip_version=ipv5\n" + handshake, "--frobnicate=1\n" + handshake, "--tolerance_usecs=abc\n" + handshake,
		"--ip_version=ipv6\n--mtu=1200\n" + handshake, "--mtu=60\n" + handshake} {
		res := run(t, src, Options{})
		var f *Failure
		if res.Passed() || errors.As(res.Err, &f) {
			t.Errorf("%q: %v, want an option error", src[:20], res.Err)
		}
	}
}

// `sysctl net.ipv4.tcp_syncookies=N` sets the cookie mode of the sockets
// created afterwards, timed or not; other sysctls are skipped with a note.
func TestRunSysctlSYNCookies(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want tcp.SYNCookieMode
	}{
		{"`sysctl -q net.ipv4.tcp_syncookies=2`\n" + handshake, tcp.SYNCookiesAlways},
		{"0 `sysctl -w net.ipv4.tcp_syncookies=0`\n" + handshake, tcp.SYNCookiesNever},
		{"`sysctl -q net.ipv4.tcp_syncookies=1 net.ipv4.tcp_timestamps=0`\n" + handshake, tcp.SYNCookiesWhenFull},
	} {
		s, err := Parse("t.pkt", []byte(tc.src))
		if err != nil {
			t.Fatal(err)
		}
		r := &runner{sc: s, st: tcptest.NewStack(tcp.DefaultConfig())}
		r.st.Config().SYNCookies = tcp.SYNCookieMode(7)
		ok := len(s.setup) == 1 && r.sysctl(s.setup[0].text) || len(s.events) > 0 && r.sysctl(s.events[0].cmd)
		// A command with a setting ustack lacks is skipped whole.
		multi := strings.Contains(tc.src, "tcp_timestamps")
		if multi {
			tc.want = tcp.SYNCookieMode(7)
		}
		if ok == multi || r.st.Config().SYNCookies != tc.want {
			t.Errorf("%q: understood %v, mode %v", tc.src, ok, r.st.Config().SYNCookies)
		}
	}
}
