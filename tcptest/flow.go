package tcptest

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/ustack/ustack/tcp"
)

// Flow is one connection as the scripted peer sees it: its 4-tuple and the
// mapping between the numbers a script writes and those on the wire,
// packetdrill's tcpdump-style remapping:
//
//   - The peer's SYN carries its sequence number as written (the peer's
//     ISN); the peer's later sequence numbers, and the acknowledgment
//     numbers of the stack's later segments, are relative to it.
//   - The stack's SYN (or SYN-ACK) is written with a script ISN (usually
//     0) standing for the ISN the stack chose; the stack's later sequence
//     numbers, and the acknowledgment numbers of the peer's later
//     segments, are relative to the stack's ISN.
//   - Timestamps the peer sends go out as written, except TSecr, which is
//     replaced by the live TSval of the stack's segment whose script TSval
//     it names.
type Flow struct {
	s *Stack
	t tcp.Tuple

	remoteISN uint32
	remoteSet bool
	scriptISN uint32
	scriptSet bool

	tsMap       map[uint32]uint32 // script TSval -> live TSval of the stack's segments
	tsFirst     bool
	tsFirstScr  uint32
	tsFirstLive uint32

	// TSEcrScaled lets a TSecr that names no TSval the script matched be
	// interpolated from the first one (packetdrill's --tcp_ts_ecr_scaled).
	// Otherwise such a TSecr is an error.
	TSEcrScaled bool
}

// Flow returns the flow between the peer's address (RemoteAddr) and
// remotePort and the stack's address (LocalAddr) and localPort.
func (s *Stack) Flow(remotePort, localPort uint16) *Flow {
	return s.FlowFor(tcp.Tuple{
		Local:  netip.AddrPortFrom(s.local, localPort),
		Remote: netip.AddrPortFrom(s.remote, remotePort),
	})
}

// FlowFor returns a flow for 4-tuple t (from the stack's side).
func (s *Stack) FlowFor(t tcp.Tuple) *Flow {
	return &Flow{s: s, t: t, tsMap: make(map[uint32]uint32)}
}

// Tuple returns the flow's 4-tuple, from the stack's side.
func (f *Flow) Tuple() tcp.Tuple { return f.t }

// Stack returns the stack the flow belongs to.
func (f *Flow) Stack() *Stack { return f.s }

// localISN is the ISN of the stack's latest connection on the tuple, or 0
// before there is one (packetdrill leaves numbers unmapped then).
func (f *Flow) localISN() uint32 {
	v, _ := f.s.ISS(f.t)
	return uint32(v)
}

// localOffset is what to add to a script number in the stack's sequence
// space to get the live one (packetdrill's local_seq_script_to_live_offset).
func (f *Flow) localOffset(syn bool) uint32 {
	if syn {
		return f.localISN() - f.scriptISN
	}
	return f.localISN()
}

// remoteOffset is the same for the peer's sequence space.
func (f *Flow) remoteOffset(syn bool) uint32 {
	if syn {
		return 0
	}
	return f.remoteISN
}

// Build encodes sp as a segment from the peer with live numbers. Unset
// fields are zero, except the window, 65535. Options go out in the
// order given, padded with EOL to a multiple of four octets.
func (f *Flow) Build(sp *Spec) ([]byte, error) {
	if sp.err != nil {
		return nil, sp.err
	}
	if sp.set&setPorts != 0 && (sp.src != f.t.Remote.Port() || sp.dst != f.t.Local.Port()) {
		return nil, fmt.Errorf("ports %d>%d do not belong to flow %v", sp.src, sp.dst, f.t)
	}
	if sp.set&setAnyOpts != 0 {
		return nil, fmt.Errorf("<...> for TCP options can only be used with outbound packets")
	}
	syn := sp.flags.Has(tcp.FlagSYN)
	if syn && !f.remoteSet {
		f.remoteISN, f.remoteSet = sp.seq, true
	}
	win := uint16(65535)
	if sp.set&setWin != 0 {
		win = sp.win
	}
	ack := sp.ack
	if sp.flags.Has(tcp.FlagACK) {
		ack += f.localOffset(syn)
	}
	opts := make([]Option, len(sp.opts))
	copy(opts, sp.opts)
	for i, o := range opts {
		switch o.Kind {
		case KindTS:
			if !sp.flags.Has(tcp.FlagACK) {
				break
			}
			live, err := f.liveEcr(o.TSEcr)
			if err != nil {
				return nil, err
			}
			opts[i].TSEcr = live
		case KindSACK:
			blocks := make([][2]uint32, len(o.Blocks))
			for j, b := range o.Blocks {
				blocks[j] = [2]uint32{b[0] + f.localOffset(syn), b[1] + f.localOffset(syn)}
			}
			opts[i].Blocks = blocks
		}
	}
	ob := appendOptions(nil, opts)
	for len(ob)%4 != 0 {
		ob = append(ob, KindEOL)
	}
	hl := tcp.HeaderLen + len(ob)
	if hl > tcp.MaxHeaderLen {
		return nil, fmt.Errorf("TCP options too long: %d octets", len(ob))
	}
	b := make([]byte, hl+sp.n)
	binary.BigEndian.PutUint16(b[0:], f.t.Remote.Port())
	binary.BigEndian.PutUint16(b[2:], f.t.Local.Port())
	binary.BigEndian.PutUint32(b[4:], sp.seq+f.remoteOffset(syn))
	binary.BigEndian.PutUint32(b[8:], ack)
	b[12] = byte(hl/4) << 4
	b[13] = byte(sp.flags)
	binary.BigEndian.PutUint16(b[14:], win)
	binary.BigEndian.PutUint16(b[18:], sp.urg)
	copy(b[tcp.HeaderLen:], ob)
	copy(b[hl:], sp.payload)
	tcp.SetChecksum(b, f.t.Remote.Addr(), f.t.Local.Addr())
	return b, nil
}

// liveEcr maps a TSecr the script wrote to the live TSval it names.
func (f *Flow) liveEcr(ecr uint32) (uint32, error) {
	if v, ok := f.tsMap[ecr]; ok {
		return v, nil
	}
	if f.TSEcrScaled && f.tsFirst {
		return ecr - f.tsFirstScr + f.tsFirstLive, nil
	}
	return 0, fmt.Errorf("unable to infer live TS ecr for script TS ecr %d; no matching or preceding outbound TS val", ecr)
}

// Send builds sp (see Build) and delivers it to the stack.
func (f *Flow) Send(sp *Spec) error {
	b, err := f.Build(sp)
	if err != nil {
		return err
	}
	return f.s.Inject(f.t, b)
}

// Format returns p with script-space numbers, as a script would write it.
func (f *Flow) Format(p Packet) string {
	d, err := decode(p.Data)
	if err != nil {
		return fmt.Sprintf("%s malformed segment (%v)", p.Dir, err)
	}
	f.toScript(p.Dir, &d)
	return p.Dir.String() + " " + formatFields(&d, true)
}

// toScript rewrites d's numbers into script space.
func (f *Flow) toScript(dir Direction, d *fields) {
	syn := d.flags.Has(tcp.FlagSYN)
	var seqOff, ackOff uint32
	if dir == Out {
		seqOff, ackOff = f.localOffset(syn), f.remoteOffset(syn)
	} else {
		seqOff, ackOff = f.remoteOffset(syn), f.localOffset(syn)
	}
	d.seq -= seqOff
	if d.flags.Has(tcp.FlagACK) {
		d.ack -= ackOff
	}
	for i, o := range d.opts {
		switch o.Kind {
		case KindSACK:
			blocks := make([][2]uint32, len(o.Blocks))
			for j, b := range o.Blocks {
				blocks[j] = [2]uint32{b[0] - ackOff, b[1] - ackOff}
			}
			d.opts[i].Blocks = blocks
		case KindTS:
			if dir == Out && f.tsFirst {
				d.opts[i].TSVal = f.tsFirstScr + (o.TSVal - f.tsFirstLive)
			}
			if dir == In {
				for scr, live := range f.tsMap {
					if live == o.TSEcr {
						d.opts[i].TSEcr = scr
						break
					}
				}
			}
		}
	}
}

func formatFields(d *fields, withWin bool) string {
	var b strings.Builder
	n := uint32(len(d.payload))
	fmt.Fprintf(&b, "%s %d:%d(%d)", FormatFlags(d.flags), d.seq, d.seq+n, n)
	if d.flags.Has(tcp.FlagACK) || d.ack != 0 {
		fmt.Fprintf(&b, " ack %d", d.ack)
	}
	if withWin {
		fmt.Fprintf(&b, " win %d", d.win)
	}
	if d.urg != 0 {
		fmt.Fprintf(&b, " urg %d", d.urg)
	}
	if len(d.opts) > 0 {
		b.WriteString(" " + FormatOptions(d.opts))
	}
	if d.optErr != nil {
		fmt.Fprintf(&b, " <malformed options %x>", d.optBytes)
	}
	return b.String()
}
