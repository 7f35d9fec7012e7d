package ipv4

import (
	"encoding/binary"
	"errors"
	"slices"
	"time"
)

// Defaults for ReassemblyConfig's zero fields.
const (
	DefaultMaxDatagrams = 64
	DefaultMaxBytes     = 4 << 20
	// DefaultReassemblyTimeout is 30 s. RFC 1122 §3.3.2 recommends 60 to
	// 120 s; ustack uses a shorter timer to bound the memory an attacker
	// can pin with fragments that never complete.
	DefaultReassemblyTimeout = 30 * time.Second
)

// Errors returned by Reassembler.Add for fragments it drops. They are
// informational: the stack counts them (Stats has the same figures) and
// sends nothing back.
var (
	// ErrFragmentOverlap: the fragment overlaps data already received with
	// different boundaries, or contradicts the datagram's known length; the
	// whole datagram is discarded, and so are its later fragments until its
	// timeout (RFC 5722 §4, applied to IPv4).
	ErrFragmentOverlap = errors.New("ipv4: overlapping fragment, datagram discarded")
	// ErrFragmentTooLarge: the reassembled datagram would exceed 65535
	// bytes (RFC 791 §3.1, Total Length); the datagram is discarded as for
	// an overlap (the "ping of death" of 1996).
	ErrFragmentTooLarge = errors.New("ipv4: reassembled datagram too large")
	// ErrFragmentInvalid: a fragment with MF set whose data is empty or not
	// a multiple of 8 bytes.
	ErrFragmentInvalid = errors.New("ipv4: invalid fragment length")
	// ErrReassemblyFull: the fragment's datagram would need more than
	// MaxBytes even with every other datagram evicted.
	ErrReassemblyFull = errors.New("ipv4: reassembly buffers full")
)

// ReassemblyConfig bounds a Reassembler. Zero fields take the defaults.
type ReassemblyConfig struct {
	// MaxDatagrams is the number of datagrams reassembled at once
	// (default 64); a new one beyond it evicts the oldest.
	MaxDatagrams int
	// MaxBytes bounds the buffered bytes across all datagrams, counting
	// each datagram's buffer and bookkeeping (default 4 MiB); a fragment
	// that needs more evicts the oldest other datagrams. Buffers kept for
	// reuse add at most as much again.
	MaxBytes int
	// Timeout is how long a datagram may take to complete, counted from
	// its first fragment (default 30 s).
	Timeout time.Duration
	// MaxPerSource is how many of the MaxDatagrams one source address
	// may hold; a new datagram beyond it evicts that source's own oldest
	// (default a quarter of MaxDatagrams, and at least 4 when
	// MaxDatagrams allows), so that one host's flood cannot evict the
	// datagrams of others.
	MaxPerSource int
}

// ReassemblyStats counts what a Reassembler did. Datagrams and Bytes are
// current values; the rest are totals since NewReassembler.
type ReassemblyStats struct {
	Fragments   uint64 // fragments passed to Add
	Reassembled uint64 // datagrams completed
	Duplicates  uint64 // exact duplicate fragments ignored
	Overlaps    uint64 // datagrams discarded for an overlap or a contradiction
	Discarded   uint64 // fragments of an already discarded datagram
	Timeouts    uint64 // datagrams expired incomplete
	Evictions   uint64 // datagrams discarded incomplete, oldest first, to make room (MaxDatagrams, MaxBytes)
	// SourceEvictions counts datagrams discarded incomplete because their
	// source started more than MaxPerSource.
	SourceEvictions uint64
	MemoryDrops     uint64 // fragments dropped because their datagram alone would exceed MaxBytes
	TooLarge        uint64 // fragments that would make a datagram over 65535 bytes
	Invalid         uint64 // fragments with a bad length
	Datagrams       int    // datagrams being reassembled (or remembered as discarded)
	Bytes           int    // bytes accounted against MaxBytes
	SpareBytes      int    // bytes of buffers kept for reuse
}

// fragKey identifies the datagram a fragment belongs to (RFC 791 §3.2:
// "the fragments of a datagram ... have the same source, destination,
// protocol, and identifier").
type fragKey struct {
	src, dst [4]byte
	proto    uint8
	id       uint16
}

// span is the range [start, end) of data bytes one fragment carried.
type span struct{ start, end int }

// spanCost is what one span is charged against MaxBytes.
const spanCost = 16

// datagram is one datagram under reassembly.
type datagram struct {
	key      fragKey
	deadline time.Time
	// buf holds MaxHeaderLen bytes of headroom, where the header is written
	// on completion, followed by the data.
	buf      []byte
	spans    []span // fragments received, sorted, disjoint
	received int    // data bytes received: the sum of the spans
	total    int    // data length, known from the last fragment; -1 before
	hdr      [MaxHeaderLen]byte
	hdrLen   int  // header length of fragment zero; 0 until it arrives
	firstLen int  // data bytes of fragment zero
	dropped  bool // discarded after an overlap: ignore fragments until deadline
	bytes    int  // bytes charged against MaxBytes
}

// Reassembler rebuilds datagrams from fragments (RFC 791 §3.2,
// "Reassembly"). It tracks the fragments received as a sorted list of byte
// ranges: the holes of RFC 815 are the gaps between them, and the datagram
// is complete when the last fragment has fixed its length and the ranges
// add up to it. Data is copied once into a single buffer per datagram
// (RFC 815 §1: "only one buffer ... equal in size to the final datagram").
//
// Policies:
//   - Overlap: a fragment whose range overlaps a received one without being
//     identical discards the whole datagram (RFC 5722 §4: "the entire
//     datagram (and any constituent fragments, including those not yet
//     received) MUST be silently discarded"), applied to IPv4 as Linux
//     does. The key is remembered until the datagram's timeout, so later
//     fragments are discarded too rather than starting a new datagram.
//   - Exact duplicate (same offset and length): ignored and counted; the
//     first copy's bytes are kept. Duplicates are normal when a sender or
//     a link repeats packets, and dropping the datagram for them would
//     punish ordinary loss recovery.
//   - Limits: a fragment that would exceed MaxDatagrams or MaxBytes
//     evicts the oldest incomplete datagrams until it fits (counted as
//     Evictions). Refusing it instead would let an attacker who sends
//     MaxDatagrams fragments that never complete deny all reassembly for
//     a whole timeout; with eviction a datagram is lost only if
//     MaxDatagrams newer ones start before its fragments are all in, or
//     MaxPerSource newer ones from its own source (which keeps one
//     flooding host from evicting others). The oldest datagram is the one
//     that has waited longest for its missing fragments: the least
//     likely to complete.
//   - Memory: buffers come in power-of-two size classes and are charged
//     at their capacity; those of datagrams that are evicted, expire or
//     are discarded are kept (up to MaxBytes of them) for the next datagrams, as
//     are the datagram records, so that a flood of fragments that never
//     complete allocates nothing in the steady state. A completed
//     datagram's buffer goes to the caller.
//
// A Reassembler is not safe for concurrent use and never reads the clock:
// times are passed in.
type Reassembler struct {
	cfg   ReassemblyConfig
	byKey map[fragKey]*datagram
	list  []*datagram // in creation order, which is deadline order
	bytes int
	stats ReassemblyStats
	icmp  [MaxHeaderLen + 8]byte // what Expire hands to timedOut

	spare      []*datagram             // records to reuse, at most MaxDatagrams
	bufs       [numBufClasses][][]byte // buffers to reuse, by size class
	spareBytes int                     // capacity held in bufs
	spareMax   int                     // bound on spareBytes
}

// Buffer size classes: powers of two from minBufClass, the last one the
// largest buffer a datagram needs.
const (
	minBufClass   = 256
	maxBuf        = MaxHeaderLen + MaxTotalLength
	numBufClasses = 10 // 256 << 9 = 128 KiB > maxBuf
)

// bufClass returns the size class of a buffer of n bytes and its capacity.
func bufClass(n int) (int, int) {
	c, size := 0, minBufClass
	for size < n && size < maxBuf {
		c++
		size <<= 1
	}
	return c, min(size, maxBuf)
}

// getBuf returns a buffer of length n from the spares, or a new one.
func (r *Reassembler) getBuf(n int) []byte {
	c, size := bufClass(n)
	if l := len(r.bufs[c]); l > 0 {
		b := r.bufs[c][l-1]
		r.bufs[c][l-1] = nil
		r.bufs[c] = r.bufs[c][:l-1]
		r.spareBytes -= cap(b)
		return b[:n]
	}
	return make([]byte, n, size)
}

// putBuf keeps b for reuse if the spares have room.
func (r *Reassembler) putBuf(b []byte) {
	if cap(b) == 0 || r.spareBytes+cap(b) > r.spareMax {
		return
	}
	c, size := bufClass(cap(b))
	if size != cap(b) {
		return // not one of ours
	}
	r.bufs[c] = append(r.bufs[c], b[:0])
	r.spareBytes += cap(b)
}

// newDatagram returns a cleared record for key k, reused if one is spare.
func (r *Reassembler) newDatagram(k fragKey, deadline time.Time) *datagram {
	var d *datagram
	if l := len(r.spare); l > 0 {
		d = r.spare[l-1]
		r.spare[l-1] = nil
		r.spare = r.spare[:l-1]
		spans := d.spans[:0]
		*d = datagram{spans: spans}
	} else {
		d = &datagram{spans: make([]span, 0, 4)}
	}
	d.key, d.deadline, d.total = k, deadline, -1
	return d
}

// recycle keeps d's buffer and record for reuse; d is out of the table.
func (r *Reassembler) recycle(d *datagram) {
	r.putBuf(d.buf)
	d.buf = nil
	if len(r.spare) < r.cfg.MaxDatagrams {
		r.spare = append(r.spare, d)
	}
}

// NewReassembler returns a Reassembler bounded by cfg.
func NewReassembler(cfg ReassemblyConfig) *Reassembler {
	if cfg.MaxDatagrams <= 0 {
		cfg.MaxDatagrams = DefaultMaxDatagrams
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultReassemblyTimeout
	}
	if cfg.MaxPerSource <= 0 {
		cfg.MaxPerSource = max(cfg.MaxDatagrams/4, 4)
	}
	cfg.MaxPerSource = min(cfg.MaxPerSource, cfg.MaxDatagrams)
	return &Reassembler{cfg: cfg, byKey: make(map[fragKey]*datagram, cfg.MaxDatagrams),
		spareMax: cfg.MaxBytes}
}

// Add takes a fragment h (a Header from ParseHeader) received at now. When
// h completes its datagram, Add returns the datagram: a fresh buffer owned
// by the caller, holding fragment zero's header (options included) with MF
// cleared, offset 0, Total Length and checksum recomputed, then the data.
// Otherwise it returns nil, with a nil error when the fragment was stored
// (or was an exact duplicate), and one of ErrFragmentOverlap,
// ErrFragmentTooLarge, ErrFragmentInvalid, ErrReassemblyFull when it was
// dropped.
//
// A datagram that is not a fragment (MF clear, offset 0) is returned as
// is.
func (r *Reassembler) Add(h Header, now time.Time) ([]byte, error) {
	if !h.IsFragment() {
		return h, nil
	}
	r.stats.Fragments++
	data := h.Payload()
	off := h.FragmentOffset()
	end := off + len(data)
	mf := h.MoreFragments()
	// RFC 791 §3.2: every fragment but the last carries a whole number of
	// 8-octet blocks ("NFB the number of fragment blocks").
	if mf && (len(data) == 0 || len(data)%8 != 0) {
		r.stats.Invalid++
		return nil, ErrFragmentInvalid
	}
	k := fragKey{src: [4]byte(h[offSource:]), dst: [4]byte(h[offDestination:]),
		proto: h.Protocol(), id: h.ID()}
	d := r.byKey[k]
	if d != nil && d.dropped {
		if now.Before(d.deadline) {
			r.stats.Discarded++
			return nil, ErrFragmentOverlap
		}
		r.remove(d) // its timeout has passed: a new datagram may reuse the key
		d = nil
	}
	created := d == nil
	if created {
		// RFC 1122 §3.3.2: "The reassembly timeout MUST be a fixed value,
		// not set from the remaining TTL."
		d = r.newDatagram(k, now.Add(r.cfg.Timeout))
	}

	// Where the fragment goes, and whether it collides.
	i, _ := slices.BinarySearchFunc(d.spans, off, func(s span, off int) int { return s.start - off })
	if len(data) > 0 && i < len(d.spans) && d.spans[i].start == off && d.spans[i].end == end {
		if !mf && d.total != end {
			return nil, r.overlap(d) // a duplicate of data that claims to be last, but is not
		}
		r.stats.Duplicates++
		return nil, nil
	}
	if len(data) > 0 && ((i > 0 && d.spans[i-1].end > off) || (i < len(d.spans) && d.spans[i].start < end)) {
		return nil, r.overlap(d)
	}
	if !mf {
		// The last fragment fixes the length; nothing may lie beyond it.
		if (d.total >= 0 && d.total != end) || (len(d.spans) > 0 && d.spans[len(d.spans)-1].end > end) {
			return nil, r.overlap(d)
		}
	} else if d.total >= 0 && end > d.total {
		return nil, r.overlap(d)
	}

	hl := d.hdrLen
	if off == 0 {
		hl = h.HeaderLength()
	}
	if hl == 0 {
		hl = HeaderLen
	}
	if hl+max(end, d.total) > MaxTotalLength {
		r.stats.TooLarge++
		if created {
			r.recycle(d)
		} else {
			r.drop(d)
		}
		return nil, ErrFragmentTooLarge
	}

	// Memory: grow the buffer to hold the data, doubling while the length
	// is unknown, exactly once it is known. The charge is the capacity of
	// the buffer's size class.
	size := len(d.buf)
	if need := MaxHeaderLen + end; need > size {
		if !mf {
			size = need
		} else if d.total >= 0 {
			size = MaxHeaderLen + d.total
		} else {
			size = max(need, min(2*size, maxBuf))
		}
	}
	newCap := cap(d.buf)
	if size > newCap {
		_, newCap = bufClass(size)
	}
	delta := newCap - cap(d.buf)
	if len(data) > 0 {
		delta += spanCost
	}
	if d.bytes+delta > r.cfg.MaxBytes {
		r.stats.MemoryDrops++
		if created {
			r.recycle(d)
		}
		return nil, ErrReassemblyFull
	}
	// Make room: the source's own oldest if it holds its share, then the
	// oldest datagrams (the Limits policy above).
	if created {
		r.boundSource(k.src)
	}
	for len(r.list) > 0 && (r.bytes+delta > r.cfg.MaxBytes || created && len(r.list) >= r.cfg.MaxDatagrams) {
		victim := r.list[0]
		if victim == d {
			victim = r.list[1] // d alone fits (checked above), so another exists
		}
		if !victim.dropped {
			r.stats.Evictions++
		}
		r.remove(victim)
	}
	if size > cap(d.buf) {
		nb := r.getBuf(size)
		copy(nb, d.buf)
		r.putBuf(d.buf)
		d.buf = nb
	} else {
		d.buf = d.buf[:size]
	}
	d.bytes += delta
	r.bytes += delta
	if created {
		r.byKey[k] = d
		r.list = append(r.list, d)
	}

	if len(data) > 0 {
		d.spans = slices.Insert(d.spans, i, span{off, end})
		copy(d.buf[MaxHeaderLen+off:], data)
		d.received += len(data)
	}
	if !mf {
		d.total = end
	}
	if off == 0 {
		// RFC 791 §3.2: the reassembled datagram takes the header of the
		// fragment with offset zero (the only one with all options).
		d.hdrLen = copy(d.hdr[:], h[:h.HeaderLength()])
		d.firstLen = len(data)
	}
	if d.total < 0 || d.received != d.total || d.hdrLen == 0 {
		return nil, nil
	}

	// Complete: no holes remain.
	hl = d.hdrLen
	out := d.buf[MaxHeaderLen-hl : MaxHeaderLen+d.total : MaxHeaderLen+d.total]
	copy(out, d.hdr[:hl])
	binary.BigEndian.PutUint16(out[offTotalLength:], uint16(len(out)))
	setFragment(out, false, 0)
	setChecksum(out[:hl])
	d.buf = nil // the caller's now
	r.remove(d)
	r.stats.Reassembled++
	return out, nil
}

// boundSource makes room for a new datagram from src: when src holds
// MaxPerSource datagrams already, its oldest goes. The scan is over at
// most MaxDatagrams records, once per new datagram.
func (r *Reassembler) boundSource(src [4]byte) {
	n := 0
	var oldest *datagram
	for _, d := range r.list {
		if d.key.src == src {
			if oldest == nil {
				oldest = d
			}
			n++
		}
	}
	if n >= r.cfg.MaxPerSource {
		if !oldest.dropped {
			r.stats.SourceEvictions++
		}
		r.remove(oldest)
	}
}

// overlap discards d after a colliding fragment and remembers its key until
// its deadline.
func (r *Reassembler) overlap(d *datagram) error {
	r.stats.Overlaps++
	r.drop(d)
	return ErrFragmentOverlap
}

// drop frees d's buffers and marks it discarded until its deadline.
func (r *Reassembler) drop(d *datagram) {
	r.bytes -= d.bytes
	d.bytes = 0
	r.putBuf(d.buf)
	d.buf, d.spans = nil, d.spans[:0]
	d.dropped = true
}

// remove forgets d and keeps its record and buffer for reuse.
func (r *Reassembler) remove(d *datagram) {
	r.bytes -= d.bytes
	d.bytes = 0
	delete(r.byKey, d.key)
	if i := slices.Index(r.list, d); i >= 0 {
		r.list = slices.Delete(r.list, i, i+1)
	}
	r.recycle(d)
}

// Expire removes the datagrams whose timeout has passed at now. For each
// incomplete datagram whose fragment zero had arrived it calls timedOut (if
// not nil) with that fragment's header and the first 8 bytes of its data,
// as received: the body of an ICMP Time Exceeded message,
// CodeReassemblyTimeExceeded (RFC 792, Time Exceeded Message; RFC 1122
// §3.3.2: "if fragment zero is not available, then no time-exceeded need
// be sent at all"). The slice is valid only during the call, and timedOut
// must not call the Reassembler.
func (r *Reassembler) Expire(now time.Time, timedOut func(first []byte)) {
	kept := r.list[:0]
	for _, d := range r.list {
		if now.Before(d.deadline) {
			kept = append(kept, d)
			continue
		}
		delete(r.byKey, d.key)
		r.bytes -= d.bytes
		d.bytes = 0
		if !d.dropped {
			r.stats.Timeouts++
			if d.hdrLen > 0 && timedOut != nil {
				n := copy(r.icmp[:], d.hdr[:d.hdrLen])
				n += copy(r.icmp[n:], d.buf[MaxHeaderLen:MaxHeaderLen+min(8, d.firstLen)])
				timedOut(r.icmp[:n])
			}
		}
		r.recycle(d)
	}
	clear(r.list[len(kept):])
	r.list = kept
}

// NextDeadline returns the earliest time at which Expire has work, or the
// zero Time when no datagram is pending. Every datagram lives Timeout
// from its first fragment, so the oldest has the earliest deadline.
func (r *Reassembler) NextDeadline() time.Time {
	if len(r.list) == 0 {
		return time.Time{}
	}
	return r.list[0].deadline
}

// Stats returns the counters.
func (r *Reassembler) Stats() ReassemblyStats {
	s := r.stats
	s.Datagrams = len(r.list)
	s.Bytes = r.bytes
	s.SpareBytes = r.spareBytes
	return s
}
