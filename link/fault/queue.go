package fault

import (
	"sync"
	"time"
)

// timedQueue holds the frames of a timed direction until they are due and
// hands them out earliest first. Frames due at the same time leave in the
// order they came. It is a heap rather than a FIFO because a frame held
// back for reordering (Impairment.ReorderDelay) is due after frames queued
// behind it.
type timedQueue struct {
	mu     sync.Mutex
	h      itemHeap
	seq    uint64        // arrival number of the next frame, for ties
	closed bool          // no more frames will be pushed
	wake   chan struct{} // signalled when a frame is pushed or the queue closes
}

func newTimedQueue() *timedQueue {
	return &timedQueue{wake: make(chan struct{}, 1)}
}

// push queues it and reports false, keeping nothing, if the queue already
// holds delayQueueLen frames.
func (q *timedQueue) push(it item) bool {
	q.mu.Lock()
	if len(q.h) >= delayQueueLen {
		q.mu.Unlock()
		return false
	}
	it.seq = q.seq
	q.seq++
	q.h.push(it)
	q.mu.Unlock()
	q.signal()
	return true
}

// close tells run to return once the frames already queued are delivered.
func (q *timedQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *timedQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run passes every frame to deliver at its due time until done is closed,
// deliver returns false, or the queue is closed and empty.
func (q *timedQueue) run(done <-chan struct{}, deliver func(item) bool) {
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		q.mu.Lock()
		if len(q.h) == 0 {
			closed := q.closed
			q.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-q.wake:
				continue
			case <-done:
				return
			}
		}
		d := time.Until(q.h[0].due)
		if d <= 0 {
			it := q.h.pop()
			q.mu.Unlock()
			if !deliver(it) {
				return
			}
			continue
		}
		q.mu.Unlock()
		if d <= coarseSlack {
			// Close to the due time: sleep precisely, in slices short
			// enough that a frame pushed meanwhile with an earlier due
			// time (the head may be a frame held back for reordering)
			// is not held up by more than a slice.
			fineSleep(min(d, fineSlice))
			select {
			case <-done:
				return
			default:
			}
			continue
		}
		// Wait on a runtime timer until coarseSlack before the earliest
		// frame, or for a push that may bring an earlier one.
		t.Reset(d - coarseSlack)
		select {
		case <-t.C:
		case <-q.wake:
			t.Stop()
		case <-done:
			return
		}
	}
}

// The delivery loop's waits: on a runtime timer (which may wake a
// millisecond late) until coarseSlack before a frame is due, then in
// precise sleeps of at most fineSlice.
const (
	coarseSlack = 2 * time.Millisecond
	fineSlice   = 200 * time.Microsecond
)

// itemHeap is a binary min-heap of items by due time, then arrival. It is
// written out rather than built on container/heap so that pushing a frame
// does not box it in an interface (an allocation per frame).
type itemHeap []item

func (h itemHeap) less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}

func (h *itemHeap) push(it item) {
	*h = append(*h, it)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *itemHeap) pop() item {
	s := *h
	it := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s[n] = item{}
	s = s[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && s.less(l, m) {
			m = l
		}
		if r := l + 1; r < n && s.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return it
}
