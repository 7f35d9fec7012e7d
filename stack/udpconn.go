package stack

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/udp"
)

// UDPConn is a UDP socket of a Stack (RFC 768). It implements
// net.PacketConn and, when made by DialUDP (connected), net.Conn. Its
// methods are safe for concurrent use by several goroutines.
//
// Received datagrams wait in a bounded queue (DefaultUDPReadBuffer bytes,
// SetReadBuffer changes it); a datagram that does not fit is dropped and
// counted in Stats().UDP.DropReceiveBuffer. Sending never blocks: a
// datagram is routed, fragmented below the MTU and handed to the NIC, or
// refused with an error.
type UDPConn struct {
	s *Stack
	// key is the socket's entry in the table: its local address and port
	// (the address 0.0.0.0 when bound to every address) and, connected,
	// the remote one. It does not change after DialUDP or ListenUDP.
	key          ip.Tuple
	laddr, raddr *net.UDPAddr // raddr nil when unconnected

	mu       sync.Mutex // guards q, err and closed; held only to copy a datagram in or out
	q        *udp.Queue[netip.AddrPort]
	err      error // a hard ICMP error to report on the next Read or Write, or nil
	closed   bool
	readable chan struct{} // signalled when a datagram or an error is queued, or on Close

	rd, wd    lazyDeadline
	broadcast atomic.Bool // SetBroadcast (SO_BROADCAST)

	rtMu sync.Mutex // guards rt; held while a datagram to the connected peer is sent
	rt   routeCache // the route to the connected peer (route.go)
}

// ListenUDP opens a UDP socket bound to laddr. An invalid or unspecified
// address (0.0.0.0) receives on every address, broadcasts included; port
// 0 picks an ephemeral port. A local address the stack does not own is
// EADDRNOTAVAIL and a port already bound EADDRINUSE, in a *net.OpError as
// package net returns them.
func (s *Stack) ListenUDP(laddr netip.AddrPort) (*UDPConn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: "udp", Addr: net.UDPAddrFromAddrPort(laddr), Err: err}
	}
	if err := s.usable(); err != nil {
		return nil, opErr(err)
	}
	a, err := s.udpLocalAddr(laddr.Addr())
	if err != nil {
		return nil, opErr(err)
	}
	c, err := s.newUDPConn(ip.Tuple{Local: netip.AddrPortFrom(a, laddr.Port())})
	if err != nil {
		return nil, opErr(err)
	}
	return c, nil
}

// DialUDP opens a UDP socket connected to raddr: it sends only there and
// receives only from there, and an ICMP port unreachable (or another hard
// error) about a datagram it sent is returned, as ECONNREFUSED, by its
// next Read or Write (as on Linux). An invalid or unspecified laddr
// address means the address of the NIC that routes to raddr; port 0 picks
// an ephemeral port. Dialing a broadcast address succeeds, but writing to
// it needs SetBroadcast(true).
func (s *Stack) DialUDP(laddr, raddr netip.AddrPort) (*UDPConn, error) {
	opErr := func(err error) error {
		var src net.Addr
		if laddr.IsValid() {
			src = net.UDPAddrFromAddrPort(laddr)
		}
		return &net.OpError{Op: "dial", Net: "udp", Source: src, Addr: net.UDPAddrFromAddrPort(raddr), Err: err}
	}
	if err := s.usable(); err != nil {
		return nil, opErr(err)
	}
	raddr = netip.AddrPortFrom(raddr.Addr().Unmap(), raddr.Port())
	if err := checkUDPDestination(raddr); err != nil {
		return nil, opErr(err)
	}
	a, err := s.udpLocalAddr(laddr.Addr())
	if err != nil {
		return nil, opErr(err)
	}
	n, hop, ok := s.route(raddr.Addr())
	if !ok {
		return nil, opErr(os.NewSyscallError("connect", syscall.ENETUNREACH))
	}
	if a.IsUnspecified() {
		if a = n.sourceFor(hop); !a.IsValid() {
			// The NIC lost its every address (RemoveAddress).
			return nil, opErr(os.NewSyscallError("connect", syscall.EADDRNOTAVAIL))
		}
	}
	c, err := s.newUDPConn(ip.Tuple{Local: netip.AddrPortFrom(a, laddr.Port()), Remote: raddr})
	if err != nil {
		return nil, opErr(err)
	}
	return c, nil
}

// udpLocalAddr checks a local address to bind: IPv4 (the zero Addr
// meaning 0.0.0.0) and, unless unspecified, one of the stack's own.
func (s *Stack) udpLocalAddr(a netip.Addr) (netip.Addr, error) {
	if s.closing.Load() {
		return a, net.ErrClosed
	}
	if !a.IsValid() {
		return netip.IPv4Unspecified(), nil
	}
	a = a.Unmap().WithZone("")
	if !a.IsUnspecified() && !s.isLocalAddr(a) {
		return a, os.NewSyscallError("bind", syscall.EADDRNOTAVAIL)
	}
	return a, nil
}

// checkUDPDestination refuses a destination no datagram can be sent to:
// not IPv4, unspecified, multicast (not supported yet) or port 0 (Linux's
// EINVAL).
func checkUDPDestination(to netip.AddrPort) error {
	a := to.Addr()
	switch {
	case !a.IsValid():
		return fmt.Errorf("stack: destination %v is not an address", to)
	case a.IsUnspecified():
		return fmt.Errorf("stack: destination %v is unspecified", to)
	case a.IsMulticast():
		return fmt.Errorf("stack: destination %v: multicast is not supported", to)
	case to.Port() == 0:
		return fmt.Errorf("stack: destination %v: port 0: %w", to, syscall.EINVAL)
	}
	return nil
}

// newUDPConn makes a socket and enters it in the table under key.
func (s *Stack) newUDPConn(key ip.Tuple) (*UDPConn, error) {
	q, err := udp.NewQueue[netip.AddrPort](udpQueueCount(DefaultUDPReadBuffer), DefaultUDPReadBuffer)
	if err != nil {
		return nil, err
	}
	c := &UDPConn{s: s, q: q, readable: make(chan struct{}, 1)}
	// The entry is made before the addresses are known (an ephemeral
	// port); c.mu keeps a datagram that arrives meanwhile waiting.
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key, err = s.bindUDP(c, key); err != nil {
		return nil, err
	}
	c.laddr = net.UDPAddrFromAddrPort(c.key.Local)
	if c.key.Remote.IsValid() {
		c.raddr = net.UDPAddrFromAddrPort(c.key.Remote)
	}
	if s.closing.Load() { // Close ran between the check and the insertion
		c.closeLocked()
		return nil, net.ErrClosed
	}
	return c, nil
}

// udpQueueCount is the datagram bound of a queue of bytes.
func udpQueueCount(bytes int) int { return max(bytes/udpBytesPerSlot, 1) }

// push queues a received datagram's payload from from, and reports false
// when the socket is closed (the datagram is then the caller's to count).
// A full queue drops the datagram, counted.
func (c *UDPConn) push(payload []byte, from netip.AddrPort) bool {
	st := c.s.ctr.get()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	// Counted before a reader can see the datagram, so that the counters
	// never lag what was read.
	if c.q.Push(payload, from) {
		inc(&st.UDP.DatagramsIn)
		signal(c.readable)
	} else {
		inc(&st.UDP.DropReceiveBuffer)
	}
	c.mu.Unlock()
	return true
}

// setError records a hard ICMP error for the next Read or Write of a
// connected socket (counted in UDP.ICMPErrorsReported), and reports
// whether it was recorded.
func (c *UDPConn) setError(errno syscall.Errno) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.raddr == nil {
		return false
	}
	c.err = errno
	// Counted before the reader can see it, so that a Read that returns
	// the error finds it counted.
	inc(&c.s.ctr.get().UDP.ICMPErrorsReported)
	signal(c.readable)
	return true
}

// takeErrorLocked returns and clears the pending ICMP error; c.mu is
// held.
func (c *UDPConn) takeErrorLocked() error {
	err := c.err
	c.err = nil
	return err
}

// opError wraps err as package net does, naming the socket's addresses.
// syscall errnos are wrapped in an *os.SyscallError of call.
func (c *UDPConn) opError(op, call string, addr net.Addr, err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(call, errno)
	}
	if addr == nil && c.raddr != nil {
		addr = c.raddr
	}
	return &net.OpError{Op: op, Net: "udp", Source: c.laddr, Addr: addr, Err: err}
}

// deadlinePassed reports whether the deadline l has passed, without making
// one that was never set.
func deadlinePassed(l *lazyDeadline) bool {
	d := l.p.Load()
	if d == nil {
		return false
	}
	select {
	case <-d.wait():
		return true
	default:
		return false
	}
}

// ReadFromUDPAddrPort reads one datagram into b and returns its length and
// source. A datagram longer than b is truncated to len(b), the rest
// discarded, as package net does. It blocks until a datagram arrives, the
// read deadline passes (os.ErrDeadlineExceeded) or the socket closes
// (net.ErrClosed); on a connected socket, a pending ICMP error is
// returned first (ECONNREFUSED for a port unreachable).
func (c *UDPConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.read("read", "recvfrom", b)
}

// read is ReadFromUDPAddrPort, with its errors named op and call.
func (c *UDPConn) read(op, call string, b []byte) (int, netip.AddrPort, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, netip.AddrPort{}, c.opError(op, call, nil, net.ErrClosed)
		}
		// A pending error first, as Linux's recvmsg does.
		if err := c.takeErrorLocked(); err != nil {
			c.mu.Unlock()
			return 0, netip.AddrPort{}, c.opError(op, call, nil, err)
		}
		// A passed deadline fails even with datagrams queued, as package
		// net's does.
		if deadlinePassed(&c.rd) {
			c.mu.Unlock()
			return 0, netip.AddrPort{}, c.opError(op, call, nil, os.ErrDeadlineExceeded)
		}
		n, _, from, ok := c.q.Pop(b)
		if ok {
			if c.q.Len() > 0 {
				signal(c.readable) // for another reader waiting
			}
			c.mu.Unlock()
			return n, from, nil
		}
		c.mu.Unlock()
		select {
		case <-c.readable:
		case <-c.rd.wait():
			// Loop: the check above reports the timeout, after a
			// datagram or Close that raced with it.
		}
	}
}

// ReadFrom implements net.PacketConn: ReadFromUDPAddrPort with the source
// as a *net.UDPAddr.
func (c *UDPConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.read("read", "recvfrom", b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// Read implements net.Conn: it reads one datagram, as ReadFrom does
// without the source. On a socket that is not connected it reads
// datagrams from anyone. As package net's, a Read into an empty b returns
// at once and leaves the queue alone.
func (c *UDPConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return 0, c.opError("read", "read", nil, net.ErrClosed)
		}
		return 0, nil
	}
	n, _, err := c.read("read", "read", b)
	return n, err
}

// WriteToUDPAddrPort sends b as one datagram to addr, with a checksum,
// fragmented below the MTU when larger. It fails on a connected socket
// (net.ErrWriteToConnected, as package net), for a datagram larger than
// 65,507 bytes (EMSGSIZE), for a broadcast destination without
// SetBroadcast(true) (EACCES), with no route (ENETUNREACH), or once the
// write deadline has passed. The limited broadcast 255.255.255.255 leaves
// through the NIC of the socket's address, or, for a socket bound to
// every address, by the routes (a default route), as on Linux.
func (c *UDPConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if c.raddr != nil {
		return 0, c.opError("write", "sendto", net.UDPAddrFromAddrPort(addr), net.ErrWriteToConnected)
	}
	return c.write("write", "sendto", b, addr)
}

// WriteTo implements net.PacketConn: WriteToUDPAddrPort to addr, which
// must be a *net.UDPAddr.
func (c *UDPConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua == nil {
		return 0, c.opError("write", "sendto", addr, fmt.Errorf("stack: WriteTo address %v is not a *net.UDPAddr: %w", addr, syscall.EINVAL))
	}
	return c.WriteToUDPAddrPort(b, ua.AddrPort())
}

// Write implements net.Conn: it sends b as one datagram to the connected
// peer, or returns a pending ICMP error (ECONNREFUSED for a port
// unreachable). An unconnected socket has no destination
// (EDESTADDRREQ).
func (c *UDPConn) Write(b []byte) (int, error) {
	if c.raddr == nil {
		return 0, c.opError("write", "write", nil, syscall.EDESTADDRREQ)
	}
	return c.write("write", "write", b, c.key.Remote)
}

// write checks and sends one datagram to to.
func (c *UDPConn) write(op, call string, b []byte, to netip.AddrPort) (int, error) {
	fail := func(err error) (int, error) {
		return 0, c.opError(op, call, net.UDPAddrFromAddrPort(to), err)
	}
	c.mu.Lock()
	closed := c.closed
	var err error
	if !closed && c.raddr != nil {
		err = c.takeErrorLocked()
	}
	c.mu.Unlock()
	switch {
	case closed:
		return fail(net.ErrClosed)
	case err != nil:
		return fail(err)
	case deadlinePassed(&c.wd):
		return fail(os.ErrDeadlineExceeded)
	case len(b) > udp.MaxPayloadIPv4:
		// RFC 791 §3.1: the Total Length of 65,535 octets bounds the
		// datagram, IPv4 and UDP headers included.
		return fail(syscall.EMSGSIZE)
	}
	if err := checkUDPDestination(to); err != nil {
		return fail(err)
	}
	if err := c.s.sendUDP(c, b, to); err != nil {
		return fail(err)
	}
	return len(b), nil
}

// sendUDP builds a datagram of payload from c's port to to and sends it.
func (s *Stack) sendUDP(c *UDPConn, payload []byte, to netip.AddrPort) error {
	dst := to.Addr()
	src := c.key.Local.Addr()
	var once routeCache
	rc := &once
	if dst == ipv4Broadcast && !src.IsUnspecified() {
		// The limited broadcast leaves through the NIC of the bound
		// address, whatever the routes.
		if n := s.nicOf(src); n != nil {
			*rc = routeCache{dst: dst, nic: n, src: src, hop: dst, mtu: n.mtu, mac: link.Broadcast, macOK: true}
		}
	}
	if rc.nic == nil {
		if to == c.key.Remote {
			// A connected socket's datagram to its peer: through the
			// socket's cached route.
			c.rtMu.Lock()
			defer c.rtMu.Unlock()
			rc = &c.rt
		}
		if !s.resolve(rc, dst) {
			inc(&s.ctr.get().IPv4.DropNoRoute)
			return syscall.ENETUNREACH
		}
	}
	n := rc.nic
	if src.IsUnspecified() {
		// RFC 1122 §4.1.3.5: with no source address given, "the
		// networking software will choose an appropriate source address".
		if src = rc.src; !src.IsValid() {
			return syscall.EADDRNOTAVAIL // the NIC lost its every address
		}
	}
	if n.isBroadcast(dst) && !c.broadcast.Load() {
		// As Linux: broadcasting needs SO_BROADCAST.
		return syscall.EACCES
	}
	return s.sendUDPRoute(rc, netip.AddrPortFrom(src, c.key.Local.Port()), to, payload)
}

// sendUDPRoute builds a datagram of payload from src to to and sends it
// through the route rc, resolved for to.
func (s *Stack) sendUDPRoute(rc *routeCache, src, to netip.AddrPort, payload []byte) error {
	pb := s.bufs.Get().(*packetBuf)
	defer s.bufs.Put(pb)
	h := headroom
	if to.Addr().Is6() {
		h = headroom6 // where sendIPv6 wants it: no move
	}
	d := pb.b[h : h+udp.HeaderLen+len(payload)]
	copy(d[udp.HeaderLen:], payload)
	if err := udp.PutHeader(d, src.Port(), to.Port(), len(payload)); err != nil {
		return err
	}
	if err := udp.SetChecksum(d, src.Addr(), to.Addr()); err != nil {
		return err
	}
	if !rc.nic.sendIP(pb, &ip.Packet{Source: src.Addr(), Destination: to.Addr(), Protocol: ip.ProtocolUDP, Payload: d}, rc, nil) {
		return syscall.EMSGSIZE // the MTU is too small to fragment into
	}
	inc(&s.ctr.get().UDP.DatagramsOut)
	return nil
}

// nicOf returns the NIC that has the address a, or nil.
func (s *Stack) nicOf(a netip.Addr) *nic {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, n := range s.nics {
		if n.hasAddr(a) {
			return n
		}
	}
	return nil
}

// Close closes the socket: it leaves the table, queued datagrams are
// discarded and blocked Reads return net.ErrClosed.
func (c *UDPConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.opError("close", "close", nil, net.ErrClosed)
	}
	c.closeLocked()
	c.mu.Unlock()
	c.rd.set(c.s.clock, time.Time{})
	c.wd.set(c.s.clock, time.Time{})
	return nil
}

// closeLocked marks c closed, wakes its readers and removes it from the
// table; c.mu is held (the table's lock is taken inside it, never the
// other way round).
func (c *UDPConn) closeLocked() {
	c.closed = true
	for c.q.Len() > 0 {
		c.q.Pop(nil)
	}
	signal(c.readable)
	c.s.unbindUDP(c)
}

// LocalAddr returns the local address as a *net.UDPAddr (0.0.0.0 and the
// port for a socket bound to every address).
func (c *UDPConn) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr returns the connected peer's address as a *net.UDPAddr, or
// nil when the socket is not connected.
func (c *UDPConn) RemoteAddr() net.Addr {
	if c.raddr == nil {
		return nil
	}
	return c.raddr
}

// SetDeadline sets the read and write deadlines.
func (c *UDPConn) SetDeadline(t time.Time) error {
	c.rd.set(c.s.clock, t)
	c.wd.set(c.s.clock, t)
	return nil
}

// SetReadDeadline sets the deadline for reads; the zero time clears it.
func (c *UDPConn) SetReadDeadline(t time.Time) error {
	c.rd.set(c.s.clock, t)
	return nil
}

// SetWriteDeadline sets the deadline for writes; the zero time clears it.
// Writes never block, so only a deadline already passed matters.
func (c *UDPConn) SetWriteDeadline(t time.Time) error {
	c.wd.set(c.s.clock, t)
	return nil
}

// SetReadBuffer sets the receive queue's size to bytes of payload, as
// SO_RCVBUF does on Linux (without Linux's doubling); datagrams already
// queued stay. An empty queue still admits one datagram larger than the
// size. A size that is not positive is EINVAL, naming the call.
func (c *UDPConn) SetReadBuffer(bytes int) error {
	if bytes <= 0 {
		return c.opError("set", "setsockopt", nil, fmt.Errorf("SetReadBuffer: bytes %d: %w", bytes, syscall.EINVAL))
	}
	c.mu.Lock()
	err := c.q.SetLimits(udpQueueCount(bytes), bytes)
	c.mu.Unlock()
	if err != nil {
		return c.opError("set", "setsockopt", nil, err)
	}
	return nil
}

// SetBroadcast allows (true) or forbids (false, the default) sending to a
// broadcast address, as SO_BROADCAST does; without it such a write fails
// with EACCES. Receiving broadcasts needs no option, only a socket bound
// to every address.
func (c *UDPConn) SetBroadcast(on bool) error {
	c.broadcast.Store(on)
	return nil
}

// Compile-time checks that UDPConn is what its documentation says.
var (
	_ net.PacketConn = (*UDPConn)(nil)
	_ net.Conn       = (*UDPConn)(nil)
)

// maxUDPFrame is the frame a datagram of udp.MaxPayloadIPv4 bytes takes:
// it fits a packetBuf exactly.
const maxUDPFrame = link.EthernetHeaderLen + ipv4.HeaderLen + udp.HeaderLen + udp.MaxPayloadIPv4

var _ [maxFrame - maxUDPFrame]struct{} // maxFrame >= maxUDPFrame
