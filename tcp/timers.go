package tcp

import "time"

// clockGranularity is G of RFC 6298 §2: the core measures in nanoseconds
// but timestamps tick in milliseconds.
const clockGranularity = time.Millisecond

// currentRTO returns the retransmission timeout, backoff included.
func (c *Conn) currentRTO() time.Duration { return c.rto }

// sampleRTT takes an RTT measurement from an ACK of new data: from the
// echoed timestamp when timestamps are in use (RFC 7323 §4.1, §4.2), else
// from the one timed segment if it was not retransmitted (Karn's rule,
// RFC 6298 §3).
// It records in rttFromAck whether it took a sample.
func (c *Conn) sampleRTT(now time.Time, seg *inSeg) {
	c.rttFromAck = false
	if c.state == StateSynSent && c.retrans > 0 && seg.hasTS && int32(seg.tsEcr-c.tsLast) < 0 {
		// Karn's rule for the handshake (RFC 6298 §3, §5.7): a SYN-ACK
		// that echoes the TSval of an earlier SYN than the last one sent
		// answers a SYN that was retransmitted; Linux's does, when its
		// first SYN-ACK was lost and our second SYN finds the request it
		// made for our first. Its sample would count the retransmission
		// timeout as round-trip time: one second or more into SRTT, where
		// the first sample sets SRTT and RTTVAR whole (RFC 6298 (2.2)), so
		// every timeout and probe of the connection would wait about as
		// long until later samples wore it down.
		c.rttTiming = false
		return
	}
	if c.tsOK && seg.hasTS && seg.tsEcr != 0 {
		ms := c.tsNow(now) - seg.tsEcr
		if int32(ms) >= 0 {
			// RFC 7323 Appendix G: with a sample on every ACK, the gains
			// are divided by the samples expected per round trip,
			// "ExpectedSamples = ceiling(FlightSize / (SMSS * 2))", so
			// that SRTT and RTTVAR keep the history of about one window
			// that RFC 6298 assumes (else RTTVAR collapses and the RTO
			// hugs SRTT, inviting spurious timeouts).
			n := (c.ackFlight + 2*uint32(c.sndMSS) - 1) / (2 * uint32(c.sndMSS))
			c.updateRTTN(time.Duration(ms)*time.Millisecond, int64(max(n, 1)))
			c.rttFromAck = true
		}
		c.rttTiming = false
		return
	}
	if c.rttTiming && seg.ACK.GreaterThanEq(c.rttSeq) {
		c.rttTiming = false
		c.updateRTT(now.Sub(c.rttStart))
		c.rttFromAck = true
	}
}

// updateRTT folds a measurement r into SRTT and RTTVAR and computes RTO
// (RFC 6298 §2).
func (c *Conn) updateRTT(r time.Duration) { c.updateRTTN(r, 1) }

// updateRTTN is updateRTT for one of n samples expected in a round trip:
// RFC 7323 Appendix G's "alpha' = alpha / ExpectedSamples" and "beta' =
// beta / ExpectedSamples".
func (c *Conn) updateRTTN(r time.Duration, n int64) {
	if r < 0 {
		return
	}
	if !c.hasRTT {
		// (2.2) "SRTT <- R, RTTVAR <- R/2"
		c.srtt, c.rttvar, c.hasRTT = r, r/2, true
	} else {
		// (2.3) "RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|,
		// SRTT <- (1 - alpha) * SRTT + alpha * R'" with alpha=1/8, beta=1/4.
		d := c.srtt - r
		if d < 0 {
			d = -d
		}
		k := time.Duration(n)
		c.rttvar += (d - c.rttvar) / (4 * k)
		c.srtt += (r - c.srtt) / (8 * k)
	}
	// "RTO <- SRTT + max (G, K*RTTVAR)" with K=4, then (2.4) the minimum
	// and (2.5) the maximum.
	rto := c.srtt + max(clockGranularity, 4*c.rttvar)
	c.rto = min(max(rto, c.cfg.MinRTO), c.cfg.MaxRTO)
}

// NextDeadline returns the earliest pending timer, or the zero Time if no
// timer runs.
func (c *Conn) NextDeadline() time.Time {
	var d time.Time
	for _, t := range [...]time.Time{c.timer.rtx, c.timer.loss, c.timer.persist, c.timer.delack, c.timer.keepalive, c.timer.ending} {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	return d
}

func due(t, now time.Time) bool { return !t.IsZero() && !now.Before(t) }

// Tick fires every timer due at now, then sends what became due.
func (c *Conn) Tick(now time.Time, out Output) {
	if c.state == StateClosed {
		return
	}
	if c.abortPending {
		c.abort(now, out, ErrConnectionAborted)
		return
	}
	// RFC 9293 §3.10.8 TIME-WAIT TIMEOUT: "If the time-wait timeout expires
	// on a connection, delete the TCB, enter the CLOSED state, and return."
	if due(c.timer.ending, now) {
		if c.state == StateTimeWait {
			c.setState(now, StateClosed)
		} else {
			// An orphaned connection stops waiting for the peer's FIN.
			c.fail(now, nil)
		}
		return
	}
	if due(c.timer.rtx, now) {
		c.timer.rtx = time.Time{}
		c.onTimeout(now, out)
		if c.state == StateClosed {
			return
		}
	}
	// RFC 8985 §6.2 Step 5, the reordering timer; §7.3, the probe timeout.
	if due(c.timer.loss, now) {
		kind := c.lossTimer
		c.timer.loss, c.lossTimer = time.Time{}, noLossTimer
		if kind == rackTimer {
			c.onRACKTimer(now, out)
			c.tlpSchedule(now)
		} else {
			c.onTLP(now, out)
		}
	}
	if due(c.timer.persist, now) {
		c.timer.persist = time.Time{}
		c.onPersist(now, out)
	}
	if due(c.timer.keepalive, now) {
		c.timer.keepalive = time.Time{}
		c.onKeepAlive(now, out)
		if c.state == StateClosed {
			return
		}
	}
	// RFC 9293 §3.8.6.3: the delayed ACK is due.
	if due(c.timer.delack, now) {
		c.timer.delack = time.Time{}
		c.ackNow = true
	}
	c.flush(now, out)
}

// onTimeout is RFC 9293 §3.10.8 RETRANSMISSION TIMEOUT with RFC 6298 §5:
// (5.5) "The host MUST set RTO <- RTO * 2 ("back off the timer")", (5.4)
// retransmit the earliest segment, (5.6) restart the timer. After
// MaxRetries (SynRetries for a SYN) the connection fails with ErrTimeout
// (RFC 9293 §3.8.3, R2).
func (c *Conn) onTimeout(now time.Time, out Output) {
	c.retries++
	limit := c.cfg.MaxRetries
	syn := c.state == StateSynSent || c.state == StateSynReceived
	if syn {
		limit = c.cfg.SynRetries
	}
	if c.retries > limit {
		if c.stats != nil {
			c.stats.ConnectionTimeouts.Add(1)
		}
		c.fail(now, c.giveUpError())
		return
	}
	if c.stats != nil {
		c.stats.Timeouts.Add(1)
	}
	c.rto = min(2*c.rto, c.cfg.MaxRTO)
	if syn {
		c.rttTiming = false
		c.sendSYN(now, out)
		return
	}
	c.lossInit()
	c.pmtuOnTimeout(now)
	c.onRetransmitTimeout(now, out)
}

// onPersist fires the persist timer (RFC 9293 §3.8.6.1, RFC 1122
// §4.2.2.17): probe a zero window with one octet, backing off, or, when
// the window is open but too small for silly-window avoidance to send,
// send what fits (the override timeout of RFC 9293 §3.8.6.2.1).
func (c *Conn) onPersist(now time.Time, out Output) {
	dataEnd := c.sndHead.Add(uint32(c.sndBuf.Len()))
	if !(c.snd.NXT.LessThan(dataEnd) || c.lostBytes() > 0) || c.pipe() > 0 {
		return
	}
	switch c.state {
	case StateEstablished, StateCloseWait, StateFinWait1, StateClosing, StateLastAck:
	default:
		return
	}
	if c.snd.WND == 0 {
		// A peer may keep its window shut forever (RFC 1122 §4.2.2.17
		// wants probing to go on while it answers), but an orphaned
		// connection gives up after MaxRetries probes, answered or not,
		// as Linux's tcp_orphan_retries does.
		if c.userClosed && int(c.persistBackoff) >= c.cfg.MaxRetries {
			c.abort(now, out, ErrTimeout)
			return
		}
		// A peer that stops answering is gone: the probes are
		// retransmissions of the octet beyond the window, and RFC 1122
		// §4.2.3.5 (RFC 9293 §3.8.3): "When the number of transmissions of
		// the same segment reaches a threshold R2 greater than R1, close
		// the connection" (R2 is MaxRetries).
		if c.probes >= c.cfg.MaxRetries {
			if c.stats != nil {
				c.stats.ConnectionTimeouts.Add(1)
			}
			c.fail(now, ErrTimeout)
			return
		}
		c.sendProbe(now, out)
		c.probes++
		c.persistBackoff++
		d := c.currentRTO() << min(c.persistBackoff, 16)
		c.timer.persist = now.Add(min(d, c.cfg.MaxRTO))
		return
	}
	c.sendData(now, out, true)
}

// onKeepAlive sends a keepalive probe <SEQ=SND.UNA-1><ACK=RCV.NXT> when the
// connection has been idle (RFC 1122 §4.2.3.6), or fails it with
// ErrTimeout after KeepAliveCount unanswered probes.
func (c *Conn) onKeepAlive(now time.Time, out Output) {
	if !c.keepAlive || (c.state != StateEstablished && c.state != StateCloseWait) {
		return
	}
	if c.snd.UNA != c.snd.MAX { // the retransmission timer watches the peer
		c.timer.keepalive = now.Add(c.kaIdle)
		return
	}
	if c.kaProbe >= c.kaCount {
		if c.stats != nil {
			c.stats.ConnectionTimeouts.Add(1)
		}
		c.fail(now, c.giveUpError())
		return
	}
	c.kaProbe++
	var o Options
	h := c.header(now, &o, c.snd.UNA.Add(^uint32(0)), 0, false)
	c.write(out, &h, 0, 0, false)
	if c.stats != nil {
		c.stats.KeepAliveProbes.Add(1)
	}
	c.timer.keepalive = now.Add(c.kaIntvl)
}
