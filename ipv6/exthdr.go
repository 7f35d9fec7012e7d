package ipv6

import (
	"encoding/binary"
	"errors"
)

// Bounds on the extension header chain ParseExtensions walks. RFC 8200
// sets none; RFC 8504 §5.3 lets a node protect itself by limiting the
// options it processes, and Linux's defaults for the options per header
// (net.ipv6.max_hbh_opts_number, max_dst_opts_number) are 8.
const (
	// MaxExtensionHeaders is the number of extension headers walked,
	// the Fragment header included, before the packet is dropped.
	MaxExtensionHeaders = 8
	// MaxOptions is the number of options other than Pad1 and PadN one
	// Hop-by-Hop or Destination Options header may carry.
	MaxOptions = 8
)

// Option types with a meaning in every options header (RFC 8200 §4.2).
const (
	OptionPad1 = 0 // "a single octet of padding": no length or data
	OptionPadN = 1 // two or more octets of padding
)

// Option actions: the two high-order bits of an option type say what a
// node that does not recognize it must do (RFC 8200 §4.2).
const (
	optionActionMask     = 0xc0
	optionSkip           = 0x00 // "skip over this option and continue processing the header"
	optionDiscard        = 0x40 // "discard the packet"
	optionDiscardICMP    = 0x80 // "discard ... regardless of whether or not the packet's Destination Address was a multicast address, send an ICMP Parameter Problem, Code 2"
	optionDiscardUnicast = 0xc0 // "discard ... only if the packet's Destination Address was not a multicast address, send an ICMP Parameter Problem, Code 2"
)

// Parameter Problem codes (RFC 4443 §3.4; code 3 from RFC 7112 §5).
const (
	CodeErroneousHeaderField   = 0 // "erroneous header field encountered"
	CodeUnrecognizedNextHeader = 1 // "unrecognized Next Header type encountered"
	CodeUnrecognizedOption     = 2 // "unrecognized IPv6 option encountered"
	CodeIncompleteHeaderChain  = 3 // RFC 7112: "IPv6 First Fragment has incomplete IPv6 Header Chain"
)

// Errors returned by ParseExtensions. Each is counted by the caller as a
// drop reason; Chain.Problem says whether an ICMPv6 Parameter Problem
// goes back as well.
var (
	// ErrExtensionTruncated: an extension header runs past the payload.
	ErrExtensionTruncated = errors.New("ipv6: truncated extension header")
	// ErrTooManyExtensions: more than MaxExtensionHeaders headers.
	ErrTooManyExtensions = errors.New("ipv6: too many extension headers")
	// ErrHopByHopNotFirst: a Hop-by-Hop Options header not right after
	// the IPv6 header (RFC 8200 §4.1: it "is restricted to appear
	// immediately after an IPv6 header only").
	ErrHopByHopNotFirst = errors.New("ipv6: hop-by-hop options header not first")
	// ErrOptionTruncated: an option's length runs past its header.
	ErrOptionTruncated = errors.New("ipv6: truncated option")
	// ErrTooManyOptions: more than MaxOptions options in one header.
	ErrTooManyOptions = errors.New("ipv6: too many options")
	// ErrUnrecognizedOption: an option whose action bits say to discard
	// the packet (RFC 8200 §4.2).
	ErrUnrecognizedOption = errors.New("ipv6: unrecognized option")
	// ErrRoutingHeader: a Routing header with Segments Left nonzero. This
	// host implements no routing type; RFC 5095 §3 requires type 0 to be
	// treated as such an unrecognized type (RFC 8200 §4.4).
	ErrRoutingHeader = errors.New("ipv6: unsupported routing header")
	// ErrFragmentLength: a fragment with M set whose data is not a
	// multiple of 8 octets (RFC 8200 §4.5).
	ErrFragmentLength = errors.New("ipv6: fragment length not a multiple of 8")
	// ErrFragmentTooLarge: the reassembled packet's Payload Length would
	// exceed 65535 (RFC 8200 §4.5).
	ErrFragmentTooLarge = errors.New("ipv6: reassembled packet too large")
	// ErrIncompleteHeaderChain: a first fragment that does not hold the
	// whole header chain up to and including the upper-layer header (RFC
	// 7112 §5, RFC 8200 §4.5).
	ErrIncompleteHeaderChain = errors.New("ipv6: first fragment has incomplete header chain")
)

// Problem describes the ICMPv6 Parameter Problem message (RFC 4443 §3.4)
// that a packet ParseExtensions refused calls for. Send is false when
// nothing is to be sent back.
type Problem struct {
	Send bool
	Code uint8
	// Pointer is the offset, from the start of the IPv6 header, of the
	// octet where the error was detected (RFC 4443 §3.4).
	Pointer uint32
}

// Chain is where the extension header chain of a packet leads.
type Chain struct {
	// Proto is the upper-layer protocol (the Next Header value that is not
	// an extension header this package walks, NextHeaderNoNextHeader
	// included), or NextHeaderFragment for a fragment that must go to a
	// Reassembler.
	Proto uint8
	// Offset is where the header Proto names starts, from the start of
	// the IPv6 header.
	Offset int
	// ProtoPointer is the offset of the Next Header field that holds
	// Proto: the Pointer of a Parameter Problem, Code 1, when Proto is not
	// supported (RFC 8200 §4), and for a fragment the field that
	// reassembly rewrites.
	ProtoPointer int
	// Fragment is the offset of the Fragment header, 0 when there is
	// none. An atomic fragment (RFC 6946: offset 0, M clear) has one but
	// is walked past and not reassembled.
	Fragment int
	// Problem is what to send back when ParseExtensions returns an
	// error.
	Problem Problem
}

// ParseExtensions walks the extension headers of h (RFC 8200 §4) in order
// and returns where they lead, or an error naming the drop reason, with
// Chain.Problem set when an ICMPv6 Parameter Problem is due (the caller
// still applies MayReplyWithError and its rate limit).
//
//   - Hop-by-Hop Options (only right after the IPv6 header, else Code 1
//     pointing at the Next Header field that names it, as for an
//     unrecognized Next Header) and Destination Options: every option
//     but Pad1 and PadN is unrecognized and handled by its two high-order
//     bits (RFC 8200 §4.2: skip; discard; discard and send Code 2; discard
//     and send Code 2 unless the destination is multicast), at most
//     MaxOptions of them.
//   - Routing: ignored when Segments Left is 0, else discarded with Code 0
//     pointing at the Routing Type (RFC 8200 §4.4; RFC 5095 §3 for type
//     0).
//   - Fragment: an atomic fragment is walked past (RFC 6946 §4: a host
//     "MUST process that packet in isolation from any other
//     packets/fragments"). Otherwise the walk stops there with Proto
//     NextHeaderFragment, after checking that a fragment with M set holds a
//     multiple of 8 octets (Code 0, pointer at the Payload Length), that
//     the reassembled payload fits in 65535 octets (Code 0, pointer at the
//     Fragment Offset; RFC 8200 §4.5), and that a first fragment holds the
//     whole header chain through the upper-layer header (Code 3, pointer 0;
//     RFC 7112 §5).
//   - At most MaxExtensionHeaders headers; a header past the payload is
//     ErrExtensionTruncated. Both are dropped silently.
//
// It does not allocate.
func ParseExtensions(h Header) (Chain, error) {
	nh, off, ptr := h.NextHeader(), HeaderLen, offNextHeader
	multicast := h[offDestination] == 0xff
	atomic := 0 // offset of an atomic fragment's header
	for n := 0; ; n++ {
		var hdrLen int
		switch nh {
		case NextHeaderHopByHop, NextHeaderDestOptions, NextHeaderRouting:
			if nh == NextHeaderHopByHop && off != HeaderLen {
				return problem(ErrHopByHopNotFirst, CodeUnrecognizedNextHeader, ptr)
			}
			if off+2 > len(h) {
				return Chain{}, ErrExtensionTruncated
			}
			// RFC 8200 §4.3, §4.4, §4.6: "Hdr Ext Len: 8-bit unsigned
			// integer. Length of the ... header in 8-octet units, not
			// including the first 8 octets."
			hdrLen = (int(h[off+1]) + 1) * 8
			if off+hdrLen > len(h) {
				return Chain{}, ErrExtensionTruncated
			}
			if nh == NextHeaderRouting {
				// RFC 8200 §4.4: "If Segments Left is zero, the node
				// must ignore the Routing header and proceed"; otherwise
				// "discard the packet and send an ICMP Parameter
				// Problem, Code 0 ... pointing to the unrecognized
				// Routing Type".
				if h[off+3] != 0 {
					return problem(ErrRoutingHeader, CodeErroneousHeaderField, off+2)
				}
			} else if c, err := walkOptions(h, off, hdrLen, multicast); err != nil {
				return c, err
			}
		case NextHeaderFragment:
			if off+fragHeaderLen > len(h) {
				return Chain{}, ErrExtensionTruncated
			}
			hdrLen = fragHeaderLen
			fo := binary.BigEndian.Uint16(h[off+2:])
			offset, more := int(fo&fragOffsetMask), fo&fragMore != 0
			if offset == 0 && !more {
				break // atomic fragment: RFC 6946 §4
			}
			if n+1 > MaxExtensionHeaders {
				return Chain{}, ErrTooManyExtensions
			}
			data := len(h) - off - fragHeaderLen
			if more && data%8 != 0 {
				// RFC 8200 §4.5: "pointing to the Payload Length field
				// of the fragment packet".
				return problem(ErrFragmentLength, CodeErroneousHeaderField, offPayloadLength)
			}
			if off-HeaderLen+offset+data > MaxPayloadLength {
				// RFC 8200 §4.5: "pointing to the Fragment Offset field
				// of the fragment packet".
				return problem(ErrFragmentTooLarge, CodeErroneousHeaderField, off+2)
			}
			c := Chain{Proto: NextHeaderFragment, Offset: off, ProtoPointer: ptr, Fragment: off}
			if offset == 0 && !completeChain(h, h[off], off+fragHeaderLen, n+1) {
				c.Problem = Problem{Send: true, Code: CodeIncompleteHeaderChain}
				return c, ErrIncompleteHeaderChain
			}
			return c, nil
		default:
			return Chain{Proto: nh, Offset: off, ProtoPointer: ptr, Fragment: atomic}, nil
		}
		if n+1 > MaxExtensionHeaders {
			return Chain{}, ErrTooManyExtensions
		}
		if nh == NextHeaderFragment {
			atomic = off
		}
		nh, ptr, off = h[off], off, off+hdrLen
	}
}

// problem returns the error err with a Parameter Problem to send.
func problem(err error, code uint8, pointer int) (Chain, error) {
	return Chain{Problem: Problem{Send: true, Code: code, Pointer: uint32(pointer)}}, err
}

// walkOptions checks the options of the Hop-by-Hop or Destination Options
// header of hdrLen bytes at off (RFC 8200 §4.2: type-length-value options
// after the Next Header and Hdr Ext Len octets).
func walkOptions(h Header, off, hdrLen int, multicast bool) (Chain, error) {
	count := 0
	for i := off + 2; i < off+hdrLen; {
		t := h[i]
		if t == OptionPad1 {
			i++ // RFC 8200 §4.2: "the format of the Pad1 option is a special case -- it does not have length and value fields"
			continue
		}
		if i+2 > off+hdrLen || i+2+int(h[i+1]) > off+hdrLen {
			return Chain{}, ErrOptionTruncated
		}
		if t != OptionPadN {
			if count++; count > MaxOptions {
				return Chain{}, ErrTooManyOptions
			}
			// No option is recognized: the action bits decide.
			switch t & optionActionMask {
			case optionDiscard:
				return Chain{}, ErrUnrecognizedOption
			case optionDiscardICMP:
				return problem(ErrUnrecognizedOption, CodeUnrecognizedOption, i)
			case optionDiscardUnicast:
				if multicast {
					return Chain{}, ErrUnrecognizedOption
				}
				return problem(ErrUnrecognizedOption, CodeUnrecognizedOption, i)
			}
		}
		i += 2 + int(h[i+1])
	}
	return Chain{}, nil
}

// upperLayerMin is the length of the upper-layer header a first fragment
// must hold (RFC 8200 §4.5: "all headers through an Upper-Layer header";
// RFC 7112 §5, the entire header chain in the first fragment): TCP's fixed 20 octets (RFC 9293 §3.1), UDP's 8
// (RFC 768), the ICMPv6 Type, Code and Checksum (RFC 4443 §2.1). Other
// protocols need one octet, No Next Header none.
func upperLayerMin(proto uint8) int {
	switch proto {
	case NextHeaderTCP:
		return 20
	case NextHeaderUDP:
		return 8
	case NextHeaderICMPv6:
		return 4
	case NextHeaderNoNextHeader:
		return 0
	}
	return 1
}

// completeChain reports whether the headers of a first fragment from off
// on, starting with one of type nh, reach an upper-layer header that is
// wholly inside h. Only lengths are checked: the headers after the
// Fragment header are processed after reassembly. n headers have been
// walked already.
func completeChain(h Header, nh uint8, off, n int) bool {
	for ; n <= MaxExtensionHeaders; n++ {
		switch nh {
		case NextHeaderHopByHop, NextHeaderDestOptions, NextHeaderRouting:
			if off+2 > len(h) {
				return false
			}
			nh, off = h[off], off+(int(h[off+1])+1)*8
		case NextHeaderFragment:
			if off+fragHeaderLen > len(h) {
				return false
			}
			nh, off = h[off], off+fragHeaderLen
		default:
			return off+upperLayerMin(nh) <= len(h)
		}
	}
	return false
}
