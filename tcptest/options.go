package tcptest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Option kinds, as packetdrill names them (RFC 9293 §3.2, RFC 7323 §2.2 and
// §3.2, RFC 2018 §2 and §3).
const (
	KindEOL    = 0 // eol
	KindNOP    = 1 // nop
	KindMSS    = 2 // mss N
	KindWScale = 3 // wscale N
	KindSACKOK = 4 // sackOK
	KindSACK   = 5 // sack L:R ...
	KindTS     = 8 // TS val N ecr N
)

// Option is one TCP option in the order it appears on the wire. Sequence
// numbers in SACK blocks are in script space (relative to the peer's ISN).
type Option struct {
	Kind   uint8
	Value  uint32      // MSS or window scale shift
	TSVal  uint32      // Timestamps: TSval
	TSEcr  uint32      // Timestamps: TSecr
	Blocks [][2]uint32 // SACK: left and right edges
	Raw    []byte      // an option of another kind: its data (after kind and length)
}

// Len returns the octets the option takes on the wire.
func (o Option) Len() int {
	switch o.Kind {
	case KindEOL, KindNOP:
		return 1
	case KindMSS:
		return 4
	case KindWScale:
		return 3
	case KindSACKOK:
		return 2
	case KindSACK:
		return 2 + 8*len(o.Blocks)
	case KindTS:
		return 10
	}
	return 2 + len(o.Raw)
}

// String returns the option in packetdrill's syntax.
func (o Option) String() string {
	switch o.Kind {
	case KindEOL:
		return "eol"
	case KindNOP:
		return "nop"
	case KindMSS:
		return "mss " + strconv.FormatUint(uint64(o.Value), 10)
	case KindWScale:
		return "wscale " + strconv.FormatUint(uint64(o.Value), 10)
	case KindSACKOK:
		return "sackOK"
	case KindSACK:
		var b strings.Builder
		b.WriteString("sack")
		for _, blk := range o.Blocks {
			fmt.Fprintf(&b, " %d:%d", blk[0], blk[1])
		}
		return b.String()
	case KindTS:
		return fmt.Sprintf("TS val %d ecr %d", o.TSVal, o.TSEcr)
	}
	return fmt.Sprintf("kind%d[%x]", o.Kind, o.Raw)
}

// FormatOptions returns opts as packetdrill writes them: "<mss 1460,nop>".
func FormatOptions(opts []Option) string {
	var b strings.Builder
	b.WriteByte('<')
	for i, o := range opts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(o.String())
	}
	b.WriteByte('>')
	return b.String()
}

// OptionsLen returns the octets opts take, without padding.
func OptionsLen(opts []Option) int {
	n := 0
	for _, o := range opts {
		n += o.Len()
	}
	return n
}

// errOptions reports an option list that cannot be decoded.
var errOptions = errors.New("malformed options")

// ParseOptionList decodes an option list in wire order. Unlike
// tcp.ParseOptions it keeps the order, NOPs and EOLs, so that a script can
// compare layouts; everything after an EOL is padding and not returned.
func ParseOptionList(b []byte) ([]Option, error) {
	var opts []Option
	for i := 0; i < len(b); {
		k := b[i]
		switch k {
		case KindEOL:
			return append(opts, Option{Kind: KindEOL}), nil
		case KindNOP:
			opts = append(opts, Option{Kind: KindNOP})
			i++
			continue
		}
		if i+1 >= len(b) {
			return opts, errOptions
		}
		n := int(b[i+1])
		if n < 2 || i+n > len(b) {
			return opts, errOptions
		}
		d := b[i+2 : i+n]
		o := Option{Kind: k}
		switch {
		case k == KindMSS && n == 4:
			o.Value = uint32(binary.BigEndian.Uint16(d))
		case k == KindWScale && n == 3:
			o.Value = uint32(d[0])
		case k == KindSACKOK && n == 2:
		case k == KindSACK && (n-2)%8 == 0:
			for j := 0; j < len(d); j += 8 {
				o.Blocks = append(o.Blocks, [2]uint32{binary.BigEndian.Uint32(d[j:]), binary.BigEndian.Uint32(d[j+4:])})
			}
		case k == KindTS && n == 10:
			o.TSVal, o.TSEcr = binary.BigEndian.Uint32(d), binary.BigEndian.Uint32(d[4:])
		default:
			o.Kind = k
			o.Raw = append([]byte(nil), d...)
			if k == KindMSS || k == KindWScale || k == KindSACKOK || k == KindSACK || k == KindTS {
				return opts, errOptions
			}
		}
		opts = append(opts, o)
		i += n
	}
	return opts, nil
}

// appendOptions encodes opts after b.
func appendOptions(b []byte, opts []Option) []byte {
	for _, o := range opts {
		switch o.Kind {
		case KindEOL, KindNOP:
			b = append(b, o.Kind)
		case KindMSS:
			b = append(b, KindMSS, 4)
			b = binary.BigEndian.AppendUint16(b, uint16(o.Value))
		case KindWScale:
			b = append(b, KindWScale, 3, byte(o.Value))
		case KindSACKOK:
			b = append(b, KindSACKOK, 2)
		case KindSACK:
			b = append(b, KindSACK, byte(2+8*len(o.Blocks)))
			for _, blk := range o.Blocks {
				b = binary.BigEndian.AppendUint32(b, blk[0])
				b = binary.BigEndian.AppendUint32(b, blk[1])
			}
		case KindTS:
			b = append(b, KindTS, 10)
			b = binary.BigEndian.AppendUint32(b, o.TSVal)
			b = binary.BigEndian.AppendUint32(b, o.TSEcr)
		default:
			b = append(b, o.Kind, byte(2+len(o.Raw)))
			b = append(b, o.Raw...)
		}
	}
	return b
}
