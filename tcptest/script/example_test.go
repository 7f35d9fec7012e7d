package script_test

import (
	"fmt"

	"github.com/ustack/ustack/tcptest/script"
)

// A script in packetdrill's syntax, run against a fresh ustack stack in
// virtual time. Its last line expects the wrong acknowledgment number, so
// the run fails at that line and names the field.
func ExampleScript_Run() {
	src := `
0    socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0   bind(3, ..., ...) = 0
+0   listen(3, 1) = 0
+0   < S 0:0(0) win 65535 <mss 1460>
+0   > S. 0:0(0) ack 1 win 65535 <mss 1460>
+.1  < . 1:1(0) ack 1 win 65535
+0   accept(3, ..., ...) = 4
+0   write(4, ..., 10) = 10
+0   > P. 1:11(10) ack 2
`
	s, err := script.Parse("example.pkt", []byte(src))
	if err != nil {
		fmt.Println(err)
		return
	}
	res := s.Run(script.Options{})
	fmt.Println(res.Passed(), res.Err)
	// Output: false example.pkt:10: error handling packet: ack: got 1, want 2
}
