package tcp

import "testing"

// establishedSACK is established with SACK-Permitted negotiated.
func establishedSACK(t *testing.T) *harness {
	t.Helper()
	cfg := testConfig()
	cfg.SACKPermitted = true
	h := newHarness(cfg)
	h.dial(t, 0)
	opts := &Options{MSS: localMSS, WindowScale: -1, SACKPermitted: true}
	h.expect(t, 0, sg{flags: SYN, seq: localISS, opts: opts})
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535, opts: &Options{MSS: 1460, WindowScale: -1, SACKPermitted: true}})
	h.expect(t, ms(10), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1})
	h.expectState(t, StateEstablished)
	return h
}

// sackAck is a duplicate ACK of SND.UNA = localISS+1 reporting
// [left, right) received.
func sackAck(left, right Value) sg {
	o := &Options{WindowScale: -1, NumSACK: 1}
	o.SACK[0] = SACKBlock{Left: left, Right: right}
	return sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535, opts: o}
}

// drainCount empties the output and counts the data segments that start
// at seq.
func (h *harness) drainCount(seq Value) int {
	n := 0
	for _, s := range h.out.segs {
		if s.Seq() == seq && len(s.Payload()) > 0 {
			n++
		}
	}
	h.out.segs = nil
	return n
}

// A lost fast retransmission is detected from SACK blocks and sent again,
// without waiting for the retransmission timer (RFC 8985's principle): once
// DupThresh segments sent after the retransmission are SACKed while the
// retransmitted segment is still missing.
func TestLostRetransmissionDetected(t *testing.T) {
	h := establishedSACK(t)
	const mss = localMSS
	first := localISS + 1
	h.c.Write(t0.Add(ms(20)), pattern(60*mss), &h.out)
	if got := h.drainCount(first); got != 1 {
		t.Fatalf("first segment sent %d times", got)
	}
	at := ms(30)
	// The first segment is lost; the next three arrive: three duplicate
	// ACKs with SACK blocks start fast retransmit.
	for k := 1; k <= 3; k++ {
		h.send(t, at, sackAck(first+mss, first+Value(k+1)*mss))
		at += ms(1)
	}
	if got := h.drainCount(first); got != 1 {
		t.Fatalf("fast retransmit sent the first segment %d times, want 1", got)
	}
	mark := h.c.snd.MAX
	// The retransmission is lost too. Everything else arrives, segment
	// by segment, each answered by a duplicate ACK.
	right := first + 4*mss
	for {
		if right.GreaterThan(h.c.snd.MAX) {
			t.Fatalf("sender stalled at SND.MAX %d (mark %d)", h.c.snd.MAX-first, mark-first)
		}
		h.send(t, at, sackAck(first+mss, right))
		at += ms(1)
		got := h.drainCount(first)
		// RFC 8985 §6.2: in recovery with no reordering seen RACK.reo_wnd
		// is zero, so the first segment sent after the retransmission
		// that is SACKed shows it lost.
		lost := right.GreaterThan(mark)
		switch {
		case !lost && got != 0:
			t.Fatalf("first segment resent with SACK up to mark+%d: too early", int32(right.Sub(mark)))
		case lost && got != 1:
			t.Fatalf("first segment sent %d times with SACK up to mark+%d, want 1", got, int32(right.Sub(mark)))
		}
		if lost {
			break
		}
		right = right.Add(mss)
	}
	if h.cfg.Stats.Timeouts.Load() != 0 {
		t.Fatal("a timeout fired")
	}
	// The second retransmission arrives: the cumulative ACK covers all.
	h.send(t, at, sg{flags: ACK, seq: remoteISS + 1, ack: right, win: 65535})
	if h.c.recovery != recoveryOpen {
		t.Fatal("still in recovery after the full ACK")
	}
}

// Without SACK the same loss waits for the retransmission timer (NewReno,
// RFC 6582, cannot tell a lost retransmission from a slow one).
func TestLostRetransmissionWithoutSACK(t *testing.T) {
	h := established(t)
	const mss = localMSS
	first := localISS + 1
	h.c.Write(t0.Add(ms(20)), pattern(60*mss), &h.out)
	h.drainCount(first)
	at := ms(30)
	for k := 1; k <= 12; k++ {
		h.send(t, at, sg{flags: ACK, seq: remoteISS + 1, ack: first, win: 65535})
		at += ms(1)
	}
	if got := h.drainCount(first); got != 1 {
		t.Fatalf("first segment resent %d times, want 1 (fast retransmit only)", got)
	}
}

// Under 1% random loss most retransmission timeouts come from lost fast
// retransmissions; with SACK the sender detects those and timeouts become
// rare. The figures are deterministic (seeded wire, virtual time).
func TestTransferOnePercentLossTimeouts(t *testing.T) {
	timeouts := map[bool]uint64{}
	for _, sack := range []bool{false, true} {
		var drops int
		for seed := uint64(1); seed <= 4; seed++ {
			cfg := DefaultConfig()
			cfg.SACKPermitted = sack
			st := new(Stats)
			cfg.Stats = st
			p := newPair(t, cfg, seed)
			p.loss = 0.01
			transfer(t, p, 8<<20)
			drops += p.drops
			timeouts[sack] += st.Timeouts.Load()
		}
		t.Logf("SACK %v: %d drops, %d timeouts", sack, drops, timeouts[sack])
	}
	if timeouts[true] >= timeouts[false] {
		t.Fatalf("timeouts with SACK %d, without %d", timeouts[true], timeouts[false])
	}
}
