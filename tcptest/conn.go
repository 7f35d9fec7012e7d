package tcptest

import (
	"time"

	"github.com/ustack/ustack/tcp"
)

// Conn is a connection of a Stack: every method calls the core at the
// stack's virtual time with the stack's Output, then lets the stack do its
// bookkeeping (accept queues, table).
type Conn struct {
	s *Stack
	c *tcp.Conn
}

// TCP returns the core's connection, for inspection (State, Info, Err...).
func (c *Conn) TCP() *tcp.Conn { return c.c }

// State returns the connection's RFC 9293 state.
func (c *Conn) State() tcp.State { return c.c.State() }

// Tuple returns the connection's 4-tuple, from the stack's side.
func (c *Conn) Tuple() tcp.Tuple { return c.c.Tuple() }

// Read is the RECEIVE call (tcp.Conn.Read): (0, nil) when nothing has
// arrived, (0, io.EOF) after the peer's FIN.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.c.Read(c.s.now, p, &c.s.out)
	c.s.settle()
	return n, err
}

// Write is the SEND call (tcp.Conn.Write): it queues what fits in the send
// buffer and transmits what the windows allow.
func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.c.Write(c.s.now, p, &c.s.out)
	c.s.settle()
	return n, err
}

// CloseWrite is a half close: a FIN follows the queued data.
func (c *Conn) CloseWrite() {
	c.c.CloseWrite(c.s.now, &c.s.out)
	c.s.settle()
}

// Close is the CLOSE call after which the user neither reads nor writes.
func (c *Conn) Close() {
	c.c.Close(c.s.now, &c.s.out)
	c.s.settle()
}

// Abort is the ABORT call: a RST and CLOSED.
func (c *Conn) Abort() {
	c.c.Abort(c.s.now, &c.s.out)
	c.s.settle()
}

// SetCongestionControl switches the connection's congestion controller.
func (c *Conn) SetCongestionControl(name string) error { return c.c.SetCongestionControl(name) }

// SetNoDelay turns the Nagle algorithm off (true) or on.
func (c *Conn) SetNoDelay(on bool) { c.c.SetNoDelay(on) }

// SetKeepAlive turns keepalive probes on or off.
func (c *Conn) SetKeepAlive(on bool) {
	c.c.SetKeepAlive(on)
	c.s.settle()
}

// SetKeepAliveParams sets the keepalive idle time, interval and count.
func (c *Conn) SetKeepAliveParams(idle, interval time.Duration, count int) {
	c.c.SetKeepAliveParams(idle, interval, count)
	c.s.settle()
}

// Listener is a listener of a Stack.
type Listener struct {
	s    *Stack
	l    *tcp.Listener
	mss  uint16
	port uint16
}

// TCP returns the core's listener.
func (l *Listener) TCP() *tcp.Listener { return l.l }

// Port returns the port the listener listens on.
func (l *Listener) Port() uint16 { return l.port }

// Accept returns the oldest established connection of the accept queue, or
// nil if there is none.
func (l *Listener) Accept() *Conn {
	c := l.l.Accept()
	if c == nil {
		return nil
	}
	return &Conn{s: l.s, c: c}
}

// SetMSS sets the MSS the connections created from now on advertise.
func (l *Listener) SetMSS(mss uint16) { l.mss = mss }

// AcceptReady reports whether Accept would return a connection.
func (l *Listener) AcceptReady() bool { return l.l.AcceptReady() }

// Close stops listening: the port is free again and connections not yet
// accepted are reset (tcp.Listener.Close).
func (l *Listener) Close() {
	if l.s.listeners[l.port] == l {
		delete(l.s.listeners, l.port)
	}
	l.s.demux.Unlisten(l.l.Addr(), (*demuxListener)(l))
	l.l.Close(l.s.now, &l.s.out)
	l.s.settle()
}
