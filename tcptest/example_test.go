package tcptest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ustack/ustack/tcp"
	"github.com/ustack/ustack/tcptest"
)

// A passive open and a retransmission, driven by hand in virtual time: the
// peer's segments are built from Specs with script-space numbers, and the
// stack's replies are printed the way a script writes them.
func ExampleStack() {
	s := tcptest.NewStack(tcp.DefaultConfig())
	l, _ := s.Listen(8080, 16, nil, 0)
	peer := s.Flow(40000, 8080)

	peer.Send(tcptest.Seg().Flags("S").Seq(0).Win(65535).MSS(1460))
	synack, _ := s.Next()
	fmt.Println(synack.Elapsed(), peer.Format(synack))

	peer.Send(tcptest.Seg().Flags(".").Seq(1).Ack(1).Win(65535))
	c := l.Accept()
	c.Write([]byte("hello"))
	data, _ := s.Next()
	fmt.Println(data.Elapsed(), peer.Format(data))

	// Nobody acknowledges: the clock moves to the retransmission timeout
	// (the handshake measured no delay, so RTO is MinRTO, 200 ms).
	s.AdvanceUntilSent(tcptest.Epoch.Add(time.Second))
	again, _ := s.Next()
	fmt.Println(again.Elapsed(), peer.Format(again))
	// Output:
	// 0s > S. 0:0(0) ack 1 win 65535 <mss 1460>
	// 0s > P. 1:6(5) ack 1 win 65535
	// 200ms > P. 1:6(5) ack 1 win 65535
}

// Specs describe segments in packetdrill's terms; unset fields are not
// compared when matching.
func ExampleSeg() {
	fmt.Println(tcptest.Seg().Flags("S").Seq(0).Win(65535).MSS(1460).SACKOK().TS(100, 0).NOP().WScale(7))
	fmt.Println(tcptest.Seg().Flags("P.").Seq(1).Len(100).Ack(1))
	fmt.Println(tcptest.Seg().Flags("R"))
	// Output:
	// S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
	// P. 1:101(100) ack 1
	// R
}

// A table-driven test with the harness. Each failed expectation names the
// differing field and lists the last packets; the failing test leaves a
// pcap of the exchange in t.TempDir() (or $TCPTEST_PCAP_DIR) and logs its
// path.
func ExampleNew() {
	tests := []struct {
		name    string
		noDelay bool
		second  *tcptest.Spec // what the second small write sends at once, nil if held
	}{
		{"nagle", false, nil},
		{"nodelay", true, tcptest.Seg().Flags("P.").Seq(11).Len(10).Ack(1)},
	}
	testNagle := func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h := tcptest.New(t, nil)
				l := h.Listen(8080, 1)
				p := h.Peer(40000, 8080)
				p.Send(tcptest.Seg().Flags("S").Seq(0).Win(65535).MSS(1000))
				p.Expect(tcptest.Seg().Flags("S.").Seq(0).Ack(1).MSS(1460))
				p.Send(tcptest.Seg().Flags(".").Seq(1).Ack(1).Win(65535))
				c := l.Accept()
				c.SetNoDelay(tt.noDelay)
				c.Write(make([]byte, 10))
				p.Expect(tcptest.Seg().Flags("P.").Seq(1).Len(10).Ack(1))
				c.Write(make([]byte, 10))
				if tt.second != nil {
					p.Expect(tt.second)
				}
				h.ExpectNothing()
				// The retransmission comes at exactly the RTO.
				p.ExpectAfter(200*time.Millisecond, tcptest.Seg().Flags("P.").Seq(1).Ack(1))
			})
		}
	}
	_ = testNagle // func TestNagle(t *testing.T) { testNagle(t) }
}

// An exchange over IPv6: the same calls, packetdrill's IPv6 addresses, and
// the MSS of an Ethernet MTU less 60 octets of IPv6 and TCP headers.
func ExampleNewStackFamily() {
	s := tcptest.NewStackFamily(tcp.DefaultConfig(), tcptest.IPv6)
	l, _ := s.Listen(8080, 16, nil, 0)
	peer := s.Flow(40000, 8080)
	peer.Send(tcptest.Seg().Flags("S").Seq(0).Win(65535).MSS(1440))
	synack, _ := s.Next()
	fmt.Println(peer.Format(synack))
	peer.Send(tcptest.Seg().Flags(".").Seq(1).Ack(1).Win(65535))
	c := l.Accept()
	fmt.Println(c.Tuple(), c.State())
	// Output:
	// > S. 0:0(0) ack 1 win 65535 <mss 1440>
	// [fd3d:fa7b:d17d::1]:8080 <-> [2001:db8::1]:40000 ESTABLISHED
}
