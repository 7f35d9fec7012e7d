package tcptest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ustack/ustack/tcp"
)

// MatchOptions tune how a Flow compares a segment with a Spec.
type MatchOptions struct {
	// LenientOptions compares option lists by the presence of each kind
	// (NOP and EOL aside) instead of exact values, order and layout:
	// Linux's choices of window scale and option layout are not the RFC's.
	LenientOptions bool
	// TSTick, when not zero, checks the TSval of the stack's segments:
	// mapped into script space (relative to the first TSval matched), it
	// may differ from the script's by at most TSTolerance/TSTick ticks
	// (packetdrill's --tcp_ts_tick_usecs). Zero leaves TSval unchecked, as
	// packetdrill does by default.
	TSTick      time.Duration
	TSTolerance time.Duration
	// CheckTSEcr compares the TSecr of the stack's segments with the
	// script's (the peer's TSvals are sent as written, so no mapping is
	// needed). packetdrill never checks it.
	CheckTSEcr bool
	// IgnorePush leaves the PSH flag out of the comparison: where PSH goes
	// is the sender's choice (RFC 9293 §3.9.1), and Linux's placement
	// (tcp_mark_push) is not ustack's.
	IgnorePush bool
}

// Mismatch is one field that differs.
type Mismatch struct {
	Field     string // "flags", "seq", "ack", "win", "options", ...
	Got, Want string
}

// MatchError lists the fields of a segment that differ from a Spec.
type MatchError struct {
	Mismatches []Mismatch
	Want       string // the Spec, in script syntax
	Got        string // the segment, with script-space numbers
}

// Error names every differing field: `ack: got 2, want 1`.
func (e *MatchError) Error() string {
	var b strings.Builder
	for i, m := range e.Mismatches {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: got %s, want %s", m.Field, m.Got, m.Want)
	}
	return b.String()
}

// Match compares p, a segment the stack sent, with sp. Fields sp leaves
// unset are not compared. Matching a SYN records the script ISN, and
// matching a Timestamps option the TSval mapping later TSecrs use.
func (f *Flow) Match(sp *Spec, p Packet, mo MatchOptions) error {
	if sp.err != nil {
		return sp.err
	}
	d, err := decode(p.Data)
	if err != nil {
		return &MatchError{Mismatches: []Mismatch{{Field: "segment", Got: err.Error(), Want: "a TCP segment"}}, Want: sp.String()}
	}
	var ms []Mismatch
	add := func(field string, got, want any) {
		ms = append(ms, Mismatch{Field: field, Got: fmt.Sprint(got), Want: fmt.Sprint(want)})
	}
	if p.Tuple != f.t {
		add("connection", p.Tuple, f.t)
	}
	if sp.set&setPorts != 0 && (d.src != sp.src || d.dst != sp.dst) {
		add("ports", fmt.Sprintf("%d>%d", d.src, d.dst), fmt.Sprintf("%d>%d", sp.src, sp.dst))
	}
	// The script ISN is the sequence number the script gives the stack's
	// first SYN (packetdrill's script.local_isn).
	if sp.flags.Has(tcp.FlagSYN) && !f.scriptSet {
		f.scriptISN, f.scriptSet = sp.seq, true
	}
	// TSval mapping (packetdrill's map_outbound_live_packet).
	if sts, ok := findTS(sp.opts); ok && sp.set&setOpts != 0 {
		if ats, ok := findTS(d.opts); ok {
			f.tsMap[sts.TSVal] = ats.TSVal
			if !f.tsFirst {
				f.tsFirst, f.tsFirstScr, f.tsFirstLive = true, sts.TSVal, ats.TSVal
			}
		}
	}
	f.toScript(Out, &d)
	if sp.set&setFlags != 0 && d.flags != sp.flags && !(mo.IgnorePush && d.flags&^tcp.FlagPSH == sp.flags&^tcp.FlagPSH) {
		add("flags", FormatFlags(d.flags), FormatFlags(sp.flags))
	}
	if sp.set&setSeq != 0 && d.seq != sp.seq {
		add("seq", d.seq, sp.seq)
	}
	if sp.set&setLen != 0 {
		if len(d.payload) != sp.n {
			add("payload length", len(d.payload), sp.n)
		} else if sp.payload != nil && !bytes.Equal(d.payload, sp.payload) {
			add("payload", fmt.Sprintf("%q", d.payload), fmt.Sprintf("%q", sp.payload))
		}
	}
	if sp.set&setAck != 0 && d.ack != sp.ack {
		add("ack", d.ack, sp.ack)
	}
	if sp.set&setWin != 0 && d.win != sp.win {
		add("win", d.win, sp.win)
	}
	if sp.set&setUrg != 0 && d.urg != sp.urg {
		add("urg", d.urg, sp.urg)
	}
	if sp.set&setOpts != 0 {
		ms = append(ms, compareOptions(d.opts, d.optErr, sp.opts, mo)...)
	}
	if len(ms) == 0 {
		return nil
	}
	return &MatchError{Mismatches: ms, Want: sp.String(), Got: formatFields(&d, true)}
}

// compareOptions compares the options of a segment (script space) with the
// script's.
func compareOptions(got []Option, gotErr error, want []Option, mo MatchOptions) []Mismatch {
	if gotErr != nil {
		return []Mismatch{{Field: "options", Got: "malformed " + FormatOptions(got), Want: FormatOptions(want)}}
	}
	if mo.LenientOptions {
		g, w := kinds(got), kinds(want)
		if !slices.Equal(g, w) {
			return []Mismatch{{Field: "option kinds", Got: FormatOptions(got), Want: FormatOptions(want)}}
		}
		return nil
	}
	bad := func(field string) []Mismatch {
		return []Mismatch{{Field: field, Got: FormatOptions(got), Want: FormatOptions(want)}}
	}
	if len(got) != len(want) {
		return bad("options")
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Kind != w.Kind {
			return bad("options")
		}
		switch g.Kind {
		case KindMSS, KindWScale:
			if g.Value != w.Value {
				return bad("option " + w.String()[:strings.IndexByte(w.String(), ' ')])
			}
		case KindSACK:
			if !slices.Equal(g.Blocks, w.Blocks) {
				return bad("option sack")
			}
		case KindTS:
			if mo.TSTick > 0 {
				diff := int32(g.TSVal - w.TSVal)
				if diff < 0 {
					diff = -diff
				}
				if time.Duration(diff)*mo.TSTick > mo.TSTolerance {
					return bad("option TS val")
				}
			}
			if mo.CheckTSEcr && g.TSEcr != w.TSEcr {
				return bad("option TS ecr")
			}
		case KindEOL, KindNOP, KindSACKOK:
		default:
			if !bytes.Equal(g.Raw, w.Raw) {
				return bad(fmt.Sprintf("option kind %d", g.Kind))
			}
		}
	}
	return nil
}

// kinds returns the sorted option kinds of opts, NOP and EOL left out.
func kinds(opts []Option) []uint8 {
	var k []uint8
	for _, o := range opts {
		if o.Kind != KindNOP && o.Kind != KindEOL {
			k = append(k, o.Kind)
		}
	}
	slices.Sort(k)
	return k
}

// Aggregate joins consecutive segments the stack sent into one, as
// packetdrill does when a script line covers more than one MSS (the way a
// kernel using TSO sends it): the header of the last (its flags, ACK,
// window and options) with the sequence number of the first and all the
// payload. Every segment must continue the previous one (same connection,
// next sequence number, same ACK and window; PSH and FIN may differ), and
// all but the last must carry the same amount of payload.
func Aggregate(ps []Packet) (Packet, error) {
	if len(ps) == 0 {
		return Packet{}, fmt.Errorf("no segments to aggregate")
	}
	if len(ps) == 1 {
		return ps[0], nil
	}
	first, err := decode(ps[0].Data)
	if err != nil {
		return Packet{}, err
	}
	payload := append([]byte(nil), first.payload...)
	prev := first
	for i, p := range ps[1:] {
		d, err := decode(p.Data)
		if err != nil {
			return Packet{}, err
		}
		const ignore = tcp.FlagPSH | tcp.FlagFIN | tcp.FlagCWR
		switch {
		case p.Tuple != ps[0].Tuple:
			return Packet{}, fmt.Errorf("segment %d is for another connection (%v)", i+2, p.Tuple)
		case d.flags&^ignore != prev.flags&^ignore:
			return Packet{}, fmt.Errorf("segment %d has flags %s after %s", i+2, FormatFlags(d.flags), FormatFlags(prev.flags))
		case d.seq != prev.seq+uint32(len(prev.payload)):
			return Packet{}, fmt.Errorf("segment %d does not follow the previous one (seq %d, want %d)", i+2, d.seq, prev.seq+uint32(len(prev.payload)))
		case d.ack != prev.ack || d.win != prev.win:
			return Packet{}, fmt.Errorf("segment %d has ack %d win %d after ack %d win %d", i+2, d.ack, d.win, prev.ack, prev.win)
		case i+2 < len(ps) && len(d.payload) != len(first.payload):
			return Packet{}, fmt.Errorf("segment %d carries %d bytes, the first %d", i+2, len(d.payload), len(first.payload))
		}
		payload = append(payload, d.payload...)
		prev = d
	}
	last := ps[len(ps)-1]
	b := make([]byte, 0, prev.hdrLen+len(payload))
	b = append(b, last.Data[:prev.hdrLen]...)
	binary.BigEndian.PutUint32(b[4:], first.seq)
	b = append(b, payload...)
	return Packet{Time: last.Time, Dir: last.Dir, Tuple: last.Tuple, Data: b}, nil
}
