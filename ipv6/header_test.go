package ipv6

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// linux reads a packet captured from Linux, testdata/linux-NAME.hex: the
// frames of `ping -6 -c 1 -s 8 -p 0102030405060708 fd00::2` and of
// `ping -6 -c 1 -s 2000 fd00::2` over a veth pair with MTU 1280 between
// two network namespaces (fd00::1 and fd00::2), captured with tcpdump -w
// on the fd00::2 end, Ethernet header removed.
func linux(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/linux-" + name + ".hex")
	if err != nil {
		t.Fatal(err)
	}
	p, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	addr1 = netip.MustParseAddr("fd00::1")
	addr2 = netip.MustParseAddr("fd00::2")
)

func TestParseHeaderGolden(t *testing.T) {
	p := linux(t, "echo-request")
	h, err := ParseHeader(p)
	if err != nil {
		t.Fatal(err)
	}
	if h.Version() != 6 || h.TrafficClass() != 0 || h.FlowLabel() != 0x61db4 || h.PayloadLength() != 16 ||
		h.NextHeader() != NextHeaderICMPv6 || h.HopLimit() != 64 || h.Source() != addr1 || h.Destination() != addr2 {
		t.Errorf("fields: v%d tc %d fl %#x pl %d nh %d hl %d %v > %v", h.Version(), h.TrafficClass(), h.FlowLabel(),
			h.PayloadLength(), h.NextHeader(), h.HopLimit(), h.Source(), h.Destination())
	}
	if len(h.Payload()) != 16 {
		t.Errorf("payload %d bytes", len(h.Payload()))
	}
	// Trailing link-layer padding is trimmed.
	h2, err := ParseHeader(append(p[:len(p):len(p)], 0, 0, 0, 0))
	if err != nil || len(h2) != len(p) {
		t.Errorf("padded: %v, len %d", err, len(h2))
	}
}

func TestPutHeaderGolden(t *testing.T) {
	want := linux(t, "echo-request")[:HeaderLen]
	b := make([]byte, HeaderLen)
	PutHeader(b, &Fields{FlowLabel: 0x61db4, PayloadLength: 16, NextHeader: NextHeaderICMPv6, HopLimit: 64,
		Source: addr1, Destination: addr2})
	if !bytes.Equal(b, want) {
		t.Fatalf("PutHeader:\n got %x\nwant %x", b, want)
	}
}

func TestPutHeaderRoundTrip(t *testing.T) {
	f := Fields{TrafficClass: 0xb9, FlowLabel: 0xfffff | 0xf00000, PayloadLength: 0, NextHeader: NextHeaderNoNextHeader,
		HopLimit: 1, Source: netip.MustParseAddr("fe80::1"), Destination: netip.MustParseAddr("ff02::1")}
	b := make([]byte, HeaderLen)
	PutHeader(b, &f)
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.TrafficClass() != 0xb9 || h.FlowLabel() != 0xfffff || h.HopLimit() != 1 || h.Source() != f.Source ||
		h.Destination() != f.Destination || h.NextHeader() != NextHeaderNoNextHeader {
		t.Errorf("round trip: % x", b)
	}
	// The zero Addr is written as ::.
	PutHeader(b, &Fields{})
	if h := Header(b); !h.Source().IsUnspecified() || h.Version() != 6 {
		t.Errorf("zero fields: % x", b)
	}
}

func TestParseHeaderMalformed(t *testing.T) {
	good := linux(t, "echo-request")
	mod := func(f func(b []byte) []byte) []byte {
		return f(bytes.Clone(good))
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"39 bytes", good[:39], ErrTruncated},
		{"version 4", mod(func(b []byte) []byte { b[0] = 0x45; return b }), ErrVersion},
		{"payload length past buffer", good[:len(good)-1], ErrTruncated},
		{"jumbogram", mod(func(b []byte) []byte { b[4], b[5], b[6] = 0, 0, NextHeaderHopByHop; return b }), ErrJumbogram},
		{"multicast source", mod(func(b []byte) []byte { b[offSource] = 0xff; return b }), ErrSourceMulticast},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseHeader(tc.b); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestHeaderAllocs(t *testing.T) {
	p := linux(t, "echo-request")
	b := make([]byte, HeaderLen)
	f := Fields{HopLimit: 64, Source: addr1, Destination: addr2}
	n := testing.AllocsPerRun(100, func() {
		h, _ := ParseHeader(p)
		_, _ = h.Source(), h.Destination()
		_, _ = ParseExtensions(h)
		PutHeader(b, &f)
	})
	if n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, n := range []string{"echo-request", "ns", "frag0", "frag1"} {
		f.Add(linux(f, n))
	}
	f.Add([]byte{0x60, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		if len(h) != HeaderLen+int(h.PayloadLength()) || h.Version() != 6 || h.Source().IsMulticast() {
			t.Fatalf("accepted %x", b)
		}
		// The builder writes the same fixed header back.
		out := make([]byte, HeaderLen)
		PutHeader(out, &Fields{TrafficClass: h.TrafficClass(), FlowLabel: h.FlowLabel(), PayloadLength: h.PayloadLength(),
			NextHeader: h.NextHeader(), HopLimit: h.HopLimit(), Source: h.Source(), Destination: h.Destination()})
		if !bytes.Equal(out, h[:HeaderLen]) {
			t.Fatalf("rebuilt %x from %x", out, h[:HeaderLen])
		}
		c, err := ParseExtensions(h)
		if err == nil && (c.Offset < HeaderLen || c.Offset > len(h) || c.ProtoPointer >= c.Offset) {
			t.Fatalf("chain %+v of %d bytes", c, len(h))
		}
	})
}
