package ipv6

import (
	"encoding/binary"
	"errors"
)

// The Fragment header (RFC 8200 §4.5): Next Header (8 bits), Reserved (8),
// Fragment Offset (13, in 8-octet units), Res (2), M flag (1),
// Identification (32).
const (
	fragHeaderLen  = 8
	fragOffsetMask = 0xfff8 // the 13-bit offset in 8-octet units is the offset in bytes with the low 3 bits cleared
	fragMore       = 0x0001 // "M flag. 1 = more fragments; 0 = last fragment"
)

// FragmentHeaderLen is the length of the Fragment header (RFC 8200 §4.5).
const FragmentHeaderLen = fragHeaderLen

// Errors returned by Fragment.
var (
	// ErrMTUTooSmall: the MTU is below MinMTU, or too small for the
	// Unfragmentable Part, a Fragment header and 8 octets of data.
	ErrMTUTooSmall = errors.New("ipv6: MTU too small to fragment")
	// ErrScratchTooSmall: the scratch buffer is shorter than the MTU.
	ErrScratchTooSmall = errors.New("ipv6: scratch buffer shorter than MTU")
	// ErrAlreadyFragment: the packet already has a Fragment header; only
	// the source fragments, once (RFC 8200 §4.5: "fragmentation in IPv6
	// is performed only by source nodes").
	ErrAlreadyFragment = errors.New("ipv6: packet is already a fragment")
)

// unfragmentableLen returns the length of the Unfragmentable Part of the
// packet h (RFC 8200 §4.5: "the IPv6 header plus any extension headers
// that must be processed by nodes en route to the destination, that is,
// all headers up to and including the Routing header if present, else the
// Hop-by-Hop Options header if present, else no extension headers"), or
// ErrAlreadyFragment if a Fragment header comes before the upper-layer
// header.
func unfragmentableLen(h Header) (n int, err error) {
	nh, off := h.NextHeader(), HeaderLen
	n = HeaderLen
	for i := 0; i <= MaxExtensionHeaders; i++ {
		switch nh {
		case NextHeaderHopByHop, NextHeaderDestOptions, NextHeaderRouting:
			if off+2 > len(h) {
				return 0, ErrExtensionTruncated
			}
			next := off + (int(h[off+1])+1)*8
			if next > len(h) {
				return 0, ErrExtensionTruncated
			}
			if nh != NextHeaderDestOptions {
				n = next
			}
			nh, off = h[off], next
		case NextHeaderFragment:
			return 0, ErrAlreadyFragment
		default:
			return n, nil
		}
	}
	return 0, ErrTooManyExtensions
}

// Fragment splits the packet pkt into fragments of at most mtu bytes with
// the Fragment Identification id, and passes each to emit, as RFC 8200
// §4.5 describes: each fragment is the Unfragmentable Part (its last Next
// Header changed to 44), a Fragment header whose Next Header is the first
// header of the Fragmentable Part, and a piece of the Fragmentable Part,
// a multiple of 8 octets in all but the last fragment; the Payload Length
// is that of the fragment.
//
// id must differ from that of other fragmented packets recently sent with
// the same source and destination; RFC 7739 §5 advises an unpredictable
// one. If pkt fits in mtu it is passed to emit unchanged. mtu must be at
// least MinMTU (RFC 8200 §5; RFC 8201 §4: a path MTU is never below it).
// pkt must be a valid packet without a Fragment header (ParseHeader's
// errors and ErrAlreadyFragment are returned otherwise).
//
// Each fragment is built in scratch (len(scratch) >= mtu), which is
// reused: emit must copy the fragment if it keeps it. An error from emit
// stops Fragment and is returned. Fragment does not allocate.
func Fragment(pkt []byte, mtu int, id uint32, scratch []byte, emit func(frag []byte) error) error {
	h, err := ParseHeader(pkt)
	if err != nil {
		return err
	}
	if len(h) <= mtu {
		return emit(h)
	}
	if mtu < MinMTU {
		return ErrMTUTooSmall
	}
	if len(scratch) < mtu {
		return ErrScratchTooSmall
	}
	unfrag, err := unfragmentableLen(h)
	if err != nil {
		return err
	}
	per := (mtu - unfrag - fragHeaderLen) &^ 7 // data octets per fragment but the last
	if per < 8 {
		return ErrMTUTooSmall
	}
	// The Next Header field that names the first Fragmentable header: the
	// IPv6 header's, or the last Unfragmentable extension header's.
	ptr := offNextHeader
	for off := HeaderLen; off < unfrag; off += (int(h[off+1]) + 1) * 8 {
		ptr = off
	}
	first := h[ptr]
	data := h[unfrag:]
	for off := 0; off < len(data); {
		n := min(len(data)-off, per)
		more := off+n < len(data)
		frag := scratch[:unfrag+fragHeaderLen+n]
		copy(frag, h[:unfrag])
		frag[ptr] = NextHeaderFragment
		binary.BigEndian.PutUint16(frag[offPayloadLength:], uint16(len(frag)-HeaderLen))
		fh := frag[unfrag:]
		fh[0], fh[1] = first, 0
		fo := uint16(off) & fragOffsetMask
		if more {
			fo |= fragMore
		}
		binary.BigEndian.PutUint16(fh[2:], fo)
		binary.BigEndian.PutUint32(fh[4:], id)
		copy(frag[unfrag+fragHeaderLen:], data[off:off+n])
		if err := emit(frag); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// FragmentHeader is a view of the 8-byte Fragment header (RFC 8200 §4.5).
type FragmentHeader []byte

// FragmentAt returns the Fragment header of h at off (Chain.Fragment), or
// nil if off is not the start of 8 bytes inside h.
func FragmentAt(h Header, off int) FragmentHeader {
	if off < HeaderLen || off+fragHeaderLen > len(h) {
		return nil
	}
	return FragmentHeader(h[off : off+fragHeaderLen])
}

// NextHeader returns the type of the first header of the Fragmentable
// Part.
func (f FragmentHeader) NextHeader() uint8 { return f[0] }

// Offset returns the Fragment Offset in bytes (the field × 8).
func (f FragmentHeader) Offset() int { return int(binary.BigEndian.Uint16(f[2:]) & fragOffsetMask) }

// More reports the M flag.
func (f FragmentHeader) More() bool { return binary.BigEndian.Uint16(f[2:])&fragMore != 0 }

// Identification returns the Identification field.
func (f FragmentHeader) Identification() uint32 { return binary.BigEndian.Uint32(f[4:]) }
