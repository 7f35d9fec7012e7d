package tsg

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/ustack/ustack/tcp"
)

// Kind classifies a data segment of the sending direction.
type Kind uint8

// Kinds of data segments.
const (
	// New data: the segment's sequence range had not been sent before.
	New Kind = iota
	// Retransmit: the range (or part of it) had been sent before, and
	// neither RTOLike nor TLPLike fits (fast retransmit, RACK, SACK
	// recovery).
	Retransmit
	// RTOLike: a retransmission that looks like a retransmission timeout
	// (see Analyze).
	RTOLike
	// TLPLike: a segment that looks like a tail loss probe (see Analyze).
	// It may carry new data.
	TLPLike
	// Duplicate: an exact copy of a segment seen just before (same IP ID,
	// sequence range and TCP checksum), made by the network, not by the
	// sender.
	Duplicate
)

// String names the kind as the legend does, in short.
func (k Kind) String() string {
	switch k {
	case New:
		return "new"
	case Retransmit:
		return "retransmit"
	case RTOLike:
		return "RTO"
	case TLPLike:
		return "TLP"
	case Duplicate:
		return "duplicate"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Data is one segment of the sending direction that occupies sequence
// space. Sequence numbers here and in Ack and SACK are relative to the
// sender's ISN (the SYN is 0, the first data byte 1) or, when the capture
// holds no SYN, to the first sequence number seen.
type Data struct {
	T        time.Duration // since Graph.Start
	Seq, End int64         // the range [Seq, End)
	Kind     Kind
	// Silence is how long the sender had been quiet (no data sent, no ACK
	// received) before this segment.
	Silence time.Duration
}

// Ack is one segment of the receiving direction.
type Ack struct {
	T      time.Duration
	Ack    int64 // the cumulative acknowledgment
	Window int64 // the right edge of the window: Ack + (window << scale)
}

// SACK is one block of a SACK option the receiver sent (RFC 2018 §3).
type SACK struct {
	T           time.Duration
	Left, Right int64
	// DSACK marks a block reporting duplicate data (RFC 2883).
	DSACK bool
}

// Counts sums what Analyze found.
type Counts struct {
	DataSegments    int   // segments of the sender carrying sequence space, duplicates excluded
	Bytes           int64 // highest sequence number sent (relative), that is bytes of new data plus SYN and FIN
	Retransmissions int   // segments re-sending sequence space, RTO- and TLP-like ones included
	RTOs            int   // RTO-like retransmissions
	TLPs            int   // TLP-like segments (retransmissions or new data)
	Duplicates      int   // network duplicates of data segments
	AckSegments     int   // segments of the receiver with ACK set
	SACKBlocks      int   // SACK blocks in the receiver's segments, D-SACK blocks included
	DSACKBlocks     int   // D-SACK blocks
	BadChecksums    int   // segments left out because their TCP checksum did not verify
	ZeroWindows     int   // receiver segments advertising a zero window
}

// Graph is the analysis of one direction of one connection.
type Graph struct {
	Conn             Conn
	Sender, Receiver netip.AddrPort
	// Start is time zero of the graph: the connection's first segment.
	Start time.Time
	// Duration is the time from Start to the connection's last segment.
	Duration time.Duration
	// SYN reports whether the sender's SYN is in the capture, which makes
	// sequence numbers relative to its ISN.
	SYN bool
	// WindowScale is the receiver's window shift (RFC 7323 §2.3), known
	// when both SYNs are in the capture.
	WindowScale      int
	WindowScaleKnown bool
	// RTT is the round-trip time estimate at the end of the connection
	// (see Analyze), zero when none could be measured.
	RTT time.Duration

	Data  []Data
	Acks  []Ack
	SACKs []SACK
	Counts
}

// Options tunes Analyze.
type Options struct {
	// Conn selects the connection ("10.0.0.2:7-10.0.0.1:40000", either
	// order); empty means the one with the most payload bytes.
	Conn string
	// Reverse draws the direction that sent fewer payload bytes.
	Reverse bool
	// MinSilence is the shortest silence after which a send can be RTO-
	// or TLP-like, whatever the RTT; zero means DefaultMinSilence.
	MinSilence time.Duration
}

// DefaultMinSilence is the default Options.MinSilence. Below a couple of
// milliseconds a pause is as likely the application's or the scheduler's
// (a writer woken by an ACK) as a timer's, and stacks arm no retransmission
// or probe timer that short (Linux's probe timeout is 2·SRTT plus at least
// two jiffies).
const DefaultMinSilence = 2 * time.Millisecond

// Analyze works out the time-sequence graph of one connection of the
// capture: by default the connection with the most payload bytes, in the
// direction that sent more (the sender).
//
// Every sender segment that occupies sequence space is a Data mark. It is
// a retransmission when part of its range was sent before, unless it is
// a network Duplicate: the same IP ID, range and TCP checksum as one of
// the sender's last 16 segments, less than half an RTT (1 ms when no RTT
// is known) after it; a retransmission always comes at least an RTT after
// the original.
//
// Timeouts and loss probes are not on the wire, so they are inferred from
// the sender's silence: the time since the later of its previous data
// segment and the receiver's previous segment. An RTO fires, and a TLP's
// PTO expires, with no packet arriving to trigger the send (a fast or
// RACK retransmission follows an incoming ACK). The RTT estimate is the
// larger of the handshake RTT (the longer of SYN to SYN-ACK and SYN-ACK to
// its ACK, which is the round trip whichever end captured) and an RFC 6298
// smoothed RTT over ACKs of segments sent once (Karn's rule, RFC 6298 §3).
// A segment sent after a silence of at least 1.5 RTT and MinSilence while
// data was outstanding is:
//   - TLP-like if it carries new data into an open window (into a full one
//     it is a window probe), or re-sends the highest segment
//     sent (RFC 8985 §7.3: the probe "SHOULD send a new, previously unsent
//     segment" if one is available, else "retransmit the most recently
//     sent segment"); the PTO is 2·SRTT (§7.2), so 1.5 RTT leaves a margin;
//   - RTO-like if it retransmits the segment at SND.UNA while more than
//     that segment is outstanding: a timeout goes back to SND.UNA (RFC 6298
//     §5.4, RFC 5681 §3.1) and re-sends what follows, which a probe never
//     does; when that segment is the whole flight, the first such send
//     after the ACK last advanced is TLP-like and a further one RTO-like
//     (RFC 8985 §7.3: one probe per episode).
//
// SACK blocks are D-SACKs by RFC 2883 §4's test: only the first block can
// be one, and it is when it lies below the cumulative ACK or inside the
// second block.
//
// Segments whose TCP checksum does not verify are left out (and counted)
// in a direction where they are a minority of the segments whose checksum
// could be checked (not cut by the snap length): the network corrupted
// them. Where most are bad the capture was taken before transmit checksum
// offload filled them in, and they are all kept.
func (c *Capture) Analyze(opts Options) (*Graph, error) {
	cd, err := c.find(opts.Conn)
	if err != nil {
		return nil, err
	}
	g := &Graph{Conn: cd.Conn}
	sdir := uint8(0)
	if cd.Bytes[1] > cd.Bytes[0] {
		sdir = 1
	}
	if opts.Reverse {
		sdir ^= 1
	}
	g.Sender, g.Receiver = cd.A, cd.B
	if sdir == 1 {
		g.Sender, g.Receiver = cd.B, cd.A
	}
	segs := cd.segs
	if len(segs) == 0 {
		return g, nil
	}

	// Checksums: keep bad ones only in a direction where most of those
	// that could be checked are bad.
	var bad, all [2]int
	for _, s := range segs {
		if !s.snapped {
			all[s.dir]++
		}
		if s.badCsum {
			bad[s.dir]++
		}
	}
	keepBad := [2]bool{2*bad[0] > all[0], 2*bad[1] > all[1]}

	t0 := segs[0].t
	g.Start = time.Unix(0, t0).UTC()
	g.Duration = time.Duration(segs[len(segs)-1].t - t0)

	a := analyzer{g: g, sdir: sdir, minSilence: opts.MinSilence}
	if a.minSilence <= 0 {
		a.minSilence = DefaultMinSilence
	}
	a.prepare(segs, keepBad)
	for _, s := range segs {
		if s.badCsum && !keepBad[s.dir] {
			g.BadChecksums++
			continue
		}
		if s.dir == sdir {
			a.sent(s)
		} else {
			a.received(s)
		}
	}
	g.RTT = a.rtt()
	g.Bytes = a.sndMax
	return g, nil
}

// analyzer holds the sender's state while Analyze walks the segments.
type analyzer struct {
	g          *Graph
	sdir       uint8
	minSilence time.Duration
	t0         int64
	isn        uint32
	ref        int64 // last unwrapped sequence number, for unwrapping the next

	sndUna, sndMax int64
	rwnd           int64 // right edge of the receiver's last window
	lastSend       int64 // time of the sender's previous data segment
	lastRecv       int64 // time of the receiver's previous segment
	probed         bool  // a TLP-like send since the ACK last advanced
	haveAck        bool
	started        bool // a data segment was sent

	srtt, hsRTT time.Duration
	flight      []sample // segments sent once, not yet acknowledged, in order
	recent      [16]recentSeg
	nrecent     int
}

type sample struct {
	end    int64
	t      int64
	resent bool
}

type recentSeg struct {
	t         int64
	seq, end  int64
	ipID, sum uint16
}

// prepare finds the ISN, the window scale and the handshake RTT.
func (a *analyzer) prepare(segs []segment, keepBad [2]bool) {
	g := a.g
	a.t0 = segs[0].t
	var synT, synAckT, ackT int64 = -1, -1, -1
	var sndWS, rcvWS int8 = -1, -1
	first := true
	for _, s := range segs {
		if s.badCsum && !keepBad[s.dir] {
			continue
		}
		syn := s.flags.Has(tcp.FlagSYN)
		if s.dir == a.sdir && first {
			a.isn = s.seq
			first = false
			g.SYN = syn
		}
		if syn {
			if s.dir == a.sdir {
				sndWS = s.wscale
			} else {
				rcvWS = s.wscale
			}
			if s.flags.Has(tcp.FlagACK) {
				if synAckT < 0 && synT >= 0 {
					synAckT = s.t
				}
			} else if synT < 0 {
				synT = s.t
			}
		} else if synAckT >= 0 && ackT < 0 && s.flags.Has(tcp.FlagACK) {
			ackT = s.t
		}
	}
	if first {
		// No sender segment: number relative to the receiver's ACKs.
		for _, s := range segs {
			if s.flags.Has(tcp.FlagACK) {
				a.isn = s.ack
				break
			}
		}
	}
	a.ref = int64(a.isn)
	// RFC 7323 §2.2: window scaling is in effect only when both SYNs carry
	// the option; the shift applies to windows the receiver sends after
	// its SYN.
	if sndWS >= 0 && rcvWS >= 0 {
		g.WindowScale, g.WindowScaleKnown = int(rcvWS), true
	}
	if synT >= 0 && synAckT >= 0 {
		a.hsRTT = time.Duration(synAckT - synT)
		if ackT >= 0 {
			a.hsRTT = max(a.hsRTT, time.Duration(ackT-synAckT))
		}
	}
}

// unwrap maps a 32-bit sequence number to the relative 64-bit line.
func (a *analyzer) unwrap(v uint32) int64 {
	abs := a.ref + int64(int32(v-uint32(a.ref)))
	a.ref = abs
	return abs - int64(a.isn)
}

func (a *analyzer) rtt() time.Duration { return max(a.srtt, a.hsRTT) }

func (a *analyzer) sent(s segment) {
	g := a.g
	seq := a.unwrap(s.seq)
	n := int64(s.plen)
	if s.flags.Has(tcp.FlagSYN) {
		n++
	}
	if s.flags.Has(tcp.FlagFIN) {
		n++
	}
	if n == 0 {
		return // a pure ACK of the other direction's data
	}
	end := seq + n
	d := Data{T: time.Duration(s.t - a.t0), Seq: seq, End: end}
	rtt := a.rtt()
	if a.isDuplicate(s, seq, end, rtt) {
		d.Kind = Duplicate
		g.Duplicates++
		g.Data = append(g.Data, d)
		return
	}
	a.remember(s, seq, end)
	g.DataSegments++
	last := max(a.lastSend, a.lastRecv)
	if a.lastSend != 0 || a.lastRecv != 0 {
		d.Silence = time.Duration(s.t - last)
	}
	outstanding := a.sndMax > a.sndUna
	quiet := outstanding && rtt > 0 && d.Silence >= max(rtt*3/2, a.minSilence)
	// New data sent into a full (or zero) window after a silence is a
	// window probe (RFC 9293 §3.8.6.1), not a loss probe. A full window
	// does not rule out a timeout: a sender stuck on a hole fills it.
	windowOpen := !a.haveAck || a.sndMax < a.rwnd
	retrans := a.started && seq < a.sndMax
	switch {
	case retrans:
		g.Retransmissions++
		d.Kind = Retransmit
		a.markResent(seq, end)
		if quiet {
			covUna := seq <= a.sndUna && end > a.sndUna
			switch {
			case covUna && end < a.sndMax:
				d.Kind = RTOLike
			case covUna && a.probed:
				d.Kind = RTOLike
			case end >= a.sndMax:
				d.Kind = TLPLike
			}
		}
	case quiet && windowOpen:
		d.Kind = TLPLike
	}
	switch d.Kind {
	case RTOLike:
		g.RTOs++
	case TLPLike:
		g.TLPs++
		a.probed = true
	}
	if !a.started {
		a.started = true
		if !a.haveAck {
			a.sndUna = seq
		}
		a.sndMax = seq
	}
	if end > a.sndMax {
		if seq >= a.sndMax {
			a.flight = append(a.flight, sample{end: end, t: s.t})
		}
		a.sndMax = end
	}
	a.lastSend = s.t
	g.Data = append(g.Data, d)
}

// isDuplicate reports whether s copies one of the recent segments.
func (a *analyzer) isDuplicate(s segment, seq, end int64, rtt time.Duration) bool {
	window := rtt / 2
	if rtt == 0 {
		window = time.Millisecond
	}
	for i := range min(a.nrecent, len(a.recent)) {
		r := a.recent[i]
		if r.seq == seq && r.end == end && r.ipID == s.ipID && r.sum == s.csum && time.Duration(s.t-r.t) < window {
			return true
		}
	}
	return false
}

func (a *analyzer) remember(s segment, seq, end int64) {
	a.recent[a.nrecent%len(a.recent)] = recentSeg{t: s.t, seq: seq, end: end, ipID: s.ipID, sum: s.csum}
	a.nrecent++
}

// markResent excludes the segments overlapping [seq, end) from RTT
// samples (Karn's rule).
func (a *analyzer) markResent(seq, end int64) {
	for i := range a.flight {
		f := &a.flight[i]
		if f.end > seq {
			f.resent = true
		}
		if f.end >= end {
			break
		}
	}
}

func (a *analyzer) received(s segment) {
	g := a.g
	a.lastRecv = s.t
	if !s.flags.Has(tcp.FlagACK) {
		return
	}
	g.AckSegments++
	t := time.Duration(s.t - a.t0)
	ack := a.unwrap(s.ack)
	win := int64(s.win)
	if a.g.WindowScaleKnown && !s.flags.Has(tcp.FlagSYN) {
		// RFC 7323 §2.3: the window field of a segment other than a SYN is
		// shifted left by the receiver's scale.
		win <<= a.g.WindowScale
	}
	if win == 0 {
		g.ZeroWindows++
	}
	g.Acks = append(g.Acks, Ack{T: t, Ack: ack, Window: ack + win})
	if !a.haveAck || ack > a.sndUna {
		a.probed = false
		a.sndUna = ack
		a.haveAck = true
		a.takeSamples(ack, s.t)
	}
	a.rwnd = ack + win
	for i := range int(s.nsack) {
		b := SACK{T: t, Left: a.unwrap(uint32(s.sack[i].Left)), Right: a.unwrap(uint32(s.sack[i].Right))}
		if i == 0 {
			b.DSACK = isDSACK(ack, b, s, a)
		}
		g.SACKs = append(g.SACKs, b)
		g.SACKBlocks++
		if b.DSACK {
			g.DSACKBlocks++
		}
	}
	// Keep unwrap's reference near the ACK, not the last SACK edge.
	a.ref = ack + int64(a.isn)
}

// isDSACK applies RFC 2883 §4 to the first block b of s: "If the first
// SACK block is below the cumulative acknowledgement" it reports
// duplicate data; otherwise it does when "the sequence space in the first
// SACK block" lies within "the sequence space in the second SACK block".
func isDSACK(ack int64, b SACK, s segment, a *analyzer) bool {
	if b.Left < ack {
		return true
	}
	if s.nsack < 2 {
		return false
	}
	// The second block is unwrapped against the first: nearby by nature.
	ref := a.ref
	l2 := a.unwrap(uint32(s.sack[1].Left))
	r2 := a.unwrap(uint32(s.sack[1].Right))
	a.ref = ref
	return l2 <= b.Left && b.Right <= r2
}

// takeSamples updates the smoothed RTT from the segments ack covers.
func (a *analyzer) takeSamples(ack int64, t int64) {
	i := 0
	var last *sample
	for ; i < len(a.flight) && a.flight[i].end <= ack; i++ {
		last = &a.flight[i]
	}
	if last != nil && !last.resent {
		r := time.Duration(t - last.t)
		// RFC 6298 §2.3: SRTT <- (1 - alpha) * SRTT + alpha * R', alpha 1/8.
		if a.srtt == 0 {
			a.srtt = r
		} else {
			a.srtt += (r - a.srtt) / 8
		}
	}
	a.flight = a.flight[i:]
}
