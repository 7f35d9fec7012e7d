package tcptest_test

import (
	"testing"
	"time"

	"github.com/ustack/ustack/tcp"
	"github.com/ustack/ustack/tcptest"
)

// TestPassiveOpen is RFC 9293 Figure 7 from the listening side, with the
// retransmission of unacknowledged data at the RTO and its backoff
// (RFC 6298 (5.5)).
func TestPassiveOpen(t *testing.T) {
	h := tcptest.New(t, nil)
	l := h.Listen(8080, 16)
	p := h.Peer(40000, 8080)
	p.Send(tcptest.Seg().Flags("S").Seq(0).Win(65535).MSS(1000))
	p.Expect(tcptest.Seg().Flags("S.").Seq(0).Ack(1).Win(65535).MSS(1460))
	p.Send(tcptest.Seg().Flags(".").Seq(1).Ack(1).Win(65535))
	c := l.Accept()
	if c == nil {
		t.Fatal("no connection to accept")
	}
	if c.State() != tcp.StateEstablished {
		t.Fatalf("state %v", c.State())
	}
	if n, err := c.Write(make([]byte, 100)); n != 100 || err != nil {
		t.Fatalf("write = %d, %v", n, err)
	}
	p.Expect(tcptest.Seg().Flags("P.").Seq(1).Len(100).Ack(1))
	// RTO: the handshake measured an RTT of 0, so RTO = MinRTO (200 ms).
	p.ExpectAfter(200*time.Millisecond, tcptest.Seg().Flags("P.").Seq(1).Len(100).Ack(1))
	p.ExpectAfter(400*time.Millisecond, tcptest.Seg().Flags("P.").Seq(1).Len(100).Ack(1))
	p.Send(tcptest.Seg().Flags(".").Seq(1).Ack(101).Win(65535))
	h.Advance(10 * time.Second)
	h.ExpectNothing()
}

func TestActiveOpenTimestamps(t *testing.T) {
	h := tcptest.New(t, nil)
	c, p := h.Dial(8080)
	p.Expect(tcptest.Seg().Flags("S").Seq(0).Win(65535).MSS(1460).SACKOK().TS(100, 0).NOP().WScale(7))
	p.Send(tcptest.Seg().Flags("S.").Seq(0).Ack(1).Win(65535).MSS(1460).SACKOK().TS(700, 100).NOP().WScale(7))
	p.Expect(tcptest.Seg().Flags(".").Seq(1).Ack(1).NOP().NOP().TS(100, 700))
	if !c.TCP().Established() {
		t.Fatal("not established")
	}
}

// TestNagle is the table test of ExampleNew, run.
func TestNagle(t *testing.T) {
	tests := []struct {
		name    string
		noDelay bool
		second  *tcptest.Spec
	}{
		{"nagle", false, nil},
		{"nodelay", true, tcptest.Seg().Flags("P.").Seq(11).Len(10).Ack(1)},
	}
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
			p.ExpectAfter(200*time.Millisecond, tcptest.Seg().Flags("P.").Seq(1).Ack(1))
		})
	}
}

// TestTimeWaitRecord: a connection its user closed leaves the table in
// TIME-WAIT for a record, as in package stack (the same demultiplexer):
// the record acknowledges a retransmitted FIN (RFC 9293 §3.10.7.4),
// holds the 4-tuple against a new active open, and is gone after 2*MSL,
// when a segment for the 4-tuple draws a reset (§3.10.7.1).
func TestTimeWaitRecord(t *testing.T) {
	h := tcptest.New(t, nil)
	l := h.Listen(8080, 1)
	p := h.Peer(40000, 8080)
	p.Send(tcptest.Seg().Flags("S").Seq(0).Win(65535).MSS(1000))
	p.Expect(tcptest.Seg().Flags("S.").Seq(0).Ack(1))
	p.Send(tcptest.Seg().Flags(".").Seq(1).Ack(1).Win(65535))
	c := l.Accept()
	c.Close()
	p.Expect(tcptest.Seg().Flags("F.").Seq(1).Ack(1))
	tu := c.Tuple()
	if h.Conn(tu) == nil || h.TimeWait(tu) {
		t.Fatalf("in FIN-WAIT-1: Conn %v, record %v; want the Conn only", h.Conn(tu), h.TimeWait(tu))
	}
	p.Send(tcptest.Seg().Flags("F.").Seq(1).Ack(2).Win(65535))
	p.Expect(tcptest.Seg().Flags(".").Seq(2).Ack(2))
	if h.Conn(tu) != nil || !h.TimeWait(tu) {
		t.Fatalf("in TIME-WAIT: Conn %v, record %v; want the record only", h.Conn(tu), h.TimeWait(tu))
	}
	if c.State() != tcp.StateTimeWait {
		t.Fatalf("the closed Conn says %v", c.State())
	}
	if _, err := h.Stack.Dial(8080, tu.Remote, nil, 0); err != tcptest.ErrPortInUse {
		t.Fatalf("dial on the 4-tuple in TIME-WAIT: %v, want ErrPortInUse", err)
	}
	h.Advance(30 * time.Second)
	p.Send(tcptest.Seg().Flags("F.").Seq(1).Ack(2).Win(65535))
	p.Expect(tcptest.Seg().Flags(".").Seq(2).Ack(2))
	// The FIN restarted the 2*MSL timeout (60 s): at 89.9 s the record
	// still takes an ACK silently, after 90 s it is gone.
	h.Advance(60*time.Second - 100*time.Millisecond)
	p.Send(tcptest.Seg().Flags(".").Seq(2).Ack(2).Win(65535))
	h.ExpectNothing()
	h.Advance(200 * time.Millisecond)
	if h.TimeWait(tu) {
		t.Fatal("the record outlived 2*MSL")
	}
	p.Send(tcptest.Seg().Flags(".").Seq(2).Ack(2).Win(65535))
	p.Expect(tcptest.Seg().Flags("R").Seq(2))
}
