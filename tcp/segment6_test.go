package tcp

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

var (
	client6 = netip.MustParseAddr("2001:db8::1")
	server6 = netip.MustParseAddr("2001:db8::2")
)

// naiveChecksum6 is naiveChecksum with the IPv6 pseudo-header of RFC 8200
// §8.1 (16-byte addresses, 32-bit length, 24 zero bits, next header 6).
func naiveChecksum6(src, dst netip.Addr, seg []byte) uint16 {
	s, d := src.As16(), dst.As16()
	data := append([]byte{}, s[:]...)
	data = append(data, d[:]...)
	data = binary.BigEndian.AppendUint32(data, uint32(len(seg)))
	data = append(data, 0, 0, 0, ProtocolNumber)
	data = append(data, seg...)
	if len(data)%2 == 1 {
		data = append(data, 0)
	}
	var sum uint32
	for i := 0; i < len(data); i += 2 {
		sum += uint32(data[i])<<8 | uint32(data[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// TestSegmentIPv6 checks that an IPv6 tuple neither panics in
// SetChecksum nor is refused by ParseSegment, and that the checksum is RFC
// 8200 §8.1's.
func TestSegmentIPv6(t *testing.T) {
	seg := append([]byte{}, goldenData...)
	SetChecksum(seg, server6, client6)
	if c := naiveChecksum6(server6, client6, seg); c != 0 {
		t.Fatalf("naive IPv6 checksum over SetChecksum's segment = %#04x, want 0", c)
	}
	s, err := ParseSegment(seg, server6, client6)
	if err != nil {
		t.Fatalf("ParseSegment over IPv6: %v", err)
	}
	if string(s.Payload()) != "hello\n" {
		t.Fatalf("payload %q", s.Payload())
	}
	if _, err := ParseSegment(seg, server6, netip.MustParseAddr("2001:db8::3")); err != ErrChecksum {
		t.Fatalf("another IPv6 destination: err = %v, want ErrChecksum", err)
	}
	if _, err := ParseSegment(goldenData, server, client); err != nil {
		t.Fatalf("IPv4 golden segment: %v", err)
	}
	if _, err := ParseSegment(goldenData, server6, client6); err != ErrChecksum {
		t.Fatalf("IPv4 checksum under an IPv6 pseudo-header: err = %v, want ErrChecksum", err)
	}
}

// TestDialIPv6 opens a connection on an IPv6 tuple: the SYN it sends
// carries an IPv6 checksum, and nothing panics.
func TestDialIPv6(t *testing.T) {
	cfg := DefaultConfig()
	var out recOutput
	tp := Tuple{Local: netip.AddrPortFrom(client6, 41234), Remote: netip.AddrPortFrom(server6, 80)}
	Dial(&cfg, tp, 1000, 1440, time.Unix(0, 0), &out)
	if len(out.errs) > 0 || len(out.segs) != 1 {
		t.Fatalf("sent %d segments, errors %v", len(out.segs), out.errs)
	}
	syn := out.segs[0]
	if syn.Flags() != FlagSYN || syn.Seq() != 1000 {
		t.Fatalf("sent %v seq %d, want a SYN at 1000", syn.Flags(), syn.Seq())
	}
	if c := naiveChecksum6(client6, server6, syn); c != 0 {
		t.Fatalf("naive IPv6 checksum over the SYN = %#04x, want 0", c)
	}
}
