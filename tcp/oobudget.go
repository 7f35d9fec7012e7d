package tcp

// The stack-wide bound on out-of-order data (Config.MaxOutOfOrderBytes).
//
// Each connection holds out-of-order data in its receive ring, at its
// offset beyond RCV.NXT (RFC 9293 §3.10.7.4 SHLD-31: such segments SHOULD
// be held), so one connection pins at most its window. A flood of
// connections that each fill a window with data beyond a hole would pin
// the sum of their windows; like Linux's tcp_mem pressure (which prunes
// the out-of-order queue, tcp_prune_ofo_queue), the connections sharing a
// Stats share a budget: the octets from RCV.NXT to the end of the highest
// range held, which is the ring memory the data pins, however sparse. When
// new out-of-order data would take the total over the budget it is
// dropped and counted (Stats.DroppedOutOfOrderMemory); in-order data is
// always taken, and it shrinks the charge as RCV.NXT advances.
//
// Data already held is never discarded to make room. RFC 2018 §8 allows
// it ("the data receiver is permitted to discard data in its queue that
// has not been acknowledged to the data sender, even if the data has
// already been reported in a SACK option") but discourages it; since the
// data dropped here was never held, it was never SACKed, and the sender's
// scoreboard stays true.

// oooExtent returns the receive-ring octets the out-of-order data pins:
// from RCV.NXT to the end of the highest range held.
func (c *Conn) oooExtent() uint32 {
	rs := c.ooo().ranges()
	if len(rs) == 0 {
		return 0
	}
	return rs[len(rs)-1].end.Sub(c.rcv.NXT)
}

// oooReserve charges the budget for holding out-of-order data up to end
// and reports whether it may be held.
func (c *Conn) oooReserve(end Value) bool {
	want := max(c.oooExtent(), end.Sub(c.rcv.NXT))
	if c.stats == nil || want <= c.oooCharge {
		return true
	}
	need := uint64(want - c.oooCharge)
	used := &c.stats.OutOfOrderBytes
	if limit := c.cfg.MaxOutOfOrderBytes; limit > 0 {
		for {
			cur := used.Load()
			if cur+need > uint64(limit) {
				c.stats.DroppedOutOfOrderMemory.Add(1)
				return false
			}
			if used.CompareAndSwap(cur, cur+need) {
				break
			}
		}
	} else {
		used.Add(need)
	}
	c.oooCharge = want
	return true
}

// oooSettle gives back what the connection's charge exceeds its extent:
// after RCV.NXT advanced, a range was refused, or the ranges were reset.
func (c *Conn) oooSettle() {
	if e := c.oooExtent(); e < c.oooCharge {
		if c.stats != nil {
			c.stats.OutOfOrderBytes.Add(^uint64(c.oooCharge - e - 1)) // subtract
		}
		c.oooCharge = e
	}
}

// oooRelease forgets the out-of-order data of a connection that will take
// no more text (the peer's FIN was processed, or the connection closed)
// and gives its charge back.
func (c *Conn) oooRelease() {
	c.ooo().Reset()
	c.oooSettle()
}
