package filter

// Sequence-number comparisons modulo 2^32 (RFC 9293 §3.4).
func seqBefore(a, b uint32) bool { return int32(a-b) < 0 }
func seqAfter(a, b uint32) bool  { return int32(a-b) > 0 }

func seqMax(a, b uint32) uint32 {
	if seqAfter(a, b) {
		return a
	}
	return b
}

// maxWindowScale is the largest shift RFC 7323 §2.3 allows.
const maxWindowScale = 14

// wscaleOption returns the Window Scale option's shift in a SYN's options
// (RFC 7323 §2.2: kind 3, length 3), clamped to 14 (§2.3).
func wscaleOption(opts []byte) (uint8, bool) {
	for len(opts) > 0 {
		switch opts[0] {
		case 0: // End of Option List (RFC 9293 §3.2)
			return 0, false
		case 1: // No-Operation
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || opts[1] < 2 || int(opts[1]) > len(opts) {
			return 0, false
		}
		if opts[0] == 3 && opts[1] == 3 {
			return min(opts[2], maxWindowScale), true
		}
		opts = opts[opts[1]:]
	}
	return 0, false
}

// segEnd is the sequence number after the segment: SYN and FIN each take
// one (RFC 9293 §3.4).
func segEnd(v *view, payload []byte) uint32 {
	end := v.seq + uint32(len(payload)-v.dataOff)
	if v.flags&flagSYN != 0 {
		end++
	}
	if v.flags&flagFIN != 0 {
		end++
	}
	return end
}

// tcpNew starts tracking c on its first TCP segment: a SYN opens it in
// SYN_SENT; a segment with ACK (and no SYN or RST) is picked up mid-stream
// as ESTABLISHED, as Linux does with nf_conntrack_tcp_loose=1, with window
// tracking learning the window from there. Anything else is INVALID.
func (ct *Conntrack) tcpNew(c *conn, v *view, payload []byte) bool {
	w := &c.win[dirOriginal]
	switch {
	case v.flags&(flagSYN|flagACK|flagRST|flagFIN) == flagSYN:
		c.tcp = TCPSynSent
		w.scale, w.wscale = wscaleOption(payload[20:v.dataOff])
	case v.flags&(flagSYN|flagRST) == 0 && v.flags&flagACK != 0:
		c.tcp = TCPEstablished
		// Picked up: the window scales are unknown, so the windows
		// are not checked (Linux marks such flows BE_LIBERAL).
		c.liberal = true
	default:
		return false
	}
	w.end = segEnd(v, payload)
	w.maxwin = max(uint32(v.win), 1)
	w.maxend = w.end
	w.init = true
	return true
}

// tcpPacket follows c through one more segment going in direction dir, in
// the spirit of Linux's tcp_packet and tcp_in_window: it reports false for
// a segment out of window or out of place (INVALID), leaving c unchanged.
func (ct *Conntrack) tcpPacket(c *conn, dir uint8, v *view, payload []byte) bool {
	snd, rcv := &c.win[dir], &c.win[1-dir]
	fl := v.flags
	syn, ack, rst, fin := fl&flagSYN != 0, fl&flagACK != 0, fl&flagRST != 0, fl&flagFIN != 0
	switch {
	case syn && !ack:
		if dir == dirOriginal && (c.tcp == TCPSynSent || c.tcp == TCPSynSent2) {
			return true // a retransmitted SYN
		}
		if dir == dirReply && c.tcp == TCPSynSent {
			// Simultaneous open (RFC 9293 §3.5, Figure 8).
			ct.tcpInitSender(c, dir, v, payload)
			c.tcp = TCPSynSent2
			return true
		}
		return false
	case syn && ack:
		if dir != dirReply && c.tcp != TCPSynSent2 || rst || fin {
			return false
		}
		if c.tcp != TCPSynSent && c.tcp != TCPSynSent2 && c.tcp != TCPSynRecv {
			return false
		}
		// RFC 9293 §3.10.7.3: the SYN,ACK must acknowledge our SYN.
		if v.ack != rcv.end {
			return false
		}
		if c.tcp != TCPSynRecv {
			ct.tcpInitSender(c, dir, v, payload)
		}
		// The SYN,ACK's window bounds what the SYN's sender may send.
		rcv.maxend = seqMax(rcv.maxend, v.ack+uint32(v.win))
		c.tcp = TCPSynRecv
		return true
	}
	if !snd.init {
		// The first segment seen from this side of a picked-up flow.
		snd.end, snd.maxend, snd.maxwin, snd.init = segEnd(v, payload), segEnd(v, payload), max(uint32(v.win), 1), true
	}
	if c.tcp == TCPSynSent || c.tcp == TCPSynSent2 {
		if !rst {
			return false // no data before the SYN,ACK
		}
	}
	if !ct.inWindow(snd, rcv, v, payload) && !c.liberal {
		return false
	}
	if rst {
		c.tcp = TCPClose
		return true
	}
	if fin && !snd.fin {
		snd.fin, snd.finEnd = true, segEnd(v, payload)
	}
	if ack && rcv.fin && !seqBefore(v.ack, rcv.finEnd) {
		rcv.finAcked = true
	}
	switch {
	case c.tcp == TCPSynRecv && dir == dirOriginal && ack:
		// The third segment of the handshake (RFC 9293 §3.5, Figure 6).
		c.tcp = TCPEstablished
		c.assured = true
	case c.tcp == TCPSynRecv:
	case snd.finAcked && rcv.finAcked:
		c.tcp = TCPTimeWait
	case snd.fin && rcv.fin:
		c.tcp = TCPLastAck
	case c.win[dirOriginal].fin:
		c.tcp = TCPFinWait
	case c.win[dirReply].fin:
		c.tcp = TCPCloseWait
	default:
		if c.tcp == TCPEstablished && dir == dirReply {
			c.assured = true // seen both ways (a picked-up flow)
		}
	}
	return true
}

// tcpInitSender records the SYN of the side sending in direction dir.
func (ct *Conntrack) tcpInitSender(c *conn, dir uint8, v *view, payload []byte) {
	snd, rcv := &c.win[dir], &c.win[1-dir]
	snd.scale, snd.wscale = wscaleOption(payload[20:v.dataOff])
	if !snd.wscale || !rcv.wscale {
		// RFC 7323 §2.2: scaling is on only if both sides sent the option.
		snd.scale, rcv.scale = 0, 0
	}
	snd.end = segEnd(v, payload)
	snd.maxwin = max(uint32(v.win), 1)
	// The SYN's sender may send what the other side's SYN offered.
	snd.maxend = seqMax(snd.end, snd.end+rcv.maxwin)
	snd.init = true
	// The other side may send what this SYN's window allows.
	rcv.maxend = seqMax(rcv.maxend, rcv.end+uint32(v.win))
}

// maxAckWindowFloor is Linux's MAXACKWINCONST: an ACK may lag this far
// behind the data the receiver has sent.
const maxAckWindowFloor = 66000

// inWindow is the test of Linux's tcp_in_window, after Guido van Rooij's
// "Real Stateful TCP Packet Filtering in IP Filter": a segment from snd is
// acceptable when
//
//	I.   seq <= snd.maxend: within what the receiver allowed,
//	II.  end >= snd.end - rcv.maxwin: not older than a window,
//	III. ack <= rcv.end: acknowledging nothing unsent,
//	IV.  ack >= rcv.end - max(snd.maxwin, 66000): not too old an ACK;
//
// then the windows advance.
func (ct *Conntrack) inWindow(snd, rcv *tcpWindow, v *view, payload []byte) bool {
	seq, end := v.seq, segEnd(v, payload)
	ack := v.ack
	if v.flags&flagACK == 0 {
		ack = rcv.end
	}
	win := uint32(v.win) << snd.scale
	if v.flags&flagRST != 0 && v.flags&flagACK == 0 {
		// RFC 5961 §3.2: a reset is checked by its sequence number alone.
		return !seqAfter(seq, snd.maxend) && !seqBefore(end, snd.end-rcv.maxwin)
	}
	if rcv.init {
		maxAck := max(snd.maxwin, maxAckWindowFloor)
		if seqAfter(seq, snd.maxend) || // I
			seqBefore(end, snd.end-rcv.maxwin) || // II
			seqAfter(ack, rcv.end) || // III
			seqBefore(ack, rcv.end-maxAck) { // IV
			return false
		}
	}
	snd.maxwin = max(snd.maxwin, win, 1)
	snd.end = seqMax(snd.end, end)
	if v.flags&flagACK != 0 {
		m := ack + win
		if win == 0 {
			m++ // room for a window probe (RFC 9293 §3.8.6.1)
		}
		rcv.maxend = seqMax(rcv.maxend, m)
	}
	if !rcv.init {
		// Until the other side speaks, let it send what we allow.
		rcv.maxend = seqMax(rcv.maxend, ack+win)
	}
	return true
}
