package fault

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vnet"
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

	held     []byte     // the frame held back for reordering
	heldO    ip.Offload // its offload metadata
	heldCopy int        // how many times to deliver it (2 if it is also duplicated)
	scratch  []byte     // the corrupted copy of the current frame
	segs     []byte     // the segments of a corrupted super-segment, back to back
	segLens  []int      // their lengths
	plain    ip.Offload // the metadata of a plain frame (zero), not to escape per frame
	ether    bool       // frames are Ethernet frames (for CorruptIP)

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

// process applies the random decisions to frame f, whose offload
// metadata is *o (nil or zero for a plain frame), and calls emit for every
// frame to pass on, in order: none if f is dropped or held back, f (or its
// corrupted copy), once more if duplicated, and then the frame held back
// before, if any. With a ReorderDelay, a frame picked for reordering is not
// held here but emitted with late set, for the delay queue to hold back.
// The slices and metadata given to emit are valid until the next call.
//
// A frame with metadata (a super-segment, a partial checksum) is one
// frame to every decision, as netem treats a GSO packet on a veth: a
// dropped super-segment loses all its segments. Only corruption looks
// inside: a corrupted frame with metadata goes on as plain frames with
// their checksums completed (a super-segment cut into its segments) and
// one bit flipped in one of them, so that the flipped bit is caught by
// the checksum as on a wire, not folded into a checksum the device
// computes afterwards.
//
// Every call makes the same six draws whatever the probabilities, so that
// a direction's decisions depend only on the seed and the frame count.
func (s *shaper) process(f []byte, o *ip.Offload, emit func(f []byte, o *ip.Offload, late bool)) {
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
	if o == nil {
		s.plain = ip.Offload{}
		o = &s.plain
	}
	if from, ok := s.corruptible(f); ok && corrupt < s.im.Corrupt {
		if *o != (ip.Offload{}) {
			if s.corruptOffload(f, o, from, bit) {
				s.c.corrupted.Add(1)
				s.emitSegs(dup < s.im.Duplicate, reorder < s.im.Reorder, emit)
				return
			}
			// Metadata that cannot be made plain: flip the bit anyway.
		}
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
			emit(f, o, true)
		}
		return
	}
	if reorder < s.im.Reorder && s.heldCopy == 0 {
		s.held = append(s.held[:0], f...)
		s.heldO = *o
		s.heldCopy = copies
		s.c.reordered.Add(1)
		return
	}
	for range copies {
		emit(f, o, false)
	}
	s.emitHeld(emit)
}

// emitHeld passes on the frame held back for reordering, if any.
func (s *shaper) emitHeld(emit func(f []byte, o *ip.Offload, late bool)) {
	for ; s.heldCopy > 0; s.heldCopy-- {
		emit(s.held, &s.heldO, false)
	}
}

// corruptOffload makes the frame f with metadata o plain into s.segs (its
// segments if it is a super-segment, else f with its checksum completed)
// and flips one bit, chosen by bit, at or after offset from in one of
// them. It reports false, emitting nothing, if f is not a well-formed
// frame for its metadata.
func (s *shaper) corruptOffload(f []byte, o *ip.Offload, from int, bit uint64) bool {
	l3 := 0
	if s.ether {
		l3 = link.EthernetHeaderLen
	}
	s.segs, s.segLens = s.segs[:0], s.segLens[:0]
	if o.GSOType != 0 {
		buf := append(s.scratch[:0], make([]byte, len(f))...)
		s.scratch = buf
		if err := vnet.Split(f, l3, int(o.GSOSize), buf, func(seg []byte) error {
			s.segs = append(s.segs, seg...)
			s.segLens = append(s.segLens, len(seg))
			return nil
		}); err != nil {
			return false
		}
	} else {
		s.segs = append(s.segs, f...)
		s.segLens = append(s.segLens, len(f))
		if o.NeedsChecksum && !vnet.CompleteChecksum(s.segs[l3:], int(o.ChecksumStart), int(o.ChecksumOffset)) {
			return false
		}
	}
	k := int(bit % uint64(len(s.segLens)))
	off := 0
	for _, n := range s.segLens[:k] {
		off += n
	}
	seg := s.segs[off : off+s.segLens[k]]
	if len(seg) <= from {
		return false
	}
	i := uint64(8*from) + (bit/uint64(len(s.segLens)))%uint64(8*(len(seg)-from))
	seg[i/8] ^= 1 << (i % 8)
	return true
}

// emitSegs passes on the plain frames corruptOffload left in s.segs,
// twice if dup, and the frame held back before; a reordered one (reorder)
// is handed to the delay queue late as a whole, or, without a
// ReorderDelay, simply passed on in order (holding a run of segments
// back is not modelled).
func (s *shaper) emitSegs(dup, reorder bool, emit func(f []byte, o *ip.Offload, late bool)) {
	copies := 1
	if dup {
		copies = 2
		s.c.duplicated.Add(1)
	}
	late := reorder && s.im.ReorderDelay > 0
	if late {
		s.c.reordered.Add(1)
	}
	s.plain = ip.Offload{}
	off := 0
	for _, n := range s.segLens {
		for range copies {
			emit(s.segs[off:off+n], &s.plain, late)
		}
		off += n
	}
	if !late {
		s.emitHeld(emit)
	}
}

// enqueue copies f into the delay queue q with its delivery time: after the
// rate-limited link has carried it, plus Delay and the frame's jitter, and
// never before the frame queued ahead of it; a late frame (held back for
// reordering) ReorderDelay later still, without holding back the frames
// behind it. A full queue drops f.
func (s *shaper) enqueue(q *timedQueue, f []byte, o *ip.Offload, now time.Time, late bool) {
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
	if q.push(item{b: b, o: *o, due: due}) {
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
