package tcp

import (
	"container/heap"
	"time"
)

// halfOpen is one entry of a listener's SYN queue: a connection in
// SYN-RECEIVED (RFC 9293 §3.10.7.2, third step) reduced to what the
// handshake needs. It holds no buffers and no Conn; the Conn is made when
// the final ACK arrives (handshake.go).
type halfOpen struct {
	synParams
	created  time.Time // when the SYN arrived
	deadline time.Time // the next SYN-ACK retransmission, or the end
	sentAt   time.Time // when the first SYN-ACK went, for an RTT sample
	lastSent time.Time // when the latest SYN-ACK went
	rto      time.Duration
	retrans  uint8 // SYN-ACKs sent beyond the first
	timeouts uint8 // of them, sent by the timer
	timerIdx int32 // index in synQueue.timers
	// prev and next link the entries oldest first (synQueue.oldest).
	prev, next *halfOpen
}

// synParams is what a passive open records of the SYN and of the SYN-ACK
// it answered with, from which a Conn is rebuilt in SYN-RECEIVED.
type synParams struct {
	tuple    Tuple
	iss, irs Value
	synWnd   uint16 // SEG.WND of the SYN (never scaled, RFC 7323 §2.2)
	rcvWnd   uint16 // the window our SYN-ACK offered
	mss      uint16 // our MSS
	peerMSS  uint16 // the SYN's MSS option, 0 for none
	peerWS   int8   // the SYN's window scale, -1 for none
	ourWS    uint8  // the window scale our SYN-ACK offered
	sack     bool   // SACK-permitted on both SYNs
	ts       bool   // timestamps on both SYNs
	cookie   bool   // rebuilt from a SYN cookie
	tsRecent uint32 // the SYN's TSval
	tsLast   uint32 // the TSval of our latest SYN-ACK
}

// synQueue holds a listener's half-open entries by 4-tuple, oldest first,
// and by SYN-ACK deadline in a heap.
type synQueue struct {
	byTuple map[Tuple]*halfOpen
	timers  halfOpenHeap
	oldest  *halfOpen // head of the creation-order list
	newest  *halfOpen
	free    []*halfOpen // entries to reuse, so that a flood allocates little
}

func (q *synQueue) len() int { return len(q.byTuple) }

// HalfOpen reports whether the listener holds a half-open entry (a
// handshake in SYN-RECEIVED) for t.
func (l *Listener) HalfOpen(t Tuple) bool { return l.q.find(t) != nil }

func (q *synQueue) find(t Tuple) *halfOpen {
	if q.byTuple == nil {
		return nil
	}
	return q.byTuple[t]
}

// get returns a zeroed entry, reused when one is free.
func (q *synQueue) get() *halfOpen {
	if n := len(q.free); n > 0 {
		e := q.free[n-1]
		q.free[n-1] = nil
		q.free = q.free[:n-1]
		return e
	}
	return new(halfOpen)
}

// add inserts e (its tuple not present) as the newest entry.
func (q *synQueue) add(e *halfOpen) {
	if q.byTuple == nil {
		q.byTuple = make(map[Tuple]*halfOpen)
	}
	q.byTuple[e.tuple] = e
	e.prev, e.next = q.newest, nil
	if q.newest != nil {
		q.newest.next = e
	} else {
		q.oldest = e
	}
	q.newest = e
	heap.Push(&q.timers, e)
}

// remove takes e out of the queue and keeps it for reuse (up to limit
// free entries).
func (q *synQueue) remove(e *halfOpen, limit int) {
	delete(q.byTuple, e.tuple)
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		q.oldest = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		q.newest = e.prev
	}
	if e.timerIdx >= 0 {
		heap.Remove(&q.timers, int(e.timerIdx))
	}
	*e = halfOpen{timerIdx: -1}
	if len(q.free) < limit {
		q.free = append(q.free, e)
	}
}

// reschedule moves e in the heap after its deadline changed.
func (q *synQueue) reschedule(e *halfOpen) { heap.Fix(&q.timers, int(e.timerIdx)) }

// next returns the entry with the earliest deadline, or nil.
func (q *synQueue) next() *halfOpen {
	if len(q.timers) == 0 {
		return nil
	}
	return q.timers[0]
}

// halfOpenHeap is a min-heap of entries by deadline.
type halfOpenHeap []*halfOpen

func (h halfOpenHeap) Len() int           { return len(h) }
func (h halfOpenHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h halfOpenHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].timerIdx, h[j].timerIdx = int32(i), int32(j)
}
func (h *halfOpenHeap) Push(x any) {
	e := x.(*halfOpen)
	e.timerIdx = int32(len(*h))
	*h = append(*h, e)
}
func (h *halfOpenHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.timerIdx = -1
	return e
}
