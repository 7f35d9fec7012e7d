package tcp

import "time"

// flush transmits what is due after an event: data and FIN as the windows,
// Nagle and silly-window avoidance allow, then a bare ACK if one is still
// owed ("This acknowledgment should be piggybacked on a segment being
// transmitted if possible without incurring undue delay", RFC 9293
// §3.10.7.4, seventh step).
func (c *Conn) flush(now time.Time, out Output) {
	switch c.state {
	case StateEstablished, StateCloseWait, StateFinWait1, StateClosing, StateLastAck:
		c.maybeProbe(now, out)
		c.sendData(now, out, false)
	}
	if c.ackNow && c.state != StateClosed && c.state != StateSynSent {
		c.sendAck(now, out)
	}
}

// sendSYN sends <SEQ=ISS><CTL=SYN> in SYN-SENT, or
// <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> in SYN-RECEIVED (RFC 9293 §3.10.1,
// §3.10.7.2, §3.10.7.3), with our options, and starts the retransmission
// timer.
func (c *Conn) sendSYN(now time.Time, out Output) {
	o := &c.optsOut
	*o = Options{MSS: c.mss, WindowScale: -1}
	active := c.state == StateSynSent
	if c.cfg.WindowScale && (active || c.wsOK) {
		o.WindowScale = int8(c.ourShift())
	}
	o.SACKPermitted = c.cfg.SACKPermitted && (active || c.sackOK)
	if c.cfg.Timestamps && (active || c.tsOK) {
		o.Timestamp = true
		o.TSVal = c.tsNow(now)
		if !active {
			o.TSEcr = c.tsRecent
		}
	}
	flags := FlagSYN
	if !active {
		flags |= FlagACK
	}
	// RFC 7323 §2.2: the window field of a SYN is never scaled.
	wnd := uint32(min(c.rcvBuf.Free(), 0xffff))
	c.rcv.WND = wnd
	h := &c.hdr
	*h = Header{
		SrcPort: c.tuple.Local.Port(), DstPort: c.tuple.Remote.Port(),
		Seq: c.iss, Flags: flags, Window: uint16(wnd), Options: o,
	}
	if !active {
		h.Ack = c.rcv.NXT
		c.lastAckSent = c.rcv.NXT
		c.ackNow = false
	}
	if c.snd.MAX != c.iss {
		c.retrans++
		if c.stats != nil {
			c.stats.Retransmits.Add(1)
		}
		c.rttTiming = false // Karn's rule (RFC 6298 §3)
	} else {
		c.rttTiming, c.rttSeq, c.rttStart = true, c.iss.Add(1), now
	}
	c.write(out, 0, 0)
	c.snd.NXT = c.iss.Add(1)
	c.snd.MAX = Max(c.snd.MAX, c.snd.NXT)
	if c.timer.rtx.IsZero() {
		c.timer.rtx = now.Add(c.currentRTO())
	}
}

// write encodes c.hdr and n bytes of the send buffer from offset off into a
// buffer from out, sets the checksum and sends it.
func (c *Conn) write(out Output, off, n int) {
	h := &c.hdr
	hl := h.Len()
	buf, o := out.Buffer(hl + n)
	seg := buf[o : o+hl+n]
	h.Encode(seg)
	if n > 0 {
		c.sndBuf.CopyAt(seg[hl:], off)
	}
	src, dst := c.addrs()
	SetChecksum(seg, src, dst)
	out.Send(c.tuple, buf, o)
	c.segsOut++
	if c.stats != nil {
		c.stats.SegmentsOut.Add(1)
	}
}

// header fills c.hdr for a synchronized-state segment <SEQ=seq><ACK=RCV.NXT>
// with our window and, if negotiated, a Timestamps option, and SACK blocks
// when sack is set (bare ACKs only, so that data segments keep their size).
// Sending an ACK settles any ACK owed.
func (c *Conn) header(now time.Time, seq Value, flags Flags, sack bool) {
	h := &c.hdr
	*h = Header{
		SrcPort: c.tuple.Local.Port(), DstPort: c.tuple.Remote.Port(),
		Seq: seq, Ack: c.rcv.NXT, Flags: flags | FlagACK, Window: c.advertise(),
	}
	sack = sack && c.sackOK && c.ooo.Len() > 0
	if c.tsOK || sack {
		o := &c.optsOut
		*o = Options{WindowScale: -1}
		if c.tsOK {
			o.Timestamp, o.TSVal, o.TSEcr = true, c.tsNow(now), c.tsRecent
		}
		if sack {
			c.sackBlocks(o)
		}
		h.Options = o
	}
	c.lastAckSent = c.rcv.NXT
	c.ackNow = false
	c.unackedSegs, c.unackedBytes = 0, 0
	c.timer.delack = time.Time{}
}

// sackBlocks reports the out-of-order ranges held (RFC 2018 §4): "The first
// SACK block ... MUST specify the contiguous block of data containing the
// segment which triggered this ACK"; the others follow, highest first.
// Options.Encode keeps as many as fit (three beside timestamps).
func (c *Conn) sackBlocks(o *Options) {
	first := -1
	for i := 0; i < c.ooo.n; i++ {
		if r := c.ooo.r[i]; c.lastOOO.InWindow(r.start, r.end.Sub(r.start)) {
			first = i
			o.SACK[0] = SACKBlock{Left: r.start, Right: r.end}
			o.NumSACK = 1
		}
	}
	for i := c.ooo.n - 1; i >= 0 && o.NumSACK < len(o.SACK); i-- {
		if i != first {
			r := c.ooo.r[i]
			o.SACK[o.NumSACK] = SACKBlock{Left: r.start, Right: r.end}
			o.NumSACK++
		}
	}
}

// advertise returns the window field for an outgoing segment and records
// the offer in RCV.WND.
func (c *Conn) advertise() uint16 {
	wnd := c.offer()
	c.rcv.WND = wnd
	return uint16(wnd >> c.rcv.shift)
}

// offer is the window, in bytes, the next segment would advertise.
// Receiver silly-window avoidance (RFC 9293 §3.8.6.2.2, RFC 1122
// §4.2.3.3): "keep RCV.NXT+RCV.WND fixed until the reduction satisfies
// RCV.BUFF - RCV.USER - RCV.WND >= min(Fr * RCV.BUFF, Eff.snd.MSS)" with
// Fr = 1/2; the right edge never moves left ("The total of RCV.NXT and
// RCV.WND should not be reduced", §3.10.7.4 seventh step). The result is
// what the 16-bit field can carry: a multiple of 2^Rcv.Wind.Shift, at most
// 65535 << Rcv.Wind.Shift (RFC 7323 §2.3).
func (c *Conn) offer() uint32 {
	free := uint32(c.rcvBuf.Free())
	wnd := c.rcv.WND
	if wnd > free { // cannot happen: the offer shrinks as data arrives
		wnd = free
	}
	if free-wnd >= uint32(min(c.rcvBuf.Cap()/2, c.rcvMSS)) {
		wnd = free
	}
	field := min(wnd>>c.rcv.shift, 0xffff)
	return field << c.rcv.shift
}

// windowUpdateDue reports whether reading has opened the window enough to
// tell the peer (RFC 9293 §3.8.6.2.2): the offer the next segment would
// carry moves the right edge RCV.NXT+RCV.WND by at least
// min(RCV.BUFF/2, Eff.snd.MSS). Comparing the offer rather than the free
// buffer matters when the buffer is larger than the field can say
// (without window scaling, beyond 65535): an "update" that repeats the
// same window and ACK is a duplicate ACK to the peer (RFC 5681 §2).
func (c *Conn) windowUpdateDue() bool {
	wnd := c.offer()
	return wnd > c.rcv.WND && wnd-c.rcv.WND >= uint32(min(c.rcvBuf.Cap()/2, c.rcvMSS))
}

// sendAck sends <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>. SND.MAX stands for
// SND.NXT: after a timeout SND.NXT went back to SND.UNA, and a bare ACK
// with that sequence number would fall below the peer's RCV.NXT and be
// dropped as unacceptable, ACK field and all (BSD's tcp_output makes the
// same choice).
func (c *Conn) sendAck(now time.Time, out Output) {
	c.header(now, c.snd.MAX, 0, true)
	c.write(out, 0, 0)
}

// sendRST sends <SEQ=SND.NXT><CTL=RST> (RFC 9293 §3.10.5 ABORT), with
// SND.MAX for SND.NXT as in sendAck.
func (c *Conn) sendRST(out Output) {
	c.hdr = Header{
		SrcPort: c.tuple.Local.Port(), DstPort: c.tuple.Remote.Port(),
		Seq: c.snd.MAX, Flags: FlagRST,
	}
	c.write(out, 0, 0)
	if c.stats != nil {
		c.stats.ResetsSent.Add(1)
	}
}

// sendSegment sends n bytes of data starting at sequence number seq, with
// FIN when fin is set, and does the bookkeeping of RFC 6298 (5.1) and
// Karn's rule. It does not move SND.NXT.
func (c *Conn) sendSegment(now time.Time, out Output, seq Value, n int, fin bool) {
	flags := Flags(0)
	end := seq.Add(uint32(n))
	if n > 0 && end == c.sndHead.Add(uint32(c.sndBuf.Len())) {
		flags |= FlagPSH // the last queued byte: push it (RFC 9293 §3.9.1)
	}
	if fin {
		flags |= FlagFIN
		c.finSent = true
		c.finSeq = end
		end = end.Add(1)
	}
	c.header(now, seq, flags, n == 0)
	c.write(out, int(seq.Sub(c.sndHead)), n)
	if seq.LessThan(c.snd.MAX) {
		c.retrans++
		if c.stats != nil {
			c.stats.Retransmits.Add(1)
		}
		// Karn's rule (RFC 6298 §3): a retransmitted segment is not timed.
		if c.rttTiming && c.rttSeq.GreaterThan(seq) {
			c.rttTiming = false
		}
	} else if !c.tsOK && !c.rttTiming {
		c.rttTiming, c.rttSeq, c.rttStart = true, end, now
	}
	c.snd.MAX = Max(c.snd.MAX, end)
	c.probeEnd = c.snd.MAX
	c.lastSend = now
	if n > 0 && n < c.sndMSS {
		c.sndSmallEnd = end
	}
	// RFC 6298 (5.1): "Every time a packet containing data is sent
	// (including a retransmission), if the timer is not running, start it".
	if c.timer.rtx.IsZero() {
		c.timer.rtx = now.Add(c.currentRTO())
	}
	c.timer.persist = time.Time{}
}

// sendData transmits new data from SND.NXT while the send window (RFC 9293
// §3.8.6) and congestion window (RFC 5681 §3.1) allow, applying the Nagle
// algorithm (RFC 9293 §3.7.4, in Minshall's form: a small segment waits only
// while an earlier small segment is unacknowledged) and sender silly-window
// avoidance (RFC 9293 §3.8.6.2.1). force sends what the windows allow even
// when those algorithms would wait (the override timeout of §3.8.6.2.1).
func (c *Conn) sendData(now time.Time, out Output, force bool) {
	dataEnd := c.sndHead.Add(uint32(c.sndBuf.Len()))
	// RFC 5681 §4.1: "if the TCP has not sent data in an interval exceeding
	// the retransmission timeout, it SHOULD set cwnd to no more than RW
	// before beginning transmission" (RW = min(IW, cwnd)).
	if c.snd.UNA == c.snd.MAX && c.snd.NXT.LessThan(dataEnd) && !c.lastSend.IsZero() && now.Sub(c.lastSend) > c.rto {
		c.cwnd = min(c.cwnd, initialWindow(c.sndMSS))
	}
	// RFC 6675 §5: in SACK-based loss recovery, "(B.2) Use SetPipe () to
	// re-calculate the number of octets still in the network" and "(C) If
	// cwnd - pipe >= 1 SMSS, the sender SHOULD transmit one or more
	// segments": NextSeg rule (1) (a lost hole), else rule (2) (new
	// data, below), else rule (3) (a hole not yet deemed lost).
	// Before recovery, duplicate ACKs let new data go as "(3) ... Limited
	// Transmit [RFC5681], except that the number of octets which can be
	// sent is determined by pipe and cwnd as follows: (3.1) Set HighRxt to
	// HighACK. (3.2) Run SetPipe (). (3.3) If (cwnd - pipe) >= 1 SMSS,
	// there exists previously unsent data, and the receiver's advertised
	// window allows, transmit up to 1 SMSS of data".
	sackRecovery := c.inRecovery && c.sackOK
	pipeMode := sackRecovery || c.sackOK && c.dupAcks > 0 && c.sacked.Len() > 0 && c.snd.NXT == c.snd.MAX
	var pipe uint32
	if pipeMode {
		if !sackRecovery {
			c.highRxt = c.snd.UNA
		}
		pipe = c.setPipe()
	}
	mss := uint32(c.sndMSS)
	for {
		if c.snd.NXT.LessThan(c.sndHead) { // only before our SYN is acknowledged
			return
		}
		flight := c.snd.NXT.Sub(c.snd.UNA)
		var usable uint32
		limit := uint32(c.sndMSS)
		if pipeMode {
			if c.cwnd < pipe || c.cwnd-pipe < mss {
				break
			}
			// (C.4): "incrementing pipe by the number of octets
			// transmitted in (C.1)"; (C.5): "If cwnd - pipe >= 1 SMSS,
			// return to (C.1)".
			if sackRecovery {
				if sent := c.sackRetransmit(now, out, true); sent > 0 {
					pipe += sent
					continue
				}
			}
			// Rule (2): "previously unsent data" if "the receiver's
			// advertised window allows".
			if c.snd.WND > flight {
				usable = min(c.snd.WND-flight, mss)
			}
		} else {
			cwnd := c.cwnd
			if !c.inRecovery && c.dupAcks > 0 && c.dupAcks < 3 {
				// RFC 3042 §2: "the sender can send new data ... on the
				// first two duplicate ACKs ... the amount of outstanding
				// data would remain less than or equal to the congestion
				// window plus 2 segments".
				cwnd += uint32(c.dupAcks * c.sndMSS)
			}
			wnd := min(c.snd.WND, cwnd)
			if wnd > flight {
				usable = wnd - flight
			}
			if c.sackOK && c.snd.NXT.LessThan(c.snd.MAX) {
				// Going back after a timeout: skip what the peer SACKed
				// since (RFC 6675 §5.1), sending only the holes.
				c.snd.NXT, limit = c.sackedAt(c.snd.NXT, limit)
				flight = c.snd.NXT.Sub(c.snd.UNA)
				usable = 0
				if wnd > flight {
					usable = wnd - flight
				}
			}
		}
		avail := 0
		if c.snd.NXT.LessThan(dataEnd) {
			avail = int(dataEnd.Sub(c.snd.NXT))
		}
		n := min(avail, int(min(usable, limit)))
		// The FIN goes after the last byte (RFC 9293 §3.10.4 "Queue this
		// until all preceding SENDs have been segmentized").
		fin := c.shutWrite && c.snd.NXT.Add(uint32(n)) == dataEnd
		if n == 0 && !fin {
			if sackRecovery {
				// Rule (3): "one segment of up to SMSS octets starting
				// with S3 SHOULD be returned".
				if sent := c.sackRetransmit(now, out, false); sent > 0 {
					pipe += sent
					continue
				}
			}
			break
		}
		if n > 0 && n < c.sndMSS && !force && n != int(limit) {
			// RFC 9293 §3.8.6.2.1: send if a full segment fits, or all
			// queued data fits and may go (Nagle), or at least half the
			// largest window ever offered fits.
			nagleOK := c.noDelay || flight == 0 || c.sndSmallEnd.LessThanEq(c.snd.UNA) || fin
			half := c.snd.maxWND > 0 && uint32(n) >= c.snd.maxWND/2
			if !(n == avail && nagleOK) && !half {
				break
			}
		}
		c.sendSegment(now, out, c.snd.NXT, n, fin)
		c.snd.NXT = c.snd.NXT.Add(uint32(n))
		pipe += uint32(n)
		if fin {
			c.snd.NXT = c.snd.NXT.Add(1)
			break
		}
		force = false
	}
	c.armPersist(now, dataEnd)
}

// armPersist starts the persist timer when data waits but nothing is in
// flight to bring an ACK that would reopen the window (RFC 9293 §3.8.6.1,
// RFC 1122 §4.2.2.17).
func (c *Conn) armPersist(now time.Time, dataEnd Value) {
	waiting := c.snd.NXT.LessThan(dataEnd)
	if !waiting || c.snd.UNA != c.snd.NXT || !c.timer.rtx.IsZero() {
		if !waiting {
			c.timer.persist = time.Time{}
		}
		return
	}
	if c.timer.persist.IsZero() {
		d := c.currentRTO() << min(c.persistBackoff, 16)
		c.timer.persist = now.Add(min(d, c.cfg.MaxRTO))
	}
}

// sendProbe sends a zero-window probe: one byte of new data beyond the
// window (RFC 9293 §3.8.6.1: "the sending TCP peer must regularly transmit
// at least one octet of new data (if available)"). SND.NXT and SND.MAX do
// not move (the byte is not in flight); probeEnd makes an ACK of it
// acceptable.
func (c *Conn) sendProbe(now time.Time, out Output) {
	c.header(now, c.snd.NXT, 0, false)
	c.write(out, int(c.snd.NXT.Sub(c.sndHead)), 1)
	c.probeEnd = Max(c.probeEnd, c.snd.NXT.Add(1))
	if c.stats != nil {
		c.stats.WindowProbes.Add(1)
	}
}
