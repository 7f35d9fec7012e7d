package tcp

import (
	"io"
	"time"
)

// Write is the SEND call (RFC 9293 §3.10.2): it copies as much of p as fits
// into the send buffer (possibly nothing when it is full) and transmits what
// the windows, Nagle and silly-window avoidance allow. In SYN-SENT and
// SYN-RECEIVED the data is queued until ESTABLISHED. After CloseWrite or
// Close it returns ErrClosed ("error: connection closing"); after the
// connection failed, its error.
func (c *Conn) Write(now time.Time, p []byte, out Output) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.shutWrite || c.userClosed {
		return 0, ErrClosed
	}
	switch c.state {
	case StateSynSent, StateSynReceived, StateEstablished, StateCloseWait:
	default:
		return 0, ErrClosed
	}
	n := c.sndBuf.Write(p)
	if c.state == StateEstablished || c.state == StateCloseWait {
		c.flush(now, out)
	}
	return n, nil
}

// Read is the RECEIVE call (RFC 9293 §3.10.3): it copies received data
// into p. It returns (0, nil) when nothing has arrived yet, (0, io.EOF)
// once the peer's FIN is reached, and the connection's error after a reset
// or timeout. When reading opens the window by at least
// min(RCV.BUFF/2, MSS) a window update is sent (receiver silly-window
// avoidance, RFC 9293 §3.8.6.2.2).
func (c *Conn) Read(now time.Time, p []byte, out Output) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n := c.rcvBuf.Read(p)
	if c.ooo().Len() == 0 {
		c.rcvBuf.release()
	}
	if n > 0 {
		c.tuneReceiveBuffer(now, n)
		if c.state.synchronized() && c.state != StateTimeWait && !c.rcvFin && c.windowUpdateDue() {
			c.windowUpdate(now, out)
		}
		return n, nil
	}
	if c.rcvFin {
		return 0, io.EOF
	}
	if c.userClosed || c.state == StateClosed {
		return 0, ErrClosed
	}
	return 0, nil
}

// windowUpdate tells the peer of the window a read opened, at once unless
// an ACK is already owed on the delayed-ACK timer for data that arrived in
// order and the peer's window still takes two full-sized segments: then
// the update joins that ACK (RFC 9293 §3.8.6.3), which a segment of ours
// sent meanwhile carries. A server that reads a small request and answers
// it so sends its answer with the ACK and the window, instead of a bare
// ACK before it (the first read after the handshake always opens the
// window: a SYN offers at most 65535 bytes, RFC 7323 §2.2). A peer that
// may be waiting for the window (it took most of it) gets it at once.
func (c *Conn) windowUpdate(now time.Time, out Output) {
	if c.unackedBytes > 0 && !c.timer.delack.IsZero() && c.ooo().Len() == 0 && c.rcv.WND >= uint32(2*c.rcvMSS) {
		return
	}
	c.ackNow = true
	c.flush(now, out)
}

// CloseWrite is a half close, the CLOSE call of RFC 9293 §3.10.4 with
// reading still allowed: a FIN follows the queued data. ESTABLISHED enters
// FIN-WAIT-1 ("Queue this until all preceding SENDs have been segmentized,
// then form a FIN segment and send it. In any case, enter FIN-WAIT-1
// state") and CLOSE-WAIT enters LAST-ACK. In SYN-SENT and SYN-RECEIVED the
// FIN waits for ESTABLISHED.
func (c *Conn) CloseWrite(now time.Time, out Output) {
	if c.shutWrite {
		return
	}
	switch c.state {
	case StateSynSent, StateSynReceived:
		c.shutWrite = true
	case StateEstablished:
		c.shutWrite = true
		c.setState(now, StateFinWait1)
		c.flush(now, out)
	case StateCloseWait:
		c.shutWrite = true
		c.setState(now, StateLastAck)
		c.flush(now, out)
	}
}

// Close is the CLOSE call of RFC 9293 §3.10.4 after which the user neither
// reads nor writes: the connection is orphaned and finishes on its own.
// If received data remains unread it aborts instead, with a RST (RFC 9293
// §3.6, RFC 1122 §4.2.2.13). In SYN-SENT the TCB is deleted.
func (c *Conn) Close(now time.Time, out Output) {
	if c.userClosed {
		return
	}
	if c.rcvBuf.Len() > 0 {
		switch c.state {
		case StateSynReceived, StateEstablished, StateFinWait1, StateFinWait2, StateCloseWait:
			c.abort(now, out, nil)
			return
		}
		// CLOSING, LAST-ACK, TIME-WAIT: both FINs are out; the data is
		// dropped and the connection finishes normally.
		c.rcvBuf.Discard(c.rcvBuf.Len())
	}
	c.userClosed = true
	switch c.state {
	case StateSynSent:
		// "Delete the TCB and return "error: closing" responses to any
		// queued SENDs, or RECEIVEs."
		c.fail(now, nil)
	case StateFinWait2:
		c.timer.ending = now.Add(c.cfg.FinWait2Timeout)
	default:
		c.CloseWrite(now, out)
	}
}

// Abort is the ABORT call (RFC 9293 §3.10.5), SetLinger(0) then Close: in
// SYN-RECEIVED, ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2 and CLOSE-WAIT "Send a
// reset segment: <SEQ=SND.NXT><CTL=RST>"; in every state flush the queues
// and enter CLOSED.
func (c *Conn) Abort(now time.Time, out Output) { c.abort(now, out, nil) }

func (c *Conn) abort(now time.Time, out Output, err error) {
	c.userClosed = true
	c.abortPending = false
	switch c.state {
	case StateSynReceived, StateEstablished, StateFinWait1, StateFinWait2, StateCloseWait:
		c.sendRST(out)
	}
	c.rcvBuf.Discard(c.rcvBuf.Len())
	c.fail(now, err)
}

// Readable reports whether Read would return data, EOF or an error now.
func (c *Conn) Readable() bool {
	return c.rcvBuf.Len() > 0 || c.rcvFin || c.err != nil || c.state == StateClosed || c.userClosed
}

// Writable reports whether Write would accept at least one byte now or
// return an error.
func (c *Conn) Writable() bool {
	if c.err != nil || c.shutWrite || c.userClosed {
		return true
	}
	switch c.state {
	case StateSynSent, StateSynReceived, StateEstablished, StateCloseWait:
		return c.sndBuf.Free() > 0
	}
	return true
}
