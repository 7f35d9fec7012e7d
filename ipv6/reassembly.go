package ipv6

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

// The key that identifies the packet a fragment belongs to is its
// addresses and its Fragment Identification (RFC 8200 §4.5: "Original
// packets are reassembled only if they have the same Source Address,
// Destination Address, and Fragment Identification").
type fragKey = reasm.Key[[16]byte, uint32]

// firstInfo is what a Reassembler keeps of fragment zero besides its
// Unfragmentable Part.
type firstInfo struct {
	nextPtr int   // offset in the Unfragmentable Part of the Next Header field that named the Fragment header
	next    uint8 // the Fragment header's Next Header
}

// Reassembler rebuilds packets from fragments (RFC 8200 §4.5,
// "Reassembly"); its records and policies are those of ipv4.Reassembler,
// and its mechanism is internal/reasm's, shared with it. It tracks the
// fragments received as a sorted list of byte ranges: the holes of RFC 815
// are the gaps between them, and the datagram is complete when the last
// fragment has fixed its length and the ranges add up to it. Data is
// copied once into a single buffer per datagram (RFC 815 §1: "only one
// buffer ... equal in size to the final datagram").
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
	core *reasm.Reassembler[[16]byte, uint32, firstInfo]
	icmp [MinMTU - HeaderLen - 8]byte // what Expire hands to timedOut: as much as an ICMPv6 error quotes
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
	return &Reassembler{core: reasm.New[[16]byte, uint32, firstInfo](reasm.Config{
		MaxDatagrams: cfg.MaxDatagrams, MaxBytes: cfg.MaxBytes, Timeout: cfg.Timeout,
		MaxPerSource: cfg.MaxPerSource,
		// The Unfragmentable Part is written in MaxUnfragmentableLen bytes
		// of headroom before the data. RFC 8200 §4.5: the reassembled
		// Payload Length may not "exceed 65,535 octets".
		Headroom: MaxUnfragmentableLen, MinHeaderLen: HeaderLen, MaxLen: HeaderLen + MaxPayloadLength,
		MaxBuf: MaxUnfragmentableLen + MaxPayloadLength,
	})}
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
	fh := FragmentAt(h, c.Fragment)
	if fh == nil || c.Offset != c.Fragment || c.ProtoPointer >= c.Fragment || c.Fragment > MaxUnfragmentableLen ||
		(c.ProtoPointer != offNextHeader && c.ProtoPointer < HeaderLen) || h[c.ProtoPointer] != NextHeaderFragment {
		r.core.Reject()
		return nil, ErrFragmentInvalid
	}
	k := fragKey{Src: [16]byte(h[offSource:]), Dst: [16]byte(h[offDestination:]), ID: fh.Identification()}
	// RFC 8200 §4.5: "The Unfragmentable Part of the reassembled packet
	// consists of all headers up to, but not including, the Fragment
	// header of the first fragment packet".
	out, first, res := r.core.Add(k, fh.Offset(), h[c.Fragment+fragHeaderLen:], fh.More(),
		h[:c.Fragment], firstInfo{nextPtr: c.ProtoPointer, next: fh.NextHeader()}, now)
	switch res {
	case reasm.Complete:
		out[first.nextPtr] = first.next
		binary.BigEndian.PutUint16(out[offPayloadLength:], uint16(len(out)-HeaderLen))
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
	if timedOut == nil {
		r.core.Expire(now, nil)
		return
	}
	r.core.Expire(now, func(k fragKey, hdr, data []byte, first firstInfo) {
		timedOut(r.firstFragment(k, hdr, data, first))
	})
}

// NextDeadline returns the earliest time at which Expire has work, or the
// zero Time when no datagram is pending. Every datagram lives Timeout
// from its first fragment, so the oldest has the earliest deadline.
func (r *Reassembler) NextDeadline() time.Time { return r.core.NextDeadline() }

// Stats returns the counters.
func (r *Reassembler) Stats() ReassemblyStats { return ReassemblyStats(r.core.Stats()) }

// firstFragment rebuilds in r.icmp the fragment zero of the packet k, as
// received, cut to len(r.icmp).
func (r *Reassembler) firstFragment(k fragKey, hdr, data []byte, first firstInfo) []byte {
	n := copy(r.icmp[:], hdr)
	binary.BigEndian.PutUint16(r.icmp[offPayloadLength:], uint16(len(hdr)-HeaderLen+fragHeaderLen+len(data)))
	var fh [fragHeaderLen]byte
	fh[0] = first.next
	binary.BigEndian.PutUint16(fh[2:], fragMore)
	binary.BigEndian.PutUint32(fh[4:], k.ID)
	n += copy(r.icmp[n:], fh[:])
	n += copy(r.icmp[n:], data)
	return r.icmp[:n]
}
