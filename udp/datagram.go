package udp

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/ustack/ustack/internal/checksum"
)

// HeaderLen is the length of the UDP header: source port, destination
// port, length and checksum, 16 bits each (RFC 768, "Format").
const HeaderLen = 8

// ProtocolNumber is UDP's IP protocol number (RFC 768: "protocol number
// 17 (21 octal)"), used in the pseudo-header.
const ProtocolNumber = 17

// MaxPayload is the largest payload the 16-bit Length field can describe:
// 65535 octets of header and data (RFC 768: "Length is the length in
// octets of this user datagram including this header and the data")
// minus the 8-octet header. It is the limit over IPv6 without RFC 2675
// jumbograms, whose 16-bit Payload Length counts no IP header.
const MaxPayload = 0xffff - HeaderLen

// MaxPayloadIPv4 is the largest payload of a UDP datagram over IPv4: the
// 16-bit Total Length of RFC 791 §3.1 counts the IP header too, so 65535
// minus a 20-octet header without options and the 8-octet UDP header.
const MaxPayloadIPv4 = 0xffff - 20 - HeaderLen

// Offsets of the header fields (RFC 768, "Format").
const (
	offSrcPort  = 0
	offDstPort  = 2
	offLength   = 4
	offChecksum = 6
)

// Errors returned by Parse, PutHeader and SetChecksum. Each names one
// reason to drop a datagram, so that a stack can count them apart.
var (
	// ErrTruncated reports fewer than the 8 octets of a UDP header.
	ErrTruncated = errors.New("udp: datagram shorter than the 8-byte header")
	// ErrBadLength reports a Length field below 8 (it counts the header,
	// RFC 768) or beyond the octets received.
	ErrBadLength = errors.New("udp: length field below 8 or beyond the datagram")
	// ErrChecksum reports a non-zero checksum that does not verify
	// (RFC 1122 §4.1.3.4: the datagram MUST be silently discarded).
	ErrChecksum = errors.New("udp: bad checksum")
	// ErrZeroChecksum reports a zero checksum, meaning none was computed,
	// on IPv6, where RFC 8200 §8.1 says receivers "must discard UDP
	// packets containing a zero checksum".
	ErrZeroChecksum = errors.New("udp: zero checksum over IPv6")
	// ErrAddress reports pseudo-header addresses that are not both IPv4
	// (or IPv4-mapped) or both IPv6, or that are the zero Addr.
	ErrAddress = errors.New("udp: pseudo-header addresses are not of one family")
	// ErrShortBuffer reports a buffer given to PutHeader or SetChecksum
	// that cannot hold the 8-byte header.
	ErrShortBuffer = errors.New("udp: buffer shorter than the 8-byte header")
	// ErrPayloadLength reports a payload length given to PutHeader that is
	// negative or above MaxPayload, so the Length field cannot carry it.
	ErrPayloadLength = errors.New("udp: payload length negative or above 65527")
)

// Datagram is a view of a validated UDP datagram: the 8-byte header and
// the payload, exactly as many octets as its Length field says. A
// Datagram returned by Parse has 8 <= len(d) == d.Length(), so no
// accessor can panic; converting unvalidated bytes to a Datagram gives no
// such promise.
type Datagram []byte

// Parse validates b as a UDP datagram sent from src to dst and returns a
// view of it (b is not copied). It checks, in order:
//
//   - b holds the 8-byte header (ErrTruncated);
//   - the Length field is at least 8 and at most len(b) (ErrBadLength).
//     Octets past Length are not part of the datagram (RFC 768: Length is
//     "the length in octets of this user datagram including this header
//     and the data"): they are the lower layer's padding, such as the
//     bytes that bring a short Ethernet frame to 60 octets, and are
//     trimmed, neither checksummed nor delivered;
//   - src and dst are of one family (ErrAddress);
//   - the checksum: a zero field means the sender computed none, accepted
//     on IPv4 (RFC 768) and refused on IPv6 (ErrZeroChecksum, RFC 8200
//     §8.1); any other value must verify over the pseudo-header, header
//     and data (ErrChecksum, RFC 1122 §4.1.3.4).
//
// Ports are not checked: RFC 768 lets the source port be zero ("If not
// used, a value of zero is inserted"), and a destination port that no
// socket has is for the caller to answer with an ICMP Port Unreachable
// (RFC 1122 §4.1.3.3). Parse does
// not allocate.
func Parse(b []byte, src, dst netip.Addr) (Datagram, error) {
	if len(b) < HeaderLen {
		return nil, ErrTruncated
	}
	n := int(binary.BigEndian.Uint16(b[offLength:]))
	if n < HeaderLen || n > len(b) {
		return nil, ErrBadLength
	}
	b = b[:n:n]
	v4, ok := family(src, dst)
	if !ok {
		return nil, ErrAddress
	}
	if binary.BigEndian.Uint16(b[offChecksum:]) == 0 {
		if v4 {
			return Datagram(b), nil
		}
		return nil, ErrZeroChecksum
	}
	// RFC 768: the checksum is "the 16-bit one's complement of the one's
	// complement sum of a pseudo header of information from the IP header,
	// the UDP header, and the data, padded with zero octets at the end (if
	// necessary)". Summing a datagram that carries its correct checksum,
	// with the pseudo-header, gives all ones; the pseudo-header's length is
	// the UDP Length field (RFC 768; RFC 8200 §8.1: for protocols that
	// carry their own length, "that is the length used in the
	// pseudo-header").
	ph := checksum.PseudoHeader(src, dst, ProtocolNumber, uint16(n))
	if checksum.Sum(b, ph) != 0xffff {
		return nil, ErrChecksum
	}
	return Datagram(b), nil
}

// family reports whether src and dst are both IPv4 (or IPv4-mapped IPv6)
// addresses, and false for ok when they are not of one family or either
// is the zero Addr.
func family(src, dst netip.Addr) (v4, ok bool) {
	if !src.IsValid() || !dst.IsValid() {
		return false, false
	}
	v4 = src.Unmap().Is4()
	return v4, v4 == dst.Unmap().Is4()
}

// SourcePort returns the source port field (zero when the sender expects
// no reply, RFC 768).
func (d Datagram) SourcePort() uint16 { return binary.BigEndian.Uint16(d[offSrcPort:]) }

// DestinationPort returns the destination port field.
func (d Datagram) DestinationPort() uint16 { return binary.BigEndian.Uint16(d[offDstPort:]) }

// Length returns the Length field: header plus payload, in octets, at
// least 8 and equal to len(d).
func (d Datagram) Length() int { return int(binary.BigEndian.Uint16(d[offLength:])) }

// Checksum returns the checksum field as received; zero means the sender
// computed none (accepted only over IPv4).
func (d Datagram) Checksum() uint16 { return binary.BigEndian.Uint16(d[offChecksum:]) }

// Payload returns the data after the header (possibly empty).
func (d Datagram) Payload() []byte { return d[HeaderLen:] }

// PutHeader writes a UDP header into b[:8] for payloadLen octets of data
// that follow it: the ports, the Length field (8 + payloadLen, RFC 768)
// and a zero checksum field. Compute the checksum with SetChecksum once
// the payload is in place. It returns ErrShortBuffer when b is shorter
// than 8 octets and ErrPayloadLength when payloadLen is negative or above
// MaxPayload, writing nothing. PutHeader does not allocate.
func PutHeader(b []byte, srcPort, dstPort uint16, payloadLen int) error {
	if len(b) < HeaderLen {
		return ErrShortBuffer
	}
	if payloadLen < 0 || payloadLen > MaxPayload {
		return ErrPayloadLength
	}
	binary.BigEndian.PutUint16(b[offSrcPort:], srcPort)
	binary.BigEndian.PutUint16(b[offDstPort:], dstPort)
	binary.BigEndian.PutUint16(b[offLength:], uint16(HeaderLen+payloadLen))
	b[offChecksum], b[offChecksum+1] = 0, 0
	return nil
}

// SetChecksum computes the checksum of the datagram at the start of b —
// header and payload, as many octets as its Length field says — sent from
// src to dst, and stores it in the checksum field. The pseudo-header is
// IPv4's (RFC 768) when src and dst are IPv4 or IPv4-mapped, and IPv6's
// (RFC 8200 §8.1: 16-octet addresses, a 32-bit upper-layer length, 24
// zero bits and next header 17) when both are IPv6. A computed zero is
// stored as 0xFFFF, since zero on the wire means "no checksum" (RFC 768:
// "If the computed checksum is zero, it is transmitted as all ones";
// RFC 8200 §8.1: "it must be changed to hex FFFF").
//
// It returns ErrShortBuffer when b is shorter than 8 octets, ErrBadLength
// when the Length field is below 8 or beyond b, and ErrAddress when the
// addresses are not of one family, leaving b unchanged. SetChecksum does
// not allocate.
func SetChecksum(b []byte, src, dst netip.Addr) error {
	if len(b) < HeaderLen {
		return ErrShortBuffer
	}
	n := int(binary.BigEndian.Uint16(b[offLength:]))
	if n < HeaderLen || n > len(b) {
		return ErrBadLength
	}
	if _, ok := family(src, dst); !ok {
		return ErrAddress
	}
	b = b[:n]
	// RFC 768: "the checksum field itself is replaced with zeros" while
	// the sum is computed.
	b[offChecksum], b[offChecksum+1] = 0, 0
	c := checksum.Checksum(b, checksum.PseudoHeader(src, dst, ProtocolNumber, uint16(n)))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(b[offChecksum:], c)
	return nil
}
