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
	// The third segment SACKed (RFC 8985 §6.2 Step 4: with DupThresh
	// segments SACKed and no reordering seen, RACK.reo_wnd is zero):
	// segments 1 and 4 were sent before the delivered segment 5 and more
	// than RACK.rtt ago, so both are lost. PRR (RFC 6937) lets the fast
	// retransmission of segment 1 go at once.
	h.send(t, ms(33), sackAt(segN(1), segN(5), segN(6), segN(2), segN(4)))
	h.expect(t, ms(33), dataSeg(src, 1, ACK))
	h.expectNothing(t, ms(33))
	// RFC 5681 §3.2 (2): "ssthresh = max (FlightSize / 2, 2*SMSS)" with
	// nine segments in flight.
	if h.c.recovery != recoveryFast || h.c.ctrl().SlowStartThreshold() != 9*localMSS/2 {
		t.Fatalf("recovery %v ssthresh %d, want %d", h.c.recovery, h.c.ctrl().SlowStartThreshold(), 9*localMSS/2)
	}
	// pipe (5 segments) is not above ssthresh: PRR-SSRB sends
	// min(ssthresh - pipe, ...) = nothing more.
	h.send(t, ms(34), sackAt(segN(1), segN(5), segN(7), segN(2), segN(4)))
	h.expectNothing(t, ms(34))
	// One more delivery takes pipe below ssthresh: segment 4 goes.
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
	if h.c.recovery != recoveryOpen || h.c.snd.UNA != segN(10) || h.c.q.n() != 0 {
		t.Fatalf("after the full ACK: recovery %v, SND.UNA %d, %d records queued", h.c.recovery, h.c.snd.UNA, h.c.q.n())
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
	if h.c.q.sacked != 0 || h.c.q.lost != 0 {
		t.Fatalf("%d bytes SACKed, %d lost after invalid blocks", h.c.q.sacked, h.c.q.lost)
	}
	// Valid blocks: three duplicate ACKs start recovery.
	h.send(t, ms(40), sackAt(segN(0), segN(1), segN(2)))
	h.send(t, ms(41), sackAt(segN(0), segN(1), segN(3)))
	h.expectNothing(t, ms(41))
	h.send(t, ms(42), sackAt(segN(0), segN(1), segN(4)))
	h.expect(t, ms(42), dataSeg(src, 0, ACK))
}

// Reneging (RFC 6675 §5.1, RFC 2018 §8): the receiver may discard data it
// SACKed. When SND.UNA reaches a SACKed segment that the ACK does not
// SACK again, the sender forgets its SACK information, so data SACKed
// before the timeout is sent again when the peer no longer reports it.
func TestSACKRenegingRTO(t *testing.T) {
	h := establishedSACK(t)
	// The timeout, not a probe in recovery, is the subject here.
	h.cfg.DisableTLP = true
	src := sendAll(t, h, ms(20), 10)
	for k := 2; k <= 4; k++ {
		h.send(t, ms(28+k), sackAt(segN(0), segN(1), segN(k)))
	}
	h.expect(t, ms(32), dataSeg(src, 0, ACK))
	h.expectNothing(t, ms(200))
	// The retransmission timer (RTO 200 ms, from the data sent at 20 ms).
	h.expect(t, ms(220), dataSeg(src, 0, ACK))
	h.expectNothing(t, ms(220))
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

// pipe (RFC 6675 §4 SetPipe) on a hand-marked queue: segments 0 and 4
// lost, 1-3 and 5-6 SACKed, 7-9 in flight, then segment 0 retransmitted.
func TestPipeAndMarks(t *testing.T) {
	h := establishedSACK(t)
	sendAll(t, h, ms(20), 10)
	c := h.c
	if c.q.n() != 10 || c.pipe() != 10*localMSS {
		t.Fatalf("%d records, pipe %d", c.q.n(), c.pipe())
	}
	for _, k := range []int{1, 2, 3, 5, 6} {
		c.q.mark(c.q.at(k), txSACKed, 0)
	}
	c.q.mark(c.q.at(0), txLost, 0)
	c.q.mark(c.q.at(4), txLost, 0)
	if got, want := c.pipe(), uint32(3*localMSS); got != want {
		t.Errorf("pipe %d, want %d (segments 7-9)", got, want)
	}
	if i := c.firstLost(); i != 0 {
		t.Errorf("first lost record %d, want 0", i)
	}
	c.retransmitRecord(t0.Add(ms(40)), &h.out, 0, c.sndMSS)
	if got, want := c.pipe(), uint32(4*localMSS); got != want {
		t.Errorf("pipe after the retransmission %d, want %d", got, want)
	}
	if i := c.firstLost(); i != 4 {
		t.Errorf("first lost record %d, want 4", i)
	}
	// A record split in two keeps its marks and the byte counts.
	c.q.split(5, segN(5)+100)
	if c.q.n() != 11 || c.q.sacked != 5*localMSS || !c.q.at(6).has(txSACKed) {
		t.Errorf("after split: %d records, %d SACKed bytes", c.q.n(), c.q.sacked)
	}
	if i := c.q.find(segN(5) + 150); i != 6 {
		t.Errorf("find in the second half: %d", i)
	}
}
