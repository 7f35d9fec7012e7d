package script

import (
	"github.com/ustack/ustack/tcp"
	"github.com/ustack/ustack/tcptest"
)

// icmpLine is an inbound ICMP error line: an ICMP message from the path
// about a segment the stack sent.
type icmpLine struct {
	typ, code uint8
	mtu       int
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
	typ, ok := icmpTypes[t.text]
	if t.kind != tWord || !ok {
		return p.errf(t, "unknown or unsupported ICMP type %s", t)
	}
	l.typ = typ
	if c := p.peek(); c.kind == tWord && c.text != "mtu" {
		p.next()
		code, ok := icmpCodes[typ][c.text]
		if !ok {
			return p.errf(c, "unknown ICMP code %q for type %s", c.text, t.text)
		}
		l.code = code
	} else if typ == 3 {
		return p.errf(c, "ICMP unreachable needs a code (net, host, proto, port, frag_needed, ...)")
	}
	if p.isWord("mtu") {
		mt := p.next()
		if l.typ != 3 || l.code != 4 {
			return p.errf(mt, "mtu is only for unreachable frag_needed")
		}
		v, err := p.u16("ICMP MTU")
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

// inboundICMP delivers an ICMP line to the current flow's connection.
func (r *runner) inboundICMP(e *event) {
	l := e.icmp
	if r.cur == nil {
		r.failf(e.line, "", "", "ICMP packet before any connection")
		return
	}
	m := tcptest.ICMP{Type: l.typ, Code: l.code, MTU: l.mtu}
	if l.quoted {
		m.Seq = tcp.Value(l.start)
		m.QuotedLength = 40 + int(l.n)
	}
	res, err := r.cur.SendICMP(m, !l.quoted)
	if err != nil {
		r.failf(e.line, "", "", "error handling ICMP packet: %v", err)
		return
	}
	r.tracef("< icmp type %d code %d mtu %d: %v", l.typ, l.code, l.mtu, res)
}
