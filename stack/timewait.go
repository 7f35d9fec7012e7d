package stack

import (
	"time"

	"github.com/ustack/ustack/tcp"
)

// DefaultMaxTimeWait is the number of TIME-WAIT records a stack keeps
// when Options.MaxTimeWait is zero: Linux's tcp_max_tw_buckets on a
// machine of some memory (it scales the default with the hash table).
const DefaultMaxTimeWait = 262144

// len returns the number of records.
func (tw *timeWaitTable) len() int {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return tw.live
}

// enterTimeWait replaces ep, a connection that c.TimeWait compacted, by its
// record r: ep leaves the connection table and the timer heap, r enters
// the TIME-WAIT table (twtable.go). When the table is full, the
// connection closes without TIME-WAIT, as Linux does past
// tcp_max_tw_buckets (counted in TimeWaitOverflows, Linux's
// TCPTimeWaitOverflow). ep.mu is held.
func (s *Stack) enterTimeWait(ep *tcpEndpoint, r tcp.TimeWait) {
	ep.removed = true
	s.unschedule(&ep.tm)
	t := r.Tuple()
	tw := &s.tcp.tw
	s.tcp.mu.Lock()
	if s.tcp.conns[t] == ep {
		delete(s.tcp.conns, t)
	}
	tw.mu.Lock()
	ok := tw.add(r)
	tw.mu.Unlock()
	s.tcp.mu.Unlock()
	if !ok {
		inc(&s.ctr.get().TCP.TimeWaitOverflows)
		return
	}
	s.tcp.timerMu.Lock()
	wake := s.tcp.wakeAt.IsZero() || r.Deadline().Before(s.tcp.wakeAt)
	s.tcp.timerMu.Unlock()
	if wake {
		s.kick()
	}
}

// timeWaitInput hands seg to the TIME-WAIT record of t, if there is one,
// and reports whether it took it. A SYN that may reopen the 4-tuple
// (RFC 9293 §3.10.7.4 fourth step in TIME-WAIT, RFC 6191) deletes the
// record and is left to the listener, as is any segment once the
// record's 2*MSL timeout has ended (RFC 9293 §3.10.8: the TCB is
// deleted), even before expireTimeWait reaches it.
func (s *Stack) timeWaitInput(t tcp.Tuple, seg tcp.Segment) bool {
	tw := &s.tcp.tw
	tw.mu.Lock()
	defer tw.mu.Unlock()
	i, pos, ok := tw.lookup(t)
	if !ok {
		return false
	}
	r := tw.slot(pos)
	now := s.clock.Now()
	if r.Expired(now) || seg.Flags().Has(tcp.FlagSYN) && r.AcceptsSYN(seg) {
		tw.remove(i, pos)
		return false
	}
	deadline := r.Deadline()
	tw.out.s = s
	r.Input(&s.tcp.cfg, now, seg, &tw.out)
	switch {
	case r.Done(): // a RST at RCV.NXT
		tw.remove(i, pos)
	case !r.Deadline().Equal(deadline):
		// A FIN restarted the 2*MSL timeout: the record's deadline is now
		// the latest of all, its place the tail of the ring.
		tw.moveToTail(i, pos)
	}
	return true
}

// timeWaitHolds reports whether t has a TIME-WAIT record: the 4-tuple
// cannot be used by a new active open meanwhile.
func (s *Stack) timeWaitHolds(t tcp.Tuple) bool {
	tw := &s.tcp.tw
	tw.mu.Lock()
	defer tw.mu.Unlock()
	_, _, ok := tw.lookup(t)
	return ok
}

// expireTimeWait deletes the records whose 2*MSL timeout has ended at now
// (RFC 9293 §3.10.8 TIME-WAIT TIMEOUT: "delete the TCB, enter the CLOSED
// state") and returns the earliest deadline left, zero if none.
func (s *Stack) expireTimeWait(now time.Time) time.Time {
	tw := &s.tcp.tw
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return tw.expire(now)
}

// timeWaitInfos returns the records' Info, for Connections.
func (s *Stack) timeWaitInfos() []TCPInfo {
	tw := &s.tcp.tw
	tw.mu.Lock()
	defer tw.mu.Unlock()
	out := make([]TCPInfo, 0, tw.live)
	for p := tw.head; p != tw.tail; p++ {
		if r := tw.slot(p); !r.IsZero() {
			out = append(out, r.Info())
		}
	}
	return out
}
