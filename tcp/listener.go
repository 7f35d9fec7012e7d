package tcp

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// Listener is a passive OPEN (RFC 9293 §3.10.1, LISTEN state) on a local
// address and port. It creates a Conn for every acceptable SYN and holds
// established connections on an accept queue until Accept. The SYN queue
// (connections in SYN-RECEIVED) and the accept queue together hold at most
// backlog connections.
//
// A Listener is not safe for concurrent use; the stack serializes calls
// with one mutex per Listener.
type Listener struct {
	cfg     *Config
	local   netip.AddrPort
	backlog int
	// synQueue counts connections created by this listener that have not
	// been promoted or died yet. Conns decrement it themselves, under their
	// own lock, hence the atomic.
	synQueue atomic.Int32
	accept   []*Conn
	closed   bool
}

// NewListener returns a listener for local with the given backlog
// (at least 1).
func NewListener(cfg *Config, local netip.AddrPort, backlog int) *Listener {
	return &Listener{cfg: cfg, local: local, backlog: max(backlog, 1)}
}

// Addr returns the local address and port the listener listens on.
func (l *Listener) Addr() netip.AddrPort { return l.local }

// Input handles a segment addressed to the listening socket with no
// existing connection (RFC 9293 §3.10.7.2, LISTEN state). t is from our
// side (Local is the segment's destination). A SYN creates a Conn in
// SYN-RECEIVED, which sends its SYN,ACK and is returned so that the caller
// adds it to its 4-tuple table; every other outcome returns nil.
func (l *Listener) Input(now time.Time, t Tuple, seg Segment, iss Value, mss uint16, out Output) *Conn {
	st := l.cfg.Stats
	if st != nil {
		st.SegmentsIn.Add(1)
	}
	if len(seg) < HeaderLen {
		return nil
	}
	f := seg.Flags()
	// "First, check for a RST: ... An incoming RST should be ignored."
	if f.Has(FlagRST) {
		return nil
	}
	// "Second, check for an ACK: Any acknowledgment is bad if it arrives on
	// a connection still in the LISTEN state. An acceptable reset segment
	// should be formed for any arriving ACK-bearing segment ...
	// <SEQ=SEG.ACK><CTL=RST>"
	if f.Has(FlagACK) {
		Reset(t, seg, out)
		if st != nil {
			st.ResetsSent.Add(1)
		}
		return nil
	}
	// "Fourth, other data or control: ... Drop the segment and return."
	if !f.Has(FlagSYN) || l.closed {
		return nil
	}
	// "Third, check for a SYN": security is not checked (no IP security
	// options). The backlog bounds the SYN and accept queues together.
	if int(l.synQueue.Load())+len(l.accept) >= l.backlog {
		if st != nil {
			st.ListenOverflows.Add(1)
		}
		return nil
	}
	c := newConn(l.cfg, t, iss, mss, now)
	c.passive = true
	c.listener = l
	c.inSynQueue = true
	l.synQueue.Add(1)
	if st != nil {
		st.PassiveOpens.Add(1)
	}
	c.synReceived(now, seg, out)
	return c
}

// Promote moves c, a connection created by l that completed its handshake,
// onto the accept queue. The stack calls it after Conn.Input when
// c.Established() && c.Listener() == l && !c.Accepted(), holding both the
// Listener's and c's locks. A connection promoted after Close is reset
// instead (at its next Tick, which is due at once).
func (l *Listener) Promote(c *Conn) {
	if c.listener != l || c.accepted {
		return
	}
	c.accepted = true
	c.leaveSynQueue()
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

// Pending returns the numbers of connections in the SYN queue and in the
// accept queue.
func (l *Listener) Pending() (syn, accept int) { return int(l.synQueue.Load()), len(l.accept) }

// Close stops listening (RFC 9293 §3.10.4, LISTEN: "Delete TCB, enter
// CLOSED state"). Connections on the accept queue are aborted with a RST
// (they remain in the stack's table until Done); the caller must hold
// their locks or otherwise keep them from concurrent use. Connections
// still in SYN-RECEIVED are aborted when Promote is called for them.
func (l *Listener) Close(now time.Time, out Output) {
	l.closed = true
	for _, c := range l.accept {
		c.abort(now, out, ErrConnectionAborted)
	}
	l.accept = nil
}

// Closed reports whether Close was called.
func (l *Listener) Closed() bool { return l.closed }
