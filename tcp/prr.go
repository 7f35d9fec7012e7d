package tcp

// Proportional Rate Reduction (RFC 9937, which obsoletes the experimental
// RFC 6937): how much fast recovery may send. It spreads the reduction to
// ssthresh over the round trip ("the sender ... transmits ... in
// proportion to the data delivered") instead of stopping and then
// bursting. When losses have taken pipe below ssthresh it rebuilds toward
// it: by what was delivered (the Conservative Reduction Bound), plus one
// segment on an ACK that is safe, one that advances SND.UNA and shows no
// further loss (the Slow Start Reduction Bound). RFC 6937 added the
// segment on every ACK, SACK-only ones included, and sent one segment too
// many on each; packetdrill's prr-* scripts, written for Linux, show it.

// prrState is PRR's state for one recovery (RFC 9937).
type prrState struct {
	// delivered is prr_delivered, "the total number of bytes delivered to
	// the receiver since the start of recovery"; out is prr_out, "the
	// total bytes transmitted during recovery".
	delivered, out uint64
	// recoverFS is RecoverFS, pipe at the start of recovery (RFC 9937;
	// RFC 6937 took FlightSize).
	recoverFS uint32
	// cwnd is RFC 9937's "cwnd = pipe + sndcnt", set on each ACK: what
	// may be in flight until the next. Sending raises pipe toward it; a
	// segment found lost meanwhile (by RACK's timer) lowers pipe and so
	// makes room for its retransmission, as in Linux, where sndcnt alone
	// would have been spent.
	cwnd uint32
}

// prrOnAck is PRR's "On every ACK during recovery":
//
//	DeliveredData = Change_in(snd.una) + Change_in(SACKd)
//	prr_delivered += DeliveredData
//	pipe = (RFC 6675 pipe algorithm)
//	if (pipe > ssthresh) {
//	   // Proportional Rate Reduction
//	   sndcnt = CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out
//	} else {
//	   // PRR-CRB, and PRR-SSRB on a safe ACK
//	   sndcnt = MAX(prr_delivered - prr_out, DeliveredData)
//	   if (safe) sndcnt += SMSS
//	   sndcnt = MIN(ssthresh - pipe, sndcnt)
//	}
//	sndcnt = MAX(sndcnt, 0)
//
// On the ACK that starts recovery prr_out is zero and one segment goes
// whatever sndcnt says: the fast retransmit (RFC 5681 §3.2 step 3 sends it
// at once; Linux's tcp_cwnd_reduction keeps the same rule).
func (c *Conn) prrOnAck(delivered uint32, safe bool) {
	p := &c.prr
	mss := int64(c.sndMSS)
	p.delivered += uint64(delivered)
	pipe := int64(c.pipe())
	ssthresh := int64(c.ctrl().SlowStartThreshold())
	var sndcnt int64
	if pipe > ssthresh {
		num := p.delivered * uint64(ssthresh)
		fs := uint64(p.recoverFS)
		sndcnt = int64((num+fs-1)/fs) - int64(p.out)
	} else {
		limit := max(int64(p.delivered)-int64(p.out), int64(delivered))
		if safe {
			limit += mss
		}
		sndcnt = min(ssthresh-pipe, limit)
	}
	sndcnt = max(sndcnt, 0)
	if p.out == 0 {
		sndcnt = max(sndcnt, mss)
	}
	p.cwnd = uint32(min(pipe+sndcnt, MaxCongestionWindow))
}

// prrSent is PRR's "On any data transmission or retransmission: prr_out
// += (data sent)".
func (c *Conn) prrSent(n uint32) {
	c.prr.out += uint64(n)
}
