package tcp

import "time"

// inputHalfOpen is RFC 9293 §3.10.7.4 for a half-open entry, a
// connection in SYN-RECEIVED that has no Conn yet.
func (l *Listener) inputHalfOpen(now time.Time, e *halfOpen, seg Segment, iss Value, mss uint16, out Output) *Conn {
	st := l.cfg.Stats
	f := seg.Flags()
	seq := seg.Seq()
	rcvNxt := e.irs.Add(1)
	switch {
	case f.Has(FlagRST):
		// "Second, check the RST bit" with RFC 5961 §3.2: "If the RST bit
		// is set and the sequence number exactly matches the next
		// expected sequence number (RCV.NXT), then TCP endpoints MUST
		// reset the connection"; in the window but not exact, send a
		// challenge ACK; outside it, drop. SYN-RECEIVED from a passive
		// OPEN: "return this connection to LISTEN state": forget it.
		if seq == rcvNxt {
			if st != nil {
				st.ResetsReceived.Add(1)
			}
			l.drop(e)
		} else if seq.InWindow(rcvNxt, uint32(e.rcvWnd)) {
			l.challengeAck(now, e, out)
		}
		return nil
	case f.Has(FlagSYN) && !f.Has(FlagACK):
		l.st.SYNsReceived++
		if st != nil {
			st.SYNsReceived.Add(1)
		}
		if seq == e.irs {
			// A retransmitted SYN: our SYN-ACK was lost. Send it again
			// (same ISS and options), rather than the bare ACK of the first
			// step, whose acknowledgment number the peer in SYN-SENT would
			// ignore; but not within dupSYNInterval of the last one, so
			// that a flood of copies is not answered one for one (Linux's
			// tcp_oow_rate_limited in tcp_check_req).
			if now.Sub(e.lastSent) < dupSYNInterval {
				return nil
			}
			e.lastSent = now
			e.retrans = min(e.retrans+1, 255)
			l.countSynAckRetransmit()
			if e.ts {
				e.tsLast = tsMax(e.tsLast, l.tsClock(e.tuple, now))
			}
			l.sendSynAck(&e.synParams, out)
			return nil
		}
		// Another ISN: the peer started over (RFC 9293 §3.10.7.4, fourth
		// step, passive OPEN: "return this connection to the LISTEN
		// state"); the new SYN is handled from LISTEN.
		t := e.tuple
		l.drop(e)
		l.inputSYN(now, t, seg, iss, mss, out)
		return nil
	case !f.Has(FlagACK) || f.Has(FlagSYN):
		return nil
	}
	// "Fifth, check the ACK field": in SYN-RECEIVED, "If SND.UNA < SEG.ACK
	// =< SND.NXT, then enter ESTABLISHED state ... If the segment
	// acknowledgment is not acceptable, form a reset segment
	// <SEQ=SEG.ACK><CTL=RST> and send it." SND.UNA is ISS and SND.NXT
	// ISS+1.
	if seg.Ack() != e.iss.Add(1) {
		l.resetLimited(now, e.tuple, seg, out)
		return nil
	}
	// "First, check sequence number": the segment must start in the
	// window our SYN-ACK offered (its right edge included for a bare ACK,
	// as Conn.checkSequence does); else it is dropped here and the peer
	// retransmits.
	if !(seq == rcvNxt.Add(uint32(e.rcvWnd)) && seg.Len() == 0) && !seq.InWindow(rcvNxt, uint32(e.rcvWnd)) {
		if st != nil {
			st.DroppedOutOfWindow.Add(1)
		}
		return nil
	}
	// PAWS (RFC 7323 §5.3 R1) before the Conn is made for nothing.
	if e.ts {
		o := &l.opts
		seg.Options(o)
		if o.Timestamp && int32(o.TSVal-e.tsRecent) < 0 {
			if st != nil {
				st.DroppedPAWS.Add(1)
			}
			return nil
		}
	}
	if l.acceptFull() {
		// Linux's semantics (tcp_abort_on_overflow=0): the ACK is dropped
		// and the entry stays; its SYN-ACK retransmission makes the peer
		// ACK again, by when Accept may have made room.
		return nil
	}
	p := e.synParams
	c := l.newPassiveConn(now, &p, e)
	l.drop(e)
	return l.complete(now, c, seg, out)
}

// dupSYNInterval is the least time between SYN-ACKs sent for retransmitted
// SYNs of one entry (Linux's tcp_invalid_ratelimit, 500 ms).
const dupSYNInterval = 500 * time.Millisecond

// countSynAckRetransmit counts a SYN-ACK sent again.
func (l *Listener) countSynAckRetransmit() {
	l.st.SYNACKRetransmits++
	if st := l.cfg.Stats; st != nil {
		st.SYNACKRetransmits.Add(1)
		st.Retransmits.Add(1)
	}
}

// acceptFull reports (and counts in ListenOverflows) a full accept queue.
func (l *Listener) acceptFull() bool {
	if len(l.accept) < l.backlog {
		return false
	}
	l.st.ListenOverflows++
	if st := l.cfg.Stats; st != nil {
		st.ListenOverflows.Add(1)
	}
	return true
}

// challengeAck sends <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> for an entry
// (RFC 5961 §3.2), within the listener's rate limit (§7).
func (l *Listener) challengeAck(now time.Time, e *halfOpen, out Output) {
	st := l.cfg.Stats
	if !l.rst.allow(now, l.cfg.ChallengeACKLimit) {
		if st != nil {
			st.ChallengeACKsLimited.Add(1)
		}
		return
	}
	if st != nil {
		st.ChallengeACKs.Add(1)
	}
	h := Header{
		SrcPort: e.tuple.Local.Port(), DstPort: e.tuple.Remote.Port(),
		Seq: e.iss.Add(1), Ack: e.irs.Add(1), Flags: FlagACK, Window: e.rcvWnd,
	}
	if e.ts {
		o := &l.opts
		*o = Options{WindowScale: -1, Timestamp: true, TSVal: tsMax(e.tsLast, l.tsClock(e.tuple, now)), TSEcr: e.tsRecent}
		h.Options = o
	}
	l.write(e.tuple, &h, out)
}

// cookieACK checks an ACK that matches no entry as the answer to one of
// our SYN cookies (RFC 4987 §3.6): one hash, no allocation unless it
// validates. Cookies are checked only in SYNCookiesAlways mode or when
// some were sent in the last cookieMaxAge periods, so that none is
// accepted (or guessed at) when none was needed. done reports that the
// ACK was a valid cookie: c is the new connection, or nil when the
// accept queue was full and the ACK is dropped.
func (l *Listener) cookieACK(now time.Time, t Tuple, seg Segment, mss uint16, out Output) (c *Conn, done bool) {
	st := l.cfg.Stats
	hash := l.cfg.SYNCookieHash
	if hash == nil || l.cookies == SYNCookiesNever || l.closed {
		return nil, false
	}
	if l.cookies != SYNCookiesAlways && (l.lastCookie.IsZero() || now.Sub(l.lastCookie) > (cookieMaxAge+1)*cookiePeriod) {
		return nil, false
	}
	peerISN := seg.Seq() - 1
	iss := seg.Ack() - 1
	peerMSS, ok := checkCookie(hash, t, now, peerISN, iss)
	if !ok {
		l.st.SYNCookiesRejected++
		if st != nil {
			st.SYNCookiesRejected.Add(1)
		}
		return nil, false
	}
	if l.acceptFull() {
		return nil, true
	}
	o := &l.opts
	seg.Options(o)
	p := synParams{
		tuple: t, iss: iss, irs: peerISN, synWnd: seg.Window(),
		mss: max(mss, 64), peerMSS: peerMSS, peerWS: -1, cookie: true,
	}
	p.rcvWnd, p.ourWS = synWindow(l.cfg)
	// The SYN's window scale and SACK-permitted come back in the low bits
	// of the TSecr; without timestamps a cookie connection has neither
	// (nor does Linux's). The RTT sample the TSecr gives is up to 31 ms
	// long (cookieTSval rounds the TSval down), as on Linux: a larger
	// first RTO, never a spurious one.
	if l.cfg.Timestamps && o.Timestamp {
		p.ts = true
		p.tsRecent, p.tsLast = o.TSVal, o.TSEcr
		ws, sack := cookieTSOptions(o.TSEcr)
		if l.cfg.WindowScale {
			p.peerWS = ws
		}
		p.sack = l.cfg.SACKPermitted && sack
	}
	l.st.SYNCookiesAccepted++
	if st != nil {
		st.SYNCookiesAccepted.Add(1)
	}
	c = l.newPassiveConn(now, &p, nil)
	return l.complete(now, c, seg, out), true
}

// complete feeds the final ACK to c, a Conn rebuilt in SYN-RECEIVED, so
// that the state machine handles it (and any data or FIN on it) in one
// place, and puts c on the accept queue.
func (l *Listener) complete(now time.Time, c *Conn, seg Segment, out Output) *Conn {
	c.input(now, seg, 1, out) // counted in Stats.SegmentsIn by Listener.Input

	if !c.Established() {
		// Cannot happen after the checks above; the Conn is dropped.
		return nil
	}
	l.Promote(c)
	return c
}

// newPassiveConn builds the Conn of a passive open in SYN-RECEIVED from
// the recorded handshake, as if it had processed the SYN and sent the
// SYN-ACK itself (RFC 9293 §3.10.7.2, third step): "Set RCV.NXT to
// SEG.SEQ+1, IRS is set to SEG.SEQ ... SND.NXT is set to ISS+1 and SND.UNA
// to ISS." e, when not nil, is the half-open entry whose retransmissions
// the Conn inherits (Karn's rule, the backed-off RTO).
func (l *Listener) newPassiveConn(now time.Time, p *synParams, e *halfOpen) *Conn {
	c := newConn(l.cfg, p.tuple, p.iss, p.mss, now)
	c.passive, c.listener = true, l
	if c.stats != nil {
		c.stats.PassiveOpens.Add(1)
	}
	c.wsShift = p.ourWS
	c.irs = p.irs
	c.rcv.NXT = p.irs.Add(1)
	o := Options{MSS: p.peerMSS, WindowScale: p.peerWS, SACKPermitted: p.sack, Timestamp: p.ts, TSVal: p.tsRecent}
	c.negotiate(&o)
	// "SND.WND <- SEG.WND, SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK" of the
	// SYN (RFC 9293 §3.10.7.3's variables, as Conn.synReceived sets them).
	c.snd.WND, c.snd.WL1, c.snd.WL2 = uint32(p.synWnd), c.irs, c.iss
	c.snd.maxWND = c.snd.WND
	c.state = StateSynReceived
	c.rcv.WND = uint32(p.rcvWnd)
	c.lastAckSent = c.rcv.NXT
	c.snd.NXT = c.iss.Add(1)
	c.snd.MAX = c.snd.NXT
	if p.ts {
		c.tsLast, c.tsSent = p.tsLast, true
	}
	c.segsIn, c.segsOut = 1, 1
	if e != nil {
		c.segsOut += uint64(e.retrans)
		c.retrans = uint64(e.retrans)
		c.retries = int(e.timeouts)
		c.rto = e.rto
		if e.retrans == 0 {
			// The one timed segment (RFC 6298 §3): the SYN-ACK, if it was
			// not retransmitted (Karn's rule).
			c.rttTiming, c.rttSeq, c.rttStart = true, c.iss.Add(1), e.sentAt
		}
	}
	c.timer.rtx = now.Add(c.rto)
	return c
}

// retryLimit is the number of SYN-ACK retransmissions an entry gets:
// SynAckRetries, but at most 2 while the SYN queue is more than half full
// (of its limit, counted as at least 8 as Linux's reqsk_timer_handler
// does: the pressure Linux answers by giving young entries fewer
// retries), so that entries of a spoofed flood, whose SYN-ACKs nobody
// answers, leave sooner.
func (l *Listener) retryLimit() int {
	n := l.cfg.SynAckRetries
	if 2*l.q.len() > max(8, l.synLimit) {
		n = min(n, 2)
	}
	return n
}

// NextDeadline returns when the listener's Tick is next due (a SYN-ACK
// retransmission or the end of a half-open entry), or the zero Time.
func (l *Listener) NextDeadline() time.Time {
	if e := l.q.next(); e != nil {
		return e.deadline
	}
	return time.Time{}
}

// Tick retransmits the SYN-ACKs due at now (RFC 6298 §5: the timeout
// doubles each time, from InitialRTO) and drops the entries whose last
// SYN-ACK went unanswered for one more timeout.
func (l *Listener) Tick(now time.Time, out Output) {
	st := l.cfg.Stats
	for e := l.q.next(); e != nil && !now.Before(e.deadline); e = l.q.next() {
		if int(e.timeouts) >= l.retryLimit() {
			l.st.SYNQueueTimeouts++
			if st != nil {
				st.SYNQueueTimeouts.Add(1)
			}
			l.drop(e)
			continue
		}
		e.timeouts++
		e.retrans = min(e.retrans+1, 255)
		e.lastSent = now
		if st != nil {
			st.Timeouts.Add(1)
		}
		l.countSynAckRetransmit()
		e.rto = min(2*e.rto, l.cfg.MaxRTO)
		e.deadline = now.Add(e.rto)
		l.q.reschedule(e)
		if e.ts {
			e.tsLast = tsMax(e.tsLast, l.tsClock(e.tuple, now))
		}
		l.sendSynAck(&e.synParams, out)
	}
}

// tsMax returns the later of two TSvals in modulo-2^32 order (RFC 7323
// §5.2), so that the TSvals of one handshake never go back.
func tsMax(a, b uint32) uint32 {
	if int32(b-a) > 0 {
		return b
	}
	return a
}

// HandleICMP applies an ICMP error quoting a SYN-ACK to the half-open
// entry of t, as Conn.HandleICMP does in SYN-RECEIVED: a protocol or
// port unreachable whose quoted sequence number is our ISS (RFC 5927 §4:
// it must be in flight) drops the entry, as Linux's tcp_req_err does for
// fatal errors; other errors change nothing (there is no user to tell of
// a soft error). It reports false when t has no entry.
func (l *Listener) HandleICMP(t Tuple, e ICMPError) (ICMPResult, bool) {
	en := l.q.find(t)
	if en == nil {
		return ICMPIgnored, false
	}
	st := l.cfg.Stats
	if e.Seq != en.iss || e.Kind != ICMPPortUnreachable && e.Kind != ICMPProtocolUnreachable {
		if st != nil {
			st.ICMPIgnored.Add(1)
		}
		return ICMPIgnored, true
	}
	if st != nil {
		st.ICMPAborts.Add(1)
	}
	l.drop(en)
	return ICMPAborted, true
}
