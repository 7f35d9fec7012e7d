// Package trace prints frames layer by layer, the way the stack sees
// them: a line for the frame (time, direction, NIC, length), then one per
// layer, each indented one step further: L2 (MACs, 802.1Q tags,
// EtherType), L3 (IPv4 or IPv6 addresses, TTL or hop limit, protocol,
// fragment fields, length; ARP's who-has and is-at), L4 (TCP's 4-tuple,
// flags, seq/ack, window, options and payload length; UDP's ports and
// length; ICMP and ICMPv6 type and code). A layer that does not parse
// gets a line saying what is wrong, and the layers above it none: the
// formatter never panics on what a wire may carry.
//
// Append is the pure formatter, AppendDecision its line for the packet
// filter's decisions (package filter's Tracer: hook, verdict, rule,
// conntrack state). Writer serializes the lines of
// concurrent frames to an io.Writer, Endpoint is a link decorator that
// traces every frame read and written, and EventHandler turns the
// stack's connection events (stack.Options.Logger) into trace lines.
//
// The package sits above every protocol package, whose parsers it uses,
// beside stack, and is internal: its output is for people, and its
// format may grow without an API promise.
package trace

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vlan"
	"github.com/ustack/ustack/tcp"
	"github.com/ustack/ustack/udp"
)

// Direction says whether a frame was received or sent.
type Direction uint8

// Directions of a Frame.
const (
	In       Direction = iota // read from the link
	Out                       // written to the link
	Captured                  // read from a capture, which does not say
)

// String returns "in", "out" or "cap".
func (d Direction) String() string {
	switch d {
	case Out:
		return "out"
	case Captured:
		return "cap"
	}
	return "in"
}

// Frame is one frame to trace.
type Frame struct {
	// Time is when the frame passed; the zero Time prints none.
	Time time.Time
	// Dir and NIC say where it passed.
	Dir Direction
	NIC string
	// Data is the frame: an Ethernet frame, or an IP packet when Raw
	// (a TUN device, a raw-IP capture).
	Data []byte
	Raw  bool
	// OrigLen is the frame's length on the wire when Data holds only
	// its start (a capture's snap length); 0 means len(Data).
	OrigLen int
	// Offload is the frame's metadata, if it came with some: a partial
	// transport checksum is then not reported as bad.
	Offload ip.Offload
}

// indent is one step of indentation per layer.
const indent = "  "

// Append appends the trace of f to dst, every line ending in a newline,
// and returns the extended slice.
func Append(dst []byte, f *Frame) []byte {
	if !f.Time.IsZero() {
		dst = f.Time.AppendFormat(dst, "15:04:05.000000 ")
	}
	dst = fmt.Appendf(dst, "%s %s %d bytes", f.Dir, f.NIC, len(f.Data))
	if f.OrigLen > len(f.Data) {
		dst = fmt.Appendf(dst, " of %d captured", f.OrigLen)
	}
	if f.Offload.GSOType != 0 {
		dst = fmt.Appendf(dst, " (super-segment, gso size %d)", f.Offload.GSOSize)
	}
	dst = append(dst, '\n')
	if f.Raw {
		dst = appendRawIP(dst, 1, f.Data, f)
	} else {
		dst = appendEthernet(dst, 1, f.Data, f)
	}
	return dst
}

// line appends one line at depth d.
func line(dst []byte, d int, format string, args ...any) []byte {
	for range d {
		dst = append(dst, indent...)
	}
	dst = fmt.Appendf(dst, format, args...)
	return append(dst, '\n')
}

// etherTypeName names the EtherTypes the stack speaks.
func etherTypeName(t uint16) string {
	switch t {
	case link.EtherTypeIPv4:
		return "IPv4"
	case link.EtherTypeIPv6:
		return "IPv6"
	case link.EtherTypeARP:
		return "ARP"
	case link.EtherTypeVLAN:
		return "802.1Q"
	}
	return fmt.Sprintf("0x%04x", t)
}

// maxTags bounds the 802.1Q tags decoded in one frame (802.1ad stacks
// two: a service tag, 0x88a8, or a second 0x8100, then the customer's).
const maxTags = 2

// tpidQinQ is the 802.1ad service tag's TPID (IEEE Std 802.1Q-2018 Table
// 9-1: S-VLAN component, 88-A8).
const tpidQinQ = 0x88a8

func appendEthernet(dst []byte, d int, b []byte, f *Frame) []byte {
	e, err := link.ParseEthernet(b)
	if err != nil {
		return line(dst, d, "L2 malformed: %v (%d bytes)", err, len(b))
	}
	for range d {
		dst = append(dst, indent...)
	}
	dst = fmt.Appendf(dst, "L2 %v > %v", e.Source(), e.Destination())
	t, p := e.Type(), e.Payload()
	for n := 0; (t == vlan.TPID || t == tpidQinQ) && n < maxTags; n++ {
		if len(p) < vlan.TagLen {
			return append(dst, fmt.Sprintf(", 802.1Q tag cut short (%d bytes)\n", len(p))...)
		}
		tag := vlan.TagFromTCI(binary.BigEndian.Uint16(p))
		dst = fmt.Appendf(dst, ", %v", tag)
		t, p = binary.BigEndian.Uint16(p[2:]), p[vlan.TagLen:]
	}
	if t < 0x0600 {
		return fmt.Appendf(dst, ", 802.3 length %d (not Ethernet II)\n", t)
	}
	dst = fmt.Appendf(dst, ", %s\n", etherTypeName(t))
	switch t {
	case link.EtherTypeIPv4:
		return appendIPv4(dst, d+1, p, f)
	case link.EtherTypeIPv6:
		return appendIPv6(dst, d+1, p, f)
	case link.EtherTypeARP:
		return appendARP(dst, d+1, p)
	}
	return line(dst, d+1, "L3 EtherType %s not decoded (%d bytes)", etherTypeName(t), len(p))
}

func appendRawIP(dst []byte, d int, b []byte, f *Frame) []byte {
	if len(b) == 0 {
		return line(dst, d, "L3 empty packet")
	}
	switch b[0] >> 4 {
	case 4:
		return appendIPv4(dst, d, b, f)
	case 6:
		return appendIPv6(dst, d, b, f)
	}
	return line(dst, d, "L3 malformed: IP version %d", b[0]>>4)
}

func appendARP(dst []byte, d int, b []byte) []byte {
	p, err := arp.ParsePacket(b)
	if err != nil {
		return line(dst, d, "L3 ARP malformed: %v (%d bytes)", err, len(b))
	}
	switch p.Op() {
	case arp.OpRequest:
		if p.SenderProtocolAddr() == p.TargetProtocolAddr() {
			return line(dst, d, "L3 ARP announcement %v is-at %v", p.SenderProtocolAddr(), p.SenderHardwareAddr())
		}
		return line(dst, d, "L3 ARP who-has %v tell %v (%v)", p.TargetProtocolAddr(), p.SenderProtocolAddr(), p.SenderHardwareAddr())
	case arp.OpReply:
		return line(dst, d, "L3 ARP reply %v is-at %v (to %v)", p.SenderProtocolAddr(), p.SenderHardwareAddr(), p.TargetProtocolAddr())
	}
	return line(dst, d, "L3 ARP operation %d", p.Op())
}

// protoName names the transport protocols.
func protoName(p uint8) string {
	switch p {
	case ip.ProtocolTCP:
		return "TCP"
	case ip.ProtocolUDP:
		return "UDP"
	case ip.ProtocolICMP:
		return "ICMP"
	case ipv6.NextHeaderICMPv6:
		return "ICMPv6"
	}
	return fmt.Sprintf("protocol %d", p)
}

func appendIPv4(dst []byte, d int, b []byte, f *Frame) []byte {
	h, err := ipv4.ParseHeader(b)
	if err != nil {
		return line(dst, d, "L3 IPv4 malformed: %v (%d bytes)", err, len(b))
	}
	for range d {
		dst = append(dst, indent...)
	}
	dst = fmt.Appendf(dst, "L3 IPv4 %v > %v ttl %d id %d", h.Source(), h.Destination(), h.TTL(), h.ID())
	if h.DontFragment() {
		dst = append(dst, " DF"...)
	}
	frag := h.IsFragment()
	if frag {
		dst = fmt.Appendf(dst, " frag off %d", h.FragmentOffset())
		if h.MoreFragments() {
			dst = append(dst, " MF"...)
		}
	}
	if tos := h.TOS(); tos != 0 {
		dst = fmt.Appendf(dst, " tos 0x%02x", tos)
	}
	if len(h.Options()) != 0 {
		dst = fmt.Appendf(dst, " options %d bytes", len(h.Options()))
	}
	dst = fmt.Appendf(dst, " len %d %s\n", h.TotalLength(), protoName(h.Protocol()))
	if frag && h.FragmentOffset() != 0 {
		return line(dst, d+1, "L4 %s fragment of %d bytes at offset %d: no transport header", protoName(h.Protocol()), len(h.Payload()), h.FragmentOffset())
	}
	return appendL4(dst, d+1, h.Protocol(), h.Source(), h.Destination(), h.Payload(), frag, f)
}

func appendIPv6(dst []byte, d int, b []byte, f *Frame) []byte {
	h, err := ipv6.ParseHeader(b)
	if err != nil {
		return line(dst, d, "L3 IPv6 malformed: %v (%d bytes)", err, len(b))
	}
	for range d {
		dst = append(dst, indent...)
	}
	dst = fmt.Appendf(dst, "L3 IPv6 %v > %v hlim %d", h.Source(), h.Destination(), h.HopLimit())
	if fl := h.FlowLabel(); fl != 0 {
		dst = fmt.Appendf(dst, " flow 0x%05x", fl)
	}
	if tc := h.TrafficClass(); tc != 0 {
		dst = fmt.Appendf(dst, " tclass 0x%02x", tc)
	}
	c, err := ipv6.ParseExtensions(h)
	if err != nil {
		dst = fmt.Appendf(dst, " len %d\n", h.PayloadLength())
		return line(dst, d+1, "L3 IPv6 extension headers refused: %v", err)
	}
	if c.Offset > ipv6.HeaderLen {
		dst = fmt.Appendf(dst, " ext %d bytes", c.Offset-ipv6.HeaderLen)
	}
	frag := false
	if c.Fragment != 0 {
		fh := h[c.Fragment:] // ParseExtensions checked the 8 bytes are there
		off := int(binary.BigEndian.Uint16(fh[2:]) &^ 7)
		mf := fh[3]&1 != 0
		dst = fmt.Appendf(dst, " frag id %d off %d", binary.BigEndian.Uint32(fh[4:]), off)
		if mf {
			dst = append(dst, " MF"...)
		}
		frag = c.Proto == ipv6.NextHeaderFragment
		if frag {
			dst = fmt.Appendf(dst, " len %d %s\n", h.PayloadLength(), protoName(fh[0]))
			if off != 0 {
				return line(dst, d+1, "L4 %s fragment of %d bytes at offset %d: no transport header", protoName(fh[0]), len(h)-c.Fragment-8, off)
			}
			return appendL4(dst, d+1, fh[0], h.Source(), h.Destination(), h[c.Fragment+8:], true, f)
		}
	}
	dst = fmt.Appendf(dst, " len %d %s\n", h.PayloadLength(), protoName(c.Proto))
	if c.Proto == ipv6.NextHeaderNoNextHeader {
		return dst
	}
	return appendL4(dst, d+1, c.Proto, h.Source(), h.Destination(), h[c.Offset:], frag, f)
}

// appendL4 traces the transport message b; frag says it is the first
// fragment of a datagram, so only its headers are whole.
func appendL4(dst []byte, d int, proto uint8, src, dstAddr netip.Addr, b []byte, frag bool, f *Frame) []byte {
	switch proto {
	case ip.ProtocolTCP:
		return appendTCP(dst, d, src, dstAddr, b, frag, f)
	case ip.ProtocolUDP:
		return appendUDP(dst, d, src, dstAddr, b, frag, f)
	case ip.ProtocolICMP:
		return appendICMP(dst, d, b, false)
	case ipv6.NextHeaderICMPv6:
		return appendICMP(dst, d, b, true)
	}
	return line(dst, d, "L4 %s not decoded (%d bytes)", protoName(proto), len(b))
}

// checksumOK reports whether the transport message b from src to dst
// verifies with the pseudo-header (RFC 9293 §3.1, RFC 768, RFC 8200
// §8.1).
func checksumOK(b []byte, proto uint8, src, dst netip.Addr) bool {
	return checksum.Sum(b, checksum.PseudoHeader(src, dst, proto, uint16(len(b)))) == 0xffff
}

func appendTCP(dst []byte, d int, src, dstAddr netip.Addr, b []byte, frag bool, f *Frame) []byte {
	s, err := tcp.ParseSegmentVerified(b, src, dstAddr)
	if err != nil {
		return line(dst, d, "L4 TCP malformed: %v (%d bytes)", err, len(b))
	}
	for range d {
		dst = append(dst, indent...)
	}
	dst = fmt.Appendf(dst, "L4 TCP %v > %v [%v] seq %d", netip.AddrPortFrom(src, s.SourcePort()), netip.AddrPortFrom(dstAddr, s.DestinationPort()), s.Flags(), s.Seq())
	if s.Flags().Has(tcp.FlagACK) {
		dst = fmt.Appendf(dst, " ack %d", s.Ack())
	}
	dst = fmt.Appendf(dst, " win %d", s.Window())
	if s.Flags().Has(tcp.FlagURG) {
		dst = fmt.Appendf(dst, " urg %d", s.UrgentPointer())
	}
	var o tcp.Options
	s.Options(&o)
	dst = appendTCPOptions(dst, &o)
	dst = fmt.Appendf(dst, " len %d", len(s.Payload()))
	switch {
	case frag:
		dst = append(dst, " (first fragment)"...)
	case f.Offload.NeedsChecksum:
		dst = append(dst, " cksum partial"...)
	case !f.Offload.DataValid && !checksumOK(b, ip.ProtocolTCP, src, dstAddr):
		dst = append(dst, " cksum BAD"...)
	}
	return append(dst, '\n')
}

// appendTCPOptions appends the options of o as tcpdump summarizes them:
// <mss 1460,sackOK,TS val 1 ecr 0,wscale 7,sack 1 {10:20}>.
func appendTCPOptions(dst []byte, o *tcp.Options) []byte {
	start := len(dst)
	sep := func() {
		if len(dst) == start {
			dst = append(dst, " <"...)
		} else {
			dst = append(dst, ',')
		}
	}
	if o.MSS != 0 {
		sep()
		dst = fmt.Appendf(dst, "mss %d", o.MSS)
	}
	if o.SACKPermitted {
		sep()
		dst = append(dst, "sackOK"...)
	}
	if o.Timestamp {
		sep()
		dst = fmt.Appendf(dst, "TS val %d ecr %d", o.TSVal, o.TSEcr)
	}
	if o.WindowScale >= 0 {
		sep()
		dst = fmt.Appendf(dst, "wscale %d", o.WindowScale)
	}
	if o.NumSACK > 0 {
		sep()
		dst = fmt.Appendf(dst, "sack %d", o.NumSACK)
		for _, blk := range o.SACK[:min(o.NumSACK, len(o.SACK))] {
			dst = fmt.Appendf(dst, " {%d:%d}", blk.Left, blk.Right)
		}
	}
	if len(dst) != start {
		dst = append(dst, '>')
	}
	return dst
}

func appendUDP(dst []byte, d int, src, dstAddr netip.Addr, b []byte, frag bool, f *Frame) []byte {
	if frag {
		// The first fragment of a datagram: the UDP length covers the
		// whole datagram, not this fragment.
		if len(b) < udp.HeaderLen {
			return line(dst, d, "L4 UDP first fragment too short for a header (%d bytes)", len(b))
		}
		return line(dst, d, "L4 UDP %v > %v len %d (first fragment)",
			netip.AddrPortFrom(src, binary.BigEndian.Uint16(b)), netip.AddrPortFrom(dstAddr, binary.BigEndian.Uint16(b[2:])), int(binary.BigEndian.Uint16(b[4:]))-udp.HeaderLen)
	}
	u, err := udp.Parse(b, src, dstAddr)
	note := ""
	if err == udp.ErrChecksum {
		note = " cksum BAD"
		if f.Offload.NeedsChecksum || f.Offload.DataValid {
			note = " cksum partial"
		}
		n := int(binary.BigEndian.Uint16(b[4:])) // Parse checked the length before the checksum
		u, err = udp.Datagram(b[:n]), nil
	}
	if err != nil {
		return line(dst, d, "L4 UDP malformed: %v (%d bytes)", err, len(b))
	}
	return line(dst, d, "L4 UDP %v > %v len %d%s", netip.AddrPortFrom(src, u.SourcePort()), netip.AddrPortFrom(dstAddr, u.DestinationPort()), len(u.Payload()), note)
}

// icmpNames names the ICMP (RFC 792) and ICMPv6 (RFC 4443, RFC 4861,
// RFC 3810) messages the stack sends and answers.
var (
	icmpNames = map[uint8]string{
		ipv4.TypeEchoReply: "echo reply", ipv4.TypeDestinationUnreachable: "destination unreachable",
		ipv4.TypeSourceQuench: "source quench", ipv4.TypeRedirect: "redirect",
		ipv4.TypeEchoRequest: "echo request", ipv4.TypeTimeExceeded: "time exceeded",
		ipv4.TypeParameterProblem: "parameter problem", ipv4.TypeTimestamp: "timestamp",
		ipv4.TypeTimestampReply: "timestamp reply",
	}
	icmpv6Names = map[uint8]string{
		ipv6.TypeDestinationUnreachable: "destination unreachable", ipv6.TypePacketTooBig: "packet too big",
		ipv6.TypeTimeExceeded: "time exceeded", ipv6.TypeParameterProblem: "parameter problem",
		ipv6.TypeEchoRequest: "echo request", ipv6.TypeEchoReply: "echo reply",
		ipv6.TypeMulticastListenerQuery: "multicast listener query", ipv6.TypeMulticastListenerReport: "multicast listener report",
		ipv6.TypeMulticastListenerDone: "multicast listener done", ipv6.TypeRouterSolicitation: "router solicitation",
		ipv6.TypeRouterAdvertisement: "router advertisement", ipv6.TypeNeighborSolicitation: "neighbor solicitation",
		ipv6.TypeNeighborAdvertisement: "neighbor advertisement", ipv6.TypeRedirect: "redirect",
		ipv6.TypeMulticastListenerReportV2: "multicast listener report v2",
	}
)

// icmpHeaderLen is the fixed part of every ICMP and ICMPv6 message:
// type, code, checksum and 4 bytes whose meaning depends on the type
// (RFC 792; RFC 4443 §2.1).
const icmpHeaderLen = 8

func appendICMP(dst []byte, d int, b []byte, v6 bool) []byte {
	kind, names := "ICMP", icmpNames
	if v6 {
		kind, names = "ICMPv6", icmpv6Names
	}
	if len(b) < icmpHeaderLen {
		return line(dst, d, "L4 %s malformed: %d bytes, shorter than its %d-byte header", kind, len(b), icmpHeaderLen)
	}
	typ, code := b[0], b[1]
	name, ok := names[typ]
	if !ok {
		name = fmt.Sprintf("type %d", typ)
	}
	for range d {
		dst = append(dst, indent...)
	}
	dst = fmt.Appendf(dst, "L4 %s %s", kind, name)
	if code != 0 {
		dst = fmt.Appendf(dst, " code %d", code)
	}
	echo := (!v6 && (typ == ipv4.TypeEchoRequest || typ == ipv4.TypeEchoReply)) ||
		(v6 && (typ == ipv6.TypeEchoRequest || typ == ipv6.TypeEchoReply))
	if echo {
		dst = fmt.Appendf(dst, " id %d seq %d", binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:]))
	}
	// RFC 4861 §4.3, §4.4: the target address follows the reserved word.
	if v6 && (typ == ipv6.TypeNeighborSolicitation || typ == ipv6.TypeNeighborAdvertisement) && len(b) >= icmpHeaderLen+16 {
		dst = fmt.Appendf(dst, " target %v", netip.AddrFrom16([16]byte(b[8:24])))
	}
	if !v6 && typ == ipv4.TypeDestinationUnreachable && code == ipv4.CodeFragmentationNeeded {
		dst = fmt.Appendf(dst, " mtu %d", binary.BigEndian.Uint16(b[6:]))
	}
	if v6 && typ == ipv6.TypePacketTooBig {
		dst = fmt.Appendf(dst, " mtu %d", binary.BigEndian.Uint32(b[4:]))
	}
	dst = fmt.Appendf(dst, " len %d", len(b))
	if !v6 && checksum.Sum(b, 0) != 0xffff {
		dst = append(dst, " cksum BAD"...)
	}
	return append(dst, '\n')
}
