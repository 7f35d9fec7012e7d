// Package ipv4 implements the Internet Protocol version 4 (RFC 791) as a
// pure protocol core: the header as a byte-slice view and its builder,
// a routing table with longest-prefix match, fragmentation on send,
// bounded reassembly on receive, and ICMP (RFC 792) messages.
//
// Nothing in this package reads the clock or starts goroutines: times are
// passed in as `now`, and deadlines are returned as data (DESIGN.md,
// "Concurrency and time").
package ipv4

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/ustack/ustack/internal/checksum"
)

// Header lengths in bytes. RFC 791 §3.1, "IHL: 4 bits ... Note that the
// minimum value for a correct header is 5" (5 × 32 bits = 20 octets); the
// 4-bit field caps the header at 15 × 4 = 60 octets.
const (
	HeaderLen    = 20
	MaxHeaderLen = 60
)

// MaxTotalLength is the largest value of the 16-bit Total Length field
// (RFC 791 §3.1, "Total Length: 16 bits ... up to 65,535 octets").
const MaxTotalLength = 65535

// Version is the value of the Version field for IPv4 (RFC 791 §3.1).
const Version = 4

// Protocol numbers carried in the Protocol field (RFC 791 §3.1, values from
// "Assigned Numbers", now the IANA protocol-numbers registry).
const (
	ProtocolICMP = 1
	ProtocolTCP  = 6
	ProtocolUDP  = 17
)

// Errors returned by ParseHeader.
var (
	// ErrTruncated: the buffer is shorter than the header or than the
	// Total Length field says.
	ErrTruncated = errors.New("ipv4: truncated packet")
	// ErrVersion: the Version field is not 4.
	ErrVersion = errors.New("ipv4: version is not 4")
	// ErrHeaderLength: IHL is below 5 (20 bytes).
	ErrHeaderLength = errors.New("ipv4: invalid header length")
	// ErrTotalLength: Total Length is smaller than the header.
	ErrTotalLength = errors.New("ipv4: invalid total length")
	// ErrChecksum: the header (or ICMP message) checksum does not verify.
	ErrChecksum = errors.New("ipv4: bad checksum")
	// ErrOptions: the option list is malformed.
	ErrOptions = errors.New("ipv4: malformed options")
)

// Field offsets in the header (RFC 791 §3.1, "Internet Header Format").
const (
	offVersionIHL  = 0
	offTOS         = 1
	offTotalLength = 2
	offID          = 4
	offFlagsFrag   = 6
	offTTL         = 8
	offProtocol    = 9
	offChecksum    = 10
	offSource      = 12
	offDestination = 16
)

// Flags and fragment offset share a 16-bit word (RFC 791 §3.1, "Flags:
// 3 bits. Bit 0: reserved, must be zero. Bit 1: (DF) ... Bit 2: (MF)";
// "Fragment Offset: 13 bits ... measured in units of 8 octets").
const (
	flagDF         = 0x4000
	flagMF         = 0x2000
	fragOffsetMask = 0x1fff
)

// Option types (RFC 791 §3.1, "Options"). An option type octet is
// copied flag (1 bit), class (2 bits), number (5 bits).
const (
	optionEOL        = 0    // End of Option List: one octet.
	optionNOP        = 1    // No Operation: one octet.
	optionCopiedFlag = 0x80 // "The copied flag indicates that this option is copied into all fragments on fragmentation."
)

// Header is a view of an IPv4 header and the datagram that follows it.
// A Header returned by ParseHeader is trimmed to the Total Length and its
// accessors never panic.
type Header []byte

// ParseHeader validates the IPv4 header at the start of b and returns a view
// of the datagram, trimmed to its Total Length (bytes after it are link-layer
// padding, e.g. Ethernet's 46-byte minimum payload).
//
// It checks, in order: at least 20 bytes (ErrTruncated); Version 4
// (ErrVersion); IHL >= 5 (ErrHeaderLength); IHL*4 <= len(b) (ErrTruncated);
// IHL*4 <= Total Length (ErrTotalLength); Total Length <= len(b)
// (ErrTruncated); the header checksum (ErrChecksum); the option list
// (ErrOptions). It does not allocate.
func ParseHeader(b []byte) (Header, error) {
	ihl, total, err := checkLengths(b)
	if err != nil {
		return nil, err
	}
	if total > len(b) {
		return nil, ErrTruncated
	}
	// RFC 791 §3.1, "Header Checksum": the one's complement sum over the
	// header including the checksum field is all ones when it verifies.
	if checksum.Sum(b[:ihl], 0) != 0xffff {
		return nil, ErrChecksum
	}
	if !validOptions(b[HeaderLen:ihl]) {
		return nil, ErrOptions
	}
	return Header(b[:total]), nil
}

// checkLengths makes the checks ParseHeader and ParseQuote share: at least
// 20 bytes (ErrTruncated), Version 4 (ErrVersion), IHL >= 5
// (ErrHeaderLength), IHL*4 bytes present (ErrTruncated) and Total Length
// not below IHL*4 (ErrTotalLength). It returns IHL*4 and Total Length.
func checkLengths(b []byte) (ihl, total int, err error) {
	if len(b) < HeaderLen {
		return 0, 0, ErrTruncated
	}
	if b[offVersionIHL]>>4 != Version {
		return 0, 0, ErrVersion
	}
	ihl = int(b[offVersionIHL]&0x0f) * 4
	if ihl < HeaderLen {
		return 0, 0, ErrHeaderLength
	}
	if ihl > len(b) {
		return 0, 0, ErrTruncated
	}
	total = int(binary.BigEndian.Uint16(b[offTotalLength:]))
	if total < ihl {
		return 0, 0, ErrTotalLength
	}
	return ihl, total, nil
}

// validOptions walks an option list (RFC 791 §3.1, "Options"): "Case 1: A
// single octet of option-type. Case 2: An option-type octet, an
// option-length octet, and the actual option-data octets. The
// option-length octet counts the option-type octet and the option-length
// octet as well as the option-data octets." End of Option List ends the
// walk; what follows it is padding.
func validOptions(opts []byte) bool {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case optionEOL:
			return true
		case optionNOP:
			i++
		default:
			if i+1 >= len(opts) {
				return false
			}
			n := int(opts[i+1])
			if n < 2 || i+n > len(opts) {
				return false
			}
			i += n
		}
	}
	return true
}

// Version returns the Version field (4 for a parsed header).
func (h Header) Version() uint8 { return h[offVersionIHL] >> 4 }

// HeaderLength returns the header length in bytes (IHL × 4).
func (h Header) HeaderLength() int { return int(h[offVersionIHL]&0x0f) * 4 }

// TOS returns the Type of Service octet (RFC 791 §3.1; now DSCP and ECN).
func (h Header) TOS() uint8 { return h[offTOS] }

// TotalLength returns the Total Length field: header plus data, in bytes.
func (h Header) TotalLength() uint16 { return binary.BigEndian.Uint16(h[offTotalLength:]) }

// ID returns the Identification field.
func (h Header) ID() uint16 { return binary.BigEndian.Uint16(h[offID:]) }

// Flags returns the three flag bits (reserved, DF, MF) in the low bits.
func (h Header) Flags() uint8 { return h[offFlagsFrag] >> 5 }

// DontFragment reports the DF flag.
func (h Header) DontFragment() bool { return h[offFlagsFrag]&(flagDF>>8) != 0 }

// MoreFragments reports the MF flag.
func (h Header) MoreFragments() bool { return h[offFlagsFrag]&(flagMF>>8) != 0 }

// FragmentOffset returns the Fragment Offset in bytes (the field × 8).
func (h Header) FragmentOffset() int {
	return int(binary.BigEndian.Uint16(h[offFlagsFrag:])&fragOffsetMask) * 8
}

// IsFragment reports whether the datagram is a fragment: MF set or a
// nonzero offset (RFC 791 §3.2, "Fragmentation and Reassembly").
func (h Header) IsFragment() bool {
	return binary.BigEndian.Uint16(h[offFlagsFrag:])&(flagMF|fragOffsetMask) != 0
}

// TTL returns the Time to Live field.
func (h Header) TTL() uint8 { return h[offTTL] }

// Protocol returns the Protocol field.
func (h Header) Protocol() uint8 { return h[offProtocol] }

// Checksum returns the Header Checksum field.
func (h Header) Checksum() uint16 { return binary.BigEndian.Uint16(h[offChecksum:]) }

// Source returns the Source Address.
func (h Header) Source() netip.Addr { return netip.AddrFrom4([4]byte(h[offSource:])) }

// Destination returns the Destination Address.
func (h Header) Destination() netip.Addr {
	return netip.AddrFrom4([4]byte(h[offDestination:]))
}

// Options returns the options and padding between the fixed header and the
// data (empty when IHL is 5).
func (h Header) Options() []byte { return h[HeaderLen:h.HeaderLength()] }

// Payload returns the data after the header, up to the Total Length.
func (h Header) Payload() []byte { return h[h.HeaderLength():] }

// Fields holds the values PutHeader writes into a 20-byte header.
type Fields struct {
	TOS           uint8
	TotalLength   uint16 // header plus data, in bytes
	ID            uint16
	DontFragment  bool
	MoreFragments bool
	// FragmentOffset is in bytes and must be a multiple of 8 (RFC 791
	// §3.1: the field counts units of 8 octets); the low 3 bits are
	// dropped.
	FragmentOffset uint16
	TTL            uint8
	Protocol       uint8
	// Source and Destination are IPv4 addresses; anything else is written
	// as 0.0.0.0.
	Source, Destination netip.Addr
}

// PutHeader writes a 20-byte header without options from f into b and
// computes its checksum. b must be at least HeaderLen bytes long; PutHeader
// panics otherwise, as a short buffer is a programming error. It does not
// allocate.
func PutHeader(b []byte, f *Fields) {
	_ = b[HeaderLen-1]
	b[offVersionIHL] = Version<<4 | HeaderLen/4
	b[offTOS] = f.TOS
	binary.BigEndian.PutUint16(b[offTotalLength:], f.TotalLength)
	binary.BigEndian.PutUint16(b[offID:], f.ID)
	ff := f.FragmentOffset / 8 & fragOffsetMask
	if f.DontFragment {
		ff |= flagDF
	}
	if f.MoreFragments {
		ff |= flagMF
	}
	binary.BigEndian.PutUint16(b[offFlagsFrag:], ff)
	b[offTTL] = f.TTL
	b[offProtocol] = f.Protocol
	put4(b[offSource:], f.Source)
	put4(b[offDestination:], f.Destination)
	setChecksum(b[:HeaderLen])
}

// put4 writes an IPv4 address (or an IPv4-mapped IPv6 one), else zeros.
func put4(b []byte, a netip.Addr) {
	a = a.Unmap()
	if !a.Is4() {
		clear(b[:4])
		return
	}
	a4 := a.As4()
	copy(b[:4], a4[:])
}

// setChecksum computes the Header Checksum of hdr (the whole header,
// options included) and stores it (RFC 791 §3.1: "For purposes of computing
// the checksum, the value of the checksum field is zero").
func setChecksum(hdr []byte) {
	hdr[offChecksum], hdr[offChecksum+1] = 0, 0
	binary.BigEndian.PutUint16(hdr[offChecksum:], checksum.Checksum(hdr, 0))
}

// setFragment rewrites the MF flag and the Fragment Offset (in bytes) of
// hdr, keeping the reserved and DF bits.
func setFragment(hdr []byte, mf bool, offset int) {
	w := binary.BigEndian.Uint16(hdr[offFlagsFrag:]) &^ (flagMF | fragOffsetMask)
	w |= uint16(offset/8) & fragOffsetMask
	if mf {
		w |= flagMF
	}
	binary.BigEndian.PutUint16(hdr[offFlagsFrag:], w)
}
