package stack

import (
	"sync"
	"time"

	"github.com/ustack/ustack/tcp"
)

// DefaultMaxTimeWait is the number of TIME-WAIT records a stack keeps
// when Options.MaxTimeWait is zero: Linux's tcp_max_tw_buckets on a
// machine of some memory (it scales the default with the hash table).
const DefaultMaxTimeWait = 262144

// timeWaitTable holds the connections in TIME-WAIT whose users closed
// them, each as a tcp.TimeWait record of a couple of hundred bytes instead
// of its Conn, buffers and endpoint. deliverTCP looks here after a miss in
// the connection table and before the listeners.
//
// Every record lasts 2*MSL from the peer's last FIN, so records enter the
// queue in deadline order; a retransmitted FIN moves a record's deadline
// later, past every other, and the record goes back at the tail when it
// reaches the head. Expiry is so a FIFO without a heap.
type timeWaitTable struct {
	mu    sync.Mutex // guards m, queue and the records; taken after tcpState.mu, never before
	m     map[tcp.Tuple]*tcp.TimeWait
	queue []twEntry // by at from queue[head]; records no longer in m are skipped
	head  int
	max   int // the bound (Options.MaxTimeWait); 0: none kept
}

// twEntry is a record in the expiry queue, with its deadline when queued:
// a record whose deadline has moved since goes back at the tail.
type twEntry struct {
	r  *tcp.TimeWait
	at time.Time
}

func (tw *timeWaitTable) init(max int) {
	switch {
	case max == 0:
		max = DefaultMaxTimeWait
	case max < 0:
		max = 0
	}
	tw.max = max
	tw.m = make(map[tcp.Tuple]*tcp.TimeWait)
}

// len returns the number of records.
func (tw *timeWaitTable) len() int {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return len(tw.m)
}

// push queues r at the tail; tw.mu is held.
func (tw *timeWaitTable) push(r *tcp.TimeWait) {
	if tw.head > 0 && tw.head >= len(tw.queue)/2 {
		// Reuse the space of the records expired at the head.
		n := copy(tw.queue, tw.queue[tw.head:])
		clear(tw.queue[n:])
		tw.queue, tw.head = tw.queue[:n], 0
	}
	tw.queue = append(tw.queue, twEntry{r, r.Deadline()})
}

// enterTimeWait replaces ep, a connection that c.TimeWait compacted, by its
// record r: ep leaves the connection table and the timer heap, r enters
// the TIME-WAIT table. When the table is full, the connection closes
// without TIME-WAIT, as Linux does past tcp_max_tw_buckets (counted in
// TimeWaitOverflows, Linux's TCPTimeWaitOverflow). ep.mu is held.
func (s *Stack) enterTimeWait(ep *tcpEndpoint, r *tcp.TimeWait) {
	ep.removed = true
	s.unschedule(&ep.tm)
	t := r.Tuple()
	tw := &s.tcp.tw
	s.tcp.mu.Lock()
	if s.tcp.conns[t] == ep {
		delete(s.tcp.conns, t)
	}
	tw.mu.Lock()
	full := len(tw.m) >= tw.max
	if !full {
		tw.m[t] = r
		tw.push(r)
	}
	tw.mu.Unlock()
	s.tcp.mu.Unlock()
	if full {
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
// record and is left to the listener.
func (s *Stack) timeWaitInput(t tcp.Tuple, seg tcp.Segment) bool {
	tw := &s.tcp.tw
	tw.mu.Lock()
	defer tw.mu.Unlock()
	r := tw.m[t]
	if r == nil {
		return false
	}
	if seg.Flags().Has(tcp.FlagSYN) && r.AcceptsSYN(seg) {
		delete(tw.m, t)
		return false
	}
	out := tcpOutput{s: s}
	r.Input(s.clock.Now(), seg, &out)
	if r.Done() { // a RST at RCV.NXT
		delete(tw.m, t)
	}
	return true
}

// timeWaitHolds reports whether t has a TIME-WAIT record: the 4-tuple
// cannot be used by a new active open meanwhile.
func (s *Stack) timeWaitHolds(t tcp.Tuple) bool {
	tw := &s.tcp.tw
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return tw.m[t] != nil
}

// expireTimeWait deletes the records whose 2*MSL timeout has ended at now
// (RFC 9293 §3.10.8 TIME-WAIT TIMEOUT: "delete the TCB, enter the CLOSED
// state") and returns the earliest deadline left, zero if none.
func (s *Stack) expireTimeWait(now time.Time) time.Time {
	tw := &s.tcp.tw
	tw.mu.Lock()
	defer tw.mu.Unlock()
	for tw.head < len(tw.queue) {
		e := tw.queue[tw.head]
		t := e.r.Tuple()
		switch {
		case tw.m[t] != e.r: // deleted by a RST or a new SYN
		case !e.r.Deadline().Equal(e.at):
			// A retransmitted FIN restarted it, to a deadline no earlier
			// than any queued: back to the tail.
			tw.push(e.r)
		case !e.r.Expired(now):
			// In order: no record behind it expires earlier.
			return e.at
		default:
			delete(tw.m, t)
		}
		tw.queue[tw.head] = twEntry{}
		tw.head++
	}
	tw.queue, tw.head = tw.queue[:0], 0
	return time.Time{}
}

// timeWaitInfos returns the records' Info, for Connections.
func (s *Stack) timeWaitInfos() []TCPInfo {
	tw := &s.tcp.tw
	tw.mu.Lock()
	defer tw.mu.Unlock()
	out := make([]TCPInfo, 0, len(tw.m))
	for _, r := range tw.m {
		out = append(out, r.Info())
	}
	return out
}
