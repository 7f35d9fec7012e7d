package tcp

import "time"

// inSeg is an arriving segment's fields in RFC 9293 vocabulary.
type inSeg struct {
	SEQ, ACK Value
	LEN      uint32 // SEG.LEN: payload, plus one for SYN and one for FIN
	WND      uint32 // the window field as sent (not yet scaled)
	flags    Flags
	payload  []byte
	hasTS    bool
	tsVal    uint32
	tsEcr    uint32
	opts     Options // its options, parsed once
	// segs is the number of wire segments it stands for: more than one
	// for a super-segment coalesced by GRO (InputSegments).
	segs int
}

func (s *inSeg) has(f Flags) bool { return s.flags&f != 0 }

// Input processes a segment that arrived for this connection (RFC 9293
// §3.10.7.3 in SYN-SENT, §3.10.7.4 otherwise, in their order), then sends
// what became due. seg must come from ParseSegment. It is InputSegments
// with one segment.
func (c *Conn) Input(now time.Time, s Segment, out Output) {
	c.InputSegments(now, s, 1, out)
}

// InputSegments is Input for a super-segment that stands for segs
// consecutive segments as they were on the wire, coalesced by the device
// or the stack (GRO): header and options of the first, the payload of
// all, PSH and FIN of the last. It is processed once; what counts
// segments counts segs: the acknowledgment policy ("an ACK SHOULD be
// generated for at least every second full-sized segment", RFC 5681 §4.2,
// RFC 9293 §3.8.6.3), so that a super-segment of two or more full-sized
// segments is acknowledged at once, and the segment counters. segs below
// 1 counts as 1, and more segments than payload bytes as one per byte.
func (c *Conn) InputSegments(now time.Time, s Segment, segs int, out Output) {
	if len(s) >= HeaderLen {
		segs = min(segs, max(1, len(s.Payload())))
	}
	segs = max(1, segs)
	if c.stats != nil {
		c.stats.SegmentsIn.Add(uint64(segs))
	}
	c.input(now, s, segs, out)
}

// input is InputSegments for a segment already counted in
// Stats.SegmentsIn (the final ACK of a handshake, which the listener
// counted and hands on).
func (c *Conn) input(now time.Time, s Segment, segs int, out Output) {
	c.segsIn += uint64(segs)
	if len(s) < HeaderLen {
		return
	}
	seg := inSeg{
		SEQ: s.Seq(), ACK: s.Ack(), LEN: s.Len(), WND: uint32(s.Window()),
		flags: s.Flags(), payload: s.Payload(), segs: segs,
	}
	// RFC 2883 §4 (1): a D-SACK reports a duplicate "received by the
	// receiver in the most recent packet" only.
	if c.rx != nil {
		c.rx.sack.pending = false
	}
	o := &seg.opts
	s.Options(o)
	if o.Timestamp {
		seg.hasTS, seg.tsVal, seg.tsEcr = true, o.TSVal, o.TSEcr
	}
	una := c.snd.UNA
	switch c.state {
	case StateClosed, StateListen:
		// RFC 9293 §3.10.7.1: a TCB that no longer exists answers with a
		// reset.
		Reset(c.tuple, s, out)
		return
	case StateSynSent:
		c.inputSynSent(now, &seg, out)
	default:
		c.inputSynchronized(now, &seg, out)
	}
	c.lastInput = now
	if c.keepAlive && (c.state == StateEstablished || c.state == StateCloseWait) {
		c.timer.keepalive = now.Add(c.kaIdle)
		c.kaProbe = 0
	}
	c.pmtuOnInput(now, &seg, una, out)
	c.flush(now, out)
}

// inputSynSent is RFC 9293 §3.10.7.3, "If the state is SYN-SENT".
func (c *Conn) inputSynSent(now time.Time, seg *inSeg, out Output) {
	// "First, check the ACK bit: If SEG.ACK =< ISS or SEG.ACK > SND.NXT,
	// send a reset (unless the RST bit is set, if so drop the segment and
	// return) <SEQ=SEG.ACK><CTL=RST> and discard the segment."
	ackOK := false
	if seg.has(FlagACK) {
		if seg.ACK.LessThanEq(c.iss) || seg.ACK.GreaterThan(c.snd.NXT) {
			if !seg.has(FlagRST) {
				c.resetFor(seg, out)
			}
			return
		}
		// "If SND.UNA < SEG.ACK =< SND.NXT, then the ACK is acceptable."
		ackOK = c.snd.UNA.LessThan(seg.ACK)
	}
	// "Second, check the RST bit: ... If the ACK was acceptable, then
	// signal to the user "error: connection reset", drop the segment,
	// enter CLOSED state, delete TCB, and return. Otherwise (no ACK), drop
	// the segment and return." The user hears "connection refused".
	if seg.has(FlagRST) {
		if ackOK {
			if c.stats != nil {
				c.stats.ResetsReceived.Add(1)
			}
			c.fail(now, ErrConnectionRefused)
		}
		return
	}
	// "Third, check the security": IP security/compartment options are not
	// supported, so there is nothing to check.

	// "Fourth, check the SYN bit: ... RCV.NXT is set to SEG.SEQ+1, IRS is
	// set to SEG.SEQ. SND.UNA should be advanced to equal SEG.ACK (if there
	// is an ACK)".
	if !seg.has(FlagSYN) {
		// "Fifth, if neither of the SYN or RST bits is set, then drop the
		// segment and return."
		return
	}
	c.irs = seg.SEQ
	c.rcv.NXT = seg.SEQ.Add(1)
	c.negotiate(&seg.opts)
	if ackOK {
		c.snd.UNA = seg.ACK
	}
	if c.snd.UNA.GreaterThan(c.iss) {
		// "If SND.UNA > ISS (our SYN has been ACKed), change the connection
		// state to ESTABLISHED, form an ACK segment
		// <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and send it." The window of
		// a SYN is not scaled (RFC 7323 §2.2).
		c.timer.rtx = time.Time{}
		c.sampleRTT(now, seg)
		c.updateWindow(seg.SEQ, seg.ACK, seg.WND)
		c.establish(now)
		c.ackNow = true
		// "If there are other controls or text in the segment, then
		// continue processing at the sixth step under Section 3.10.7.4".
		seg.SEQ = seg.SEQ.Add(1)
		seg.flags &^= FlagSYN
		seg.LEN--
		if seg.LEN > 0 {
			c.processText(now, seg, out)
			c.checkFIN(now, seg, out)
		}
		return
	}
	// "Otherwise, enter SYN-RECEIVED, form a SYN,ACK segment
	// <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> and send it. Set the variables:
	// SND.WND <- SEG.WND, SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK".
	// Text on the SYN is not queued: the peer will send it again.
	c.state = StateSynReceived
	c.snd.WND, c.snd.WL1, c.snd.WL2 = seg.WND, seg.SEQ, seg.ACK
	c.snd.maxWND = max(c.snd.maxWND, c.snd.WND)
	c.timer.rtx = time.Time{}
	c.sendSYN(now, out)
}

// establish enters ESTABLISHED once the handshake completes, or
// FIN-WAIT-1 when a CLOSE was queued in SYN-RECEIVED (RFC 9293 §3.10.4).
func (c *Conn) establish(now time.Time) {
	c.established = true
	c.timer.rtx = time.Time{}
	// RFC 6298 (5.7): "If the timer expires awaiting the ACK of a SYN
	// segment and the TCP implementation is using an RTO less than 3
	// seconds, the RTO MUST be re-initialized to 3 seconds when data
	// transmission begins".
	if c.retries > 0 && !c.hasRTT && c.rto < 3*time.Second {
		c.rto = min(3*time.Second, c.cfg.MaxRTO)
	}
	c.retries = 0
	if c.shutWrite {
		c.setState(now, StateFinWait1)
	} else {
		c.setState(now, StateEstablished)
	}
	if c.keepAlive {
		c.timer.keepalive = now.Add(c.kaIdle)
	}
}

// resetFor sends the reset RFC 9293 §3.10.7 forms for an unacceptable
// segment: <SEQ=SEG.ACK><CTL=RST> if it carries an ACK, else
// <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
func (c *Conn) resetFor(seg *inSeg, out Output) {
	h := Header{SrcPort: c.tuple.Local.Port(), DstPort: c.tuple.Remote.Port()}
	if seg.has(FlagACK) {
		h.Seq, h.Flags = seg.ACK, FlagRST
	} else {
		h.Ack, h.Flags = seg.SEQ.Add(seg.LEN), FlagRST|FlagACK
	}
	c.write(out, &h, 0, 0, false)
	if c.stats != nil {
		c.stats.ResetsSent.Add(1)
	}
}

// inputSynchronized is RFC 9293 §3.10.7.4 "Other States", one method per
// step in the RFC's order.
func (c *Conn) inputSynchronized(now time.Time, seg *inSeg, out Output) {
	if c.state == StateSynReceived && seg.has(FlagSYN) && seg.SEQ == c.irs && !seg.has(FlagRST) {
		if !seg.has(FlagACK) {
			// A retransmitted SYN: our SYN,ACK was lost. Send it again
			// rather than the bare ACK of the first step, whose
			// acknowledgment number the peer in SYN-SENT would ignore.
			if c.passive {
				c.sendSYN(now, out)
			}
			return
		}
		// Simultaneous open (RFC 9293 Figure 7): the peer's SYN,ACK
		// repeats the SYN we already processed; "processing of SYN and ACK
		// should not be repeated", so trim it and go on with its ACK.
		seg.SEQ = seg.SEQ.Add(1)
		seg.flags &^= FlagSYN
		seg.LEN--
	}
	// First: sequence number (and PAWS, RFC 7323 §5.3).
	if !c.checkSequence(now, seg) {
		return
	}
	// Second: RST.
	if seg.has(FlagRST) {
		c.checkRST(now, seg)
		return
	}
	// Third: security. RFC 9293 §3.10.7.4 "Third, check security": IP
	// security/compartment options are not supported, so there is nothing
	// to compare.

	// Fourth: SYN.
	if seg.has(FlagSYN) {
		c.checkSYN(now, seg)
		return
	}
	// Fifth: ACK.
	if !c.checkACK(now, seg, out) {
		return
	}
	// Sixth: URG. RFC 9293 §3.10.7.4 "Sixth, check the URG bit": urgent
	// data is not signaled to the user (RFC 6093 §5 discourages its use);
	// urgent octets are delivered in line like all others.

	// Seventh: segment text.
	c.processText(now, seg, out)
	if c.state == StateClosed {
		return
	}
	// Eighth: FIN.
	c.checkFIN(now, seg, out)
}

// rcvSpace is the receive window segments are accepted in: RCV.WND, the
// octets beyond RCV.NXT up to the right edge we offered (RFC 9293
// §3.10.7.4, Table 6), never the free buffer beyond it. A receiver that
// took data beyond its edge would move RCV.NXT past where its peer can
// know, and the peer's segments without text, sent at the edge it was
// offered (ackSeq; Linux's tcp_acceptable_seq), would then fall below
// RCV.NXT and be dropped, window updates and all: with both windows
// closed the two sides would wait for each other for good. Linux's
// tcp_sequence takes no more than its receive window either.
func (c *Conn) rcvSpace() uint32 { return c.rcv.WND }

// checkSequence is RFC 9293 §3.10.7.4 "First, check sequence number",
// preceded by the PAWS test of RFC 7323 §5.3 R1.
func (c *Conn) checkSequence(now time.Time, seg *inSeg) bool {
	// RFC 7323 §5.3 R1: "If there is a Timestamps option in the arriving
	// segment, SEG.TSval < TS.Recent, and if TS.Recent is valid ..., then
	// treat the arriving segment as not acceptable: Send an acknowledgment
	// in reply ... and drop the segment." RSTs are exempt (§5.2).
	if c.tsOK && seg.hasTS && !seg.has(FlagRST) && int32(seg.tsVal-c.tsRecent) < 0 {
		if c.stats != nil {
			c.stats.DroppedPAWS.Add(1)
		}
		c.ackNow = true
		c.dupBelowNext(seg)
		return false
	}
	// Table 6: Segment Acceptability Tests.
	wnd := c.rcvSpace()
	nxt := c.rcv.NXT
	ok := false
	switch {
	case seg.LEN == 0:
		// "RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND" (SEG.SEQ = RCV.NXT when
		// the window is zero), with the right edge included: a sender
		// that filled the window exactly, and whose data was lost, sends
		// its ACKs with SEG.SEQ = RCV.NXT+RCV.WND. Dropping them would
		// drop their acknowledgments too, and both directions would stall
		// until the peer's retransmission timer fired. Linux's
		// tcp_sequence accepts the edge the same way.
		ok = seg.SEQ == nxt.Add(wnd) || seg.SEQ.InWindow(nxt, wnd)
		// And from Last.ACK.sent on: a peer whose view of our window is
		// older than the data we took beyond the edge we offered (we
		// accept up to the free buffer, rcvSpace) sends its ACKs at that
		// edge, below RCV.NXT, when it has data beyond it (ackSeq).
		// Linux's tcp_sequence accepts from rcv_wup, its Last.ACK.sent,
		// the same way; dropping them would drop their window updates.
		if back := nxt.Sub(c.lastAckSent); back <= uint32(c.rcvBuf.Cap()) {
			ok = ok || seg.SEQ.InWindow(c.lastAckSent, back)
		}
	case wnd == 0:
		// "If the RCV.WND is zero, no segments will be acceptable, but
		// special allowance should be made to accept valid ACKs, URGs, and
		// RSTs": a segment at RCV.NXT is processed for its controls; its
		// text is trimmed away in the seventh step (a window probe).
		ok = seg.SEQ == nxt
	default:
		ok = seg.SEQ.InWindow(nxt, wnd) || seg.SEQ.Add(seg.LEN-1).InWindow(nxt, wnd)
	}
	if !ok {
		// "If an incoming segment is not acceptable, an acknowledgment
		// should be sent in reply (unless the RST bit is set, if so drop
		// the segment and return): <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>"
		if c.stats != nil {
			c.stats.DroppedOutOfWindow.Add(1)
		}
		if !seg.has(FlagRST) && c.state != StateTimeWait && (seg.has(FlagSYN) || seg.LEN == 0) {
			// RFC 5961 §4.2: a SYN, "irrespective of the sequence number",
			// is answered with a challenge ACK, and §7 limits their rate.
			// A bare ACK out of the window gets the same limited answer,
			// as Linux's tcp_oow_rate_limited does: a blind flood of them
			// would otherwise be reflected one for one at the peer (and
			// two such stacks could loop). Keepalive probes, the one
			// legitimate case, come once a minute or so.
			c.challengeAck(now)
			return false
		}
		if !seg.has(FlagRST) {
			c.ackNow = true
			c.dupBelowNext(seg)
			// TIME-WAIT: "The only thing that can arrive in this state is
			// a retransmission of the remote FIN. Acknowledge it, and
			// restart the 2 MSL timeout."
			if c.state == StateTimeWait && seg.has(FlagFIN) {
				c.timer.ending = now.Add(2 * c.cfg.MSL)
			}
		}
		return false
	}
	// TS.Recent is updated only once the ACK field is found acceptable too
	// (updateTSRecent, from the fifth step).
	return true
}

// dupBelowNext reports, in a D-SACK, the text of a dropped segment that
// lies below RCV.NXT: a retransmission of data received before (RFC 2883
// §4.1.1, "Reporting a Duplicate Segment"), whose ACK shows the sender
// that its retransmission was needless.
func (c *Conn) dupBelowNext(seg *inSeg) {
	if len(seg.payload) > 0 && seg.SEQ.LessThan(c.rcv.NXT) {
		end := seg.SEQ.Add(uint32(len(seg.payload)))
		c.noteDuplicate(seg.SEQ, Min(end, c.rcv.NXT))
	}
}

// updateTSRecent is RFC 7323 §4.3 (2): "If SEG.TSval >= TS.Recent and
// SEG.SEQ <= Last.ACK.sent, then SEG.TSval is copied to TS.Recent;
// otherwise, it is ignored." (and §5.3 R3). It runs for segments that
// passed the sequence check and whose ACK is acceptable: RFC 5961 §5.2
// says segments with an unacceptable ACK "MUST be discarded", so a blind
// segment with a forged TSval and a bad ACK cannot poison TS.Recent and
// make every genuine segment fail PAWS. It runs before the ACK's actions,
// so that retransmissions the ACK triggers echo the new TSval (Linux calls
// tcp_replace_ts_recent at the same point).
func (c *Conn) updateTSRecent(seg *inSeg) {
	if c.tsOK && seg.hasTS && int32(seg.tsVal-c.tsRecent) >= 0 && seg.SEQ.LessThanEq(c.lastAckSent) {
		c.tsRecent = seg.tsVal
	}
}

// checkRST is RFC 9293 §3.10.7.4 "Second, check the RST bit", with the
// RFC 5961 §3.2 checks: the sequence number is in the window (the first
// step made sure); "If the RST bit is set and the sequence number exactly
// matches the next expected sequence number (RCV.NXT), then TCP endpoints
// MUST reset the connection"; otherwise send a challenge ACK.
func (c *Conn) checkRST(now time.Time, seg *inSeg) {
	if seg.SEQ != c.rcv.NXT {
		c.challengeAck(now)
		return
	}
	if c.stats != nil {
		c.stats.ResetsReceived.Add(1)
	}
	switch c.state {
	case StateSynReceived:
		// "If this connection was initiated with a passive OPEN ..., then
		// return this connection to LISTEN state and return. The user need
		// not be informed. If ... active OPEN ..., then the connection was
		// refused". The listener still listens; this TCB goes away.
		if c.passive {
			c.fail(now, nil)
		} else {
			c.fail(now, ErrConnectionRefused)
		}
	case StateEstablished, StateFinWait1, StateFinWait2, StateCloseWait:
		// "any outstanding RECEIVEs and SEND should receive "reset"
		// responses. All segment queues should be flushed. ... Enter the
		// CLOSED state, delete the TCB, and return."
		if c.stats != nil {
			c.stats.EstablishedResets.Add(1)
		}
		c.fail(now, ErrConnectionReset)
	default: // CLOSING, LAST-ACK, TIME-WAIT
		// "If the RST bit is set, then enter the CLOSED state, delete the
		// TCB, and return."
		c.setState(now, StateClosed)
	}
}

// checkSYN is RFC 9293 §3.10.7.4 "Fourth, check the SYN bit".
func (c *Conn) checkSYN(now time.Time, seg *inSeg) {
	if c.state == StateSynReceived && c.passive {
		// "If the connection was initiated with a passive OPEN, then return
		// this connection to the LISTEN state and return."
		c.fail(now, nil)
		return
	}
	// "RFC 5961 recommends that in these synchronized states, if the SYN
	// bit is set, irrespective of the sequence number, TCP endpoints MUST
	// send a "challenge ACK" ... After sending the acknowledgment, TCP
	// implementations MUST drop the unacceptable segment".
	c.challengeAck(now)
}

// challengeAck owes a challenge ACK <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>,
// at most ChallengeACKLimit a second (RFC 5961 §7).
func (c *Conn) challengeAck(now time.Time) {
	if c.chal == nil {
		c.chal = new(challengeLimit)
	}
	l := c.chal
	if l.start.IsZero() || now.Sub(l.start) >= time.Second || now.Before(l.start) {
		l.start, l.count = now, 0
	}
	if l.count >= c.cfg.ChallengeACKLimit {
		if c.stats != nil {
			c.stats.ChallengeACKsLimited.Add(1)
		}
		return
	}
	l.count++
	if c.stats != nil {
		c.stats.ChallengeACKs.Add(1)
	}
	c.ackNow = true
}

// challengeLimit is the window of RFC 5961 §7's rate limit on challenge
// ACKs: count sent since start.
type challengeLimit struct {
	start time.Time
	count int
}

// checkACK is RFC 9293 §3.10.7.4 "Fifth, check the ACK field". It reports
// whether processing goes on.
func (c *Conn) checkACK(now time.Time, seg *inSeg, out Output) bool {
	// "if the ACK bit is off, drop the segment and return"
	if !seg.has(FlagACK) {
		return false
	}
	if c.state == StateSynReceived {
		// "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED state
		// and continue processing with the variables below set to:
		// SND.WND <- SEG.WND, SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK.
		// If the segment acknowledgment is not acceptable, form a reset
		// segment <SEQ=SEG.ACK><CTL=RST> and send it."
		if !(c.snd.UNA.LessThan(seg.ACK) && seg.ACK.LessThanEq(c.snd.NXT)) {
			c.resetFor(seg, out)
			return false
		}
		c.snd.UNA = seg.ACK
		c.sampleRTT(now, seg)
		c.snd.WND = seg.WND << c.snd.shift
		c.snd.WL1, c.snd.WL2 = seg.SEQ, seg.ACK
		c.snd.maxWND = max(c.snd.maxWND, c.snd.WND)
		c.establish(now)
	}
	// RFC 5961 §5.2: "the ACK value is acceptable only if it is in the
	// range of ((SND.UNA - MAX.SND.WND) =< SEG.ACK =< SND.NXT). All
	// incoming segments whose ACK value doesn't satisfy the above
	// condition MUST be discarded and an ACK sent back." SND.MAX (or the
	// end of a window probe) stands for SND.NXT since SND.NXT goes back
	// after a timeout.
	if seg.ACK.GreaterThan(Max(c.snd.MAX, c.probeEnd)) || seg.ACK.LessThan(c.snd.UNA.Add(-c.snd.maxWND)) {
		c.challengeAck(now)
		return false
	}
	c.updateTSRecent(seg)
	c.processAck(now, seg, out)
	finAcked := c.finSent && c.snd.UNA == c.finSeq.Add(1)
	switch c.state {
	case StateFinWait1:
		// "if the FIN segment is now acknowledged, then enter FIN-WAIT-2
		// and continue processing in that state."
		if finAcked {
			c.setState(now, StateFinWait2)
		}
	case StateClosing:
		// "if the ACK acknowledges our FIN, then enter the TIME-WAIT
		// state; otherwise, ignore the segment."
		if finAcked {
			c.setState(now, StateTimeWait)
		}
		return false
	case StateLastAck:
		// "If our FIN is now acknowledged, delete the TCB, enter the
		// CLOSED state, and return."
		if finAcked {
			c.setState(now, StateClosed)
		}
		return false
	}
	return true
}

// processText is RFC 9293 §3.10.7.4 "Seventh, process the segment text".
// Data is trimmed to the window, copied into the receive ring at its
// offset (out-of-order data too, with its range recorded) and RCV.NXT
// advances over what is in order.
func (c *Conn) processText(now time.Time, seg *inSeg, out Output) {
	switch c.state {
	case StateEstablished, StateFinWait1, StateFinWait2:
	default:
		// CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: "This should not occur
		// since a FIN has been received from the remote side. Ignore the
		// segment text."
		return
	}
	p := seg.payload
	seq := seg.SEQ
	fin := seg.has(FlagFIN)
	// Text received before, below RCV.NXT or in a block held, is
	// reported in a D-SACK (RFC 2883 §4).
	if d, ok := c.duplicateOf(seq, seq.Add(uint32(len(p)))); ok {
		c.noteDuplicate(d.start, d.end)
	}
	// "If a segment's contents straddle the boundary between old and new,
	// only the new parts are processed."
	if seq.LessThan(c.rcv.NXT) {
		cut := c.rcv.NXT.Sub(seq)
		if cut > uint32(len(p)) { // the FIN too is old
			fin = false
			p = p[:0]
		} else {
			p = p[cut:]
		}
		seq = c.rcv.NXT
	}
	if len(p) == 0 && !fin {
		return
	}
	// An orphaned connection cannot deliver data: RFC 9293 §3.10.4 lets no
	// RECEIVE follow a CLOSE, so answer new data with a reset (as
	// RFC 2525 §2.17 describes common practice).
	if len(p) > 0 && c.userClosed {
		c.sendRST(out)
		c.fail(now, nil)
		return
	}
	// Trim what lies beyond the window ("trimming off any portions that
	// lie outside the window (including SYN and FIN)").
	off := seq.Sub(c.rcv.NXT)
	space := c.rcvSpace()
	if off+uint32(len(p)) > space {
		if off >= space {
			p = p[:0]
		} else {
			p = p[:space-off]
		}
		fin = false
		c.ackNow = true // a window probe, or data the window did not offer
	}
	if fin {
		c.rcvFinPending, c.rcvFinSeq = true, seq.Add(uint32(len(p)))
	}
	if len(p) == 0 {
		if fin {
			c.ackNow = true // the FIN is acknowledged in the eighth step, or duplicate-ACKed
		}
		return
	}
	// The size of a full-sized segment (RFC 5681 §4.2) is learned from
	// the wire segments: a super-segment's pieces are its payload shared
	// among segs, the last possibly shorter, so the mean rounded up does
	// not exceed the size of the others.
	piece := len(p)
	if seg.segs > 1 {
		piece = min(piece, (len(seg.payload)+seg.segs-1)/seg.segs)
	}
	c.rcvMSS = max(c.rcvMSS, min(piece, int(c.mss)))
	if off > 0 {
		// Out of order: hold it (SHLD-31) and send a duplicate ACK at once
		// (RFC 5681 §4.2: "A TCP receiver SHOULD send an immediate
		// duplicate ACK when an out-of-order segment arrives").
		c.ackNow = true
		dup := c.dsackPending() && c.rx.sack.dup == seqRange{seq, seq.Add(uint32(len(p)))}
		if !c.oooReserve(seq.Add(uint32(len(p)))) {
			c.rcvFinPending = c.rcvFinPending && !fin
			return
		}
		if c.rxs().ooo.Add(seq, seq.Add(uint32(len(p)))) {
			if !dup {
				c.noteArrival(seq)
			}
			c.rcvBuf.WriteAt(c.rcvBuf.Len()+int(off), p)
		} else {
			if c.stats != nil {
				c.stats.DroppedOutOfOrder.Add(1)
			}
			c.rcvFinPending = c.rcvFinPending && !fin
			c.oooSettle()
		}
		return
	}
	// In order: "Once the TCP endpoint takes responsibility for the data,
	// it advances RCV.NXT over the data accepted".
	start := c.rcv.NXT
	c.rcvBuf.WriteAt(c.rcvBuf.Len(), p)
	c.rcvBuf.Commit(len(p))
	c.rcv.NXT = c.rcv.NXT.Add(uint32(len(p)))
	filled := false
	for {
		r, ok := c.ooo().PopFront(c.rcv.NXT)
		if !ok {
			break
		}
		filled = true
		if r.end.GreaterThan(c.rcv.NXT) {
			c.rcvBuf.Commit(int(r.end.Sub(c.rcv.NXT)))
			c.rcv.NXT = r.end
		}
	}
	c.oooSettle()
	k := c.rcv.NXT.Sub(start)
	c.bytesIn += uint64(k)
	// The offered window shrinks by what arrived; its right edge stays.
	c.rcv.WND -= min(c.rcv.WND, k)
	c.rcvRTTSample(now, seg, len(p))
	c.ackReceived(now, len(p), seg.segs, filled)
}

// ackReceived decides when n bytes of in-order data, which arrived in
// segs wire segments, are acknowledged: at once when they fill a hole
// (RFC 5681 §4.2) or after the second full-sized segment (RFC 9293
// §3.8.6.3 SHLD-19, RFC 5681 §4.2 "an ACK SHOULD be generated for at least
// every second full-sized segment"), else within DelayedAckTimeout.
// Segments are counted, not calls: a super-segment of segs pieces holds
// up to segs full-sized segments.
func (c *Conn) ackReceived(now time.Time, n, segs int, filled bool) {
	c.unackedBytes += n
	c.unackedSegs += min(segs, n/c.rcvMSS)
	switch {
	case filled || c.ooo().Len() > 0 || c.cfg.DelayedAckTimeout <= 0:
		c.ackNow = true
	case c.unackedSegs >= 2 || c.unackedBytes >= 2*c.rcvMSS:
		c.ackNow = true
	case c.timer.delack.IsZero():
		c.timer.delack = now.Add(c.cfg.DelayedAckTimeout)
	}
}

// checkFIN is RFC 9293 §3.10.7.4 "Eighth, check the FIN bit": once RCV.NXT
// reaches the peer's FIN, "advance RCV.NXT over the FIN, and send an
// acknowledgment for the FIN".
func (c *Conn) checkFIN(now time.Time, seg *inSeg, out Output) {
	if !c.rcvFinPending || c.rcv.NXT != c.rcvFinSeq {
		return
	}
	c.rcvFinPending = false
	c.rcvFin = true
	c.rcv.NXT = c.rcv.NXT.Add(1)
	c.ackNow = true
	switch c.state {
	case StateSynReceived, StateEstablished:
		// "Enter the CLOSE-WAIT state."
		c.setState(now, StateCloseWait)
	case StateFinWait1:
		// "If our FIN has been ACKed (perhaps in this segment), then enter
		// TIME-WAIT, start the time-wait timer, turn off the other timers;
		// otherwise, enter the CLOSING state."
		if c.finSent && c.snd.UNA == c.finSeq.Add(1) {
			c.setState(now, StateTimeWait)
		} else {
			c.setState(now, StateClosing)
		}
	case StateFinWait2:
		// "Enter the TIME-WAIT state. Start the time-wait timer, turn off
		// the other timers."
		c.setState(now, StateTimeWait)
	case StateTimeWait:
		// "Remain in the TIME-WAIT state. Restart the 2 MSL time-wait
		// timeout."
		c.timer.ending = now.Add(2 * c.cfg.MSL)
	}
}
