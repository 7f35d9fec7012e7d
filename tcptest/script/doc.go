// Package script runs TCP test scripts written in packetdrill's language
// (google/packetdrill, its syntax.md) against ustack, deterministically and
// in virtual time: each script gets a fresh tcptest.Stack, the stack under
// test at 192.168.0.1 and the scripted peer at 192.0.2.1.
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
// An outbound segment is taken from what the stack sent, in order: before
// its time window (a timing error), not at all, or with any field that
// differs, the script fails; so does a segment nobody expected, before a
// later expected one or after the last line. Syntax or features ustack
// cannot run (UDP, outbound ICMP, IPv6, TCP Fast Open, MD5, ECN, epoll,
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
