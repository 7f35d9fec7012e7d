package tcp

import "time"

// initialWindow is the initial congestion window: ten segments, the
// increase over RFC 5681 §3.1 (IW of at most 4 segments) that RFC 6928
// allows. RFC 6928 §2 also caps IW at 14600 bytes; that cap equals ten
// segments at MTU 1500 and is not applied at larger MTUs (in-memory and
// jumbo-frame links), where it would shrink IW to two segments.
func initialWindow(mss int) uint32 {
	return uint32(10 * mss)
}

// maxCwnd bounds the congestion window so that it cannot overflow.
const maxCwnd = 1 << 30

// processAck is the ESTABLISHED-state ACK processing of RFC 9293
// §3.10.7.4 fifth step: "If SND.UNA < SEG.ACK =< SND.NXT, then set SND.UNA
// <- SEG.ACK. Any segments on the retransmission queue that are thereby
// entirely acknowledged are removed." plus the window update, the RTT
// sample (RFC 6298, RFC 7323 §4), the retransmission timer (RFC 6298 §5)
// and congestion control (RFC 5681, RFC 6582).
func (c *Conn) processAck(now time.Time, seg *inSeg, out Output) {
	ack := seg.ACK
	oldWND := c.snd.WND
	oldUNA := c.snd.UNA
	c.flightBefore = c.snd.MAX.Sub(c.snd.UNA)
	// The peer answers: RFC 1122 §4.2.2.17 "As long as the receiving TCP
	// continues to send acknowledgments in response to the probe segments,
	// the sending TCP MUST allow the connection to stay open". An ACK that
	// keeps the window shut counts as an answer.
	c.probes = 0
	if ack.GreaterThan(c.snd.UNA) {
		acked := ack.Sub(c.snd.UNA)
		if ack.GreaterThan(c.sndHead) {
			k := min(int(ack.Sub(c.sndHead)), c.sndBuf.Len())
			c.sndBuf.Discard(k)
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
		c.sampleRTT(now, seg)
		c.retries = 0
		c.persistBackoff = 0
		c.onNewAck(now, out, acked)
		// RFC 6298 (5.2): "When all outstanding data has been acknowledged,
		// turn off the retransmission timer." (5.3): "When an ACK is
		// received that acknowledges new data, restart the retransmission
		// timer".
		switch {
		case c.snd.UNA == c.snd.MAX:
			c.timer.rtx = time.Time{}
		case c.inRecovery && !c.sackOK:
			// A partial ACK (RFC 6582 §3.2 step 5): "For the first partial
			// ACK that arrives during Fast Recovery, also reset the
			// retransmit timer."
			if !c.partialSeen {
				c.partialSeen = true
				c.timer.rtx = now.Add(c.currentRTO())
			}
		default:
			c.timer.rtx = now.Add(c.currentRTO())
		}
	}
	// "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be updated.
	// If (SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK)),
	// set SND.WND <- SEG.WND, set SND.WL1 <- SEG.SEQ, and set SND.WL2 <-
	// SEG.ACK."
	if ack.GreaterThanEq(c.snd.UNA) {
		if c.snd.WL1.LessThan(seg.SEQ) || (c.snd.WL1 == seg.SEQ && c.snd.WL2.LessThanEq(ack)) {
			c.updateWindow(seg.SEQ, ack, seg.WND<<c.snd.shift)
		}
	}
	// RFC 5681 §2 DUPLICATE ACKNOWLEDGMENT: outstanding data, no data, no
	// SYN or FIN, SEG.ACK = SND.UNA and an unchanged window.
	// A window probe's byte does not count as outstanding data.
	dup := ack == oldUNA && c.snd.MAX != oldUNA && c.snd.WND > 0 && len(seg.payload) == 0 &&
		!seg.has(FlagSYN|FlagFIN) && c.snd.WND == oldWND
	if c.sackOK {
		// RFC 6675 §5: "Upon the receipt of any ACK containing SACK
		// information, the scoreboard MUST be updated via the Update ()
		// routine." An ACK with SACK blocks is a duplicate when it SACKs
		// new octets (§2); without blocks, RFC 5681's definition stays.
		if newSACK := c.updateScoreboard(); c.optsIn.NumSACK > 0 {
			dup = newSACK
		}
	}
	// RFC 6675 §5: "If the incoming ACK is a cumulative acknowledgment,
	// the TCP MUST reset DupAcks to zero."
	if (ack != oldUNA || c.snd.MAX == oldUNA) && !c.inRecovery {
		c.dupAcks = 0
	}
	if dup {
		c.onDupAck(now, out)
	}
	c.checkLostRetransmit(now, out)
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

// onNewAck grows the congestion window on an ACK of new data
// (RFC 5681 §3.1) or handles it as a partial or full ACK during fast
// recovery (RFC 6582 §3.2 step 5).
func (c *Conn) onNewAck(now time.Time, out Output, acked uint32) {
	mss := uint32(c.sndMSS)
	if c.inRecovery {
		if c.snd.UNA.GreaterThan(c.recover) {
			// Full acknowledgment: "Set cwnd to either (1) min (ssthresh,
			// max(FlightSize, SMSS) + SMSS) or (2) ssthresh"; option (1)
			// avoids a burst. "Exit the fast recovery procedure."
			flight := c.snd.MAX.Sub(c.snd.UNA)
			c.cwnd = min(c.ssthresh, max(flight, mss)+mss)
			c.inRecovery = false
			c.rtxArmed = false
			c.dupAcks = 0
			return
		}
		if c.sackOK {
			c.partialSeen = true
			// RFC 6675 §5 (B): an ACK that does not cover RecoveryPoint
			// only updates the scoreboard; step (C) (sendData) sends what
			// cwnd - pipe allows.
			return
		}
		// Partial acknowledgment: "retransmit the first unacknowledged
		// segment ... deflate the congestion window by the amount of new
		// data acknowledged by the Cumulative Acknowledgment field. If the
		// partial ACK acknowledges at least one SMSS of new data, then add
		// back SMSS bytes to the congestion window."
		c.retransmitFirst(now, out)
		c.cwnd -= min(c.cwnd, acked)
		if acked >= mss {
			c.cwnd += mss
		}
		c.cwnd = max(c.cwnd, mss)
		return
	}
	c.dupAcks = 0
	// Grow only a window that is in use (RFC 7661 §4.2 restricts growth
	// to a validated window; an application-limited sender has not shown
	// the network can carry more).
	if c.flightBefore+2*mss < c.cwnd {
		return
	}
	if c.cwnd < c.ssthresh {
		// Slow start, RFC 5681 §3.1: "cwnd += min (N, SMSS)" per ACK of
		// new data; the limit L = 2*SMSS of RFC 3465 §2.2 "is not allowed
		// as part of the standard". With delayed ACKs (one per two
		// segments) cwnd grows by half each round trip, not doubling.
		c.cwnd += min(acked, mss)
	} else {
		// Congestion avoidance, RFC 5681 §3.1: "increment cwnd by SMSS
		// bytes every time ... bytes acknowledged reaches cwnd" (RFC 3465
		// §2.1 byte counting).
		c.bytesAcked += acked
		if c.bytesAcked >= c.cwnd {
			c.bytesAcked -= c.cwnd
			c.cwnd += mss
		}
	}
	c.cwnd = min(c.cwnd, maxCwnd)
}

// onDupAck counts duplicate ACKs: the third starts fast retransmit and
// fast recovery (RFC 5681 §3.2, RFC 6582 §3.2 steps 2-4).
func (c *Conn) onDupAck(now time.Time, out Output) {
	mss := uint32(c.sndMSS)
	if c.inRecovery && c.sackOK {
		// RFC 6675 §5: duplicate ACKs in loss recovery only update the
		// scoreboard (done); pipe, not an inflated cwnd, lets data go.
		return
	}
	if c.inRecovery {
		// RFC 6582 step 4 (RFC 5681 §3.2 step 4): "For each additional
		// duplicate ACK received (after the third), cwnd MUST be
		// incremented by SMSS."
		c.cwnd = min(c.cwnd+mss, maxCwnd)
		return
	}
	c.dupAcks++
	if c.dupAcks == 1 {
		c.flightAtDup = c.snd.MAX.Sub(c.snd.UNA)
	}
	if c.sackOK {
		// RFC 6675 §5: "(1) If DupAcks >= DupThresh, go to step (4)."
		// "(2) If DupAcks < DupThresh but IsLost (HighACK + 1) returns
		// true ... go to step (4)." Otherwise (3), Limited Transmit.
		if c.dupAcks < dupThresh && !c.isLost(c.snd.UNA) {
			return
		}
	} else if c.dupAcks != dupThresh {
		// RFC 3042 Limited Transmit: the first two duplicate ACKs each let
		// one new segment go (sendData widens cwnd by dupAcks*SMSS).
		return
	}
	// RFC 6582 step 2: "If the Cumulative Acknowledgment field didn't cover
	// more than recover, there's no fast retransmit." RFC 6675 §5.1 after
	// a timeout: "a new recovery phase ... MUST NOT be initiated until
	// HighACK is greater than or equal to the new value of RecoveryPoint."
	if c.snd.UNA.LessThanEq(c.recover) {
		return
	}
	// Step 3 (RFC 5681 §3.2 (2)-(4)): ssthresh = max(FlightSize/2,
	// 2*SMSS); retransmit; cwnd = ssthresh + 3*SMSS.
	// "When [RFC3042] is in use, additional data sent in limited transmit
	// MUST NOT be included in this calculation" (RFC 5681 §3.2 (2)).
	flight := min(c.flightAtDup, c.snd.MAX.Sub(c.snd.UNA))
	c.ssthresh = max(flight/2, 2*mss)
	c.recover = c.snd.MAX.Add(^uint32(0)) // "the highest sequence number transmitted"
	c.inRecovery = true
	c.partialSeen = false
	if c.stats != nil {
		c.stats.FastRetransmits.Add(1)
	}
	c.bytesAcked = 0
	if c.sackOK {
		// RFC 6675 §5 step (4): "(4.1) RecoveryPoint = HighData" (recover
		// above), "(4.2) ssthresh = cwnd = (FlightSize / 2)", "(4.3)
		// Retransmit the first data segment presumed dropped -- the
		// segment starting with sequence number HighACK + 1. To prevent
		// repeated retransmission of the same data ..., set ... HighRxt
		// to the highest sequence number in the retransmitted segment."
		// (4.4) SetPipe and (4.5) step (C) are sendData's, run by flush.
		c.cwnd = c.ssthresh
		c.highRxt = c.snd.UNA
		c.retransmitFirst(now, out)
		return
	}
	c.retransmitFirst(now, out)
	c.cwnd = c.ssthresh + 3*mss
}

// retransmitFirst sends the first unacknowledged segment again, without
// moving SND.NXT. With SACK it stops short of the first SACKed range
// (only the hole is resent) and HighRxt covers it (RFC 6675 §5 (C.2)).
func (c *Conn) retransmitFirst(now time.Time, out Output) {
	_, limit := c.sackedAt(c.snd.UNA, 1<<31)
	sent := c.retransmitRange(now, out, c.snd.UNA, limit)
	if c.sackOK && c.inRecovery {
		c.highRxt = Max(c.highRxt, c.snd.UNA.Add(sent))
	}
}

// dupThresh is DupThresh of RFC 5681 §3.2 and RFC 6675 §2.
const dupThresh = 3

// checkLostRetransmit detects, in fast recovery, that the retransmission
// of the segment at SND.UNA was lost, and sends it again instead of
// waiting for the retransmission timer. This is the principle of RACK
// (RFC 8985), which "detects losses more efficiently when there are ...
// lost retransmissions" (Abstract): a segment is deemed lost when a
// segment sent after it has been delivered (SACKed), with a margin for
// reordering. Sequence order stands in for RACK's transmit times: the
// segments sent after the retransmission are those at or above rtxMark.
// The margin is that of the fast retransmit trigger: more than
// (DupThresh - 1) * SMSS bytes of them SACKed (RFC 6675 §4, IsLost).
// Recovery goes on, without a further reduction of cwnd (one reduction
// per recovery episode: RFC 6675 §5, RFC 6582 §3.2). NextSeg (RFC 6675
// §4) never covers this case: its rule (1.a) skips octets below HighRxt,
// so a lost retransmission would otherwise wait for the timer.
func (c *Conn) checkLostRetransmit(now time.Time, out Output) {
	if !c.inRecovery || !c.rtxArmed || c.snd.UNA != c.rtxSeq || c.optsIn.NumSACK == 0 {
		return
	}
	need := uint32(dupThresh-1)*uint32(c.sndMSS) + 1
	for i := 0; i < c.optsIn.NumSACK; i++ {
		b := c.optsIn.SACK[i]
		// RFC 2018 §4, RFC 6675 §4: only blocks within (SND.UNA, SND.MAX]
		// are taken; D-SACK blocks (RFC 2883) lie below SND.UNA.
		if !b.Left.LessThan(b.Right) || !b.Left.GreaterThan(c.snd.UNA) || b.Right.GreaterThan(c.snd.MAX) {
			continue
		}
		if b.Right.GreaterThan(c.rtxMark) && b.Right.Sub(Max(b.Left, c.rtxMark)) >= need {
			c.retransmitFirst(now, out)
			return
		}
	}
}

// onRetransmitTimeout handles an expired retransmission timer in a
// synchronized state: RFC 5681 §3.1 (4) "ssthresh = max (FlightSize / 2,
// 2*SMSS)" and "cwnd = LW" (one segment); then go back to SND.UNA and
// retransmit (RFC 6298 (5.4)). RFC 6582 §3.2 step 4 ends recovery and
// sets recover to the highest sequence number sent.
func (c *Conn) onRetransmitTimeout(now time.Time, out Output) {
	mss := uint32(c.sndMSS)
	flight := c.snd.MAX.Sub(c.snd.UNA)
	c.ssthresh = max(flight/2, 2*mss)
	c.cwnd = mss
	c.bytesAcked = 0
	c.inRecovery = false
	c.rtxArmed = false
	c.dupAcks = 0
	c.recover = c.snd.MAX.Add(^uint32(0))
	// RFC 6675 §5.1: "the TCP receiver is allowed to discard data that
	// has already been selectively acknowledged. As a result, [RFC2018]
	// suggests that a TCP sender SHOULD expunge the SACK information
	// gathered from a receiver upon a retransmission timeout". SACK
	// blocks that arrive after the timeout are used again ("a SACK TCP
	// sender SHOULD utilize all SACK information made available during
	// the loss recovery following an RTO"): sendData skips what they
	// cover.
	c.sacked.Reset()
	c.snd.NXT = c.snd.UNA
	c.rttTiming = false
	c.timer.rtx = time.Time{}
	dataEnd := c.sndHead.Add(uint32(c.sndBuf.Len()))
	if c.snd.UNA.LessThan(dataEnd) || (c.shutWrite && c.snd.UNA == dataEnd) {
		// Sending restarts the timer (5.6). When the peer's window is
		// zero nothing goes and the persist timer takes over: a peer that
		// keeps acknowledging probes is alive (RFC 1122 §4.2.2.17).
		c.sendData(now, out, true)
	}
}
