package tcptest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ustack/ustack/tcp"
)

// Direction says who sent a segment.
type Direction uint8

const (
	// In is a segment from the peer to the stack under test ("<" in
	// packetdrill's syntax).
	In Direction = iota
	// Out is a segment the stack under test sent (">").
	Out
)

// String returns "<" for In and ">" for Out, as scripts write them.
func (d Direction) String() string {
	if d == In {
		return "<"
	}
	return ">"
}

// Packet is one segment of an exchange.
type Packet struct {
	Time  time.Time // virtual time it was sent
	Dir   Direction
	Tuple tcp.Tuple // from the stack's side: Local is the stack, Remote the peer
	Data  []byte    // the TCP segment: header, options, payload
}

// Elapsed returns the packet's time since Epoch.
func (p Packet) Elapsed() time.Duration { return p.Time.Sub(Epoch) }

// String returns the packet with its live (absolute) numbers, tcpdump
// style.
func (p Packet) String() string {
	src, dst := p.Tuple.Remote, p.Tuple.Local
	if p.Dir == Out {
		src, dst = dst, src
	}
	f, err := decode(p.Data)
	if err != nil {
		return fmt.Sprintf("%9.6f %s %v > %v: malformed segment (%v)", p.Elapsed().Seconds(), p.Dir, src, dst, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%9.6f %s %v > %v: %s seq %d", p.Elapsed().Seconds(), p.Dir, src, dst, FormatFlags(f.flags), f.seq)
	if len(f.payload) > 0 {
		fmt.Fprintf(&b, ":%d(%d)", f.seq+uint32(len(f.payload)), len(f.payload))
	}
	if f.flags.Has(tcp.FlagACK) {
		fmt.Fprintf(&b, " ack %d", f.ack)
	}
	fmt.Fprintf(&b, " win %d", f.win)
	if len(f.opts) > 0 {
		b.WriteString(" " + FormatOptions(f.opts))
	}
	return b.String()
}

// fields is a decoded segment (live numbers).
type fields struct {
	src, dst uint16
	seq, ack uint32
	flags    tcp.Flags
	win, urg uint16
	hdrLen   int
	optBytes []byte
	opts     []Option
	optErr   error
	payload  []byte
}

var errShort = errors.New("shorter than a TCP header or its data offset")

// decode reads a segment without checking its checksum (the stack's own
// segments carry a correct one; injected ones were checked by the core).
func decode(b []byte) (fields, error) {
	if len(b) < tcp.HeaderLen {
		return fields{}, errShort
	}
	hl := int(b[12]>>4) * 4
	if hl < tcp.HeaderLen || hl > len(b) {
		return fields{}, errShort
	}
	f := fields{
		src:      binary.BigEndian.Uint16(b[0:]),
		dst:      binary.BigEndian.Uint16(b[2:]),
		seq:      binary.BigEndian.Uint32(b[4:]),
		ack:      binary.BigEndian.Uint32(b[8:]),
		flags:    tcp.Flags(b[13]),
		win:      binary.BigEndian.Uint16(b[14:]),
		urg:      binary.BigEndian.Uint16(b[18:]),
		hdrLen:   hl,
		optBytes: b[tcp.HeaderLen:hl],
		payload:  b[hl:],
	}
	f.opts, f.optErr = ParseOptionList(f.optBytes)
	return f, nil
}

// findTS returns the Timestamps option of opts.
func findTS(opts []Option) (Option, bool) {
	for _, o := range opts {
		if o.Kind == KindTS {
			return o, true
		}
	}
	return Option{}, false
}
