package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ustack/ustack/tcp"
)

// TCPConn is a TCP connection of a Stack. It implements net.Conn, and its
// methods are safe for concurrent use by several goroutines. A TCPConn
// comes from DialTCP or Accept; the methods of a zero or nil one return
// syscall.EINVAL, as package net's do.
type TCPConn struct {
	ep *tcpEndpoint
	// closed is set by Close, which then wakes Read and Write through the
	// endpoint's channels; they check it under ep.mu before waiting.
	closed atomic.Bool

	readMu  sync.Mutex // serializes Reads, so that each gets contiguous bytes
	writeMu sync.Mutex // serializes Writes, so that each one's bytes stay together

	rd, wd lazyDeadline

	readShut atomic.Bool // CloseRead was called
	linger0  atomic.Bool // SetLinger(0): Close aborts with a RST
	_        [0]func()   // not comparable
}

func newTCPConn(ep *tcpEndpoint) *TCPConn {
	return &TCPConn{ep: ep}
}

// tuple is the connection's 4-tuple. The core fixed it when it made the
// connection and never writes it again, so it is read without the lock;
// a TCPConn keeps no copy of it (64 bytes an idle connection would carry).
func (c *TCPConn) tuple() tcp.Tuple { return c.ep.c.Tuple() }

// ok reports whether c came from Dial or Accept; the methods of a nil or
// zero TCPConn return syscall.EINVAL, as package net's do.
func (c *TCPConn) ok() bool { return c != nil && c.ep != nil }

// opError wraps err the way the net package does, so that errors.Is
// checks written for the kernel (syscall.ECONNRESET, os.ErrDeadlineExceeded,
// net.ErrClosed) work unchanged.
func (c *TCPConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: mapError(op, err)}
}

// mapError turns the core's errors into the errnos the kernel reports.
func mapError(op string, err error) error {
	var errno syscall.Errno
	switch {
	case errors.Is(err, tcp.ErrConnectionRefused):
		errno = syscall.ECONNREFUSED
	case errors.Is(err, tcp.ErrConnectionReset):
		errno = syscall.ECONNRESET
	case errors.Is(err, tcp.ErrTimeout):
		errno = syscall.ETIMEDOUT
	case errors.Is(err, tcp.ErrConnectionAborted):
		errno = syscall.ECONNABORTED
	// ICMP errors (RFC 1122 §4.2.3.9), with Linux's icmp_err_convert
	// errnos.
	case errors.Is(err, tcp.ErrNetUnreachable):
		errno = syscall.ENETUNREACH
	case errors.Is(err, tcp.ErrHostUnreachable):
		errno = syscall.EHOSTUNREACH
	case errors.Is(err, tcp.ErrProtocolUnreachable):
		errno = syscall.ENOPROTOOPT
	case errors.Is(err, tcp.ErrSourceRouteFailed):
		errno = syscall.EOPNOTSUPP
	case errors.Is(err, tcp.ErrProtocolError):
		errno = syscall.EPROTO
	case errors.Is(err, tcp.ErrClosed):
		if op == "write" {
			errno = syscall.EPIPE
		} else {
			return net.ErrClosed
		}
	default:
		return err
	}
	return os.NewSyscallError(op, errno)
}

// Read reads data from the connection. It returns io.EOF after the peer's
// FIN, and honours the read deadline as package net does: once it has
// passed, Read returns a timeout even when data is buffered (a zero-length
// Read returns 0, nil first).
func (c *TCPConn) Read(b []byte) (int, error) {
	if !c.ok() {
		return 0, syscall.EINVAL
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	ep := c.ep
	for {
		if c.closed.Load() {
			return 0, c.opError("read", net.ErrClosed)
		}
		if c.readShut.Load() {
			return 0, io.EOF
		}
		if len(b) == 0 {
			return 0, nil
		}
		// internal/poll's FD.Read checks the deadline (prepareRead)
		// before it reads anything.
		if c.rd.passed() {
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
		ep.lock()
		n, err := ep.c.Read(ep.s.clock.Now(), b, &ep.out)
		ep.afterLocked()
		var readable chan struct{}
		closed := c.closed.Load()
		if n == 0 && err == nil && !closed {
			readable = ep.readChan() // about to wait: made under mu
		}
		ep.release()
		if n > 0 {
			return n, nil
		}
		if err == io.EOF {
			return 0, io.EOF
		}
		if err != nil {
			return 0, c.opError("read", err)
		}
		if closed {
			continue
		}
		select {
		case <-readable:
		case <-c.rd.wait():
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
	}
}

// Write writes b to the connection, blocking while the send buffer is
// full. It honours the write deadline as package net does: once it has
// passed, Write queues nothing and returns 0 and a timeout (even for an
// empty b); a deadline that passes while it waits returns the bytes
// already queued in n.
func (c *TCPConn) Write(b []byte) (int, error) {
	if !c.ok() {
		return 0, syscall.EINVAL
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	ep := c.ep
	written := 0
	for {
		if c.closed.Load() {
			return written, c.opError("write", net.ErrClosed)
		}
		// internal/poll's FD.Write checks the deadline (prepareWrite)
		// before it writes anything, and again each time it waits.
		if c.wd.passed() {
			return written, c.opError("write", os.ErrDeadlineExceeded)
		}
		ep.lock()
		n, err := ep.c.Write(ep.s.clock.Now(), b[written:], &ep.out)
		ep.afterLocked()
		var writable chan struct{}
		closed := c.closed.Load()
		if n == 0 && err == nil && !closed && written+n < len(b) {
			writable = ep.writeChan() // about to wait: made under mu
		}
		ep.release()
		written += n
		if err != nil {
			return written, c.opError("write", err)
		}
		if written == len(b) {
			return written, nil
		}
		if n > 0 || closed {
			continue
		}
		select {
		case <-writable:
		case <-c.wd.wait():
			return written, c.opError("write", os.ErrDeadlineExceeded)
		}
	}
}

// Close closes the connection: queued data is still sent, followed by a
// FIN (or a RST after SetLinger(0), or when received data was left
// unread). Blocked Reads and Writes return net.ErrClosed.
func (c *TCPConn) Close() error {
	if !c.ok() {
		return syscall.EINVAL
	}
	if !c.closed.CompareAndSwap(false, true) {
		return c.opError("close", net.ErrClosed)
	}
	ep := c.ep
	ep.lock()
	now := ep.s.clock.Now()
	if c.linger0.Load() {
		ep.c.Abort(now, &ep.out)
	} else {
		ep.c.Close(now, &ep.out)
	}
	ep.afterLocked()
	// Blocked Reads and Writes wake up and find closed set.
	signal(ep.readable)
	signal(ep.writable)
	ep.release()
	c.rd.set(ep.s.clock, time.Time{})
	c.wd.set(ep.s.clock, time.Time{})
	return nil
}

// CloseWrite shuts down the writing side: a FIN follows the queued data
// (a half-close, RFC 9293 §3.6). Reads continue to work.
func (c *TCPConn) CloseWrite() error {
	if !c.ok() {
		return syscall.EINVAL
	}
	if c.closed.Load() {
		return c.opError("close", net.ErrClosed)
	}
	ep := c.ep
	ep.lock()
	ep.c.CloseWrite(ep.s.clock.Now(), &ep.out)
	ep.afterLocked()
	ep.release()
	return nil
}

// CloseRead shuts down the reading side: further Reads return io.EOF.
func (c *TCPConn) CloseRead() error {
	if !c.ok() {
		return syscall.EINVAL
	}
	if c.closed.Load() {
		return c.opError("close", net.ErrClosed)
	}
	c.readShut.Store(true)
	c.ep.lock()
	signal(c.ep.readChan()) // made here if no Read waits yet: one that is about to wait sees it
	c.ep.release()
	return nil
}

// LocalAddr returns the local address as a *net.TCPAddr (nil for a
// TCPConn not from Dial or Accept).
func (c *TCPConn) LocalAddr() net.Addr {
	if !c.ok() {
		return nil
	}
	return net.TCPAddrFromAddrPort(c.tuple().Local)
}

// RemoteAddr returns the remote address as a *net.TCPAddr (nil for a
// TCPConn not from Dial or Accept).
func (c *TCPConn) RemoteAddr() net.Addr {
	if !c.ok() {
		return nil
	}
	return net.TCPAddrFromAddrPort(c.tuple().Remote)
}

// SetDeadline sets the read and write deadlines.
func (c *TCPConn) SetDeadline(t time.Time) error {
	if !c.ok() {
		return syscall.EINVAL
	}
	c.rd.set(c.ep.s.clock, t)
	c.wd.set(c.ep.s.clock, t)
	return nil
}

// SetReadDeadline sets the deadline for Reads; the zero time clears it.
func (c *TCPConn) SetReadDeadline(t time.Time) error {
	if !c.ok() {
		return syscall.EINVAL
	}
	c.rd.set(c.ep.s.clock, t)
	return nil
}

// SetWriteDeadline sets the deadline for Writes; the zero time clears it.
func (c *TCPConn) SetWriteDeadline(t time.Time) error {
	if !c.ok() {
		return syscall.EINVAL
	}
	c.wd.set(c.ep.s.clock, t)
	return nil
}

// SetNoDelay turns the Nagle algorithm off (true) or on (false, the
// default), as net.TCPConn.SetNoDelay does.
func (c *TCPConn) SetNoDelay(noDelay bool) error {
	if !c.ok() {
		return syscall.EINVAL
	}
	c.ep.lock()
	c.ep.c.SetNoDelay(noDelay)
	c.ep.release()
	return nil
}

// SetCongestionControl switches the connection's congestion controller:
// "cubic" (RFC 9438 with HyStart++, the default) or "reno" (NewReno,
// RFC 5681 and RFC 6582), as Linux's TCP_CONGESTION socket option does. An
// unknown name is an error that names it (ENOENT, as on Linux).
func (c *TCPConn) SetCongestionControl(name string) error {
	if !c.ok() {
		return syscall.EINVAL
	}
	c.ep.lock()
	err := c.ep.c.SetCongestionControl(name)
	c.ep.release()
	if err != nil {
		return c.opError("set", fmt.Errorf("SetCongestionControl: %w (%w)", err, syscall.ENOENT))
	}
	return nil
}

// SetReadBuffer sets the size of the connection's receive buffer to bytes
// and turns receive-buffer auto-tuning off for it, as SO_RCVBUF does on
// Linux (without Linux's doubling: the size is the bytes the window may
// offer). The buffer does not shrink below the data it holds and the
// window already offered; the window scale chosen at the handshake bounds
// what can be offered.
func (c *TCPConn) SetReadBuffer(bytes int) error {
	return c.setBuffer("SetReadBuffer", bytes, (*tcp.Conn).SetReceiveBufferSize)
}

// SetWriteBuffer sets the size of the connection's send buffer to bytes
// and stops it growing with the congestion window, as SO_SNDBUF does on
// Linux (without Linux's doubling). It does not shrink below the data the
// buffer holds.
func (c *TCPConn) SetWriteBuffer(bytes int) error {
	return c.setBuffer("SetWriteBuffer", bytes, (*tcp.Conn).SetSendBufferSize)
}

// setBuffer applies a buffer size through set, the core's setter, and
// reports a size that is not positive as EINVAL naming the call.
func (c *TCPConn) setBuffer(call string, bytes int, set func(*tcp.Conn, int) error) error {
	if !c.ok() {
		return syscall.EINVAL
	}
	if bytes <= 0 {
		return c.opError("set", fmt.Errorf("%s: bytes %d: %w", call, bytes, syscall.EINVAL))
	}
	c.ep.lock()
	err := set(c.ep.c, bytes)
	c.ep.afterLocked()
	c.ep.release()
	if err != nil {
		return c.opError("set", err)
	}
	return nil
}

// SetLinger sets what Close does with unsent data: sec < 0 (the default)
// sends it in the background; sec == 0 discards it and resets the
// connection. Positive values behave like the default.
func (c *TCPConn) SetLinger(sec int) error {
	if !c.ok() {
		return syscall.EINVAL
	}
	c.linger0.Store(sec == 0)
	return nil
}

// SetKeepAlive turns keepalive probes on or off (RFC 1122 §4.2.3.6).
func (c *TCPConn) SetKeepAlive(keepalive bool) error {
	if !c.ok() {
		return syscall.EINVAL
	}
	c.ep.lock()
	c.ep.c.SetKeepAlive(keepalive)
	c.ep.afterLocked()
	c.ep.release()
	return nil
}

// SetKeepAlivePeriod sets the idle time before the first probe and the
// interval between probes, as Linux's SetKeepAlivePeriod did before Go
// 1.23 set only the idle time. As in package net (net.KeepAliveConfig), a
// zero period means the default (the Config's KeepAliveIdle and
// KeepAliveInterval) and a negative one leaves the period unchanged.
func (c *TCPConn) SetKeepAlivePeriod(d time.Duration) error {
	if !c.ok() {
		return syscall.EINVAL
	}
	if d < 0 {
		return nil // net's setKeepAliveIdle: "d < 0": left unchanged
	}
	cfg := &c.ep.s.tcp.cfg
	idle, intvl := d, d
	if d == 0 {
		idle, intvl = cfg.KeepAliveIdle, cfg.KeepAliveInterval
	}
	c.ep.lock()
	c.ep.c.SetKeepAliveParams(idle, intvl, cfg.KeepAliveCount)
	c.ep.afterLocked()
	c.ep.release()
	return nil
}

// Info returns the connection's state and counters.
func (c *TCPConn) Info() TCPInfo {
	if !c.ok() {
		return TCPInfo{}
	}
	c.ep.lock()
	defer c.ep.release()
	return c.ep.c.Info()
}

// DialTCP opens a connection to raddr from the address of the NIC that
// routes to it and an ephemeral port.
func (s *Stack) DialTCP(ctx context.Context, raddr netip.AddrPort) (*TCPConn, error) {
	return s.DialTCPFrom(ctx, netip.AddrPort{}, raddr)
}

// DialTCPFrom opens a connection from laddr to raddr. An invalid or
// unspecified laddr address means the outgoing NIC's address; any other
// must be a NIC's, else the error is EADDRNOTAVAIL, as connect(2) after
// bind(2) reports it; port 0 means an ephemeral port (RFC 6056). It returns once the handshake is
// complete, or with an error: connection refused, timed out, or ctx's.
func (s *Stack) DialTCPFrom(ctx context.Context, laddr, raddr netip.AddrPort) (*TCPConn, error) {
	opErr := func(err error) error {
		var src net.Addr
		if laddr.IsValid() {
			src = net.TCPAddrFromAddrPort(laddr)
		}
		return &net.OpError{Op: "dial", Net: "tcp", Source: src, Addr: net.TCPAddrFromAddrPort(raddr), Err: mapError("connect", err)}
	}
	if err := s.usable(); err != nil {
		return nil, opErr(err)
	}
	if s.closing.Load() {
		return nil, opErr(net.ErrClosed)
	}
	if ctx == nil {
		return nil, opErr(errors.New("stack: nil context"))
	}
	if !raddr.Addr().IsValid() || raddr.Port() == 0 {
		return nil, opErr(errors.New("stack: remote address must be an IP address with a port"))
	}
	via, err := s.zoneNIC(raddr.Addr())
	if err != nil {
		return nil, opErr(err)
	}
	raddr = netip.AddrPortFrom(raddr.Addr().Unmap().WithZone(""), raddr.Port())
	n, hop, ok := s.route(raddr.Addr())
	if via != nil && raddr.Addr().IsLinkLocalUnicast() {
		n, hop, ok = via, raddr.Addr(), true
	}
	if !ok {
		return nil, opErr(os.NewSyscallError("connect", syscall.ENETUNREACH))
	}
	if a := raddr.Addr(); a.IsUnspecified() || a.IsMulticast() || n.isBroadcast(a) {
		// TCP is unicast (RFC 1122 §4.2.3.10: a SYN to a broadcast or
		// multicast address is to be ignored); Linux's tcp_v4_connect
		// refuses such a route with ENETUNREACH.
		return nil, opErr(os.NewSyscallError("connect", syscall.ENETUNREACH))
	}
	src := laddr.Addr()
	if !src.IsValid() || src.IsUnspecified() {
		if src = n.sourceFor(hop); !src.IsValid() {
			// The NIC lost its every address (RemoveAddress).
			return nil, opErr(os.NewSyscallError("connect", syscall.EADDRNOTAVAIL))
		}
	} else if src.Is4() != raddr.Addr().Is4() || !s.isLocalAddr(src) {
		// connect(2) after bind(2) to an address no interface has:
		// EADDRNOTAVAIL, at once, and no SYN with a spoofed source.
		return nil, opErr(os.NewSyscallError("connect", syscall.EADDRNOTAVAIL))
	}
	port := laddr.Port()
	ep := newTCPEndpoint(s)
	ep.out.v6 = raddr.Addr().Is6()
	ep.lock()
	var t tcp.Tuple
	for tries := 0; ; tries++ {
		if laddr.Port() == 0 {
			p, err := s.ephemeralPort(src, raddr)
			if err != nil {
				ep.release()
				return nil, opErr(os.NewSyscallError("connect", syscall.EADDRNOTAVAIL))
			}
			port = p
		}
		t = tcp.Tuple{Local: netip.AddrPortFrom(src, port), Remote: raddr}
		if s.addTCP(t, ep) {
			break
		}
		if laddr.Port() != 0 || tries > 16 {
			ep.release()
			return nil, opErr(os.NewSyscallError("connect", syscall.EADDRINUSE))
		}
	}
	now := s.clock.Now()
	ep.c = tcp.Dial(&s.tcp.cfg, t, s.tcp.isn.ISN(t, now), mssFor(n, raddr.Addr()), now, &ep.out)
	s.setGSO(ep.c)
	s.applyPathMTU(ep.c, now)
	ep.afterLocked()
	ep.release()

	for {
		ep.lock()
		established, err, done := ep.c.Established(), ep.c.Err(), ep.c.Done()
		if established {
			// The channel was for the handshake: a later Write makes its own.
			ep.writable = nil
			ep.release()
			return newTCPConn(ep), nil
		}
		// Writable covers the handshake's end either way (an error or
		// CLOSED counts as writable).
		writable := ep.writeChan()
		ep.release()
		if err != nil || done {
			if err == nil {
				err = tcp.ErrConnectionAborted
			}
			return nil, opErr(err)
		}
		select {
		case <-writable:
		case <-s.done:
			return nil, opErr(net.ErrClosed)
		case <-ctx.Done():
			ep.lock()
			ep.c.Abort(s.clock.Now(), &ep.out)
			ep.afterLocked()
			ep.release()
			// As package net: "i/o timeout" (errors.Is
			// context.DeadlineExceeded and os.ErrDeadlineExceeded) or
			// "operation was canceled" (errors.Is context.Canceled).
			return nil, opErr(mapContextError(ctx.Err()))
		}
	}
}
