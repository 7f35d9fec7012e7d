package tcptest

import (
	"fmt"
	"strings"

	"github.com/ustack/ustack/tcp"
)

// field bits of Spec.set.
const (
	setFlags = 1 << iota
	setSeq
	setLen
	setAck
	setWin
	setUrg
	setOpts
	setAnyOpts
	setPorts
)

// Spec describes a TCP segment in script space, the numbers a packetdrill
// script writes: sequence numbers relative to the initial sequence numbers
// (the peer's SYN and the stack's SYN are "0"), timestamps as written in
// the script. Build one with Seg and its chained setters:
//
//	tcptest.Seg().Flags("S").Seq(0).Win(65535).MSS(1460)
//
// A Spec is sent by a Flow (every unset field is zero, the window 65535) or
// matched against what the stack sent (unset fields are not compared, so
// Seg().Flags("R") accepts any reset).
type Spec struct {
	set      int
	flags    tcp.Flags
	seq      uint32
	n        int
	payload  []byte
	ack      uint32
	win      uint16
	urg      uint16
	opts     []Option
	src, dst uint16
	err      error
}

// Seg returns an empty Spec.
func Seg() *Spec { return &Spec{} }

func (s *Spec) fail(format string, args ...any) *Spec {
	if s.err == nil {
		s.err = fmt.Errorf(format, args...)
	}
	return s
}

// Err returns the first error made while building s (an unknown flag
// letter), or nil.
func (s *Spec) Err() error { return s.err }

// ParseFlags parses flags written as tcpdump and packetdrill do: the
// letters F S R P U E W, "." for ACK, "-" (or "") for none.
func ParseFlags(f string) (tcp.Flags, error) {
	var fl tcp.Flags
	if f == "-" {
		return 0, nil
	}
	for _, r := range f {
		switch r {
		case 'F':
			fl |= tcp.FlagFIN
		case 'S':
			fl |= tcp.FlagSYN
		case 'R':
			fl |= tcp.FlagRST
		case 'P':
			fl |= tcp.FlagPSH
		case '.':
			fl |= tcp.FlagACK
		case 'U':
			fl |= tcp.FlagURG
		case 'E':
			fl |= tcp.FlagECE
		case 'W':
			fl |= tcp.FlagCWR
		default:
			return 0, fmt.Errorf("unknown TCP flag %q in %q", r, f)
		}
	}
	return fl, nil
}

// FormatFlags writes flags as packetdrill does ("S.", "P.", "-" for none).
func FormatFlags(f tcp.Flags) string {
	if f == 0 {
		return "-"
	}
	var b strings.Builder
	for _, x := range [...]struct {
		f tcp.Flags
		c byte
	}{{tcp.FlagFIN, 'F'}, {tcp.FlagSYN, 'S'}, {tcp.FlagRST, 'R'}, {tcp.FlagPSH, 'P'}, {tcp.FlagURG, 'U'}, {tcp.FlagECE, 'E'}, {tcp.FlagCWR, 'W'}, {tcp.FlagACK, '.'}} {
		if f&x.f != 0 {
			b.WriteByte(x.c)
		}
	}
	return b.String()
}

// Flags sets the control bits, written as tcpdump does: "S", "S.", ".",
// "P.", "F.", "R", "R.", "-" for none.
func (s *Spec) Flags(f string) *Spec {
	fl, err := ParseFlags(f)
	if err != nil {
		return s.fail("%v", err)
	}
	s.flags = fl
	s.set |= setFlags
	return s
}

// FlagBits sets the control bits from their values.
func (s *Spec) FlagBits(f tcp.Flags) *Spec {
	s.flags = f
	s.set |= setFlags
	return s
}

// Seq sets the sequence number (relative: the peer's SYN is 0 as written
// in scripts, and so is the stack's).
func (s *Spec) Seq(n uint32) *Spec {
	s.seq = n
	s.set |= setSeq
	return s
}

// Len sets the payload to n zero octets (packetdrill's "seq:seq+n(n)").
func (s *Spec) Len(n int) *Spec {
	s.n, s.payload = n, nil
	s.set |= setLen
	return s
}

// Payload sets the payload; matching compares its bytes.
func (s *Spec) Payload(b []byte) *Spec {
	s.n, s.payload = len(b), b
	s.set |= setLen
	return s
}

// Ack sets the acknowledgment number (relative, like Seq). It does not set
// the ACK flag: write "." in Flags.
func (s *Spec) Ack(n uint32) *Spec {
	s.ack = n
	s.set |= setAck
	return s
}

// Win sets the window field, as sent (already scaled down).
func (s *Spec) Win(n uint16) *Spec {
	s.win = n
	s.set |= setWin
	return s
}

// Urg sets the urgent pointer.
func (s *Spec) Urg(n uint16) *Spec {
	s.urg = n
	s.set |= setUrg
	return s
}

// Ports sets the source and destination ports: for a segment the peer
// sends, src is the peer's port; for one the stack sends, src is the
// stack's. A Flow uses its own ports when they are not set.
func (s *Spec) Ports(src, dst uint16) *Spec {
	s.src, s.dst = src, dst
	s.set |= setPorts
	return s
}

func (s *Spec) option(o Option) *Spec {
	s.opts = append(s.opts, o)
	s.set |= setOpts
	s.set &^= setAnyOpts
	return s
}

// MSS appends a Maximum Segment Size option.
func (s *Spec) MSS(n uint16) *Spec { return s.option(Option{Kind: KindMSS, Value: uint32(n)}) }

// WScale appends a Window Scale option.
func (s *Spec) WScale(shift uint8) *Spec {
	return s.option(Option{Kind: KindWScale, Value: uint32(shift)})
}

// SACKOK appends a SACK-Permitted option.
func (s *Spec) SACKOK() *Spec { return s.option(Option{Kind: KindSACKOK}) }

// TS appends a Timestamps option. In a segment the peer sends, ecr is
// mapped to the TSval the stack sent in the segment the script matched
// with that value (as packetdrill does).
func (s *Spec) TS(val, ecr uint32) *Spec {
	return s.option(Option{Kind: KindTS, TSVal: val, TSEcr: ecr})
}

// NOP appends a No-Operation option.
func (s *Spec) NOP() *Spec { return s.option(Option{Kind: KindNOP}) }

// EOL appends an End of Option List option.
func (s *Spec) EOL() *Spec { return s.option(Option{Kind: KindEOL}) }

// SACK appends a SACK option with the blocks given as pairs of left and
// right edges (relative to the acknowledgment space).
func (s *Spec) SACK(edges ...uint32) *Spec {
	if len(edges)%2 != 0 {
		return s.fail("SACK needs pairs of edges, got %d numbers", len(edges))
	}
	o := Option{Kind: KindSACK}
	for i := 0; i < len(edges); i += 2 {
		o.Blocks = append(o.Blocks, [2]uint32{edges[i], edges[i+1]})
	}
	return s.option(o)
}

// Options appends options.
func (s *Spec) Options(opts ...Option) *Spec {
	for _, o := range opts {
		s.option(o)
	}
	s.set |= setOpts
	return s
}

// NoOptions makes a matched segment carry no options at all.
func (s *Spec) NoOptions() *Spec {
	s.opts = nil
	s.set |= setOpts
	s.set &^= setAnyOpts
	return s
}

// AnyOptions accepts any options in a matched segment (packetdrill's
// "<...>"); this is also what an unset option list means.
func (s *Spec) AnyOptions() *Spec {
	s.opts = nil
	s.set &^= setOpts
	s.set |= setAnyOpts
	return s
}

// Has reports whether field f of s was set: one of "flags", "seq", "len",
// "ack", "win", "urg", "options", "ports".
func (s *Spec) Has(f string) bool {
	m := map[string]int{"flags": setFlags, "seq": setSeq, "len": setLen, "ack": setAck, "win": setWin,
		"urg": setUrg, "options": setOpts, "ports": setPorts}[f]
	return m != 0 && s.set&m != 0
}

// FlagsValue returns the control bits.
func (s *Spec) FlagsValue() tcp.Flags { return s.flags }

// PayloadLen returns the payload length.
func (s *Spec) PayloadLen() int { return s.n }

// OptionList returns the options, nil when unset or "<...>".
func (s *Spec) OptionList() []Option { return s.opts }

// String returns s in packetdrill's syntax, unset fields left out.
func (s *Spec) String() string {
	var b strings.Builder
	if s.set&setPorts != 0 {
		fmt.Fprintf(&b, "%d>%d ", s.src, s.dst)
	}
	if s.set&setFlags != 0 {
		b.WriteString(FormatFlags(s.flags))
	} else {
		b.WriteString("?")
	}
	if s.set&(setSeq|setLen) != 0 {
		fmt.Fprintf(&b, " %d:%d(%d)", s.seq, s.seq+uint32(s.n), s.n)
	}
	if s.set&setAck != 0 && (s.flags.Has(tcp.FlagACK) || s.ack != 0) {
		fmt.Fprintf(&b, " ack %d", s.ack)
	}
	if s.set&setWin != 0 {
		fmt.Fprintf(&b, " win %d", s.win)
	}
	if s.set&setUrg != 0 && s.urg != 0 {
		fmt.Fprintf(&b, " urg %d", s.urg)
	}
	switch {
	case s.set&setAnyOpts != 0:
		b.WriteString(" <...>")
	case len(s.opts) > 0:
		b.WriteString(" " + FormatOptions(s.opts))
	}
	return b.String()
}
