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
	// ErrReassemblyFull: accepting the fragment would exceed MaxDatagrams
	// or MaxBytes.
	ErrReassemblyFull = errors.New("ipv4: reassembly buffers full")
)

// ReassemblyConfig bounds a Reassembler. Zero fields take the defaults.
type ReassemblyConfig struct {
	// MaxDatagrams is the number of datagrams reassembled at once
	// (default 64).
	MaxDatagrams int
	// MaxBytes bounds the buffered bytes across all datagrams, counting
	// each datagram's buffer and bookkeeping (default 4 MiB).
	MaxBytes int
	// Timeout is how long a datagram may take to complete, counted from
	// its first fragment (default 30 s).
	Timeout time.Duration
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
	MemoryDrops uint64 // fragments dropped because of MaxBytes
	LimitDrops  uint64 // fragments dropped because of MaxDatagrams
	TooLarge    uint64 // fragments that would make a datagram over 65535 bytes
	Invalid     uint64 // fragments with a bad length
	Datagrams   int    // datagrams being reassembled (or remembered as discarded)
	Bytes       int    // bytes accounted against MaxBytes
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
//   - Limits: a fragment that would exceed MaxDatagrams or MaxBytes is
//     dropped and counted; datagrams already in progress are not evicted,
//     so a flood of new fragments cannot destroy work nearly done.
//
// A Reassembler is not safe for concurrent use and never reads the clock:
// times are passed in.
type Reassembler struct {
	cfg   ReassemblyConfig
	byKey map[fragKey]*datagram
	list  []*datagram // in creation order
	bytes int
	stats ReassemblyStats
	icmp  [MaxHeaderLen + 8]byte // what Expire hands to timedOut
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
	return &Reassembler{cfg: cfg, byKey: make(map[fragKey]*datagram)}
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
		if len(r.list) >= r.cfg.MaxDatagrams {
			r.stats.LimitDrops++
			return nil, ErrReassemblyFull
		}
		// RFC 1122 §3.3.2: "The reassembly timeout MUST be a fixed value,
		// not set from the remaining TTL."
		d = &datagram{key: k, deadline: now.Add(r.cfg.Timeout), total: -1}
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
		if !created {
			r.drop(d)
		}
		return nil, ErrFragmentTooLarge
	}

	// Memory: grow the buffer to hold the data, doubling while the length
	// is unknown, exactly once it is known.
	size := len(d.buf)
	if need := MaxHeaderLen + end; need > size {
		if !mf {
			size = need
		} else if d.total >= 0 {
			size = MaxHeaderLen + d.total
		} else {
			size = max(need, min(2*size, MaxHeaderLen+MaxTotalLength))
		}
	}
	delta := size - len(d.buf)
	if len(data) > 0 {
		delta += spanCost
	}
	if r.bytes+delta > r.cfg.MaxBytes {
		r.stats.MemoryDrops++
		return nil, ErrReassemblyFull
	}
	if size > len(d.buf) {
		nb := make([]byte, size)
		copy(nb, d.buf)
		d.buf = nb
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
	d.buf = nil
	r.remove(d)
	r.stats.Reassembled++
	return out, nil
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
	d.buf, d.spans = nil, nil
	d.dropped = true
}

// remove forgets d.
func (r *Reassembler) remove(d *datagram) {
	r.bytes -= d.bytes
	d.bytes = 0
	delete(r.byKey, d.key)
	if i := slices.Index(r.list, d); i >= 0 {
		r.list = slices.Delete(r.list, i, i+1)
	}
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
		if d.dropped {
			continue
		}
		r.stats.Timeouts++
		if d.hdrLen > 0 && timedOut != nil {
			n := copy(r.icmp[:], d.hdr[:d.hdrLen])
			n += copy(r.icmp[n:], d.buf[MaxHeaderLen:MaxHeaderLen+min(8, d.firstLen)])
			timedOut(r.icmp[:n])
		}
	}
	clear(r.list[len(kept):])
	r.list = kept
}

// NextDeadline returns the earliest time at which Expire has work, or the
// zero Time when no datagram is pending.
func (r *Reassembler) NextDeadline() time.Time {
	var t time.Time
	for _, d := range r.list {
		if t.IsZero() || d.deadline.Before(t) {
			t = d.deadline
		}
	}
	return t
}

// Stats returns the counters.
func (r *Reassembler) Stats() ReassemblyStats {
	s := r.stats
	s.Datagrams = len(r.list)
	s.Bytes = r.bytes
	return s
}
