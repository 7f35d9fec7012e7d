package stack

import (
	"sync"
	"sync/atomic"

	"github.com/ustack/ustack/tcp"
)

// The socket backlog, after Linux's (net/core/sock.c: lock_sock,
// sk_add_backlog, release_sock): a NIC reader never waits for a
// connection's lock. When ep.mu is held (a user's Read, Write or Close, or
// the timer, is inside the core) the reader copies the segment onto the
// connection's backlog and goes on reading; whoever owns the connection
// processes the backlog, in arrival order, before it gives the connection
// up (ep.release), and when it takes it (ep.lock).
//
// No segment is stranded: the reader tries the lock once more after
// queueing (the owner may have found the backlog empty and unlocked in
// between), and every owner looks at the backlog again after unlocking.
// So a segment queued while somebody holds the lock is processed by that
// holder or by a later one.

// segBufSizes are the sizes of the pooled buffers backlogged segments are
// copied into: the smallest fits a segment without payload (a header with
// the most options, RFC 9293 §3.1), the next the segments of an Ethernet
// MTU, the largest any segment. A segment takes the smallest that fits,
// so that a flood of small segments is not charged 2 KiB each.
var segBufSizes = [...]int{256, 2048, 65536}

// segBufSmall is the size of the buffers for segments of an Ethernet MTU.
const segBufSmall = 2048

// segBuf holds a copy of one backlogged segment; its capacity is one of
// segBufSizes, and it returns to its pool once processed.
type segBuf struct{ b []byte }

// segPools are a stack's pools of segBufs, one per size.
type segPools [len(segBufSizes)]sync.Pool

func (p *segPools) init() {
	for i, n := range segBufSizes {
		p[i].New = func() any { return &segBuf{b: make([]byte, 0, n)} }
	}
}

// segClass returns the index of the smallest size that holds n bytes.
func segClass(n int) int {
	for i, size := range segBufSizes[:len(segBufSizes)-1] {
		if n <= size {
			return i
		}
	}
	return len(segBufSizes) - 1
}

// get returns a buffer holding a copy of seg.
func (p *segPools) get(seg []byte) *segBuf {
	b := p[segClass(len(seg))].Get().(*segBuf)
	b.b = append(b.b[:0], seg...)
	return b
}

// put returns b to its pool.
func (p *segPools) put(b *segBuf) {
	i := segClass(cap(b.b))
	b.b = b.b[:0]
	p[i].Put(b)
}

// backlogSeg is one queued segment.
type backlogSeg struct {
	t   tcp.Tuple
	buf *segBuf
}

// backlog is a connection's socket backlog. Its bound is in bytes of
// buffer (the buffers' capacities, like Linux's truesize), as Linux bounds
// sk_backlog by sk_rcvbuf + sk_sndbuf: the connection's receive and send
// buffer sizes, which the owner keeps current (setLimit). Segments past
// it are dropped and counted (TCPStats.DropBacklogFull); the peer
// retransmits them.
type backlog struct {
	mu    sync.Mutex   // guards q and bytes; a leaf: nothing is taken under it
	q     []backlogSeg // queued, oldest first
	bytes int          // the capacities of q's buffers

	n     atomic.Int32 // len(q), read without mu to skip an empty backlog
	limit atomic.Int64 // the bound on bytes

	work []backlogSeg // the owner's: the segments being processed, under ep.mu
}

// setLimit sets the bound on the queued bytes.
func (b *backlog) setLimit(n int) {
	if int64(n) != b.limit.Load() {
		b.limit.Store(int64(n))
	}
}

// add queues a copy of seg for t, or drops it (counted) if the backlog
// is full.
func (b *backlog) add(s *Stack, t tcp.Tuple, seg tcp.Segment) {
	size := segBufSizes[segClass(len(seg))]
	b.mu.Lock()
	if int64(b.bytes+size) > b.limit.Load() {
		b.mu.Unlock()
		inc(&s.ctr.get().TCP.DropBacklogFull)
		return
	}
	b.q = append(b.q, backlogSeg{t: t, buf: s.segs.get(seg)})
	b.bytes += size
	b.n.Store(int32(len(b.q)))
	b.mu.Unlock()
	inc(&s.ctr.get().TCP.Backlogged)
}

// take returns the queued segments, oldest first, and empties the queue;
// spare is an empty slice the queue may reuse.
func (b *backlog) take(spare []backlogSeg) []backlogSeg {
	b.mu.Lock()
	q := b.q
	b.q = spare[:0]
	b.bytes = 0
	b.n.Store(0)
	b.mu.Unlock()
	return q
}

// queue puts seg on the backlog for the connection's owner, once a
// reader's TryLock of ep.mu failed. The owner may have given the
// connection up, having found the backlog empty, between that TryLock
// and the add: then nobody would process seg. So queue tries the lock
// once more: whoever holds it now looks at the backlog again after
// unlocking (release); if nobody holds it, this goroutine owns the
// connection and processes the backlog itself.
func (ep *tcpEndpoint) queue(t tcp.Tuple, seg tcp.Segment) {
	ep.bl.add(ep.s, t, seg)
	if ep.mu.TryLock() {
		ep.release()
	}
}

// lock takes ownership of the connection: ep.mu, then the segments the
// readers queued before it, so that the user's call sees them.
func (ep *tcpEndpoint) lock() {
	ep.mu.Lock()
	ep.processBacklogLocked()
}

// release gives ownership of the connection up: it processes the
// backlog, unlocks ep.mu, and looks again, for a segment a reader queued
// after the last look but failed to take the lock for (then it owns the
// connection again if it can; if it cannot, the new owner will look).
// Every unlock of ep.mu goes through here.
func (ep *tcpEndpoint) release() {
	for {
		ep.processBacklogLocked()
		ep.mu.Unlock()
		if ep.bl.n.Load() == 0 || !ep.mu.TryLock() {
			return
		}
	}
}

// processBacklogLocked processes the queued segments in arrival order,
// ep.mu held. A segment the connection no longer answers for (it went
// into TIME-WAIT or CLOSED meanwhile, or the segment is a SYN reopening
// its TIME-WAIT) is demultiplexed again from the start, as if it had
// arrived now: to a connection that took the 4-tuple since (whose lock
// Deliver only tries), its record, a listener or a reset.
func (ep *tcpEndpoint) processBacklogLocked() {
	for ep.bl.n.Load() != 0 {
		work := ep.bl.take(ep.bl.work)
		for i := range work {
			e := &work[i]
			if !ep.inputLocked(e.t, tcp.Segment(e.buf.b)) {
				ep.s.tcp.demux.Deliver(e.t, tcp.Segment(e.buf.b))
			}
			ep.s.segs.put(e.buf)
			*e = backlogSeg{}
		}
		ep.bl.work = work[:0]
	}
}
