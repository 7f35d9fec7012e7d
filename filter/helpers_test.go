package filter

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ip"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// seg describes a test packet.
type seg struct {
	src, dst     string
	proto        uint8
	sport, dport uint16
	flags        uint8
	seq, ack     uint32
	win          uint16
	data         int
	icmpType     uint8
	icmpCode     uint8
	id           uint16
	wscale       int // -1: none
	quote        []byte
}

// build returns a whole datagram (IP header included) with every checksum
// computed from scratch.
func build(s seg) []byte {
	src, dst := netip.MustParseAddr(s.src), netip.MustParseAddr(s.dst)
	var l4 []byte
	switch s.proto {
	case ip.ProtocolTCP:
		hl := 20
		if s.flags&flagSYN != 0 && s.wscale >= 0 {
			hl = 24
		}
		l4 = make([]byte, hl+s.data)
		binary.BigEndian.PutUint16(l4[0:], s.sport)
		binary.BigEndian.PutUint16(l4[2:], s.dport)
		binary.BigEndian.PutUint32(l4[4:], s.seq)
		binary.BigEndian.PutUint32(l4[8:], s.ack)
		l4[12] = byte(hl/4) << 4
		l4[13] = s.flags
		binary.BigEndian.PutUint16(l4[14:], s.win)
		if hl == 24 {
			copy(l4[20:], []byte{1, 3, 3, byte(s.wscale)})
		}
		for i := hl; i < len(l4); i++ {
			l4[i] = byte(i)
		}
		binary.BigEndian.PutUint16(l4[16:], checksum.Checksum(l4, checksum.PseudoHeader(src, dst, s.proto, uint16(len(l4)))))
	case ip.ProtocolUDP:
		l4 = make([]byte, 8+s.data)
		binary.BigEndian.PutUint16(l4[0:], s.sport)
		binary.BigEndian.PutUint16(l4[2:], s.dport)
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		for i := 8; i < len(l4); i++ {
			l4[i] = byte(i * 7)
		}
		c := checksum.Checksum(l4, checksum.PseudoHeader(src, dst, s.proto, uint16(len(l4))))
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(l4[6:], c)
	case ip.ProtocolICMP, ip.ProtocolICMPv6:
		l4 = make([]byte, 8+s.data+len(s.quote))
		l4[0], l4[1] = s.icmpType, s.icmpCode
		binary.BigEndian.PutUint16(l4[4:], s.id)
		binary.BigEndian.PutUint16(l4[6:], 1)
		copy(l4[8:], s.quote)
		var init uint16
		if s.proto == ip.ProtocolICMPv6 {
			init = checksum.PseudoHeader(src, dst, s.proto, uint16(len(l4)))
		}
		binary.BigEndian.PutUint16(l4[2:], checksum.Checksum(l4, init))
	default:
		l4 = make([]byte, s.data)
	}
	if src.Is4() {
		h := make([]byte, 20+len(l4))
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(len(h)))
		h[8] = 64
		h[9] = s.proto
		copy(h[12:], src.AsSlice())
		copy(h[16:], dst.AsSlice())
		binary.BigEndian.PutUint16(h[10:], checksum.Checksum(h[:20], 0))
		copy(h[20:], l4)
		return h
	}
	h := make([]byte, 40+len(l4))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(l4)))
	h[6] = s.proto
	h[7] = 64
	copy(h[8:], src.AsSlice())
	copy(h[24:], dst.AsSlice())
	copy(h[40:], l4)
	return h
}

// pkt wraps a datagram from build as the stack would pass it.
func pkt(b []byte, in, out string) *Packet {
	p := &ip.Packet{Datagram: b}
	if b[0]>>4 == 4 {
		p.Source, p.Destination = netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
		p.Protocol, p.Payload = b[9], b[20:]
	} else {
		p.Source, p.Destination = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
		p.Protocol, p.Payload = b[6], b[40:]
	}
	return &Packet{IP: p, In: in, Out: out}
}

func mk(s seg, in, out string) *Packet {
	if s.wscale == 0 {
		s.wscale = -1
	}
	return pkt(build(s), in, out)
}

// verify recomputes every checksum of p from scratch and checks it, and
// that p's fields agree with its bytes.
func verify(t *testing.T, p *Packet) {
	t.Helper()
	b := p.IP.Datagram
	var src, dst netip.Addr
	var l4 []byte
	if b[0]>>4 == 4 {
		if c := checksum.Checksum(b[:20], 0); c != 0 {
			t.Errorf("IPv4 header checksum wrong (sum %#04x)", c)
		}
		src, dst, l4 = netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20])), b[20:]
	} else {
		src, dst, l4 = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40])), b[40:]
	}
	if src != p.IP.Source || dst != p.IP.Destination {
		t.Errorf("header says %v -> %v, Packet %v -> %v", src, dst, p.IP.Source, p.IP.Destination)
	}
	var init uint16
	switch p.IP.Protocol {
	case ip.ProtocolTCP, ip.ProtocolUDP, ip.ProtocolICMPv6:
		init = checksum.PseudoHeader(src, dst, p.IP.Protocol, uint16(len(l4)))
	}
	if c := checksum.Checksum(l4, init); c != 0 {
		t.Errorf("transport checksum wrong (sum %#04x)", c)
	}
}

func ports(p *Packet) (uint16, uint16) {
	b := p.IP.Payload
	return binary.BigEndian.Uint16(b[0:]), binary.BigEndian.Uint16(b[2:])
}

func mustExec(t testing.TB, f *Filter, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if err := f.Exec(c); err != nil {
			t.Fatalf("Exec(%q): %v", c, err)
		}
	}
}
