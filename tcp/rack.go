package tcp

import "time"

// RACK-TLP loss detection (RFC 8985), used when SACK was negotiated: a
// segment is deemed lost when a segment sent after it has been delivered
// and more than RACK.rtt + RACK.reo_wnd has passed since it was sent
// (§3.2: "RACK ... uses the notion of time ... to detect losses"). The
// per-segment state is on the retransmission queue (txqueue.go).

// rackState is RACK's per-connection state (RFC 8985 §6.1).
type rackState struct {
	// xmit and endSeq are RACK.xmit_ts and RACK.end_seq: the latest
	// transmission time and end of the most recently sent segment that
	// has been delivered (acknowledged or SACKed).
	xmit   time.Time
	endSeq Value
	// rtt is RACK.rtt: the RTT of that segment's latest transmission.
	rtt time.Duration
	// minRTT is RACK.min_RTT, the minimum RTT over a recent window
	// (minRTTStamp is when it was measured).
	minRTT      time.Duration
	minRTTStamp time.Time
	// fack is RACK.fack: the highest sequence number SACKed or ACKed.
	fack Value
	// reorderingSeen is RACK.reordering_seen: a segment was delivered
	// after a segment sent after it (§6.2 Step 3).
	reorderingSeen bool
	// reoWndMult, reoWndPersist and dsackRound are RACK.reo_wnd_mult,
	// RACK.reo_wnd_persist and RACK.dsack_round (§6.2 Step 4).
	reoWndMult    uint32
	reoWndPersist int
	dsackRound    Value
	dsackRoundSet bool
	// segsSACKed counts the segments SACKed (for the DupThresh rule of
	// §6.2 Step 4).
	segsSACKed int
	valid      bool // a delivered segment has been seen
}

// minRTTWindow is how long a minimum RTT measurement stays valid: RFC
// 8985 §6.1 "min_RTT ... over a recent time window" (Linux uses a
// windowed minimum of five minutes, tcp_min_rtt_wlen).
const minRTTWindow = 5 * time.Minute

// reoWndPersistRounds is the number of recoveries a widened reordering
// window persists (RFC 8985 §6.2 Step 4: "RACK.reo_wnd_persist = 16").
const reoWndPersistRounds = 16

// sentAfter is RACK_sent_after(t1, seq1, t2, seq2) of RFC 8985 §6.2: "If
// t1 > t2 or (t1 == t2 and seq1 > seq2)".
func sentAfter(t1 time.Time, seq1 Value, t2 time.Time, seq2 Value) bool {
	return t1.After(t2) || (t1.Equal(t2) && seq1.GreaterThan(seq2))
}

// rackUpdateMinRTT is Step 1 for one RTT sample.
func (c *Conn) rackUpdateMinRTT(now time.Time, rtt time.Duration) {
	r := &c.rack
	if r.minRTT == 0 || rtt < r.minRTT || now.Sub(r.minRTTStamp) > minRTTWindow {
		r.minRTT, r.minRTTStamp = rtt, now
	}
}

// rackDelivered is Steps 1-3 of RFC 8985 §6.2 for a segment newly
// acknowledged or SACKed. It reports the RTT sample the segment gave (zero
// when it gave none, as for an ambiguous retransmission).
func (c *Conn) rackDelivered(now time.Time, rec *txRecord) time.Duration {
	r := &c.rack
	rtt := now.Sub(rec.xmit)
	if rec.has(txRetrans) {
		// Step 2: "If Segment.retransmitted is TRUE, ... if the ACK's
		// timestamp echo reply ... is earlier than the segment's latest
		// transmission, or if rtt < RACK.min_RTT, then the ACK is for an
		// earlier transmission: return" (Karn's ambiguity).
		if rtt < r.minRTT || (c.ackTSEcr != 0 && int32(c.ackTSEcr-c.tsAt(rec.xmit)) < 0) {
			return 0
		}
	}
	if rtt < 0 {
		return 0
	}
	c.rackUpdateMinRTT(now, rtt)
	r.rtt = rtt
	if !r.valid || sentAfter(rec.xmit, rec.end, r.xmit, r.endSeq) {
		r.xmit, r.endSeq, r.valid = rec.xmit, rec.end, true
	}
	// Step 3: "If Segment.end_seq < RACK.fack, then RACK.reordering_seen
	// = TRUE"; the segment was delivered out of order, not lost.
	if rec.end.LessThan(r.fack) && !rec.has(txRetrans) {
		r.reorderingSeen = true
	} else if rec.end.GreaterThan(r.fack) {
		r.fack = rec.end
	}
	if rtt == 0 {
		return 1 // a zero RTT on a virtual clock is still a sample
	}
	return rtt
}

// rackReoWnd is RACK_update_reo_wnd() of RFC 8985 §6.2 Step 4 (without
// its D-SACK part, done by rackOnDSACK).
func (c *Conn) rackReoWnd() time.Duration {
	r := &c.rack
	if !r.reorderingSeen {
		// "If RACK.reordering_seen is FALSE: If in loss recovery ...
		// return 0 ... Else if RACK.segs_sacked >= DupThresh: return 0"
		if c.recovery != recoveryOpen || r.segsSACKed >= dupThresh {
			return 0
		}
	}
	// "RACK.reo_wnd = RACK.min_RTT / 4 * RACK.reo_wnd_mult;
	// RACK.reo_wnd = min(RACK.reo_wnd, SRTT)"
	w := r.minRTT / 4 * time.Duration(max(r.reoWndMult, 1))
	if c.hasRTT {
		w = min(w, c.srtt)
	}
	return w
}

// rackOnDSACK is the D-SACK part of Step 4: "If RACK.dsack_round is not
// None and SND.UNA >= RACK.dsack_round: RACK.dsack_round = None. If ACK
// has a DSACK option and RACK.dsack_round is None: RACK.reo_wnd_mult += 1;
// RACK.dsack_round = SND.NXT; RACK.reo_wnd_persist = 16".
func (c *Conn) rackOnDSACK(dsack bool) {
	r := &c.rack
	if r.dsackRoundSet && c.snd.UNA.GreaterThanEq(r.dsackRound) {
		r.dsackRoundSet = false
	}
	if dsack && !r.dsackRoundSet {
		r.reoWndMult++
		r.dsackRound, r.dsackRoundSet = c.snd.NXT, true
		r.reoWndPersist = reoWndPersistRounds
		// A D-SACK is evidence of reordering (or of a spurious
		// retransmission the reordering window should have avoided).
		r.reorderingSeen = true
	}
}

// rackOnRecoveryExit is the rest of Step 4: "Else if exiting Fast or RTO
// recovery: RACK.reo_wnd_persist -= 1; If RACK.reo_wnd_persist <= 0:
// RACK.reo_wnd_mult = 1".
func (c *Conn) rackOnRecoveryExit() {
	r := &c.rack
	r.reoWndPersist--
	if r.reoWndPersist <= 0 {
		r.reoWndMult = 1
	}
}

// rackDetectLoss is RACK_detect_loss() of RFC 8985 §6.2 Step 5: mark
// lost every segment sent before the most recently delivered one whose
// reordering window has passed, and return how long until the next one
// would (zero for none): the reordering timer (Step 5, "RACK.reo_wnd
// timer"). It returns the bytes newly marked lost.
func (c *Conn) rackDetectLoss(now time.Time) (time.Duration, uint32) {
	r := &c.rack
	if !r.valid {
		return 0, 0
	}
	reoWnd := c.rackReoWnd()
	var timeout time.Duration
	var lost uint32
	q := &c.q
	for i := 0; i < q.n(); i++ {
		rec := q.at(i)
		if rec.has(txSACKed | txLost) {
			continue
		}
		if !sentAfter(r.xmit, r.endSeq, rec.xmit, rec.end) {
			// Records in sequence order that were never retransmitted
			// were sent in that order: once one is not before RACK's,
			// no later original transmission is. Retransmitted records
			// further up may still be, so go on only while any exist.
			if q.retrans == 0 {
				break
			}
			continue
		}
		// "remaining = Segment.xmit_ts + RACK.rtt + RACK.reo_wnd - Now()"
		remaining := rec.xmit.Add(r.rtt + reoWnd).Sub(now)
		if remaining <= 0 && c.inProbe(rec.start) {
			// A path MTU probe that did not arrive is no congestion
			// signal (RFC 4821 §7.5): it fails quietly.
			c.probeFailed(now)
			continue
		}
		if remaining <= 0 {
			q.mark(rec, txLost, txTLP)
			lost += rec.len()
			if c.stats != nil {
				c.stats.RACKLosses.Add(1)
			}
		} else {
			timeout = max(timeout, remaining)
		}
	}
	return timeout, lost
}

// rackMarkLossesOnRTO is RFC 8985 §6.3: "For each segment, Segment, not
// acknowledged yet: If SEG.seq == SND.UNA OR Segment.xmit_ts <= Now() -
// RACK.rtt - RACK.reo_wnd: Segment.lost = TRUE".
func (c *Conn) rackMarkLossesOnRTO(now time.Time) {
	q := &c.q
	reoWnd := c.rackReoWnd()
	for i := 0; i < q.n(); i++ {
		rec := q.at(i)
		if rec.has(txSACKed | txLost) {
			continue
		}
		if !rec.xmit.After(now.Add(-c.rack.rtt-reoWnd)) || !c.sackOK {
			q.mark(rec, txLost, txTLP)
		} else if i == 0 {
			// "SEG.seq == SND.UNA": the first segment only, not the
			// rest of a super-segment.
			q.mark(c.headSegment(), txLost, txTLP)
		}
	}
}

// Tail loss probes (RFC 8985 §7).

// tlpState is TLP's per-connection state (RFC 8985 §7.1).
type tlpState struct {
	// endSeq is TLP.end_seq, SND.NXT when the probe was sent; active
	// says it is not None.
	endSeq    Value
	active    bool
	isRetrans bool // TLP.is_retrans
}

// wcDelAckT is WCDelAckT of RFC 8985 §7.2: "the worst-case delayed ACK
// timer ... RECOMMENDED ... 200 ms".
const wcDelAckT = 200 * time.Millisecond

// tlpSchedule is TLP_calc_PTO() and the arming rule of RFC 8985 §7.2:
// with SACK, no probe outstanding and data in flight, "PTO = 2 * SRTT"
// (1 s without an RTT sample), "If FlightSize is one segment: PTO +=
// WCDelAckT", and "PTO = min(PTO, RTO)" so that the probe never comes
// after the timeout it tries to avoid.
//
// Unlike RFC 8985 and Linux, the probe is armed in fast recovery too.
// There a lost retransmission is found only once a segment sent after it
// is delivered (§6.2); when PRR has sent nothing since, or that is lost
// as well, the ACKs stop and only the retransmission timer (at least
// MinRTO, 200 ms) would end the stall. A probe of the last segment, two
// round trips after the ACKs stopped, brings the SACK that lets RACK
// mark the retransmission lost. It costs one segment per stall and no
// window reduction (the episode has made its reduction already).
func (c *Conn) tlpSchedule(now time.Time) {
	c.stopLossTimer(tlpTimer)
	if c.lossTimer == rackTimer {
		return // the reordering timer runs: it fires first
	}
	if !c.sackOK || c.cfg.DisableTLP || c.recovery == recoveryLoss || c.tlp.active || c.snd.UNA == c.snd.NXT {
		return
	}
	switch c.state {
	case StateEstablished, StateCloseWait, StateFinWait1, StateClosing, StateLastAck:
	default:
		return
	}
	pto := time.Second
	if c.hasRTT {
		pto = 2 * c.srtt
		if c.snd.NXT.Sub(c.snd.UNA) <= uint32(c.sndMSS) {
			pto += wcDelAckT
		}
		pto = max(pto, 2*clockGranularity)
	}
	at := now.Add(pto)
	if !c.timer.rtx.IsZero() && c.timer.rtx.Before(at) {
		return // the RTO comes first: no probe
	}
	c.timer.loss, c.lossTimer = at, tlpTimer
}

// lossTimerKind says which of RACK's timers the loss timer runs: the
// reordering timer (RFC 8985 §6.2 Step 5) or the probe timeout (§7.2).
// One field serves both, as in Linux, since the reordering timer always
// comes first.
type lossTimerKind uint8

const (
	noLossTimer lossTimerKind = iota
	rackTimer
	tlpTimer
)

// stopLossTimer stops the loss timer if it runs as kind.
func (c *Conn) stopLossTimer(kind lossTimerKind) {
	if c.lossTimer == kind {
		c.timer.loss, c.lossTimer = time.Time{}, noLossTimer
	}
}

// onTLP fires the probe timeout (RFC 8985 §7.3): "If previously unsent
// data is available and the receive window allows, transmit ... one new
// segment"; otherwise retransmit the last segment sent. The RTO is then
// re-armed (§7.3: "the sender MUST arm the RTO timer").
//
// New data goes as two full-sized segments where there is that much,
// not one: when it is the flight's ACKs that were lost, not the flight,
// the probe arrives in order, and a receiver that acknowledges every
// second full-sized segment (RFC 5681 §4.2, RFC 9293 SHLD-19) holds the
// ACK of a single one until its delayed-ACK timer (Linux 40 ms, others
// 200 ms), which the PTO does not allow for with more than one segment
// in flight; a lost retransmission is answered at once, and so is a
// probe beyond a hole. Linux's probe is one buffer of new data, which
// with TSO holds several segments. Seen through the lossy bridge: each
// lost ACK of a one-burst flight cost 44 ms.
func (c *Conn) onTLP(now time.Time, out Output) {
	if c.recovery == recoveryLoss || c.tlp.active || c.q.n() == 0 {
		return
	}
	dataEnd := c.sndHead.Add(uint32(c.sndBuf.Len()))
	isRetrans := true
	if c.snd.NXT.LessThan(dataEnd) && c.snd.WND > c.snd.NXT.Sub(c.snd.UNA) {
		room := min(int(dataEnd.Sub(c.snd.NXT)), 2*c.sndMSS, int(c.snd.WND-c.snd.NXT.Sub(c.snd.UNA)))
		for k := 0; room > 0 && k < 2; k++ {
			n := room
			if c.gsoLimit(out) < room {
				n = min(room, c.sndMSS)
			}
			fin := c.shutWrite && c.snd.NXT.Add(uint32(n)) == dataEnd
			c.sendNew(now, out, n, fin)
			room -= n
		}
		isRetrans = false
	} else {
		i := c.q.n() - 1
		rec := c.q.at(i)
		if rec.has(txSACKed) {
			return // the last segment arrived: nothing to probe with
		}
		if rec.len() > uint32(c.sndMSS) {
			i = c.q.split(i, rec.end.Add(-uint32(c.sndMSS)))
		}
		c.retransmitRecord(now, out, i, c.sndMSS)
		c.q.mark(c.q.at(i), txTLP, 0)
	}
	c.tlp = tlpState{endSeq: c.snd.NXT, active: true, isRetrans: isRetrans}
	if c.stats != nil {
		c.stats.TLPProbes.Add(1)
	}
	c.timer.rtx = now.Add(c.currentRTO())
}

// tlpProcessAck is TLP_process_ack() of RFC 8985 §7.4.2: a probe episode
// ends when the ACK covers TLP.end_seq. A D-SACK says the original and
// the probe both arrived: no loss. An ACK beyond TLP.end_seq without one
// says the probe repaired a loss, and "the sender MUST invoke ... a
// congestion control response equivalent to fast recovery" (a
// reduction, done at once since the loss is already repaired). A bare
// duplicate ACK at TLP.end_seq ends the episode with no inference.
func (c *Conn) tlpProcessAck(now time.Time, ack Value, advanced, dsack, sacked bool) {
	if !c.tlp.active || ack.LessThan(c.tlp.endSeq) {
		return
	}
	switch {
	case !c.tlp.isRetrans || dsack:
		c.tlp.active = false
	case ack.GreaterThan(c.tlp.endSeq):
		c.tlp.active = false
		if c.recovery == recoveryOpen {
			c.ctrl().OnCongestionEvent(now, c.snd.NXT.Sub(c.snd.UNA), c.sndMSS)
			c.ctrl().OnRecoveryExit(now, c.sndMSS)
		}
	case !advanced && !sacked:
		c.tlp.active = false
	}
}
