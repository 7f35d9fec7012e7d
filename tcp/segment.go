package tcp

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/ustack/ustack/internal/checksum"
)

// HeaderLen is the length of a TCP header without options: a data offset
// of 5 (RFC 9293 §3.1: "The number of 32-bit words in the TCP header").
const HeaderLen = 20

// MaxHeaderLen is the length of the largest TCP header: the 4-bit data
// offset counts at most 15 32-bit words (RFC 9293 §3.1).
const MaxHeaderLen = 60

// ProtocolNumber is TCP's IP protocol number, used in the pseudo-header
// (RFC 9293 §3.1: "PTCL ... the protocol number from the IP header").
const ProtocolNumber = 6

// Offsets of the header fields (RFC 9293 §3.1, Figure 1).
const (
	offSrcPort    = 0
	offDstPort    = 2
	offSeq        = 4
	offAck        = 8
	offDataOffset = 12 // upper 4 bits; lower 4 bits reserved
	offFlags      = 13
	offWindow     = 14
	offChecksum   = 16
	offUrgent     = 18
)

// Flags are the control bits of RFC 9293 §3.1 (and ECE/CWR of RFC 3168
// §6.1), as they sit in octet 13 of the header.
type Flags uint8

// The control bits, lowest first as on the wire (RFC 9293 §3.1).
const (
	FlagFIN Flags = 1 << iota // FIN: no more data from sender
	FlagSYN                   // SYN: synchronize sequence numbers
	FlagRST                   // RST: reset the connection
	FlagPSH                   // PSH: push function
	FlagACK                   // ACK: acknowledgment field is significant
	FlagURG                   // URG: urgent pointer field is significant
	FlagECE                   // ECE: ECN-Echo (RFC 3168)
	FlagCWR                   // CWR: congestion window reduced (RFC 3168)
)

// Has reports whether every flag of g is set in f.
func (f Flags) Has(g Flags) bool { return f&g == g }

// String returns the flags as tcpdump prints them: one letter per flag in
// the order F S R P . U E W, where "." stands for ACK (so "S." is a
// SYN-ACK and "P." a push with ACK), or "none" when no flag is set.
func (f Flags) String() string {
	if f == 0 {
		return "none"
	}
	// tcpdump's order is the bit order: ACK (bit 4) follows PSH (bit 3).
	const letters = "FSRP.UEW"
	var buf [8]byte
	n := 0
	for i := range 8 {
		if f&(1<<i) != 0 {
			buf[n] = letters[i]
			n++
		}
	}
	return string(buf[:n])
}

// Errors returned by ParseSegment.
var (
	// ErrTruncated reports a segment shorter than the 20-octet fixed
	// header.
	ErrTruncated = errors.New("tcp: segment truncated")
	// ErrTooLong reports a segment longer than the 65535 octets the
	// pseudo-header's TCP length can describe (RFC 9293 §3.1).
	ErrTooLong = errors.New("tcp: segment too long")
	// ErrDataOffset reports a data offset below 5 or beyond the segment.
	ErrDataOffset = errors.New("tcp: bad data offset")
	// ErrChecksum reports a segment whose checksum does not verify.
	ErrChecksum = errors.New("tcp: bad checksum")
	// ErrPort reports a source or destination port of zero.
	ErrPort = errors.New("tcp: zero port")
	// ErrAddress reports pseudo-header addresses that are not both IPv4
	// (or IPv4-mapped) or both IPv6, or that are the zero Addr.
	ErrAddress = errors.New("tcp: pseudo-header addresses are not of one family")
)

// Segment is a view of a validated TCP segment: header, options and
// payload. A Segment returned by ParseSegment has a data offset between
// 20 and len(s) octets, so no accessor can panic.
type Segment []byte

// ParseSegment validates b as a TCP segment sent from src to dst and
// returns a view of it (b is not copied). It checks, in order: the fixed
// header is present (ErrTruncated) and the segment fits the
// pseudo-header's 16-bit length (ErrTooLong); the data offset is at least
// 5 words and within b (ErrDataOffset, RFC 9293 §3.1); src and dst are
// of one family (ErrAddress); the checksum over the pseudo-header and the whole
// segment (ErrChecksum; RFC 9293 §3.1: "The TCP checksum is never
// optional. The sender MUST generate it (MUST-2) and the receiver MUST
// check it (MUST-3)."); both ports are non-zero
// (ErrPort: port 0 is reserved and never names a connection); the options
// are well formed (ErrOptions, see ParseOptions).
//
// ParseSegment does not allocate.
func ParseSegment(b []byte, src, dst netip.Addr) (Segment, error) {
	return parseSegment(b, src, dst, true)
}

// ParseSegmentVerified is ParseSegment for a segment whose checksum has
// been verified already, or need not be: a device that says so
// (virtio_net_hdr's DATA_VALID), or a super-segment from a sender on the
// same host that left its checksum partial (NEEDS_CSUM, see
// SetPartialChecksum). It makes every check of ParseSegment but the
// checksum's, and does not allocate.
func ParseSegmentVerified(b []byte, src, dst netip.Addr) (Segment, error) {
	return parseSegment(b, src, dst, false)
}

func parseSegment(b []byte, src, dst netip.Addr, verify bool) (Segment, error) {
	if len(b) < HeaderLen {
		return nil, ErrTruncated
	}
	if len(b) > 0xffff {
		return nil, ErrTooLong
	}
	off := int(b[offDataOffset]>>4) * 4
	if off < HeaderLen || off > len(b) {
		return nil, ErrDataOffset
	}
	if !src.IsValid() || !dst.IsValid() || src.Unmap().Is4() != dst.Unmap().Is4() {
		return nil, ErrAddress
	}
	// RFC 9293 §3.1: "The checksum field is the 16-bit ones' complement of
	// the ones' complement sum of all 16-bit words in the header and
	// text", and "also covers a pseudo-header"; summing a segment that
	// carries its correct checksum, with the pseudo-header, gives all
	// ones. The pseudo-header is IPv4's or, for IPv6, RFC 8200 §8.1's.
	if verify && checksum.Sum(b, checksum.PseudoHeader(src, dst, ProtocolNumber, uint16(len(b)))) != 0xffff {
		return nil, ErrChecksum
	}
	s := Segment(b)
	if s.SourcePort() == 0 || s.DestinationPort() == 0 {
		return nil, ErrPort
	}
	var o Options
	if err := ParseOptions(s.OptionBytes(), &o); err != nil {
		return nil, err
	}
	return s, nil
}

// SourcePort returns the source port field.
func (s Segment) SourcePort() uint16 { return binary.BigEndian.Uint16(s[offSrcPort:]) }

// DestinationPort returns the destination port field.
func (s Segment) DestinationPort() uint16 { return binary.BigEndian.Uint16(s[offDstPort:]) }

// Seq returns the sequence number field (SEG.SEQ).
func (s Segment) Seq() Value { return Value(binary.BigEndian.Uint32(s[offSeq:])) }

// Ack returns the acknowledgment number field (SEG.ACK), meaningful only
// when ACK is set.
func (s Segment) Ack() Value { return Value(binary.BigEndian.Uint32(s[offAck:])) }

// DataOffset returns the header length in octets (the data offset field
// times 4), between 20 and 60.
func (s Segment) DataOffset() int { return int(s[offDataOffset]>>4) * 4 }

// Flags returns the control bits.
func (s Segment) Flags() Flags { return Flags(s[offFlags]) }

// Window returns the window field as sent (SEG.WND before any RFC 7323
// scaling).
func (s Segment) Window() uint16 { return binary.BigEndian.Uint16(s[offWindow:]) }

// Checksum returns the checksum field.
func (s Segment) Checksum() uint16 { return binary.BigEndian.Uint16(s[offChecksum:]) }

// UrgentPointer returns the urgent pointer field (SEG.UP), meaningful
// only when URG is set.
func (s Segment) UrgentPointer() uint16 { return binary.BigEndian.Uint16(s[offUrgent:]) }

// OptionBytes returns the option list, the octets between the fixed
// header and the data (possibly empty).
func (s Segment) OptionBytes() []byte { return s[HeaderLen:s.DataOffset()] }

// Payload returns the segment's data (possibly empty).
func (s Segment) Payload() []byte { return s[s.DataOffset():] }

// Len returns SEG.LEN of RFC 9293 §3.4: "the number of octets occupied by
// the data in the segment (counting SYN and FIN)".
func (s Segment) Len() uint32 {
	n := uint32(len(s) - s.DataOffset())
	f := s.Flags()
	if f&FlagSYN != 0 {
		n++
	}
	if f&FlagFIN != 0 {
		n++
	}
	return n
}

// Options parses the segment's options into o. ParseSegment has already
// checked them, so this cannot fail on a segment it returned.
func (s Segment) Options(o *Options) {
	_ = ParseOptions(s.OptionBytes(), o)
}

// Header holds the fields for building a segment header.
type Header struct {
	SrcPort, DstPort uint16
	Seq, Ack         Value
	Flags            Flags
	// Window is the window field as sent, already scaled down by the
	// window scale in effect (RFC 7323 §2.3).
	Window uint16
	Urgent uint16
	// Options, if not nil, are encoded after the fixed header.
	Options *Options
}

// Len returns the header length in octets: 20 plus the encoded options.
func (h *Header) Len() int {
	if h.Options == nil {
		return HeaderLen
	}
	return HeaderLen + h.Options.EncodedLen()
}

// Encode writes the header into b, which must hold h.Len() octets, with a
// zero checksum field, and returns h.Len(). The reserved bits are zero
// (RFC 9293 §3.1: "Must be zero in generated segments"). Compute the
// checksum with SetChecksum once the payload follows. Encode does not
// allocate.
func (h *Header) Encode(b []byte) int {
	n := HeaderLen
	if h.Options != nil {
		n += h.Options.Encode(b[HeaderLen:])
	}
	b = b[:n]
	binary.BigEndian.PutUint16(b[offSrcPort:], h.SrcPort)
	binary.BigEndian.PutUint16(b[offDstPort:], h.DstPort)
	binary.BigEndian.PutUint32(b[offSeq:], uint32(h.Seq))
	binary.BigEndian.PutUint32(b[offAck:], uint32(h.Ack))
	b[offDataOffset] = byte(n/4) << 4
	b[offFlags] = byte(h.Flags)
	binary.BigEndian.PutUint16(b[offWindow:], h.Window)
	b[offChecksum], b[offChecksum+1] = 0, 0
	binary.BigEndian.PutUint16(b[offUrgent:], h.Urgent)
	return n
}

// SetChecksum computes the checksum of the complete segment seg (header
// and payload) sent from src to dst, and stores it in the checksum field
// (RFC 9293 §3.1: "While computing the checksum, the checksum field itself
// is replaced with zeros"; the sum covers the pseudo-header, header and
// data, MUST-2), with IPv4's pseudo-header when src and dst are IPv4 (or
// IPv4-mapped) and RFC 8200 §8.1's otherwise. seg must be at least 20 and
// at most 65535 octets. SetChecksum does not allocate.
func SetChecksum(seg []byte, src, dst netip.Addr) {
	seg[offChecksum], seg[offChecksum+1] = 0, 0
	ph := checksum.PseudoHeader(src, dst, ProtocolNumber, uint16(len(seg)))
	binary.BigEndian.PutUint16(seg[offChecksum:], checksum.Checksum(seg, ph))
}

// SetPartialChecksum stores in the checksum field of seg (header and
// payload, sent from src to dst) the partial checksum that a device with
// checksum offload completes: the folded sum of the pseudo-header alone,
// not complemented, for the segment's length, what Linux's
// tcp_v4_send_check leaves for CHECKSUM_PARTIAL and a virtio_net_hdr
// with NEEDS_CSUM (csum_start at the TCP header, csum_offset 16) asks
// for. Summing the segment from its first octet with this in the field
// and complementing gives the complete checksum. Segmentation (TSO, GSO)
// derives each piece's from it. seg must be at least 20 and at most 65535
// octets.
func SetPartialChecksum(seg []byte, src, dst netip.Addr) {
	binary.BigEndian.PutUint16(seg[offChecksum:], checksum.PseudoHeader(src, dst, ProtocolNumber, uint16(len(seg))))
}
