package script

import (
	"fmt"

	"github.com/ustack/ustack/tcp"
	"github.com/ustack/ustack/tcptest"
)

// icmpLine is an inbound ICMP error line: an ICMP message from the path
// about a segment the stack sent. Its type and code are kept as written
// and resolved when the line runs, when the family is known (icmpFor):
// packetdrill reads the names as ICMPv4's or ICMPv6's by --ip_version.
type icmpLine struct {
	typeName, codeName string
	mtu                int
	// quoted: the line names the quoted segment, [start:end(len)], in the
	// stack's sequence space; otherwise the stack's last segment on the
	// flow is quoted, as packetdrill does.
	quoted bool
	start  uint32
	n      uint16
}

// icmpTypes are packetdrill's ICMPv4 type names of the errors TCP acts on,
// and the others it ignores (RFC 792 numbers).
var icmpTypes = map[string]uint8{
	"unreachable":       3,
	"source_quench":     4,
	"redirect":          5,
	"time_exceeded":     11,
	"parameter_problem": 12,
}

// icmpCodes are the code names per type: packetdrill's, with the short
// forms net, host, proto and port.
var icmpCodes = map[uint8]map[string]uint8{
	3: {
		"net_unreachable": 0, "net": 0, "host_unreachable": 1, "host": 1,
		"protocol_unreachable": 2, "proto": 2, "port_unreachable": 3, "port": 3,
		"frag_needed": 4, "source_route_failed": 5, "net_unknown": 6, "host_unknown": 7,
		"source_host_isolated": 8, "net_prohibited": 9, "host_prohibited": 10,
		"net_unreachable_for_tos": 11, "host_unreachable_for_tos": 12,
		"packet_filtered": 13, "precedence_violation": 14, "precedence_cutoff": 15,
	},
	11: {"ttl_exceeded": 0, "exceeded_ttl": 0, "frag_reassembly_time_exceeded": 1},
}

// icmpv6Types are packetdrill's ICMPv6 type names of the errors (RFC 4443
// numbers).
var icmpv6Types = map[string]uint8{
	"unreachable":       1,
	"packet_too_big":    2,
	"time_exceeded":     3,
	"parameter_problem": 4,
}

// icmpv6Codes are packetdrill's ICMPv6 code names per type (RFC 4443
// §3.1, §3.3, §3.4), with the short forms.
var icmpv6Codes = map[uint8]map[string]uint8{
	1: {
		"net_unreachable": 0, "no_route": 0, "admin_prohibited": 1, "not_neighbour": 2,
		"address_unreachable": 3, "port_unreachable": 4, "port": 4,
	},
	3: {"exceeded_hop_limit": 0, "exceeded_frag_time": 1},
	4: {"header_field": 0, "unknown_next_header": 1, "unknown_option": 2},
}

// icmpv6Counterparts are the ICMPv6 messages an IPv6 run sends for the
// ICMPv4 names a script written for IPv4 uses, so that it runs in both
// families: "unreachable" with an ICMPv4 code maps to the RFC 4443
// message that reports the same condition. ICMPv4 codes missing here
// have no counterpart (source route failed, host isolated, the TOS and
// precedence codes), nor have source_quench and redirect: in an IPv6 run
// they are errors naming the line.
var icmpv6Counterparts = map[string][2]uint8{
	"net":              {1, 0}, // no route to destination (§3.1)
	"net_unknown":      {1, 0},
	"host_unreachable": {1, 3}, // address unreachable (§3.1)
	"host":             {1, 3},
	"host_unknown":     {1, 3},
	"net_prohibited":   {1, 1}, // communication administratively prohibited (§3.1)
	"host_prohibited":  {1, 1},
	"packet_filtered":  {1, 1},
	// An unknown upper-layer protocol: Parameter Problem, unrecognized
	// Next Header type (RFC 8200 §4, RFC 4443 §3.4).
	"protocol_unreachable": {4, 1},
	"proto":                {4, 1},
	// Fragmentation needed: Packet Too Big with the MTU (§3.2).
	"frag_needed": {2, 0},
	// Time Exceeded's ICMPv4 codes.
	"ttl_exceeded": {3, 0}, "exceeded_ttl": {3, 0}, "frag_reassembly_time_exceeded": {3, 1},
}

// known reports whether the type and code names mean something in either
// family (the parser does not know the family yet).
func (l *icmpLine) known() (typeOK, codeOK bool) {
	t4, ok4 := icmpTypes[l.typeName]
	t6, ok6 := icmpv6Types[l.typeName]
	if !ok4 && !ok6 {
		return false, false
	}
	if l.codeName == "" {
		return true, true
	}
	_, c4 := icmpCodes[t4][l.codeName]
	_, c6 := icmpv6Codes[t6][l.codeName]
	return true, ok4 && c4 || ok6 && c6
}

// hasMTU reports whether the message carries an MTU: ICMPv4's
// fragmentation needed or ICMPv6's Packet Too Big.
func (l *icmpLine) hasMTU() bool {
	return l.typeName == "unreachable" && l.codeName == "frag_needed" || l.typeName == "packet_too_big"
}

// icmpFor resolves the line's type and code for the family: ICMPv4's
// numbers (RFC 792) or ICMPv6's (RFC 4443), ICMPv4 names in an IPv6 run
// mapped to their counterparts (icmpv6Counterparts).
func (l *icmpLine) icmpFor(f tcptest.Family) (typ, code uint8, err error) {
	if f != tcptest.IPv6 {
		typ, ok := icmpTypes[l.typeName]
		if !ok {
			return 0, 0, fmt.Errorf("ICMP type %s is ICMPv6's, not ICMPv4's (this run is IPv4)", l.typeName)
		}
		if l.codeName != "" {
			if code, ok = icmpCodes[typ][l.codeName]; !ok {
				return 0, 0, fmt.Errorf("ICMP code %s is ICMPv6's, not ICMPv4's (this run is IPv4)", l.codeName)
			}
		}
		if l.mtu > 0xffff {
			// RFC 1191 §4: the Next-Hop MTU is a 16-bit field.
			return 0, 0, fmt.Errorf("ICMPv4 MTU %d out of 16-bit range", l.mtu)
		}
		return typ, code, nil
	}
	if typ, ok := icmpv6Types[l.typeName]; ok {
		if l.codeName == "" {
			return typ, 0, nil
		}
		if code, ok := icmpv6Codes[typ][l.codeName]; ok {
			return typ, code, nil
		}
		if typ == 1 || typ == 3 {
			if tc, ok := icmpv6Counterparts[l.codeName]; ok && (typ == 1 || tc[0] == 3) {
				return tc[0], tc[1], nil
			}
		}
		return 0, 0, fmt.Errorf("ICMP %s %s has no ICMPv6 counterpart", l.typeName, l.codeName)
	}
	return 0, 0, fmt.Errorf("ICMP type %s has no ICMPv6 counterpart (RFC 4443 has none)", l.typeName)
}

// quotedSegment parses [start:end(len)], the segment an ICMP error quotes.
func (p *parser) quotedSegment(l *icmpLine) error {
	if err := p.expectPunct("["); err != nil {
		return err
	}
	seqTok := p.peek()
	start, err := p.u32("quoted TCP start sequence number")
	if err != nil {
		return err
	}
	if err := p.expectPunct(":"); err != nil {
		return err
	}
	end, err := p.u32("quoted TCP end sequence number")
	if err != nil {
		return err
	}
	if err := p.expectPunct("("); err != nil {
		return err
	}
	n, err := p.u16("quoted TCP payload size")
	if err != nil {
		return err
	}
	if err := p.expectPunct(")"); err != nil {
		return err
	}
	if err := p.expectPunct("]"); err != nil {
		return err
	}
	if end != start+uint32(n) {
		return p.errf(seqTok, "inconsistent quoted TCP sequence numbers and payload size")
	}
	l.quoted, l.start, l.n = true, start, n
	return nil
}

// icmp parses the rest of an ICMP line (packetdrill's icmp_packet_spec):
//
//	< [start:end(len)] icmp TYPE [CODE] [mtu N] [[start:end(len)]]
//
// l holds a quoted segment given before "icmp".
func (p *parser) icmp(e *event, l *icmpLine) error {
	kw := p.next() // "icmp"
	if e.dir != tcptest.In {
		return p.errf(kw, "outbound ICMP packets are not supported: ustack's TCP core sends none")
	}
	t := p.next()
	l.typeName = t.text
	if t.kind != tWord {
		return p.errf(t, "unknown or unsupported ICMP type %s", t)
	}
	if ok, _ := l.known(); !ok {
		return p.errf(t, "unknown or unsupported ICMP type %s", t)
	}
	if c := p.peek(); c.kind == tWord && c.text != "mtu" {
		p.next()
		l.codeName = c.text
		if _, ok := l.known(); !ok {
			return p.errf(c, "unknown ICMP code %q for type %s", c.text, t.text)
		}
	} else if t.text == "unreachable" {
		return p.errf(c, "ICMP unreachable needs a code (net, host, proto, port, frag_needed, ...)")
	}
	if p.isWord("mtu") {
		mt := p.next()
		if !l.hasMTU() {
			return p.errf(mt, "mtu is only for unreachable frag_needed (ICMPv4) and packet_too_big (ICMPv6)")
		}
		v, err := p.u32("ICMP MTU")
		if err != nil {
			return err
		}
		l.mtu = int(v)
	}
	if p.isPunct("[") {
		if l.quoted {
			return p.errf(p.peek(), "the quoted segment is given twice")
		}
		if err := p.quotedSegment(l); err != nil {
			return err
		}
	}
	e.icmp = l
	return nil
}

// inboundICMP delivers an ICMP line to the current flow's connection: an
// ICMPv4 message in an IPv4 run (and in ipv4-mapped-ipv6, whose wire is
// IPv4), an ICMPv6 one in an IPv6 run.
func (r *runner) inboundICMP(e *event) {
	l := e.icmp
	if r.cur == nil {
		r.failf(e.line, "", "", "ICMP packet before any connection")
		return
	}
	typ, code, err := l.icmpFor(r.st.Family())
	if err != nil {
		r.failf(e.line, "", "", "%v", err)
		return
	}
	m := tcptest.ICMP{Type: typ, Code: code, MTU: l.mtu}
	if l.quoted {
		m.Seq = tcp.Value(l.start)
		// The quoted datagram: its IP header, 20 octets of TCP header
		// and the payload.
		m.QuotedLength = r.st.Family().HeaderLen() + int(l.n)
	}
	res, err := r.cur.SendICMP(m, !l.quoted)
	if err != nil {
		r.failf(e.line, "", "", "error handling ICMP packet: %v", err)
		return
	}
	r.tracef("< icmp type %d code %d mtu %d: %v", typ, code, l.mtu, res)
}
