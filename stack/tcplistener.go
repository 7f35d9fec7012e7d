package stack

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ustack/ustack/tcp"
)

// TCPListener is a listening TCP socket of a Stack. It implements
// net.Listener. A TCPListener comes from ListenTCP; the methods of a zero
// or nil one return syscall.EINVAL (Stats and Pending return zeros), as
// package net's do.
type TCPListener struct {
	s     *Stack
	local netip.AddrPort
	addr  *net.TCPAddr

	mu sync.Mutex // guards l, out and scheduled; taken after a connection's lock, never before
	l  *tcp.Listener
	// out sends the listener's own segments (SYN-ACKs, RSTs), under mu.
	out tcpOutput
	// scheduled is the deadline last put in the timer heap (tm), zero if
	// none.
	scheduled time.Time
	tm        timerEntry

	ready    chan struct{} // signalled when the accept queue may be non-empty
	closed   chan struct{}
	once     sync.Once
	deadline *deadline

	v6only atomic.Bool // SetIPv6Only
}

// SetIPv6Only sets whether a listener on the IPv6 unspecified address
// ([::]) takes IPv6 connections only. By default it also takes IPv4 ones
// to ports no IPv4 listener has, as Linux's default
// (net.ipv6.bindv6only = 0; RFC 3493 §5.3, IPV6_V6ONLY). It has no effect
// on a listener of another address.
func (l *TCPListener) SetIPv6Only(on bool) { l.v6only.Store(on) }

// AcceptsIPv4 implements tcpdemux.DualStack.
func (dl *demuxListener) AcceptsIPv4() bool {
	l := (*TCPListener)(dl)
	return l.local.Addr().Is6() && l.local.Addr().IsUnspecified() && !l.v6only.Load()
}

// ListenTCP listens on addr. An unspecified address (0.0.0.0) listens on
// every NIC; port 0 picks an ephemeral port. The backlog is DefaultBacklog.
func (s *Stack) ListenTCP(addr netip.AddrPort) (*TCPListener, error) {
	return s.ListenTCPBacklog(addr, DefaultBacklog)
}

// ListenTCPBacklog is ListenTCP with a backlog (zero means
// DefaultBacklog; a negative backlog is EINVAL): the accept queue holds at
// most backlog connections (SYNs and final ACKs beyond are dropped and
// counted in Stats().TCP.ListenOverflows) and the SYN queue at most
// backlog half-open entries, beyond which SYN cookies answer (see
// tcp.Config.SYNCookies and SetSYNCookies).
func (s *Stack) ListenTCPBacklog(addr netip.AddrPort, backlog int) (*TCPListener, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: "tcp", Addr: net.TCPAddrFromAddrPort(addr), Err: err}
	}
	if err := s.usable(); err != nil {
		return nil, opErr(err)
	}
	if s.closing.Load() {
		return nil, opErr(net.ErrClosed)
	}
	if backlog < 0 {
		return nil, opErr(fmt.Errorf("stack: ListenTCPBacklog: backlog %d is negative: %w", backlog, syscall.EINVAL))
	}
	if backlog == 0 {
		backlog = DefaultBacklog
	}
	a := addr.Addr()
	if !a.IsValid() {
		a = netip.IPv4Unspecified()
	}
	a = a.Unmap().WithZone("")
	if !a.IsUnspecified() && !s.isLocalAddr(a) {
		return nil, opErr(os.NewSyscallError("bind", syscall.EADDRNOTAVAIL))
	}
	dl, ok := s.tcp.demux.Listen(netip.AddrPortFrom(a, addr.Port()), ephemeralFirst, ephemeralLast, func(local netip.AddrPort) *demuxListener {
		return (*demuxListener)(s.newTCPListener(local, backlog))
	})
	if !ok {
		return nil, opErr(os.NewSyscallError("bind", syscall.EADDRINUSE))
	}
	return (*TCPListener)(dl), nil
}

// newTCPListener makes a listener on local with the given backlog, not
// yet in the demultiplexer's table.
func (s *Stack) newTCPListener(local netip.AddrPort, backlog int) *TCPListener {
	l := &TCPListener{
		s:        s,
		local:    local,
		addr:     net.TCPAddrFromAddrPort(local),
		l:        tcp.NewListener(&s.tcp.cfg, local, backlog),
		ready:    make(chan struct{}, 1),
		closed:   make(chan struct{}),
		deadline: newDeadline(),
	}
	l.out.s = s
	l.tm = timerEntry{index: -1, ln: l}
	return l
}

// ok reports whether l came from ListenTCP.
func (l *TCPListener) ok() bool { return l != nil && l.s != nil }

// isLocalAddr reports whether a is an address of one of the stack's NICs.
func (s *Stack) isLocalAddr(a netip.Addr) bool { return s.nicOf(a) != nil }

// demuxListener is a TCPListener as the demultiplexer sees it
// (tcpdemux.Listener), so that Deliver stays out of TCPListener's API.
type demuxListener TCPListener

// Deliver implements tcpdemux.Listener: it hands a segment with no
// connection to the listener. A SYN makes a half-open entry or a cookie,
// with no connection yet; the final ACK of a handshake creates the
// connection, already on the accept queue, which joins the stack's table
// here.
func (dl *demuxListener) Deliver(t tcp.Tuple, seg tcp.Segment) {
	l := (*TCPListener)(dl)
	s := l.s
	var iss tcp.Value
	if seg.Flags().Has(tcp.FlagSYN) {
		// A SYN no route leads back to never gets here (deliverTCP).
		iss = s.tcp.isn.ISN(t, s.clock.Now())
	}
	mss := s.mssTo(t.Remote.Addr())
	l.mu.Lock()
	if !seg.Flags().Has(tcp.FlagSYN) {
		// With a reader per NIC queue, seg may have missed its connection
		// in the table while another reader, under l.mu, completed the
		// handshake: a device steers a flow's frames to the queue the
		// stack writes it on only once it has seen one written, so the
		// kernel's handshake ACK can come on another queue than the data
		// after it (link.MultiQueue). Look again under l.mu, after which
		// no connection of this listener enters the table but by this
		// goroutine; the connection takes seg as if it had come after.
		if ep, ok := s.tcp.demux.Lookup(t); ok {
			l.mu.Unlock()
			if !ep.Deliver(t, seg) {
				s.tcp.demux.DeliverNoConn(t, seg)
			}
			return
		}
	}
	now := s.clock.Now()
	c := l.l.Input(now, t, seg, iss, mss, &l.out)
	if c == nil {
		l.scheduleLocked()
		l.mu.Unlock()
		return
	}
	// The connection enters the table before the listener's lock is
	// released, so that Accept, which looks it up there, finds it. Its
	// own lock is taken out of the usual order, which is safe because
	// nobody else can see it yet.
	ep := newTCPEndpoint(s)
	ep.out.v6 = t.Remote.Addr().Is6()
	ep.listener = l
	ep.c = c
	s.setGSO(c)
	ep.lock()
	added := s.addTCP(t, ep)
	l.mu.Unlock()
	defer ep.release()
	if !added {
		// Cannot happen: only a listener adds a connection for a
		// 4-tuple of its own, under its lock, and a SYN-reopening of a
		// TIME-WAIT removed the record first. Abort rather than keep two
		// connections on one tuple.
		c.Abort(now, &ep.out)
		return
	}
	s.applyPathMTU(c, now)
	ep.afterLocked()
	signal(l.ready)
}

// scheduleLocked puts the listener's next deadline in the timer heap when
// it is earlier than the one there; l.mu is held.
func (l *TCPListener) scheduleLocked() {
	if d := l.l.NextDeadline(); !d.IsZero() && (l.scheduled.IsZero() || d.Before(l.scheduled)) {
		l.scheduled = d
		l.s.schedule(&l.tm, d)
	}
}

// tick runs the listener's timers (SYN-ACK retransmissions) from the
// stack's timer goroutine.
func (l *TCPListener) tick() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.scheduled = time.Time{}
	if l.l.Closed() {
		return
	}
	l.l.Tick(l.s.clock.Now(), &l.out)
	l.scheduleLocked()
}

// Stats returns a snapshot of the listener's counters: SYNs received,
// SYN-queue drops, SYN cookies sent, accepted and rejected, accept-queue
// overflows, SYN-ACK retransmissions and the queues' lengths.
func (l *TCPListener) Stats() tcp.ListenerStats {
	if !l.ok() {
		return tcp.ListenerStats{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.l.Stats()
}

// SetSYNCookies sets when the listener answers SYNs with SYN cookies
// (RFC 4987 §3.6): tcp.SYNCookiesWhenFull (the stack's default unless its
// Config says otherwise), tcp.SYNCookiesNever or tcp.SYNCookiesAlways.
func (l *TCPListener) SetSYNCookies(m tcp.SYNCookieMode) error {
	if !l.ok() {
		return syscall.EINVAL
	}
	switch m {
	case tcp.SYNCookiesWhenFull, tcp.SYNCookiesNever, tcp.SYNCookiesAlways:
	default:
		return &net.OpError{Op: "set", Net: "tcp", Addr: l.addr, Err: errors.New("stack: invalid SYN cookie mode " + m.String())}
	}
	l.mu.Lock()
	l.l.SetSYNCookies(m)
	l.mu.Unlock()
	return nil
}

// Pending returns the numbers of half-open entries in the SYN queue and
// of connections waiting in the accept queue.
func (l *TCPListener) Pending() (syn, accept int) {
	if !l.ok() {
		return 0, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.l.Pending()
}

// Accept waits for and returns the next connection (net.Listener).
func (l *TCPListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptTCP waits for and returns the next connection. Once the deadline
// has passed it returns a timeout, even with connections queued, as
// package net does.
func (l *TCPListener) AcceptTCP() (*TCPConn, error) {
	if !l.ok() {
		return nil, syscall.EINVAL
	}
	opErr := func(err error) error {
		return &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: err}
	}
	for {
		select {
		case <-l.closed:
			return nil, opErr(net.ErrClosed)
		default:
		}
		// internal/poll's FD.Accept checks the deadline (prepareRead)
		// before it takes a queued connection.
		if l.deadline.passed() {
			return nil, opErr(os.ErrDeadlineExceeded)
		}
		l.mu.Lock()
		c := l.l.Accept()
		more := l.l.AcceptReady()
		l.mu.Unlock()
		if more {
			signal(l.ready)
		}
		if c != nil {
			ep, _ := l.s.tcp.demux.Lookup(c.Tuple())
			if ep == nil || ep.c != c {
				continue // reset and removed while queued
			}
			return newTCPConn(ep), nil
		}
		select {
		case <-l.ready:
		case <-l.closed:
		case <-l.deadline.wait():
			return nil, opErr(os.ErrDeadlineExceeded)
		}
	}
}

// SetDeadline sets the deadline for Accept; the zero time clears it.
func (l *TCPListener) SetDeadline(t time.Time) error {
	if !l.ok() {
		return syscall.EINVAL
	}
	l.deadline.set(l.s.clock, t)
	return nil
}

// Close stops listening. Connections not yet accepted are reset; accepted
// ones are unaffected. A blocked Accept returns net.ErrClosed.
func (l *TCPListener) Close() error {
	if !l.ok() {
		return syscall.EINVAL
	}
	first := false
	l.once.Do(func() { first = true; close(l.closed) })
	if !first {
		return &net.OpError{Op: "close", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
	}
	s := l.s
	s.tcp.demux.Unlisten(l.local, (*demuxListener)(l))
	// Take the queued connections out under the listener's lock, then
	// abort each under its own: a connection's lock is always taken
	// before its listener's.
	var queued []*tcp.Conn
	l.mu.Lock()
	for c := l.l.Accept(); c != nil; c = l.l.Accept() {
		queued = append(queued, c)
	}
	l.l.Close(s.clock.Now(), &l.out)
	l.mu.Unlock()
	s.unschedule(&l.tm)
	for _, c := range queued {
		ep, ok := s.tcp.demux.Lookup(c.Tuple())
		if !ok {
			continue
		}
		ep.lock()
		if ep.c == c && !c.Done() {
			c.Abort(s.clock.Now(), &ep.out)
			ep.afterLocked()
		}
		ep.release()
	}
	l.deadline.set(s.clock, time.Time{})
	return nil
}

// Addr returns the listening address as a *net.TCPAddr (nil for a
// TCPListener not from ListenTCP).
func (l *TCPListener) Addr() net.Addr {
	if !l.ok() {
		return nil
	}
	return l.addr
}
