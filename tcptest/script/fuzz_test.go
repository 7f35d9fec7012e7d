package script

import "testing"

// FuzzParse checks that no input makes the lexer or parser panic, and that
// what parses formats back without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n"))
	f.Add([]byte("0 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7>\n+0 > S. 0:0(0) ack 1 <...>\n"))
	f.Add([]byte("--tolerance_usecs=1000\n`x`\n0.1~0.2 < 1>2 . 1:11(10) ack 1 win 5 <nop,nop,sack 1:2 3:4>\n* %{ x }%\n"))
	f.Add([]byte("+0...0.1 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = -1 EINVAL (bad)\n"))
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
