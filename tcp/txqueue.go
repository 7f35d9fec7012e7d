package tcp

import "time"

// The retransmission queue (RFC 9293 §3.7.1 speaks of "the retransmission
// queue"): one record per segment sent and not yet cumulatively
// acknowledged, in sequence order, covering [SND.UNA, SND.NXT) without gaps.
// The bytes themselves stay in the send ring; a record holds what loss
// detection needs to know of its segment: the per-segment state of RACK
// (RFC 8985 §5.2: "Segment.xmit_ts", "Segment.end_seq", "Segment.lost",
// "Segment.retransmitted") and whether it is SACKed (the RFC 6675
// scoreboard).
//
// A super-segment (GSO, Conn.SetGSOMaxSize) is one record for the run of
// segments it stands for, all sent at one instant: pushing it costs what
// a segment costs. Its pieces stay apart where it matters: SACK blocks
// split a record at their edges (sackRecords), so that the part a SACK
// covers and each hole become records of their own with the send time
// they share, which is what RACK compares (RACK_sent_after breaks the tie
// by sequence number, RFC 8985 §6.2); a partial cumulative ACK delivers
// the part below it only; the rules that name "the first segment" (SND.UNA
// on a timeout, NewReno's retransmission) cut the record at SendMSS; and
// counts of segments (RACK.segs_sacked, retransmissions) count the pieces.
// A record is retransmitted at most as large as the budget and the GSO
// limit allow, and merged only with lost records after it: a lost hole
// goes again as one super-segment as large as the hole, never larger.

// txRecord is one segment on the retransmission queue.
type txRecord struct {
	start, end Value     // [start, end): its sequence space, a FIN included
	xmit       time.Time // Segment.xmit_ts: its latest transmission
	flags      txFlags
}

// txFlags are a record's loss-recovery marks.
type txFlags uint8

const (
	// txSACKed: selectively acknowledged (RFC 2018); it stays on the
	// queue until SND.UNA passes it, since a receiver may renege.
	txSACKed txFlags = 1 << iota
	// txLost: deemed lost (by RACK, by DupThresh without SACK, or by a
	// timeout) and not retransmitted since: it is not in flight
	// (RFC 6675 §4 SetPipe counts neither lost nor SACKed octets).
	txLost
	// txRetrans: retransmitted at least once ("Segment.retransmitted").
	txRetrans
	// txTLP: its latest transmission was a tail loss probe.
	txTLP
	// txBeforeRTO: sent before the latest retransmission timeout
	// (F-RTO, RFC 5682, asks whether such a segment was delivered).
	txBeforeRTO
)

func (r *txRecord) has(f txFlags) bool { return r.flags&f != 0 }
func (r *txRecord) len() uint32        { return r.end.Sub(r.start) }

// txQueue is the retransmission queue. Records live in r[head:]; the
// backing array is reused, so a steady flow allocates nothing.
type txQueue struct {
	r    []txRecord
	head int
	// sacked and lost are the bytes of records marked txSACKed and
	// txLost, kept so that pipe costs nothing to compute.
	sacked, lost uint32
	// retrans is the number of records with txRetrans still queued.
	retrans int
	// marked counts the times a record was newly marked lost.
	marked uint64
}

// n returns the number of records.
func (q *txQueue) n() int { return len(q.r) - q.head }

// at returns record i, 0 being the oldest.
func (q *txQueue) at(i int) *txRecord { return &q.r[q.head+i] }

// last returns the newest record, or nil.
func (q *txQueue) last() *txRecord {
	if q.n() == 0 {
		return nil
	}
	return &q.r[len(q.r)-1]
}

// push appends a record for a new segment [start, end) sent at now.
func (q *txQueue) push(start, end Value, now time.Time) {
	if q.head > 0 && len(q.r) == cap(q.r) {
		// Reuse the space of records already acknowledged.
		k := copy(q.r, q.r[q.head:])
		q.r = q.r[:k]
		q.head = 0
	}
	q.r = append(q.r, txRecord{start: start, end: end, xmit: now})
}

// popFront removes the oldest record.
func (q *txQueue) popFront() {
	rec := q.at(0)
	q.mark(rec, 0, txSACKed|txLost|txRetrans)
	q.head++
	if q.head == len(q.r) {
		q.head = 0
		q.r = q.r[:0]
		if cap(q.r) > 256 {
			// Give a large queue back once it drains: an idle
			// connection keeps no buffers it does not need.
			q.r = nil
		}
	}
}

// mark sets the flags set and clears clear on rec, keeping the byte
// counts.
func (q *txQueue) mark(rec *txRecord, set, clear txFlags) {
	old := rec.flags
	rec.flags = (old &^ clear) | set
	n := rec.len()
	if d := rec.flags & txSACKed; d != old&txSACKed {
		if d != 0 {
			q.sacked += n
		} else {
			q.sacked -= n
		}
	}
	if d := rec.flags & txLost; d != old&txLost {
		if d != 0 {
			q.lost += n
			q.marked++
		} else {
			q.lost -= n
		}
	}
	if d := rec.flags & txRetrans; d != old&txRetrans {
		if d != 0 {
			q.retrans++
		} else {
			q.retrans--
		}
	}
}

// trimFront drops the octets below una from the oldest record (a partial
// cumulative acknowledgment).
func (q *txQueue) trimFront(una Value) {
	rec := q.at(0)
	if !una.GreaterThan(rec.start) || !una.LessThan(rec.end) {
		return
	}
	cut := una.Sub(rec.start)
	if rec.has(txSACKed) {
		q.sacked -= cut
	}
	if rec.has(txLost) {
		q.lost -= cut
	}
	rec.start = una
}

// find returns the index of the record holding seq, or n() if none does.
func (q *txQueue) find(seq Value) int {
	lo, hi := 0, q.n()
	for lo < hi {
		m := (lo + hi) / 2
		if q.at(m).end.LessThanEq(seq) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < q.n() && q.at(lo).start.LessThanEq(seq) {
		return lo
	}
	return q.n()
}

// split cuts record i at seq (start < seq < end) into two records with the
// same marks and transmit time, and returns the index of the second.
func (q *txQueue) split(i int, seq Value) int {
	q.r = append(q.r, txRecord{})
	j := q.head + i
	copy(q.r[j+1:], q.r[j:len(q.r)-1])
	q.r[j].end = seq
	q.r[j+1].start = seq
	if q.r[j].has(txRetrans) {
		q.retrans++
	}
	return i + 1
}

// mergeNext joins record i+1 into record i (the two are adjacent); the
// result keeps the marks both have and the later transmit time.
func (q *txQueue) mergeNext(i int) {
	a, b := q.at(i), q.at(i+1)
	if b.xmit.After(a.xmit) {
		a.xmit = b.xmit
	}
	// Take b's bytes out of the counts, then give them to a's marks.
	q.mark(b, 0, txSACKed|txLost|txRetrans|txTLP)
	n := b.len()
	a.end = b.end
	if a.has(txSACKed) {
		q.sacked += n
	}
	if a.has(txLost) {
		q.lost += n
	}
	j := q.head + i + 1
	copy(q.r[j:], q.r[j+1:])
	q.r = q.r[:len(q.r)-1]
}

// reset empties the queue.
func (q *txQueue) reset() {
	*q = txQueue{r: q.r[:0]}
}
