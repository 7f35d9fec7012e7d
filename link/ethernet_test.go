package link

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// goldenARPFrame is an Ethernet II broadcast frame carrying the start of an
// ARP request: dst ff:ff:ff:ff:ff:ff, src 02:00:00:00:00:01, type 0x0806.
var goldenARPFrame = []byte{
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination
	0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // source
	0x08, 0x06, // EtherType ARP
	0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // ARP hw/proto/op
}

func TestParseEthernetGolden(t *testing.T) {
	e, err := ParseEthernet(goldenARPFrame)
	if err != nil {
		t.Fatalf("ParseEthernet: %v", err)
	}
	if got := e.Destination(); got != Broadcast {
		t.Errorf("Destination = %v, want %v", got, Broadcast)
	}
	if got, want := e.Source(), (MAC{0x02, 0, 0, 0, 0, 0x01}); got != want {
		t.Errorf("Source = %v, want %v", got, want)
	}
	if got := e.Type(); got != EtherTypeARP {
		t.Errorf("Type = %#04x, want %#04x", got, EtherTypeARP)
	}
	if got := e.Payload(); !bytes.Equal(got, goldenARPFrame[14:]) {
		t.Errorf("Payload = % x, want % x", got, goldenARPFrame[14:])
	}
	if !e.Destination().IsMulticast() || e.Source().IsMulticast() {
		t.Errorf("IsMulticast: broadcast must be multicast, 02:.. must not")
	}
}

func TestPutEthernetHeaderGolden(t *testing.T) {
	b := make([]byte, len(goldenARPFrame))
	copy(b[14:], goldenARPFrame[14:])
	PutEthernetHeader(b, Broadcast, MAC{0x02, 0, 0, 0, 0, 0x01}, EtherTypeARP)
	if !bytes.Equal(b, goldenARPFrame) {
		t.Errorf("built\n% x\nwant\n% x", b, goldenARPFrame)
	}

	ipv4 := []byte{
		0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
		0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
		0x08, 0x00,
	}
	h := make([]byte, EthernetHeaderLen)
	PutEthernetHeader(h, MAC{2, 0, 0, 0, 0, 2}, MAC{2, 0, 0, 0, 0, 1}, EtherTypeIPv4)
	if !bytes.Equal(h, ipv4) {
		t.Errorf("built % x, want % x", h, ipv4)
	}
}

func TestParseEthernetMalformed(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"nil", nil, ErrEthernetTruncated},
		{"empty", []byte{}, ErrEthernetTruncated},
		{"13 bytes", goldenARPFrame[:13], ErrEthernetTruncated},
		{"only addresses", goldenARPFrame[:12], ErrEthernetTruncated},
		{"802.3 length 0", append(append([]byte{}, goldenARPFrame[:12]...), 0x00, 0x00), ErrEthernetLength},
		{"802.3 length 1500", append(append([]byte{}, goldenARPFrame[:12]...), 0x05, 0xdc), ErrEthernetLength},
		{"type 0x05ff", append(append([]byte{}, goldenARPFrame[:12]...), 0x05, 0xff), ErrEthernetLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseEthernet(tt.b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseEthernet error = %v, want %v", err, tt.want)
			}
			if e != nil {
				t.Errorf("ParseEthernet returned a view with an error")
			}
		})
	}

	// The smallest valid frame: a header with EtherType 0x0600 and no payload.
	min := append(append([]byte{}, goldenARPFrame[:12]...), 0x06, 0x00)
	e, err := ParseEthernet(min)
	if err != nil {
		t.Fatalf("minimal frame: %v", err)
	}
	if len(e.Payload()) != 0 {
		t.Errorf("minimal frame payload = %d bytes, want 0", len(e.Payload()))
	}
}

func TestMAC(t *testing.T) {
	m, err := ParseMAC("02:00:5e:10:00:ff")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.String(), "02:00:5e:10:00:ff"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if m.IsZero() || !(MAC{}).IsZero() {
		t.Errorf("IsZero wrong")
	}
	if _, err := ParseMAC("02:00:5e:10:00:00:00:01"); err == nil {
		t.Errorf("ParseMAC accepted an EUI-64")
	}
	if _, err := ParseMAC("nonsense"); err == nil {
		t.Errorf("ParseMAC accepted nonsense")
	}
}

func FuzzParseEthernet(f *testing.F) {
	f.Add(goldenARPFrame)
	f.Add([]byte{})
	f.Add(goldenARPFrame[:13])
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEthernet(b)
		if err != nil {
			if e != nil {
				t.Fatalf("view returned with error %v", err)
			}
			return
		}
		// No accessor may panic on a parsed view.
		_, _, typ, p := e.Destination(), e.Source(), e.Type(), e.Payload()
		if typ < 0x0600 {
			t.Fatalf("accepted 802.3 length %#x", typ)
		}
		if len(p) != len(b)-EthernetHeaderLen {
			t.Fatalf("payload length %d for frame %d", len(p), len(b))
		}
		// Rebuilding the header reproduces the input.
		out := make([]byte, len(b))
		copy(out[EthernetHeaderLen:], p)
		PutEthernetHeader(out, e.Destination(), e.Source(), typ)
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip mismatch")
		}
	})
}

func TestL3Offset(t *testing.T) {
	tagged := make([]byte, 60)
	binary.BigEndian.PutUint16(tagged[12:], EtherTypeVLAN)
	plain := make([]byte, 60)
	binary.BigEndian.PutUint16(plain[12:], EtherTypeIPv4)
	for _, tc := range []struct {
		name string
		b    []byte
		want int
	}{
		{"untagged", plain, 14},
		{"tagged", tagged, 18},
		{"tagged but cut at the tag", tagged[:17], 14},
		{"empty", nil, 14},
	} {
		if got := L3Offset(tc.b); got != tc.want {
			t.Errorf("%s: L3Offset = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// A Pipe carries a tagged frame of MTU bytes of payload: the tag does not
// count against the MTU.
func TestPipeTaggedFrameOfMTU(t *testing.T) {
	a, b := NewPipe(PipeOptions{})
	defer a.Close()
	f := make([]byte, EthernetHeaderLen+VLANTagLen+1500)
	binary.BigEndian.PutUint16(f[12:], EtherTypeVLAN)
	if err := a.WriteFrame(f); err != nil {
		t.Fatalf("tagged frame of 1500 bytes of payload: %v", err)
	}
	if err := a.WriteFrame(f[:len(f)-2]); err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint16(f[12:], EtherTypeIPv4)
	if err := a.WriteFrame(f); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("untagged frame of 1504 bytes of payload: %v, want ErrFrameTooLarge", err)
	}
	buf := make([]byte, 2000)
	if n, err := b.ReadFrame(buf); err != nil || n != len(f) {
		t.Errorf("read %d, %v; want %d", n, err, len(f))
	}
}
