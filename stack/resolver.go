package stack

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// ErrNoNameservers is why the Resolver of a Stack whose
// Options.Nameservers is empty fails every DNS lookup; Go's resolver
// reports it as the text of a *net.DNSError's Err.
var ErrNoNameservers = errors.New("stack: no nameservers (Options.Nameservers is empty)")

// dnsState is the stack's DNS client: its one Resolver and the
// nameserver its queries go to.
type dnsState struct {
	once     sync.Once
	resolver *net.Resolver
	servers  []netip.AddrPort // Options.Nameservers with port 0 made 53
	// current counts the failovers: queries go to
	// servers[current%len(servers)], and a query that finds no answer
	// there moves it on to the next server.
	current atomic.Uint32
}

// Resolver returns the stack's DNS resolver: a *net.Resolver with
// PreferGo whose queries travel over the stack's own UDP (RFC 1035
// §4.2.1), and over its TCP when an answer comes truncated (RFC 1123
// §6.1.3.2), to the servers of Options.Nameservers. It is the one
// DialContext, Listen and ListenPacket use; every call returns the same
// Resolver. The servers are used in order: one that does not answer (a
// timeout or an ICMP unreachable) passes the queries that follow to the
// next. Without nameservers every DNS lookup fails with a
// *net.DNSError whose Err is ErrNoNameservers' text.
//
// Go's resolver still takes from the host, as it does for every
// Resolver: /etc/hosts, consulted before DNS (as /etc/nsswitch.conf
// orders it), so that "localhost" is 127.0.0.1, which the stack cannot
// reach; /etc/services for port names; and /etc/resolv.conf's options:
// timeout and attempts, rotate, single-request, use-vc, edns0 and
// trust-ad, and its search domains and ndots, which apply to the names
// given to this Resolver's methods unless they end with a dot. Its
// nameserver lines only count the tries (attempts times servers) and
// name the server in a *net.DNSError; the queries go to
// Options.Nameservers. DialContext, Listen and ListenPacket look names up
// rooted, so that the host's search domains never apply to them, and
// their *net.DNSError names the stack's nameserver.
func (s *Stack) Resolver() *net.Resolver {
	if s.usable() != nil {
		return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
			return nil, s.usable()
		}}
	}
	d := &s.dns
	d.once.Do(func() {
		for _, a := range s.opts.Nameservers {
			if a.Port() == 0 {
				a = netip.AddrPortFrom(a.Addr(), 53)
			}
			d.servers = append(d.servers, netip.AddrPortFrom(a.Addr().Unmap(), a.Port()))
		}
		d.resolver = &net.Resolver{PreferGo: true, Dial: s.dialDNS}
	})
	return d.resolver
}

// dnsServer returns the nameserver queries go to now, or the zero
// AddrPort if there are none.
func (s *Stack) dnsServer() netip.AddrPort {
	s.Resolver()
	d := &s.dns
	if len(d.servers) == 0 {
		return netip.AddrPort{}
	}
	return d.servers[d.current.Load()%uint32(len(d.servers))]
}

// dialDNS is the Resolver's Dial: it ignores address (a nameserver of
// the host's resolv.conf) and dials the stack's current nameserver on
// network, "udp" or "tcp" (Go's resolver asks for TCP after a truncated
// answer, or with resolv.conf's use-vc).
func (s *Stack) dialDNS(ctx context.Context, network, _ string) (net.Conn, error) {
	d := &s.dns
	if len(d.servers) == 0 {
		return nil, ErrNoNameservers
	}
	cur := d.current.Load()
	ns := d.servers[cur%uint32(len(d.servers))]
	failover := func() { d.current.CompareAndSwap(cur, cur+1) }
	switch network {
	case "udp", "udp4":
		c, err := s.DialUDP(netip.AddrPort{}, ns)
		if err != nil {
			failover()
			return nil, err
		}
		return &dnsUDPConn{UDPConn: c, failover: failover}, nil
	case "tcp", "tcp4":
		c, err := s.DialTCP(ctx, ns)
		if err != nil {
			failover()
			return nil, err
		}
		return c, nil
	}
	return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
}

// dnsUDPConn is the connected UDP socket of one DNS query. It is a
// net.PacketConn, which tells Go's resolver to speak DNS over UDP on it
// rather than over a stream; a Read that fails (the resolver's deadline
// passed, or an ICMP port unreachable came back) moves the stack on to
// its next nameserver.
type dnsUDPConn struct {
	*UDPConn
	failover func()
}

// Read reads the answer, as UDPConn.Read does.
func (c *dnsUDPConn) Read(b []byte) (int, error) {
	n, err := c.UDPConn.Read(b)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		c.failover()
	}
	return n, err
}
