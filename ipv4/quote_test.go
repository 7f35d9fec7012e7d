package ipv4

import (
	"errors"
	"net/netip"
	"testing"
)

// quoted builds an ICMP error payload: a TCP datagram's IPv4 header (with
// Total Length total) and the given quoted data.
func quoted(total uint16, data []byte) []byte {
	b := make([]byte, HeaderLen+len(data))
	PutHeader(b, &Fields{TotalLength: total, TTL: 63, Protocol: ProtocolTCP, DontFragment: true,
		Source: netip.MustParseAddr("10.0.0.1"), Destination: netip.MustParseAddr("10.0.0.2")})
	copy(b[HeaderLen:], data)
	return b
}

func TestParseQuote(t *testing.T) {
	ok := quoted(1500, []byte{0, 80, 0xc0, 0, 0, 0, 3, 0xe9})
	h, err := ParseQuote(ok)
	if err != nil {
		t.Fatal(err)
	}
	if h.Protocol() != ProtocolTCP || h.TotalLength() != 1500 || h.Source() != netip.MustParseAddr("10.0.0.1") || len(h.Payload()) != 8 {
		t.Fatalf("quote %v %v %v %d", h.Protocol(), h.TotalLength(), h.Source(), len(h.Payload()))
	}
	withOpts := quoted(1500, nil)
	withOpts[0] = 0x46 // IHL 6: 4 octets of options, absent
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"short", ok[:19], ErrTruncated},
		{"version 6", append([]byte{0x65}, ok[1:]...), ErrVersion},
		{"IHL 4", append([]byte{0x44}, ok[1:]...), ErrHeaderLength},
		{"options cut", withOpts, ErrTruncated},
		{"total below header", quoted(19, nil), ErrTotalLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseQuote(tc.b); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	// Only the header need be there: the quoted data may be cut short.
	if h, err := ParseQuote(ok[:HeaderLen]); err != nil || len(h.Payload()) != 0 {
		t.Fatalf("header alone: %v", err)
	}
}

func FuzzParseQuote(f *testing.F) {
	f.Add(quoted(1500, []byte{0, 80, 0xc0, 0, 0, 0, 3, 0xe9}))
	f.Add(quoted(40, nil))
	f.Add(unhex(f, portUnreach)[ICMPHeaderLen:])
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseQuote(b)
		if err != nil {
			return
		}
		_, _, _, _ = h.Source(), h.Destination(), h.Protocol(), h.TotalLength()
		if len(h.Payload())+h.HeaderLength() != len(b) || int(h.TotalLength()) < h.HeaderLength() {
			t.Fatal("inconsistent quote")
		}
	})
}
