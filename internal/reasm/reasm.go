// Package reasm is the reassembly mechanism that ipv4.Reassembler and
// ipv6.Reassembler share: the buffering of fragment data, the hole
// bookkeeping (RFC 815), the overlap rule (RFC 5722 §4), the memory and
// count bounds with eviction of the oldest incomplete datagram and a
// per-source share, buffer and record reuse, and expiry. The family
// packages parse the headers, choose the key and rebuild the header of
// the whole datagram.
//
// A Reassembler is not safe for concurrent use and never reads the clock:
// times are passed in.
package reasm

import (
	"slices"
	"time"
)

// Config bounds a Reassembler and describes its family's datagrams. The
// bounds must be positive (the family packages apply their defaults).
type Config struct {
	MaxDatagrams int           // datagrams reassembled at once
	MaxBytes     int           // bytes buffered across datagrams, and bound on spare buffers
	Timeout      time.Duration // lifetime of a datagram from its first fragment
	MaxPerSource int           // datagrams one source may hold

	// Headroom is the room before the data in each buffer: fragment
	// zero's header is kept at its end, right before the data, so that the
	// whole datagram is contiguous on completion. No header may be longer.
	Headroom int
	// MinHeaderLen is the header length assumed until fragment zero
	// arrives, for the MaxLen check.
	MinHeaderLen int
	// MaxLen bounds a datagram's header and data together.
	MaxLen int
	// MaxBuf is the largest buffer a datagram needs (at most 128 KiB, the
	// largest size class), Headroom and data: buffers of the last size
	// class have this capacity.
	MaxBuf int
}

// Stats counts what a Reassembler did. Datagrams, Bytes and SpareBytes are
// current values; the rest are totals. The fields mean what those of
// ipv4.ReassemblyStats do.
type Stats struct {
	Fragments, Reassembled, Duplicates, Overlaps, Discarded, Timeouts uint64
	Evictions, SourceEvictions, MemoryDrops, TooLarge, Invalid        uint64
	Datagrams, Bytes, SpareBytes                                      int
}

// Result says what Add did with a fragment.
type Result int

// Results of Add.
const (
	Stored    Result = iota // stored, or ignored as an exact duplicate
	Complete                // completed its datagram
	Overlap                 // overlapped or contradicted its datagram, which is discarded
	Discarded               // belongs to a datagram discarded before
	TooLarge                // would make its datagram exceed MaxLen; discarded
	Invalid                 // a fragment with more to follow whose data is empty or not a multiple of 8 bytes
	Full                    // its datagram alone would need more than MaxBytes
)

// Key identifies the datagram a fragment belongs to: its source and
// destination addresses, and ID, the rest of the family's key.
type Key[A, I comparable] struct {
	Src, Dst A
	ID       I
}

// span is the range [start, end) of data bytes one fragment carried.
type span struct{ start, end int }

// spanCost is what one span is charged against MaxBytes.
const spanCost = 16

// datagram is one datagram under reassembly.
type datagram[A, I comparable, E any] struct {
	key      Key[A, I]
	deadline time.Time
	// buf holds Headroom bytes, fragment zero's header at their end,
	// followed by the data.
	buf      []byte
	spans    []span // fragments received, sorted, disjoint
	received int    // data bytes received: the sum of the spans
	total    int    // data length, known from the last fragment; -1 before
	hdrLen   int    // header length of fragment zero; 0 until it arrives
	firstLen int    // data bytes of fragment zero
	info     E      // what the family kept of fragment zero
	dropped  bool   // discarded after an overlap: ignore fragments until deadline
	bytes    int    // bytes charged against MaxBytes
}

// Reassembler rebuilds datagrams keyed by Key[A, I]; E is what the family
// keeps of fragment zero besides its header. Its policies are those
// documented on ipv4.Reassembler.
type Reassembler[A, I comparable, E any] struct {
	cfg   Config
	byKey map[Key[A, I]]*datagram[A, I, E]
	list  []*datagram[A, I, E] // in creation order, which is deadline order
	bytes int
	stats Stats

	spare      []*datagram[A, I, E]    // records to reuse, at most MaxDatagrams
	bufs       [numBufClasses][][]byte // buffers to reuse, by size class
	spareBytes int                     // capacity held in bufs
	maxBuf     int                     // the largest buffer a datagram needs
}

// Buffer size classes: powers of two from minBufClass, the last one the
// largest buffer a datagram needs, maxBuf.
const (
	minBufClass   = 256
	numBufClasses = 10 // 256 << 9 = 128 KiB
)

// New returns a Reassembler for cfg.
func New[A, I comparable, E any](cfg Config) *Reassembler[A, I, E] {
	return &Reassembler[A, I, E]{cfg: cfg, byKey: make(map[Key[A, I]]*datagram[A, I, E], cfg.MaxDatagrams),
		maxBuf: cfg.MaxBuf}
}

// bufClass returns the size class of a buffer of n bytes and its capacity.
func (r *Reassembler[A, I, E]) bufClass(n int) (int, int) {
	c, size := 0, minBufClass
	for size < n && size < r.maxBuf {
		c++
		size <<= 1
	}
	return c, min(size, r.maxBuf)
}

// getBuf returns a buffer of length n from the spares, or a new one.
func (r *Reassembler[A, I, E]) getBuf(n int) []byte {
	c, size := r.bufClass(n)
	if l := len(r.bufs[c]); l > 0 {
		b := r.bufs[c][l-1]
		r.bufs[c][l-1] = nil
		r.bufs[c] = r.bufs[c][:l-1]
		r.spareBytes -= cap(b)
		return b[:n]
	}
	return make([]byte, n, size)
}

// putBuf keeps b for reuse if the spares have room (MaxBytes).
func (r *Reassembler[A, I, E]) putBuf(b []byte) {
	if cap(b) == 0 || r.spareBytes+cap(b) > r.cfg.MaxBytes {
		return
	}
	c, size := r.bufClass(cap(b))
	if size != cap(b) {
		return // not one of ours
	}
	r.bufs[c] = append(r.bufs[c], b[:0])
	r.spareBytes += cap(b)
}

// newDatagram returns a cleared record for key k, reused if one is spare.
func (r *Reassembler[A, I, E]) newDatagram(k Key[A, I], deadline time.Time) *datagram[A, I, E] {
	var d *datagram[A, I, E]
	if l := len(r.spare); l > 0 {
		d = r.spare[l-1]
		r.spare[l-1] = nil
		r.spare = r.spare[:l-1]
		spans := d.spans[:0]
		*d = datagram[A, I, E]{spans: spans}
	} else {
		d = &datagram[A, I, E]{spans: make([]span, 0, 4)}
	}
	d.key, d.deadline, d.total = k, deadline, -1
	return d
}

// recycle keeps d's buffer and record for reuse; d is out of the table.
func (r *Reassembler[A, I, E]) recycle(d *datagram[A, I, E]) {
	r.putBuf(d.buf)
	d.buf = nil
	if len(r.spare) < r.cfg.MaxDatagrams {
		r.spare = append(r.spare, d)
	}
}

// Reject counts a fragment the family dropped as invalid before Add.
func (r *Reassembler[A, I, E]) Reject() {
	r.stats.Fragments++
	r.stats.Invalid++
}

// Add takes, at now, the data of a fragment of the datagram k at offset
// off, mf telling whether more fragments follow. When off is 0, hdr is
// the header the whole datagram takes (at most Headroom bytes) and info
// what the family keeps of it; otherwise hdr and info are ignored. On
// Complete, Add returns the datagram, header then data, in a buffer that
// is the caller's now, and fragment zero's info.
func (r *Reassembler[A, I, E]) Add(k Key[A, I], off int, data []byte, mf bool, hdr []byte, info E, now time.Time) ([]byte, E, Result) {
	var none E
	r.stats.Fragments++
	end := off + len(data)
	// RFC 791 §3.2 and RFC 8200 §4.5: every fragment but the last carries
	// a whole number of 8-octet blocks.
	if mf && (len(data) == 0 || len(data)%8 != 0) {
		r.stats.Invalid++
		return nil, none, Invalid
	}
	d := r.byKey[k]
	if d != nil && d.dropped {
		if now.Before(d.deadline) {
			r.stats.Discarded++
			return nil, none, Discarded
		}
		r.remove(d) // its timeout has passed: a new datagram may reuse the key
		d = nil
	}
	created := d == nil
	if created {
		// RFC 1122 §3.3.2: "The reassembly timeout MUST be a fixed value,
		// not set from the remaining TTL"; RFC 8200 §4.5: counted "of the
		// reception of the first-arriving fragment of that packet".
		d = r.newDatagram(k, now.Add(r.cfg.Timeout))
	}

	// Where the fragment goes, and whether it collides.
	i, _ := slices.BinarySearchFunc(d.spans, off, func(s span, off int) int { return s.start - off })
	if len(data) > 0 && i < len(d.spans) && d.spans[i].start == off && d.spans[i].end == end {
		if !mf && d.total != end {
			return nil, none, r.overlap(d) // a duplicate of data that claims to be last, but is not
		}
		r.stats.Duplicates++
		return nil, none, Stored
	}
	if len(data) > 0 && ((i > 0 && d.spans[i-1].end > off) || (i < len(d.spans) && d.spans[i].start < end)) {
		return nil, none, r.overlap(d)
	}
	if !mf {
		// The last fragment fixes the length; nothing may lie beyond it.
		if (d.total >= 0 && d.total != end) || (len(d.spans) > 0 && d.spans[len(d.spans)-1].end > end) {
			return nil, none, r.overlap(d)
		}
	} else if d.total >= 0 && end > d.total {
		return nil, none, r.overlap(d)
	}

	hl := d.hdrLen
	if off == 0 {
		hl = len(hdr)
	}
	if hl == 0 {
		hl = r.cfg.MinHeaderLen
	}
	if hl+max(end, d.total) > r.cfg.MaxLen {
		r.stats.TooLarge++
		if created {
			r.recycle(d)
		} else {
			r.drop(d)
		}
		return nil, none, TooLarge
	}

	// Memory: grow the buffer to hold the data, doubling while the length
	// is unknown, exactly once it is known. The charge is the capacity of
	// the buffer's size class.
	room := r.cfg.Headroom
	size := len(d.buf)
	if need := room + end; need > size {
		if !mf {
			size = need
		} else if d.total >= 0 {
			size = room + d.total
		} else {
			size = max(need, min(2*size, r.maxBuf))
		}
	}
	newCap := cap(d.buf)
	if size > newCap {
		_, newCap = r.bufClass(size)
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
		return nil, none, Full
	}
	// Make room: the source's own oldest if it holds its share, then the
	// oldest datagrams.
	if created {
		r.boundSource(k.Src)
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
		copy(d.buf[room+off:], data)
		d.received += len(data)
	}
	if !mf {
		d.total = end
	}
	if off == 0 {
		d.hdrLen = copy(d.buf[room-len(hdr):room], hdr)
		d.firstLen = len(data)
		d.info = info
	}
	if d.total < 0 || d.received != d.total || d.hdrLen == 0 {
		return nil, none, Stored
	}

	// Complete: no holes remain.
	out := d.buf[room-d.hdrLen : room+d.total : room+d.total]
	info = d.info
	d.buf = nil // the caller's now
	r.remove(d)
	r.stats.Reassembled++
	return out, info, Complete
}

// boundSource makes room for a new datagram from src: when src holds
// MaxPerSource datagrams already, its oldest goes. The scan is over at
// most MaxDatagrams records, once per new datagram.
func (r *Reassembler[A, I, E]) boundSource(src A) {
	n := 0
	var oldest *datagram[A, I, E]
	for _, d := range r.list {
		if d.key.Src == src {
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
func (r *Reassembler[A, I, E]) overlap(d *datagram[A, I, E]) Result {
	r.stats.Overlaps++
	r.drop(d)
	return Overlap
}

// drop frees d's buffers and marks it discarded until its deadline.
func (r *Reassembler[A, I, E]) drop(d *datagram[A, I, E]) {
	r.bytes -= d.bytes
	d.bytes = 0
	r.putBuf(d.buf)
	d.buf, d.spans = nil, d.spans[:0]
	d.dropped = true
}

// remove forgets d and keeps its record and buffer for reuse.
func (r *Reassembler[A, I, E]) remove(d *datagram[A, I, E]) {
	r.bytes -= d.bytes
	d.bytes = 0
	delete(r.byKey, d.key)
	if i := slices.Index(r.list, d); i >= 0 {
		r.list = slices.Delete(r.list, i, i+1)
	}
	r.recycle(d)
}

// Expire removes the datagrams whose timeout has passed at now. For each
// incomplete one whose fragment zero had arrived it calls timedOut (if not
// nil) with its key, fragment zero's header, data and info, valid only
// during the call; timedOut must not call the Reassembler.
func (r *Reassembler[A, I, E]) Expire(now time.Time, timedOut func(k Key[A, I], hdr, data []byte, info E)) {
	kept := r.list[:0]
	room := r.cfg.Headroom
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
				timedOut(d.key, d.buf[room-d.hdrLen:room], d.buf[room:room+d.firstLen], d.info)
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
func (r *Reassembler[A, I, E]) NextDeadline() time.Time {
	if len(r.list) == 0 {
		return time.Time{}
	}
	return r.list[0].deadline
}

// Stats returns the counters.
func (r *Reassembler[A, I, E]) Stats() Stats {
	s := r.stats
	s.Datagrams = len(r.list)
	s.Bytes = r.bytes
	s.SpareBytes = r.spareBytes
	return s
}
