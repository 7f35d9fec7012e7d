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

// segBuf holds a copy of one backlogged segment and its 4-tuple; the
// capacity of b is one of segBufSizes, and the segBuf returns to its pool
// once processed. The backlog links its segBufs through next, so that a
// connection's queue costs two pointers, whatever it held before.
type segBuf struct {
	b    []byte
	t    tcp.Tuple
	segs int // the segments b stands for (a super-segment's)
	next *segBuf
}

// segPools are a stack's pools of segBufs, one per size.
type segPools [len(segBufSizes)]sync.Pool

// segSlab is how many segBufs of the two smaller sizes a pool makes at
// once, in two allocations (the structs, and one array for their bytes),
// as a slab allocator does: a backlog grows to thousands of segments
// under a bulk transfer, and the pool grows with it.
const segSlab = 32

func (p *segPools) init() {
	for i, n := range segBufSizes {
		if i == len(segBufSizes)-1 {
			p[i].New = func() any { return &segBuf{b: make([]byte, 0, n)} }
			continue
		}
		p[i].New = func() any {
			bufs := make([]segBuf, segSlab)
			mem := make([]byte, segSlab*n)
			for j := range bufs {
				bufs[j].b = mem[j*n : j*n : (j+1)*n]
				if j > 0 {
					p[i].Put(&bufs[j])
				}
			}
			return &bufs[0]
		}
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

// get returns a buffer holding a copy of seg, for t.
func (p *segPools) get(t tcp.Tuple, seg []byte) *segBuf {
	b := p[segClass(len(seg))].Get().(*segBuf)
	b.b = append(b.b[:0], seg...)
	b.t = t
	return b
}

// put returns b to its pool.
func (p *segPools) put(b *segBuf) {
	i := segClass(cap(b.b))
	b.b, b.next = b.b[:0], nil
	p[i].Put(b)
}

// backlog is a connection's socket backlog. Its bound is in bytes of
// buffer (the buffers' capacities, like Linux's truesize), as Linux bounds
// sk_backlog by sk_rcvbuf + sk_sndbuf: the connection's receive and send
// buffer sizes, which the owner keeps current (setLimit). Segments past
// it are dropped and counted (TCPStats.DropBacklogFull); the peer
// retransmits them.
type backlog struct {
	mu         sync.Mutex // guards head, tail and bytes; a leaf: nothing is taken under it
	head, tail *segBuf    // the queue, oldest first, linked through next
	bytes      int        // the capacities of the queued buffers

	n     atomic.Int32 // the number queued, read without mu to skip an empty backlog
	limit atomic.Int64 // the bound on bytes
}

// setLimit sets the bound on the queued bytes.
func (b *backlog) setLimit(n int) {
	if int64(n) != b.limit.Load() {
		b.limit.Store(int64(n))
	}
}

// add queues a copy of seg for t, or drops it (counted) if the backlog
// is full.
func (b *backlog) add(s *Stack, t tcp.Tuple, seg tcp.Segment, segs int) {
	size := segBufSizes[segClass(len(seg))]
	if int64(size) > b.limit.Load() {
		inc(&s.ctr.get().TCP.DropBacklogFull)
		return
	}
	sb := s.segs.get(t, seg) // copied before the lock is taken
	sb.segs = segs
	b.mu.Lock()
	if int64(b.bytes+size) > b.limit.Load() {
		b.mu.Unlock()
		s.segs.put(sb)
		inc(&s.ctr.get().TCP.DropBacklogFull)
		return
	}
	if b.tail == nil {
		b.head = sb
	} else {
		b.tail.next = sb
	}
	b.tail = sb
	b.bytes += size
	b.n.Add(1)
	b.mu.Unlock()
	inc(&s.ctr.get().TCP.Backlogged)
}

// take returns the queued segments, oldest first and linked through
// next, and empties the queue.
func (b *backlog) take() *segBuf {
	b.mu.Lock()
	q := b.head
	b.head, b.tail, b.bytes = nil, nil, 0
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
func (ep *tcpEndpoint) queue(t tcp.Tuple, seg tcp.Segment, segs int) {
	ep.bl.add(ep.s, t, seg, segs)
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
// backlog, unlocks ep.mu, writes the frames made under it, and looks again, for a segment a reader queued
// after the last look but failed to take the lock for (then it owns the
// connection again if it can; if it cannot, the new owner will look).
// Every unlock of ep.mu goes through here.
func (ep *tcpEndpoint) release() {
	for {
		ep.processBacklogLocked()
		ep.unlockAndFlush() // the frames made under the lock leave now
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
		for b := ep.bl.take(); b != nil; {
			next := b.next
			if !ep.inputLocked(b.t, tcp.Segment(b.b), b.segs) {
				ep.s.tcp.demux.Deliver(b.t, tcp.Segment(b.b))
			}
			ep.s.segs.put(b)
			b = next
		}
	}
}
