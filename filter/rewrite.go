package filter

import (
	"encoding/binary"
	"net/netip"

	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ip"
)

// delta accumulates the changes to 16-bit words that a checksum covers, as
// the sum of ~m + m' over each changed word, so that one update applies
// them all: RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), with the sum over
// several words in place of one.
type delta uint16

func (d *delta) word(old, new uint16) {
	*d = delta(checksum.Combine(uint16(*d), checksum.Combine(^old, new)))
}

// apply returns checksum field hc updated by d.
func (d delta) apply(hc uint16) uint16 {
	return ^checksum.Combine(^hc, uint16(d))
}

// put16 writes v at b[off:] and adds the change to d.
func put16(b []byte, off int, v uint16, d *delta) {
	old := binary.BigEndian.Uint16(b[off:])
	binary.BigEndian.PutUint16(b[off:], v)
	d.word(old, v)
}

// putAddr writes a at b[off:] (4 or 16 bytes) and adds the change to d.
func putAddr(b []byte, off int, a netip.Addr, d *delta) {
	s := a.AsSlice()
	for i := 0; i+1 < len(s); i += 2 {
		put16(b, off+i, uint16(s[i])<<8|uint16(s[i+1]), d)
	}
}

// addrDelta is the change from address a to b, as putAddr would count it.
func addrDelta(a, b netip.Addr) delta {
	var d delta
	x, y := a.AsSlice(), b.AsSlice()
	for i := 0; i+1 < len(x) && i+1 < len(y); i += 2 {
		d.word(binary.BigEndian.Uint16(x[i:]), binary.BigEndian.Uint16(y[i:]))
	}
	return d
}

// fixChecksum updates the transport checksum at b[off:] by d (addresses,
// for checksums over a pseudo-header) and pd (the transport's own words),
// in the form the field holds: complete, or, when the device completes it
// (partial), the folded pseudo-header sum, which changes with the
// addresses only (Linux's inet_proto_csum_replace4 with CHECKSUM_PARTIAL).
// A UDP checksum of zero means "none" over IPv4 (RFC 768) and stays zero;
// a UDP result of zero goes out as all ones.
func fixChecksum(b []byte, off int, d, pd delta, partial, udp, v6 bool) {
	if len(b) < off+2 {
		return
	}
	hc := binary.BigEndian.Uint16(b[off:])
	if udp && hc == 0 && !v6 {
		return
	}
	if partial {
		hc = checksum.Combine(hc, uint16(d))
	} else {
		hc = delta(checksum.Combine(uint16(d), uint16(pd))).apply(hc)
		if udp && hc == 0 {
			hc = 0xffff
		}
	}
	binary.BigEndian.PutUint16(b[off:], hc)
}

// Offsets of the address fields: RFC 791 §3.1, RFC 8200 §3.
func addrOff(v6, dst bool) int {
	switch {
	case v6 && dst:
		return 24
	case v6:
		return 8
	case dst:
		return 16
	}
	return 12
}

// rewrite sets p's source (or, with dst, destination) address to a and
// port to port (the ICMP echo identifier for echo), updating the IPv4
// header checksum and the transport checksum incrementally, and v to match.
func rewrite(p *ip.Packet, v *view, dst bool, a netip.Addr, port uint16) {
	var old netip.Addr
	if dst {
		old, p.Destination, v.dst = p.Destination, a, a
	} else {
		old, p.Source, v.src = p.Source, a, a
	}
	ad := addrDelta(old, a)
	if h := p.Datagram; len(h) >= 20 {
		var hd delta
		if !v.v6 && len(h) >= 20 {
			putAddr(h, addrOff(false, dst), a, &hd)
			binary.BigEndian.PutUint16(h[10:], hd.apply(binary.BigEndian.Uint16(h[10:])))
		} else if v.v6 && len(h) >= 40 {
			putAddr(h, addrOff(true, dst), a, &hd)
		}
	}
	if !v.l4 {
		return
	}
	b := p.Payload
	partial := p.Offload.NeedsChecksum
	var pd delta
	switch v.proto {
	case ip.ProtocolTCP, ip.ProtocolUDP:
		off := 0
		if dst {
			off, v.dport = 2, port
		} else {
			v.sport = port
		}
		put16(b, off, port, &pd)
		if v.proto == ip.ProtocolTCP {
			fixChecksum(b, 16, ad, pd, partial, false, v.v6)
		} else {
			fixChecksum(b, 6, ad, pd, partial, true, v.v6)
		}
	case ip.ProtocolICMP, ip.ProtocolICMPv6:
		put16(b, 4, port, &pd)
		v.id = port
		if v.proto == ip.ProtocolICMP {
			ad = 0 // the ICMP checksum has no pseudo-header (RFC 792)
		}
		fixChecksum(b, 2, ad, pd, false, false, v.v6)
	}
}

// rewriteICMPError translates an ICMP error about a tracked connection:
// the datagram it quotes gets the tuple want (the reverse of the error's
// own direction: with dst, the quoted source address and port; without,
// the quoted destination), and the outer address on that side follows
// when it is the flow's own peer, not a router on the path. Every checksum
// changed (the quoted IPv4 header's, the quoted transport's where quoted,
// the ICMP message's) is updated incrementally.
func rewriteICMPError(p *ip.Packet, v *view, want Tuple, dst bool) {
	msg := p.Payload
	inner := msg[8:]
	t, off, ok := quotedTuple(inner, v.v6)
	if !ok {
		return
	}
	// The quoted datagram went the other way, so want reversed is the
	// tuple it should show.
	q := want.Reverse()
	var md delta // changes inside the ICMP message
	// The outer header first: dst-manip changes the outer destination
	// when it is the quoted source (the flow's endpoint).
	if dst && v.dst == t.Src && q.Src != t.Src {
		od := addrDelta(v.dst, q.Src)
		rewriteOuter(p, v, true, q.Src)
		if v.v6 {
			md = od // ICMPv6's checksum covers the pseudo-header (RFC 4443 §2.3)
		}
	} else if !dst && v.src == t.Dst && q.Dst != t.Dst {
		od := addrDelta(v.src, q.Dst)
		rewriteOuter(p, v, false, q.Dst)
		if v.v6 {
			md = od
		}
	}
	// The quoted IP header.
	var ad, hd delta
	var na netip.Addr
	var np uint16
	if dst {
		na, np = q.Src, q.SrcPort
	} else {
		na, np = q.Dst, q.DstPort
	}
	oa := t.Dst
	if dst {
		oa = t.Src
	}
	if oa != na {
		putAddr(inner, addrOff(v.v6, !dst), na, &hd)
		ad = hd
		md = delta(checksum.Combine(uint16(md), uint16(hd)))
		if !v.v6 {
			var cd delta
			put16(inner, 10, hd.apply(binary.BigEndian.Uint16(inner[10:])), &cd)
			md = delta(checksum.Combine(uint16(md), uint16(cd)))
		}
	}
	// The quoted transport header: ports (or the echo identifier) and,
	// where it is quoted, its checksum.
	l4 := inner[off:]
	var pd delta
	switch t.Proto {
	case ip.ProtocolTCP, ip.ProtocolUDP:
		po := 2
		if dst {
			po = 0
		}
		put16(l4, po, np, &pd)
		co := 16
		if t.Proto == ip.ProtocolUDP {
			co = 6
		}
		if len(l4) >= co+2 {
			var cd delta
			old := binary.BigEndian.Uint16(l4[co:])
			tmp := [2]byte{}
			binary.BigEndian.PutUint16(tmp[:], old)
			fixChecksum(tmp[:], 0, ad, pd, false, t.Proto == ip.ProtocolUDP, v.v6)
			put16(l4, co, binary.BigEndian.Uint16(tmp[:]), &cd)
			md = delta(checksum.Combine(uint16(md), uint16(cd)))
		}
	case ip.ProtocolICMP, ip.ProtocolICMPv6:
		put16(l4, 4, np, &pd)
		var cd delta
		tmp := [2]byte{}
		binary.BigEndian.PutUint16(tmp[:], binary.BigEndian.Uint16(l4[2:]))
		if t.Proto == ip.ProtocolICMP {
			ad = 0
		}
		fixChecksum(tmp[:], 0, ad, pd, false, false, v.v6)
		put16(l4, 2, binary.BigEndian.Uint16(tmp[:]), &cd)
		md = delta(checksum.Combine(uint16(md), uint16(cd)))
	}
	md = delta(checksum.Combine(uint16(md), uint16(pd)))
	binary.BigEndian.PutUint16(msg[2:], md.apply(binary.BigEndian.Uint16(msg[2:])))
}

// rewriteOuter changes an ICMP error's outer address and the IPv4 header
// checksum; the ICMP checksum is left to the caller.
func rewriteOuter(p *ip.Packet, v *view, dst bool, a netip.Addr) {
	if dst {
		p.Destination, v.dst = a, a
	} else {
		p.Source, v.src = a, a
	}
	if h := p.Datagram; !v.v6 && len(h) >= 20 {
		var hd delta
		putAddr(h, addrOff(false, dst), a, &hd)
		binary.BigEndian.PutUint16(h[10:], hd.apply(binary.BigEndian.Uint16(h[10:])))
	} else if v.v6 && len(h) >= 40 {
		var hd delta
		putAddr(h, addrOff(true, dst), a, &hd)
	}
}
