package udp

import (
	"errors"
	"fmt"
)

// ErrQueueLimit reports a queue limit that is not positive; the error
// NewQueue or SetLimits returns wraps it and names the argument.
var ErrQueueLimit = errors.New("udp: queue limit must be positive")

// minRing is the smallest byte ring a queue allocates, so that a stream of
// small datagrams does not grow it a few bytes at a time.
const minRing = 2048

// minSlots is the smallest index ring a queue allocates.
const minSlots = 8

// Queue is a socket's receive queue: a FIFO of datagrams bounded by a
// count and by their payload bytes, each kept with metadata of type M
// (for a socket, typically the source and destination addresses).
//
// A datagram that does not fit is refused and counted in Drops, as Linux
// counts UDP receive buffer errors (RcvbufErrors in /proc/net/snmp); it is
// lost, which UDP allows (RFC 768: "delivery and duplicate protection are
// not guaranteed"). As in Linux, which
// "always allow[s] at least one packet" (net/ipv4/udp.c), an empty queue
// admits one datagram larger than the byte limit, so a small SetReadBuffer
// still receives large datagrams one at a time.
//
// Payloads are copied into one byte ring and their sizes and metadata into
// a small index ring. Both grow, by doubling, up to what the limits allow
// and are then reused, so Push and Pop allocate nothing in the steady
// state. A Queue is not safe for concurrent use: the socket that owns it
// serializes the calls. Make one with NewQueue; the zero Queue has no room
// and refuses every datagram.
type Queue[M any] struct {
	maxCount, maxBytes int

	data []byte // byte ring holding the payloads in FIFO order
	head int    // offset in data of the oldest payload's first byte
	used int    // payload bytes queued, from head, wrapping

	slots []slot[M] // index ring: one entry per queued datagram
	first int       // index in slots of the oldest datagram
	count int       // datagrams queued

	drops uint64
}

// slot describes one queued datagram. Its payload is the n bytes of the
// byte ring that follow the previous datagram's.
type slot[M any] struct {
	n    int
	meta M
}

// NewQueue returns an empty queue that holds at most maxCount datagrams
// and maxBytes bytes of payload. Both must be positive; an error wrapping
// ErrQueueLimit names the one that is not. Memory is allocated as
// datagrams arrive, not up front.
func NewQueue[M any](maxCount, maxBytes int) (*Queue[M], error) {
	q := &Queue[M]{}
	if err := q.SetLimits(maxCount, maxBytes); err != nil {
		return nil, err
	}
	return q, nil
}

// SetLimits changes the queue's bounds (as setsockopt SO_RCVBUF does).
// Datagrams already queued stay; the new bounds apply to the next Push.
// Both must be positive; an error wrapping ErrQueueLimit names the one
// that is not, and the limits are then unchanged.
func (q *Queue[M]) SetLimits(maxCount, maxBytes int) error {
	if maxCount <= 0 {
		return fmt.Errorf("%w: maxCount %d", ErrQueueLimit, maxCount)
	}
	if maxBytes <= 0 {
		return fmt.Errorf("%w: maxBytes %d", ErrQueueLimit, maxBytes)
	}
	q.maxCount, q.maxBytes = maxCount, maxBytes
	return nil
}

// Limits returns the bounds set by NewQueue or SetLimits.
func (q *Queue[M]) Limits() (maxCount, maxBytes int) { return q.maxCount, q.maxBytes }

// Len returns the number of datagrams queued.
func (q *Queue[M]) Len() int { return q.count }

// Bytes returns the payload bytes queued.
func (q *Queue[M]) Bytes() int { return q.used }

// Drops returns how many datagrams Push has refused since the queue was
// made.
func (q *Queue[M]) Drops() uint64 { return q.drops }

// Push copies payload to the tail of the queue with its metadata and
// reports whether it was queued. It refuses, and counts in Drops, a
// datagram when the queue already holds maxCount datagrams, when the queue
// is not empty and the payload would take it past maxBytes, and a payload
// longer than MaxPayload, which no UDP datagram carries. payload may be
// reused as soon as Push returns.
func (q *Queue[M]) Push(payload []byte, meta M) bool {
	n := len(payload)
	if n > MaxPayload || q.count >= q.maxCount || q.count > 0 && q.used+n > q.maxBytes {
		q.drops++
		return false
	}
	if q.count == len(q.slots) {
		q.growSlots()
	}
	if q.used+n > len(q.data) {
		q.growData(q.used + n)
	}
	if n > 0 {
		tail := (q.head + q.used) % len(q.data)
		c := copy(q.data[tail:], payload)
		copy(q.data, payload[c:])
		q.used += n
	}
	q.slots[(q.first+q.count)%len(q.slots)] = slot[M]{n: n, meta: meta}
	q.count++
	return true
}

// Peek returns the size and metadata of the datagram at the head of the
// queue without removing it, and false for ok when the queue is empty.
func (q *Queue[M]) Peek() (size int, meta M, ok bool) {
	if q.count == 0 {
		return 0, meta, false
	}
	s := &q.slots[q.first]
	return s.n, s.meta, true
}

// Pop removes the datagram at the head of the queue and copies its
// payload into buf. It returns the bytes copied, n, the datagram's size
// and its metadata; n < size means the datagram was longer than buf and
// the rest of it is discarded (recvmsg's MSG_TRUNC; package net's
// ReadFrom returns n). ok is false, and nothing happens, when the queue is
// empty. Pop(nil) discards a datagram.
func (q *Queue[M]) Pop(buf []byte) (n, size int, meta M, ok bool) {
	if q.count == 0 {
		return 0, 0, meta, false
	}
	s := &q.slots[q.first]
	size, meta = s.n, s.meta
	*s = slot[M]{} // drop the ring's reference to anything meta points to
	if size > 0 {
		n = min(len(buf), size)
		c := copy(buf[:n], q.data[q.head:])
		copy(buf[c:n], q.data)
		q.head = (q.head + size) % len(q.data)
		q.used -= size
	}
	q.first = (q.first + 1) % len(q.slots)
	q.count--
	if q.count == 0 {
		// Start the next datagram at the front: fewer wraps, same bytes.
		q.head, q.first = 0, 0
	}
	return n, size, meta, true
}

// growSlots doubles the index ring (at least minSlots, at most maxCount
// unless more datagrams are already queued) and unwraps it.
func (q *Queue[M]) growSlots() {
	c := min(max(2*len(q.slots), minSlots), max(q.maxCount, q.count+1))
	s := make([]slot[M], c)
	for i := range q.count {
		s[i] = q.slots[(q.first+i)%len(q.slots)]
	}
	q.slots, q.first = s, 0
}

// growData grows the byte ring to hold at least need bytes: double its
// size (at least minRing) but no more than the byte limit, or need when
// that is larger (the one datagram admitted past the limit), and unwraps
// it.
func (q *Queue[M]) growData(need int) {
	c := min(max(2*len(q.data), minRing, need), max(q.maxBytes, need))
	d := make([]byte, c)
	if q.used > 0 {
		k := copy(d, q.data[q.head:min(q.head+q.used, len(q.data))])
		copy(d[k:q.used], q.data)
	}
	q.data, q.head = d, 0
}
