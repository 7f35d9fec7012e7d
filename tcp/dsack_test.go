package tcp

import (
	"testing"
	"time"
)

// sackReceiver returns an established harness with SACK-Permitted
// negotiated (and timestamps when ts is set) and the first sequence number
// of the peer's data.
func sackReceiver(t *testing.T, ts bool) (*harness, Value) {
	t.Helper()
	cfg := testConfig()
	cfg.SACKPermitted, cfg.Timestamps = true, ts
	h := newHarness(cfg)
	h.dial(t, 0)
	syn := h.expect(t, 0, sg{flags: SYN, seq: localISS, opts: &Options{MSS: localMSS, WindowScale: -1, SACKPermitted: true, Timestamp: ts}})
	var so Options
	syn.Options(&so)
	opts := &Options{MSS: 1460, WindowScale: -1, SACKPermitted: true}
	if ts {
		opts.Timestamp, opts.TSVal, opts.TSEcr = true, 1, so.TSVal
	}
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535, opts: opts})
	h.expect(t, ms(10), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1})
	return h, remoteISS + 1
}

// data sends n bytes at offset off from base at time at.
func data(t *testing.T, h *harness, at time.Duration, base Value, off, n int) {
	t.Helper()
	h.send(t, at, sg{flags: ACK, seq: base + Value(off), ack: localISS + 1, win: 65535, data: make([]byte, n)})
}

// expectSACK checks that the next segment, sent by time at, is an ACK of
// base+ack carrying exactly the SACK blocks given as offsets from base
// (pairs of left and right edges).
func expectSACK(t *testing.T, h *harness, at time.Duration, base Value, ack int, edges ...int) {
	t.Helper()
	got := h.expect(t, at, sg{flags: ACK, seq: localISS + 1, ack: base + Value(ack)})
	var o Options
	got.Options(&o)
	want := len(edges) / 2
	ok := o.NumSACK == want
	for i := 0; ok && i < want; i++ {
		ok = o.SACK[i] == SACKBlock{base + Value(edges[2*i]), base + Value(edges[2*i+1])}
	}
	if !ok {
		gotEdges := make([]int, 0, 2*o.NumSACK)
		for _, b := range o.SACK[:o.NumSACK] {
			gotEdges = append(gotEdges, int(b.Left-base), int(b.Right-base))
		}
		t.Fatalf("at %v: ack %d SACK %v, want %v", at, int(got.Ack()-base), gotEdges, edges)
	}
}

func dsacksSent(h *harness) uint64 { return h.cfg.Stats.DSACKsSent.Load() }

// RFC 2883 §4.1.1, "Reporting a Duplicate Segment": the ACKs of two
// segments are lost, the sender retransmits the first; the ACK reports
// it in a D-SACK block below the cumulative ACK, at once, and only once.
// Offsets are the RFC's numbers less 3000.
func TestDSACKDuplicateBelowRcvNxt(t *testing.T) {
	h, base := sackReceiver(t, false)
	data(t, h, ms(20), base, 0, 500)
	data(t, h, ms(21), base, 500, 500)
	expectSACK(t, h, ms(61), base, 1000) // delayed ACK, "(ACK dropped)"
	data(t, h, ms(300), base, 0, 500)
	expectSACK(t, h, ms(300), base, 1000, 0, 500)
	if n := dsacksSent(h); n != 1 {
		t.Fatalf("DSACKsSent %d, want 1", n)
	}
	// The next ACK does not repeat it (§4 (2)).
	data(t, h, ms(310), base, 1000, 500)
	h.expect(t, ms(350), sg{flags: ACK, seq: localISS + 1, ack: base + 1500, noOpts: true})
	if n := dsacksSent(h); n != 1 {
		t.Fatalf("DSACKsSent %d, want 1", n)
	}
}

// RFC 2883 §4.1.2, "Reporting an Out-of-Order Segment and a Duplicate
// Segment": the D-SACK block comes first, then the out-of-order block.
func TestDSACKWithOutOfOrderBlock(t *testing.T) {
	h, base := sackReceiver(t, false)
	data(t, h, ms(20), base, 0, 500)
	data(t, h, ms(21), base, 500, 500)
	expectSACK(t, h, ms(61), base, 1000)
	data(t, h, ms(100), base, 1500, 500) // 1000-1499 is lost
	expectSACK(t, h, ms(100), base, 1000, 1500, 2000)
	data(t, h, ms(300), base, 0, 500)
	expectSACK(t, h, ms(300), base, 1000, 0, 500, 1500, 2000)
}

// RFC 2883 §4.1.3, "Reporting a Duplicate of an Out-of-Order Segment": the
// D-SACK block is followed by the (larger) block that holds it (§4 (4)),
// then by the other blocks.
func TestDSACKInsideOutOfOrderBlock(t *testing.T) {
	h, base := sackReceiver(t, false)
	data(t, h, ms(20), base, 0, 500)
	data(t, h, ms(21), base, 500, 500)
	expectSACK(t, h, ms(61), base, 1000)
	data(t, h, ms(100), base, 1500, 500)
	expectSACK(t, h, ms(100), base, 1000, 1500, 2000)
	data(t, h, ms(101), base, 2000, 500)
	expectSACK(t, h, ms(101), base, 1000, 1500, 2500)
	data(t, h, ms(102), base, 3000, 500)
	expectSACK(t, h, ms(102), base, 1000, 3000, 3500, 1500, 2500)
	// The network duplicates 2000-2499.
	data(t, h, ms(103), base, 2000, 500)
	expectSACK(t, h, ms(103), base, 1000, 2000, 2500, 1500, 2500, 3000, 3500)
	// Reported once: the next ACK carries the plain blocks.
	data(t, h, ms(104), base, 4000, 500)
	expectSACK(t, h, ms(104), base, 1000, 4000, 4500, 3000, 3500, 1500, 2500)
	if n := dsacksSent(h); n != 1 {
		t.Fatalf("DSACKsSent %d, want 1", n)
	}
}

// RFC 2883 §4.2.1, "Reporting a Single Duplicate Subsegment": a
// retransmission that repeats data received before and brings new data
// advances the ACK and reports the repeated part. Offsets are the RFC's
// numbers less 500.
func TestDSACKPartialDuplicate(t *testing.T) {
	h, base := sackReceiver(t, false)
	data(t, h, ms(20), base, 0, 500)
	expectSACK(t, h, ms(60), base, 500)
	data(t, h, ms(100), base, 1500, 500) // 500-999 delayed, 1000-1499 lost
	expectSACK(t, h, ms(100), base, 500, 1500, 2000)
	data(t, h, ms(101), base, 500, 500)
	expectSACK(t, h, ms(101), base, 1000, 1500, 2000)
	data(t, h, ms(300), base, 500, 1000)
	expectSACK(t, h, ms(300), base, 2000, 500, 1000)
}

// A segment that repeats several separate parts reports the lowest one
// (RFC 2883 §4 (1): one "duplicate contiguous sequence"; Linux does the
// same since its fix a041f70 of tcp_ofo_queue).
func TestDSACKLowestOfSeveral(t *testing.T) {
	h, base := sackReceiver(t, false)
	data(t, h, ms(20), base, 500, 500)
	expectSACK(t, h, ms(20), base, 0, 500, 1000)
	data(t, h, ms(21), base, 1500, 500)
	expectSACK(t, h, ms(21), base, 0, 1500, 2000, 500, 1000)
	data(t, h, ms(22), base, 0, 2000)
	expectSACK(t, h, ms(22), base, 2000, 500, 1000)
}

// A retransmission dropped by PAWS (RFC 7323 §5.3 R1) is a duplicate too,
// and with timestamps at most three blocks fit.
func TestDSACKPAWSAndThreeBlocks(t *testing.T) {
	h, base := sackReceiver(t, true)
	ts := func(v uint32) *Options { return &Options{WindowScale: -1, Timestamp: true, TSVal: v} }
	send := func(at time.Duration, off, n int, tsv uint32) {
		h.send(t, at, sg{flags: ACK, seq: base + Value(off), ack: localISS + 1, win: 65535, data: make([]byte, n), opts: ts(tsv)})
	}
	send(ms(20), 0, 500, 10)
	h.expect(t, ms(60), sg{flags: ACK, seq: localISS + 1, ack: base + 500})
	for i, off := range []int{1000, 2000, 3000, 4000} {
		send(ms(21+i), off, 500, uint32(11+i))
		h.out.segs = nil
	}
	// An old copy of 0-499 with an older TSval fails PAWS.
	send(ms(30), 0, 500, 5)
	expectSACK(t, h, ms(30), base, 500, 0, 500, 4000, 4500, 3000, 3500)
	if n := h.cfg.Stats.DroppedPAWS.Load(); n != 1 {
		t.Fatalf("DroppedPAWS %d", n)
	}
	send(ms(31), 5000, 500, 20)
	expectSACK(t, h, ms(31), base, 500, 5000, 5500, 4000, 4500, 3000, 3500)
}

// Without SACK negotiated there is no D-SACK.
func TestDSACKNeedsSACK(t *testing.T) {
	h := established(t)
	base := remoteISS + 1
	data(t, h, ms(20), base, 0, 500)
	h.expect(t, ms(60), sg{flags: ACK, seq: localISS + 1, ack: base + 500})
	data(t, h, ms(100), base, 0, 500)
	h.expect(t, ms(100), sg{flags: ACK, seq: localISS + 1, ack: base + 500, noOpts: true})
	if n := dsacksSent(h); n != 0 {
		t.Fatalf("DSACKsSent %d", n)
	}
}

// RFC 2018 §4's example (§5, the 2nd, 4th, 6th and 8th segments dropped):
// the block of the segment that triggered the ACK comes first, then the
// most recently reported blocks. Offsets are the RFC's numbers less 5000.
func TestSACKBlockOrderRFC2018(t *testing.T) {
	h, base := sackReceiver(t, false)
	data(t, h, ms(20), base, 0, 500)
	expectSACK(t, h, ms(60), base, 500)
	data(t, h, ms(100), base, 1000, 500)
	expectSACK(t, h, ms(100), base, 500, 1000, 1500)
	data(t, h, ms(101), base, 2000, 500)
	expectSACK(t, h, ms(101), base, 500, 2000, 2500, 1000, 1500)
	data(t, h, ms(102), base, 3000, 500)
	expectSACK(t, h, ms(102), base, 500, 3000, 3500, 2000, 2500, 1000, 1500)
	// "the 4th packet is received out of order"
	data(t, h, ms(103), base, 1500, 500)
	expectSACK(t, h, ms(103), base, 500, 1000, 2500, 3000, 3500)
	// "the 2nd segment is received"
	data(t, h, ms(104), base, 500, 500)
	expectSACK(t, h, ms(104), base, 2500, 3000, 3500)
}

// The blocks follow the order of arrival, not of sequence numbers: a
// lower block that arrived later is reported before a higher one.
func TestSACKBlockOrderMostRecentFirst(t *testing.T) {
	h, base := sackReceiver(t, false)
	data(t, h, ms(20), base, 3000, 500)
	expectSACK(t, h, ms(20), base, 0, 3000, 3500)
	data(t, h, ms(21), base, 1000, 500)
	expectSACK(t, h, ms(21), base, 0, 1000, 1500, 3000, 3500)
	data(t, h, ms(22), base, 2000, 500)
	expectSACK(t, h, ms(22), base, 0, 2000, 2500, 1000, 1500, 3000, 3500)
	data(t, h, ms(23), base, 5000, 500)
	data(t, h, ms(23), base, 7000, 500)
	h.out.segs = h.out.segs[1:]
	expectSACK(t, h, ms(23), base, 0, 7000, 7500, 5000, 5500, 2000, 2500, 1000, 1500)
	// Extending an old block brings it to the front.
	data(t, h, ms(24), base, 3500, 500)
	expectSACK(t, h, ms(24), base, 0, 3000, 4000, 7000, 7500, 5000, 5500, 2000, 2500)
}
