package tcp

import "testing"

// A fast retransmission caused by reordering is shown spurious by the
// D-SACK of its duplicate (RFC 2883 §4.1.2, RFC 3708 §3): the reduction
// is undone (RFC 4015 §3.2) and RACK widens its reordering window
// (RFC 8985 §6.2 Step 4).
func TestDSACKUndoesSpuriousFastRetransmit(t *testing.T) {
	h := establishedSACK(t)
	src := sendAll(t, h, ms(20), 10)
	// Segment 0 is delayed; 1-3 arrive first.
	for k := 2; k <= 4; k++ {
		h.send(t, ms(28+k), sackAt(segN(0), segN(1), segN(k)))
	}
	h.expect(t, ms(32), dataSeg(src, 0, ACK))
	if h.c.recovery != recoveryFast || h.c.ctrl().SlowStartThreshold() == MaxCongestionWindow {
		t.Fatalf("no reduction: recovery %v ssthresh %d", h.c.recovery, h.c.ctrl().SlowStartThreshold())
	}
	mult := h.c.rack.reoWndMult
	// The original arrives, then the retransmission: the receiver
	// reports the duplicate in a D-SACK below its cumulative ACK.
	h.send(t, ms(33), sackAt(segN(4)))
	h.send(t, ms(34), sackAt(segN(4), segN(0), segN(1)))
	if got := h.cfg.Stats.DSACKsReceived.Load(); got != 1 {
		t.Fatalf("DSACKsReceived %d, want 1", got)
	}
	if got := h.cfg.Stats.Undos.Load(); got != 1 {
		t.Fatalf("Undos %d, want 1", got)
	}
	if h.c.recovery != recoveryOpen || h.c.ctrl().SlowStartThreshold() != MaxCongestionWindow || h.c.ctrl().Window() < 10*localMSS {
		t.Fatalf("after undo: recovery %v cwnd %d ssthresh %d", h.c.recovery, h.c.ctrl().Window(), h.c.ctrl().SlowStartThreshold())
	}
	if h.c.rack.reoWndMult != mult+1 || !h.c.rack.reorderingSeen {
		t.Fatalf("RACK.reo_wnd_mult %d (was %d), reordering seen %v", h.c.rack.reoWndMult, mult, h.c.rack.reorderingSeen)
	}
}

// A D-SACK that does not cover every retransmission of the episode undoes
// nothing: one retransmission repaired a real loss.
func TestDSACKPartialNoUndo(t *testing.T) {
	h := establishedSACK(t)
	sendAll(t, h, ms(20), 10)
	// Segments 0 and 4 are lost, 1-3 and 5-9 arrive.
	for k := 2; k <= 4; k++ {
		h.send(t, ms(28+k), sackAt(segN(0), segN(1), segN(k)))
	}
	h.send(t, ms(33), sackAt(segN(0), segN(5), segN(6), segN(1), segN(4)))
	h.send(t, ms(34), sackAt(segN(0), segN(5), segN(7), segN(1), segN(4)))
	h.send(t, ms(35), sackAt(segN(0), segN(5), segN(8), segN(1), segN(4)))
	retrans := h.c.Info().Retransmits
	if retrans != 2 {
		t.Fatalf("%d retransmissions, want 2 (segments 0 and 4)", retrans)
	}
	// Segment 0's original was only delayed (D-SACK), segment 4 was lost.
	h.send(t, ms(40), sackAt(segN(4), segN(0), segN(1), segN(5), segN(10)))
	h.send(t, ms(41), sackAt(segN(10)))
	if got := h.cfg.Stats.Undos.Load(); got != 0 {
		t.Fatalf("Undos %d, want 0", got)
	}
	if h.c.ctrl().SlowStartThreshold() == MaxCongestionWindow {
		t.Fatal("reduction undone")
	}
}
