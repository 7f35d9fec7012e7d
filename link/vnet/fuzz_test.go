package vnet

import (
	"bytes"
	"testing"
)

// FuzzCheck feeds arbitrary headers and frames to Parse and Check: they
// never panic, and an accepted GSO frame's offsets lie inside it.
func FuzzCheck(f *testing.F) {
	seg := tcp4(make([]byte, 3000), 1, 0, 1, true)
	var h [HeaderLen]byte
	(&Header{Flags: FlagNeedsChecksum, GSOType: GSOTCPv4, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}).Put(h[:])
	f.Add(append(append(h[:], make([]byte, 14)...), seg...), 14)
	(&Header{Flags: FlagDataValid}).Put(h[:])
	f.Add(append(h[:], seg...), 0)
	f.Add([]byte{1, 5, 0, 0, 0, 0, 255, 255, 255, 255, 0x45}, 0)
	(&Header{Flags: FlagNeedsChecksum, GSOType: GSOTCPv6, GSOSize: 1428, CsumStart: 40, CsumOffset: 16}).Put(h[:])
	f.Add(append(h[:], tcp6(make([]byte, 3000), 1, 0)...), 0)
	f.Fuzz(func(t *testing.T, b []byte, l3 int) {
		hd, err := Parse(b)
		if err != nil {
			return
		}
		frame := b[HeaderLen:]
		o, err := Check(hd, frame, l3%64)
		if err != nil {
			return
		}
		if o.NeedsChecksum && l3%64+int(o.ChecksumStart)+int(o.ChecksumOffset)+2 > len(frame) {
			t.Fatalf("checksum offsets %d+%d outside a %d-byte frame", o.ChecksumStart, o.ChecksumOffset, len(frame))
		}
		if o.GSOType != 0 && o.GSOSize == 0 {
			t.Fatal("GSO with size 0 accepted")
		}
		if gso := o.GSOType &^ GSOECN; (gso == GSOTCPv4 || gso == GSOTCPv6) && Segments(len(frame), int(o.GSOSize)) <= 64 {
			// A valid TSO frame can be split without error or panic.
			buf := make([]byte, 65535+14)
			Split(frame, l3%64, int(o.GSOSize), buf, func([]byte) error { return nil })
		}
	})
}

// FuzzSplitCoalesce builds a TCP super-segment, over IPv4 or (v6) IPv6,
// from the input, splits it at mss and merges the pieces: the result is
// the original datagram, byte for byte, and every piece but the last
// carries mss bytes.
func FuzzSplitCoalesce(f *testing.F) {
	f.Add(make([]byte, 4000), uint16(1448), byte(0x80|0x08|0x01), uint32(1), uint16(7), true, false)
	f.Add([]byte("x"), uint16(1), byte(0), uint32(0xffffffff), uint16(0xffff), false, false)
	f.Add(make([]byte, 9001), uint16(1001), byte(0x40), uint32(5), uint16(0), true, false)
	f.Add(make([]byte, 4000), uint16(1428), byte(0x80|0x08|0x01), uint32(1), uint16(0), true, true)
	f.Add(make([]byte, 65535-72), uint16(1220), byte(0), uint32(0xfffff000), uint16(0), true, true)
	f.Fuzz(func(t *testing.T, payload []byte, mss uint16, flags byte, seq uint32, id uint16, df, v6 bool) {
		hl := 52 // IPv4 and TCP headers, tcp4's
		if v6 {
			hl = 72
		}
		if len(payload) == 0 || len(payload) > 65535-hl || mss == 0 || Segments(len(payload), int(mss)) > 64 {
			return
		}
		flags &= tcpFIN | tcpPSH | tcpCWR | 0x40 // ECE
		super := tcpSeg(v6, payload, seq, flags, id, df)
		buf := make([]byte, hl+int(mss))
		c, err := NewCoalescer(make([]byte, 65535))
		if err != nil {
			t.Fatal(err)
		}
		pieces := 0
		err = Split(super, 0, int(mss), buf, func(seg []byte) error {
			pieces++
			if pieces < Segments(len(payload), int(mss)) && len(seg) != hl+int(mss) {
				t.Fatalf("piece %d has %d bytes, want %d", pieces, len(seg), hl+int(mss))
			}
			if !c.Add(seg) {
				t.Fatalf("piece %d refused", pieces)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if pieces != Segments(len(payload), int(mss)) {
			t.Fatalf("%d pieces, want %d", pieces, Segments(len(payload), int(mss)))
		}
		got, o, n := c.Flush()
		if n != pieces || !bytes.Equal(got, super) {
			t.Fatalf("merged %d pieces into a different datagram:\n got % x\nwant % x", n, got[:min(hl, len(got))], super[:hl])
		}
		gso := uint8(GSOTCPv4)
		if v6 {
			gso = GSOTCPv6
		}
		if n > 1 && (o.GSOType != gso || int(o.GSOSize) != min(int(mss), len(payload))) {
			t.Fatalf("metadata %+v", o)
		}
	})
}
