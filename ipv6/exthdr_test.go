package ipv6

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// ext is one extension header for packet: its type and its bytes after
// the Next Header octet (which packet fills in).
type ext struct {
	typ  uint8
	body []byte
}

// optionsHeader returns a Hop-by-Hop or Destination Options header body
// (Hdr Ext Len then the options) holding opts, padded with PadN to a
// multiple of 8 octets.
func optionsHeader(typ uint8, opts ...byte) ext {
	n := 2 + len(opts)
	pad := (8 - n%8) % 8
	b := append([]byte{0}, opts...)
	switch pad {
	case 0:
	case 1:
		b = append(b, OptionPad1)
	default:
		b = append(b, OptionPadN, byte(pad-2))
		b = append(b, make([]byte, pad-2)...)
	}
	b[0] = byte((len(b)+1)/8 - 1)
	return ext{typ, b}
}

// routingHeader returns a Routing header of routing type rt with segs
// segments left and one address.
func routingHeader(rt, segs uint8) ext {
	b := make([]byte, 23)
	b[0], b[1], b[2] = 2, rt, segs
	return ext{NextHeaderRouting, b}
}

// fragmentHeader returns a Fragment header at offset off (bytes), M more.
func fragmentHeader(off int, more bool, id uint32) ext {
	b := make([]byte, 7)
	fo := uint16(off) & fragOffsetMask
	if more {
		fo |= fragMore
	}
	binary.BigEndian.PutUint16(b[1:], fo)
	binary.BigEndian.PutUint32(b[3:], id)
	return ext{NextHeaderFragment, b}
}

// packet builds an IPv6 packet from src to dst with the extension headers
// exts, then upper-layer data of protocol proto.
func packet(src, dst netip.Addr, exts []ext, proto uint8, data []byte) Header {
	b := make([]byte, HeaderLen)
	nh := proto
	if len(exts) > 0 {
		nh = exts[0].typ
	}
	for i, e := range exts {
		next := proto
		if i+1 < len(exts) {
			next = exts[i+1].typ
		}
		b = append(b, next)
		b = append(b, e.body...)
	}
	b = append(b, data...)
	PutHeader(b, &Fields{PayloadLength: uint16(len(b) - HeaderLen), NextHeader: nh, HopLimit: 64, Source: src, Destination: dst})
	return Header(b)
}

var icmpEcho = []byte{TypeEchoRequest, 0, 0, 0, 0, 1, 0, 1}

func TestParseExtensions(t *testing.T) {
	mcast := netip.MustParseAddr("ff02::1")
	hbh := func(opts ...byte) ext { return optionsHeader(NextHeaderHopByHop, opts...) }
	dst := func(opts ...byte) ext { return optionsHeader(NextHeaderDestOptions, opts...) }
	many := make([]ext, MaxExtensionHeaders+1)
	for i := range many {
		many[i] = dst()
	}
	var nineOpts []byte
	for range MaxOptions + 1 {
		nineOpts = append(nineOpts, 0x1e, 0) // skip-type options with no data
	}
	for _, tc := range []struct {
		name    string
		dst     netip.Addr
		exts    []ext
		data    []byte
		want    Chain
		err     error
		problem Problem
	}{
		{name: "none", exts: nil, want: Chain{Proto: NextHeaderICMPv6, Offset: 40, ProtoPointer: 6}},
		{name: "hop-by-hop router alert", exts: []ext{hbh(5, 2, 0, 0)}, // RFC 2711 Router Alert, MLD
			want: Chain{Proto: NextHeaderICMPv6, Offset: 48, ProtoPointer: 40}},
		{name: "hop-by-hop then two destination options", exts: []ext{hbh(), dst(), dst()},
			want: Chain{Proto: NextHeaderICMPv6, Offset: 64, ProtoPointer: 56}},
		{name: "hop-by-hop not first", exts: []ext{dst(), hbh()},
			err: ErrHopByHopNotFirst, problem: Problem{true, CodeUnrecognizedNextHeader, 40}},
		{name: "unknown option 00 skipped", exts: []ext{dst(0x1e, 2, 0, 0)},
			want: Chain{Proto: NextHeaderICMPv6, Offset: 48, ProtoPointer: 40}},
		{name: "unknown option 01 discards silently", exts: []ext{dst(0x5e, 0)}, err: ErrUnrecognizedOption},
		{name: "unknown option 10 sends code 2", exts: []ext{dst(OptionPad1, 0x9e, 0)},
			err: ErrUnrecognizedOption, problem: Problem{true, CodeUnrecognizedOption, 43}},
		{name: "unknown option 10 sends to multicast too", dst: mcast, exts: []ext{dst(0x9e, 0)},
			err: ErrUnrecognizedOption, problem: Problem{true, CodeUnrecognizedOption, 42}},
		{name: "unknown option 11 sends code 2", exts: []ext{hbh(0xde, 0)},
			err: ErrUnrecognizedOption, problem: Problem{true, CodeUnrecognizedOption, 42}},
		{name: "unknown option 11 to multicast is silent", dst: mcast, exts: []ext{hbh(0xde, 0)},
			err: ErrUnrecognizedOption},
		{name: "jumbo payload option refused", exts: []ext{hbh(0xc2, 4, 0, 1, 0, 0)}, // RFC 2675
			err: ErrUnrecognizedOption, problem: Problem{true, CodeUnrecognizedOption, 42}},
		{name: "option past its header", exts: []ext{{NextHeaderDestOptions, []byte{0, 1, 5, 0, 0, 0, 0}}},
			err: ErrOptionTruncated},
		{name: "too many options", exts: []ext{dst(nineOpts...)}, err: ErrTooManyOptions},
		{name: "routing type 0 refused", exts: []ext{routingHeader(0, 1)},
			err: ErrRoutingHeader, problem: Problem{true, CodeErroneousHeaderField, 42}},
		{name: "routing type 4 refused", exts: []ext{hbh(), routingHeader(4, 1)},
			err: ErrRoutingHeader, problem: Problem{true, CodeErroneousHeaderField, 50}},
		{name: "routing with no segments left ignored", exts: []ext{routingHeader(0, 0)},
			want: Chain{Proto: NextHeaderICMPv6, Offset: 64, ProtoPointer: 40}},
		{name: "atomic fragment walked past", exts: []ext{fragmentHeader(0, false, 7)},
			want: Chain{Proto: NextHeaderICMPv6, Offset: 48, ProtoPointer: 40, Fragment: 40}},
		{name: "first fragment", exts: []ext{hbh(), fragmentHeader(0, true, 7)}, data: make([]byte, 16),
			want: Chain{Proto: NextHeaderFragment, Offset: 48, ProtoPointer: 40, Fragment: 48}},
		{name: "later fragment", exts: []ext{fragmentHeader(8, false, 7)}, data: []byte{1},
			want: Chain{Proto: NextHeaderFragment, Offset: 40, ProtoPointer: 6, Fragment: 40}},
		{name: "fragment not a multiple of 8", exts: []ext{fragmentHeader(8, true, 7)}, data: make([]byte, 12),
			err: ErrFragmentLength, problem: Problem{true, CodeErroneousHeaderField, 4}},
		{name: "fragment past 65535", exts: []ext{fragmentHeader(65528, false, 7)}, data: make([]byte, 16),
			err: ErrFragmentTooLarge, problem: Problem{true, CodeErroneousHeaderField, 42}},
		{name: "first fragment with incomplete chain", exts: []ext{fragmentHeader(0, true, 7), dst()},
			data: make([]byte, 0), // the ICMPv6 header is in a later fragment
			err:  ErrIncompleteHeaderChain, problem: Problem{true, CodeIncompleteHeaderChain, 0}},
		{name: "too many headers", exts: many, err: ErrTooManyExtensions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.dst
			if !d.IsValid() {
				d = addr2
			}
			data := tc.data
			if data == nil {
				data = icmpEcho
			}
			h := packet(addr1, d, tc.exts, NextHeaderICMPv6, data)
			c, err := ParseExtensions(h)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err != nil {
				if c.Problem != tc.problem {
					t.Errorf("problem %+v, want %+v", c.Problem, tc.problem)
				}
				return
			}
			if c != tc.want {
				t.Errorf("chain %+v, want %+v", c, tc.want)
			}
		})
	}
}

func TestParseExtensionsTruncated(t *testing.T) {
	h := packet(addr1, addr2, []ext{optionsHeader(NextHeaderDestOptions, 0x1e, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)},
		NextHeaderICMPv6, icmpEcho)
	for n := HeaderLen; n < HeaderLen+16; n++ {
		b := h[:n]
		b[offPayloadLength], b[offPayloadLength+1] = 0, byte(n-HeaderLen)
		if _, err := ParseExtensions(b); !errors.Is(err, ErrExtensionTruncated) {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
}

func TestParseExtensionsLinuxFragments(t *testing.T) {
	for _, tc := range []struct {
		name   string
		offset int
		more   bool
	}{{"frag0", 0, true}, {"frag1", 1232, false}} {
		h, err := ParseHeader(linux(t, tc.name))
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseExtensions(h)
		if err != nil {
			t.Fatal(err)
		}
		want := Chain{Proto: NextHeaderFragment, Offset: 40, ProtoPointer: 6, Fragment: 40}
		if c != want {
			t.Errorf("%s: %+v", tc.name, c)
		}
		f := FragmentAt(h, c.Fragment)
		if f.Offset() != tc.offset || f.More() != tc.more || f.Identification() != 0x8699b5aa || f.NextHeader() != NextHeaderICMPv6 {
			t.Errorf("%s: offset %d more %v id %#x nh %d", tc.name, f.Offset(), f.More(), f.Identification(), f.NextHeader())
		}
	}
}

func FuzzParseExtensions(f *testing.F) {
	f.Add(byte(NextHeaderHopByHop), []byte{NextHeaderDestOptions, 0, 0xc2, 0, 1, 0, 0, 0, 58, 0, 1, 4, 0, 0, 0, 0, 128, 0, 0, 0})
	f.Add(byte(NextHeaderFragment), []byte{NextHeaderRouting, 0, 0, 1, 0, 0, 0, 1, 58, 0, 0, 2, 0, 0, 0, 0})
	f.Add(byte(NextHeaderRouting), []byte{58, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, nh byte, payload []byte) {
		if len(payload) > MaxPayloadLength {
			return
		}
		b := make([]byte, HeaderLen+len(payload))
		PutHeader(b, &Fields{PayloadLength: uint16(len(payload)), NextHeader: nh, HopLimit: 1, Source: addr1, Destination: addr2})
		copy(b[HeaderLen:], payload)
		c, err := ParseExtensions(Header(b))
		if err != nil {
			if c.Problem.Send && int(c.Problem.Pointer) >= len(b) {
				t.Fatalf("pointer %d past %d bytes", c.Problem.Pointer, len(b))
			}
			return
		}
		if c.Offset < HeaderLen || c.Offset > len(b) || c.ProtoPointer >= c.Offset || b[c.ProtoPointer] != c.Proto {
			t.Fatalf("chain %+v of %x", c, b)
		}
		if c.Fragment != 0 && FragmentAt(Header(b), c.Fragment) == nil {
			t.Fatalf("fragment header at %d of %d bytes", c.Fragment, len(b))
		}
	})
}
