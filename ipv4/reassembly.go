package ipv4

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/ustack/ustack/internal/reasm"
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

// fragID is the rest of the key that identifies the datagram a fragment
// belongs to, after its addresses (RFC 791 §3.2: "the fragments of a
// datagram ... have the same source, destination, protocol, and
// identifier"): the protocol in bits 16-23, the identifier in bits 0-15.
// One word, so that the key has no padding and hashes as one block.
type fragID uint32

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
// The mechanism is internal/reasm's, shared with ipv6.Reassembler; this
// type parses the IPv4 header, keys the datagrams and rebuilds the header.
//
// A Reassembler is not safe for concurrent use and never reads the clock:
// times are passed in.
type Reassembler struct {
	cfg  ReassemblyConfig // with the defaults applied
	core *reasm.Reassembler[[4]byte, fragID, struct{}]
	icmp [MaxHeaderLen + 8]byte // what Expire hands to timedOut
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
	return &Reassembler{cfg: cfg, core: reasm.New[[4]byte, fragID, struct{}](reasm.Config{
		MaxDatagrams: cfg.MaxDatagrams, MaxBytes: cfg.MaxBytes, Timeout: cfg.Timeout,
		MaxPerSource: cfg.MaxPerSource,
		// The header is written in MaxHeaderLen bytes of headroom before
		// the data; RFC 791 §3.1 bounds Total Length, header included.
		Headroom: MaxHeaderLen, MinHeaderLen: HeaderLen, MaxLen: MaxTotalLength,
		MaxBuf: MaxHeaderLen + MaxTotalLength,
	})}
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
	k := reasm.Key[[4]byte, fragID]{Src: [4]byte(h[offSource:]), Dst: [4]byte(h[offDestination:]),
		ID: fragID(h.Protocol())<<16 | fragID(h.ID())}
	// RFC 791 §3.2: the reassembled datagram takes the header of the
	// fragment with offset zero (the only one with all options).
	out, _, res := r.core.Add(k, h.FragmentOffset(), h.Payload(), h.MoreFragments(),
		h[:h.HeaderLength()], struct{}{}, now)
	switch res {
	case reasm.Complete:
		binary.BigEndian.PutUint16(out[offTotalLength:], uint16(len(out)))
		setFragment(out, false, 0)
		setChecksum(out[:Header(out).HeaderLength()])
		return out, nil
	case reasm.Overlap, reasm.Discarded:
		return nil, ErrFragmentOverlap
	case reasm.TooLarge:
		return nil, ErrFragmentTooLarge
	case reasm.Invalid:
		return nil, ErrFragmentInvalid
	case reasm.Full:
		return nil, ErrReassemblyFull
	}
	return nil, nil
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
	if timedOut == nil {
		r.core.Expire(now, nil)
		return
	}
	r.core.Expire(now, func(_ reasm.Key[[4]byte, fragID], hdr, data []byte, _ struct{}) {
		n := copy(r.icmp[:], hdr)
		n += copy(r.icmp[n:], data[:min(8, len(data))])
		timedOut(r.icmp[:n])
	})
}

// NextDeadline returns the earliest time at which Expire has work, or the
// zero Time when no datagram is pending. Every datagram lives Timeout
// from its first fragment, so the oldest has the earliest deadline.
func (r *Reassembler) NextDeadline() time.Time { return r.core.NextDeadline() }

// Stats returns the counters.
func (r *Reassembler) Stats() ReassemblyStats { return ReassemblyStats(r.core.Stats()) }
