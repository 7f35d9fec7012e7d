package pcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/link"
)

// handBuilt returns a capture with the given byte order, magic and link
// type holding the frames, one second and 1234 sub-second units apart.
func handBuilt(order binary.AppendByteOrder, magic, linkType uint32, frames ...[]byte) []byte {
	var b []byte
	b = order.AppendUint32(b, magic)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint16(b, 4)
	b = append(b, make([]byte, 8)...)
	b = order.AppendUint32(b, 262144)
	b = order.AppendUint32(b, linkType)
	for i, f := range frames {
		b = order.AppendUint32(b, uint32(1700000000+i))
		b = order.AppendUint32(b, 1234)
		b = order.AppendUint32(b, uint32(len(f)))
		b = order.AppendUint32(b, uint32(len(f)+10))
		b = append(b, f...)
	}
	return b
}

func readAll(t *testing.T, b []byte) (*Reader, []Record) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return r, recs
		}
		if err != nil {
			t.Fatal(err)
		}
		rec.Data = bytes.Clone(rec.Data)
		recs = append(recs, rec)
	}
}

func TestReaderByteOrdersAndResolutions(t *testing.T) {
	frames := [][]byte{{1, 2, 3}, {}, bytes.Repeat([]byte{9}, 1500)}
	for _, tc := range []struct {
		name  string
		order binary.AppendByteOrder
		magic uint32
		nsec  int
	}{
		{"little-endian µs", binary.LittleEndian, Magic, 1234000},
		{"big-endian µs", binary.BigEndian, Magic, 1234000},
		{"little-endian ns", binary.LittleEndian, MagicNano, 1234},
		{"big-endian ns", binary.BigEndian, MagicNano, 1234},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, recs := readAll(t, handBuilt(tc.order, tc.magic, LinkTypeLinuxSLL2, frames...))
			if r.LinkType() != LinkTypeLinuxSLL2 || r.SnapLen() != 262144 || r.Nanosecond() != (tc.magic == MagicNano) {
				t.Errorf("link type %d, snaplen %d, nano %v", r.LinkType(), r.SnapLen(), r.Nanosecond())
			}
			if len(recs) != len(frames) {
				t.Fatalf("%d records, want %d", len(recs), len(frames))
			}
			for i, rec := range recs {
				want := time.Unix(int64(1700000000+i), int64(tc.nsec)).UTC()
				if !rec.Time.Equal(want) || !bytes.Equal(rec.Data, frames[i]) || rec.OrigLen != len(frames[i])+10 {
					t.Errorf("record %d: %v %d bytes orig %d, want %v %d bytes orig %d",
						i, rec.Time, len(rec.Data), rec.OrigLen, want, len(frames[i]), len(frames[i])+10)
				}
			}
		})
	}
}

func TestWriterReaderRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	big := make([]byte, SnapLen+100)
	for i, f := range [][]byte{{0x45, 0}, big} {
		if err := w.WriteRecord(t0.Add(time.Duration(i)*time.Millisecond), f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteRecord(time.Unix(-1, 0), nil); err == nil {
		t.Error("a timestamp before 1970 was accepted")
	}
	r, recs := readAll(t, buf.Bytes())
	if r.LinkType() != LinkTypeRaw || len(recs) != 2 {
		t.Fatalf("link type %d, %d records", r.LinkType(), len(recs))
	}
	if !recs[0].Time.Equal(t0) || len(recs[0].Data) != 2 || !recs[1].Time.Equal(t0.Add(time.Millisecond)) {
		t.Errorf("records %v %v", recs[0].Time, recs[1].Time)
	}
	if len(recs[1].Data) != SnapLen || recs[1].OrigLen != SnapLen+100 {
		t.Errorf("long frame: %d bytes captured of %d, want %d of %d", len(recs[1].Data), recs[1].OrigLen, SnapLen, SnapLen+100)
	}
}

func TestReaderRejects(t *testing.T) {
	good := handBuilt(binary.LittleEndian, Magic, LinkTypeEthernet, []byte{1, 2, 3, 4})
	absurd := bytes.Clone(good)
	binary.LittleEndian.PutUint32(absurd[24+8:], 0xfffffff0)
	pcapng := append([]byte{0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a}, make([]byte, 16)...)
	version := bytes.Clone(good)
	binary.LittleEndian.PutUint16(version[4:], 3)
	for _, tc := range []struct {
		name    string
		b       []byte
		header  error // from NewReader
		next    error // from the first Next
		mention string
	}{
		{"empty", nil, ErrTruncated, nil, "empty"},
		{"short global header", good[:10], ErrTruncated, nil, "10 bytes"},
		{"bad magic", append([]byte{1, 2, 3, 4}, good[4:]...), ErrMagic, nil, "0x04030201"},
		{"pcapng", pcapng, ErrPcapng, nil, "pcapng"},
		{"pcapng, short", pcapng[:8], ErrPcapng, nil, "editcap"},
		{"version 3", version, ErrVersion, nil, "3.4"},
		{"record header cut", good[:24+7], nil, ErrTruncated, "7 of 16"},
		{"record data cut", good[:len(good)-1], nil, ErrTruncated, "3 of 4"},
		{"absurd record length", absurd, nil, ErrRecordLength, "4294967280"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(tc.b))
			if tc.header != nil {
				if !errors.Is(err, tc.header) || !strings.Contains(err.Error(), tc.mention) {
					t.Errorf("NewReader: %v, want %v mentioning %q", err, tc.header, tc.mention)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Next()
			if !errors.Is(err, tc.next) || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("Next: %v, want %v mentioning %q", err, tc.next, tc.mention)
			}
		})
	}
}

func TestNetwork(t *testing.T) {
	ip4 := []byte{0x45, 0, 0, 20}
	ip6 := []byte{0x60, 0, 0, 0}
	eth := make([]byte, link.EthernetHeaderLen, 64)
	link.PutEthernetHeader(eth, link.MAC{2}, link.MAC{4}, link.EtherTypeIPv4)
	vlan := append(bytes.Clone(eth[:12]), 0x81, 0x00, 0x00, 0x07, 0x86, 0xdd)
	sll := make([]byte, sllHeaderLen)
	binary.BigEndian.PutUint16(sll[sllProtocolOff:], link.EtherTypeIPv4)
	sll2 := make([]byte, sll2HeaderLen)
	binary.BigEndian.PutUint16(sll2[sll2ProtocolOff:], link.EtherTypeIPv6)
	for _, tc := range []struct {
		name     string
		linkType uint32
		frame    []byte
		typ      uint16
		payload  []byte
		err      error
	}{
		{"ethernet", LinkTypeEthernet, append(bytes.Clone(eth), ip4...), link.EtherTypeIPv4, ip4, nil},
		{"ethernet with 802.1Q", LinkTypeEthernet, append(bytes.Clone(vlan), ip6...), link.EtherTypeIPv6, ip6, nil},
		{"ethernet, VLAN tag cut", LinkTypeEthernet, vlan[:16], 0, nil, ErrLinkHeader},
		{"ethernet, short", LinkTypeEthernet, eth[:13], 0, nil, ErrLinkHeader},
		{"raw IPv4", LinkTypeRaw, ip4, link.EtherTypeIPv4, ip4, nil},
		{"raw IPv6", LinkTypeRaw, ip6, link.EtherTypeIPv6, ip6, nil},
		{"raw, version 5", LinkTypeRaw, []byte{0x50}, 0, nil, ErrLinkHeader},
		{"raw, empty", LinkTypeRaw, nil, 0, nil, ErrLinkHeader},
		{"IPv4 link type", LinkTypeIPv4, ip4, link.EtherTypeIPv4, ip4, nil},
		{"SLL", LinkTypeLinuxSLL, append(bytes.Clone(sll), ip4...), link.EtherTypeIPv4, ip4, nil},
		{"SLL, short", LinkTypeLinuxSLL, sll[:15], 0, nil, ErrLinkHeader},
		{"SLL2", LinkTypeLinuxSLL2, append(bytes.Clone(sll2), ip6...), link.EtherTypeIPv6, ip6, nil},
		{"SLL2, short", LinkTypeLinuxSLL2, sll2[:19], 0, nil, ErrLinkHeader},
		{"unknown", 147, ip4, 0, nil, ErrLinkType},
	} {
		typ, p, err := Network(tc.linkType, tc.frame)
		if !errors.Is(err, tc.err) || typ != tc.typ || !bytes.Equal(p, tc.payload) {
			t.Errorf("%s: %#04x % x %v, want %#04x % x %v", tc.name, typ, p, err, tc.typ, tc.payload, tc.err)
		}
	}
}

// FuzzReader feeds arbitrary files to the Reader and Network: errors, never
// a panic, and never a record longer than MaxRecordLen.
func FuzzReader(f *testing.F) {
	f.Add(handBuilt(binary.LittleEndian, Magic, LinkTypeEthernet, make([]byte, 60)))
	f.Add(handBuilt(binary.BigEndian, MagicNano, LinkTypeLinuxSLL, make([]byte, 20), []byte{1}))
	f.Add(handBuilt(binary.LittleEndian, Magic, LinkTypeLinuxSLL2, make([]byte, 40))[:50])
	f.Add(handBuilt(binary.LittleEndian, Magic, LinkTypeRaw, []byte{0x45}))
	f.Add([]byte{0x0a, 0x0d, 0x0d, 0x0a})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for {
			rec, err := r.Next()
			if err != nil {
				return
			}
			if len(rec.Data) > MaxRecordLen || rec.OrigLen < len(rec.Data) {
				t.Fatalf("record of %d bytes, orig %d", len(rec.Data), rec.OrigLen)
			}
			_, p, err := Network(r.LinkType(), rec.Data)
			if err == nil && len(p) > len(rec.Data) {
				t.Fatalf("payload longer than the frame")
			}
		}
	})
}
