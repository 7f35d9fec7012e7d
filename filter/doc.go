// Package filter is a packet filter in the iptables rule language, with
// the connection tracking and the NAT that its rules share, as a pure core:
// the stack calls Filter.Hook at each of its five hook points with the
// packet and the time, and gets a Verdict; NAT rewrites the packet's bytes
// in place. The package never reads the clock and starts no goroutine.
//
// Rules are written as iptables takes them (iptables(8),
// iptables-extensions(8)):
//
//	-A INPUT -p tcp -s 192.168.1.0/24 -m tcp --dport 80 -j ACCEPT
//
// in two tables, filter (INPUT, FORWARD, OUTPUT) and nat (PREROUTING,
// OUTPUT, POSTROUTING), loaded from a file in iptables-save form or one
// command at a time with Filter.Exec, and listed back with Filter.List (the
// form of iptables -L -v -n) and Filter.Save (iptables -S, which parses back
// into the same rules).
//
// Connection tracking follows Linux's nf_conntrack in spirit: TCP through
// its states with window tracking, UDP and ICMP echo by timeout, ICMP errors
// about a tracked flow RELATED, a bounded table that evicts unassured
// entries first. NAT bindings are chosen on a flow's first packet and
// applied to every packet of the flow in both directions, with incremental
// checksum updates (RFC 1624).
//
// # Calling it from the stack
//
// The stack keeps one Packet per datagram and calls Hook at each hook point
// it passes, in order, stopping at the first verdict that is not Accept:
//
//	received, for this host:   Prerouting, Input
//	received, routed onwards:  Prerouting, Forward, Postrouting
//	locally generated:         Output, Postrouting
//
// Prerouting goes after the IP header is valid and, as Linux's defrag
// does before conntrack, after reassembly: an IPv4 fragment seen by Hook
// is UNTRACKED and matches no port. After Prerouting or Output the
// destination may have changed (DNAT, REDIRECT): route again. For Reject
// the stack sends the TCP reset or the ICMP error Verdict.RejectWith
// names, about the original datagram. Call Conntrack.Expire now and then
// (each entry also expires when its flow next looks it up).
package filter
