// Package ipv6 implements the Internet Protocol version 6 (RFC 8200) as a
// pure protocol core: the header as a byte-slice view and its builder, the
// extension header chain walked with a bound, fragmentation on send and
// bounded reassembly on receive, ICMPv6 (RFC 4443), the Neighbor Discovery
// messages of RFC 4861, and the address rules of RFC 4291, RFC 4862 and
// RFC 7217.
//
// Nothing in this package reads the clock or starts goroutines: times are
// passed in as `now`, and deadlines are returned as data (DESIGN.md,
// "Concurrency and time").
package ipv6

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// HeaderLen is the length of the fixed IPv6 header (RFC 8200 §3: 40
// octets; its length is fixed, options live in extension headers).
const HeaderLen = 40

// Version is the value of the Version field for IPv6 (RFC 8200 §3,
// "Version: 4-bit Internet Protocol version number = 6").
const Version = 6

// MinMTU is the smallest link MTU IPv6 requires (RFC 8200 §5: "every link
// in the Internet have an MTU of 1280 octets or greater").
const MinMTU = 1280

// MaxPayloadLength is the largest value of the 16-bit Payload Length field
// (RFC 8200 §3). RFC 2675 jumbograms (Payload Length 0 with a Jumbo
// Payload option) are not supported.
const MaxPayloadLength = 65535

// Next Header values (RFC 8200 §4.1 and §4.8 for the extension headers,
// the IANA protocol-numbers registry for the rest).
const (
	NextHeaderHopByHop     = 0
	NextHeaderTCP          = 6
	NextHeaderUDP          = 17
	NextHeaderRouting      = 43
	NextHeaderFragment     = 44
	NextHeaderESP          = 50 // RFC 4303
	NextHeaderAH           = 51 // RFC 4302
	NextHeaderICMPv6       = 58
	NextHeaderNoNextHeader = 59 // RFC 8200 §4.7
	NextHeaderDestOptions  = 60
)

// Errors returned by ParseHeader.
var (
	// ErrTruncated: the buffer is shorter than 40 bytes or than the
	// Payload Length field says.
	ErrTruncated = errors.New("ipv6: truncated packet")
	// ErrVersion: the Version field is not 6.
	ErrVersion = errors.New("ipv6: version is not 6")
	// ErrJumbogram: Payload Length is zero while a Hop-by-Hop Options
	// header follows, the RFC 2675 jumbogram form, which is not
	// supported.
	ErrJumbogram = errors.New("ipv6: jumbograms not supported")
	// ErrSourceMulticast: the Source Address is multicast (RFC 4291
	// §2.7: "Multicast addresses must not be used as source addresses in
	// IPv6 packets").
	ErrSourceMulticast = errors.New("ipv6: multicast source address")
)

// Field offsets in the header (RFC 8200 §3, "IPv6 Header Format").
const (
	offVersionTC     = 0 // version (4 bits), traffic class (8), flow label (20)
	offPayloadLength = 4
	offNextHeader    = 6
	offHopLimit      = 7
	offSource        = 8
	offDestination   = 24
)

// flowLabelMask keeps the 20-bit Flow Label of the first 32-bit word.
const flowLabelMask = 0x000fffff

// Header is a view of an IPv6 header and the payload that follows it
// (extension headers included). A Header returned by ParseHeader is
// trimmed to 40 + Payload Length bytes and its accessors never panic.
type Header []byte

// ParseHeader validates the IPv6 header at the start of b and returns a
// view of the packet, trimmed to 40 + Payload Length bytes (bytes after it
// are link-layer padding).
//
// It checks, in order: at least 40 bytes (ErrTruncated); Version 6
// (ErrVersion); not a jumbogram (ErrJumbogram); 40 + Payload Length <=
// len(b) (ErrTruncated); a source that is not multicast
// (ErrSourceMulticast). The extension headers are left to
// ParseExtensions. It does not allocate.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return nil, ErrTruncated
	}
	if b[offVersionTC]>>4 != Version {
		return nil, ErrVersion
	}
	pl := int(binary.BigEndian.Uint16(b[offPayloadLength:]))
	if pl == 0 && b[offNextHeader] == NextHeaderHopByHop && len(b) > HeaderLen {
		// RFC 2675 §2: "the Payload Length field in the IPv6 header must
		// be set to zero in every packet that carries the Jumbo Payload
		// option".
		return nil, ErrJumbogram
	}
	if HeaderLen+pl > len(b) {
		return nil, ErrTruncated
	}
	if b[offSource] == 0xff {
		return nil, ErrSourceMulticast
	}
	return Header(b[:HeaderLen+pl]), nil
}

// Version returns the Version field (6 for a parsed header).
func (h Header) Version() uint8 { return h[offVersionTC] >> 4 }

// TrafficClass returns the Traffic Class octet (RFC 8200 §7: the DSCP
// in the high six bits, RFC 2474, and ECN in the low two, RFC 3168).
func (h Header) TrafficClass() uint8 {
	return uint8(binary.BigEndian.Uint16(h[offVersionTC:]) >> 4)
}

// FlowLabel returns the 20-bit Flow Label (RFC 8200 §6, RFC 6437).
func (h Header) FlowLabel() uint32 {
	return binary.BigEndian.Uint32(h[offVersionTC:]) & flowLabelMask
}

// PayloadLength returns the Payload Length field: the bytes after the
// fixed header, extension headers included (RFC 8200 §3).
func (h Header) PayloadLength() uint16 { return binary.BigEndian.Uint16(h[offPayloadLength:]) }

// NextHeader returns the Next Header field: the type of the first
// extension header or of the upper-layer header.
func (h Header) NextHeader() uint8 { return h[offNextHeader] }

// HopLimit returns the Hop Limit field.
func (h Header) HopLimit() uint8 { return h[offHopLimit] }

// Source returns the Source Address.
func (h Header) Source() netip.Addr { return netip.AddrFrom16([16]byte(h[offSource:])) }

// Destination returns the Destination Address.
func (h Header) Destination() netip.Addr {
	return netip.AddrFrom16([16]byte(h[offDestination:]))
}

// Payload returns the bytes after the fixed header, up to the Payload
// Length: the extension headers and the upper-layer data.
func (h Header) Payload() []byte { return h[HeaderLen:] }

// Fields holds the values PutHeader writes into a 40-byte header.
type Fields struct {
	TrafficClass uint8
	// FlowLabel is 20 bits; higher bits are dropped.
	FlowLabel     uint32
	PayloadLength uint16
	NextHeader    uint8
	HopLimit      uint8
	// Source and Destination are IPv6 addresses; an IPv4 address is
	// written in its IPv4-mapped form (RFC 4291 §2.5.5.2) and the zero
	// Addr as the unspecified address ::.
	Source, Destination netip.Addr
}

// PutHeader writes the 40-byte header f into b. b must be at least
// HeaderLen bytes long; PutHeader panics otherwise, as a short buffer is a
// programming error. It does not allocate.
func PutHeader(b []byte, f *Fields) {
	_ = b[HeaderLen-1]
	w := uint32(Version)<<28 | uint32(f.TrafficClass)<<20 | f.FlowLabel&flowLabelMask
	binary.BigEndian.PutUint32(b[offVersionTC:], w)
	binary.BigEndian.PutUint16(b[offPayloadLength:], f.PayloadLength)
	b[offNextHeader] = f.NextHeader
	b[offHopLimit] = f.HopLimit
	put16(b[offSource:], f.Source)
	put16(b[offDestination:], f.Destination)
}

// put16 writes a as 16 bytes; the zero Addr as ::.
func put16(b []byte, a netip.Addr) {
	if !a.IsValid() {
		clear(b[:16])
		return
	}
	a16 := a.As16()
	copy(b[:16], a16[:])
}
