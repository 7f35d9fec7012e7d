package stack

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/tcp"
	"github.com/ustack/ustack/udp"
)

// DefaultUDPReadBuffer is the receive queue of a new UDP socket, in
// payload bytes: Linux's default net.core.rmem_default (212,992).
// SetReadBuffer changes it per socket.
const DefaultUDPReadBuffer = 212992

// udpBytesPerSlot sets a queue's bound on datagrams from its bound on
// bytes: one datagram per 64 bytes of buffer, so that a flood of empty
// datagrams is bounded too (Linux charges each datagram its buffer's
// overhead against SO_RCVBUF to the same end).
const udpBytesPerSlot = 64

// udpState is the stack's UDP: one table of sockets keyed by 4-tuple. A
// connected socket (DialUDP) is under its full 4-tuple, a bound one
// (ListenUDP) under its local address and port with a zero Remote, the
// local address being 0.0.0.0 for a socket bound to every address.
// Datagrams are demultiplexed in that order (see lookup).
type udpState struct {
	mu    sync.RWMutex // guards socks, local and ports
	socks map[tcp.Tuple]*UDPConn
	// local counts the sockets bound to each local address and port, and
	// ports those bound to each port whatever the address, for the bind
	// conflict checks (bindable).
	local map[netip.AddrPort]int
	ports map[uint16]int
}

func (s *Stack) initUDP() {
	s.udp.socks = make(map[tcp.Tuple]*UDPConn)
	s.udp.local = make(map[netip.AddrPort]int)
	s.udp.ports = make(map[uint16]int)
}

// bindable reports whether a socket may take a:port: no other socket has
// that port on a, and none has it on every address (or, for the wildcard
// a, on any address), as bind(2) without SO_REUSEADDR. s.udp.mu is held.
func (u *udpState) bindable(a netip.Addr, port uint16) bool {
	if a.IsUnspecified() {
		return u.ports[port] == 0
	}
	return u.local[netip.AddrPortFrom(a, port)] == 0 &&
		u.local[netip.AddrPortFrom(netip.IPv4Unspecified(), port)] == 0
}

// bindUDP inserts c into the table under key, with the local port chosen
// now when key.Local's port is 0, and returns the key used. The error is
// EADDRINUSE when the port is taken or no ephemeral port is free.
func (s *Stack) bindUDP(c *UDPConn, key tcp.Tuple) (tcp.Tuple, error) {
	u := &s.udp
	u.mu.Lock()
	defer u.mu.Unlock()
	a := key.Local.Addr()
	if key.Local.Port() == 0 {
		// RFC 6056 §3.3.1 (Algorithm 1): start at a random port of the
		// ephemeral range and take the first free one from there.
		const n = ephemeralLast - ephemeralFirst + 1
		start := rand.IntN(n)
		found := false
		for i := range n {
			p := uint16(ephemeralFirst + (start+i)%n)
			if u.bindable(a, p) {
				key.Local, found = netip.AddrPortFrom(a, p), true
				break
			}
		}
		if !found {
			return key, os.NewSyscallError("bind", syscall.EADDRINUSE)
		}
	} else if !u.bindable(a, key.Local.Port()) {
		return key, os.NewSyscallError("bind", syscall.EADDRINUSE)
	}
	u.socks[key] = c
	u.local[key.Local]++
	u.ports[key.Local.Port()]++
	return key, nil
}

// unbindUDP removes c from the table.
func (s *Stack) unbindUDP(c *UDPConn) {
	u := &s.udp
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.socks[c.key] != c {
		return
	}
	delete(u.socks, c.key)
	if u.local[c.key.Local]--; u.local[c.key.Local] <= 0 {
		delete(u.local, c.key.Local)
	}
	if u.ports[c.key.Local.Port()]--; u.ports[c.key.Local.Port()] <= 0 {
		delete(u.ports, c.key.Local.Port())
	}
}

// lookup finds the socket for a datagram from remote to local: the
// connected socket of that 4-tuple, else the socket bound to local, else
// the one bound to local's port on every address. A datagram to a
// broadcast address (bcast) goes only to a socket bound to every address
// (as Linux: a bound or connected socket has a unicast local address).
func (u *udpState) lookup(local, remote netip.AddrPort, bcast bool) *UDPConn {
	u.mu.RLock()
	defer u.mu.RUnlock()
	if !bcast {
		if c := u.socks[tcp.Tuple{Local: local, Remote: remote}]; c != nil {
			return c
		}
		if c := u.socks[tcp.Tuple{Local: local}]; c != nil {
			return c
		}
	}
	return u.socks[tcp.Tuple{Local: netip.AddrPortFrom(netip.IPv4Unspecified(), local.Port())}]
}

// deliverUDP validates a received datagram (RFC 768) and queues its
// payload on the socket it is for, or answers it with an ICMP port
// unreachable. bcast reports a datagram sent to a link-layer or IP
// broadcast address. The NIC's reader never waits here for a socket's
// reader: the queue's lock is held only to copy the payload in.
func (s *Stack) deliverUDP(n *nic, h ipv4.Header, bcast bool) {
	st := s.ctr.get()
	src, dst := h.Source(), h.Destination()
	d, err := udp.Parse(h.Payload(), src, dst)
	if err != nil {
		if errors.Is(err, udp.ErrChecksum) {
			inc(&st.UDP.DropBadChecksum)
		} else {
			inc(&st.UDP.DropBadLength)
		}
		return
	}
	// RFC 1122 §4.1.3.6: "A UDP datagram received with an invalid IP
	// source address (e.g., a broadcast or multicast address) must be
	// discarded by UDP or by the IP layer". 0.0.0.0 stays valid: a DHCP
	// client sends from it (RFC 2131 §4.1).
	if src.IsMulticast() || src == ipv4Broadcast || ipv4.IsSubnetBroadcast(n.addr, src) {
		inc(&st.UDP.DropBadSource)
		return
	}
	local := netip.AddrPortFrom(dst, d.DestinationPort())
	remote := netip.AddrPortFrom(src, d.SourcePort())
	if !bcast && n.forwards(ipv4.ProtocolUDP, dst) {
		s.forwardUDP(n, local, remote, d.Payload())
		return
	}
	// deliverIPv4 accepts only the NIC's address and broadcasts (and
	// what a forwarder takes, gone above), so any other destination is
	// an IP broadcast.
	c := s.udp.lookup(local, remote, dst != n.addr.Addr())
	if c == nil || !c.push(d.Payload(), remote) {
		if c == nil && dst != n.addr.Addr() {
			inc(&st.UDP.IgnoredBroadcast)
			return
		}
		inc(&st.UDP.NoPort)
		// RFC 1122 §4.1.3.1: "If a datagram arrives addressed to a UDP
		// port for which there is no pending LISTEN call, UDP SHOULD send
		// an ICMP Port Unreachable message"; never about a broadcast,
		// multicast or link-layer broadcast datagram (§3.2.2), which
		// MayReplyWithError refuses.
		if ipv4.MayReplyWithError(h, bcast) {
			s.sendICMPError(src, h, ipv4.TypeDestinationUnreachable, ipv4.CodePortUnreachable)
		}
	}
}

// ipv4Broadcast is the limited broadcast address (RFC 919, RFC 1122
// §3.2.1.3 (c)).
var ipv4Broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// deliverUDPICMPError hands an ICMP error that quotes q, a UDP datagram
// from one of our addresses, to the connected socket that sent it. RFC
// 1122 §4.1.3.3: "UDP MUST pass to the application layer all ICMP error
// messages that it receives from the IP layer". As Linux does for a
// socket without IP_RECVERR, only hard errors about a connected socket's
// datagram are reported, as the errno of its next Read or Write; soft
// errors and errors about an unconnected socket's datagram, which an
// application could not tell apart from another peer's, are ignored.
func (s *Stack) deliverUDPICMPError(m ipv4.ICMP, q ipv4.Header) {
	st := s.ctr.get()
	p := q.Payload()
	// The quote holds at least the first 64 bits of the datagram (RFC
	// 792), of which the ports are the first 32.
	if len(p) < 4 {
		inc(&st.ICMP.DropBadQuote)
		return
	}
	inc(&st.UDP.ICMPErrorsIn)
	t := tcp.Tuple{
		Local:  netip.AddrPortFrom(q.Source(), uint16(p[0])<<8|uint16(p[1])),
		Remote: netip.AddrPortFrom(q.Destination(), uint16(p[2])<<8|uint16(p[3])),
	}
	s.udp.mu.RLock()
	c := s.udp.socks[t]
	s.udp.mu.RUnlock()
	if c == nil {
		inc(&st.ICMP.ErrorsNoConnection)
		return
	}
	errno, hard := udpICMPErrno(m.Type(), m.Code())
	if !hard || !c.setError(errno) {
		inc(&st.ICMP.ErrorsIgnored)
		return
	}
	inc(&st.UDP.ICMPErrorsReported)
}

// udpICMPErrno returns the errno an ICMP error of type typ and code means
// for a UDP socket, and whether it is a hard error, one that says the
// peer cannot be reached at all, as Linux's icmp_err_convert has them:
// port and protocol unreachable, the "unknown", "isolated", "prohibited"
// and precedence codes of RFC 1812 §5.2.7.1, and parameter problem. Net
// and host unreachable (which routing may repair), fragmentation needed
// (ustack sends UDP without DF), source route failed, the TOS codes and
// time exceeded are soft; source quench and redirect are not reported.
func udpICMPErrno(typ, code uint8) (syscall.Errno, bool) {
	switch typ {
	case ipv4.TypeDestinationUnreachable:
		switch code {
		case ipv4.CodeProtocolUnreachable:
			return syscall.ENOPROTOOPT, true
		case ipv4.CodePortUnreachable:
			return syscall.ECONNREFUSED, true
		case 6, 9: // destination network unknown; administratively prohibited
			return syscall.ENETUNREACH, true
		case 7: // destination host unknown
			return syscall.EHOSTDOWN, true
		case 8: // source host isolated
			return syscall.ENONET, true
		case 10, 13, 14, 15: // host prohibited; filtered; precedence violation, cutoff
			return syscall.EHOSTUNREACH, true
		}
	case ipv4.TypeParameterProblem:
		return syscall.EPROTO, true
	}
	return 0, false
}

// closeUDP closes every UDP socket when the stack closes.
func (s *Stack) closeUDP() {
	s.udp.mu.RLock()
	cs := make([]*UDPConn, 0, len(s.udp.socks))
	for _, c := range s.udp.socks {
		cs = append(cs, c)
	}
	s.udp.mu.RUnlock()
	for _, c := range cs {
		c.Close()
	}
}
