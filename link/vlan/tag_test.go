package vlan

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ustack/ustack/link"
)

// goldenTagged is an ARP request's Ethernet header tagged for VLAN 10 with
// priority 5 and DEI set: TPID 81 00, TCI b0 0a (PCP 101, DEI 1, VID
// 0x00a), then EtherType 08 06.
var goldenTagged = []byte{
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination
	0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // source
	0x81, 0x00, // TPID
	0xb0, 0x0a, // TCI: PCP 5, DEI 1, VID 10
	0x08, 0x06, // EtherType ARP
	0x00, 0x01, // payload
}

func TestParseFrameGolden(t *testing.T) {
	f, err := ParseFrame(goldenTagged)
	if err != nil {
		t.Fatal(err)
	}
	if f.Destination() != link.Broadcast || f.Source() != (link.MAC{2, 0, 0, 0, 0, 1}) {
		t.Errorf("addresses %v %v", f.Destination(), f.Source())
	}
	if got, want := f.Tag(), (Tag{PCP: 5, DEI: true, VID: 10}); got != want {
		t.Errorf("Tag = %+v, want %+v", got, want)
	}
	if f.Type() != link.EtherTypeARP || !bytes.Equal(f.Payload(), []byte{0, 1}) {
		t.Errorf("Type %#x, payload % x", f.Type(), f.Payload())
	}
	if s := f.Tag().String(); s != "vlan 10 pcp 5 dei" {
		t.Errorf("String = %q", s)
	}
}

func TestPutHeaderGolden(t *testing.T) {
	b := make([]byte, HeaderLen)
	PutHeader(b, link.Broadcast, link.MAC{2, 0, 0, 0, 0, 1}, Tag{PCP: 5, DEI: true, VID: 10}, link.EtherTypeARP)
	if !bytes.Equal(b, goldenTagged[:HeaderLen]) {
		t.Errorf("PutHeader:\n got % x\nwant % x", b, goldenTagged[:HeaderLen])
	}
}

func TestTCI(t *testing.T) {
	for _, tc := range []struct {
		name string
		tag  Tag
		tci  uint16
	}{
		{"zero", Tag{}, 0},
		{"vid 1", Tag{VID: 1}, 0x0001},
		{"max vid", Tag{VID: MaxVID}, 0x0ffe},
		{"reserved", Tag{VID: VIDReserved}, 0x0fff},
		{"pcp 7", Tag{PCP: 7, VID: 20}, 0xe014},
		{"dei", Tag{DEI: true}, 0x1000},
	} {
		if got := tc.tag.TCI(); got != tc.tci {
			t.Errorf("%s: TCI = %#04x, want %#04x", tc.name, got, tc.tci)
		}
		if got := TagFromTCI(tc.tci); got != tc.tag {
			t.Errorf("%s: TagFromTCI = %+v, want %+v", tc.name, got, tc.tag)
		}
	}
	if got := (Tag{PCP: 9, VID: 0x1234}).TCI(); got != 0x2234 {
		t.Errorf("out-of-range bits: TCI = %#04x, want them cut to 0x2234", got)
	}
}

func TestParseFrameMalformed(t *testing.T) {
	untagged := append([]byte(nil), goldenTagged...)
	untagged[12], untagged[13] = 0x08, 0x00
	length := append([]byte(nil), goldenTagged...)
	length[16], length[17] = 0x00, 0x2e // an 802.3 length after the tag
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"shorter than ethernet", goldenTagged[:13], ErrTruncated},
		{"tag cut short", goldenTagged[:16], ErrTruncated},
		{"type cut short", goldenTagged[:17], ErrTruncated},
		{"untagged", untagged, ErrNotTagged},
		{"802.3 length inside", length, ErrLength},
	} {
		if _, err := ParseFrame(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := ParseFrame(goldenTagged[:HeaderLen]); err != nil {
		t.Errorf("header without payload: %v", err)
	}
}

func TestInsertStripTag(t *testing.T) {
	plain := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0xaa, 0xbb}
	dst := make([]byte, len(plain)+TagLen)
	n := insertTag(dst, plain, Tag{VID: 42})
	want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0x00, 0x00, 0x2a, 0x08, 0x00, 0xaa, 0xbb}
	if !bytes.Equal(dst[:n], want) {
		t.Fatalf("insertTag: % x, want % x", dst[:n], want)
	}
	back := make([]byte, len(plain))
	if m, cut := stripTag(back, dst[:n]); cut || !bytes.Equal(back[:m], plain) {
		t.Errorf("stripTag: % x cut %v, want % x", back[:m], cut, plain)
	}
	if m, cut := stripTag(back[:15], dst[:n]); !cut || m != 15 {
		t.Errorf("stripTag into a short buffer: %d, cut %v; want 15, true", m, cut)
	}
}
