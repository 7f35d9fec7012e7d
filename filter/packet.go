package filter

import (
	"encoding/binary"
	"net/netip"

	"github.com/ustack/ustack/ip"
)

// Hook is one of the five points of the stack's packet path where the
// filter runs, in Linux's order (DESIGN.md, "Network layer").
type Hook uint8

// The hook points.
const (
	Prerouting  Hook = iota // after the IP header is valid, before the routing decision
	Input                   // for this host, after reassembly, before the transport
	Forward                 // routed through this host
	Output                  // locally generated, after the route is chosen
	Postrouting             // leaving, before fragmentation or segmentation
	numHooks
)

var hookNames = [numHooks]string{"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}

// String returns the chain name of the hook, as iptables names it.
func (h Hook) String() string {
	if h < numHooks {
		return hookNames[h]
	}
	return "HOOK?"
}

// Packet is what the filter sees of a datagram at a hook: the stack's
// family-neutral description (whose Payload, and Datagram when set, the
// filter reads and NAT rewrites in place) plus the names of the NICs it
// came in on and goes out of.
//
// Pass the same Packet through every hook one datagram traverses
// (prerouting then input; output then postrouting; prerouting, forward,
// postrouting): it remembers the connection tracking entry found at the
// first, as Linux's skb->_nfct does, so that later hooks find it even after
// NAT changed the addresses. Call Reset before reusing it for another
// datagram.
type Packet struct {
	// IP is the datagram. Source, Destination and Protocol are read from
	// it; NAT rewrites Source and Destination, the transport header in
	// Payload, and the IP header in Datagram when Datagram is non-nil.
	IP *ip.Packet
	// In and Out are the names of the input and output NICs ("" where
	// there is none: no In at output, no Out at prerouting and input).
	In, Out string

	ct    *conn
	dir   uint8 // dirOriginal or dirReply
	ctst  State
	track bool // conntrack has seen this datagram
	hit   hit  // where the last chain walked ended, for the tracer
}

// Reset forgets the connection tracking state of a previous datagram.
func (p *Packet) Reset() {
	p.ct, p.dir, p.ctst, p.track, p.hit = nil, 0, 0, false, hit{}
}

// State is the connection tracking state of a packet, as the conntrack
// match's --ctstate names it.
type State uint8

// The conntrack states (iptables-extensions(8), conntrack).
const (
	StateInvalid     State = 1 << iota // INVALID: not associated with a known connection, or out of window
	StateNew                           // NEW: starts a new connection
	StateEstablished                   // ESTABLISHED: of a connection seen in both directions
	StateRelated                       // RELATED: an ICMP error about a tracked connection
	StateUntracked                     // UNTRACKED: not tracked (a fragment, an unknown protocol)
)

var stateNames = []struct {
	s    State
	name string
}{{StateInvalid, "INVALID"}, {StateNew, "NEW"}, {StateEstablished, "ESTABLISHED"}, {StateRelated, "RELATED"}, {StateUntracked, "UNTRACKED"}}

// TCP header flags (RFC 9293 §3.1; CWR and ECE from RFC 3168 §23.2).
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
	flagPSH = 0x08
	flagACK = 0x10
	flagURG = 0x20
	flagECE = 0x40
	flagCWR = 0x80
)

// ICMP and ICMPv6 message types the filter and conntrack need (RFC 792;
// RFC 4443 §2.1).
const (
	icmpEchoReply       = 0
	icmpDestUnreachable = 3
	icmpSourceQuench    = 4
	icmpRedirect        = 5
	icmpEcho            = 8
	icmpTimeExceeded    = 11
	icmpParamProblem    = 12

	icmp6DestUnreachable = 1
	icmp6PacketTooBig    = 2
	icmp6TimeExceeded    = 3
	icmp6ParamProblem    = 4
	icmp6EchoRequest     = 128
	icmp6EchoReply       = 129
)

// view is what matching and tracking read from a datagram, decoded once
// per hook: the transport header's ports, flags and sequence numbers, or
// the ICMP type, code and echo identifier.
type view struct {
	src, dst     netip.Addr
	src4, dst4   uint32 // src and dst when IPv4
	proto        uint8
	v6           bool
	l4           bool // the transport header below is present and long enough
	sport, dport uint16
	flags        uint8  // TCP
	seq, ack     uint32 // TCP
	win          uint16 // TCP
	dataOff      int    // TCP header length
	typ, code    uint8  // ICMP
	id           uint16 // ICMP echo identifier
	length       int    // bytes counted for the rule counters
}

// decode fills v from p. A transport header shorter than its fixed part, a
// TCP data offset out of range, or an IPv4 fragment other than the first
// leaves v.l4 false: port and flag matches then fail, and conntrack calls
// the packet INVALID (or, for a non-first fragment, UNTRACKED).
func (v *view) decode(p *ip.Packet) (frag bool) {
	*v = view{src: p.Source, dst: p.Destination, proto: p.Protocol, v6: !p.Destination.Is4()}
	if !v.v6 {
		s, d := p.Source.As4(), p.Destination.As4()
		v.src4, v.dst4 = binary.BigEndian.Uint32(s[:]), binary.BigEndian.Uint32(d[:])
	}
	v.length = len(p.Datagram)
	if v.length == 0 {
		if v.v6 {
			v.length = 40 + len(p.Payload)
		} else {
			v.length = 20 + len(p.Payload)
		}
	}
	if !v.v6 && len(p.Datagram) >= 20 {
		// RFC 791 §3.1: a fragment offset, or More Fragments set.
		if binary.BigEndian.Uint16(p.Datagram[6:8])&0x3fff != 0 {
			return true
		}
	}
	b := p.Payload
	switch p.Protocol {
	case ip.ProtocolTCP:
		// RFC 9293 §3.1: 20 bytes of fixed header; Data Offset in words.
		if len(b) < 20 {
			return false
		}
		off := int(b[12]>>4) * 4
		if off < 20 || off > len(b) {
			return false
		}
		v.sport, v.dport = binary.BigEndian.Uint16(b[0:]), binary.BigEndian.Uint16(b[2:])
		v.seq, v.ack = binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint32(b[8:])
		v.flags = b[13]
		v.win = binary.BigEndian.Uint16(b[14:])
		v.dataOff = off
		v.l4 = true
	case ip.ProtocolUDP:
		// RFC 768: 8 bytes of header.
		if len(b) < 8 {
			return false
		}
		v.sport, v.dport = binary.BigEndian.Uint16(b[0:]), binary.BigEndian.Uint16(b[2:])
		v.l4 = true
	case ip.ProtocolICMP, ip.ProtocolICMPv6:
		// RFC 792, RFC 4443 §2.1: type, code, checksum, then 4 bytes.
		if len(b) < 8 {
			return false
		}
		v.typ, v.code = b[0], b[1]
		v.id = binary.BigEndian.Uint16(b[4:])
		v.l4 = true
	}
	return false
}

// isEcho reports whether v is an echo request or reply of its family.
func (v *view) echo() (request, reply bool) {
	if v.proto == ip.ProtocolICMP && !v.v6 {
		return v.typ == icmpEcho, v.typ == icmpEchoReply
	}
	if v.proto == ip.ProtocolICMPv6 && v.v6 {
		return v.typ == icmp6EchoRequest, v.typ == icmp6EchoReply
	}
	return false, false
}

// icmpError reports whether v is an ICMP error message, which quotes the
// datagram it is about (RFC 792; RFC 4443 §2.1: types below 128).
func (v *view) icmpError() bool {
	if !v.l4 {
		return false
	}
	if v.proto == ip.ProtocolICMP && !v.v6 {
		switch v.typ {
		case icmpDestUnreachable, icmpSourceQuench, icmpRedirect, icmpTimeExceeded, icmpParamProblem:
			return true
		}
	}
	if v.proto == ip.ProtocolICMPv6 && v.v6 {
		return v.typ >= icmp6DestUnreachable && v.typ <= icmp6ParamProblem
	}
	return false
}
