// Package arp implements the Address Resolution Protocol for IPv4 over
// Ethernet (RFC 826), with the host requirements of RFC 1122 §2.3.2 and the
// probe and announcement conventions of RFC 5227.
//
// It has two parts:
//
//   - The wire format: Packet is a view of a 28-byte ARP packet, validated
//     once by ParsePacket; PutPacket, PutReply and PutGratuitous build
//     packets into caller-owned buffers.
//   - The neighbour cache: Cache maps IPv4 addresses to MAC addresses
//     through a neigh.Cache, so that ARP entries go through Neighbor
//     Unreachability Detection (REACHABLE, STALE, DELAY, PROBE) as IPv6
//     ones do; it holds packets waiting for resolution, rate-limits
//     requests, and bounds the table. It is a pure core: it never reads
//     the clock nor starts goroutines; every method takes the current
//     time, and NextDeadline says when Tick next has work. It sends
//     nothing itself: its results tell the caller (package stack) what
//     to send.
//
// A typical output path calls Cache.Lookup, and on a miss Cache.Resolve,
// broadcasting a request built with PutPacket when Resolve says so. The
// input path parses an ARP frame's payload with ParsePacket, passes it to
// Cache.Input, answers with PutReply when InputResult.Reply is set, and sends
// any InputResult.Released packets. A timer calls Cache.Tick (or
// Cache.TickSolicit, to send PROBE's requests by unicast) at
// Cache.NextDeadline; TCP's acknowledgements call Cache.Confirm.
package arp
