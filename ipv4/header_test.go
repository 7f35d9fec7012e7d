package ipv4

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/ustack/ustack/internal/checksum"
)

// unhex decodes hex with spaces and newlines ignored.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pingRequest is an ICMP echo request sent by Linux iputils ping over the
// loopback interface, captured with `tcpdump -i lo -X` (84 bytes: a 20-byte
// header and a 64-byte ICMP message).
const pingRequest = `
4500 0054 9210 4000 4001 aa96 7f00 0001
7f00 0001 0800 492b 5514 0001 2d08 f460
0000 0000 6c83 0d00 0000 0000 1011 1213
1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
3435 3637`

// pingReply is the Linux kernel's reply to pingRequest, same capture.
const pingReply = `
4500 0054 9211 0000 4001 ea95 7f00 0001
7f00 0001 0000 512b 5514 0001 2d08 f460
0000 0000 6c83 0d00 0000 0000 1011 1213
1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
3435 3637`

func TestParseHeaderGolden(t *testing.T) {
	b := unhex(t, pingRequest)
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	checks := []struct {
		name      string
		got, want any
	}{
		{"Version", h.Version(), uint8(4)},
		{"HeaderLength", h.HeaderLength(), 20},
		{"TOS", h.TOS(), uint8(0)},
		{"TotalLength", h.TotalLength(), uint16(84)},
		{"ID", h.ID(), uint16(0x9210)},
		{"Flags", h.Flags(), uint8(2)},
		{"DontFragment", h.DontFragment(), true},
		{"MoreFragments", h.MoreFragments(), false},
		{"FragmentOffset", h.FragmentOffset(), 0},
		{"IsFragment", h.IsFragment(), false},
		{"TTL", h.TTL(), uint8(64)},
		{"Protocol", h.Protocol(), uint8(ProtocolICMP)},
		{"Checksum", h.Checksum(), uint16(0xaa96)},
		{"Source", h.Source(), lo},
		{"Destination", h.Destination(), lo},
		{"len(Options)", len(h.Options()), 0},
		{"len(Payload)", len(h.Payload()), 64},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if !bytes.Equal(h.Payload(), b[20:]) {
		t.Error("Payload differs")
	}
}

func TestPutHeaderGolden(t *testing.T) {
	want := unhex(t, pingRequest)[:HeaderLen]
	lo := netip.MustParseAddr("127.0.0.1")
	b := make([]byte, HeaderLen)
	for i := range b {
		b[i] = 0xee // PutHeader must overwrite everything
	}
	PutHeader(b, &Fields{
		TotalLength: 84, ID: 0x9210, DontFragment: true, TTL: 64,
		Protocol: ProtocolICMP, Source: lo, Destination: lo,
	})
	if !bytes.Equal(b, want) {
		t.Fatalf("PutHeader:\n got %x\nwant %x", b, want)
	}
}

func TestPutHeaderRoundTrip(t *testing.T) {
	f := Fields{
		TOS: 0xb8, TotalLength: 20 + 16, ID: 0xbeef, MoreFragments: true,
		FragmentOffset: 1480, TTL: 3, Protocol: ProtocolUDP,
		Source:      netip.MustParseAddr("192.0.2.1"),
		Destination: netip.MustParseAddr("198.51.100.7"),
	}
	b := make([]byte, 36)
	PutHeader(b, &f)
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.TOS() != f.TOS || h.TotalLength() != f.TotalLength || h.ID() != f.ID ||
		h.DontFragment() || !h.MoreFragments() || h.FragmentOffset() != 1480 ||
		h.TTL() != 3 || h.Protocol() != ProtocolUDP || h.Source() != f.Source ||
		h.Destination() != f.Destination || !h.IsFragment() {
		t.Errorf("round trip mismatch: %x", b)
	}
}

func TestParseHeaderTrimsPadding(t *testing.T) {
	b := make([]byte, 46) // Ethernet minimum payload
	PutHeader(b, &Fields{TotalLength: 28, TTL: 1, Protocol: ProtocolUDP,
		Source: netip.MustParseAddr("10.0.0.1"), Destination: netip.MustParseAddr("10.0.0.2")})
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 28 || len(h.Payload()) != 8 {
		t.Errorf("len = %d, payload %d; want 28, 8", len(h), len(h.Payload()))
	}
}

// withOptions returns a header carrying opts (a multiple of 4 bytes) and
// payload, with a valid checksum.
func withOptions(opts, payload []byte) []byte {
	ihl := HeaderLen + len(opts)
	b := make([]byte, ihl+len(payload))
	PutHeader(b, &Fields{TotalLength: uint16(len(b)), ID: 7, TTL: 64, Protocol: ProtocolUDP,
		Source: netip.MustParseAddr("10.0.0.1"), Destination: netip.MustParseAddr("10.0.0.2")})
	b[0] = 0x40 | byte(ihl/4)
	copy(b[HeaderLen:], opts)
	copy(b[ihl:], payload)
	setChecksum(b[:ihl])
	return b
}

func TestParseHeaderOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts string
		ok   bool
	}{
		{"nop-eol", "01010000", true},
		{"record route", "07070400000000 00", true},
		{"eol then garbage", "00ffffff", true},
		{"security, nops, eol", "820b0000000000000000000101010100", true},
		{"length 1", "07010000", false},
		{"length 0", "83000000", false},
		{"exactly fills header", "0708040000000000", true},
		{"overruns header", "0709040000000000", false},
		{"type without length", "01010107", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := unhex(t, tc.opts)
			_, err := ParseHeader(withOptions(opts, []byte("data")))
			if tc.ok && err != nil {
				t.Errorf("err = %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, ErrOptions) {
				t.Errorf("err = %v, want ErrOptions", err)
			}
		})
	}
}

func TestParseHeaderMalformed(t *testing.T) {
	good := unhex(t, pingRequest)
	// mut returns a copy of good changed by f, with the checksum fixed
	// unless f broke it on purpose.
	mut := func(f func(b []byte), fix bool) []byte {
		b := bytes.Clone(good)
		f(b)
		if fix && len(b) >= 20 && int(b[0]&15)*4 <= len(b) && b[0]&15 >= 5 {
			setChecksum(b[:int(b[0]&15)*4])
		}
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"19 bytes", good[:19], ErrTruncated},
		{"version 6", mut(func(b []byte) { b[0] = 0x65 }, true), ErrVersion},
		{"version 0", mut(func(b []byte) { b[0] = 0x05 }, true), ErrVersion},
		{"IHL 4", mut(func(b []byte) { b[0] = 0x44 }, false), ErrHeaderLength},
		{"IHL 0", mut(func(b []byte) { b[0] = 0x40 }, false), ErrHeaderLength},
		{"IHL beyond buffer", mut(func(b []byte) { b[0] = 0x4f }, false)[:40], ErrTruncated},
		{"total length < IHL", mut(func(b []byte) { binary.BigEndian.PutUint16(b[2:], 19) }, true), ErrTotalLength},
		{"total length 0", mut(func(b []byte) { binary.BigEndian.PutUint16(b[2:], 0) }, true), ErrTotalLength},
		{"total length > buffer", mut(func(b []byte) { binary.BigEndian.PutUint16(b[2:], 85) }, true), ErrTruncated},
		{"total length 65535", mut(func(b []byte) { binary.BigEndian.PutUint16(b[2:], 65535) }, true), ErrTruncated},
		{"short of total length", good[:83], ErrTruncated},
		{"bad checksum", mut(func(b []byte) { b[10] ^= 1 }, false), ErrChecksum},
		{"TTL changed, checksum not", mut(func(b []byte) { b[8]-- }, false), ErrChecksum},
		{"bad option", withOptions([]byte{7, 9, 4, 0}, nil), ErrOptions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHeader(tc.b)
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if h != nil {
				t.Errorf("h = %x, want nil", []byte(h))
			}
		})
	}
}

func TestHeaderAllocs(t *testing.T) {
	b := unhex(t, pingRequest)
	out := make([]byte, HeaderLen)
	f := &Fields{TotalLength: 84, TTL: 64, Protocol: 1,
		Source: netip.MustParseAddr("10.0.0.1"), Destination: netip.MustParseAddr("10.0.0.2")}
	var sink int
	n := testing.AllocsPerRun(100, func() {
		h, err := ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		sink += int(h.Version()) + h.HeaderLength() + int(h.TOS()) + int(h.TotalLength()) +
			int(h.ID()) + int(h.Flags()) + h.FragmentOffset() + int(h.TTL()) + int(h.Protocol()) +
			int(h.Checksum()) + len(h.Options()) + len(h.Payload())
		if h.Source().Is4() && h.Destination().Is4() && !h.DontFragment() && !h.MoreFragments() {
			sink++
		}
		PutHeader(out, f)
	})
	if n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
	_ = sink
}

func FuzzParseHeader(f *testing.F) {
	f.Add(unhex(f, pingRequest))
	f.Add(withOptions([]byte{1, 1, 0, 0}, []byte("x")))
	f.Add(withOptions([]byte{0x83, 7, 4, 10, 0, 0, 1, 0}, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if h != nil {
				t.Fatal("non-nil header with error")
			}
			return
		}
		// Every accessor must be safe and consistent.
		if int(h.TotalLength()) != len(h) || h.HeaderLength() > len(h) || h.HeaderLength() < HeaderLen {
			t.Fatalf("inconsistent lengths: %x", []byte(h))
		}
		_ = h.Version() + h.TOS() + h.TTL() + h.Protocol() + h.Flags()
		_, _, _, _ = h.ID(), h.Checksum(), h.Source(), h.Destination()
		_, _, _ = h.FragmentOffset(), h.DontFragment(), h.MoreFragments()
		if len(h.Options())+len(h.Payload())+HeaderLen != len(h) {
			t.Fatal("options + payload do not add up")
		}
		if checksum.Sum(h[:h.HeaderLength()], 0) != 0xffff {
			t.Fatal("accepted a bad checksum")
		}
	})
}
