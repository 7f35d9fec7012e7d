package tcp

import "time"

// SACK-based loss recovery, RFC 6675 ("A Conservative Loss Recovery
// Algorithm Based on Selective Acknowledgment (SACK) for TCP"), used when
// SACK-Permitted was negotiated (RFC 2018 §2). Without SACK the sender
// uses NewReno (RFC 6582) in congestion.go.
//
// Vocabulary of RFC 6675 §2: HighACK is SND.UNA (the first octet not
// acknowledged, one past the RFC's "highest byte cumulatively ACKed"),
// HighData is SND.MAX, RecoveryPoint is recover+1 (recover is RFC 6582's
// "highest sequence number transmitted", SND.MAX-1), and highRxt is one
// past the highest octet retransmitted in this recovery. Ranges here are
// half-open.

// The scoreboard (Conn.sacked) is a rangeSet: at most maxOOORanges
// separate SACKed ranges are remembered above SND.UNA, without allocating.
// A block that would make one more is not recorded: its octets count as
// not SACKed, so at worst they are retransmitted needlessly (the
// conservative error).

// updateScoreboard is Update() of RFC 6675 §4: "Given the information
// provided in an ACK, each octet that is cumulatively ACKed or SACKed
// should be marked accordingly in the scoreboard data structure". It runs
// after SND.UNA moved over the cumulative acknowledgment, forgets what
// lies below SND.UNA, and records the SACK blocks of the segment being
// processed. It reports whether the ACK SACKed octets not SACKed before:
// RFC 6675 §2 counts such an ACK as a duplicate acknowledgment "even if it
// carries new data, changes the advertised window, or moves the
// cumulative acknowledgment point".
func (c *Conn) updateScoreboard() bool {
	c.sacked.TrimFront(c.snd.UNA)
	before := c.sacked.Bytes()
	o := &c.optsIn
	for i := 0; i < o.NumSACK; i++ {
		b := o.SACK[i]
		// RFC 2018 §4 and RFC 6675 §2: only blocks within (SND.UNA,
		// SND.MAX] describe data in flight. Blocks at or below SND.UNA
		// are D-SACKs (RFC 2883) or stale, blocks beyond SND.MAX are
		// bogus: both are ignored.
		if !b.Left.LessThan(b.Right) || !b.Left.GreaterThan(c.snd.UNA) || b.Right.GreaterThan(c.snd.MAX) {
			continue
		}
		c.sacked.Add(b.Left, b.Right)
	}
	return c.sacked.Bytes() > before
}

// holeLost is IsLost() of RFC 6675 §4 for the octets of the hole just
// below scoreboard range i: "The routine returns true when either
// DupThresh discontiguous SACKed sequences have arrived above 'SeqNum' or
// more than (DupThresh - 1) * SMSS bytes with sequence numbers greater
// than 'SeqNum' have been SACKed." Every octet of one hole has the same
// SACKed octets above it, so the answer holds for the whole hole. The
// hole above the last range (i == n) is never lost.
func (c *Conn) holeLost(i int) bool {
	n := c.sacked.n
	if i >= n {
		return false
	}
	if i == 0 && c.inRecovery && c.partialSeen {
		// After a partial ACK the hole at SND.UNA, below SACKed data, was
		// outstanding when recovery began and has been overtaken: RFC 6582
		// §3.2 step 5 deems it lost at once ("retransmit the first
		// unacknowledged segment"). Waiting for IsLost's DupThresh would
		// stall small windows, where pipe holds cwnd and no more ACKs come.
		return true
	}
	if n-i >= dupThresh {
		return true
	}
	var bytes uint32
	for j := i; j < n; j++ {
		bytes += c.sacked.r[j].end.Sub(c.sacked.r[j].start)
	}
	return bytes > uint32(dupThresh-1)*uint32(c.sndMSS)
}

// isLost is IsLost(seq) of RFC 6675 §4 for an octet seq >= SND.UNA that
// is not SACKed.
func (c *Conn) isLost(seq Value) bool {
	i := 0
	for i < c.sacked.n && c.sacked.r[i].end.LessThanEq(seq) {
		i++
	}
	return c.holeLost(i)
}

// setPipe is SetPipe() of RFC 6675 §4: "for each octet in the sequence
// space between HighACK and HighData that has not been SACKed: (a) If
// IsLost (S1) returns false: Pipe is incremented by 1 octet. (b) If S1 <=
// HighRxt: Pipe is incremented by 1 octet." It works a hole at a time.
func (c *Conn) setPipe() uint32 {
	var pipe uint32
	hs := c.snd.UNA
	for i := 0; i <= c.sacked.n; i++ {
		he := c.snd.MAX
		if i < c.sacked.n {
			he = c.sacked.r[i].start
		}
		if hs.LessThan(he) {
			if !c.holeLost(i) {
				pipe += he.Sub(hs)
			}
			if hs.LessThan(c.highRxt) {
				pipe += Min(he, c.highRxt).Sub(hs)
			}
		}
		if i < c.sacked.n {
			hs = Max(hs, c.sacked.r[i].end)
		}
	}
	return pipe
}

// nextSeg is NextSeg() of RFC 6675 §4 for retransmissions: rule (1) when
// lost is set, "the smallest unSACKed sequence number 'S2' that meets the
// following three criteria for determining loss ... (1.a) S2 is greater
// than HighRxt. (1.b) S2 is less than the highest octet covered by any
// received SACK. (1.c) IsLost (S2) returns true."; rule (3) when lost is
// clear, the same "specifically excluding step (1.c)". It returns the
// start of the range and how many octets up to the next SACKed range may
// be sent from there. Rule (2), new data, is sendData's; rule (4), the
// rescue retransmission, is not implemented (it is optional).
func (c *Conn) nextSeg(lost bool) (Value, uint32, bool) {
	hs := c.snd.UNA
	for i := 0; i < c.sacked.n; i++ {
		r := c.sacked.r[i]
		start := Max(hs, c.highRxt)
		if start.LessThan(r.start) && (!lost || c.holeLost(i)) {
			return start, r.start.Sub(start), true
		}
		hs = Max(hs, r.end)
	}
	return 0, 0, false
}

// sackedAt returns, for a sequence number seq at or above SND.UNA, the end
// of the SACKed range holding it (or seq itself when it is not SACKed)
// and the number of octets from there to the next SACKed range (at most
// limit).
func (c *Conn) sackedAt(seq Value, limit uint32) (Value, uint32) {
	for i := 0; i < c.sacked.n; i++ {
		r := c.sacked.r[i]
		if seq.LessThan(r.start) {
			return seq, min(limit, r.start.Sub(seq))
		}
		if seq.LessThan(r.end) {
			seq = r.end
		}
	}
	return seq, limit
}

// retransmitRange sends again at most one SMSS of the octets from seq,
// and at most limit, without moving SND.NXT; the FIN goes with the last
// data octet when it fits. It returns the sequence space sent (0 when
// there is nothing to send at seq).
func (c *Conn) retransmitRange(now time.Time, out Output, seq Value, limit uint32) uint32 {
	dataEnd := c.sndHead.Add(uint32(c.sndBuf.Len()))
	n := 0
	if seq.LessThan(dataEnd) {
		n = min(int(dataEnd.Sub(seq)), c.sndMSS, int(min(limit, 1<<30)))
	}
	fin := c.finSent && seq.Add(uint32(n)) == c.finSeq && uint32(n) < limit
	if n == 0 && !fin {
		return 0
	}
	if c.inRecovery && c.sackOK && seq == c.snd.UNA {
		c.rtxArmed, c.rtxSeq, c.rtxMark = true, c.snd.UNA, c.snd.MAX
	}
	c.sendSegment(now, out, seq, n, fin)
	sent := uint32(n)
	if fin {
		sent++
	}
	return sent
}

// sackRetransmit is one pass of RFC 6675 §5 step (C) for a retransmission:
// "(C.1) The scoreboard MUST be queried via NextSeg () for the sequence
// number range of the next segment to transmit (if any), and the given
// segment sent." and "(C.2) If any of the data octets sent in (C.1) are
// below HighData, HighRxt MUST be set to the highest sequence number of
// the retransmitted segment". It returns the octets sent, for (C.4).
func (c *Conn) sackRetransmit(now time.Time, out Output, lost bool) uint32 {
	seq, limit, ok := c.nextSeg(lost)
	if !ok {
		return 0
	}
	sent := c.retransmitRange(now, out, seq, limit)
	if sent > 0 {
		c.highRxt = Max(c.highRxt, seq.Add(sent))
	}
	return sent
}
