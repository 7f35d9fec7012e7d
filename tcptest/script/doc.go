// Package script runs TCP test scripts written in packetdrill's language
// (google/packetdrill, its syntax.md) against ustack, deterministically and
// in virtual time: each script gets a fresh tcptest.Stack, the stack under
// test at 192.168.0.1 and the scripted peer at 192.0.2.1; with
// --ip_version=ipv6 (a script's option line, or Options.IPVersion, the
// command line's, which wins as in packetdrill) at packetdrill's IPv6
// defaults fd3d:fa7b:d17d::1 and 2001:db8::1, with IPv6 on the wire.
//
// A script is a list of timed events:
//
//	0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
//	+0    bind(3, ..., ...) = 0
//	+0    listen(3, 1) = 0
//	+0    < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
//	+0    > S. 0:0(0) ack 1 <...>
//	+.1   < . 1:1(0) ack 1 win 514
//	+0    accept(3, ..., ...) = 4
//	+0...0.5 read(4, ..., 100) = 10
//
// Supported:
//
//   - Times: absolute (0.1), relative to the end of the previous event
//     (+0.1), any time (*), ranges (0.1~0.2, +0.1~+0.2); the tolerance is
//     packetdrill's 4 ms unless --tolerance_usecs, --tolerance_percent or
//     Options say otherwise.
//   - Inbound (<) and outbound (>) TCP segments with optional ports
//     (40000>8080), flags (F S R P . U E W, "-" for none),
//     start:end(len), ack, win, urg and options <mss N, sackOK, nop, eol,
//     wscale N, TS val N ecr N, sack L:R ...> or <...>. Sequence numbers
//     and timestamps are remapped as packetdrill does: the peer's SYN is
//     absolute, the rest relative to the initial sequence numbers; an
//     inbound TSecr names the TSval of an outbound line.
//   - An outbound line longer than the MSS matches the consecutive
//     segments that together cover it (as packetdrill does for a kernel
//     using TSO): the header of the last, the sequence number of the
//     first.
//   - System calls socket, bind, listen, accept, connect, read, recv,
//     write, send, sendto (without address), close, shutdown, fcntl
//     (F_GETFL, F_SETFL with O_NONBLOCK), ioctl (SIOCINQ), setsockopt and
//     getsockopt for SO_REUSEADDR, SO_LINGER, SO_KEEPALIVE, SO_ERROR,
//     SO_SNDBUF, SO_RCVBUF, TCP_NODELAY, TCP_MAXSEG, TCP_LINGER2,
//     TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_CONGESTION (setsockopt,
//     "cubic" or "reno"); "..." wildcards; errno
//     results ("= -1 EAGAIN (note)"). File descriptors are named by the
//     script: the result of socket or accept is the number the later
//     lines use.
//   - Blocking calls. A call written "+0...0.5 read(...)" may block: the
//     script goes on, and the call returns when the core lets it, at a
//     virtual time checked against 0.5 (packetdrill's end-time rule:
//     relative to the same base as the start). A call without "..." that
//     would block moves the clock through the timers until it returns
//     (it fails if nothing can wake it).
//   - Backquoted shell commands and %{ }% code blocks are skipped with a
//     note in the Result: they configure or inspect Linux. The exception
//     is `sysctl -q net.ipv4.tcp_syncookies=N` (0 never, 1 when the SYN
//     queue is full, 2 always), which sets the SYN cookie mode of the
//     sockets created afterwards.
//
// IP versions, packetdrill's --ip_version:
//
//   - ipv4: AF_INET sockets, IPv4 on the wire.
//   - ipv6: AF_INET6 sockets, IPv6 on the wire: the IPv6 pseudo-header in
//     every checksum, an MSS of the MTU less 60 (RFC 8200 §8.3; the MTU
//     is 1500 unless --mtu or Options.MTU say otherwise, and Linux's
//     selftests use 1520, so that the IPv4 scripts' MSS of 1460 holds),
//     ICMPv6 errors, IPv6 headers in the capture.
//   - ipv4-mapped-ipv6: AF_INET6 sockets whose addresses are IPv4-mapped
//     (::ffff:192.0.2.1), IPv4 on the wire.
//
// socket()'s domain, when written, must be the version's (AF_INET or
// AF_INET6; "..." is filled in). bind and connect take "..." or a socket
// address as packetdrill writes it for both families,
// {sa_family=AF_INET6, sin_port=htons(8080), sin_addr=inet_addr("2001:db8::1")},
// and in the sockaddr_in6 spelling (sin6_family, sin6_port,
// sin6_addr=inet6_addr("..."), sin6_flowinfo=0, sin6_scope_id=0). A
// sockaddr of the other family is EAFNOSUPPORT and a bind to an address
// not the stack's EADDRNOTAVAIL, as on Linux; connect goes to the address
// given. In an IPv6 run the ICMP lines are ICMPv6: packetdrill's
// unreachable (codes no_route, admin_prohibited, not_neighbour,
// address_unreachable, port_unreachable), packet_too_big mtu N,
// time_exceeded and parameter_problem with their codes; the ICMPv4 names
// of a script written for IPv4 map to their RFC 4443 counterparts
// (frag_needed to Packet Too Big, host to address unreachable, proto to
// Parameter Problem "unrecognized Next Header", ...), and those without
// one (source_quench, redirect, source_route_failed) are errors naming
// the line. Not supported, with an error naming the line: the
// "ipv6 SRC > DST:" encapsulation prefix, IP information such as
// (flowlabel ...) or hop limits, IPv6 socket options (SOL_IPV6,
// IPV6_V6ONLY, ...), addresses with a zone, sendto with an address.
//
// An outbound segment is taken from what the stack sent, in order: before
// its time window (a timing error), not at all, or with any field that
// differs, the script fails; so does a segment nobody expected, before a
// later expected one or after the last line. Syntax or features ustack
// cannot run (UDP, outbound ICMP, TCP Fast Open, MD5, ECN, epoll,
// sendmsg...) are errors naming the line, never a silent pass.
//
// Inbound ICMP errors are packetdrill's lines
//
//	+0 < icmp unreachable frag_needed mtu 1200 [1:1461(1460)]
//	+0 < icmp unreachable host
//	+0 < [1:1461(1460)] icmp time_exceeded
//
// with the types unreachable (codes net_unreachable or net,
// host_unreachable or host, protocol_unreachable or proto,
// port_unreachable or port, frag_needed with its mtu, source_route_failed
// and RFC 1812's others), time_exceeded and parameter_problem; source_quench
// and redirect are accepted and ignored, as the core ignores them. The
// bracketed segment, in the stack's sequence space, is the one quoted;
// without it the stack's last segment on the flow is, as in packetdrill.
// They reach the current connection through tcp.Conn.HandleICMP.
//
// Options.LenientOptions compares option lists by the presence of each
// kind (Linux's window scale and option layout are not the RFC's);
// Options.IgnorePush leaves the PSH flag out (where it goes is the
// sender's choice).
//
// Differences from packetdrill on Linux: SO_SNDBUF and SO_RCVBUF size the
// core's buffers only for connections created afterwards (doubled, as
// Linux does); receive-buffer auto-tuning is off unless Options.Config
// turns it on, so a listener offers window scale 3 (Linux offers 7 or
// more for its tcp_rmem maximum); TCP_LINGER2 on an accepted socket
// changes the Config its listener's connections share; outbound TSecr
// values are compared (packetdrill never compares them) unless
// LenientOptions is set.
package script
