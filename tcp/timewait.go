package tcp

import (
	"net/netip"
	"time"
)

// TimeWait is the compact record of a connection in TIME-WAIT whose user
// has closed it: what RFC 9293 §3.10.7.4 (TIME-WAIT) and RFC 6191 need to
// answer the segments that may still arrive, and nothing else (no
// buffers, no loss-recovery or congestion state). It answers exactly as
// the Conn it was made from would have (Conn.Input in TIME-WAIT):
//
//   - a retransmitted FIN (or any other segment outside the window) gets
//     <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, and a FIN restarts the 2 MSL
//     timeout ("The only thing that can arrive in this state is a
//     retransmission of the remote FIN. Acknowledge it, and restart the
//     2 MSL timeout", RFC 9293 §3.10.7.4 first step);
//   - PAWS (RFC 7323 §5.3 R1) drops a segment with an old TSval and
//     acknowledges it;
//   - a RST at RCV.NXT closes the record; one elsewhere in the window, a
//     SYN in the window, or an ACK field outside the acceptable range gets
//     a challenge ACK, rate-limited (RFC 5961 §3.2, §4.2, §5.2, §7);
//   - AcceptsSYN says when a new SYN may reopen the 4-tuple (RFC 6191).
//
// A TimeWait is a value of 96 bytes that holds no pointer, so that a
// table of them costs no garbage-collector scanning and no allocation per
// record: the 4-tuple is kept in a fixed binary form (16-byte addresses,
// IPv4 as IPv4-mapped with a family flag, so IPv6 fits as it is), times
// as nanoseconds since the Unix epoch. The Config the Conn used is not
// kept; Input takes it. The zero TimeWait is no record (IsZero). Like a
// Conn it is not safe for concurrent use.
type TimeWait struct {
	local, remote         [16]byte // addresses, IPv4 as IPv4-mapped (twIPv6 clear)
	localPort, remotePort uint16
	// sndNxt is SND.NXT (SND.MAX of the Conn: everything sent, our FIN
	// included, is acknowledged). An ACK field is acceptable in
	// [ackLow, ackHigh] (RFC 5961 §5.2: SND.UNA - MAX.SND.WND to SND.NXT).
	sndNxt, ackLow, ackHigh Value
	rcvNxt                  Value  // RCV.NXT, past the peer's FIN
	lastAckSent             Value  // Last.ACK.sent (RFC 7323 §4.3)
	space                   uint32 // the receive space the acceptability test uses (RFC 9293 Table 6)
	tsRecent                uint32 // TS.Recent (RFC 7323 §4.3)
	tsOffset, tsLast        uint32 // our timestamp clock's offset and the highest TSval sent
	chalCount               uint32 // challenge ACKs sent since chalStart (RFC 5961 §7)
	wnd                     uint16 // the window field we advertise (already scaled)
	flags                   twFlags
	// chalStart is the start of the RFC 5961 §7 rate-limiting window and
	// deadline the end of the 2 MSL timeout, in nanoseconds since the
	// Unix epoch; chalStart is zero before the first challenge ACK.
	chalStart, deadline int64
}

// twFlags are a TimeWait's booleans.
type twFlags uint8

const (
	twTimestamps twFlags = 1 << iota // timestamps negotiated (the Conn's tsOK)
	twSACK                           // SACK negotiated
	twTSSent                         // a TSval was sent: tsLast is valid
	twClosed                         // a RST at RCV.NXT closed it
	twIPv6                           // the addresses are IPv6
)

// TimeWait returns the compact TIME-WAIT record of c, when c is in
// TIME-WAIT, its user has closed it, no unread data is left and no ACK is
// owed: from then on the record answers for it and c may be dropped. It
// reports false otherwise.
func (c *Conn) TimeWait() (TimeWait, bool) {
	if c.state != StateTimeWait || !c.userClosed || c.ackNow || !c.timer.delack.IsZero() || c.rcvBuf.Len() > 0 || c.dsackPending() {
		return TimeWait{}, false
	}
	wnd := c.offer()
	c.rcv.WND = wnd
	tw := TimeWait{
		local:       c.tuple.Local.Addr().As16(),
		remote:      c.tuple.Remote.Addr().As16(),
		localPort:   c.tuple.Local.Port(),
		remotePort:  c.tuple.Remote.Port(),
		sndNxt:      c.snd.MAX,
		ackLow:      c.snd.UNA.Add(-c.snd.maxWND),
		ackHigh:     Max(c.snd.MAX, c.probeEnd),
		rcvNxt:      c.rcv.NXT,
		lastAckSent: c.lastAckSent,
		space:       c.rcvSpace(),
		tsRecent:    c.tsRecent,
		tsOffset:    c.tsOffset,
		tsLast:      c.tsLast,
		wnd:         uint16(wnd >> c.rcv.shift),
		deadline:    c.timer.ending.UnixNano(),
	}
	if c.tuple.Local.Addr().Is6() {
		tw.flags |= twIPv6
	}
	if c.tsOK {
		tw.flags |= twTimestamps
	}
	if c.sackOK {
		tw.flags |= twSACK
	}
	if c.tsSent {
		tw.flags |= twTSSent
	}
	if c.chal != nil && !c.chal.start.IsZero() {
		tw.chalStart, tw.chalCount = c.chal.start.UnixNano(), uint32(c.chal.count)
	}
	return tw, true
}

// IsZero reports whether tw is the zero TimeWait, which no Conn makes: a
// table may so mark a free slot.
func (tw *TimeWait) IsZero() bool { return *tw == TimeWait{} }

// addr returns the address b in the record's family.
func (tw *TimeWait) addr(b *[16]byte) netip.Addr {
	a := netip.AddrFrom16(*b)
	if tw.flags&twIPv6 == 0 {
		return a.Unmap()
	}
	return a
}

// Tuple returns the record's 4-tuple.
func (tw *TimeWait) Tuple() Tuple {
	return Tuple{
		Local:  netip.AddrPortFrom(tw.addr(&tw.local), tw.localPort),
		Remote: netip.AddrPortFrom(tw.addr(&tw.remote), tw.remotePort),
	}
}

// Is reports whether t is the record's 4-tuple, without building it.
func (tw *TimeWait) Is(t Tuple) bool {
	return t.Local.Port() == tw.localPort && t.Remote.Port() == tw.remotePort &&
		t.Local.Addr().Is6() == (tw.flags&twIPv6 != 0) && t.Remote.Addr().Is6() == (tw.flags&twIPv6 != 0) &&
		t.Local.Addr().As16() == tw.local && t.Remote.Addr().As16() == tw.remote &&
		t.Local.Addr().Zone() == "" && t.Remote.Addr().Zone() == ""
}

// Deadline returns when the 2 MSL timeout ends (RFC 9293 §3.10.8
// TIME-WAIT TIMEOUT: then the record is deleted).
func (tw *TimeWait) Deadline() time.Time { return time.Unix(0, tw.deadline) }

// Expired reports whether the 2 MSL timeout has ended at now.
func (tw *TimeWait) Expired(now time.Time) bool { return now.UnixNano() >= tw.deadline }

// Done reports whether a RST closed the record: the stack deletes it.
func (tw *TimeWait) Done() bool { return tw.flags&twClosed != 0 }

// Info returns the record's 4-tuple and state (TIME-WAIT, or CLOSED once
// a RST closed it).
func (tw *TimeWait) Info() Info {
	st := StateTimeWait
	if tw.Done() {
		st = StateClosed
	}
	return Info{Tuple: tw.Tuple(), State: st}
}

// AcceptsSYN reports whether seg is a new SYN that may reopen the 4-tuple:
// with timestamps, when SEG.TSval is newer than TS.Recent; without, when
// SEG.SEQ is beyond RCV.NXT (RFC 6191 §2, as Conn.AcceptsSYN).
func (tw *TimeWait) AcceptsSYN(seg Segment) bool {
	if tw.Done() || len(seg) < HeaderLen {
		return false
	}
	f := seg.Flags()
	if !f.Has(FlagSYN) || f&(FlagACK|FlagRST) != 0 {
		return false
	}
	var o Options
	seg.Options(&o)
	if tw.flags&twTimestamps != 0 && o.Timestamp {
		return int32(o.TSVal-tw.tsRecent) > 0
	}
	return seg.Seq().GreaterThan(tw.rcvNxt)
}

// Input processes a segment for the record at now (RFC 9293 §3.10.7.4 in
// TIME-WAIT, step by step as Conn.Input) and sends the reply it calls for.
// cfg is the Config of the Conn the record was made from (its MSL,
// ChallengeACKLimit and Stats).
func (tw *TimeWait) Input(cfg *Config, now time.Time, s Segment, out Output) {
	st := cfg.Stats
	if st != nil {
		st.SegmentsIn.Add(1)
	}
	if len(s) < HeaderLen || tw.Done() {
		return
	}
	var o Options
	s.Options(&o)
	seq, flags := s.Seq(), s.Flags()
	rst := flags.Has(FlagRST)
	ts := tw.flags&twTimestamps != 0 && o.Timestamp
	// First: PAWS (RFC 7323 §5.3 R1; RSTs are exempt, §5.2), then the
	// sequence number (Table 6).
	if ts && !rst && int32(o.TSVal-tw.tsRecent) < 0 {
		if st != nil {
			st.DroppedPAWS.Add(1)
		}
		tw.sendAck(cfg, now, s, out)
		return
	}
	if !tw.acceptable(seq, s.Len()) {
		if st != nil {
			st.DroppedOutOfWindow.Add(1)
		}
		if !rst {
			tw.sendAck(cfg, now, s, out)
			// "Acknowledge it, and restart the 2 MSL timeout."
			if flags.Has(FlagFIN) {
				tw.deadline = now.Add(2 * cfg.MSL).UnixNano()
			}
		}
		return
	}
	// Second: RST (RFC 5961 §3.2). "If the RST bit is set, then enter the
	// CLOSED state, delete the TCB, and return."
	if rst {
		if seq != tw.rcvNxt {
			tw.challengeAck(cfg, now, out)
			return
		}
		if st != nil {
			st.ResetsReceived.Add(1)
		}
		tw.flags |= twClosed
		return
	}
	// Fourth: SYN (RFC 5961 §4.2): a challenge ACK.
	if flags.Has(FlagSYN) {
		tw.challengeAck(cfg, now, out)
		return
	}
	// Fifth: ACK. "if the ACK bit is off, drop the segment and return";
	// an ACK field outside the acceptable range (RFC 5961 §5.2) gets a
	// challenge ACK.
	if !flags.Has(FlagACK) {
		return
	}
	if ack := s.Ack(); ack.GreaterThan(tw.ackHigh) || ack.LessThan(tw.ackLow) {
		tw.challengeAck(cfg, now, out)
		return
	}
	// RFC 7323 §4.3 (2), as Conn.updateTSRecent.
	if ts && int32(o.TSVal-tw.tsRecent) >= 0 && seq.LessThanEq(tw.lastAckSent) {
		tw.tsRecent = o.TSVal
	}
	// Seventh and eighth: "Ignore the segment text"; the FIN was
	// processed before. Nothing is sent.
}

// acceptable is RFC 9293 Table 6 over the receive space, as
// Conn.checkSequence (the right edge included for an empty segment).
func (tw *TimeWait) acceptable(seq Value, n uint32) bool {
	nxt, wnd := tw.rcvNxt, tw.space
	switch {
	case n == 0:
		return seq == nxt.Add(wnd) || seq.InWindow(nxt, wnd)
	case wnd == 0:
		return seq == nxt
	default:
		return seq.InWindow(nxt, wnd) || seq.Add(n-1).InWindow(nxt, wnd)
	}
}

// challengeAck sends a challenge ACK, at most cfg.ChallengeACKLimit a
// second (RFC 5961 §7), as Conn.challengeAck.
func (tw *TimeWait) challengeAck(cfg *Config, now time.Time, out Output) {
	st := cfg.Stats
	if n := now.UnixNano(); tw.chalStart == 0 || n-tw.chalStart >= int64(time.Second) || n < tw.chalStart {
		tw.chalStart, tw.chalCount = n, 0
	}
	if int64(tw.chalCount) >= int64(cfg.ChallengeACKLimit) {
		if st != nil {
			st.ChallengeACKsLimited.Add(1)
		}
		return
	}
	tw.chalCount++
	if st != nil {
		st.ChallengeACKs.Add(1)
	}
	tw.sendAck(cfg, now, nil, out)
}

// sendAck sends <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> with our timestamp
// and, when the segment s being answered repeated data below RCV.NXT and
// SACK is on, the D-SACK block reporting it (RFC 2883 §4.1.1), as a Conn's
// ACK would.
func (tw *TimeWait) sendAck(cfg *Config, now time.Time, s Segment, out Output) {
	h := Header{
		SrcPort: tw.localPort, DstPort: tw.remotePort,
		Seq: tw.sndNxt, Ack: tw.rcvNxt, Flags: FlagACK, Window: tw.wnd,
	}
	var o Options
	dsack := false
	if tw.flags&twSACK != 0 && s != nil {
		if p, seq := s.Payload(), s.Seq(); len(p) > 0 && seq.LessThan(tw.rcvNxt) {
			o.SACK[0] = SACKBlock{Left: seq, Right: Min(seq.Add(uint32(len(p))), tw.rcvNxt)}
			o.NumSACK, dsack = 1, true
		}
	}
	tsOK := tw.flags&twTimestamps != 0
	if tsOK || dsack {
		o.WindowScale = -1
		if tsOK {
			o.Timestamp, o.TSVal, o.TSEcr = true, tw.tsNow(now), tw.tsRecent
		}
		h.Options = &o
	}
	tw.lastAckSent = tw.rcvNxt
	t := tw.Tuple()
	hl := h.Len()
	buf, off := out.Buffer(hl)
	seg := buf[off : off+hl]
	h.Encode(seg)
	SetChecksum(seg, t.Local.Addr(), t.Remote.Addr())
	out.Send(t, buf, off)
	if st := cfg.Stats; st != nil {
		st.SegmentsOut.Add(1)
		if dsack {
			st.DSACKsSent.Add(1)
		}
	}
}

// tsNow is our TSval clock, as Conn.tsNow: it never goes back.
func (tw *TimeWait) tsNow(now time.Time) uint32 {
	v := uint32(now.Sub(tsEpoch)/time.Millisecond) + tw.tsOffset
	if tw.flags&twTSSent != 0 && int32(v-tw.tsLast) < 0 {
		return tw.tsLast
	}
	tw.tsLast = v
	tw.flags |= twTSSent
	return v
}
