package tcp

// The receiver's half of SACK: which blocks an ACK reports and in what
// order (RFC 2018 §4), and the report of duplicate segments (D-SACK,
// RFC 2883 §4).

// maxSACKRecent is how many out-of-order arrivals the receiver remembers,
// most recent first, to order the SACK blocks of its ACKs: one per block
// an ACK can carry (RFC 2018 §3, four without timestamps).
const maxSACKRecent = MaxSACKBlocks

// sackRecord is the receiver's SACK state (in rxState). It never
// allocates.
type sackRecord struct {
	// recent holds the first sequence number of the latest out-of-order
	// segments that brought new data, most recent first. The block that
	// holds recent[i] is looked up when an ACK is built, so that merges
	// and advances of RCV.NXT need no bookkeeping here.
	recent [maxSACKRecent]Value
	n      int
	// dup is the duplicate range the next ACK reports in its first block
	// when pending (RFC 2883 §4).
	dup     seqRange
	pending bool
}

// noteArrival records that an out-of-order segment starting at seq brought
// new data: its block goes first in the next ACK (RFC 2018 §4: "The first
// SACK block (i.e., the one immediately following the kind and length
// fields in the option) MUST specify the contiguous block of data
// containing the segment which triggered this ACK"). Entries that now lie
// in the same block are dropped (the block is reported once), and so are
// those no block holds any more (delivered below RCV.NXT).
func (c *Conn) noteArrival(seq Value) {
	s := &c.rxs().sack
	blk, _ := c.ooo().find(seq)
	k := 0
	for i := 0; i < s.n; i++ {
		v := s.recent[i]
		if _, held := c.ooo().find(v); held && !v.InWindow(blk.start, blk.end.Sub(blk.start)) {
			s.recent[k] = v
			k++
		}
	}
	k = min(k, len(s.recent)-1)
	copy(s.recent[1:k+1], s.recent[:k])
	s.recent[0] = seq
	s.n = k + 1
}

// noteDuplicate records that the octets [start, end) of an arriving segment
// had been received already. RFC 2883 §4: "(1) A D-SACK block is only used
// to report a duplicate contiguous sequence of data received by the
// receiver in the most recent packet." and "(2) Each duplicate contiguous
// sequence of data received is reported in at most one D-SACK block": the
// next ACK reports it, at once, and forgets it. Only when SACK was
// negotiated (RFC 2883 §2: "The use of D-SACK does not require separate
// negotiation between a TCP sender and receiver that have already
// negotiated SACK capability").
func (c *Conn) noteDuplicate(start, end Value) {
	if !c.sackOK || !start.LessThan(end) {
		return
	}
	s := &c.rxs().sack
	s.dup = seqRange{start, end}
	s.pending = true
	c.ackNow = true
}

// dsackPending reports whether the next ACK carries a D-SACK.
func (c *Conn) dsackPending() bool { return c.rx != nil && c.rx.sack.pending }

// duplicateOf returns the first contiguous part of [start, end) that was
// received before: below RCV.NXT, or inside an out-of-order block held. A
// segment may repeat several such parts; RFC 2883 §4 reports one, and
// Linux reports the lowest as well.
func (c *Conn) duplicateOf(start, end Value) (seqRange, bool) {
	if !start.LessThan(end) {
		return seqRange{}, false
	}
	if start.LessThan(c.rcv.NXT) {
		return seqRange{start, Min(end, c.rcv.NXT)}, true
	}
	for _, r := range c.ooo().ranges() {
		lo, hi := Max(start, r.start), Min(end, r.end)
		if lo.LessThan(hi) {
			return seqRange{lo, hi}, true
		}
	}
	return seqRange{}, false
}

// sackBlocks fills the SACK blocks of an ACK (Options.Encode keeps as many
// as fit: three beside timestamps, four without).
//
// A pending duplicate goes first (RFC 2883 §4: "(3) The left edge of the
// D-SACK block specifies the first sequence number of the duplicate
// contiguous sequence, and the right edge of the D-SACK block specifies
// the sequence number immediately following the last sequence in the
// duplicate contiguous sequence. (4) If the D-SACK block reports a
// duplicate contiguous sequence from a (possibly larger) block of data in
// the receiver's data queue above the cumulative acknowledgement, then the
// second SACK block in that SACK option should specify that (possibly
// larger) block of data. (5) Following the SACK blocks described above for
// reporting duplicate segments, additional SACK blocks can be used for
// reporting additional blocks of data, as specified in RFC 2018.")
//
// Then the blocks of the latest arrivals, most recent first (RFC 2018 §4:
// "The data receiver SHOULD include as many distinct SACK blocks as
// possible in the SACK option. ... The SACK option SHOULD be filled out by
// repeating the most recently reported SACK blocks (based on first SACK
// blocks in previous SACK options) that are not subsets of a SACK block
// already included in the SACK option being constructed."), and last any
// other block held, lowest first.
//
// It reports whether the first block is a D-SACK.
func (c *Conn) sackBlocks(o *Options) bool {
	o.NumSACK = 0
	s := c.rxs()
	dsack := s.sack.pending
	if dsack {
		s.sack.pending = false
		o.SACK[0] = SACKBlock{Left: s.sack.dup.start, Right: s.sack.dup.end}
		o.NumSACK = 1
		if blk, ok := c.ooo().find(s.sack.dup.start); ok {
			o.SACK[1] = SACKBlock{Left: blk.start, Right: blk.end}
			o.NumSACK = 2
		}
	}
	first := 0 // blocks from here on are distinct out-of-order blocks
	if dsack {
		first = 1
	}
	add := func(r seqRange) {
		for i := first; i < o.NumSACK; i++ {
			if o.SACK[i].Left == r.start {
				return
			}
		}
		o.SACK[o.NumSACK] = SACKBlock{Left: r.start, Right: r.end}
		o.NumSACK++
	}
	for i := 0; i < s.sack.n && o.NumSACK < len(o.SACK); i++ {
		if blk, ok := c.ooo().find(s.sack.recent[i]); ok {
			add(blk)
		}
	}
	for _, r := range c.ooo().ranges() {
		if o.NumSACK == len(o.SACK) {
			break
		}
		add(r)
	}
	return dsack
}
