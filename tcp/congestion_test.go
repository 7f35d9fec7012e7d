package tcp

import (
	"bytes"
	"testing"
)

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// RFC 6928: the initial window is 10 segments (14600 bytes at MSS 1460);
// RFC 5681 slow start grows it per ACK.
func TestInitialWindowAndSlowStart(t *testing.T) {
	h := established(t)
	data := pattern(40 * localMSS)
	h.c.Write(t0.Add(ms(20)), data, &h.out)
	if got := len(h.out.segs); got != 10 {
		t.Fatalf("%d segments in the initial window, want 10", got)
	}
	for i := 0; i < 10; i++ {
		h.expect(t, ms(20), sg{flags: ACK, seq: localISS + 1 + Value(i*localMSS), ack: remoteISS + 1, data: data[i*localMSS : (i+1)*localMSS]})
	}
	// An ACK of two segments grows cwnd by min(N, SMSS) = SMSS (RFC 5681
	// §3.1) and frees two: three new segments go out.
	h.send(t, ms(30), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1 + 2*localMSS, win: 65535})
	if got := len(h.out.segs); got != 3 {
		t.Fatalf("%d segments after the first ACK, want 3", got)
	}
	if got := h.c.Info().CongestionWindow; got != 11*localMSS {
		t.Fatalf("cwnd %d", got)
	}
}

// RFC 5681 §3.2 and RFC 6582: three duplicate ACKs retransmit the lost
// segment and enter fast recovery; a partial ACK retransmits the next
// hole; the full ACK ends recovery with cwnd = ssthresh (PRR).
func TestFastRetransmitNewReno(t *testing.T) {
	h := established(t)
	data := pattern(10 * localMSS)
	h.c.Write(t0.Add(ms(20)), data, &h.out)
	h.out.segs = nil
	seg := func(i int) []byte { return data[i*localMSS : (i+1)*localMSS] }
	dup := sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535}
	h.send(t, ms(30), dup)
	h.send(t, ms(31), dup)
	h.expectNothing(t, ms(31))
	h.send(t, ms(32), dup)
	h.expect(t, ms(32), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1, data: seg(0)})
	info := h.c.Info()
	if info.SlowStartThreshold != 5*localMSS {
		t.Fatalf("ssthresh %d, want %d", info.SlowStartThreshold, 5*localMSS)
	}
	// A fourth duplicate: each stands for a segment delivered, but pipe
	// (seven segments) is still above ssthresh and PRR (RFC 6937)
	// sends in proportion: ceil(2 * 5/10) segments, already spent.
	h.send(t, ms(33), dup)
	h.expectNothing(t, ms(33))
	// Partial ACK: segments 0-2 arrived, 3 was lost too (RFC 6582 §3.2
	// step 5: "retransmit the first unacknowledged segment"); pipe is
	// now below ssthresh and PRR-SSRB lets it go.
	h.send(t, ms(40), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1 + 3*localMSS, win: 65535})
	h.expect(t, ms(40), sg{flags: ACK, seq: localISS + 1 + 3*localMSS, ack: remoteISS + 1, data: seg(3)})
	// Full ACK: RFC 6937 §3.1 ends recovery with cwnd = ssthresh.
	h.send(t, ms(50), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1 + 10*localMSS, win: 65535})
	info = h.c.Info()
	if info.CongestionWindow != 5*localMSS || info.SlowStartThreshold != 5*localMSS {
		t.Fatalf("after recovery cwnd %d ssthresh %d", info.CongestionWindow, info.SlowStartThreshold)
	}
	if got := h.cfg.Stats.FastRetransmits.Load(); got != 1 {
		t.Fatalf("FastRetransmits %d", got)
	}
	h.expectNothing(t, ms(50))
	if !h.c.NextDeadline().IsZero() {
		t.Fatal("timer running with nothing outstanding")
	}
}

// A retransmission timeout collapses cwnd to one segment and goes back to
// SND.UNA (RFC 5681 §3.1, RFC 6298 (5.4)).
func TestTimeoutCollapsesWindow(t *testing.T) {
	h := established(t)
	data := pattern(10 * localMSS)
	h.c.Write(t0.Add(ms(20)), data, &h.out)
	h.out.segs = nil
	h.expect(t, ms(220), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1, data: data[:localMSS]})
	h.expectNothing(t, ms(220))
	if got := h.c.Info(); got.CongestionWindow != localMSS || got.SlowStartThreshold != 5*localMSS {
		t.Fatalf("cwnd %d ssthresh %d", got.CongestionWindow, got.SlowStartThreshold)
	}
	// The peer had everything but the first segment: one ACK covers all.
	h.send(t, ms(230), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1 + 10*localMSS, win: 65535})
	h.expectNothing(t, ms(230))
	if !h.c.NextDeadline().IsZero() {
		t.Fatal("timer running with nothing outstanding")
	}
}

// Nagle (RFC 9293 §3.7.4): a small segment waits while an earlier small
// segment is unacknowledged; SetNoDelay sends at once.
func TestNagleAndNoDelay(t *testing.T) {
	h := established(t)
	h.c.Write(t0.Add(ms(20)), []byte("a"), &h.out)
	h.expect(t, ms(20), sg{flags: PSHACK, seq: localISS + 1, ack: remoteISS + 1, data: []byte("a")})
	h.c.Write(t0.Add(ms(21)), []byte("b"), &h.out)
	h.c.Write(t0.Add(ms(22)), []byte("c"), &h.out)
	h.expectNothing(t, ms(22))
	h.send(t, ms(30), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 2, win: 65535})
	h.expect(t, ms(30), sg{flags: PSHACK, seq: localISS + 2, ack: remoteISS + 1, data: []byte("bc")})
	h.c.SetNoDelay(true)
	h.c.Write(t0.Add(ms(31)), []byte("d"), &h.out)
	h.expect(t, ms(31), sg{flags: PSHACK, seq: localISS + 4, ack: remoteISS + 1, data: []byte("d")})
	// A full segment is never held.
	h.c.SetNoDelay(false)
	full := pattern(localMSS)
	h.c.Write(t0.Add(ms(32)), full, &h.out)
	h.expect(t, ms(32), sg{flags: PSHACK, seq: localISS + 5, ack: remoteISS + 1, data: full})
}

// Sender silly-window avoidance (RFC 9293 §3.8.6.2.1): a usable window
// smaller than a segment and than half the largest window is not used
// until the override (persist) timer fires.
func TestSenderSWSAvoidance(t *testing.T) {
	h := established(t)
	h.send(t, ms(20), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 100})
	data := pattern(1000)
	h.c.Write(t0.Add(ms(30)), data, &h.out)
	h.expectNothing(t, ms(229))
	h.expect(t, ms(230), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1, data: data[:100]})
	// The window opens: the rest goes in one segment.
	h.send(t, ms(240), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 101, win: 65535})
	h.expect(t, ms(240), sg{flags: PSHACK, seq: localISS + 101, ack: remoteISS + 1, data: data[100:]})
}

// Out-of-order data is held in the receive ring (at most maxOOORanges
// separate ranges) and delivered once the holes fill.
func TestOutOfOrderReassembly(t *testing.T) {
	h := established(t)
	data := pattern(300)
	base := remoteISS + 1
	put := func(at int, from, to int) {
		h.send(t, ms(at), sg{flags: ACK, seq: base + Value(from), ack: localISS + 1, win: 65535, data: data[from:to]})
	}
	// Nine separate ranges; the ninth does not fit.
	for i := 0; i < 9; i++ {
		put(20+i, 20+30*i, 25+30*i)
		h.expect(t, ms(20+i), sg{flags: ACK, seq: localISS + 1, ack: base})
	}
	if got := h.cfg.Stats.DroppedOutOfOrder.Load(); got != 1 {
		t.Fatalf("DroppedOutOfOrder %d", got)
	}
	if h.c.Readable() {
		t.Fatal("readable with a hole at RCV.NXT")
	}
	put(40, 0, 100)   // fills through 100, absorbing ranges at 20, 50, 80
	put(41, 150, 300) // beyond a hole at 100..150
	put(42, 100, 150) // fills the last hole
	got := make([]byte, 400)
	n, err := h.c.Read(t0.Add(ms(43)), got, &h.out)
	if err != nil || !bytes.Equal(got[:n], data) {
		t.Fatalf("Read %d, %v; data differs", n, err)
	}
	// The last in-order segment filled a hole: its ACK went at once.
	var last Segment
	for len(h.out.segs) > 0 {
		last, _ = h.out.pop()
	}
	if last == nil || last.Ack() != base+300 {
		t.Fatalf("last ACK %v", last)
	}
}

// A FIN that arrives beyond a hole is processed once the hole fills.
func TestOutOfOrderFIN(t *testing.T) {
	h := established(t)
	h.send(t, ms(20), sg{flags: FINACK, seq: remoteISS + 4, ack: localISS + 1, win: 65535, data: []byte("def")})
	h.expect(t, ms(20), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1})
	h.expectState(t, StateEstablished)
	h.send(t, ms(21), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535, data: []byte("abc")})
	h.expect(t, ms(21), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 8})
	h.expectState(t, StateCloseWait)
	buf := make([]byte, 10)
	n, _ := h.c.Read(t0.Add(ms(22)), buf, &h.out)
	if string(buf[:n]) != "abcdef" {
		t.Fatalf("read %q", buf[:n])
	}
}

// RFC 3042 Limited Transmit: each of the first two duplicate ACKs sends one
// new segment; ssthresh at the third ignores them (RFC 5681 §3.2 (2)).
// New ACKs between never count as duplicates.
func TestLimitedTransmit(t *testing.T) {
	h := established(t)
	data := pattern(20 * localMSS)
	h.c.Write(t0.Add(ms(20)), data, &h.out)
	if len(h.out.segs) != 10 {
		t.Fatalf("%d segments", len(h.out.segs))
	}
	h.out.segs = nil
	seg := func(i int) []byte { return data[i*localMSS : (i+1)*localMSS] }
	// Three new ACKs (one segment each): cwnd grows to 13; 13 in flight.
	for i := 1; i <= 3; i++ {
		h.send(t, ms(20+i), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1 + Value(i*localMSS), win: 65535})
	}
	h.out.segs = nil
	una := localISS + 1 + 3*localMSS
	dup := sg{flags: ACK, seq: remoteISS + 1, ack: una, win: 65535}
	h.send(t, ms(30), dup)
	h.expect(t, ms(30), sg{flags: ACK, seq: localISS + 1 + 16*localMSS, ack: remoteISS + 1, data: seg(16)})
	h.expectNothing(t, ms(30))
	h.send(t, ms(31), dup)
	h.expect(t, ms(31), sg{flags: ACK, seq: localISS + 1 + 17*localMSS, ack: remoteISS + 1, data: seg(17)})
	h.expectNothing(t, ms(31))
	h.send(t, ms(32), dup)
	h.expect(t, ms(32), sg{flags: ACK, seq: una, ack: remoteISS + 1, data: seg(3)})
	if got := h.c.Info().SlowStartThreshold; got != 13*localMSS/2 {
		t.Fatalf("ssthresh %d, want FlightSize/2 without limited transmit = %d", got, 13*localMSS/2)
	}
}
