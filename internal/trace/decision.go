package trace

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/ustack/ustack/filter"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/tcp"
)

// AppendDecision appends the line of the packet filter's decision d at
// one hook (filter.Tracer), ending in a newline: the NIC, the chain's
// hook, the verdict, the rule that gave it by number and -S text (or the
// policy), the conntrack state, and the packet it is about, which the
// line names because it may not sit next to its frame's lines (received
// packets are decided after their frame is traced, sent ones before):
//
//	filter tap0 INPUT ACCEPT by rule 2 "-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT", ct NEW SYN_SENT: TCP 10.0.0.1:40000 > 10.0.0.2:80 [S]
func AppendDecision(dst []byte, d *filter.Decision) []byte {
	dst = append(dst, "filter "...)
	nic := d.In
	if nic == "" {
		nic = d.Out
	}
	if nic != "" {
		dst = append(dst, nic...)
		dst = append(dst, ' ')
	}
	dst = d.Append(dst)
	if d.IP != nil {
		dst = append(dst, ": "...)
		dst = appendPacketSummary(dst, d.IP)
	}
	return append(dst, '\n')
}

// appendPacketSummary names a packet in a few words: protocol, addresses
// and ports (TCP and UDP, with TCP's flags), or the ICMP type and code.
func appendPacketSummary(dst []byte, p *ip.Packet) []byte {
	b := p.Payload
	switch p.Protocol {
	case ip.ProtocolTCP, ip.ProtocolUDP:
		if len(b) < 4 {
			break
		}
		src := netip.AddrPortFrom(p.Source, binary.BigEndian.Uint16(b))
		dstAP := netip.AddrPortFrom(p.Destination, binary.BigEndian.Uint16(b[2:]))
		dst = fmt.Appendf(dst, "%s %v > %v", protoName(p.Protocol), src, dstAP)
		if p.Protocol == ip.ProtocolTCP && len(b) >= 14 {
			dst = fmt.Appendf(dst, " [%v]", tcp.Flags(b[13]))
		}
		return dst
	case ip.ProtocolICMP, ip.ProtocolICMPv6:
		if len(b) < 2 {
			break
		}
		names := icmpNames
		if p.Protocol == ip.ProtocolICMPv6 {
			names = icmpv6Names
		}
		name, ok := names[b[0]]
		if !ok {
			name = fmt.Sprintf("type %d", b[0])
		}
		dst = fmt.Appendf(dst, "%s %v > %v %s", protoName(p.Protocol), p.Source, p.Destination, name)
		if b[1] != 0 {
			dst = fmt.Appendf(dst, " code %d", b[1])
		}
		return dst
	}
	return fmt.Appendf(dst, "%s %v > %v", protoName(p.Protocol), p.Source, p.Destination)
}

// Decision writes the line of d (AppendDecision), stamped with the
// Writer's clock, unless it decided nothing: an ACCEPT where no chain
// with rules or a DROP policy ran. Pass it to filter.Filter.SetTracer.
func (w *Writer) Decision(d *filter.Decision) {
	if d.Chain == "" && d.Verdict.Action == filter.Accept {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = w.buf[:0]
	if w.now != nil {
		w.buf = w.now().AppendFormat(w.buf, "15:04:05.000000 ")
	}
	w.buf = AppendDecision(w.buf, d)
	w.write()
}
