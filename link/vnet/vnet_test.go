package vnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ip"
)

var (
	srcAddr  = netip.MustParseAddr("10.0.0.1")
	dstAddr  = netip.MustParseAddr("10.0.0.2")
	srcAddr6 = netip.MustParseAddr("fd00::1")
	dstAddr6 = netip.MustParseAddr("fd00::2")
)

// tcpSeg is tcp4, or with v6 its TCP/IPv6 counterpart (tcp6; id and df
// are then unused).
func tcpSeg(v6 bool, payload []byte, seq uint32, flags byte, id uint16, df bool) []byte {
	if v6 {
		return tcp6(payload, seq, flags)
	}
	return tcp4(payload, seq, flags, id, df)
}

// tcp6 builds a TCP/IPv6 packet with the same TCP header as tcp4's, a
// Flow Label and Hop Limit 64, and a complete checksum (RFC 8200 §8.1).
func tcp6(payload []byte, seq uint32, flags byte) []byte {
	v4 := tcp4(payload, seq, flags, 0, true)
	b := make([]byte, 40+len(v4)-20)
	b[0], b[1], b[2], b[3] = 0x60, 0x0a, 0xbc, 0xde // Traffic Class 0, Flow Label 0xabcde
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	b[6], b[7] = 6, 64
	copy(b[8:], srcAddr6.AsSlice())
	copy(b[24:], dstAddr6.AsSlice())
	th := b[40:]
	copy(th, v4[20:])
	th[16], th[17] = 0, 0
	sum := checksum.PseudoHeader(srcAddr6, dstAddr6, 6, uint16(len(th)))
	binary.BigEndian.PutUint16(th[16:], checksum.Checksum(th, sum))
	return b
}

// tcp4 builds a TCP/IPv4 datagram with a 12-byte timestamp option and the
// given payload, flags and IP ID, with DF set and checksums complete.
func tcp4(payload []byte, seq uint32, flags byte, id uint16, df bool) []byte {
	const ihl, thl = 20, 32
	b := make([]byte, ihl+thl+len(payload))
	b[0], b[8], b[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], id)
	if df {
		b[6] = 0x40
	}
	copy(b[12:], srcAddr.AsSlice())
	copy(b[16:], dstAddr.AsSlice())
	binary.BigEndian.PutUint16(b[10:], checksum.Checksum(b[:ihl], 0))
	th := b[ihl:]
	binary.BigEndian.PutUint16(th[0:], 40000)
	binary.BigEndian.PutUint16(th[2:], 80)
	binary.BigEndian.PutUint32(th[4:], seq)
	binary.BigEndian.PutUint32(th[8:], 777)
	th[12], th[13] = thl/4<<4, flags|0x10
	binary.BigEndian.PutUint16(th[14:], 502)
	copy(th[20:], []byte{1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7}) // NOP NOP TS
	copy(th[thl:], payload)
	sum := checksum.PseudoHeader(srcAddr, dstAddr, 6, uint16(thl+len(payload)))
	binary.BigEndian.PutUint16(th[16:], checksum.Checksum(th, sum))
	return b
}

// TestHeaderGolden checks Put and Parse against the bytes of struct
// virtio_net_hdr in the host's (little-endian) order.
func TestHeaderGolden(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("golden bytes are little-endian")
	}
	h := Header{Flags: FlagNeedsChecksum, GSOType: GSOTCPv4, HdrLen: 66, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	want := []byte{1, 1, 66, 0, 0xa8, 0x05, 34, 0, 16, 0}
	var b [HeaderLen]byte
	h.Put(b[:])
	if !bytes.Equal(b[:], want) {
		t.Fatalf("Put = % x, want % x", b, want)
	}
	got, err := Parse(want)
	if err != nil || got != h {
		t.Fatalf("Parse = %+v, %v; want %+v", got, err, h)
	}
	if _, err := Parse(want[:9]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Parse of 9 bytes: %v, want ErrTruncated", err)
	}
}

// TestCheck runs Check over good headers and each kind of bad one.
func TestCheck(t *testing.T) {
	seg := tcp4(make([]byte, 3000), 1, 0, 1, true)
	eth := append(make([]byte, 14), seg...)
	udp := append([]byte(nil), seg...)
	udp[9] = 17
	tso := Header{Flags: FlagNeedsChecksum, GSOType: GSOTCPv4, GSOSize: 1448, CsumStart: 14 + 20, CsumOffset: 16}
	tests := []struct {
		name  string
		h     Header
		frame []byte
		l3    int
		want  ip.Offload
		err   error
	}{
		{name: "plain", h: Header{}, frame: eth, l3: 14},
		{name: "data valid", h: Header{Flags: FlagDataValid}, frame: eth, l3: 14, want: ip.Offload{DataValid: true}},
		{name: "tso", h: tso, frame: eth, l3: 14,
			want: ip.Offload{GSOType: GSOTCPv4, GSOSize: 1448, ChecksumStart: 20, ChecksumOffset: 16, NeedsChecksum: true}},
		{name: "hdr_len is the whole first packet", h: func() Header { h := tso; h.HdrLen = 14 + 1500; return h }(), frame: eth, l3: 14,
			want: ip.Offload{GSOType: GSOTCPv4, GSOSize: 1448, ChecksumStart: 20, ChecksumOffset: 16, NeedsChecksum: true}},
		{name: "tso on tun", h: Header{Flags: FlagNeedsChecksum, GSOType: GSOTCPv4 | GSOECN, GSOSize: 1000, CsumStart: 20, CsumOffset: 16}, frame: seg,
			want: ip.Offload{GSOType: GSOTCPv4 | GSOECN, GSOSize: 1000, ChecksumStart: 20, ChecksumOffset: 16, NeedsChecksum: true}},
		{name: "tso without needs_csum", h: Header{GSOType: GSOTCPv4, GSOSize: 1000}, frame: seg,
			want: ip.Offload{GSOType: GSOTCPv4, GSOSize: 1000, ChecksumStart: 20, ChecksumOffset: 16}},
		{name: "checksum only", h: Header{Flags: FlagNeedsChecksum, CsumStart: 34, CsumOffset: 16}, frame: eth, l3: 14,
			want: ip.Offload{ChecksumStart: 20, ChecksumOffset: 16, NeedsChecksum: true}},
		{name: "gso size zero", h: func() Header { h := tso; h.GSOSize = 0; return h }(), frame: eth, l3: 14, err: ErrGSOSize},
		{name: "tcpv6 on ipv4", h: func() Header { h := tso; h.GSOType = GSOTCPv6; return h }(), frame: eth, l3: 14, err: ErrGSOType},
		{name: "tcpv4 on udp", h: Header{GSOType: GSOTCPv4, GSOSize: 1000}, frame: udp, err: ErrGSOType},
		{name: "ufo", h: Header{GSOType: GSOUDP, GSOSize: 1000}, frame: udp, err: ErrGSOType},
		{name: "unknown gso", h: Header{GSOType: 9, GSOSize: 1000}, frame: seg, err: ErrGSOType},
		{name: "ecn alone", h: Header{GSOType: GSOECN}, frame: seg, err: ErrGSOType},
		{name: "csum_start before transport", h: func() Header { h := tso; h.CsumStart = 14; return h }(), frame: eth, l3: 14, err: ErrChecksumOffset},
		{name: "csum_offset wrong field", h: func() Header { h := tso; h.CsumOffset = 6; return h }(), frame: eth, l3: 14, err: ErrChecksumOffset},
		{name: "csum_start past end", h: Header{Flags: FlagNeedsChecksum, CsumStart: 60000, CsumOffset: 16}, frame: eth, l3: 14, err: ErrChecksumOffset},
		{name: "csum_start below link header", h: Header{Flags: FlagNeedsChecksum, CsumStart: 2, CsumOffset: 16}, frame: eth, l3: 14, err: ErrChecksumOffset},
		{name: "total length beyond frame", h: tso, frame: eth[:1000], l3: 14, err: ErrTruncated},
		{name: "empty frame", h: tso, frame: nil, l3: 14, err: ErrTruncated},
		{name: "bad ip version", h: tso, frame: append(make([]byte, 14), 0x15), l3: 14, err: ErrHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Check(tt.h, tt.frame, tt.l3)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("Check = %+v, %v; want %+v, %v", got, err, tt.want, tt.err)
			}
			if err == nil && tt.h.GSOType != 0 {
				back := HeaderFor(&got, tt.l3, 0)
				if back.GSOType != tt.h.GSOType || back.GSOSize != tt.h.GSOSize {
					t.Fatalf("HeaderFor = %+v", back)
				}
			}
		})
	}
}

// TestSplit cuts a 4000-byte super-segment with CWR, PSH and FIN at an MSS
// of 1448 and checks every field Split sets, over IPv4 and IPv6.
func TestSplit(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "IPv4", true: "IPv6"}[v6], func(t *testing.T) { testSplit(t, v6) })
	}
}

func testSplit(t *testing.T, v6 bool) {
	payload := make([]byte, 4000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	super := tcpSeg(v6, payload, 1000, tcpCWR|tcpPSH|tcpFIN, 500, true)
	frame := append([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 8, 0}, super...)
	var segs [][]byte
	buf := make([]byte, 2000)
	if err := Split(frame, 14, 1448, buf, func(s []byte) error {
		segs = append(segs, append([]byte(nil), s...))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sizes := []int{1448, 1448, 1104}
	if len(segs) != len(sizes) || Segments(4000, 1448) != 3 {
		t.Fatalf("%d segments, want 3", len(segs))
	}
	for i, s := range segs {
		if !bytes.Equal(s[:14], frame[:14]) {
			t.Errorf("segment %d: link header % x", i, s[:14])
		}
		var f byte
		if i == 0 {
			f |= tcpCWR
		}
		if i == 2 {
			f |= tcpPSH | tcpFIN
		}
		want := tcpSeg(v6, payload[i*1448:i*1448+sizes[i]], 1000+uint32(i*1448), f, 500+uint16(i), true)
		if !bytes.Equal(s[14:], want) {
			t.Errorf("segment %d differs from the one built directly:\n got % x\nwant % x", i, s[14:80], want[:66])
		}
	}
	if err := Split(frame, 14, 1448, buf[:100], func([]byte) error { return nil }); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("short buffer: %v", err)
	}
	if err := Split(frame, 14, 0, buf, func([]byte) error { return nil }); !errors.Is(err, ErrGSOSize) {
		t.Errorf("mss 0: %v", err)
	}
}

// TestCompleteChecksum completes a partial checksum as a device leaves it
// for NEEDS_CSUM: the pseudo-header's sum in the field.
func TestCompleteChecksum(t *testing.T) {
	seg := tcp4([]byte("hello, world"), 1, tcpPSH, 1, true)
	want := append([]byte(nil), seg...)
	th := seg[20:]
	binary.BigEndian.PutUint16(th[16:], checksum.PseudoHeader(srcAddr, dstAddr, 6, uint16(len(th))))
	if !CompleteChecksum(seg, 20, 16) || !bytes.Equal(seg, want) {
		t.Fatalf("completed checksum %#04x, want %#04x", binary.BigEndian.Uint16(th[16:]), binary.BigEndian.Uint16(want[36:]))
	}
	if CompleteChecksum(seg, len(seg)-1, 16) {
		t.Fatal("offsets past the end accepted")
	}
}

// TestCoalesce merges in-order segments and refuses each unsafe one.
func TestCoalesce(t *testing.T) {
	c, err := NewCoalescer(make([]byte, 65535))
	if err != nil {
		t.Fatal(err)
	}
	p := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 1000) }
	for i := range 3 {
		if !c.Add(tcp4(p(i), 1+uint32(i*1000), 0, 10+uint16(i), true)) {
			t.Fatalf("segment %d refused", i)
		}
	}
	pkt, o, n := c.Flush()
	want := tcp4(append(append(p(0), p(1)...), p(2)...), 1, 0, 10, true)
	if n != 3 || !bytes.Equal(pkt, want) || o.GSOType != GSOTCPv4 || o.GSOSize != 1000 || !o.DataValid {
		t.Fatalf("Flush: %d segments, %+v, equal %v", n, o, bytes.Equal(pkt, want))
	}
	if pkt, _, _ := c.Flush(); pkt != nil {
		t.Fatal("Flush of an empty Coalescer returned a packet")
	}

	first := tcp4(p(0), 1, 0, 10, true)
	tests := []struct {
		name string
		next []byte
	}{
		{"gap in sequence", tcp4(p(1), 1001+1, 0, 11, true)},
		{"longer than the first", tcp4(make([]byte, 1001), 1001, 0, 11, true)},
		{"syn", tcp4(p(1), 1001, tcpSYN, 11, true)},
		{"rst", tcp4(p(1), 1001, tcpRST, 11, true)},
		{"urg", tcp4(p(1), 1001, tcpURG, 11, true)},
		{"cwr", tcp4(p(1), 1001, tcpCWR, 11, true)},
		{"df differs", tcp4(p(1), 1001, 0, 11, false)},
		{"ack differs", func() []byte { b := tcp4(p(1), 1001, 0, 11, true); b[20+11]++; fixTCP(b); return b }()},
		{"window differs", func() []byte { b := tcp4(p(1), 1001, 0, 11, true); b[20+15]++; fixTCP(b); return b }()},
		{"timestamp differs", func() []byte { b := tcp4(p(1), 1001, 0, 11, true); b[20+27]++; fixTCP(b); return b }()},
		{"other port", func() []byte { b := tcp4(p(1), 1001, 0, 11, true); b[20+1]++; fixTCP(b); return b }()},
		{"bad checksum", func() []byte { b := tcp4(p(1), 1001, 0, 11, true); b[60]++; return b }()},
		{"bad ip checksum", func() []byte { b := tcp4(p(1), 1001, 0, 11, true); b[10]++; return b }()},
		{"no payload", tcp4(nil, 1001, 0, 11, true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !c.Add(first) {
				t.Fatal("first refused")
			}
			if c.Add(tt.next) {
				t.Fatal("merged")
			}
			if _, _, n := c.Flush(); n != 1 {
				t.Fatalf("%d segments held, want 1", n)
			}
		})
	}

	// After a short segment or PSH nothing joins; without DF the IDs
	// must run on.
	c.Add(first)
	c.Add(tcp4(p(1)[:500], 1001, 0, 11, true))
	if c.Add(tcp4(p(2)[:500], 1501, 0, 12, true)) {
		t.Fatal("merged after a short segment")
	}
	c.Flush()
	c.Add(tcp4(p(0), 1, 0, 10, false))
	if c.Add(tcp4(p(1), 1001, 0, 12, false)) {
		t.Fatal("merged a non-DF segment whose ID skipped")
	}
	if !c.Add(tcp4(p(1), 1001, tcpPSH, 11, false)) || c.Add(tcp4(p(2), 2001, 0, 12, false)) {
		t.Fatal("PSH did not end the super-segment")
	}
	c.Flush()
}

// TestCoalesceIPv6 merges in-order TCP/IPv6 segments into a GSO TCPv6
// super-segment, and refuses what ipv6_gro_receive would not merge: a
// segment of another family, another Flow Label or Hop Limit, an
// extension header; the TCP rules are TestCoalesce's, shared.
func TestCoalesceIPv6(t *testing.T) {
	c, err := NewCoalescer(make([]byte, 65535))
	if err != nil {
		t.Fatal(err)
	}
	p := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 1000) }
	for i := range 3 {
		if !c.Add(tcp6(p(i), 1+uint32(i*1000), 0)) {
			t.Fatalf("segment %d refused", i)
		}
	}
	pkt, o, n := c.Flush()
	want := tcp6(append(append(p(0), p(1)...), p(2)...), 1, 0)
	if n != 3 || !bytes.Equal(pkt, want) || o.GSOType != GSOTCPv6 || o.GSOSize != 1000 || o.ChecksumStart != 40 || !o.DataValid {
		t.Fatalf("Flush: %d segments, %+v, equal %v", n, o, bytes.Equal(pkt, want))
	}
	fix6 := func(b []byte) []byte {
		th := b[40:]
		th[16], th[17] = 0, 0
		sum := checksum.PseudoHeader(netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40])), 6, uint16(len(th)))
		binary.BigEndian.PutUint16(th[16:], checksum.Checksum(th, sum))
		return b
	}
	first := tcp6(p(0), 1, 0)
	for _, tt := range []struct {
		name string
		next []byte
	}{
		{"IPv4 after IPv6", tcp4(p(1), 1001, 0, 11, true)},
		{"gap in sequence", tcp6(p(1), 1002, 0)},
		{"flow label differs", func() []byte { b := tcp6(p(1), 1001, 0); b[3]++; return b }()},
		{"traffic class differs", func() []byte { b := tcp6(p(1), 1001, 0); b[1] |= 0x10; return b }()},
		{"hop limit differs", func() []byte { b := tcp6(p(1), 1001, 0); b[7]--; return b }()},
		{"other source", func() []byte { b := tcp6(p(1), 1001, 0); b[23]++; return fix6(b) }()},
		{"extension header", func() []byte { b := tcp6(p(1), 1001, 0); b[6] = 60; return b }()},
		{"bad checksum", func() []byte { b := tcp6(p(1), 1001, 0); b[80]++; return b }()},
		{"payload length beyond the packet", func() []byte { b := tcp6(p(1), 1001, 0); b[4]++; return b }()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !c.Add(first) {
				t.Fatal("first refused")
			}
			if c.Add(tt.next) {
				t.Fatal("merged")
			}
			if _, _, n := c.Flush(); n != 1 {
				t.Fatalf("%d segments held, want 1", n)
			}
		})
	}
	// An IPv4 super-segment is not continued by IPv6.
	c.Add(tcp4(p(0), 1, 0, 10, true))
	if c.Add(tcp6(p(1), 1001, 0)) {
		t.Fatal("IPv6 merged into an IPv4 super-segment")
	}
	c.Flush()
}

// fixTCP recomputes the TCP checksum of a tcp4 datagram after a change.
func fixTCP(b []byte) {
	th := b[20:]
	th[16], th[17] = 0, 0
	sum := checksum.PseudoHeader(srcAddr, dstAddr, 6, uint16(len(th)))
	binary.BigEndian.PutUint16(th[16:], checksum.Checksum(th, sum))
}

// TestSplitUDP cuts a UDP/IPv4 super-datagram (GSO UDP_L4) into datagrams
// of gso_size bytes, each with its Length, IP ID and a checksum that
// verifies.
func TestSplitUDP(t *testing.T) {
	payload := make([]byte, 2500)
	for i := range payload {
		payload[i] = byte(i)
	}
	b := make([]byte, 28+len(payload))
	b[0], b[8], b[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], 9)
	copy(b[12:], srcAddr.AsSlice())
	copy(b[16:], dstAddr.AsSlice())
	binary.BigEndian.PutUint16(b[10:], checksum.Checksum(b[:20], 0))
	binary.BigEndian.PutUint16(b[20:], 5000)
	binary.BigEndian.PutUint16(b[22:], 53)
	binary.BigEndian.PutUint16(b[24:], uint16(8+len(payload)))
	copy(b[28:], payload)
	var got []byte
	i := 0
	err := Split(b, 0, 1000, make([]byte, 2000), func(d []byte) error {
		if binary.BigEndian.Uint16(d[4:]) != 9+uint16(i) || checksum.Sum(d[:20], 0) != 0xffff {
			t.Errorf("datagram %d: IP ID or header checksum wrong", i)
		}
		u := d[20:]
		if int(binary.BigEndian.Uint16(u[4:])) != len(u) {
			t.Errorf("datagram %d: UDP length %d of %d", i, binary.BigEndian.Uint16(u[4:]), len(u))
		}
		if checksum.Sum(u, checksum.PseudoHeader(srcAddr, dstAddr, 17, uint16(len(u)))) != 0xffff {
			t.Errorf("datagram %d: checksum does not verify", i)
		}
		got = append(got, u[8:]...)
		i++
		return nil
	})
	if err != nil || i != 3 || !bytes.Equal(got, payload) {
		t.Fatalf("%d datagrams, %v, payload equal %v", i, err, bytes.Equal(got, payload))
	}
}
