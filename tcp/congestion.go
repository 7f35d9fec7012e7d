package tcp

import "time"

// Loss recovery. One mechanism serves every connection: segments deemed
// lost are marked on the retransmission queue (txqueue.go) and the send
// loop (sendData) retransmits marked segments before new data, as far as
// the sending budget allows. What differs is who marks and who sets the
// budget:
//
//   - With SACK, RACK-TLP (RFC 8985, rack.go) marks by time; without SACK,
//     the third duplicate ACK marks the first segment and every partial ACK
//     the next (NewReno, RFC 6582 §3.2); a retransmission timeout marks
//     what RFC 8985 §6.3 says.
//   - In fast recovery the budget is Proportional Rate Reduction's
//     (RFC 6937, prr.go); otherwise it is cwnd - pipe (RFC 6675 §5 step
//     C), with cwnd from the connection's CongestionControl (cc.go).
//   - D-SACKs (RFC 2883), timestamps (RFC 3522) and F-RTO (RFC 5682) undo
//     reductions that turn out spurious (undo.go).

// recoveryState is the sender's loss-recovery state.
type recoveryState uint8

const (
	// recoveryOpen: no loss being repaired.
	recoveryOpen recoveryState = iota
	// recoveryFast: fast recovery (RFC 5681 §3.2, RFC 6675 §5) after a
	// loss found by RACK or by duplicate ACKs, with PRR.
	recoveryFast
	// recoveryLoss: after a retransmission timeout, until the data
	// outstanding then is acknowledged (RFC 6675 §5.1, RFC 8985 §6.3).
	recoveryLoss
)

// initialWindow is the initial congestion window: ten segments, the
// increase over RFC 5681 §3.1 (IW of at most 4 segments) that RFC 6928
// allows. RFC 6928 §2 also caps IW at 14600 bytes; that cap equals ten
// segments at MTU 1500 and is not applied at larger MTUs (in-memory and
// jumbo-frame links), where it would shrink IW to two segments.
func initialWindow(mss int) uint32 {
	return uint32(10 * mss)
}

// dupThresh is DupThresh of RFC 5681 §3.2, RFC 6675 §2 and RFC 8985 §6.2.
const dupThresh = 3

// pipe is RFC 6675's pipe, "the sender's estimate of the number of bytes
// outstanding in the network": FlightSize less what is SACKed and what is
// deemed lost and not yet retransmitted. Without SACK each duplicate ACK
// stands for one segment that left the network (renoSACKed), the
// estimate RFC 5681 §3.2 step 4's window inflation makes.
func (c *Conn) pipe() uint32 {
	flight := c.snd.NXT.Sub(c.snd.UNA)
	if c.lossState == nil {
		return flight
	}
	out := c.q.sacked + c.q.lost + c.renoSACKed
	if out >= flight {
		return 0
	}
	return flight - out
}

// cwnd is the congestion window the connection is using now: PRR's
// pipe + sndcnt in fast recovery, the controller's otherwise.
func (c *Conn) cwnd() uint32 {
	if c.recovery == recoveryFast {
		return c.prr.cwnd
	}
	return c.ctrl().Window()
}

// processAck is the ESTABLISHED-state ACK processing of RFC 9293
// §3.10.7.4 fifth step: "If SND.UNA < SEG.ACK =< SND.NXT, then set SND.UNA
// <- SEG.ACK. Any segments on the retransmission queue that are thereby
// entirely acknowledged are removed." plus the window update, the RTT
// sample (RFC 6298, RFC 7323 §4), the SACK scoreboard (RFC 6675 §5: "Upon
// the receipt of any ACK containing SACK information, the scoreboard MUST
// be updated"), loss detection, undo, the retransmission timer (RFC 6298
// §5) and congestion control.
func (c *Conn) processAck(now time.Time, seg *inSeg, out Output) {
	ack := seg.ACK
	if c.lossState == nil && ack == c.snd.UNA && c.snd.UNA == c.snd.MAX && seg.opts.NumSACK == 0 {
		c.processIdleAck(seg)
		return
	}
	c.lossInit()
	oldWND := c.snd.WND
	oldUNA := c.snd.UNA
	flightBefore := c.snd.NXT.Sub(c.snd.UNA)
	c.ackFlight = flightBefore
	mss := uint32(c.sndMSS)
	c.ackTSEcr = 0
	if c.tsOK && seg.hasTS {
		c.ackTSEcr = seg.tsEcr // zero stands for none (RFC 7323 §3.2)
	}
	// The peer answers: RFC 1122 §4.2.2.17 "As long as the receiving TCP
	// continues to send acknowledgments in response to the probe segments,
	// the sending TCP MUST allow the connection to stay open". An ACK that
	// keeps the window shut counts as an answer.
	c.probes = 0
	var d delivery
	advanced := ack.GreaterThan(c.snd.UNA)
	if advanced {
		if ack.GreaterThan(c.sndHead) {
			k := min(int(ack.Sub(c.sndHead)), c.sndBuf.Len())
			c.sndBuf.Discard(k)
			c.sndBuf.release()
			c.sndHead = c.sndHead.Add(uint32(k))
			c.bytesOut += uint64(k)
		}
		c.snd.UNA = ack
		if c.snd.NXT.LessThan(ack) {
			c.snd.NXT = ack
		}
		if c.snd.MAX.LessThan(ack) { // a window probe's octet was taken
			c.snd.MAX = ack
		}
		c.ackRecords(now, ack, &d)
		c.retries = 0
		c.persistBackoff = 0
	}
	dsack := false
	if c.sackOK && seg.opts.NumSACK > 0 {
		dsack = c.sackRecords(now, &seg.opts, ack, &d)
	}
	if advanced {
		c.sampleRTT(now, seg)
		c.checkReneging(&seg.opts)
	}
	if d.rtt > 0 && !c.rttFromAck {
		// RTT samples from SACKed or acknowledged segments that were
		// never retransmitted (Karn's rule holds, RFC 6298 §3), when the
		// ACK gave no timestamp sample.
		c.updateRTT(d.rtt)
	}
	// "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be updated.
	// If (SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK)),
	// set SND.WND <- SEG.WND, set SND.WL1 <- SEG.SEQ, and set SND.WL2 <-
	// SEG.ACK." And when the ACK advanced: see windowFresh.
	if ack.GreaterThanEq(c.snd.UNA) && c.windowFresh(seg.SEQ, ack, advanced) {
		c.updateWindow(seg.SEQ, ack, seg.WND<<c.snd.shift)
	}
	// RFC 5681 §2 DUPLICATE ACKNOWLEDGMENT: outstanding data, no data, no
	// SYN or FIN, SEG.ACK = SND.UNA and an unchanged window.
	dup := !advanced && c.snd.NXT != oldUNA && c.snd.WND > 0 && len(seg.payload) == 0 &&
		!seg.has(FlagSYN|FlagFIN) && c.snd.WND == oldWND
	if !c.sackOK {
		c.renoAccount(dup, advanced, ack.Sub(oldUNA), &d)
	}
	if c.sackOK {
		c.rackOnDSACK(dsack)
	}
	c.undoOnAck(now, seg, advanced, dsack, &d)
	c.tlpProcessAck(now, ack, advanced, dsack, d.sacked > 0)

	// Loss detection.
	markedBefore := c.q.marked
	if c.sackOK {
		c.rackRun(now)
	} else {
		c.renoDetectLoss(dup, advanced)
	}
	// Recovery transitions. The reduction is computed from FlightSize
	// (RFC 5681 §3.2 (2)) but "additional data sent in limited transmit
	// MUST NOT be included in this calculation": FlightSize is capped at
	// the window that was in use.
	exited := false
	switch {
	case c.recovery == recoveryOpen && c.q.lost > 0:
		c.enterRecovery(now, min(flightBefore, c.ctrl().Window()))
	case c.recovery != recoveryOpen && c.snd.UNA.GreaterThanEq(c.recoverPoint):
		exited = c.recovery == recoveryFast
		c.exitRecovery(now)
	}
	// Congestion control: PRR in fast recovery (RFC 6937 §3.1 "On every
	// ACK during recovery"), the controller otherwise, including the slow
	// start that follows a timeout.
	if c.recovery == recoveryFast {
		// RFC 9937's safe ACK: SND.UNA advanced and no further loss.
		c.prrOnAck(d.delivered, advanced && c.q.marked == markedBefore)
	} else if advanced && d.delivered > 0 && !exited {
		// The window grows on ACKs of new data only (RFC 5681 §3.1: "cwnd
		// += min (N, SMSS)" for "N ... the number of previously
		// unacknowledged bytes acknowledged in the incoming ACK").
		c.ctrl().OnAck(AckSample{
			Now: now, Acked: d.delivered, Flight: flightBefore,
			// Grow only a window that is in use (RFC 7661 §4.2).
			AppLimited: flightBefore+2*mss < c.ctrl().Window(),
			RTT:        d.rtt, MinRTT: c.rack.minRTT, SRTT: c.srtt,
			UNA: c.snd.UNA, NXT: c.snd.NXT, MSS: c.sndMSS,
		})
	}
	if advanced {
		c.growSendBuffer()
	}
	// RFC 6298 (5.2): "When all outstanding data has been acknowledged,
	// turn off the retransmission timer." (5.3): "When an ACK is received
	// that acknowledges new data, restart the retransmission timer".
	switch {
	case c.snd.UNA == c.snd.MAX:
		c.timer.rtx = time.Time{}
		c.stopLossTimer(rackTimer)
	case advanced:
		c.timer.rtx = now.Add(c.currentRTO())
	}
	c.tlpSchedule(now)
}

// processIdleAck is processAck for a connection that has sent nothing
// yet beyond its SYN (no lossState) and an ACK that acknowledges nothing
// new and carries no SACK: of RFC 9293 §3.10.7.4's fifth step only the
// window update applies, and nothing is outstanding for the loss
// machinery to look at, so that none is allocated for it.
func (c *Conn) processIdleAck(seg *inSeg) {
	c.probes = 0 // an answer (RFC 1122 §4.2.2.17), as in processAck
	c.ackFlight = 0
	if c.windowFresh(seg.SEQ, seg.ACK, false) {
		c.updateWindow(seg.SEQ, seg.ACK, seg.WND<<c.snd.shift)
	}
	// RFC 6298 (5.2): nothing is outstanding, so no timer runs.
	c.timer.rtx = time.Time{}
	c.stopLossTimer(rackTimer)
	c.stopLossTimer(tlpTimer)
}

// delivery sums what one ACK delivered.
type delivery struct {
	delivered uint32        // bytes newly acknowledged or SACKed (PRR's DeliveredData)
	sacked    uint32        // of which SACKed
	rtt       time.Duration // an RTT sample from a never-retransmitted segment
	// origBeforeRTO: a segment sent before the last retransmission
	// timeout and never retransmitted was delivered (F-RTO, RFC 5682).
	origBeforeRTO bool
}

// note accounts for record rec, newly delivered at now.
func (c *Conn) note(now time.Time, rec *txRecord, n uint32, d *delivery) {
	d.delivered += n
	rtt := time.Duration(0)
	if c.sackOK {
		rtt = c.rackDelivered(now, rec)
	}
	if !rec.has(txRetrans) {
		if rtt == 0 {
			rtt = now.Sub(rec.xmit)
		}
		if rtt > 0 {
			d.rtt = rtt
		}
		if c.recovery == recoveryLoss && rec.has(txBeforeRTO) {
			d.origBeforeRTO = true
		}
	}
}

// ackRecords removes from the retransmission queue what the cumulative
// acknowledgment ack covers.
func (c *Conn) ackRecords(now time.Time, ack Value, d *delivery) {
	q := &c.q
	for q.n() > 0 {
		rec := q.at(0)
		if rec.end.LessThanEq(ack) {
			if !rec.has(txSACKed) {
				c.note(now, rec, rec.len(), d)
			}
			q.popFront()
			continue
		}
		if rec.start.LessThan(ack) {
			if !rec.has(txSACKed) {
				// What was delivered ends at ack: RACK's end_seq and
				// fack must not claim the rest of a super-segment.
				part := *rec
				part.end = ack
				c.note(now, &part, ack.Sub(rec.start), d)
			}
			q.trimFront(ack)
		}
		break
	}
}

// sackRecords is Update() of RFC 6675 §4 for the SACK blocks of the
// segment being processed: "each octet that is ... SACKed should be marked
// accordingly in the scoreboard". It reports whether the first block was
// a D-SACK (RFC 2883 §4: a first block below the cumulative
// acknowledgment ack, or inside the second block, reports a duplicate).
func (c *Conn) sackRecords(now time.Time, o *Options, ack Value, d *delivery) bool {
	first := 0
	dsack := false
	// The test is against the segment's own acknowledgment number, not
	// SND.UNA: an ACK overtaken by a later one still carries SACK blocks
	// that were above its own SEG.ACK.
	if b := o.SACK[0]; b.Left.LessThan(b.Right) &&
		(b.Left.LessThan(ack) ||
			(o.NumSACK > 1 && o.SACK[1].Left.LessThanEq(b.Left) && b.Right.LessThanEq(o.SACK[1].Right))) {
		dsack, first = true, 1
		c.onDSACK(b)
	}
	q := &c.q
	for k := first; k < o.NumSACK; k++ {
		b := o.SACK[k]
		// RFC 2018 §4, RFC 6675 §2: only blocks within (SND.UNA, SND.NXT]
		// describe data in flight; blocks beyond SND.NXT are bogus.
		if !b.Left.LessThan(b.Right) || !b.Right.GreaterThan(c.snd.UNA) || b.Right.GreaterThan(c.snd.NXT) {
			continue
		}
		left := Max(b.Left, c.snd.UNA)
		i := q.find(left)
		if i == q.n() {
			continue
		}
		if q.at(i).start.LessThan(left) {
			i = q.split(i, left)
		}
		for ; i < q.n(); i++ {
			rec := q.at(i)
			if !rec.start.LessThan(b.Right) {
				break
			}
			if rec.end.GreaterThan(b.Right) {
				q.split(i, b.Right)
				rec = q.at(i)
			}
			if rec.has(txSACKed) {
				continue
			}
			c.note(now, rec, rec.len(), d)
			d.sacked += rec.len()
			q.mark(rec, txSACKed, txLost|txTLP)
			// Segments, not records: a SACKed part of a super-segment
			// counts the pieces it holds (RFC 8985 §6.2 Step 4's
			// DupThresh test).
			c.rack.segsSACKed += c.pieces(int(rec.len()))
		}
	}
	return dsack
}

// checkReneging notices that the peer discarded data it had SACKed: SND.UNA
// reached a SACKed segment that this ACK does not SACK again. RFC 2018 §8
// lets a receiver renege; the sender then forgets its SACK information
// (RFC 6675 §5.1) and, in loss recovery, resends what it held SACKed.
func (c *Conn) checkReneging(o *Options) {
	if c.q.n() == 0 || !c.q.at(0).has(txSACKed) {
		return
	}
	head := c.q.at(0).start
	for k := 0; k < o.NumSACK; k++ {
		if head.InWindow(o.SACK[k].Left, o.SACK[k].Right.Sub(o.SACK[k].Left)) {
			return
		}
	}
	for i := 0; i < c.q.n(); i++ {
		rec := c.q.at(i)
		if rec.has(txSACKed) {
			set := txFlags(0)
			if c.recovery == recoveryLoss {
				set = txLost
			}
			c.q.mark(rec, set, txSACKed)
		}
	}
	c.rack.segsSACKed = 0
}

// rackRun runs RACK's loss detection after an ACK (RFC 8985 §6.2 Step 5)
// and arms its reordering timer. It costs nothing on a clean path:
// without SACKed or retransmitted segments nothing can be deemed lost.
func (c *Conn) rackRun(now time.Time) {
	c.stopLossTimer(rackTimer)
	if c.q.sacked == 0 && c.q.retrans == 0 && c.recovery == recoveryOpen {
		return
	}
	if timeout, _ := c.rackDetectLoss(now); timeout > 0 {
		// The reordering timer takes the loss timer from a probe: it
		// fires sooner (RACK.reo_wnd <= SRTT < PTO).
		c.timer.loss, c.lossTimer = now.Add(timeout), rackTimer
	}
}

// onRACKTimer is the reordering timer of RFC 8985 §6.2 Step 5: "When the
// reordering timer expires ... RACK_detect_loss_and_arm_timer()", then
// repair what was found.
func (c *Conn) onRACKTimer(now time.Time, out Output) {
	c.rackRun(now)
	if c.recovery == recoveryOpen && c.q.lost > 0 {
		c.enterRecovery(now, min(c.snd.NXT.Sub(c.snd.UNA), c.ctrl().Window()))
		c.prrOnAck(0, false)
	}
}

// renoAccount is the duplicate-ACK bookkeeping without SACK: each
// duplicate ACK stands for one segment delivered (RFC 5681 §3.2 step 4
// inflates cwnd by one SMSS for it; here pipe shrinks instead), and a
// cumulative ACK consumes those estimates.
func (c *Conn) renoAccount(dup, advanced bool, acked uint32, d *delivery) {
	mss := uint32(c.sndMSS)
	switch {
	case dup:
		if c.renoSACKed+mss < c.snd.NXT.Sub(c.snd.UNA) {
			c.renoSACKed += mss
			d.delivered += mss
		}
	case advanced:
		// The ACK covers the segments the duplicates stood for but one,
		// the segment that was missing (Linux's tcp_remove_reno_sacks).
		used := min(c.renoSACKed, acked-min(acked, mss))
		c.renoSACKed -= used
		d.delivered -= min(d.delivered, used)
	}
}

// renoDetectLoss is loss detection without SACK: RFC 5681 §3.2 step 2
// (the third duplicate ACK deems the first unacknowledged segment lost),
// and in fast recovery RFC 6582 §3.2 step 5, a partial ACK: "retransmit
// the first unacknowledged segment".
func (c *Conn) renoDetectLoss(dup, advanced bool) {
	switch {
	case advanced && c.recovery == recoveryOpen:
		c.dupAcks = 0
	case dup && c.recovery == recoveryOpen:
		c.dupAcks++
	}
	if c.q.n() == 0 {
		return
	}
	head := c.q.at(0)
	switch c.recovery {
	case recoveryOpen:
		// RFC 6582 step 2: "If the Cumulative Acknowledgment field didn't
		// cover more than recover, there's no fast retransmit."
		if c.dupAcks == dupThresh && c.snd.UNA.GreaterThanEq(c.recoverPoint) && !head.has(txRetrans) {
			c.q.mark(c.headSegment(), txLost, 0)
		}
	case recoveryFast:
		if advanced && c.snd.UNA.LessThan(c.recoverPoint) {
			c.q.mark(c.headSegment(), txLost, 0)
		}
	}
}

// headSegment returns the record of the first unacknowledged segment,
// cutting the oldest record at SendMSS if it is longer (a super-segment,
// or a segment sent before the MSS dropped): what "the first
// unacknowledged segment" of RFC 5681 §3.2 and RFC 6582 §3.2 means.
func (c *Conn) headSegment() *txRecord {
	if rec := c.q.at(0); rec.len() > uint32(c.sndMSS) {
		c.q.split(0, rec.start.Add(uint32(c.sndMSS)))
	}
	return c.q.at(0)
}

// enterRecovery starts fast recovery: RFC 6675 §5 step 4 "(4.1)
// RecoveryPoint = HighData", the controller's reduction (4.2), and PRR's
// initialization (RFC 9937: "ssthresh = CongCtrlAlg(); prr_delivered = 0;
// prr_out = 0; RecoverFS = pipe", where RFC 6937 had FlightSize).
func (c *Conn) enterRecovery(now time.Time, flight uint32) {
	c.recovery = recoveryFast
	c.recoverPoint = c.snd.NXT
	c.undoBegin(now)
	c.ctrl().OnCongestionEvent(now, flight, c.sndMSS)
	c.prr = prrState{recoverFS: max(c.pipe(), 1)}
	if c.stats != nil {
		c.stats.FastRetransmits.Add(1)
	}
}

// exitRecovery ends fast or timeout recovery once RecoveryPoint is
// acknowledged (RFC 6675 §5 (A), RFC 6582 §3.2 step 5 full acknowledgment;
// RFC 6937 §3.1 "cwnd = ssthresh" at the end of fast recovery).
func (c *Conn) exitRecovery(now time.Time) {
	if c.recovery == recoveryFast {
		c.ctrl().OnRecoveryExit(now, c.sndMSS)
	}
	c.recovery = recoveryOpen
	c.dupAcks = 0
	c.renoSACKed = 0
	c.frto = frtoOff
	if c.sackOK {
		c.rackOnRecoveryExit()
	}
}

// onRetransmitTimeout handles an expired retransmission timer in a
// synchronized state. The controller reacts (RFC 5681 §3.1 (4):
// "ssthresh = max (FlightSize / 2, 2*SMSS)", "cwnd = LW"; on a backoff of
// the same series ssthresh is held and cwnd stays one segment), RACK marks
// the losses (RFC 8985 §6.3) and the earliest is retransmitted (RFC 6298
// (5.4)); slow start follows until what was outstanding is acknowledged.
func (c *Conn) onRetransmitTimeout(now time.Time, out Output) {
	mss := c.sndMSS
	flight := c.snd.NXT.Sub(c.snd.UNA)

	if c.retries == 1 {
		c.undoBegin(now)
		c.frtoBegin(now)
		c.ctrl().OnRTO(now, flight, mss)
	} else {
		c.ctrl().Restart(now, uint32(mss), mss)
		c.frto = frtoOff
		if c.sackOK {
			// A second timeout with SACKed data outstanding: the peer
			// may have reneged. RFC 6675 §5.1: "a TCP sender SHOULD
			// expunge the SACK information gathered from a receiver
			// upon a retransmission timeout"; done on the second, since
			// the first usually finds the SACKs true.
			for i := 0; i < c.q.n(); i++ {
				c.q.mark(c.q.at(i), 0, txSACKed)
			}
			c.rack.segsSACKed = 0
		}
	}
	c.recovery = recoveryLoss
	c.recoverPoint = c.snd.NXT
	for i := 0; i < c.q.n(); i++ {
		c.q.at(i).flags |= txBeforeRTO
	}
	c.dupAcks = 0
	c.renoSACKed = 0
	c.tlp.active = false
	c.timer.loss, c.timer.rtx = time.Time{}, time.Time{}
	c.rttTiming = false
	c.rackMarkLossesOnRTO(now)
	// RFC 6298 (5.4): "Retransmit the earliest segment that has not been
	// acknowledged by the TCP receiver", whatever cwnd and pipe say; the
	// rest follows as the window allows. A shut peer window stops it: the
	// persist timer probes instead (RFC 1122 §4.2.2.17).
	if c.q.n() > 0 && c.snd.WND > 0 && c.q.at(0).has(txLost) {
		c.retransmitRecord(now, out, 0, c.sndMSS)
	}
	c.sendData(now, out, true)
	// (5.6) "Start the retransmission timer, such that it expires after
	// RTO seconds", when something is outstanding.
	if c.timer.rtx.IsZero() && c.pipe() > 0 {
		c.timer.rtx = now.Add(c.currentRTO())
	}
}

// windowFresh reports whether the window of a segment with sequence
// number seq and acknowledgment ack is newer than the one SND.WND holds:
// RFC 9293 §3.10.7.4's test, "SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and
// SND.WL2 =< SEG.ACK)", or an ACK that advanced SND.UNA.
//
// The second clause is not the RFC's. A segment whose ACK is beyond every
// ACK seen so far was sent after all of them (the peer's RCV.NXT only
// grows), so its window is the peer's newest, whatever its sequence
// number: a retransmission that fills a hole carries a SEG.SEQ below the
// out-of-order segment that set SND.WL1. The RFC's test alone would keep
// the older SND.WND, and since SND.WND is an offset from SND.UNA, the new
// SND.UNA would carry it to a right edge the peer never offered; the
// sender would send beyond the peer's window (RFC 9293 §3.8.6) and then
// send its bare ACKs at the edge it believes in (ackSeq), below the
// peer's RCV.NXT. Linux's tcp_may_update_window takes an advancing ACK's
// window the same way; BSD keeps the edge instead (snd_wnd -= acked).
func (c *Conn) windowFresh(seq, ack Value, advanced bool) bool {
	return advanced || c.snd.WL1.LessThan(seq) || (c.snd.WL1 == seq && c.snd.WL2.LessThanEq(ack))
}

// updateWindow sets SND.WND (bytes), SND.WL1 and SND.WL2 and tracks
// MAX.SND.WND (RFC 5961 §5).
func (c *Conn) updateWindow(seq, ack Value, wnd uint32) {
	c.snd.WND, c.snd.WL1, c.snd.WL2 = wnd, seq, ack
	c.snd.maxWND = max(c.snd.maxWND, wnd)
	if wnd > 0 {
		c.timer.persist = time.Time{}
		c.persistBackoff = 0
	}
}

// growSendBuffer lets the send buffer hold two congestion windows, up to
// Config.MaxSendBufferSize: one in flight and one ready to go when the
// ACKs come back (Linux's tcp_sndbuf_expand). It never shrinks the buffer.
func (c *Conn) growSendBuffer() {
	if c.sndFixed || c.cfg.MaxSendBufferSize <= c.sndBuf.Cap() {
		return
	}
	want := min(2*int(c.cwnd()), c.cfg.MaxSendBufferSize)
	if want > c.sndBuf.Cap() {
		c.sndBuf.SetSize(want)
	}
}

// SetSendBufferSize sets the size of the send buffer to n bytes (not less
// than the data it holds) and stops it growing with the window, as
// SO_SNDBUF does on Linux.
func (c *Conn) SetSendBufferSize(n int) error {
	if n <= 0 {
		return ErrBufferSize
	}
	c.sndFixed = true
	c.sndBuf.SetSize(max(n, c.sndBuf.Len()))
	return nil
}

// SendBufferSize returns the size of the send buffer: the configured size,
// or what the window grew it to.
func (c *Conn) SendBufferSize() int { return c.sndBuf.Cap() }
