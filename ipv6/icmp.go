package ipv6

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/ustack/ustack/internal/checksum"
)

// ICMPHeaderLen is the length of the fixed part of the ICMPv6 messages
// this package builds: Type, Code, Checksum (RFC 4443 §2.1) and the 32-bit
// word every error and echo message has next (§3, §4).
const ICMPHeaderLen = 8

// MaxErrorLen is the largest ICMPv6 error message: RFC 4443 §2.4(c), "as
// much of invoking packet as possible without the ICMPv6 packet exceeding
// the minimum IPv6 MTU", 1280 octets less the 40-octet IPv6 header.
const MaxErrorLen = MinMTU - HeaderLen

// ICMPv6 message types (RFC 4443 §2.1; 130–132 from RFC 2710, 133–137
// from RFC 4861 §4, 143 from RFC 3810 §5.2).
const (
	TypeDestinationUnreachable    = 1
	TypePacketTooBig              = 2
	TypeTimeExceeded              = 3
	TypeParameterProblem          = 4
	TypeEchoRequest               = 128
	TypeEchoReply                 = 129
	TypeMulticastListenerQuery    = 130
	TypeMulticastListenerReport   = 131
	TypeMulticastListenerDone     = 132
	TypeRouterSolicitation        = 133
	TypeRouterAdvertisement       = 134
	TypeNeighborSolicitation      = 135
	TypeNeighborAdvertisement     = 136
	TypeRedirect                  = 137
	TypeMulticastListenerReportV2 = 143
)

// ICMPv6 codes (RFC 4443 §3), by message type; Parameter Problem codes
// are with ParseExtensions (CodeErroneousHeaderField and the rest).
const (
	// Destination Unreachable (RFC 4443 §3.1).
	CodeNoRoute            = 0 // "no route to destination"
	CodeAdminProhibited    = 1 // "communication with destination administratively prohibited"
	CodeBeyondScope        = 2 // "beyond scope of source address"
	CodeAddressUnreachable = 3 // "address unreachable"
	CodePortUnreachable    = 4 // "port unreachable"
	CodeSourcePolicyFailed = 5 // "source address failed ingress/egress policy"
	CodeRejectRoute        = 6 // "reject route to destination"

	// Time Exceeded (RFC 4443 §3.3).
	CodeHopLimitExceeded               = 0 // "hop limit exceeded in transit"
	CodeFragmentReassemblyTimeExceeded = 1 // "fragment reassembly time exceeded"
)

// Errors returned by ParseICMP.
var (
	// ErrICMPTruncated: shorter than the 4-octet Type, Code and Checksum.
	ErrICMPTruncated = errors.New("ipv6: truncated ICMPv6 message")
	// ErrChecksum: the ICMPv6 checksum does not verify over the message
	// and the pseudo-header.
	ErrChecksum = errors.New("ipv6: bad ICMPv6 checksum")
)

// ICMP is a view of an ICMPv6 message (RFC 4443 §2.1). An ICMP returned
// by ParseICMP is at least ICMPHeaderLen bytes long, so its accessors never
// panic.
type ICMP []byte

// ParseICMP validates an ICMPv6 message m, the upper-layer data of a
// packet from src to dst with Next Header 58: at least ICMPHeaderLen bytes
// (ErrICMPTruncated; every message type RFC 4443 and RFC 4861 define has
// its 32-bit word after the checksum) and a checksum that verifies over
// the message and the RFC 8200 §8.1 pseudo-header (ErrChecksum; RFC 4443
// §2.3). It does not allocate.
func ParseICMP(m []byte, src, dst netip.Addr) (ICMP, error) {
	if len(m) < ICMPHeaderLen || len(m) > MaxPayloadLength {
		return nil, ErrICMPTruncated
	}
	ph := checksum.PseudoHeader(src, dst, NextHeaderICMPv6, uint16(len(m)))
	if checksum.Sum(m, ph) != 0xffff {
		return nil, ErrChecksum
	}
	return ICMP(m), nil
}

// Type returns the Type field.
func (m ICMP) Type() uint8 { return m[0] }

// Code returns the Code field.
func (m ICMP) Code() uint8 { return m[1] }

// Checksum returns the Checksum field.
func (m ICMP) Checksum() uint16 { return binary.BigEndian.Uint16(m[2:]) }

// Ident returns the Identifier of an echo message (RFC 4443 §4.1).
func (m ICMP) Ident() uint16 { return binary.BigEndian.Uint16(m[4:]) }

// Sequence returns the Sequence Number of an echo message.
func (m ICMP) Sequence() uint16 { return binary.BigEndian.Uint16(m[6:]) }

// MTU returns the MTU of a Packet Too Big message (RFC 4443 §3.2).
func (m ICMP) MTU() uint32 { return binary.BigEndian.Uint32(m[4:]) }

// Pointer returns the Pointer of a Parameter Problem message (RFC 4443
// §3.4): the offset in the invoking packet of the octet in error.
func (m ICMP) Pointer() uint32 { return binary.BigEndian.Uint32(m[4:]) }

// Payload returns the bytes after the 8-byte header: echo data, or the
// invoking packet for error messages.
func (m ICMP) Payload() []byte { return m[ICMPHeaderLen:] }

// IsError reports whether typ is an ICMPv6 error message type (RFC 4443
// §2.1: "Error messages are identified as such by a zero in the
// high-order bit of their message Type field values").
func IsError(typ uint8) bool { return typ < 128 }

// SetICMPChecksum computes the checksum of the ICMPv6 message m sent from
// src to dst over m and the RFC 8200 §8.1 pseudo-header (RFC 4443 §2.3)
// and stores it. len(m) must be at least 4.
func SetICMPChecksum(m []byte, src, dst netip.Addr) {
	m[2], m[3] = 0, 0
	ph := checksum.PseudoHeader(src, dst, NextHeaderICMPv6, uint16(len(m)))
	binary.BigEndian.PutUint16(m[2:], checksum.Checksum(m, ph))
}

// PutEcho writes into b an Echo Request or Echo Reply (typ, RFC 4443 §4)
// from src to dst with the given identifier, sequence number and data, and
// returns its length, or 0 if b is too short. data may overlap b's data
// part at the same position (a reply built in the request's buffer).
func PutEcho(b []byte, typ uint8, src, dst netip.Addr, ident, seq uint16, data []byte) int {
	n := ICMPHeaderLen + len(data)
	if len(b) < n || n > MaxPayloadLength {
		return 0
	}
	copy(b[ICMPHeaderLen:], data)
	b[0], b[1] = typ, 0
	binary.BigEndian.PutUint16(b[4:], ident)
	binary.BigEndian.PutUint16(b[6:], seq)
	SetICMPChecksum(b[:n], src, dst)
	return n
}

// PutEchoReply writes into b the Echo Reply to req, which came from peer
// to local, and returns its length, or 0 if b is shorter than req. The
// identifier, sequence number and data are those of req (RFC 4443 §4.2:
// "The data received in the ICMPv6 Echo Request message MUST be returned
// entirely and unmodified in the ICMPv6 Echo Reply message"); the reply
// goes from local to peer. b may be the same memory as req.
func PutEchoReply(b []byte, req ICMP, local, peer netip.Addr) int {
	if len(req) < ICMPHeaderLen {
		return 0
	}
	return PutEcho(b, TypeEchoReply, local, peer, req.Ident(), req.Sequence(), req.Payload())
}

// PutError writes into b an ICMPv6 error message of type typ and code
// from src to dst, with its second 32-bit word set to word (unused and 0
// for Destination Unreachable and Time Exceeded, the MTU for Packet Too
// Big, the Pointer for Parameter Problem), quoting invoking, the packet
// that caused it: "as much of invoking packet as possible without the
// ICMPv6 packet exceeding the minimum IPv6 MTU" (RFC 4443 §2.4(c); §3.1 to
// §3.4). It returns the message length, or 0 if b is shorter than that.
// A b of MaxErrorLen bytes is always enough. b may overlap invoking at the
// same or a lower address (the receive buffer the packet arrived in).
//
// The caller decides whether an error may be sent at all: see
// MayReplyWithError, and ip.RateLimiter for the rate.
func PutError(b []byte, typ, code uint8, word uint32, src, dst netip.Addr, invoking []byte) int {
	q := min(len(invoking), MaxErrorLen-ICMPHeaderLen)
	n := ICMPHeaderLen + q
	if len(b) < n {
		return 0
	}
	copy(b[ICMPHeaderLen:], invoking[:q]) // first: b may overlap invoking
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint32(b[4:], word)
	SetICMPChecksum(b[:n], src, dst)
	return n
}

// MayReplyWithError reports whether an ICMPv6 error message of type typ
// and code may be sent about the packet h, whose chain is c (from
// ParseExtensions; pass the zero Chain if the chain could not be walked,
// and an upper-layer ICMPv6 error is then not recognized). RFC 4443
// §2.4(e): "An ICMPv6 error message MUST NOT be originated as a result of
// receiving the following:
//
//   - (e.1) An ICMPv6 error message.
//   - (e.2) An ICMPv6 redirect message.
//   - (e.3) A packet destined to an IPv6 multicast address. (There are
//     two exceptions to this rule: (1) the Packet Too Big Message ...
//     (2) the Parameter Problem Message, Code 2 ...)
//   - (e.4) A packet sent as a link-layer multicast (the exceptions from
//     e.3 apply to this case, too).
//   - (e.5) A packet sent as a link-layer broadcast (the exceptions from
//     e.3 apply to this case, too).
//   - (e.6) A packet whose source address does not uniquely identify a
//     single node -- e.g., the IPv6 Unspecified Address, an IPv6
//     multicast address, or an address known by the ICMP message
//     originator to be an IPv6 anycast address."
//
// linkMulticast is the link layer's report that the frame was sent to a
// multicast or broadcast address. Anycast addresses are the caller's to
// know; loopback is refused too, as it names no node on a link. A packet
// that is a non-first fragment is not quoted usefully but is allowed, as
// RFC 4443 sets no such rule.
func MayReplyWithError(h Header, c Chain, linkMulticast bool, typ, code uint8) bool {
	if c.Proto == NextHeaderICMPv6 && c.Offset < len(h) {
		if t := h[c.Offset]; IsError(t) || t == TypeRedirect {
			return false // e.1, e.2
		}
	}
	exception := typ == TypePacketTooBig || (typ == TypeParameterProblem && code == CodeUnrecognizedOption)
	if (linkMulticast || h.Destination().IsMulticast()) && !exception {
		return false // e.3, e.4, e.5
	}
	src := h.Source()
	if src.IsUnspecified() || src.IsMulticast() || src.IsLoopback() {
		return false // e.6
	}
	return true
}

// ParseQuote validates the invoking packet an ICMPv6 error message quotes
// (its Payload) and returns it as a Header: at least 40 bytes
// (ErrTruncated) and Version 6 (ErrVersion). The quote is usually shorter
// than its Payload Length says, so the length is not checked; the returned
// Header's Payload is whatever was quoted. Walk its chain with
// ParseExtensions to find the upper-layer header, which
// ErrExtensionTruncated may then cut short. It does not allocate.
func ParseQuote(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return nil, ErrTruncated
	}
	if b[offVersionTC]>>4 != Version {
		return nil, ErrVersion
	}
	return Header(b), nil
}
