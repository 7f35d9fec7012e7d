package stack

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"
)

// This file is package net's API on a Stack: DialContext, Listen and
// ListenPacket take package net's network names and "host:port"
// addresses, resolve names with the stack's Resolver, and return the
// errors package net returns for the same cause. Their steps are those
// of net.Dialer.DialContext and net.ListenConfig (resolve the address
// list, then dial each address in turn), so that the two read alike.

// DialContext connects to address on the named network, as
// net.Dialer.DialContext does: network is "tcp", "tcp4", "udp" or "udp4"
// ("tcp6" and "udp6" are accepted and fail as on a host without IPv6),
// and address is "host:port" where host is an IP literal or a name and
// port a number or a service name (net.LookupPort). A name is looked up
// with s.Resolver() as a rooted name (with a final dot), so that the
// host's search domains never apply (see Resolver), and each address it
// has is tried in turn, IPv4 first, within ctx: each gets an equal share
// of the time left before ctx's deadline (at least 2 s, as net.Dialer
// gives), and the first error is returned if none answers. So that
//
//	http.Transport{DialContext: s.DialContext}
//
// makes net/http use the stack, host names included.
//
// Errors are package net's: a *net.OpError with Op "dial", wrapping a
// net.UnknownNetworkError, a *net.AddrError for a malformed address or a
// name with no address of the network's family, a *net.DNSError for a
// name that does not resolve, an *os.SyscallError with the errno the
// kernel would give (ECONNREFUSED, ETIMEDOUT, ENETUNREACH...), or, when
// ctx ends first, an error for which errors.Is(err,
// context.DeadlineExceeded) or errors.Is(err, context.Canceled) holds.
// The connection is a *TCPConn or a connected *UDPConn.
func (s *Stack) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if ctx == nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("stack: DialContext: nil context")}
	}
	if err := s.usable(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	addrs, err := s.resolveAddrList(ctx, "dial", network, address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	// net's dialSerial: one address after another, each with its share
	// of the time left.
	var firstErr error
	for i, ra := range addrs {
		if err := ctx.Err(); err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Addr: inetAddr(network, ra), Err: mapContextError(err)}
		}
		dialCtx := ctx
		if deadline, ok := ctx.Deadline(); ok {
			// Context deadlines are on the system clock, whatever the
			// stack's Clock.
			partial, err := partialDeadline(time.Now(), deadline, len(addrs)-i)
			if err != nil {
				if firstErr == nil {
					firstErr = &net.OpError{Op: "dial", Net: network, Addr: inetAddr(network, ra), Err: err}
				}
				break
			}
			if partial.Before(deadline) {
				var cancel context.CancelFunc
				dialCtx, cancel = context.WithDeadline(ctx, partial)
				defer cancel()
			}
		}
		c, err := s.dialSingle(dialCtx, network, ra)
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// dialSingle dials one resolved address.
func (s *Stack) dialSingle(ctx context.Context, network string, ra netip.AddrPort) (net.Conn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: network, Addr: inetAddr(network, ra), Err: err}
	}
	if a := ra.Addr(); !a.IsValid() || a.IsUnspecified() {
		// The stack has no loopback to reach for an empty host: as on
		// a host with no route for the family.
		return nil, opErr(os.NewSyscallError("connect", syscall.ENETUNREACH))
	}
	if isTCP(network) {
		c, err := s.DialTCP(ctx, ra)
		if err != nil {
			return nil, opErr(innerError(err))
		}
		return c, nil
	}
	c, err := s.DialUDP(netip.AddrPort{}, ra)
	if err != nil {
		return nil, opErr(innerError(err))
	}
	return c, nil
}

// Listen announces on the local address of a "tcp" or "tcp4" network,
// as net.Listen does: an empty host or 0.0.0.0 listens on every address
// of the stack, port 0 picks a free port, and a name is resolved with
// s.Resolver() (its first IPv4 address is used). The listener is a
// *TCPListener with DefaultBacklog. "tcp6" and IPv6 addresses fail as on
// a host without IPv6. Errors are a *net.OpError with Op "listen", as
// package net's (EADDRINUSE, EADDRNOTAVAIL for an address the stack does
// not own, *net.AddrError, net.UnknownNetworkError, *net.DNSError).
func (s *Stack) Listen(network, address string) (net.Listener, error) {
	la, err := s.listenAddr(network, address, isTCP)
	if err != nil {
		return nil, err
	}
	l, err := s.ListenTCP(la)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: inetAddr(network, la), Err: innerError(err)}
	}
	return l, nil
}

// ListenPacket announces on the local address of a "udp" or "udp4"
// network, as net.ListenPacket does, with the addresses and errors of
// Listen. The connection is an unconnected *UDPConn.
func (s *Stack) ListenPacket(network, address string) (net.PacketConn, error) {
	la, err := s.listenAddr(network, address, isUDP)
	if err != nil {
		return nil, err
	}
	c, err := s.ListenUDP(la)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: inetAddr(network, la), Err: innerError(err)}
	}
	return c, nil
}

// listenAddr resolves the address of Listen or ListenPacket, whose
// network must satisfy want, and returns the IPv4 address to bind (an
// invalid Addr for an empty host, meaning every address).
func (s *Stack) listenAddr(network, address string, want func(string) bool) (netip.AddrPort, error) {
	if err := s.usable(); err != nil {
		return netip.AddrPort{}, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	addrs, err := s.resolveAddrList(context.Background(), "listen", network, address)
	if err != nil {
		return netip.AddrPort{}, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	la := addrs[0] // IPv4 first, as net's addrList.first(isIPv4)
	if !want(network) {
		// net.Listen("udp", ...) and net.ListenPacket("tcp", ...).
		return la, &net.OpError{Op: "listen", Net: network, Addr: inetAddr(network, la), Err: &net.AddrError{Err: "unexpected address type", Addr: address}}
	}
	if a := la.Addr(); !a.IsValid() && strings.HasSuffix(network, "6") {
		// "tcp6" or "udp6" with an empty host: every IPv6 address.
		la = netip.AddrPortFrom(netip.IPv6Unspecified(), la.Port())
	}
	return la, nil
}

// errMissingAddress is package net's error for Dial with an empty
// address.
var errMissingAddress = errors.New("missing address")

// errNoSuitableAddress is package net's error for a name with no
// address of the network's family.
const errNoSuitableAddress = "no suitable address found"

// resolveAddrList is net's Resolver.resolveAddrList for the networks of
// the stack: it checks network, splits address, looks up the port and
// the host, and returns at least one address, IPv4 ones first (an
// invalid Addr with the port for an empty host). op is "dial" or
// "listen".
func (s *Stack) resolveAddrList(ctx context.Context, op, network, address string) ([]netip.AddrPort, error) {
	if !isTCP(network) && !isUDP(network) {
		return nil, net.UnknownNetworkError(network)
	}
	if op == "dial" && address == "" {
		return nil, errMissingAddress
	}
	var host, service string
	if address != "" {
		var err error
		if host, service, err = net.SplitHostPort(address); err != nil {
			return nil, err
		}
	}
	r := s.Resolver()
	port, err := r.LookupPort(ctx, network, service)
	if err != nil {
		return nil, err
	}
	if host == "" {
		return []netip.AddrPort{netip.AddrPortFrom(netip.Addr{}, uint16(port))}, nil
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		ips, err = s.lookupHost(ctx, r, network, host)
		if err != nil {
			return nil, err
		}
	}
	// net's filterAddrList with ipv4only or ipv6only (an IPv4-mapped
	// address counts as IPv4), and the IPv4 addresses first as net's
	// partition(isIPv4) puts them for "tcp" and "udp".
	var v4, v6 []netip.AddrPort
	for _, ip := range ips {
		ip = ip.WithZone("")
		if ip.Is4() || ip.Is4In6() {
			v4 = append(v4, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
		} else {
			v6 = append(v6, netip.AddrPortFrom(ip, uint16(port)))
		}
	}
	switch network[len(network)-1] {
	case '4':
		v6 = nil
	case '6':
		v4 = nil
	}
	if len(v4)+len(v6) == 0 {
		return nil, &net.AddrError{Err: errNoSuitableAddress, Addr: host}
	}
	return append(v4, v6...), nil
}

// lookupHost looks a name up with r, asking for the addresses of
// network's family only. The name is made rooted, so that the host's
// search domains (resolv.conf's search and ndots) never apply; a
// *net.DNSError then names the host as given and the stack's
// nameserver.
func (s *Stack) lookupHost(ctx context.Context, r *net.Resolver, network, host string) ([]netip.Addr, error) {
	family := "ip"
	switch network[len(network)-1] {
	case '4':
		family = "ip4"
	case '6':
		family = "ip6"
	}
	name := host
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	ips, err := r.LookupNetIP(ctx, family, name)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) {
			de.Name = host
			if ns := s.dnsServer(); de.Server != "" && ns.IsValid() {
				de.Server = ns.String()
			} else {
				de.Server = "" // none: the host's resolv.conf names one it never asked
			}
		}
		return nil, err
	}
	return ips, nil
}

func isTCP(network string) bool {
	return network == "tcp" || network == "tcp4" || network == "tcp6"
}

func isUDP(network string) bool {
	return network == "udp" || network == "udp4" || network == "udp6"
}

// inetAddr is the net.Addr of network for a, as package net builds it: a
// *net.TCPAddr or *net.UDPAddr, with a nil IP for an invalid Addr (the
// empty host).
func inetAddr(network string, a netip.AddrPort) net.Addr {
	var ip net.IP
	if a.Addr().IsValid() {
		ip = a.Addr().AsSlice()
	}
	if isTCP(network) {
		return &net.TCPAddr{IP: ip, Port: int(a.Port())}
	}
	return &net.UDPAddr{IP: ip, Port: int(a.Port())}
}

// innerError is the error a *net.OpError of the stack's own calls
// (DialTCP, ListenUDP...) wraps, for the caller to wrap again with its
// own Net and Addr.
func innerError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

// partialDeadline is net's: the deadline for one of addrsRemaining
// addresses, an equal share of the time left but at least 2 s (or all
// of it, if less is left).
func partialDeadline(now, deadline time.Time, addrsRemaining int) (time.Time, error) {
	left := deadline.Sub(now)
	if left <= 0 {
		return time.Time{}, errTimeout
	}
	timeout := left / time.Duration(addrsRemaining)
	const saneMinimum = 2 * time.Second
	if timeout < saneMinimum {
		timeout = min(left, saneMinimum)
	}
	return now.Add(timeout), nil
}

// errTimeout and errCanceled are what package net reports when a dial's
// context ends: "i/o timeout", for which errors.Is(err,
// context.DeadlineExceeded) holds (and, as for the stack's other
// timeouts, errors.Is(err, os.ErrDeadlineExceeded)), and "operation was
// canceled", for which errors.Is(err, context.Canceled) holds.
var (
	errTimeout  error = &timeoutError{}
	errCanceled error = &canceledError{}
)

type timeoutError struct{}

func (*timeoutError) Error() string   { return "i/o timeout" }
func (*timeoutError) Timeout() bool   { return true }
func (*timeoutError) Temporary() bool { return true }
func (*timeoutError) Is(err error) bool {
	return err == context.DeadlineExceeded || err == os.ErrDeadlineExceeded
}

type canceledError struct{}

func (*canceledError) Error() string     { return "operation was canceled" }
func (*canceledError) Is(err error) bool { return err == context.Canceled }

// mapContextError is net's mapErr: a context's error as package net
// reports it.
func mapContextError(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return errTimeout
	case errors.Is(err, context.Canceled):
		return errCanceled
	}
	return err
}
