package ipv4

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

// makeDatagram returns a datagram with the given options (a multiple of 4
// bytes) and n bytes of data, byte i of the data being byte(i*7+i>>8).
func makeDatagram(t testing.TB, id uint16, opts []byte, n int, df bool) []byte {
	t.Helper()
	ihl := HeaderLen + len(opts)
	b := make([]byte, ihl+n)
	PutHeader(b, &Fields{TotalLength: uint16(ihl + n), ID: id, DontFragment: df, TTL: 64,
		Protocol: ProtocolUDP, Source: netip.MustParseAddr("192.0.2.1"),
		Destination: netip.MustParseAddr("192.0.2.2")})
	b[0] = 0x40 | byte(ihl/4)
	copy(b[HeaderLen:], opts)
	setChecksum(b[:ihl])
	for i := range n {
		b[ihl+i] = byte(i*7 + i>>8)
	}
	if _, err := ParseHeader(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// fragments runs Fragment and returns copies of the fragments.
func fragments(t testing.TB, pkt []byte, mtu int) [][]byte {
	t.Helper()
	var out [][]byte
	err := Fragment(pkt, mtu, make([]byte, mtu), func(f []byte) error {
		out = append(out, bytes.Clone(f))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFragmentGolden(t *testing.T) {
	// 20-byte header and 24 bytes of data over an MTU of 36: 16 bytes
	// (two 8-byte blocks) then 8.
	pkt := makeDatagram(t, 0x1234, nil, 24, false)
	got := fragments(t, pkt, 36)
	want := make([][]byte, 2)
	f := Fields{ID: 0x1234, TTL: 64, Protocol: ProtocolUDP,
		Source: netip.MustParseAddr("192.0.2.1"), Destination: netip.MustParseAddr("192.0.2.2")}
	want[0] = make([]byte, 36)
	f.TotalLength, f.MoreFragments, f.FragmentOffset = 36, true, 0
	PutHeader(want[0], &f)
	copy(want[0][20:], pkt[20:36])
	want[1] = make([]byte, 28)
	f.TotalLength, f.MoreFragments, f.FragmentOffset = 28, false, 16
	PutHeader(want[1], &f)
	copy(want[1][20:], pkt[36:])
	if len(got) != 2 {
		t.Fatalf("%d fragments, want 2", len(got))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("fragment %d:\n got %x\nwant %x", i, got[i], want[i])
		}
	}
}

func TestFragmentSizes(t *testing.T) {
	pkt := makeDatagram(t, 1, nil, 3980, false)
	fs := fragments(t, pkt, 1500)
	wantOff := []int{0, 1480, 2960}
	wantLen := []int{1480, 1480, 1020}
	if len(fs) != 3 {
		t.Fatalf("%d fragments, want 3", len(fs))
	}
	var data []byte
	for i, f := range fs {
		h, err := ParseHeader(f)
		if err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		if len(f) > 1500 || h.FragmentOffset() != wantOff[i] || len(h.Payload()) != wantLen[i] ||
			h.MoreFragments() != (i < 2) || h.ID() != 1 {
			t.Errorf("fragment %d: len %d off %d data %d MF %v", i, len(f), h.FragmentOffset(),
				len(h.Payload()), h.MoreFragments())
		}
		data = append(data, h.Payload()...)
	}
	if !bytes.Equal(data, pkt[20:]) {
		t.Error("data differs")
	}
}

func TestFragmentOptions(t *testing.T) {
	security := []byte{0x82, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0} // copied flag set
	recordRoute := []byte{0x07, 7, 4, 0, 0, 0, 0}           // copied flag clear
	opts := append(append(append([]byte{}, recordRoute...), 1), security...)
	opts = append(opts, 0) // 7 + 1 + 11 + 1 = 20
	pkt := makeDatagram(t, 9, opts, 200, false)
	fs := fragments(t, pkt, 100)
	for i, f := range fs {
		h, err := ParseHeader(f)
		if err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		if i == 0 {
			if !bytes.Equal(h.Options(), opts) {
				t.Errorf("first fragment options %x, want %x", h.Options(), opts)
			}
			continue
		}
		want := append(append([]byte{}, security...), 0)
		if !bytes.Equal(h.Options(), want) {
			t.Errorf("fragment %d options %x, want %x", i, h.Options(), want)
		}
		if h.FragmentOffset()%8 != 0 || len(f) > 100 {
			t.Errorf("fragment %d: offset %d len %d", i, h.FragmentOffset(), len(f))
		}
	}
	// First: 40-byte header, 56 bytes of data; later: 32-byte header, 64.
	if h := Header(fs[0]); len(h.Payload()) != 56 {
		t.Errorf("first fragment carries %d bytes, want 56", len(h.Payload()))
	}
	if h := Header(fs[1]); len(h.Payload()) != 64 || h.FragmentOffset() != 56 {
		t.Errorf("second fragment: %d bytes at %d, want 64 at 56", len(h.Payload()), h.FragmentOffset())
	}
}

func TestFragmentRefragment(t *testing.T) {
	// A fragment (MF set, offset 1480) fragmented again keeps MF on its
	// last piece and offsets from 1480.
	pkt := makeDatagram(t, 5, nil, 1000, false)
	setFragment(pkt, true, 1480)
	setChecksum(pkt[:20])
	fs := fragments(t, pkt, 576)
	off := 1480
	for i, f := range fs {
		h := Header(f)
		if !h.MoreFragments() || h.FragmentOffset() != off {
			t.Errorf("fragment %d: MF %v offset %d, want true %d", i, h.MoreFragments(), h.FragmentOffset(), off)
		}
		off += len(h.Payload())
	}
	if off != 2480 {
		t.Errorf("end %d, want 2480", off)
	}
}

func TestFragmentErrors(t *testing.T) {
	big := makeDatagram(t, 1, nil, 2000, false)
	nop := func([]byte) error { return nil }
	errStop := errors.New("stop")
	for _, tc := range []struct {
		name    string
		pkt     []byte
		mtu     int
		scratch int
		emit    func([]byte) error
		want    error
	}{
		{"DF", makeDatagram(t, 1, nil, 2000, true), 1500, 1500, nop, ErrFragmentationNeeded},
		{"MTU 27", big, 27, 1500, nop, ErrMTUTooSmall},
		{"MTU 0", big, 0, 1500, nop, ErrMTUTooSmall},
		{"MTU 68 with 60-byte header", makeDatagram(t, 1, bytes.Repeat([]byte{1}, 40), 100, false), 67, 100, nop, ErrMTUTooSmall},
		{"scratch short", big, 1500, 1499, nop, ErrScratchTooSmall},
		{"not a datagram", big[:100], 1500, 1500, nop, ErrTruncated},
		{"emit error", big, 1500, 1500, func([]byte) error { return errStop }, errStop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Fragment(tc.pkt, tc.mtu, make([]byte, tc.scratch), tc.emit)
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestFragmentFits(t *testing.T) {
	pkt := makeDatagram(t, 1, nil, 100, true)
	fs := fragments(t, pkt, 1500)
	if len(fs) != 1 || !bytes.Equal(fs[0], pkt) {
		t.Errorf("got %d fragments, want the datagram itself", len(fs))
	}
	// 40 bytes of NOPs: only the first fragment keeps them.
	fs = fragments(t, makeDatagram(t, 1, bytes.Repeat([]byte{1}, 40), 100, false), 68)
	if len(fs) != 3 { // 8, then 48 and 44 behind 20-byte headers
		t.Errorf("MTU 68, NOPs: %d fragments, want 3", len(fs))
	}
	// A 40-byte copied option: every fragment has a 60-byte header.
	copied := append([]byte{0x82, 40}, make([]byte, 38)...)
	fs = fragments(t, makeDatagram(t, 1, copied, 100, false), 68)
	if len(fs) != 13 { // 8 bytes each: 100/8 rounded up
		t.Errorf("MTU 68, copied option: %d fragments, want 13", len(fs))
	}
}

func TestFragmentAllocs(t *testing.T) {
	pkt := makeDatagram(t, 1, []byte{0x82, 4, 0, 0}, 9000, false)
	scratch := make([]byte, 1500)
	n := 0
	emit := func(f []byte) error { n += len(f); return nil }
	if a := testing.AllocsPerRun(50, func() { Fragment(pkt, 1500, scratch, emit) }); a != 0 {
		t.Errorf("allocs = %v, want 0", a)
	}
}
