package tcp

import (
	"net/netip"
	"time"
)

// Listener is a passive OPEN (RFC 9293 §3.10.1, LISTEN state) on a local
// address and port. It answers SYNs itself: each gets a small half-open
// entry in the listener's SYN queue (synqueue.go) or, when the queue is
// full or cookies are forced, a SYN cookie (RFC 4987 §3.6, syncookie.go)
// and no state at all. The listener retransmits SYN-ACKs on its own timer
// (Tick). Only the final ACK of a handshake creates a Conn, which goes
// onto the accept queue (at most backlog connections) until Accept.
//
// A Listener is not safe for concurrent use; the stack serializes calls
// with one mutex per Listener.
type Listener struct {
	cfg      *Config
	local    netip.AddrPort
	backlog  int
	synLimit int
	cookies  SYNCookieMode
	q        synQueue
	accept   []*Conn
	closed   bool

	lastCookie time.Time   // when a cookie was last sent
	rst        tokenBucket // RSTs and challenge ACKs for stray segments
	st         ListenerStats
	opts       Options // scratch: options of a segment in or out
}

// ListenerStats are one listener's counters (see the fields of the same
// names in Stats) and its queue lengths.
type ListenerStats struct {
	SYNsReceived          uint64
	SYNQueueDrops         uint64
	SYNQueueOldestDropped uint64
	SYNQueueTimeouts      uint64
	SYNACKRetransmits     uint64
	SYNCookiesSent        uint64
	SYNCookiesAccepted    uint64
	SYNCookiesRejected    uint64
	// ListenOverflows counts SYNs and final ACKs dropped because the
	// accept queue was full.
	ListenOverflows   uint64
	ResetsSent        uint64
	ResetsRateLimited uint64
	// HalfOpen and AcceptQueue are the lengths of the SYN queue and the
	// accept queue now.
	HalfOpen, AcceptQueue int
}

// NewListener returns a listener for local with the given backlog
// (at least 1): the accept queue holds at most backlog connections and
// the SYN queue at most backlog half-open entries (Linux's
// min(backlog, somaxconn, tcp_max_syn_backlog) with the stack's
// Config.MaxHalfOpen shared by every listener). Cookies follow
// cfg.SYNCookies until SetSYNCookies.
func NewListener(cfg *Config, local netip.AddrPort, backlog int) *Listener {
	b := max(backlog, 1)
	return &Listener{cfg: cfg, local: local, backlog: b, synLimit: b, cookies: cfg.SYNCookies}
}

// Backlog returns the most connections the accept queue holds.
func (l *Listener) Backlog() int { return l.backlog }

// Addr returns the local address and port the listener listens on.
func (l *Listener) Addr() netip.AddrPort { return l.local }

// SetSYNCookies sets when this listener sends SYN cookies.
func (l *Listener) SetSYNCookies(m SYNCookieMode) { l.cookies = m }

// SYNCookies returns the listener's SYN cookie mode.
func (l *Listener) SYNCookies() SYNCookieMode { return l.cookies }

// Stats returns a snapshot of the listener's counters.
func (l *Listener) Stats() ListenerStats {
	s := l.st
	s.HalfOpen, s.AcceptQueue = l.q.len(), len(l.accept)
	return s
}

// Input handles a segment addressed to the listening socket with no
// connection in the caller's table (RFC 9293 §3.10.7.2, LISTEN state,
// and §3.10.7.4 for a half-open entry in SYN-RECEIVED). t is from our
// side (Local is the segment's destination); iss is the ISN for a new
// entry (unused unless seg is a SYN); mss is our MSS. It returns the
// Conn that the segment, the final ACK of a handshake, created (already
// on the accept queue), for the caller to add to its 4-tuple table;
// every other outcome returns nil.
func (l *Listener) Input(now time.Time, t Tuple, seg Segment, iss Value, mss uint16, out Output) *Conn {
	st := l.cfg.Stats
	if st != nil {
		st.SegmentsIn.Add(1)
	}
	if len(seg) < HeaderLen {
		return nil
	}
	if e := l.q.find(t); e != nil {
		return l.inputHalfOpen(now, e, seg, iss, mss, out)
	}
	f := seg.Flags()
	// "First, check for a RST: ... An incoming RST should be ignored."
	if f.Has(FlagRST) {
		return nil
	}
	// "Second, check for an ACK: Any acknowledgment is bad if it arrives on
	// a connection still in the LISTEN state. An acceptable reset segment
	// should be formed for any arriving ACK-bearing segment ...
	// <SEQ=SEG.ACK><CTL=RST>". An ACK may carry one of our SYN cookies
	// (RFC 4987 §3.6) back, which stands for the state we did not keep.
	if f.Has(FlagACK) {
		if !f.Has(FlagSYN) {
			if c, done := l.cookieACK(now, t, seg, mss, out); done {
				return c
			}
		}
		l.resetLimited(now, t, seg, out)
		return nil
	}
	// "Fourth, other data or control: ... Drop the segment and return."
	if !f.Has(FlagSYN) || l.closed {
		return nil
	}
	l.inputSYN(now, t, seg, iss, mss, out)
	return nil
}

// inputSYN is the third step of RFC 9293 §3.10.7.2, "check for a SYN"
// (security is not checked: no IP security options): "Set RCV.NXT to
// SEG.SEQ+1, IRS is set to SEG.SEQ ... ISS should be selected and a SYN
// segment sent of the form: <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>". The
// state goes into a half-open entry, or into a cookie ISS.
func (l *Listener) inputSYN(now time.Time, t Tuple, seg Segment, iss Value, mss uint16, out Output) {
	st := l.cfg.Stats
	l.st.SYNsReceived++
	if st != nil {
		st.SYNsReceived.Add(1)
	}
	// A full accept queue drops the SYN, as Linux's tcp_conn_request
	// does: a handshake now could not complete anyway.
	if len(l.accept) >= l.backlog {
		l.st.ListenOverflows++
		if st != nil {
			st.ListenOverflows.Add(1)
		}
		return
	}
	p := l.params(now, t, seg, mss)
	full := l.q.len() >= l.synLimit ||
		(st != nil && l.cfg.MaxHalfOpen > 0 && st.HalfOpen.Load() >= int64(l.cfg.MaxHalfOpen))
	cookies := l.cfg.SYNCookieHash != nil && (l.cookies == SYNCookiesAlways || l.cookies == SYNCookiesWhenFull && full)
	if cookies {
		p.iss = makeCookie(l.cfg.SYNCookieHash, t, now, p.irs, p.peerMSSOrDefault())
		if p.ts {
			ws := int8(-1)
			if l.cfg.WindowScale && p.peerWS >= 0 {
				ws = p.peerWS
			}
			p.tsLast = cookieTSval(p.tsLast, ws, p.sack)
		}
		l.lastCookie = now
		l.st.SYNCookiesSent++
		if st != nil {
			st.SYNCookiesSent.Add(1)
		}
		l.sendSynAck(&p, out)
		return
	}
	if full {
		if l.q.oldest == nil {
			// The stack's bound is reached by other listeners' entries.
			l.st.SYNQueueDrops++
			if st != nil {
				st.SYNQueueDrops.Add(1)
			}
			return
		}
		l.st.SYNQueueOldestDropped++
		if st != nil {
			st.SYNQueueOldestDropped.Add(1)
		}
		l.drop(l.q.oldest)
	}
	e := l.q.get()
	e.synParams = p
	e.iss = iss
	e.created, e.sentAt, e.lastSent = now, now, now
	e.rto = l.cfg.InitialRTO
	e.deadline = now.Add(e.rto)
	l.q.add(e)
	if st != nil {
		st.HalfOpen.Add(1)
	}
	l.sendSynAck(&e.synParams, out)
}

// params records the SYN's options and the SYN-ACK's (RFC 9293 §3.7.1
// MSS, RFC 7323 §2.2 and §3.2, RFC 2018 §2: an option is in use only if
// the SYN carried it and we are configured to send it).
func (l *Listener) params(now time.Time, t Tuple, seg Segment, mss uint16) synParams {
	o := &l.opts
	seg.Options(o)
	p := synParams{
		tuple: t, irs: seg.Seq(), synWnd: seg.Window(),
		mss: max(mss, 64), peerMSS: o.MSS, peerWS: -1,
		sack: l.cfg.SACKPermitted && o.SACKPermitted,
		ts:   l.cfg.Timestamps && o.Timestamp,
	}
	if o.WindowScale >= 0 {
		p.peerWS = o.WindowScale
	}
	p.rcvWnd, p.ourWS = synWindow(l.cfg)
	if p.ts {
		p.tsRecent = o.TSVal
		p.tsLast = l.tsClock(t, now)
	}
	return p
}

// peerMSSOrDefault is the MSS the peer can receive: its option, or
// RFC 9293 §3.7.1's default.
func (p *synParams) peerMSSOrDefault() uint16 {
	if p.peerMSS == 0 {
		return defaultMSS
	}
	return p.peerMSS
}

// tsClock is the TSval clock of connections on t (Conn.tsNow without a
// connection): milliseconds since tsEpoch plus the 4-tuple's offset
// (RFC 7323 §5.4).
func (l *Listener) tsClock(t Tuple, now time.Time) uint32 {
	v := uint32(now.Sub(tsEpoch) / time.Millisecond)
	if l.cfg.TimestampOffset != nil {
		v += l.cfg.TimestampOffset(t)
	}
	return v
}

// synWindow returns the window a SYN-ACK offers (RFC 7323 §2.2: never
// scaled) and the window scale it offers, as a new Conn computes them
// (newConn, initTune): the shift that lets the largest receive buffer
// auto-tuning may reach be advertised.
func synWindow(cfg *Config) (uint16, uint8) {
	size := max(cfg.ReceiveBufferSize, 1)
	limit := max(size, cfg.MaxReceiveBufferSize)
	var shift uint8
	for shift < 14 && limit>>shift > 0xffff {
		shift++
	}
	return uint16(min(size, 0xffff)), shift
}

// sendSynAck sends <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> with the options
// p records.
func (l *Listener) sendSynAck(p *synParams, out Output) {
	o := &l.opts
	*o = Options{MSS: p.mss, WindowScale: -1, SACKPermitted: p.sack}
	if l.cfg.WindowScale && p.peerWS >= 0 {
		o.WindowScale = int8(p.ourWS)
	}
	if p.ts {
		o.Timestamp, o.TSVal, o.TSEcr = true, p.tsLast, p.tsRecent
	}
	h := Header{
		SrcPort: p.tuple.Local.Port(), DstPort: p.tuple.Remote.Port(),
		Seq: p.iss, Ack: p.irs.Add(1), Flags: FlagSYN | FlagACK, Window: p.rcvWnd, Options: o,
	}
	l.write(p.tuple, &h, out)
}

// write encodes and sends a header-only segment.
func (l *Listener) write(t Tuple, h *Header, out Output) {
	n := h.Len()
	buf, off := out.Buffer(n)
	b := buf[off : off+n]
	h.Encode(b)
	SetChecksum(b, t.Local.Addr(), t.Remote.Addr())
	out.Send(t, buf, off)
	if l.cfg.Stats != nil {
		l.cfg.Stats.SegmentsOut.Add(1)
	}
}

// resetLimited answers a stray segment with Reset, at most
// InvalidRSTLimit a second.
func (l *Listener) resetLimited(now time.Time, t Tuple, seg Segment, out Output) {
	st := l.cfg.Stats
	if !l.rst.allow(now, l.cfg.InvalidRSTLimit) {
		l.st.ResetsRateLimited++
		if st != nil {
			st.ResetsRateLimited.Add(1)
		}
		return
	}
	Reset(t, seg, out)
	l.st.ResetsSent++
	if st != nil {
		st.ResetsSent.Add(1)
	}
}

// drop removes a half-open entry.
func (l *Listener) drop(e *halfOpen) {
	l.q.remove(e, l.synLimit)
	if st := l.cfg.Stats; st != nil {
		st.HalfOpen.Add(-1)
	}
}

// Promote moves c, a connection created by l that completed its handshake,
// onto the accept queue. The listener does it itself for the connections
// its Input creates; a stack calls it for others (none today) after
// Conn.Input when c.Established() && c.Listener() == l && !c.Accepted().
// A connection promoted after Close is reset instead (at its next Tick,
// which is due at once).
func (l *Listener) Promote(c *Conn) {
	if c.listener != l || c.accepted {
		return
	}
	c.accepted = true
	if l.closed {
		// No Output here: make the reset due at the conn's next Tick.
		c.abortPending = true
		c.timer.delack = c.lastInput
		return
	}
	l.accept = append(l.accept, c)
}

// Accept pops the oldest connection of the accept queue, or returns nil if
// there is none. The connection may have been reset since it was queued;
// its Err tells.
func (l *Listener) Accept() *Conn {
	if len(l.accept) == 0 {
		return nil
	}
	c := l.accept[0]
	l.accept[0] = nil
	l.accept = l.accept[1:]
	if len(l.accept) == 0 {
		l.accept = nil
	}
	return c
}

// AcceptReady reports whether Accept would return a connection.
func (l *Listener) AcceptReady() bool { return len(l.accept) > 0 }

// Pending returns the numbers of half-open entries in the SYN queue and
// of connections in the accept queue.
func (l *Listener) Pending() (syn, accept int) { return l.q.len(), len(l.accept) }

// Close stops listening (RFC 9293 §3.10.4, LISTEN: "Delete TCB, enter
// CLOSED state"). Half-open entries are forgotten; connections on the
// accept queue are aborted with a RST (they remain in the stack's table
// until Done); the caller must hold their locks or otherwise keep them
// from concurrent use.
func (l *Listener) Close(now time.Time, out Output) {
	l.closed = true
	for l.q.oldest != nil {
		l.drop(l.q.oldest)
	}
	l.q.free = nil
	for _, c := range l.accept {
		c.abort(now, out, ErrConnectionAborted)
	}
	l.accept = nil
}

// Closed reports whether Close was called.
func (l *Listener) Closed() bool { return l.closed }

// tokenBucket limits a rate to n a second with a burst of n: it holds up
// to a second of credit, and each event costs 1/n s of it.
type tokenBucket struct {
	last   time.Time
	credit time.Duration
}

// allow reports whether an event at now fits the rate n a second (n <= 0
// allows everything), and takes its cost.
func (b *tokenBucket) allow(now time.Time, n int) bool {
	if n <= 0 {
		return true
	}
	if b.last.IsZero() {
		b.credit = time.Second
	} else if d := now.Sub(b.last); d > 0 {
		b.credit = min(b.credit+d, time.Second)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
	cost := time.Second / time.Duration(n)
	if b.credit < cost {
		return false
	}
	b.credit -= cost
	return true
}
