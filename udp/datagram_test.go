package udp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

var (
	client4 = netip.MustParseAddr("192.0.2.1")
	server4 = netip.MustParseAddr("192.0.2.2")
	client6 = netip.MustParseAddr("2001:db8::1")
	server6 = netip.MustParseAddr("2001:db8::2")
)

// Datagrams that Linux sent out of a TAP device (which offloads nothing,
// so the kernel computed every checksum) inside a network namespace, read
// back from the TAP's file descriptor: a Python socket bound to
// 192.0.2.1:40000 or [2001:db8::1]:40001 sent them to port 7 of
// 192.0.2.2 or 2001:db8::2.
var (
	// 192.0.2.1.40000 > 192.0.2.2.7: UDP, length 11 ("hello, udp\n").
	capture4 = []byte{
		0x9c, 0x40, 0x00, 0x07, 0x00, 0x13, 0x0c, 0x99,
		'h', 'e', 'l', 'l', 'o', ',', ' ', 'u', 'd', 'p', '\n',
	}
	// 192.0.2.1.40000 > 192.0.2.2.7: UDP, length 0.
	capture4Empty = []byte{0x9c, 0x40, 0x00, 0x07, 0x00, 0x08, 0xdf, 0x92}
	// 2001:db8::1.40001 > 2001:db8::2.7: UDP, length 11 ("hello, udp\n").
	capture6 = []byte{
		0x9c, 0x41, 0x00, 0x07, 0x00, 0x13, 0x35, 0x27,
		'h', 'e', 'l', 'l', 'o', ',', ' ', 'u', 'd', 'p', '\n',
	}
	// 2001:db8::1.40001 > 2001:db8::2.7: UDP, length 3 ("odd"), an odd
	// length that the checksum pads with a zero octet.
	capture6Odd = []byte{0x9c, 0x41, 0x00, 0x07, 0x00, 0x0b, 0x34, 0xb6, 'o', 'd', 'd'}
)

// naiveChecksum is RFC 768 and RFC 8200 §8.1 written the slow, obvious
// way, independent of internal/checksum: the pseudo-header built byte by
// byte, then a 32-bit sum of 16-bit words, carries folded at the end,
// complemented. Over a datagram that carries a correct checksum it
// returns 0.
func naiveChecksum(src, dst netip.Addr, d []byte) uint16 {
	var data []byte
	if src.Is4() {
		s, t := src.As4(), dst.As4()
		data = append(append(data, s[:]...), t[:]...)
		data = append(data, 0, ProtocolNumber, byte(len(d)>>8), byte(len(d)))
	} else {
		s, t := src.As16(), dst.As16()
		data = append(append(data, s[:]...), t[:]...)
		data = binary.BigEndian.AppendUint32(data, uint32(len(d)))
		data = append(data, 0, 0, 0, ProtocolNumber)
	}
	data = append(data, d...)
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

type golden struct {
	name             string
	wire             []byte
	src, dst         netip.Addr
	srcPort, dstPort uint16
	payload          string
	checksum         uint16
}

var goldens = []golden{
	{"IPv4", capture4, client4, server4, 40000, 7, "hello, udp\n", 0x0c99},
	{"IPv4 empty", capture4Empty, client4, server4, 40000, 7, "", 0xdf92},
	{"IPv6", capture6, client6, server6, 40001, 7, "hello, udp\n", 0x3527},
	{"IPv6 odd length", capture6Odd, client6, server6, 40001, 7, "odd", 0x34b6},
}

func TestNaiveChecksumGolden(t *testing.T) {
	for _, g := range goldens {
		if c := naiveChecksum(g.src, g.dst, g.wire); c != 0 {
			t.Errorf("%s: naive checksum over the capture = %#04x, want 0", g.name, c)
		}
	}
}

func TestParseGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			d, err := Parse(g.wire, g.src, g.dst)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if d.SourcePort() != g.srcPort || d.DestinationPort() != g.dstPort ||
				d.Length() != len(g.wire) || d.Checksum() != g.checksum || string(d.Payload()) != g.payload {
				t.Errorf("ports %d>%d length %d checksum %#04x payload %q", d.SourcePort(), d.DestinationPort(),
					d.Length(), d.Checksum(), d.Payload())
			}
		})
	}
}

func TestBuildGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			b := make([]byte, HeaderLen+len(g.payload))
			for i := range b {
				b[i] = 0xaa // PutHeader must overwrite every header octet
			}
			if err := PutHeader(b, g.srcPort, g.dstPort, len(g.payload)); err != nil {
				t.Fatalf("PutHeader: %v", err)
			}
			copy(b[HeaderLen:], g.payload)
			if err := SetChecksum(b, g.src, g.dst); err != nil {
				t.Fatalf("SetChecksum: %v", err)
			}
			if !bytes.Equal(b, g.wire) {
				t.Errorf("built\n% x\nwant\n% x", b, g.wire)
			}
		})
	}
}

// zeroSumDatagram returns a datagram from client to server whose computed
// checksum is zero: a 2-octet payload chosen, with naiveChecksum, to bring
// the sum of everything else to all ones.
func zeroSumDatagram(src, dst netip.Addr) []byte {
	b := []byte{0x30, 0x39, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00}
	// With the payload and checksum zero, the checksum would be c = ^sum;
	// a payload word of ^sum = c makes the sum all ones, the checksum 0.
	binary.BigEndian.PutUint16(b[8:], naiveChecksum(src, dst, b))
	return b
}

func TestChecksumZeroSentAsAllOnes(t *testing.T) {
	for _, fam := range []struct {
		name     string
		src, dst netip.Addr
	}{{"IPv4", client4, server4}, {"IPv6", client6, server6}} {
		t.Run(fam.name, func(t *testing.T) {
			b := zeroSumDatagram(fam.src, fam.dst)
			if c := naiveChecksum(fam.src, fam.dst, b); c != 0 && c != 0xffff {
				t.Fatalf("constructed datagram's checksum = %#04x, want zero", c)
			}
			if err := SetChecksum(b, fam.src, fam.dst); err != nil {
				t.Fatal(err)
			}
			if c := binary.BigEndian.Uint16(b[6:]); c != 0xffff {
				t.Fatalf("checksum field = %#04x, want 0xffff (RFC 768: a computed zero is sent as all ones)", c)
			}
			d, err := Parse(b, fam.src, fam.dst)
			if err != nil || d.Checksum() != 0xffff {
				t.Fatalf("Parse: %v, checksum %#04x", err, d.Checksum())
			}
		})
	}
}

func TestParsePadding(t *testing.T) {
	// An Ethernet frame is at least 60 octets, so a short datagram comes
	// with padding past its Length; the checksum covers only Length
	// octets, so the padding must be trimmed before verifying.
	for _, g := range goldens {
		padded := append(append([]byte{}, g.wire...), 0xde, 0xad, 0xbe)
		d, err := Parse(padded, g.src, g.dst)
		if err != nil {
			t.Fatalf("%s padded: %v", g.name, err)
		}
		if len(d) != len(g.wire) || string(d.Payload()) != g.payload || cap(d) != len(d) {
			t.Errorf("%s padded: len %d cap %d payload %q", g.name, len(d), cap(d), d.Payload())
		}
	}
}

func TestParseMalformed(t *testing.T) {
	with := func(b []byte, off int, v uint16) []byte {
		c := append([]byte{}, b...)
		binary.BigEndian.PutUint16(c[off:], v)
		return c
	}
	corrupt := append([]byte{}, capture4...)
	corrupt[10] ^= 0x20
	mapped := func(a netip.Addr) netip.Addr { return netip.AddrFrom16(a.As16()) }
	tests := []struct {
		name     string
		b        []byte
		src, dst netip.Addr
		want     error
	}{
		{name: "empty", b: nil, src: client4, dst: server4, want: ErrTruncated},
		{name: "7 octets", b: capture4[:7], src: client4, dst: server4, want: ErrTruncated},
		{name: "length 0", b: with(capture4, 4, 0), src: client4, dst: server4, want: ErrBadLength},
		{name: "length 7", b: with(capture4, 4, 7), src: client4, dst: server4, want: ErrBadLength},
		{name: "length one past the datagram", b: with(capture4, 4, 20), src: client4, dst: server4, want: ErrBadLength},
		{name: "length 65535 in 19 octets", b: with(capture4, 4, 0xffff), src: client4, dst: server4, want: ErrBadLength},
		{name: "truncated payload", b: capture6[:18], src: client6, dst: server6, want: ErrBadLength},
		{name: "length 8 with payload (checksum over 8)", b: with(capture4, 4, 8), src: client4, dst: server4, want: ErrChecksum},
		{name: "payload corrupted", b: corrupt, src: client4, dst: server4, want: ErrChecksum},
		{name: "checksum field off by one", b: with(capture6, 6, 0x3528), src: client6, dst: server6, want: ErrChecksum},
		{name: "wrong source address", b: capture4, src: netip.MustParseAddr("192.0.2.3"), dst: server4, want: ErrChecksum},
		{name: "wrong destination port", b: with(capture6, 2, 8), src: client6, dst: server6, want: ErrChecksum},
		{name: "IPv4 checksum under IPv6 addresses", b: capture4, src: client6, dst: server6, want: ErrChecksum},
		{name: "zero checksum over IPv4", b: with(capture4, 6, 0), src: client4, dst: server4},
		{name: "zero checksum over IPv4-mapped", b: with(capture4, 6, 0), src: mapped(client4), dst: mapped(server4)},
		{name: "zero checksum over IPv6", b: with(capture6, 6, 0), src: client6, dst: server6, want: ErrZeroChecksum},
		{name: "zero checksum, empty, over IPv6", b: with(capture4Empty, 6, 0), src: client6, dst: server6, want: ErrZeroChecksum},
		{name: "IPv4-mapped addresses", b: capture4, src: mapped(client4), dst: mapped(server4)},
		{name: "IPv4 source, IPv6 destination", b: capture4, src: client4, dst: server6, want: ErrAddress},
		{name: "zero source address", b: capture4, dst: server4, want: ErrAddress},
		{name: "zero destination address", b: capture6, src: client6, want: ErrAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse(tt.b, tt.src, tt.dst)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse = %v, want %v", err, tt.want)
			}
			if err != nil && d != nil {
				t.Fatalf("a datagram returned with error %v", err)
			}
			if err == nil && d.Length() != len(d) {
				t.Fatalf("Length() = %d, len %d", d.Length(), len(d))
			}
		})
	}
}

func TestPutHeaderErrors(t *testing.T) {
	tests := []struct {
		name       string
		b          []byte
		payloadLen int
		want       error
	}{
		{"7-octet buffer", make([]byte, 7), 0, ErrShortBuffer},
		{"nil buffer", nil, 0, ErrShortBuffer},
		{"negative payload", make([]byte, 8), -1, ErrPayloadLength},
		{"payload 65528", make([]byte, 8), MaxPayload + 1, ErrPayloadLength},
		{"payload 65527", make([]byte, 8), MaxPayload, nil},
		{"empty payload", make([]byte, 8), 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := append([]byte{}, tt.b...)
			err := PutHeader(tt.b, 1, 2, tt.payloadLen)
			if !errors.Is(err, tt.want) {
				t.Fatalf("PutHeader = %v, want %v", err, tt.want)
			}
			if err != nil && !bytes.Equal(tt.b, orig) {
				t.Fatalf("PutHeader wrote % x on error", tt.b)
			}
			if err == nil && int(binary.BigEndian.Uint16(tt.b[4:])) != HeaderLen+tt.payloadLen {
				t.Fatalf("Length field %d for payload %d", binary.BigEndian.Uint16(tt.b[4:]), tt.payloadLen)
			}
		})
	}
}

func TestSetChecksumErrors(t *testing.T) {
	long := append([]byte{}, capture4...)
	binary.BigEndian.PutUint16(long[4:], 20)
	short := append([]byte{}, capture4...)
	binary.BigEndian.PutUint16(short[4:], 7)
	tests := []struct {
		name     string
		b        []byte
		src, dst netip.Addr
		want     error
	}{
		{"7 octets", append([]byte{}, capture4[:7]...), client4, server4, ErrShortBuffer},
		{"length beyond the buffer", long, client4, server4, ErrBadLength},
		{"length 7", short, client4, server4, ErrBadLength},
		{"mixed families", append([]byte{}, capture4...), client4, server6, ErrAddress},
		{"zero addresses", append([]byte{}, capture4...), netip.Addr{}, netip.Addr{}, ErrAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := append([]byte{}, tt.b...)
			if err := SetChecksum(tt.b, tt.src, tt.dst); !errors.Is(err, tt.want) {
				t.Fatalf("SetChecksum = %v, want %v", err, tt.want)
			}
			if !bytes.Equal(tt.b, orig) {
				t.Fatalf("SetChecksum changed the buffer on error")
			}
		})
	}
	// A buffer longer than the datagram: only Length octets are summed,
	// and the rest is left alone.
	b := append(append([]byte{}, capture6...), 1, 2, 3)
	binary.BigEndian.PutUint16(b[6:], 0)
	if err := SetChecksum(b, client6, server6); err != nil || !bytes.Equal(b[:len(capture6)], capture6) ||
		!bytes.Equal(b[len(capture6):], []byte{1, 2, 3}) {
		t.Fatalf("SetChecksum over a longer buffer: %v\n% x", err, b)
	}
}

func TestAllocs(t *testing.T) {
	buf := make([]byte, HeaderLen+1400)
	tests := []struct {
		name string
		fn   func()
	}{
		{"Parse IPv4", func() { _, _ = Parse(capture4, client4, server4) }},
		{"Parse IPv6", func() { _, _ = Parse(capture6, client6, server6) }},
		{"Parse error", func() { _, _ = Parse(capture6, client6, client4) }},
		{"PutHeader", func() { _ = PutHeader(buf, 1, 2, 1400) }},
		{"SetChecksum", func() { _ = SetChecksum(buf, client6, server6) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
			t.Errorf("%s allocates %v times per run", tt.name, n)
		}
	}
}

// FuzzParse parses arbitrary bytes as a datagram between the IPv4 or the
// IPv6 test addresses. When fix is set and the Length field is usable,
// the checksum is first made correct, so that the fuzzer gets past it. It
// checks that Parse never panics, returns one of its sentinels or a
// consistent view, and that what parses re-encodes, with PutHeader and
// SetChecksum, to the same octets.
func FuzzParse(f *testing.F) {
	for _, g := range goldens {
		f.Add(g.wire, false, g.src.Is6())
	}
	f.Add(append(append([]byte{}, capture4...), 0, 0, 0), false, false)
	f.Add([]byte{0, 0, 0, 0, 0, 8, 0, 0}, false, false)
	f.Add([]byte{0, 0, 0, 0, 0, 8, 0, 0}, false, true)
	f.Add(zeroSumDatagram(client6, server6), true, true)
	f.Add([]byte{1, 2, 3, 4, 0, 7, 0, 0, 9}, true, false)
	f.Fuzz(func(t *testing.T, b []byte, fix, v6 bool) {
		src, dst := client4, server4
		if v6 {
			src, dst = client6, server6
		}
		if fix {
			b = append([]byte{}, b...)
			_ = SetChecksum(b, src, dst) // fails, harmlessly, when the Length field is bad
		}
		d, err := Parse(b, src, dst)
		if err != nil {
			if d != nil {
				t.Fatalf("datagram returned with error %v", err)
			}
			switch err {
			case ErrTruncated, ErrBadLength, ErrChecksum, ErrZeroChecksum:
			default:
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(d) < HeaderLen || d.Length() != len(d) || len(d) > len(b) || &d[0] != &b[0] {
			t.Fatalf("view of %d octets, Length() %d, from %d", len(d), d.Length(), len(b))
		}
		if HeaderLen+len(d.Payload()) != len(d) {
			t.Fatalf("payload %d + 8 != %d", len(d.Payload()), len(d))
		}
		if d.Checksum() == 0 && v6 {
			t.Fatal("zero checksum accepted over IPv6")
		}
		if d.Checksum() != 0 && naiveChecksum(src, dst, d) != 0 && naiveChecksum(src, dst, d) != 0xffff {
			t.Fatalf("accepted a checksum that the naive sum refuses: %#04x", naiveChecksum(src, dst, d))
		}

		out := make([]byte, HeaderLen+len(d.Payload()))
		if err := PutHeader(out, d.SourcePort(), d.DestinationPort(), len(d.Payload())); err != nil {
			t.Fatalf("PutHeader of a parsed datagram: %v", err)
		}
		copy(out[HeaderLen:], d.Payload())
		if d.Checksum() != 0 {
			if err := SetChecksum(out, src, dst); err != nil {
				t.Fatalf("SetChecksum of a parsed datagram: %v", err)
			}
		}
		if !bytes.Equal(out, d) {
			t.Fatalf("re-encoded\n% x\nparsed\n% x", out, d)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	for _, fam := range []struct {
		name     string
		src, dst netip.Addr
	}{{"IPv4", client4, server4}, {"IPv6", client6, server6}} {
		b.Run(fam.name, func(b *testing.B) {
			d := make([]byte, HeaderLen+1400)
			for i := range d {
				d[i] = byte(i * 7)
			}
			if err := PutHeader(d, 40000, 53, 1400); err != nil {
				b.Fatal(err)
			}
			if err := SetChecksum(d, fam.src, fam.dst); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(d)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(d, fam.src, fam.dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	d := make([]byte, HeaderLen+1400)
	b.SetBytes(int64(len(d)))
	b.ReportAllocs()
	for b.Loop() {
		_ = PutHeader(d, 40000, 53, 1400)
		_ = SetChecksum(d, client4, server4)
	}
}
