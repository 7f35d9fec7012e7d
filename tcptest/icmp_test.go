package tcptest_test

import (
	"testing"

	"github.com/ustack/ustack/tcp"
	"github.com/ustack/ustack/tcptest"
)

// An ICMP frag-needed injected through the test stack reaches the
// connection it quotes and lowers its MSS; one for another 4-tuple is
// ignored and counted.
func TestInjectICMP(t *testing.T) {
	h := tcptest.New(t, nil)
	l := h.Listen(8080, 16)
	p := h.Peer(40000, 8080)
	p.Send(tcptest.Seg().Flags("S").Seq(0).Win(65535).MSS(1460))
	p.Expect(tcptest.Seg().Flags("S.").Seq(0).Ack(1).Win(65535).MSS(1460))
	p.Send(tcptest.Seg().Flags(".").Seq(1).Ack(1).Win(65535))
	c := l.Accept()
	if _, err := c.Write(make([]byte, 1460)); err != nil {
		t.Fatal(err)
	}
	p.Expect(tcptest.Seg().Flags("P.").Seq(1).Len(1460).Ack(1))
	st := h.Stack
	other := h.Peer(40001, 8080)
	if r := st.InjectICMP(other.Flow().Tuple(), tcptest.ICMP{Type: 3, Code: 4, MTU: 1200, Seq: 1}); r != tcp.ICMPIgnored || st.Stats().ICMPIgnored.Load() != 1 {
		t.Fatalf("ICMP for no connection: %v, ICMPIgnored %d", r, st.Stats().ICMPIgnored.Load())
	}
	// The last segment sent is quoted when none is named.
	r, err := p.Flow().SendICMP(tcptest.ICMP{Type: 3, Code: 4, MTU: 1200}, true)
	if err != nil || r != tcp.ICMPMTULowered {
		t.Fatalf("frag-needed: %v %v", r, err)
	}
	if in := c.TCP().Info(); in.MSS != 1160 {
		t.Fatalf("MSS %d, want 1160", in.MSS)
	}
	p.Expect(tcptest.Seg().Flags(".").Seq(1).Len(1160).Ack(1))
	p.Expect(tcptest.Seg().Flags("P.").Seq(1161).Len(300).Ack(1))
}
