package tcp

import (
	"encoding/binary"
	"errors"
)

// Option kinds (RFC 9293 §3.2 for EOL, NOP and MSS; RFC 7323 §2.2 and §3.2
// for window scale and timestamps; RFC 2018 §2 and §3 for SACK).
const (
	optionKindEOL           = 0 // RFC 9293 §3.2: End of Option List, one octet
	optionKindNOP           = 1 // RFC 9293 §3.2: No-Operation, one octet
	optionKindMSS           = 2 // RFC 9293 §3.2: Maximum Segment Size, length 4
	optionKindWindowScale   = 3 // RFC 7323 §2.2: Window Scale, length 3
	optionKindSACKPermitted = 4 // RFC 2018 §2: SACK-Permitted, length 2
	optionKindSACK          = 5 // RFC 2018 §3: SACK, length 8*n+2
	optionKindTimestamp     = 8 // RFC 7323 §3.2: Timestamps, length 10
)

// Option lengths, including the kind and length octets.
const (
	optionLenMSS           = 4
	optionLenWindowScale   = 3
	optionLenSACKPermitted = 2
	optionLenTimestamp     = 10
	optionLenSACKBase      = 2 // RFC 2018 §3: "Length: Variable", 8*n+2
	optionLenSACKBlock     = 8 // RFC 2018 §3: two 32-bit edges per block
)

// MaxOptionsLen is the most option bytes a segment can carry: the data
// offset counts at most 15 32-bit words (RFC 9293 §3.1), 20 of whose
// octets are the fixed header.
const MaxOptionsLen = MaxHeaderLen - HeaderLen

// MaxWindowScale is the largest shift count (RFC 7323 §2.3: "the
// shift.cnt value ... MUST be limited to 14", and a received value above
// 14 is used as 14).
const MaxWindowScale = 14

// MaxSACKBlocks is the most SACK blocks Options holds (RFC 2018 §3: "the
// 40 bytes available for TCP options can specify a maximum of 4 blocks";
// with timestamps at most 3 fit).
const MaxSACKBlocks = 4

// ErrOptions reports a malformed option list: a length below 2, an option
// overrunning the list, or a known option with the wrong length.
var ErrOptions = errors.New("tcp: malformed options")

// SACKBlock is one block of a SACK option (RFC 2018 §3): the segment of
// data from Left (the first sequence number of the block) up to but not
// including Right (the sequence number immediately following its last
// octet).
type SACKBlock struct {
	Left, Right Value
}

// Options are the TCP options ustack understands. The zero value is not
// "no options": WindowScale must be -1 for absent; ParseOptions sets it.
type Options struct {
	// MSS is the Maximum Segment Size option (kind 2, RFC 9293 §3.2 and
	// §3.7.1); 0 means absent.
	MSS uint16
	// WindowScale is the shift count of the Window Scale option (kind 3,
	// RFC 7323 §2): -1 means absent, otherwise 0..14 (received values
	// above 14 are used as 14, RFC 7323 §2.3).
	WindowScale int8
	// SACKPermitted is the SACK-Permitted option (kind 4, RFC 2018 §2).
	SACKPermitted bool
	// Timestamp reports a Timestamps option (kind 8, RFC 7323 §3.2).
	Timestamp bool
	// TSVal and TSEcr are the Timestamps option's TSval and TSecr fields
	// (RFC 7323 §3.2); zero when Timestamp is false.
	TSVal, TSEcr uint32
	// SACK holds the blocks of a SACK option (kind 5, RFC 2018 §3).
	SACK [MaxSACKBlocks]SACKBlock
	// NumSACK is the number of valid entries of SACK, 0 when there is no
	// SACK option.
	NumSACK int
}

// ParseOptions parses the option list b (the octets between the fixed
// header and the data, RFC 9293 §3.1) into o, which it resets first.
//
// RFC 9293 §3.1: an option is either a single octet of kind, or an octet
// of kind, an octet of length (counting kind and length) and data. Kinds
// ParseOptions does not know are skipped by their length (RFC 9293 §3.1:
// "A TCP implementation MUST (MUST-6) ignore without error any TCP Option
// it does not implement, assuming that the option has a length field").
// Options need not be aligned (RFC 9293 §3.2, MUST-64). End of Option
// List ends parsing; what follows it should be zeros (MUST-69) but is
// ignored whatever it holds. A length below 2 or running past the end of
// b ("TCP implementations MUST be prepared to handle an illegal option
// length (e.g., zero)", MUST-7), or a known option with the wrong length,
// is ErrOptions. A SACK option with more than 4 blocks (only possible when b
// is longer than a header allows) keeps the first 4.
//
// ParseOptions does not allocate.
func ParseOptions(b []byte, o *Options) error {
	*o = Options{WindowScale: -1}
	for i := 0; i < len(b); {
		kind := b[i]
		switch kind {
		case optionKindEOL:
			return nil
		case optionKindNOP:
			i++
			continue
		}
		if i+1 >= len(b) {
			return ErrOptions // no room for the length octet
		}
		l := int(b[i+1])
		if l < 2 || i+l > len(b) {
			return ErrOptions
		}
		data := b[i+2 : i+l]
		switch kind {
		case optionKindMSS:
			if l != optionLenMSS {
				return ErrOptions
			}
			o.MSS = binary.BigEndian.Uint16(data)
		case optionKindWindowScale:
			if l != optionLenWindowScale {
				return ErrOptions
			}
			// RFC 7323 §2.3: "If a Window Scale option is received with a
			// shift.cnt value larger than 14, the TCP SHOULD log the error
			// but MUST use 14 instead of the specified value."
			o.WindowScale = int8(min(data[0], MaxWindowScale))
		case optionKindSACKPermitted:
			if l != optionLenSACKPermitted {
				return ErrOptions
			}
			o.SACKPermitted = true
		case optionKindSACK:
			// RFC 2018 §3: a SACK option with n blocks has a length of
			// 8*n+2 octets; it carries at least one block.
			if l < optionLenSACKBase+optionLenSACKBlock || (l-optionLenSACKBase)%optionLenSACKBlock != 0 {
				return ErrOptions
			}
			n := min((l-optionLenSACKBase)/optionLenSACKBlock, MaxSACKBlocks)
			for j := range n {
				blk := data[j*optionLenSACKBlock:]
				o.SACK[j] = SACKBlock{
					Left:  Value(binary.BigEndian.Uint32(blk[0:4])),
					Right: Value(binary.BigEndian.Uint32(blk[4:8])),
				}
			}
			o.NumSACK = n
		case optionKindTimestamp:
			if l != optionLenTimestamp {
				return ErrOptions
			}
			o.Timestamp = true
			o.TSVal = binary.BigEndian.Uint32(data[0:4])
			o.TSEcr = binary.BigEndian.Uint32(data[4:8])
		}
		i += l
	}
	return nil
}

// The encoded layout, the one Linux uses (and RFC 7323 Appendix A
// recommends for timestamps), keeps every option group a multiple of 4
// octets so that the 32-bit fields of TS and SACK are aligned:
//
//	MSS                 kind 2, len 4, value                          4
//	SACK-Permitted+TS   kind 4, len 2, kind 8, len 10, TSval, TSecr  12
//	TS alone            NOP, NOP, kind 8, len 10, TSval, TSecr       12
//	SACK-Permitted alone NOP, NOP, kind 4, len 2                      4
//	Window Scale        NOP, kind 3, len 3, shift                     4
//	SACK                NOP, NOP, kind 5, len 8n+2, n blocks       4+8n
//
// A SYN with MSS, SACK-Permitted, timestamps and window scale therefore
// takes the 20 octets Linux sends, and a segment with only timestamps 12.
// Because every group is a multiple of 4, no EOL padding is needed.

// numSACKEncoded returns how many of o's SACK blocks fit in the option
// space left after the other options (fixed) takes: RFC 2018 §3 notes
// that with timestamps at most 3 blocks fit.
func (o *Options) numSACKEncoded(fixed int) int {
	n := min(max(o.NumSACK, 0), MaxSACKBlocks)
	for n > 0 && fixed+4+n*optionLenSACKBlock > MaxOptionsLen {
		n--
	}
	return n
}

// fixedLen returns the encoded length of every option except SACK blocks.
func (o *Options) fixedLen() int {
	n := 0
	if o.MSS != 0 {
		n += 4
	}
	if o.Timestamp {
		n += 12 // with SACK-Permitted folded in, or NOP, NOP
	} else if o.SACKPermitted {
		n += 4
	}
	if o.WindowScale >= 0 {
		n += 4
	}
	return n
}

// EncodedLen returns the bytes o takes when encoded, a multiple of 4. SACK
// blocks that do not fit in the 40 octets of option space after the other
// options are left out (the first ones are kept).
func (o *Options) EncodedLen() int {
	fixed := o.fixedLen()
	if n := o.numSACKEncoded(fixed); n > 0 {
		return fixed + 4 + n*optionLenSACKBlock
	}
	return fixed
}

// Encode writes o into b, which must hold EncodedLen bytes, in the layout
// Linux uses (MSS; SACK-Permitted+TS as "sackOK,TS" or NOP,NOP,TS;
// NOP,WS; NOP,NOP,SACK), and returns EncodedLen. A WindowScale above 14 is
// written as 14. Encode does not allocate.
func (o *Options) Encode(b []byte) int {
	fixed := o.fixedLen()
	nsack := o.numSACKEncoded(fixed)
	total := fixed
	if nsack > 0 {
		total += 4 + nsack*optionLenSACKBlock
	}
	b = b[:total] // one bounds check
	i := 0
	if o.MSS != 0 {
		b[i], b[i+1] = optionKindMSS, optionLenMSS
		binary.BigEndian.PutUint16(b[i+2:], o.MSS)
		i += 4
	}
	if o.Timestamp {
		if o.SACKPermitted {
			b[i], b[i+1] = optionKindSACKPermitted, optionLenSACKPermitted
		} else {
			b[i], b[i+1] = optionKindNOP, optionKindNOP
		}
		b[i+2], b[i+3] = optionKindTimestamp, optionLenTimestamp
		binary.BigEndian.PutUint32(b[i+4:], o.TSVal)
		binary.BigEndian.PutUint32(b[i+8:], o.TSEcr)
		i += 12
	} else if o.SACKPermitted {
		b[i], b[i+1], b[i+2], b[i+3] = optionKindNOP, optionKindNOP, optionKindSACKPermitted, optionLenSACKPermitted
		i += 4
	}
	if o.WindowScale >= 0 {
		b[i], b[i+1], b[i+2], b[i+3] = optionKindNOP, optionKindWindowScale, optionLenWindowScale, byte(min(o.WindowScale, MaxWindowScale))
		i += 4
	}
	if nsack > 0 {
		b[i], b[i+1], b[i+2], b[i+3] = optionKindNOP, optionKindNOP, optionKindSACK, byte(optionLenSACKBase+nsack*optionLenSACKBlock)
		i += 4
		for _, blk := range o.SACK[:nsack] {
			binary.BigEndian.PutUint32(b[i:], uint32(blk.Left))
			binary.BigEndian.PutUint32(b[i+4:], uint32(blk.Right))
			i += 8
		}
	}
	return i
}
