package fault

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ustack/ustack/link"
)

// counters are the atomic counters behind Counters.
type counters struct {
	dropped, duplicated, reordered, corrupted, delayed atomic.Uint64
}

func (c *counters) load() Counters {
	return Counters{
		Dropped:    c.dropped.Load(),
		Duplicated: c.duplicated.Load(),
		Reordered:  c.reordered.Load(),
		Corrupted:  c.corrupted.Load(),
		Delayed:    c.delayed.Load(),
	}
}

// shaper makes the decisions of one direction. Its fields are guarded by
// the Endpoint's lock of that direction.
type shaper struct {
	im   Impairment
	rng  *rand.Rand
	c    counters
	pool *sync.Pool // the Endpoint's pool of frame copies

	held     []byte // the frame held back for reordering
	heldCopy int    // how many times to deliver it (2 if it is also duplicated)
	scratch  []byte // the corrupted copy of the current frame
	ether    bool   // frames are Ethernet frames (for CorruptIP)

	jitter   time.Duration // the current frame's jitter draw
	linkFree time.Time     // when the rate-limited link is next idle
	lastDue  time.Time     // delivery time of the last queued frame
}

func newShaper(im Impairment, src rand.Source, pool *sync.Pool, ether bool) *shaper {
	return &shaper{im: im, rng: rand.New(src), pool: pool, ether: ether}
}

// EtherTypes of the network-layer packets CorruptIP corrupts.
const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
)

// corruptible returns the offset from which f may be corrupted, and false
// if f may not be corrupted at all.
func (s *shaper) corruptible(f []byte) (int, bool) {
	if !s.im.CorruptIP {
		return 0, len(f) > 0
	}
	if !s.ether {
		return 0, len(f) > 0
	}
	if len(f) <= link.EthernetHeaderLen {
		return 0, false
	}
	switch binary.BigEndian.Uint16(f[12:14]) {
	case etherTypeIPv4, etherTypeIPv6:
		return link.EthernetHeaderLen, true
	}
	return 0, false
}

// process applies the random decisions to frame f and calls emit for every
// frame to pass on, in order: none if f is dropped or held back, f (or its
// corrupted copy), once more if duplicated, and then the frame held back
// before, if any. With a ReorderDelay, a frame picked for reordering is not
// held here but emitted with late set, for the delay queue to hold back.
// The slices given to emit are valid until the next call.
//
// Every call makes the same six draws whatever the probabilities, so that
// a direction's decisions depend only on the seed and the frame count.
func (s *shaper) process(f []byte, emit func(f []byte, late bool)) {
	drop := s.rng.Float64()
	dup := s.rng.Float64()
	reorder := s.rng.Float64()
	corrupt := s.rng.Float64()
	bit := s.rng.Uint64()
	s.jitter = time.Duration(s.rng.Float64() * float64(s.im.Jitter))

	if drop < s.im.Drop {
		s.c.dropped.Add(1)
		return
	}
	if from, ok := s.corruptible(f); ok && corrupt < s.im.Corrupt {
		s.scratch = append(s.scratch[:0], f...)
		i := uint64(8*from) + bit%uint64(8*(len(f)-from))
		s.scratch[i/8] ^= 1 << (i % 8)
		f = s.scratch
		s.c.corrupted.Add(1)
	}
	copies := 1
	if dup < s.im.Duplicate {
		copies = 2
		s.c.duplicated.Add(1)
	}
	if reorder < s.im.Reorder && s.im.ReorderDelay > 0 {
		s.c.reordered.Add(1)
		for range copies {
			emit(f, true)
		}
		return
	}
	if reorder < s.im.Reorder && s.heldCopy == 0 {
		s.held = append(s.held[:0], f...)
		s.heldCopy = copies
		s.c.reordered.Add(1)
		return
	}
	for range copies {
		emit(f, false)
	}
	for ; s.heldCopy > 0; s.heldCopy-- {
		emit(s.held, false)
	}
}

// enqueue copies f into the delay queue q with its delivery time: after the
// rate-limited link has carried it, plus Delay and the frame's jitter, and
// never before the frame queued ahead of it; a late frame (held back for
// reordering) ReorderDelay later still, without holding back the frames
// behind it. A full queue drops f.
func (s *shaper) enqueue(q *timedQueue, f []byte, now time.Time, late bool) {
	start := now
	if s.linkFree.After(start) {
		start = s.linkFree
	}
	s.linkFree = start
	if r := s.im.RateBytesPerSec; r > 0 {
		s.linkFree = start.Add(time.Duration(int64(len(f)) * int64(time.Second) / r))
	}
	due := s.linkFree.Add(s.im.Delay + s.jitter)
	if due.Before(s.lastDue) {
		due = s.lastDue
	}
	if late {
		due = due.Add(s.im.ReorderDelay)
	} else {
		s.lastDue = due
	}
	b := append(s.getBuf(), f...)
	if q.push(item{b: b, due: due}) {
		s.c.delayed.Add(1)
	} else {
		s.putBuf(b)
		s.c.dropped.Add(1)
	}
}

// getBuf returns an empty buffer from the pool for a frame copy.
func (s *shaper) getBuf() []byte { return (*s.pool.Get().(*[]byte))[:0] }

// putBuf returns a frame copy to the pool.
func (s *shaper) putBuf(b []byte) {
	b = b[:0]
	s.pool.Put(&b)
}
