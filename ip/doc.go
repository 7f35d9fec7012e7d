// Package ip holds what the network layer shares between address families
// and transports: the 4-tuple (Tuple), the family-neutral description of a
// packet passed between L3 and L4 (Packet), and the routing table over
// netip.Prefix with one longest-prefix match per family (Route, Table).
//
// It imports only the standard library, so that ipv4, a future ipv6, tcp,
// udp and stack can all depend on it.
package ip
