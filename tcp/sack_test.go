package tcp

import (
	"testing"
	"time"
)

// sackAt is an ACK from the peer acknowledging ack and SACKing the
// ranges given as pairs of edges.
func sackAt(ack Value, edges ...Value) sg {
	o := &Options{WindowScale: -1, NumSACK: len(edges) / 2}
	for i := 0; i+1 < len(edges); i += 2 {
		o.SACK[i/2] = SACKBlock{Left: edges[i], Right: edges[i+1]}
	}
	return sg{flags: ACK, seq: remoteISS + 1, ack: ack, win: 65535, opts: o}
}

// seg returns the sequence number of segment k of a bulk write that
// starts at SND.UNA = localISS+1 (full-sized segments).
func segN(k int) Value { return localISS + 1 + Value(k*localMSS) }

// dataSeg is segment k of pattern(...) as the core sends it.
func dataSeg(src []byte, k int, flags Flags) sg {
	return sg{flags: flags, seq: segN(k), ack: remoteISS + 1, data: src[k*localMSS : (k+1)*localMSS]}
}

// sendAll writes n full segments and expects all of them in the initial
// window (ten segments, RFC 6928), the last one pushed.
func sendAll(t *testing.T, h *harness, at time.Duration, n int) []byte {
	t.Helper()
	src := pattern(n * localMSS)
	h.c.Write(t0.Add(at), src, &h.out)
	for k := 0; k < n; k++ {
		f := ACK
		if k == n-1 {
			f = PSHACK
		}
		h.expect(t, at, dataSeg(src, k, f))
	}
	h.expectNothing(t, at)
	return src
}

// Two holes in one window are both repaired in the first round trip of
// recovery, each by exactly one retransmission of exactly the hole, and
// no retransmission timeout fires (RFC 6675 §5; NewReno, RFC 6582, would
// repair the second hole one round trip later, on the partial ACK).
func TestSACKRecoveryTwoHoles(t *testing.T) {
	h := establishedSACK(t)
	src := sendAll(t, h, ms(20), 10)
	// Segment 0 arrives; 1 is lost; 2 and 3 arrive; 4 is lost; 5-9 arrive.
	h.send(t, ms(30), sackAt(segN(1)))
	h.expectNothing(t, ms(30))
	h.send(t, ms(31), sackAt(segN(1), segN(2), segN(3)))
	h.expectNothing(t, ms(31))
	h.send(t, ms(32), sackAt(segN(1), segN(2), segN(4)))
	h.expectNothing(t, ms(32))
	// The third duplicate ACK (RFC 6675 §5 step (4)): recovery, and the
	// hole at HighACK+1 goes again. Segment 4 is not yet deemed lost
	// (IsLost: one segment SACKed above it).
	h.send(t, ms(33), sackAt(segN(1), segN(5), segN(6), segN(2), segN(4)))
	h.expect(t, ms(33), dataSeg(src, 1, ACK))
	h.expectNothing(t, ms(33))
	// (4.2) "ssthresh = cwnd = (FlightSize / 2)", FlightSize at the
	// first duplicate ACK: nine segments.
	if !h.c.inRecovery || h.c.cwnd != 9*localMSS/2 {
		t.Fatalf("recovery %v cwnd %d, want %d", h.c.inRecovery, h.c.cwnd, 9*localMSS/2)
	}
	h.send(t, ms(34), sackAt(segN(1), segN(5), segN(7), segN(2), segN(4)))
	h.expectNothing(t, ms(34))
	// Three segments SACKed above segment 4: IsLost, and cwnd - pipe
	// allows it (NextSeg rule 1).
	h.send(t, ms(35), sackAt(segN(1), segN(5), segN(8), segN(2), segN(4)))
	h.expect(t, ms(35), dataSeg(src, 4, ACK))
	h.expectNothing(t, ms(35))
	h.send(t, ms(36), sackAt(segN(1), segN(5), segN(9), segN(2), segN(4)))
	h.send(t, ms(37), sackAt(segN(1), segN(5), segN(10), segN(2), segN(4)))
	h.expectNothing(t, ms(37))
	// The retransmissions arrive: a partial ACK, then the full ACK.
	h.send(t, ms(43), sackAt(segN(4), segN(5), segN(10)))
	h.expectNothing(t, ms(43))
	h.send(t, ms(45), sackAt(segN(10)))
	h.expectNothing(t, ms(45))
	if h.c.inRecovery || h.c.snd.UNA != segN(10) || h.c.sacked.Len() != 0 {
		t.Fatalf("after the full ACK: recovery %v, SND.UNA %d, scoreboard %d ranges", h.c.inRecovery, h.c.snd.UNA, h.c.sacked.Len())
	}
	if n := h.cfg.Stats.Timeouts.Load(); n != 0 {
		t.Fatalf("%d timeouts", n)
	}
	if n := h.c.Info().Retransmits; n != 2 {
		t.Fatalf("%d retransmissions, want 2", n)
	}
}

// SACK blocks at or below SND.UNA (D-SACKs, RFC 2883) and beyond SND.MAX
// are ignored (RFC 2018 §4, RFC 6675 §2): they neither count as
// duplicate ACKs nor enter the scoreboard.
func TestSACKBlocksOutsideWindowIgnored(t *testing.T) {
	h := establishedSACK(t)
	src := sendAll(t, h, ms(20), 10)
	for i := 0; i < 4; i++ {
		h.send(t, ms(30+i), sackAt(segN(0), segN(10), segN(12), localISS-100, localISS+1))
		h.expectNothing(t, ms(30+i))
	}
	if h.c.sacked.Len() != 0 || h.c.dupAcks != 0 {
		t.Fatalf("scoreboard %d ranges, DupAcks %d after invalid blocks", h.c.sacked.Len(), h.c.dupAcks)
	}
	// Valid blocks: three duplicate ACKs start recovery.
	h.send(t, ms(40), sackAt(segN(0), segN(1), segN(2)))
	h.send(t, ms(41), sackAt(segN(0), segN(1), segN(3)))
	h.expectNothing(t, ms(41))
	h.send(t, ms(42), sackAt(segN(0), segN(1), segN(4)))
	h.expect(t, ms(42), dataSeg(src, 0, ACK))
}

// Reneging (RFC 6675 §5.1, RFC 2018 §8): the receiver may discard data it
// SACKed. On a retransmission timeout the sender expunges the scoreboard,
// so data SACKed before the timeout is sent again when the peer no longer
// reports it.
func TestSACKRenegingRTO(t *testing.T) {
	h := establishedSACK(t)
	src := sendAll(t, h, ms(20), 10)
	for k := 2; k <= 4; k++ {
		h.send(t, ms(28+k), sackAt(segN(0), segN(1), segN(k)))
	}
	h.expect(t, ms(32), dataSeg(src, 0, ACK))
	h.expectNothing(t, ms(200))
	// The retransmission timer (RTO 200 ms, from the data sent at 20 ms).
	h.expect(t, ms(220), dataSeg(src, 0, ACK))
	h.expectNothing(t, ms(220))
	if h.c.sacked.Len() != 0 {
		t.Fatal("scoreboard kept across the timeout")
	}
	// The peer reneged: it acknowledges segment 0 and SACKs nothing.
	// Slow start goes back over segments 1 and 2, SACKed before.
	h.send(t, ms(230), sackAt(segN(1)))
	h.expect(t, ms(230), dataSeg(src, 1, ACK))
	h.expect(t, ms(230), dataSeg(src, 2, ACK))
	h.expectNothing(t, ms(230))
}

// After a retransmission timeout, SACK information that arrives again is
// used (RFC 6675 §5.1: "a SACK TCP sender SHOULD utilize all SACK
// information made available during the loss recovery following an
// RTO"): going back over the window skips what the peer still SACKs.
func TestSACKAfterRTOSendsOnlyHoles(t *testing.T) {
	h := establishedSACK(t)
	src := sendAll(t, h, ms(20), 10)
	for k := 2; k <= 4; k++ {
		h.send(t, ms(28+k), sackAt(segN(0), segN(1), segN(k)))
	}
	h.expect(t, ms(32), dataSeg(src, 0, ACK))
	h.expect(t, ms(220), dataSeg(src, 0, ACK))
	// Segment 0 arrives; the peer holds 1-3 and, SACKed now, 5-9 (4 was
	// lost). Going back from SND.UNA, only the hole is sent: segment 4,
	// then SND.NXT skips the SACKed rest.
	h.send(t, ms(230), sackAt(segN(4), segN(5), segN(10)))
	h.expect(t, ms(230), dataSeg(src, 4, ACK))
	h.expectNothing(t, ms(230))
	h.send(t, ms(240), sackAt(segN(10)))
	h.expectNothing(t, ms(240))
	if n := h.c.Info().Retransmits; n != 3 {
		t.Fatalf("%d retransmissions, want 3", n)
	}
}

// IsLost and SetPipe (RFC 6675 §4) on a hand-made scoreboard: segments 0
// and 4 missing, 1-3 and 5-6 SACKed, 7-9 in flight, segment 0
// retransmitted (HighRxt at the end of segment 0).
func TestSACKIsLostSetPipe(t *testing.T) {
	h := establishedSACK(t)
	sendAll(t, h, ms(20), 10)
	c := h.c
	c.sacked.Add(segN(1), segN(4))
	c.sacked.Add(segN(5), segN(7))
	c.highRxt = segN(1)
	for _, tc := range []struct {
		name string
		seq  Value
		lost bool
	}{
		{"segment 0: 5 segments SACKed above", segN(0), true},
		{"segment 4: 2 segments SACKed above, not more than (DupThresh-1)*SMSS", segN(4), false},
		{"segment 8: nothing SACKed above", segN(8), false},
	} {
		if got := c.isLost(tc.seq); got != tc.lost {
			t.Errorf("%s: IsLost %v, want %v", tc.name, got, tc.lost)
		}
	}
	// Pipe: segment 0 lost but retransmitted (1), segment 4 not lost (1),
	// segments 7-9 (3).
	if got, want := c.setPipe(), uint32(5*localMSS); got != want {
		t.Errorf("pipe %d, want %d", got, want)
	}
	// NextSeg rule 1 finds nothing (segment 0 is below HighRxt, segment 4
	// is not lost); rule 3 returns segment 4, up to the SACKed range.
	if _, _, ok := c.nextSeg(true); ok {
		t.Error("rule 1 returned a segment")
	}
	if seq, n, ok := c.nextSeg(false); !ok || seq != segN(4) || n != localMSS {
		t.Errorf("rule 3: %d+%d %v, want segment 4", seq, n, ok)
	}
	c.sacked.TrimFront(segN(2))
	if c.sacked.Len() != 2 || c.sacked.r[0].start != segN(2) || c.sacked.Bytes() != 4*localMSS {
		t.Errorf("TrimFront: %+v", c.sacked)
	}
}
