package ipv4

import (
	"encoding/binary"
	"net/netip"

	"github.com/ustack/ustack/internal/checksum"
)

// ICMPHeaderLen is the length of the fixed part of every ICMP message
// (RFC 792: type, code, checksum, and a 32-bit word whose meaning depends
// on the type).
const ICMPHeaderLen = 8

// ICMP message types (RFC 792; Timestamp and Information from RFC 792,
// Address Mask from RFC 950).
const (
	TypeEchoReply              = 0
	TypeDestinationUnreachable = 3
	TypeSourceQuench           = 4
	TypeRedirect               = 5
	TypeEchoRequest            = 8
	TypeTimeExceeded           = 11
	TypeParameterProblem       = 12
	TypeTimestamp              = 13
	TypeTimestampReply         = 14
	TypeInformationRequest     = 15
	TypeInformationReply       = 16
	TypeAddressMaskRequest     = 17
	TypeAddressMaskReply       = 18
)

// ICMP codes (RFC 792), by message type.
const (
	// Destination Unreachable.
	CodeNetUnreachable      = 0
	CodeHostUnreachable     = 1
	CodeProtocolUnreachable = 2
	CodePortUnreachable     = 3
	CodeFragmentationNeeded = 4 // "fragmentation needed and DF set"
	CodeSourceRouteFailed   = 5

	// Time Exceeded.
	CodeTTLExceeded            = 0 // "time to live exceeded in transit"
	CodeReassemblyTimeExceeded = 1 // "fragment reassembly time exceeded"

	// Parameter Problem.
	CodeParameterPointer = 0 // "pointer indicates the error"
)

// ICMP is a view of an ICMP message (RFC 792). An ICMP returned by
// ParseICMP is at least 8 bytes long, so its accessors never panic.
type ICMP []byte

// ParseICMP validates an ICMP message, the payload of an IPv4 datagram with
// Protocol 1: at least ICMPHeaderLen bytes (ErrTruncated) and a checksum
// that verifies over the whole message (ErrChecksum; RFC 792: "The
// checksum is the 16-bit ones's complement of the one's complement sum of
// the ICMP message starting with the ICMP Type"). It does not allocate.
func ParseICMP(b []byte) (ICMP, error) {
	if len(b) < ICMPHeaderLen {
		return nil, ErrTruncated
	}
	if checksum.Sum(b, 0) != 0xffff {
		return nil, ErrChecksum
	}
	return ICMP(b), nil
}

// Type returns the Type field.
func (m ICMP) Type() uint8 { return m[0] }

// Code returns the Code field.
func (m ICMP) Code() uint8 { return m[1] }

// Checksum returns the Checksum field.
func (m ICMP) Checksum() uint16 { return binary.BigEndian.Uint16(m[2:]) }

// Ident returns the Identifier of an echo or timestamp message.
func (m ICMP) Ident() uint16 { return binary.BigEndian.Uint16(m[4:]) }

// Sequence returns the Sequence Number of an echo or timestamp message.
func (m ICMP) Sequence() uint16 { return binary.BigEndian.Uint16(m[6:]) }

// RestOfHeader returns the second 32-bit word, whose meaning depends on
// the type (unused, pointer, gateway address, next-hop MTU).
func (m ICMP) RestOfHeader() uint32 { return binary.BigEndian.Uint32(m[4:]) }

// Pointer returns the octet of the offending header a Parameter Problem
// message points at (RFC 792).
func (m ICMP) Pointer() uint8 { return m[4] }

// NextHopMTU returns the MTU a Fragmentation Needed message carries in the
// low 16 bits of its second word (RFC 1191 §4); 0 from routers that
// predate it.
func (m ICMP) NextHopMTU() uint16 { return binary.BigEndian.Uint16(m[6:]) }

// Payload returns the bytes after the 8-byte header: echo data, or the
// offending datagram's header and data for error messages.
func (m ICMP) Payload() []byte { return m[ICMPHeaderLen:] }

// IsError reports whether typ is an ICMP error message type (RFC 1122
// §3.2.2: Destination Unreachable, Redirect, Source Quench, Time Exceeded,
// Parameter Problem) rather than a query.
func IsError(typ uint8) bool {
	switch typ {
	case TypeDestinationUnreachable, TypeSourceQuench, TypeRedirect,
		TypeTimeExceeded, TypeParameterProblem:
		return true
	}
	return false
}

// isQuery reports whether typ is a query type this package knows.
func isQuery(typ uint8) bool {
	switch typ {
	case TypeEchoReply, TypeEchoRequest, TypeTimestamp, TypeTimestampReply,
		TypeInformationRequest, TypeInformationReply,
		TypeAddressMaskRequest, TypeAddressMaskReply:
		return true
	}
	return false
}

// PutEchoReply writes into b the Echo Reply to req and returns its length,
// or 0 if b is shorter than req. The identifier, sequence number and data
// are those of req (RFC 792, Echo or Echo Reply Message: "The data
// received in the echo message must be returned in the echo reply
// message"; RFC 1122 §3.2.2.6). b may be the same memory as req, to reply
// in place; other overlaps work as well (the copy is a memmove).
func PutEchoReply(b []byte, req ICMP) int {
	n := len(req)
	if len(b) < n || n < ICMPHeaderLen {
		return 0
	}
	copy(b, req)
	b[0], b[1] = TypeEchoReply, 0
	putICMPChecksum(b[:n])
	return n
}

// PutError writes into b an ICMP error message of the given type and code
// quoting offending, the datagram that caused it, and returns its length,
// or 0 if b is too short. The quote is the offending datagram's IP header
// and the first 8 bytes of its data, unchanged (RFC 792: "the internet
// header plus the first 64 bits of the original datagram's data"; RFC 1122
// §3.2.2). A b of 8 + 60 + 8 bytes is always enough. The second word of the
// message is zero ("unused"); see PutErrorWord for the types that use it.
//
// The caller decides whether an error may be sent at all: see
// MayReplyWithError, and ip.RateLimiter for the rate.
func PutError(b []byte, typ, code uint8, offending []byte) int {
	return PutErrorWord(b, typ, code, 0, offending)
}

// PutErrorWord is PutError with the message's second 32-bit word set to
// word: for Parameter Problem the pointer in the top octet (pointer<<24),
// for Fragmentation Needed the next-hop MTU in the low 16 bits (RFC 1191
// §4), for Redirect the gateway address. b may overlap offending (for
// example the receive buffer the datagram arrived in).
func PutErrorWord(b []byte, typ, code uint8, word uint32, offending []byte) int {
	n := 0
	if len(offending) > 0 {
		ihl := max(int(offending[0]&0x0f)*4, HeaderLen)
		n = min(len(offending), ihl+8)
	}
	if len(b) < ICMPHeaderLen+n {
		return 0
	}
	copy(b[ICMPHeaderLen:], offending[:n]) // first: b may overlap offending
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint32(b[4:], word)
	putICMPChecksum(b[:ICMPHeaderLen+n])
	return ICMPHeaderLen + n
}

// putICMPChecksum computes and stores the checksum of the message m.
func putICMPChecksum(m []byte) {
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:], checksum.Checksum(m, 0))
}

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// MayReplyWithError reports whether an ICMP error message may be sent about
// the datagram h (RFC 1122 §3.2.2: "An ICMP error message MUST NOT be sent
// as the result of receiving:
//
//   - an ICMP error message, or
//   - a datagram destined to an IP broadcast or IP multicast address, or
//   - a datagram sent as a link-layer broadcast, or
//   - a non-initial fragment, or
//   - a datagram whose source address does not define a single host --
//     e.g., a zero address, a loopback address, a broadcast address, a
//     multicast address, or a Class E address.")
//
// linkBroadcastOrMulticast is the link layer's report that the frame was
// sent to a broadcast or multicast address. The subnet-directed broadcast
// depends on the receiving interface's prefix: the caller checks it with
// IsSubnetBroadcast. An ICMP message of an unknown type is treated like an
// error (RFC 1122 §3.2.2: "If an ICMP message of unknown type is
// received, it MUST be silently discarded").
func MayReplyWithError(h Header, linkBroadcastOrMulticast bool) bool {
	if linkBroadcastOrMulticast || h.FragmentOffset() != 0 {
		return false
	}
	if dst := h.Destination(); dst == limitedBroadcast || dst.IsMulticast() {
		return false
	}
	src := h.Source()
	s4 := src.As4()
	switch {
	case s4[0] == 0, // 0.0.0.0/8, "this network" (RFC 1122 §3.2.1.3 (a), (b))
		s4[0] >= 224, // multicast 224/4, Class E 240/4 and 255.255.255.255
		src.IsLoopback():
		return false
	}
	if h.Protocol() == ProtocolICMP {
		p := h.Payload()
		if len(p) == 0 || !isQuery(p[0]) {
			return false
		}
	}
	return true
}

// IsSubnetBroadcast reports whether a is a broadcast address of the
// subnet p: the host part all ones ({<Network>, -1}), or all zeros, the
// obsolete 4.2BSD form that RFC 1122 §3.3.6 requires hosts to recognize.
// /31 (RFC 3021) and /32 prefixes have no broadcast address.
func IsSubnetBroadcast(p netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	if !p.IsValid() || !p.Addr().Is4() || !a.Is4() || p.Bits() > 30 || !p.Contains(a) {
		return false
	}
	host := uint32(1)<<(32-p.Bits()) - 1
	a4 := a.As4()
	v := binary.BigEndian.Uint32(a4[:]) & host
	return v == host || v == 0
}

// ParseQuote validates the datagram an ICMP error message quotes, the
// message's payload (RFC 792: "the internet header plus the first 64 bits
// of the original datagram's data"), and returns it as a Header. The
// quote is usually shorter than its Total Length says, so only the header
// is checked: at least 20 bytes (ErrTruncated), Version 4 (ErrVersion),
// IHL >= 5 (ErrHeaderLength), IHL*4 bytes present (ErrTruncated) and Total
// Length not below IHL*4 (ErrTotalLength). The header checksum is not
// checked: the ICMP checksum covers the quote (ParseICMP), and routers
// that rewrite headers (NAT) need not fix the quoted one. The returned
// Header's Payload is the quoted data that follows the header, whatever
// its length. It does not allocate.
func ParseQuote(b []byte) (Header, error) {
	if _, _, err := checkLengths(b); err != nil {
		return nil, err
	}
	return Header(b), nil
}
