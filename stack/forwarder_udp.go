package stack

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ustack/ustack/tcp"
	"github.com/ustack/ustack/udp"
)

// udpFlow is one forwarded UDP flow. Its datagrams queue in c, a UDPConn
// that is in no socket table: the forwarder pushes into it, and its reads,
// deadlines and (for a per-4-tuple flow) writes are UDPConn's own.
type udpFlow struct {
	f    *forwarder
	key  tcp.Tuple // Local is the zero AddrPort for a full-cone flow
	c    *UDPConn
	last atomic.Int64 // the last datagram in or out, as time since f.epoch
	idle atomic.Bool  // ended by the idle timeout
}

// forwardUDP queues a datagram from remote to local, an address that is
// not ours, on its flow, making the flow (and starting its handler) if
// there is none.
func (s *Stack) forwardUDP(n *nic, local, remote netip.AddrPort, payload []byte) {
	st := s.ctr.get()
	f := n.fwd.Load()
	if f == nil {
		dropNotForUs(st, local.Addr()) // detached meanwhile
		return
	}
	key := tcp.Tuple{Local: local, Remote: remote}
	meta := remote // what ReadFrom reports
	if f.cfg.UDPFullCone != nil {
		key.Local, meta = netip.AddrPort{}, local
	}
	now := s.clock.Now()
	f.mu.RLock()
	fl := f.flows[key]
	f.mu.RUnlock()
	created, kick := false, false
	if fl == nil {
		f.mu.Lock()
		switch fl = f.flows[key]; {
		case f.closed:
			f.mu.Unlock()
			dropNotForUs(st, local.Addr())
			return
		case fl != nil:
		case len(f.flows) >= f.cfg.MaxUDPFlows:
			f.mu.Unlock()
			inc(&st.Forward.UDPDropFlowLimit)
			return
		default:
			fl = f.newFlow(key)
			f.flows[key] = fl
			created = true
			kick = f.scheduleLocked(now.Add(f.cfg.UDPIdleTimeout))
			inc(&st.Forward.UDPFlows)
		}
		f.mu.Unlock()
	}
	fl.touch(now)
	if !fl.c.push(payload, meta) {
		inc(&st.UDP.NoPort) // closed by its user just now
	}
	if kick {
		s.kick()
	}
	if created {
		if f.cfg.UDPFullCone != nil {
			go f.cfg.UDPFullCone(&UDPFullConeFlow{fl: fl})
		} else {
			go f.cfg.UDP(&UDPFlow{fl: fl})
		}
	}
}

// newFlow makes the flow of key, outside any socket table.
func (f *forwarder) newFlow(key tcp.Tuple) *udpFlow {
	q, _ := udp.NewQueue[netip.AddrPort](udpQueueCount(DefaultUDPReadBuffer), DefaultUDPReadBuffer) // limits are positive
	c := &UDPConn{s: f.s, key: key, q: q, readable: make(chan struct{}, 1)}
	if key.Local.IsValid() {
		c.laddr, c.raddr = net.UDPAddrFromAddrPort(key.Local), net.UDPAddrFromAddrPort(key.Remote)
	} else {
		c.laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	}
	return &udpFlow{f: f, key: key, c: c}
}

// touch records activity at now.
func (fl *udpFlow) touch(now time.Time) { fl.last.Store(int64(now.Sub(fl.f.epoch))) }

// expire ends the flow for idleness.
func (fl *udpFlow) expire() {
	fl.idle.Store(true)
	fl.c.Close()
}

// close removes the flow from its forwarder and closes it.
func (fl *udpFlow) close() error {
	f := fl.f
	f.mu.Lock()
	if f.flows[fl.key] == fl {
		delete(f.flows, fl.key)
	}
	f.mu.Unlock()
	return fl.err(fl.c.Close())
}

// err turns the net.ErrClosed of a flow the idle timeout ended into
// ErrFlowIdle.
func (fl *udpFlow) err(err error) error {
	if err == nil || !fl.idle.Load() {
		return err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && errors.Is(oe.Err, net.ErrClosed) {
		e := *oe
		e.Err = ErrFlowIdle
		return &e
	}
	return err
}

// UDPFlow is one forwarded UDP flow (Forwarder.UDP): the datagrams
// between one client address and port and one original destination. It
// is a net.Conn: LocalAddr is the original destination, RemoteAddr the
// client; Read returns the client's datagrams, one per call, and Write
// sends one to the client from the original destination. It ends when
// closed, when the stack or its forwarder closes (net.ErrClosed), or
// after Forwarder.UDPIdleTimeout with no datagram either way
// (ErrFlowIdle). Its methods are safe for concurrent use.
type UDPFlow struct{ fl *udpFlow }

// Read reads one datagram from the client into b (the rest of a longer
// one is discarded), blocking until one comes, the read deadline passes
// or the flow ends.
func (u *UDPFlow) Read(b []byte) (int, error) {
	n, err := u.fl.c.Read(b)
	return n, u.fl.err(err)
}

// Write sends b as one datagram from the original destination to the
// client.
func (u *UDPFlow) Write(b []byte) (int, error) {
	n, err := u.fl.c.Write(b)
	if err == nil {
		u.fl.touch(u.fl.f.s.clock.Now())
	}
	return n, u.fl.err(err)
}

// Close ends the flow: queued datagrams are discarded and a later
// datagram of its 4-tuple starts a new flow.
func (u *UDPFlow) Close() error { return u.fl.close() }

// LocalAddr returns the original destination as a *net.UDPAddr.
func (u *UDPFlow) LocalAddr() net.Addr { return u.fl.c.LocalAddr() }

// RemoteAddr returns the client's address as a *net.UDPAddr.
func (u *UDPFlow) RemoteAddr() net.Addr { return u.fl.c.RemoteAddr() }

// SetDeadline sets the read and write deadlines.
func (u *UDPFlow) SetDeadline(t time.Time) error { return u.fl.c.SetDeadline(t) }

// SetReadDeadline sets the deadline for Read; the zero time clears it.
func (u *UDPFlow) SetReadDeadline(t time.Time) error { return u.fl.c.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline for Write; the zero time clears it.
func (u *UDPFlow) SetWriteDeadline(t time.Time) error { return u.fl.c.SetWriteDeadline(t) }

// UDPFullConeFlow is the endpoint-independent flow of one client address
// and port (Forwarder.UDPFullCone; RFC 4787 §4.1 mapping, §5 filtering):
// every datagram the client sends to any destination. It is a
// net.PacketConn: ReadFrom returns a datagram and its original
// destination, and WriteTo sends a datagram to the client as if from any
// address (a reply from the server the client wrote to, or from another
// host, as a full-cone NAT lets through). It ends as a UDPFlow does. Its
// methods are safe for concurrent use.
type UDPFullConeFlow struct{ fl *udpFlow }

// Client returns the client's address and port.
func (u *UDPFullConeFlow) Client() netip.AddrPort { return u.fl.key.Remote }

// ReadFromUDPAddrPort reads one datagram from the client into b and
// returns its length and the address and port it was sent to.
func (u *UDPFullConeFlow) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	n, to, err := u.fl.c.ReadFromUDPAddrPort(b)
	return n, to, u.fl.err(err)
}

// ReadFrom implements net.PacketConn: ReadFromUDPAddrPort with the
// original destination as a *net.UDPAddr.
func (u *UDPFullConeFlow) ReadFrom(b []byte) (int, net.Addr, error) {
	n, to, err := u.ReadFromUDPAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(to), nil
}

// WriteToUDPAddrPort sends b to the client as one datagram from from. from
// must be an IPv4 unicast address with a port; a datagram over 65,507
// bytes is EMSGSIZE; no route to the client ENETUNREACH.
func (u *UDPFullConeFlow) WriteToUDPAddrPort(b []byte, from netip.AddrPort) (int, error) {
	fl := u.fl
	c := fl.c
	s := c.s
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	fail := func(err error) (int, error) {
		return 0, fl.err(&net.OpError{Op: "write", Net: "udp", Source: net.UDPAddrFromAddrPort(from), Addr: net.UDPAddrFromAddrPort(fl.key.Remote), Err: err})
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	switch {
	case closed:
		return fail(net.ErrClosed)
	case deadlinePassed(&c.wd):
		return fail(os.ErrDeadlineExceeded)
	case len(b) > udp.MaxPayloadIPv4:
		return fail(os.NewSyscallError("sendto", syscall.EMSGSIZE))
	}
	if err := checkUDPDestination(from); err != nil || from.Addr() == ipv4Broadcast {
		return fail(fmt.Errorf("stack: WriteTo: source %v is not an IPv4 unicast address with a port: %w", from, syscall.EINVAL))
	}
	var rc routeCache
	if !s.resolve(&rc, fl.key.Remote.Addr()) {
		inc(&s.ctr.get().IPv4.DropNoRoute)
		return fail(os.NewSyscallError("sendto", syscall.ENETUNREACH))
	}
	if err := s.sendUDPRoute(&rc, from, fl.key.Remote, b); err != nil {
		return fail(err)
	}
	fl.touch(s.clock.Now())
	return len(b), nil
}

// WriteTo implements net.PacketConn: WriteToUDPAddrPort from addr, which
// must be a *net.UDPAddr. (In this PacketConn the address of WriteTo is
// the datagram's source: its destination is always the client.)
func (u *UDPFullConeFlow) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua == nil {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: addr, Addr: net.UDPAddrFromAddrPort(u.fl.key.Remote),
			Err: fmt.Errorf("stack: WriteTo address %v is not a *net.UDPAddr: %w", addr, syscall.EINVAL)}
	}
	return u.WriteToUDPAddrPort(b, ua.AddrPort())
}

// Close ends the flow: queued datagrams are discarded and the client's
// next datagram starts a new flow.
func (u *UDPFullConeFlow) Close() error { return u.fl.close() }

// LocalAddr returns 0.0.0.0:0: the flow answers from any address.
func (u *UDPFullConeFlow) LocalAddr() net.Addr { return u.fl.c.LocalAddr() }

// SetDeadline sets the read and write deadlines.
func (u *UDPFullConeFlow) SetDeadline(t time.Time) error { return u.fl.c.SetDeadline(t) }

// SetReadDeadline sets the deadline for reads; the zero time clears it.
func (u *UDPFullConeFlow) SetReadDeadline(t time.Time) error { return u.fl.c.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline for writes; the zero time clears it.
func (u *UDPFullConeFlow) SetWriteDeadline(t time.Time) error { return u.fl.c.SetWriteDeadline(t) }

// Compile-time checks that the flows are what their documentation says.
var (
	_ net.Conn       = (*UDPFlow)(nil)
	_ net.PacketConn = (*UDPFullConeFlow)(nil)
)

// dropNotForUs counts a datagram to dst, not ours, dropped: in the
// counters of dst's family.
func dropNotForUs(st *Stats, dst netip.Addr) {
	if dst.Is4() {
		inc(&st.IPv4.DropNotForUs)
		return
	}
	inc(&st.IPv6.DropNotForUs)
}
