package ipv6

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
	// DefaultReassemblyTimeout is 60 s (RFC 8200 §4.5: "If insufficient
	// fragments are received to complete reassembly of a packet within 60
	// seconds of the reception of the first-arriving fragment of that
	// packet, reassembly of that packet must be abandoned").
	DefaultReassemblyTimeout = 60 * time.Second
	// MaxUnfragmentableLen bounds the Unfragmentable Part (the IPv6 header
	// and the extension headers before the Fragment header) of a fragment
	// a Reassembler accepts; a longer one is ErrFragmentInvalid. RFC 8200
	// sets no bound; 512 octets hold a Hop-by-Hop and a Routing header of
	// any sensible size.
	MaxUnfragmentableLen = 512
)

// Errors returned by Reassembler.Add for fragments it drops. They are
// informational: the stack counts them (Stats has the same figures) and
// sends nothing back.
var (
	// ErrFragmentOverlap: the fragment overlaps data already received with
	// different boundaries, or contradicts the packet's known length; the
	// whole packet is discarded, and so are its later fragments until its
	// timeout (RFC 5722 §4). (ErrFragmentTooLarge, from ParseExtensions,
	// discards the packet the same way.)
	ErrFragmentOverlap = errors.New("ipv6: overlapping fragment, packet discarded")
	// ErrFragmentInvalid: a fragment with M set whose data is empty or not
	// a multiple of 8 bytes, a Chain that does not describe a Fragment
	// header of h, or an Unfragmentable Part over MaxUnfragmentableLen.
	ErrFragmentInvalid = errors.New("ipv6: invalid fragment")
	// ErrReassemblyFull: the fragment's packet would need more than
	// MaxBytes even with every other packet evicted.
	ErrReassemblyFull = errors.New("ipv6: reassembly buffers full")
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
	// its first fragment (default 60 s).
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
	TooLarge        uint64 // fragments that would make a payload over 65535 bytes
	Invalid         uint64 // fragments with a bad length, or a Chain that does not fit them
	Datagrams       int    // datagrams being reassembled (or remembered as discarded)
	Bytes           int    // bytes accounted against MaxBytes
	SpareBytes      int    // bytes of buffers kept for reuse
}

// fragKey identifies the packet a fragment belongs to (RFC 8200 §4.5:
// "Original packets are reassembled only if they have the same Source
// Address, Destination Address, and Fragment Identification").
type fragKey struct {
	src, dst [16]byte
	id       uint32
}

// span is the range [start, end) of data bytes one fragment carried.
type span struct{ start, end int }

// spanCost is what one span is charged against MaxBytes.
const spanCost = 16

// datagram is one datagram under reassembly.
type datagram struct {
	key      fragKey
	deadline time.Time
	// buf holds MaxUnfragmentableLen bytes of headroom, where the
	// Unfragmentable Part is written on completion, followed by the data.
	buf      []byte
	spans    []span                     // fragments received, sorted, disjoint
	received int                        // data bytes received: the sum of the spans
	total    int                        // data length, known from the last fragment; -1 before
	hdr      [MaxUnfragmentableLen]byte // fragment zero's Unfragmentable Part
	hdrLen   int                        // its length; 0 until fragment zero arrives
	nextPtr  int                        // offset in hdr of the Next Header field that named the Fragment header
	next     uint8                      // fragment zero's Fragment header Next Header
	firstLen int                        // data bytes of fragment zero
	dropped  bool                       // discarded after an overlap: ignore fragments until deadline
	bytes    int                        // bytes charged against MaxBytes
}

// Reassembler rebuilds packets from fragments (RFC 8200 §4.5,
// "Reassembly"); its records and policies are those of ipv4.Reassembler. It tracks the fragments received as a sorted list of byte
// ranges: the holes of RFC 815 are the gaps between them, and the datagram
// is complete when the last fragment has fixed its length and the ranges
// add up to it. Data is copied once into a single buffer per datagram
// (RFC 815 §1: "only one buffer ... equal in size to the final datagram").
//
// Policies:
//   - Overlap: a fragment whose range overlaps a received one without being
//     identical discards the whole datagram (RFC 5722 §4: "the entire
//     datagram (and any constituent fragments, including those not yet
//     received) MUST be silently discarded"). The key is remembered until the datagram's timeout, so later
//     fragments are discarded too rather than starting a new datagram.
//   - Exact duplicate (same offset and length): ignored and counted; the
//     first copy's bytes are kept (RFC 8200 §4.5: "an implementation may
//     choose to detect this case and drop exact duplicate fragments while
//     keeping the other fragments belonging to the same packet").
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
	icmp  [MinMTU - HeaderLen - 8]byte // what Expire hands to timedOut: as much as an ICMPv6 error quotes

	spare      []*datagram             // records to reuse, at most MaxDatagrams
	bufs       [numBufClasses][][]byte // buffers to reuse, by size class
	spareBytes int                     // capacity held in bufs
	spareMax   int                     // bound on spareBytes
}

// Buffer size classes: powers of two from minBufClass, the last one the
// largest buffer a datagram needs.
const (
	minBufClass   = 256
	maxBuf        = MaxUnfragmentableLen + MaxPayloadLength
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

// Add takes a fragment h (a Header from ParseHeader) whose chain c
// (from ParseExtensions, Proto NextHeaderFragment) stops at its Fragment
// header, received at now. When h completes its packet, Add returns the
// packet (RFC 8200 §4.5, "Reassembly"): a fresh buffer owned by the
// caller, holding fragment zero's Unfragmentable Part with the Next Header
// field that named the Fragment header set to fragment zero's Fragment
// header Next Header ("Only the value from the Offset zero fragment packet
// is used for reassembly") and the Payload Length recomputed, then the
// Fragmentable Part, without a Fragment header. Otherwise it returns nil,
// with a nil error when the fragment was stored (or was an exact
// duplicate), and one of ErrFragmentOverlap, ErrFragmentTooLarge,
// ErrFragmentInvalid, ErrReassemblyFull when it was dropped.
//
// A packet whose chain is not a fragment (c.Proto is not
// NextHeaderFragment: no Fragment header, or an atomic fragment, which
// RFC 6946 §4 processes in isolation) is returned as is.
func (r *Reassembler) Add(h Header, c Chain, now time.Time) ([]byte, error) {
	if c.Proto != NextHeaderFragment {
		return h, nil
	}
	r.stats.Fragments++
	fh := FragmentAt(h, c.Fragment)
	if fh == nil || c.Offset != c.Fragment || c.ProtoPointer >= c.Fragment || c.Fragment > MaxUnfragmentableLen ||
		(c.ProtoPointer != offNextHeader && c.ProtoPointer < HeaderLen) || h[c.ProtoPointer] != NextHeaderFragment {
		r.stats.Invalid++
		return nil, ErrFragmentInvalid
	}
	data := h[c.Fragment+fragHeaderLen:]
	off := fh.Offset()
	end := off + len(data)
	mf := fh.More()
	// RFC 8200 §4.5: fragments but the last carry "an integer multiple of
	// 8 octets long" of data.
	if mf && (len(data) == 0 || len(data)%8 != 0) {
		r.stats.Invalid++
		return nil, ErrFragmentInvalid
	}
	k := fragKey{src: [16]byte(h[offSource:]), dst: [16]byte(h[offDestination:]), id: fh.Identification()}
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
		// RFC 8200 §4.5: 60 seconds "of the reception of the
		// first-arriving fragment of that packet".
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
		hl = c.Fragment
	}
	if hl == 0 {
		hl = HeaderLen
	}
	// RFC 8200 §4.5: the reassembled Payload Length may not "exceed 65,535
	// octets".
	if hl-HeaderLen+max(end, d.total) > MaxPayloadLength {
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
	if need := MaxUnfragmentableLen + end; need > size {
		if !mf {
			size = need
		} else if d.total >= 0 {
			size = MaxUnfragmentableLen + d.total
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
		copy(d.buf[MaxUnfragmentableLen+off:], data)
		d.received += len(data)
	}
	if !mf {
		d.total = end
	}
	if off == 0 {
		// RFC 8200 §4.5: "The Unfragmentable Part of the reassembled
		// packet consists of all headers up to, but not including, the
		// Fragment header of the first fragment packet".
		d.hdrLen = copy(d.hdr[:], h[:c.Fragment])
		d.nextPtr, d.next = c.ProtoPointer, fh.NextHeader()
		d.firstLen = len(data)
	}
	if d.total < 0 || d.received != d.total || d.hdrLen == 0 {
		return nil, nil
	}

	// Complete: no holes remain.
	hl = d.hdrLen
	out := d.buf[MaxUnfragmentableLen-hl : MaxUnfragmentableLen+d.total : MaxUnfragmentableLen+d.total]
	copy(out, d.hdr[:hl])
	out[d.nextPtr] = d.next
	binary.BigEndian.PutUint16(out[offPayloadLength:], uint16(len(out)-HeaderLen))
	d.buf = nil // the caller's now
	r.remove(d)
	r.stats.Reassembled++
	return out, nil
}

// boundSource makes room for a new datagram from src: when src holds
// MaxPerSource datagrams already, its oldest goes. The scan is over at
// most MaxDatagrams records, once per new datagram.
func (r *Reassembler) boundSource(src [16]byte) {
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

// Expire removes the packets whose timeout has passed at now. For each
// incomplete packet whose fragment zero had arrived it calls timedOut (if
// not nil) with that fragment as received (its Unfragmentable Part,
// Fragment header and data), cut to what an ICMPv6 error can quote: the
// body of a Time Exceeded message, CodeFragmentReassemblyTimeExceeded (RFC
// 8200 §4.5: "If the first fragment (i.e., the one with a Fragment Offset
// of zero) has been received, an ICMP Time Exceeded -- Fragment
// Reassembly Time Exceeded message should be sent to the source of that
// fragment"). Its Payload Length is that of the fragment. The slice is
// valid only during the call, and timedOut must not call the Reassembler.
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
				timedOut(r.firstFragment(d))
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

// firstFragment rebuilds in r.icmp the fragment zero of d, as received,
// cut to len(r.icmp).
func (r *Reassembler) firstFragment(d *datagram) []byte {
	n := copy(r.icmp[:], d.hdr[:d.hdrLen])
	binary.BigEndian.PutUint16(r.icmp[offPayloadLength:], uint16(d.hdrLen-HeaderLen+fragHeaderLen+d.firstLen))
	var fh [fragHeaderLen]byte
	fh[0] = d.next
	binary.BigEndian.PutUint16(fh[2:], fragMore)
	binary.BigEndian.PutUint32(fh[4:], d.key.id)
	n += copy(r.icmp[n:], fh[:])
	n += copy(r.icmp[n:], d.buf[MaxUnfragmentableLen:MaxUnfragmentableLen+d.firstLen])
	return r.icmp[:n]
}
