package stack

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
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

// udpBuckets is the number of buckets of a stack's UDP table (2 KiB of
// pointers per stack); ephemeral ports are random, so a bucket holds about
// one socket in udpBuckets.
const udpBuckets = 256

// udpState is the stack's UDP: its table of sockets. A connected socket
// (DialUDP) is entered under its full 4-tuple, a bound one (ListenUDP)
// under its local address and port with a zero Remote, the local address
// being 0.0.0.0 for a socket bound to every address. Datagrams are
// demultiplexed in that order (see lookup).
//
// The sockets on local port p are in bucket p % udpBuckets: an immutable
// slice that a bind or an unbind replaces whole, under mu, and that the
// receive path reads with one atomic load and no lock (DESIGN.md, Network
// layer: no stack-wide lock per packet on the hot path). The bind rules
// (bindable) allow one socket per local address and port, so a lookup
// scans at most one socket per address of the stack for its port, and
// the others that share its bucket.
type udpState struct {
	mu     sync.Mutex // serializes binds and unbinds
	bucket [udpBuckets]atomic.Pointer[[]udpEntry]
}

// udpEntry is one socket in the table, under its key.
type udpEntry struct {
	key ip.Tuple
	c   *UDPConn
}

// entries returns the sockets of port's bucket, some of them on other
// ports.
func (u *udpState) entries(port uint16) []udpEntry {
	if b := u.bucket[port%udpBuckets].Load(); b != nil {
		return *b
	}
	return nil
}

// bindable reports whether a socket may take a:port: no other socket has
// that port on a, and none has it on every address (or, for the wildcard
// a, on any address), as bind(2) without SO_REUSEADDR. s.udp.mu is held.
func (u *udpState) bindable(a netip.Addr, port uint16) bool {
	for _, e := range u.entries(port) {
		l := e.key.Local
		if l.Port() == port && (a.IsUnspecified() || l.Addr() == a || l.Addr().IsUnspecified()) {
			return false
		}
	}
	return true
}

// bindUDP inserts c into the table under key, with the local port chosen
// now when key.Local's port is 0, and returns the key used. The error is
// EADDRINUSE when the port is taken or no ephemeral port is free.
func (s *Stack) bindUDP(c *UDPConn, key ip.Tuple) (ip.Tuple, error) {
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
	old := u.entries(key.Local.Port())
	b := make([]udpEntry, len(old), len(old)+1)
	copy(b, old)
	b = append(b, udpEntry{key, c})
	u.bucket[key.Local.Port()%udpBuckets].Store(&b)
	return key, nil
}

// unbindUDP removes c from the table.
func (s *Stack) unbindUDP(c *UDPConn) {
	u := &s.udp
	u.mu.Lock()
	defer u.mu.Unlock()
	port := c.key.Local.Port()
	old := u.entries(port)
	b := make([]udpEntry, 0, len(old))
	for _, e := range old {
		if e.c != c {
			b = append(b, e)
		}
	}
	if len(b) == len(old) {
		return // not in the table (a failed bind)
	}
	u.bucket[port%udpBuckets].Store(&b)
}

// lookup finds the socket for a datagram from remote to local: the
// connected socket of that 4-tuple, else the socket bound to local, else
// the one bound to local's port on every address. A datagram to a
// broadcast address (bcast) goes only to a socket bound to every address
// (as Linux: a bound or connected socket has a unicast local address).
// It takes no lock.
func (u *udpState) lookup(local, remote netip.AddrPort, bcast bool) *UDPConn {
	var bound, wild *UDPConn
	for _, e := range u.entries(local.Port()) {
		k := e.key
		switch {
		case k.Local.Port() != local.Port():
		case k.Local.Addr().IsUnspecified():
			// 0.0.0.0 takes IPv4 only; [::] both families, as a Linux
			// AF_INET6 socket without IPV6_V6ONLY (RFC 3493 §3.7).
			if !k.Remote.IsValid() && (k.Local.Addr().Is6() || local.Addr().Is4()) {
				wild = e.c
			}
		case bcast || k.Local.Addr() != local.Addr():
		case !k.Remote.IsValid():
			bound = e.c
		case k.Remote == remote:
			return e.c
		}
	}
	if bound != nil {
		return bound
	}
	return wild
}

// find returns the socket entered under exactly key, or nil.
func (u *udpState) find(key ip.Tuple) *UDPConn {
	for _, e := range u.entries(key.Local.Port()) {
		if e.key == key {
			return e.c
		}
	}
	return nil
}

// deliverUDP validates a received datagram (RFC 768) and queues its
// payload on the socket it is for, or answers it with an ICMP port
// unreachable. bcast reports a datagram sent to a link-layer or IP
// broadcast address. The NIC's reader never waits here for a socket's
// reader: the queue's lock is held only to copy the payload in.
func (s *Stack) deliverUDP(n *nic, p *ip.Packet) {
	st := s.ctr.get()
	src, dst := p.Source, p.Destination
	d, err := udp.Parse(p.Payload, src, dst)
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
	if src.IsMulticast() || n.isBroadcast(src) {
		inc(&st.UDP.DropBadSource)
		return
	}
	local := netip.AddrPortFrom(dst, d.DestinationPort())
	remote := netip.AddrPortFrom(src, d.SourcePort())
	if !p.Broadcast && n.forwards(ip.ProtocolUDP, dst) {
		s.forwardUDP(n, local, remote, d.Payload())
		return
	}
	// deliverIPv4 accepts only the NIC's addresses and broadcasts (and
	// what a forwarder takes, gone above), so any other destination is
	// an IP broadcast.
	c := s.udp.lookup(local, remote, !n.hasAddr(dst))
	if c == nil || !c.push(d.Payload(), remote) {
		if c == nil && !n.hasAddr(dst) {
			inc(&st.UDP.IgnoredBroadcast)
			return
		}
		inc(&st.UDP.NoPort)
		// RFC 1122 §4.1.3.1: "If a datagram arrives addressed to a UDP
		// port for which there is no pending LISTEN call, UDP SHOULD send
		// an ICMP Port Unreachable message"; never about a broadcast,
		// multicast or link-layer broadcast datagram (§3.2.2), which
		// sendUnreachable refuses.
		s.sendUnreachable(p, ipv4.CodePortUnreachable)
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
//
// errno and hard are what the message means (udpICMPErrno,
// udpICMPv6Errno).
func (s *Stack) deliverUDPICMPError(errno syscall.Errno, hard bool, q *ip.Packet) {
	st := s.ctr.get()
	p := q.Payload
	// The quote holds at least the first 64 bits of the datagram (RFC
	// 792), of which the ports are the first 32.
	if len(p) < 4 {
		inc(&st.ICMP.DropBadQuote)
		return
	}
	inc(&st.UDP.ICMPErrorsIn)
	t := ip.Tuple{
		Local:  netip.AddrPortFrom(q.Source, uint16(p[0])<<8|uint16(p[1])),
		Remote: netip.AddrPortFrom(q.Destination, uint16(p[2])<<8|uint16(p[3])),
	}
	c := s.udp.find(t)
	if c == nil {
		inc(&st.ICMP.ErrorsNoConnection)
		return
	}
	if !hard || !c.setError(errno) { // setError counts UDP.ICMPErrorsReported
		inc(&st.ICMP.ErrorsIgnored)
	}
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
	for i := range s.udp.bucket {
		for _, e := range s.udp.entries(uint16(i)) {
			e.c.Close()
		}
	}
}
