package checksum

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// naiveSum is the byte-at-a-time reference of RFC 1071 §4.1.
func naiveSum(b []byte, initial uint16) uint16 {
	acc := uint32(initial)
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	for acc>>16 != 0 {
		acc = (acc >> 16) + (acc & 0xffff)
	}
	return uint16(acc)
}

func TestRFC1071Example(t *testing.T) {
	// RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Sum(b, 0); got != 0xddf2 {
		t.Fatalf("Sum = %#04x, want 0xddf2", got)
	}
}

func TestIPv4HeaderGolden(t *testing.T) {
	// A real IPv4 header (checksum field 0xb861) verifies to 0xffff.
	h := []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
		0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}
	if got := Sum(h, 0); got != 0xffff {
		t.Fatalf("Sum over valid header = %#04x, want 0xffff", got)
	}
	h[10], h[11] = 0, 0
	if got := Checksum(h, 0); got != 0xb861 {
		t.Fatalf("Checksum = %#04x, want 0xb861", got)
	}
}

func TestSumMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 300; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		for _, init := range []uint16{0, 1, 0xffff, uint16(r.UintN(65536))} {
			if got, want := Sum(b, init), naiveSum(b, init); got != want && !(got == 0xffff && want == 0) && !(got == 0 && want == 0xffff) {
				t.Fatalf("len %d init %#x: Sum = %#04x, naive = %#04x", n, init, got, want)
			}
		}
	}
	// All 0xff bytes exercise every carry path.
	b := make([]byte, 1031)
	for i := range b {
		b[i] = 0xff
	}
	if got, want := Sum(b, 0xffff), naiveSum(b, 0xffff); got != want {
		t.Fatalf("all-ones: Sum = %#04x, naive = %#04x", got, want)
	}
}

func FuzzSum(f *testing.F) {
	f.Add([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, uint16(0))
	f.Add([]byte{0xff}, uint16(0xffff))
	f.Fuzz(func(t *testing.T, b []byte, init uint16) {
		got, want := Sum(b, init), naiveSum(b, init)
		// 0 and 0xffff are both representations of zero in one's complement.
		if got != want && !(got|want == 0xffff && got&want == 0) {
			t.Fatalf("Sum = %#04x, naive = %#04x", got, want)
		}
	})
}

func TestPseudoHeader(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	b := make([]byte, 12)
	copy(b[0:4], src.AsSlice())
	copy(b[4:8], dst.AsSlice())
	b[9] = 6
	binary.BigEndian.PutUint16(b[10:], 1234)
	if got, want := PseudoHeader(src, dst, 6, 1234), naiveSum(b, 0); got != want {
		t.Fatalf("PseudoHeader = %#04x, want %#04x", got, want)
	}
}

func TestUpdate(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 1000; i++ {
		b := make([]byte, 20)
		for j := range b {
			b[j] = byte(r.UintN(256))
		}
		b[10], b[11] = 0, 0
		hc := Checksum(b, 0)
		binary.BigEndian.PutUint16(b[10:], hc)
		w := 2 * int(r.UintN(5)) // a word other than the checksum
		old := binary.BigEndian.Uint16(b[w:])
		nw := uint16(r.UintN(65536))
		binary.BigEndian.PutUint16(b[w:], nw)
		got := Update(hc, old, nw)
		binary.BigEndian.PutUint16(b[10:], 0)
		want := Checksum(b, 0)
		if got != want && !(got|want == 0xffff && got&want == 0) {
			t.Fatalf("Update = %#04x, recomputed %#04x", got, want)
		}
	}
}

func benchData() []byte {
	b := make([]byte, 1500)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func BenchmarkSum1500(b *testing.B) {
	d := benchData()
	b.SetBytes(int64(len(d)))
	for b.Loop() {
		Sum(d, 0)
	}
}

func BenchmarkNaiveSum1500(b *testing.B) {
	d := benchData()
	b.SetBytes(int64(len(d)))
	for b.Loop() {
		naiveSum(d, 0)
	}
}

// naivePseudo6 builds the IPv6 pseudo-header of RFC 8200 §8.1 byte by
// byte and sums it with naiveSum.
func naivePseudo6(src, dst netip.Addr, proto uint8, length uint32) uint16 {
	b := make([]byte, 40)
	s, d := src.As16(), dst.As16()
	copy(b[0:16], s[:])
	copy(b[16:32], d[:])
	binary.BigEndian.PutUint32(b[32:], length)
	b[39] = proto
	return naiveSum(b, 0)
}

func TestPseudoHeaderIPv6(t *testing.T) {
	tests := []struct {
		name     string
		src, dst netip.Addr
	}{
		{"documentation", netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")},
		{"all ones", netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")},
		{"link-local with zone", netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("fe80::2")},
		{"mixed families", netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::2")},
		{"zero Addr", netip.Addr{}, netip.Addr{}},
	}
	for _, tt := range tests {
		for _, proto := range []uint8{6, 17, 0xff} {
			for _, length := range []uint16{0, 8, 1234, 0xffff} {
				got, want := PseudoHeader(tt.src, tt.dst, proto, length), naivePseudo6(tt.src, tt.dst, proto, uint32(length))
				if got != want && !(got|want == 0xffff && got&want == 0) {
					t.Errorf("%s proto %d length %d: PseudoHeader = %#04x, want %#04x", tt.name, proto, length, got, want)
				}
			}
		}
	}
}

func TestPseudoHeaderIPv4Mapped(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.0.2.200")
	msrc, mdst := netip.AddrFrom16(src.As16()), netip.AddrFrom16(dst.As16())
	if got, want := PseudoHeader(msrc, mdst, 17, 99), PseudoHeader(src, dst, 17, 99); got != want {
		t.Fatalf("IPv4-mapped pseudo-header = %#04x, IPv4 = %#04x", got, want)
	}
}

func FuzzPseudoHeader(f *testing.F) {
	f.Add(make([]byte, 32), uint8(17), uint16(8), true)
	f.Add([]byte("\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"), uint8(6), uint16(40), false)
	f.Fuzz(func(t *testing.T, addrs []byte, proto uint8, length uint16, v4 bool) {
		var a [32]byte
		copy(a[:], addrs)
		var src, dst netip.Addr
		var want uint16
		if v4 {
			src, dst = netip.AddrFrom4([4]byte(a[0:4])), netip.AddrFrom4([4]byte(a[4:8]))
			b := make([]byte, 12)
			copy(b[0:8], a[0:8])
			b[9] = proto
			binary.BigEndian.PutUint16(b[10:], length)
			want = naiveSum(b, 0)
		} else {
			src, dst = netip.AddrFrom16([16]byte(a[0:16])), netip.AddrFrom16([16]byte(a[16:32]))
			if src.Unmap().Is4() && dst.Unmap().Is4() {
				return // both IPv4-mapped: summed as IPv4, checked above
			}
			want = naivePseudo6(src, dst, proto, uint32(length))
		}
		if got := PseudoHeader(src, dst, proto, length); got != want && !(got|want == 0xffff && got&want == 0) {
			t.Fatalf("PseudoHeader(%v, %v, %d, %d) = %#04x, want %#04x", src, dst, proto, length, got, want)
		}
	})
}
