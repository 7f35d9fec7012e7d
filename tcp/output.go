package tcp

import "time"

// flush transmits what is due after an event: data and FIN as the windows,
// Nagle and silly-window avoidance allow, then a bare ACK if one is still
// owed ("This acknowledgment should be piggybacked on a segment being
// transmitted if possible without incurring undue delay", RFC 9293
// §3.10.7.4, seventh step).
func (c *Conn) flush(now time.Time, out Output) {
	if c.dsackPending() && c.ackNow && c.state.synchronized() {
		// A D-SACK goes in the first ACK sent after the duplicate
		// (RFC 2883 §4 (1), (2)), and only bare ACKs carry SACK blocks.
		c.sendAck(now, out)
	}
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
	o := Options{MSS: c.mss, WindowScale: -1}
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
	h := Header{
		SrcPort: c.tuple.Local.Port(), DstPort: c.tuple.Remote.Port(),
		Seq: c.iss, Flags: flags, Window: uint16(wnd), Options: &o,
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
	c.write(out, &h, 0, 0, false)
	c.snd.NXT = c.iss.Add(1)
	c.snd.MAX = Max(c.snd.MAX, c.snd.NXT)
	if c.timer.rtx.IsZero() {
		c.timer.rtx = now.Add(c.currentRTO())
	}
}

// write encodes h and n bytes of the send buffer from offset off into a
// buffer from out, sets the checksum and sends it: as one segment, or,
// when gso is set, as a super-segment whose payload the link cuts into
// pieces of SendMSS bytes, with its checksum left partial (GSOOutput).
// Segment counters count the segments that reach the wire.
func (c *Conn) write(out Output, h *Header, off, n int, gso bool) {
	hl := h.Len()
	buf, o := out.Buffer(hl + n)
	seg := buf[o : o+hl+n]
	h.Encode(seg)
	if n > 0 {
		c.sndBuf.CopyAt(seg[hl:], off)
	}
	src, dst := c.addrs()
	k := 1
	if gso {
		k = c.pieces(n)
		SetPartialChecksum(seg, src, dst)
		out.(GSOOutput).SendGSO(c.tuple, buf, o, c.sndMSS)
	} else {
		SetChecksum(seg, src, dst)
		out.Send(c.tuple, buf, o)
	}
	c.segsOut += uint64(k)
	if c.stats != nil {
		c.stats.SegmentsOut.Add(uint64(k))
	}
}

// pieces is the number of wire segments n payload bytes make at SendMSS
// (one for none).
func (c *Conn) pieces(n int) int {
	return max(1, (n+c.sndMSS-1)/c.sndMSS)
}

// header returns, with its options in o, the header for a synchronized-state segment <SEQ=seq><ACK=RCV.NXT>
// with our window and, if negotiated, a Timestamps option, and SACK blocks
// when sack is set (bare ACKs only, so that data segments keep their size).
// Sending an ACK settles any ACK owed.
//
// The header and options live on the caller's stack frame, not in the
// Conn.
func (c *Conn) header(now time.Time, o *Options, seq Value, flags Flags, sack bool) Header {
	h := Header{
		SrcPort: c.tuple.Local.Port(), DstPort: c.tuple.Remote.Port(),
		Seq: seq, Ack: c.rcv.NXT, Flags: flags | FlagACK, Window: c.advertise(),
	}
	sack = sack && c.sackOK && (c.ooo().Len() > 0 || c.dsackPending())
	if c.tsOK || sack {
		*o = Options{WindowScale: -1}
		if c.tsOK {
			o.Timestamp, o.TSVal, o.TSEcr = true, c.tsNow(now), c.tsRecent
		}
		if sack && c.sackBlocks(o) && c.stats != nil {
			c.stats.DSACKsSent.Add(1)
		}
		h.Options = o
	}
	c.lastAckSent = c.rcv.NXT
	c.ackNow = false
	c.unackedSegs, c.unackedBytes = 0, 0
	c.timer.delack = time.Time{}
	return h
}

// advertise returns the window field for an outgoing segment and records
// the offer in RCV.WND.
func (c *Conn) advertise() uint16 {
	wnd := c.offer()
	c.rcv.WND = wnd
	return uint16(min(wnd>>c.rcv.shift, 0xffff))
}

// offer is the window, in bytes, the next segment would offer: RCV.WND
// after it. Receiver silly-window avoidance (RFC 9293 §3.8.6.2.2, RFC 1122
// §4.2.3.3): "keep RCV.NXT+RCV.WND fixed until the reduction satisfies
// RCV.BUFF - RCV.USER - RCV.WND >= min(Fr * RCV.BUFF, Eff.snd.MSS)" with
// Fr = 1/2; the right edge never moves left ("The total of RCV.NXT and
// RCV.WND should not be reduced", §3.10.7.4 seventh step; SHLD-14).
//
// The 16-bit field carries the window in units of 2^Rcv.Wind.Shift (RFC
// 7323 §2.3), rounded down, so the edge the peer is told can lie up to
// 2^Rcv.Wind.Shift-1 octets short of RCV.NXT+RCV.WND: RCV.WND keeps the
// edge unrounded, as the edge segments are accepted up to, so that the
// rounding never moves it left and a peer that sent up to the previous
// edge finds all of it accepted (gVisor's receiver keeps its largest
// offered edge, rcvAcc, the same way). A new edge is at most what the
// field can say.
func (c *Conn) offer() uint32 {
	free := uint32(c.rcvBuf.Free())
	wnd := c.rcv.WND
	if wnd > free { // cannot happen: data is accepted up to the edge only
		wnd = free
	}
	if free-wnd >= uint32(min(c.rcvBuf.Cap()/2, c.rcvMSS)) {
		wnd = max(wnd, min(free, 0xffff<<c.rcv.shift))
	}
	return wnd
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
	return wnd > c.rcv.WND && wnd-c.rcv.WND >= uint32(min(c.rcvBuf.Cap()/2, c.rcvMSS)) &&
		wnd>>c.rcv.shift > c.rcv.WND>>c.rcv.shift
}

// sendAck sends <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, at ackSeq.
func (c *Conn) sendAck(now time.Time, out Output) {
	var o Options
	h := c.header(now, &o, c.ackSeq(), 0, true)
	c.write(out, &h, 0, 0, false)
}

// ackSeq is the sequence number of a segment without text: SND.MAX
// stands for SND.NXT, because after a timeout SND.NXT went back to
// SND.UNA, and a bare ACK with that sequence number would fall below the
// peer's RCV.NXT and be dropped as unacceptable, ACK field and all (BSD's
// tcp_output makes the same choice).
//
// Unless SND.MAX lies beyond the peer's right edge, SND.UNA+SND.WND: a
// peer that shrank its window below data already sent (gVisor does, its
// scaled window rounded down as its buffer fills) or that closed it under
// a window probe accepts a segment without text only up to that edge
// (RFC 9293 §3.10.7.4, Table 6; SEG.SEQ = RCV.NXT when the window is
// zero), and dropping our ACKs there would drop our window updates: two
// stacks with both windows closed would wait for each other for good.
// Such ACKs go at the edge, as Linux's tcp_acceptable_seq sends them. A
// shrink smaller than one unit of the peer's window scale is the
// rounding of its window field, not a retraction: a receiver that rounds
// (ours, gVisor's) still accepts up to its unrounded edge, so SND.MAX
// stays (tcp_acceptable_seq makes the same exception).
func (c *Conn) ackSeq() Value {
	edge := c.snd.UNA.Add(c.snd.WND)
	if c.snd.MAX.LessThanEq(edge) {
		return c.snd.MAX
	}
	if c.snd.WND > 0 && c.snd.MAX.Sub(edge) < 1<<c.snd.shift {
		return c.snd.MAX
	}
	return edge
}

// sendRST sends <SEQ=SND.NXT><CTL=RST> (RFC 9293 §3.10.5 ABORT), with
// SND.MAX for SND.NXT as in sendAck.
func (c *Conn) sendRST(out Output) {
	h := Header{
		SrcPort: c.tuple.Local.Port(), DstPort: c.tuple.Remote.Port(),
		Seq: c.snd.MAX, Flags: FlagRST,
	}
	c.write(out, &h, 0, 0, false)
	if c.stats != nil {
		c.stats.ResetsSent.Add(1)
	}
}

// sendSegment sends n bytes of data starting at sequence number seq, with
// FIN when fin is set, and does the bookkeeping of RFC 6298 (5.1) and
// Karn's rule. It moves neither SND.NXT nor the retransmission queue.
//
// More than SendMSS bytes go as a super-segment (GSO, see SetGSOMaxSize):
// n segments sent at one instant. Its header is the first piece's, its
// PSH and FIN what the last piece carries (the link puts them on the last
// piece only), and it is timed, counted and retransmitted as the run of
// segments it stands for. A path MTU probe (RFC 4821) is larger than
// SendMSS too, but is one segment: it is never cut.
func (c *Conn) sendSegment(now time.Time, out Output, seq Value, n int, fin bool) {
	gso := n > c.sndMSS && !c.inProbe(seq) && c.gsoLimit(out) > c.sndMSS
	flags := Flags(0)
	end := seq.Add(uint32(n))
	if n > 0 && (end == c.sndHead.Add(uint32(c.sndBuf.Len())) || (seq.LessThan(c.snd.MAX) && end == c.snd.NXT)) {
		// The last queued byte, or the last sent one going again: push
		// it (RFC 9293 §3.9.1).
		flags |= FlagPSH
	}
	if fin {
		flags |= FlagFIN
		c.finSent = true
		c.finSeq = end
		end = end.Add(1)
	}
	var o Options
	h := c.header(now, &o, seq, flags, n == 0)
	c.write(out, &h, int(seq.Sub(c.sndHead)), n, gso)
	if seq.LessThan(c.snd.MAX) {
		k := 1
		if gso {
			k = c.pieces(n)
		}
		c.retrans += uint64(k)
		if c.stats != nil {
			c.stats.Retransmits.Add(uint64(k))
		}
		// Karn's rule (RFC 6298 §3): a retransmitted segment is not timed.
		if c.rttTiming && c.rttSeq.GreaterThan(seq) {
			c.rttTiming = false
		}
	} else if !c.tsOK && !c.rttTiming {
		c.rttTiming, c.rttSeq, c.rttStart = true, end, now
	}
	c.snd.MAX = Max(c.snd.MAX, end)
	c.probeEnd = Max(c.probeEnd, c.snd.MAX)
	c.lastSend = now
	if n > 0 && (n < c.sndMSS || gso && n%c.sndMSS != 0) {
		// A small segment, or a super-segment ending in one.
		c.sndSmallEnd = end
	}
	// RFC 6298 (5.1): "Every time a packet containing data is sent
	// (including a retransmission), if the timer is not running, start it".
	if c.timer.rtx.IsZero() {
		c.timer.rtx = now.Add(c.currentRTO())
	}
	c.timer.persist = time.Time{}
	if c.recovery == recoveryFast {
		c.prrSent(end.Sub(seq))
	}
}

// sendNew sends a new segment of n bytes (and the FIN) at SND.NXT,
// advances SND.NXT and queues its record.
func (c *Conn) sendNew(now time.Time, out Output, n int, fin bool) {
	c.lossInit()
	seq := c.snd.NXT
	c.sendSegment(now, out, seq, n, fin)
	end := seq.Add(uint32(n))
	if fin {
		end = end.Add(1)
	}
	c.snd.NXT = end
	c.q.push(seq, end, now)
}

// retransmitRecord sends record i of the retransmission queue again, in
// one segment of up to limit payload bytes (SendMSS, or with GSO a
// multiple of it): joined with the lost records after it while it is
// shorter than limit (small writes sent apart go again as one segment, as
// Linux's tcp_retrans_try_collapse does; with GSO a hole of several
// segments goes again as one super-segment as large as the hole), and cut
// to limit if it is longer (the MSS may have dropped since it was sent,
// or the record is a super-segment larger than what may go now).
func (c *Conn) retransmitRecord(now time.Time, out Output, i int, limit int) {
	rec := c.q.at(i)
	limit = max(limit, c.sndMSS)
	for i+1 < c.q.n() && rec.has(txLost) && rec.len() < uint32(limit) {
		next := c.q.at(i + 1)
		if next.flags&(txLost|txSACKed) != txLost {
			break
		}
		c.q.mergeNext(i)
		rec = c.q.at(i)
	}
	fin := c.finSent && rec.end == c.finSeq.Add(1)
	n := rec.len()
	if fin {
		n--
	}
	if n > uint32(limit) {
		c.q.split(i, rec.start.Add(uint32(limit)))
		rec = c.q.at(i)
		n, fin = uint32(limit), false
	}
	c.sendSegment(now, out, rec.start, int(n), fin)
	c.q.mark(rec, txRetrans, txLost|txTLP)
	rec.xmit = now
	if c.undo.active {
		// One per wire segment: the peer D-SACKs each duplicate piece.
		c.undo.retrans += c.pieces(int(n))
	}
}

// firstLost returns the index of the oldest record deemed lost, or -1.
func (c *Conn) firstLost() int {
	if c.lostBytes() == 0 {
		return -1
	}
	for i := 0; i < c.q.n(); i++ {
		if c.q.at(i).has(txLost) {
			return i
		}
	}
	return -1
}

// budget is how many bytes may be put in flight now: cwnd - pipe, with
// PRR's cwnd (pipe + sndcnt, RFC 9937) in fast recovery and the
// controller's otherwise (RFC 6675 §5 step C: "If cwnd - pipe >= 1 SMSS,
// the sender SHOULD transmit one or more segments"; RFC 5681 §3.1 outside
// recovery, where pipe is FlightSize).
func (c *Conn) budget() uint32 {
	cwnd, pipe := c.cwnd(), c.pipe()
	if cwnd <= pipe {
		return 0
	}
	return cwnd - pipe
}

// sendData transmits what the windows allow: first the segments deemed
// lost, oldest first (RFC 6675 §4 NextSeg rule 1, RFC 8985 §6.2: lost
// segments are retransmitted), then new data from SND.NXT while the send
// window (RFC 9293 §3.8.6) and the budget allow, applying the Nagle
// algorithm (RFC 9293 §3.7.4, in Minshall's form: a small segment waits
// only while an earlier small segment is unacknowledged) and sender
// silly-window avoidance (RFC 9293 §3.8.6.2.1). force sends what the
// windows allow even when those algorithms would wait (the override
// timeout of §3.8.6.2.1).
func (c *Conn) sendData(now time.Time, out Output, force bool) {
	dataEnd := c.sndHead.Add(uint32(c.sndBuf.Len()))
	if c.snd.NXT.LessThan(c.sndHead) { // only before our SYN is acknowledged
		return
	}
	// RFC 5681 §4.1: "if the TCP has not sent data in an interval exceeding
	// the retransmission timeout, it SHOULD set cwnd to no more than RW
	// before beginning transmission" (RW = min(IW, cwnd)).
	if c.snd.UNA == c.snd.NXT && c.snd.NXT.LessThan(dataEnd) && c.lossState != nil && !c.lastSend.IsZero() && now.Sub(c.lastSend) > c.rto {
		c.ctrl().Restart(now, initialWindow(c.sndMSS), c.sndMSS)
	}
	mss := uint32(c.sndMSS)
	sentNew := false
	// Nothing to send, nothing to compute (an idle connection need not
	// create its congestion controller).
	if c.lostBytes() == 0 && !c.snd.NXT.LessThan(dataEnd) && !(c.shutWrite && !c.finSent) {
		c.armPersist(now, dataEnd)
		return
	}
	c.lossInit()
	// lim is the most payload one segment may carry: SendMSS, or with GSO
	// the largest multiple of it the link accepts (a run of full-sized
	// segments sent at once).
	lim := uint32(c.gsoLimit(out))
	for c.frto != frtoProbed { // F-RTO step 3 waits for the next ACK
		budget := c.budget()
		if c.frto == frtoProbing {
			// F-RTO step 2.b: new data instead of retransmissions.
			budget = c.frtoBudget
		} else if i := c.firstLost(); i >= 0 {
			rec := c.q.at(i)
			// Retransmit within the peer's window; the segment at SND.UNA
			// may go when the window has shrunk since it was sent but
			// not to zero (a zero window is probed instead).
			off := rec.start.Sub(c.snd.UNA)
			inWnd := c.snd.WND > 0 && (rec.start == c.snd.UNA || off < c.snd.WND)
			if budget < min(rec.len(), mss) || !inWnd {
				break
			}
			// With GSO, as many segments of the hole as the budget and
			// the window allow go as one super-segment; never less than
			// the one segment the tests above let go.
			n := mss
			if lim > mss {
				room := min(budget, lim)
				if c.snd.WND > off {
					room = min(room, c.snd.WND-off)
				}
				n = max(mss, room/mss*mss)
			}
			c.retransmitRecord(now, out, i, int(n))
			continue
		}
		flight := c.snd.NXT.Sub(c.snd.UNA)
		var usable uint32
		if c.snd.WND > flight {
			usable = min(c.snd.WND-flight, budget)
		}
		avail := 0
		if c.snd.NXT.LessThan(dataEnd) {
			avail = int(dataEnd.Sub(c.snd.NXT))
		}
		n := min(avail, int(min(usable, lim)))
		// The FIN goes after the last byte (RFC 9293 §3.10.4 "Queue this
		// until all preceding SENDs have been segmentized").
		fin := c.shutWrite && !c.finSent && c.snd.NXT.Add(uint32(n)) == dataEnd
		if n == 0 && !fin {
			break
		}
		if n > c.sndMSS {
			// A super-segment: the full-sized segments this loop would
			// send one by one, and the small one after them only if it
			// would go too, by the test below with data in flight (the
			// full segments) and no override.
			full := n / c.sndMSS * c.sndMSS
			if tail := n - full; tail > 0 {
				nagleOK := c.noDelay || c.sndSmallEnd.LessThanEq(c.snd.UNA) || fin
				half := c.snd.maxWND > 0 && uint32(tail) >= c.snd.maxWND/2
				if !(n == avail && nagleOK) && !half {
					n, fin = full, false
				}
			}
		} else if n > 0 && n < c.sndMSS && !force {
			// RFC 9293 §3.8.6.2.1: send if a full segment fits, or all
			// queued data fits and may go (Nagle), or at least half the
			// largest window ever offered fits.
			nagleOK := c.noDelay || flight == 0 || c.sndSmallEnd.LessThanEq(c.snd.UNA) || fin
			half := c.snd.maxWND > 0 && uint32(n) >= c.snd.maxWND/2
			if !(n == avail && nagleOK) && !half {
				break
			}
		}
		c.sendNew(now, out, n, fin)
		sentNew = true
		if c.frto == frtoProbing {
			c.frtoBudget -= min(c.frtoBudget, uint32(n))
			if c.frtoBudget == 0 || fin {
				c.frto = frtoProbed
			}
		}
		if fin {
			break
		}
		force = false
	}
	if c.frto == frtoProbing {
		// Nothing (more) could be sent: step 2.b's "otherwise" is the
		// conventional recovery, unless a probe already went.
		if c.frtoBudget < 2*mss {
			c.frto = frtoProbed
		} else {
			c.frto = frtoOff
		}
	}
	if sentNew {
		c.tlpSchedule(now)
	}
	c.armPersist(now, dataEnd)
}

// armPersist starts the persist timer when data waits but nothing is in
// flight to bring an ACK that would reopen the window (RFC 9293 §3.8.6.1,
// RFC 1122 §4.2.2.17).
func (c *Conn) armPersist(now time.Time, dataEnd Value) {
	waiting := c.snd.NXT.LessThan(dataEnd) || c.lostBytes() > 0
	if !waiting || c.pipe() > 0 || !c.timer.rtx.IsZero() {
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

// sendProbe sends a zero-window probe: one byte beyond the window
// (RFC 9293 §3.8.6.1: "the sending TCP peer must regularly transmit at
// least one octet of new data (if available)"), the first byte deemed lost
// when a timeout found the window shut, else the byte at SND.NXT.
// SND.NXT and SND.MAX do not move (the byte is not in flight); probeEnd
// makes an ACK of it acceptable.
func (c *Conn) sendProbe(now time.Time, out Output) {
	seq := c.snd.NXT
	if i := c.firstLost(); i >= 0 {
		seq = c.q.at(i).start
	}
	if dataEnd := c.sndHead.Add(uint32(c.sndBuf.Len())); !seq.LessThan(dataEnd) {
		// No data octet to probe with, only our FIN: it goes again
		// instead (it takes no room in the peer's window).
		if i := c.firstLost(); i >= 0 {
			c.retransmitRecord(now, out, i, c.sndMSS)
			if c.stats != nil {
				c.stats.WindowProbes.Add(1)
			}
		}
		return
	}
	var o Options
	h := c.header(now, &o, seq, 0, false)
	c.write(out, &h, int(seq.Sub(c.sndHead)), 1, false)
	c.probeEnd = Max(c.probeEnd, seq.Add(1))
	if c.stats != nil {
		c.stats.WindowProbes.Add(1)
	}
}
