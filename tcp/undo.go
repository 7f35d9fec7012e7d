package tcp

import "time"

// Undoing spurious reductions. A retransmission is spurious when the
// original arrived after all, on a path that reorders or delays; the
// window reduction that came with it was then a mistake, and the sender
// restores the window from before it (RFC 4015 §3.2, the Eifel response:
// "restore ... cwnd and ssthresh"). Three detectors feed it:
//
//   - D-SACK (RFC 2883 §5, RFC 3708 §3): the receiver reports each
//     duplicate it got; once every retransmission of an episode has been
//     reported duplicate, none was needed.
//   - Eifel detection (RFC 3522 §2): with timestamps, the first ACK after
//     a timeout's retransmission that echoes a TSval older than the
//     retransmission's was caused by the original; and the ACK that ends
//     a fast recovery, if it echoes a TSval older than the episode's
//     first retransmission, was caused by originals too (RFC 3522 §2
//     covers "a fast retransmit or a timeout"; Linux's
//     tcp_try_undo_recovery, tcp_packet_delayed). A receiver echoes the
//     TSval of the segment that advanced its left edge (RFC 7323 §4.3):
//     the late original's when it filled the hole, the retransmission's
//     when that did. It needs no D-SACK, which a receiver may not send,
//     or send for only part of a super-segment.
//   - F-RTO (RFC 5682 §2), without timestamps: after a timeout, send new
//     data instead of more retransmissions; if the ACKs that follow
//     acknowledge segments that were never retransmitted, the timeout was
//     spurious.

// undoState tracks one episode of reduction (a fast recovery or a
// timeout) for D-SACK based undo, as Linux's undo_marker and undo_retrans
// do.
type undoState struct {
	active bool
	// marker is SND.UNA when the episode began: D-SACKs of data below it
	// are about an earlier episode.
	marker Value
	// retrans counts the episode's retransmissions not yet reported
	// duplicate; dsacked says at least one was.
	retrans int
	dsacked bool
	// tsval is our TSval when the episode began, the TSval of its first
	// retransmission, when timestamps are in use (hasTS).
	tsval uint32
	hasTS bool
}

// frtoState is the F-RTO / Eifel state after a retransmission timeout.
type frtoState uint8

const (
	frtoOff     frtoState = iota
	frtoArmed             // RFC 5682 §2.1 step 1 done: waiting for the first ACK
	frtoProbing           // step 2.b: send new data, not retransmissions
	frtoProbed            // new data sent: the next ACK decides (step 3)
)

// undoBegin starts an episode. A tail loss probe still in flight counts
// as one of its retransmissions, or the D-SACK of the probe alone would
// undo a reduction for a real loss.
func (c *Conn) undoBegin(now time.Time) {
	c.undo = undoState{active: true, marker: c.snd.UNA}
	if c.tsOK {
		c.undo.tsval, c.undo.hasTS = c.tsNow(now), true
	}
	if c.tlp.active && c.tlp.isRetrans {
		c.undo.retrans++
	}
}

// frtoBegin arms spurious-timeout detection at the first expiry of a
// timeout series (RFC 5682 §2.1 step 1; RFC 3522 §2 with timestamps).
func (c *Conn) frtoBegin(now time.Time) {
	c.frto = frtoOff
	if c.cfg.DisableFRTO {
		return
	}
	c.frto = frtoArmed
	if c.tsOK {
		c.rtoTSval = c.tsNow(now)
	}
}

// onDSACK takes one D-SACK block: RFC 3708 §3, "the TCP sender can
// determine that the retransmission was unnecessary". A block covers as
// many retransmissions as it holds segments: a receiver reports the
// duplicate of a super-segment it took whole (GRO) in one block, and the
// episode's retransmissions are counted in segments (pieces), so one
// block per segment would never bring the count to zero (Linux's
// tcp_sacktag_one counts undo_retrans down by the block's pcount too).
func (c *Conn) onDSACK(b SACKBlock) {
	if c.stats != nil {
		c.stats.DSACKsReceived.Add(1)
	}
	if c.undo.active && b.Left.GreaterThanEq(c.undo.marker) && c.undo.retrans > 0 {
		right := b.Right
		if right.GreaterThan(c.snd.MAX) { // no data of ours lies beyond
			right = c.snd.MAX
		}
		n := 1
		if right.GreaterThan(b.Left) {
			n = c.pieces(int(right.Sub(b.Left)))
		}
		n = min(n, c.undo.retrans)
		c.undo.retrans -= n
		c.undo.dsacked = true
		if c.stats != nil {
			c.stats.SpuriousRetransmits.Add(uint64(n))
		}
	}
}

// undoOnAck runs the detectors on an ACK.
func (c *Conn) undoOnAck(now time.Time, seg *inSeg, advanced, dsack bool, d *delivery) {
	if dsack && c.undo.active && c.undo.dsacked && c.undo.retrans == 0 {
		c.undoReduction(now, false)
		return
	}
	// Eifel detection at the end of a fast recovery (RFC 3522 §2): "If
	// the value of the Timestamp Echo Reply field of the acceptable ACK
	// is smaller than the value of RetransmitTS", the hole was filled by
	// an original that was only late.
	if c.recovery == recoveryFast && c.undo.active && c.undo.hasTS && advanced &&
		c.snd.UNA.GreaterThanEq(c.recoverPoint) && seg.hasTS && seg.tsEcr != 0 && int32(seg.tsEcr-c.undo.tsval) < 0 {
		if c.stats != nil {
			c.stats.SpuriousRetransmits.Add(uint64(max(c.undo.retrans, 1)))
		}
		c.undoReduction(now, false)
		return
	}
	if c.recovery != recoveryLoss || c.frto == frtoOff {
		return
	}
	if c.tsOK {
		// RFC 3522 §2: "If the value of the Timestamp Echo Reply field of
		// the acceptable ACK is smaller than the value of RetransmitTS,
		// then ... the retransmission was spurious". Decided by the first
		// ACK that acknowledges new data.
		if !advanced {
			return
		}
		spurious := seg.hasTS && seg.tsEcr != 0 && int32(seg.tsEcr-c.rtoTSval) < 0
		c.frto = frtoOff
		if spurious {
			c.undoReduction(now, true)
		}
		return
	}
	switch c.frto {
	case frtoArmed:
		// RFC 5682 §2.1 step 2: "(a) If the acknowledgment is a duplicate
		// ACK, OR the Acknowledgment field covers "recover" but not more
		// than "recover", OR the acknowledgment does not acknowledge all
		// of the data that was retransmitted in step 1, revert to the
		// conventional RTO recovery"; "(b) Else, if the acknowledgment
		// advances the window AND the Acknowledgment field does not cover
		// "recover", transmit up to two new (previously unsent) segments".
		dataEnd := c.sndHead.Add(uint32(c.sndBuf.Len()))
		if !advanced || !c.snd.UNA.LessThan(c.recoverPoint) || !c.snd.NXT.LessThan(dataEnd) ||
			c.snd.WND <= c.snd.NXT.Sub(c.snd.UNA) {
			c.frto = frtoOff
			return
		}
		c.frto = frtoProbing
		c.frtoBudget = 2 * uint32(c.sndMSS)
	case frtoProbed:
		// Step 3: "(b) Else, if the acknowledgment acknowledges data that
		// was not retransmitted ... declare the timeout spurious"; "(a) If
		// the acknowledgment is a duplicate ACK ... revert".
		if advanced && d.origBeforeRTO {
			c.undoReduction(now, true)
			return
		}
		c.frto = frtoOff
	}
}

// undoReduction restores the window from before the episode and ends
// recovery: nothing was lost after all (RFC 4015 §3.2; RFC 5682 §3.1
// leaves the response to it).
func (c *Conn) undoReduction(now time.Time, rto bool) {
	c.ctrl().Undo(now, c.sndMSS)
	c.undo.active = false
	c.frto = frtoOff
	for i := 0; i < c.q.n() && c.q.lost > 0; i++ {
		c.q.mark(c.q.at(i), 0, txLost)
	}
	if c.recovery != recoveryOpen {
		c.recovery = recoveryOpen
		c.dupAcks = 0
		c.renoSACKed = 0
		if c.sackOK {
			c.rackOnRecoveryExit()
		}
	}
	if rto {
		// The timeout was spurious: its backoff was too.
		c.retries = 0
		if c.hasRTT {
			c.rto = min(max(c.srtt+max(clockGranularity, 4*c.rttvar), c.cfg.MinRTO), c.cfg.MaxRTO)
		}
		if c.stats != nil {
			c.stats.SpuriousRTOs.Add(1)
		}
	}
	if c.stats != nil {
		c.stats.Undos.Add(1)
	}
}
