// Package neigh is the neighbour cache shared by ARP (RFC 826, RFC 1122
// §2.3.2) and IPv6 Neighbor Discovery (RFC 4861): it maps on-link IP
// addresses of either family (netip.Addr) to link-layer addresses
// (link.MAC) and runs Neighbor Unreachability Detection on every entry,
// the state machine of RFC 4861 Appendix C (INCOMPLETE, REACHABLE, STALE,
// DELAY, PROBE). Linux runs ARP through the same state machine
// (net/core/neighbour.c); so does this package.
//
// It is a pure core: it never reads the clock nor starts goroutines;
// every method takes the current time, and NextDeadline says when Tick
// next has work. It sends nothing itself: Resolve and Tick tell the caller
// which solicitation (an ARP request or a Neighbor Solicitation) to send,
// to the broadcast or solicited-node multicast address or as a unicast
// probe to the cached link-layer address, and the input methods hand back
// the packets that waited for an address.
//
// The caller maps its protocol onto four inputs:
//
//   - Resolve: a packet to send to a neighbour (Appendix C "Packet to
//     send"; STALE becomes DELAY).
//   - Advertisement: a Neighbor Advertisement (RFC 4861 §7.2.5) or an ARP
//     reply, with its Solicited, Override and Router flags.
//   - Learn: a link-layer address seen in a Neighbor Solicitation, Router
//     Solicitation, Redirect (§7.2.3, §6.2.6, §8.3) or ARP request.
//   - Confirm: upper-layer reachability confirmation (§7.3.1), which TCP
//     gives when an ACK advances, as Linux's dst_confirm.
package neigh
