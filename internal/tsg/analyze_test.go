package tsg

import (
	"testing"
	"time"

	"github.com/ustack/ustack/link/pcap"
)

const rtt = 10 * ms

// want is what a scenario's analysis must find.
type want struct {
	segments, retrans, rtos, tlps, dups, sacks, dsacks int
	kinds                                              map[int]Kind // by index into Graph.Data
}

type counts struct{ segments, retrans, rtos, tlps, dups, sacks, dsacks int }

func check(t *testing.T, g *Graph, w want) {
	t.Helper()
	got := counts{g.DataSegments, g.Retransmissions, g.RTOs, g.TLPs, g.Duplicates, g.SACKBlocks, g.DSACKBlocks}
	w2 := counts{w.segments, w.retrans, w.rtos, w.tlps, w.dups, w.sacks, w.dsacks}
	if got != w2 {
		t.Errorf("segments, retransmissions, RTOs, TLPs, duplicates, SACK blocks, D-SACK blocks = %v, want %v", got, w2)
	}
	for i, k := range w.kinds {
		if i >= len(g.Data) {
			t.Errorf("no data mark %d (%d marks)", i, len(g.Data))
			continue
		}
		if g.Data[i].Kind != k {
			t.Errorf("mark %d (%d..%d at %v, silence %v) is %v, want %v", i, g.Data[i].Seq, g.Data[i].End, g.Data[i].T, g.Data[i].Silence, g.Data[i].Kind, k)
		}
	}
	if t.Failed() {
		for i, d := range g.Data {
			t.Logf("mark %d: %v %d..%d %v silence %v", i, d.T, d.Seq, d.End, d.Kind, d.Silence)
		}
	}
}

func TestCleanTransfer(t *testing.T) {
	e := newExchange(t, pcap.LinkTypeEthernet)
	e.handshake(rtt)
	// Ten segments, two per RTT round, each acknowledged one RTT later.
	for i := 1; i <= 10; i++ {
		at := rtt + time.Duration((i-1)/2)*rtt + time.Duration(i%2)*100*time.Microsecond
		e.data(at, i)
		e.ack(at+rtt, i)
	}
	g := e.graph()
	// The SYN-ACK is the sender's first mark (it occupies sequence 0).
	check(t, g, want{segments: 11, kinds: map[int]Kind{0: New, 1: New, 10: New}})
	if g.Sender != e.server || g.Receiver != e.client || !g.SYN || !g.WindowScaleKnown || g.WindowScale != 7 {
		t.Errorf("sender %v receiver %v SYN %v scale %v/%d", g.Sender, g.Receiver, g.SYN, g.WindowScaleKnown, g.WindowScale)
	}
	if g.Data[1].Seq != 1 || g.Data[1].End != 1001 || g.Data[10].End != 10001 || g.Bytes != 0 && g.Bytes != 10001 {
		t.Errorf("sequence not relative to the ISN across the wrap: %+v %+v", g.Data[1], g.Data[10])
	}
	last := g.Acks[len(g.Acks)-1]
	if last.Ack != 10001 || last.Window != 10001+512<<7 {
		t.Errorf("last ACK %+v, want ack 10001 and window edge %d", last, 10001+512<<7)
	}
	if g.RTT != rtt {
		t.Errorf("RTT %v, want %v", g.RTT, rtt)
	}
}

func TestFastRetransmit(t *testing.T) {
	e := newExchange(t, pcap.LinkTypeRaw)
	e.handshake(rtt)
	for i := 1; i <= 10; i++ {
		e.data(rtt+time.Duration(i)*100*time.Microsecond, i)
	}
	e.duplicate(50 * time.Microsecond) // the network copies segment 10
	// Segment 3 is lost: ACKs for 1 and 2, then dupacks SACKing 4..10.
	base := 2*rtt + 100*time.Microsecond
	e.ack(base, 1)
	e.ack(base+100*time.Microsecond, 2)
	for i := 4; i <= 10; i++ {
		at := base + time.Duration(i)*100*time.Microsecond
		e.ack(at, 2, [2]int{4, i})
		if i == 6 {
			e.data(at+20*time.Microsecond, 3) // fast retransmit on the third dupack
		}
	}
	e.ack(3*rtt+time.Millisecond, 10)
	g := e.graph()
	check(t, g, want{segments: 12, retrans: 1, dups: 1, sacks: 7,
		kinds: map[int]Kind{10: New, 11: Duplicate, 12: Retransmit}})
}

func TestRTO(t *testing.T) {
	e := newExchange(t, pcap.LinkTypeEthernet)
	e.handshake(rtt)
	for i := 1; i <= 5; i++ {
		e.data(rtt+time.Duration(i)*100*time.Microsecond, i)
	}
	// 3, 4 and 5 are lost; the ACK of 2 arrives, then nothing.
	e.ack(2*rtt+200*time.Microsecond, 2)
	// The retransmission timer fires 200 ms later and goes back to
	// SND.UNA; each ACK of the slow start brings the next.
	rto := 2*rtt + 200*ms
	e.data(rto, 3)
	e.ack(rto+rtt, 3)
	e.data(rto+rtt+20*time.Microsecond, 4)
	e.data(rto+rtt+40*time.Microsecond, 5)
	e.ack(rto+2*rtt, 5)
	g := e.graph()
	check(t, g, want{segments: 9, retrans: 3, rtos: 1,
		kinds: map[int]Kind{5: New, 6: RTOLike, 7: Retransmit, 8: Retransmit}})
}

func TestTLPAndDSACK(t *testing.T) {
	e := newExchange(t, pcap.LinkTypeRaw)
	e.handshake(rtt)
	for i := 1; i <= 4; i++ {
		e.data(rtt+time.Duration(i)*100*time.Microsecond, i)
	}
	// Segment 4, the tail, is lost: 1..3 are acknowledged, then silence
	// until the probe at 2 RTT re-sends the highest segment.
	e.ack(2*rtt+300*time.Microsecond, 3)
	probe := 4*rtt + 300*time.Microsecond
	e.data(probe, 4)
	e.ack(probe+rtt, 4)
	// Segment 5 alone arrives, but its ACK is lost: the probe re-sends it
	// (the whole flight, first probe: TLP-like), the receiver reports the
	// copy with a D-SACK below the ACK (RFC 2883 §4.1.1).
	at5 := probe + rtt + 100*time.Microsecond
	e.data(at5, 5)
	probe2 := at5 + 2*rtt
	e.data(probe2, 5)
	e.ack(probe2+rtt, 5, [2]int{5, 5})
	// Then segments 6..9 with 6 lost and 8 duplicated by the network and
	// reported inside the second block (RFC 2883 §4.2.1 style), then the
	// retransmission of 6 after the dupacks.
	at6 := probe2 + rtt + 100*time.Microsecond
	for i := 6; i <= 9; i++ {
		e.data(at6+time.Duration(i-6)*100*time.Microsecond, i)
	}
	back := at6 + rtt
	e.ack(back, 5, [2]int{7, 7})
	e.ack(back+100*time.Microsecond, 5, [2]int{7, 8})
	e.ack(back+150*time.Microsecond, 5, [2]int{8, 8}, [2]int{7, 8})
	e.ack(back+200*time.Microsecond, 5, [2]int{7, 9})
	e.data(back+220*time.Microsecond, 6)
	e.ack(back+rtt, 9)
	g := e.graph()
	// SYN-ACK, 1..4, probe 4, 5, probe 5, 6..9, retransmitted 6.
	check(t, g, want{segments: 13, retrans: 3, tlps: 2, sacks: 6, dsacks: 2,
		kinds: map[int]Kind{5: TLPLike, 6: New, 7: TLPLike, 11: New, 12: Retransmit}})
}

func TestSecondProbeOfOneSegmentIsRTO(t *testing.T) {
	e := newExchange(t, pcap.LinkTypeRaw)
	e.handshake(rtt)
	e.data(rtt+100*time.Microsecond, 1)
	e.data(3*rtt, 1)     // the probe
	e.data(200*ms, 1)    // the timeout
	e.ack(200*ms+rtt, 1) // and at last the ACK
	check(t, e.graph(), want{segments: 4, retrans: 2, tlps: 1, rtos: 1,
		kinds: map[int]Kind{2: TLPLike, 3: RTOLike}})
}

func TestSendIntoAFullWindowIsNotTLP(t *testing.T) {
	e := newExchange(t, pcap.LinkTypeRaw)
	e.handshake(rtt)
	e.data(rtt+100*time.Microsecond, 1)
	e.data(rtt+200*time.Microsecond, 2)
	// The client acknowledges 1 with a window of 7<<7 = 896 bytes, which
	// segment 2 already fills; the sender waits, then probes the window.
	e.ackWin(2*rtt, 1, 7)
	e.data(2*rtt+500*ms, 3)
	check(t, e.graph(), want{segments: 4, kinds: map[int]Kind{3: New}})
}

func TestRTOWithFullWindow(t *testing.T) {
	// The receiver's window (23<<7 bytes, less than the 3 segments sent) is full
	// after a hole at segment 1; the timeout still goes back to SND.UNA.
	e := newExchange(t, pcap.LinkTypeRaw)
	e.handshake(rtt)
	e.ackWin(rtt, 0, 23)
	for i := 1; i <= 3; i++ {
		e.data(rtt+time.Duration(i)*100*time.Microsecond, i)
	}
	e.ackWin(2*rtt, 0, 23, [2]int{2, 2})
	e.ackWin(2*rtt+100*time.Microsecond, 0, 23, [2]int{2, 3})
	e.data(2*rtt+200*ms, 1)
	e.ackWin(3*rtt+200*ms, 3, 23)
	check(t, e.graph(), want{segments: 5, retrans: 1, rtos: 1, sacks: 2, kinds: map[int]Kind{4: RTOLike}})
}

func TestMinSilence(t *testing.T) {
	// On a 400 µs path, a pause of 1 ms (2.5 RTT) before new data is as
	// likely the application's as a probe timer's: TLP-like only when
	// MinSilence allows it.
	const short = 400 * time.Microsecond
	e := newExchange(t, pcap.LinkTypeRaw)
	e.handshake(short)
	e.data(short+10*time.Microsecond, 1)
	e.data(short+20*time.Microsecond, 2)
	e.ack(2*short+10*time.Microsecond, 1)
	e.data(2*short+time.Millisecond, 3)
	c := e.capture()
	for _, tc := range []struct {
		min  time.Duration
		kind Kind
	}{{0, New}, {500 * time.Microsecond, TLPLike}} {
		g, err := c.Analyze(Options{MinSilence: tc.min})
		if err != nil {
			t.Fatal(err)
		}
		if k := g.Data[3].Kind; k != tc.kind || g.RTT != short {
			t.Errorf("MinSilence %v: %v (RTT %v), want %v", tc.min, k, g.RTT, tc.kind)
		}
	}
}
