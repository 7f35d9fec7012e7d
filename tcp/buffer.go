package tcp

import "sync"

// ring is a byte ring of bounded size. Offsets passed to its methods are
// relative to the oldest byte (the read position). It is used for the send
// buffer (unacknowledged and unsent data, oldest byte at sndHead) and the
// receive buffer (in-order data not yet read, then out-of-order data stored
// at its offset beyond the in-order end).
//
// The memory grows with use: nothing until the first write, then
// minRingAlloc bytes, doubling when a write reaches past the end, up to
// the ring's size. A short connection so never pays for (nor zeroes) the
// full buffers a bulk transfer needs. A ring of minRingAlloc bytes that
// empties gives its memory back (release), so that an idle connection
// that once exchanged a request and a response holds no buffer.
type ring struct {
	buf  []byte // len(buf) <= size; indexes wrap at len(buf)
	size int
	head int // index in buf of the oldest byte
	n    int // bytes held, counted from head
}

// minRingAlloc is the first allocation of a ring that is written to.
const minRingAlloc = 4 << 10

func newRing(size int) ring { return ring{size: max(size, 1)} }

// Len returns the bytes held.
func (r *ring) Len() int { return r.n }

// Cap returns the size of the ring.
func (r *ring) Cap() int { return r.size }

// Free returns the room left after the bytes held.
func (r *ring) Free() int { return r.size - r.n }

// SetSize changes the size of the ring to n, which must not be less than
// the offsets stored so far (held and out-of-order bytes). Memory is not
// allocated here: it grows with the writes, as before.
func (r *ring) SetSize(n int) { r.size = max(n, 1) }

// Write appends as much of p as fits and returns the bytes appended.
func (r *ring) Write(p []byte) int {
	k := min(len(p), r.Free())
	r.copyIn(r.n, p[:k])
	r.n += k
	return k
}

// WriteAt stores p at offset off from the oldest byte without changing Len;
// off+len(p) must not exceed Cap. Commit makes stored bytes part of Len.
func (r *ring) WriteAt(off int, p []byte) { r.copyIn(off, p) }

// Commit extends Len by k bytes already stored with WriteAt.
func (r *ring) Commit(k int) { r.n += k }

// grow makes room for offsets up to end (<= size), keeping every byte
// stored so far (in-order and out-of-order) at its offset.
func (r *ring) grow(end int) {
	l := max(len(r.buf), minRingAlloc)
	for l < end {
		l *= 2
	}
	l = min(l, r.size)
	var nb []byte
	if l == minRingAlloc && len(r.buf) == 0 {
		nb = ringPool.Get().(*[minRingAlloc]byte)[:]
	} else {
		nb = make([]byte, l)
	}
	c := copy(nb, r.buf[r.head:])
	copy(nb[c:], r.buf[:r.head])
	r.buf, r.head = nb, 0
}

// ringPool holds the free minRingAlloc-byte ring buffers of every
// connection in the process: free memory only, no connection's state, so
// that a connection that empties its ring and fills it again (each
// request and response) allocates nothing in the steady state.
var ringPool = sync.Pool{New: func() any { return new([minRingAlloc]byte) }}

// release gives the memory of an empty ring of minRingAlloc bytes back;
// the next write takes a buffer again. Larger rings (a bulk transfer's)
// keep theirs: they empty between bursts, and would be allocated anew.
// The caller knows that nothing is stored beyond the held bytes either
// (out-of-order data in a receive ring).
func (r *ring) release() {
	if r.n != 0 || len(r.buf) != minRingAlloc {
		return
	}
	ringPool.Put((*[minRingAlloc]byte)(r.buf))
	r.buf, r.head = nil, 0
}

// index returns the position in buf of offset off (<= len(buf)).
func (r *ring) index(off int) int {
	i := r.head + off
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	return i
}

func (r *ring) copyIn(off int, p []byte) {
	if len(p) == 0 {
		return
	}
	if off+len(p) > len(r.buf) {
		r.grow(off + len(p))
	}
	i := r.index(off)
	c := copy(r.buf[i:], p)
	copy(r.buf, p[c:])
}

// CopyAt copies bytes starting at offset off into p and returns the count
// (min(len(p), Len()-off)).
func (r *ring) CopyAt(p []byte, off int) int {
	k := min(len(p), r.n-off)
	if k <= 0 {
		return 0
	}
	i := r.index(off)
	c := copy(p[:k], r.buf[i:])
	copy(p[c:k], r.buf)
	return k
}

// Read copies the oldest bytes into p and removes them.
func (r *ring) Read(p []byte) int {
	k := r.CopyAt(p, 0)
	r.Discard(k)
	return k
}

// Discard removes the k oldest bytes.
func (r *ring) Discard(k int) {
	k = min(k, r.n)
	if k == 0 {
		return
	}
	r.head = r.index(k) // k <= n <= len(buf): every held byte was written
	r.n -= k
	// head is not reset when the ring empties: out-of-order data may be
	// stored beyond the (empty) in-order part.
}

// maxOOORanges bounds the out-of-order queue: at most this many separate
// ranges of sequence space are held beyond RCV.NXT (RFC 9293 §3.10.7.4
// SHLD-31: segments with higher beginning sequence numbers SHOULD be held).
const maxOOORanges = 8

// seqRange is the half-open range [start, end) of sequence space.
type seqRange struct{ start, end Value }

// rangeSet is a small sorted list of disjoint, non-adjacent ranges of
// out-of-order data held in the receive ring. It never allocates.
type rangeSet struct {
	r [maxOOORanges]seqRange
	n int
}

// Add records [start, end), merging with overlapping or adjacent ranges.
// It reports false (and records nothing) when a new separate range would
// not fit.
func (s *rangeSet) Add(start, end Value) bool {
	// Find the first range whose end >= start (overlapping or adjacent).
	i := 0
	for i < s.n && s.r[i].end.LessThan(start) {
		i++
	}
	// Merge every range that starts at or before end.
	j := i
	for j < s.n && s.r[j].start.LessThanEq(end) {
		start = Min(start, s.r[j].start)
		end = Max(end, s.r[j].end)
		j++
	}
	if i == j { // insert a new range at i
		if s.n == len(s.r) {
			return false
		}
		copy(s.r[i+1:s.n+1], s.r[i:s.n])
		s.r[i] = seqRange{start, end}
		s.n++
		return true
	}
	s.r[i] = seqRange{start, end}
	copy(s.r[i+1:], s.r[j:s.n])
	s.n -= j - i - 1
	return true
}

// PopFront removes and returns the first range if it starts at or before
// nxt.
func (s *rangeSet) PopFront(nxt Value) (seqRange, bool) {
	if s == nil || s.n == 0 || s.r[0].start.GreaterThan(nxt) {
		return seqRange{}, false
	}
	f := s.r[0]
	copy(s.r[:], s.r[1:s.n])
	s.n--
	return f, true
}

// Len returns the number of ranges. PopFront, Len, ranges, find and Reset take a
// nil set as an empty one (a connection that never received data holds
// none: Conn.ooo).
func (s *rangeSet) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// ranges returns the ranges held, in order (none for a nil set).
func (s *rangeSet) ranges() []seqRange {
	if s == nil {
		return nil
	}
	return s.r[:s.n]
}

// find returns the range that holds v.
func (s *rangeSet) find(v Value) (seqRange, bool) {
	for _, r := range s.ranges() {
		if v.InWindow(r.start, r.end.Sub(r.start)) {
			return r, true
		}
	}
	return seqRange{}, false
}

// Reset forgets every range.
func (s *rangeSet) Reset() {
	if s != nil {
		s.n = 0
	}
}

// TrimFront forgets every octet below v: ranges ending at or before v go,
// a range straddling v starts at v.
func (s *rangeSet) TrimFront(v Value) {
	i := 0
	for i < s.n && s.r[i].end.LessThanEq(v) {
		i++
	}
	if i > 0 {
		copy(s.r[:], s.r[i:s.n])
		s.n -= i
	}
	if s.n > 0 && s.r[0].start.LessThan(v) {
		s.r[0].start = v
	}
}

// Bytes returns the octets the ranges cover.
func (s *rangeSet) Bytes() uint32 {
	var b uint32
	for i := 0; i < s.n; i++ {
		b += s.r[i].end.Sub(s.r[i].start)
	}
	return b
}
