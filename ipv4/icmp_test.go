package ipv4

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/ustack/ustack/ip"
)

func TestParseICMPGolden(t *testing.T) {
	b := unhex(t, pingRequest)
	m, err := ParseICMP(mustHeader(t, b).Payload())
	if err != nil {
		t.Fatal(err)
	}
	if m.Type() != TypeEchoRequest || m.Code() != 0 || m.Checksum() != 0x492b ||
		m.Ident() != 0x5514 || m.Sequence() != 1 || len(m.Payload()) != 56 ||
		!bytes.Equal(m.Payload(), b[28:]) || IsError(m.Type()) {
		t.Errorf("type %d code %d checksum %#x ident %#x seq %d payload %d",
			m.Type(), m.Code(), m.Checksum(), m.Ident(), m.Sequence(), len(m.Payload()))
	}
}

// TestEchoReplyGolden rebuilds the Linux kernel's reply to a ping,
// byte for byte: IP header (ID 0x9211, DF clear) and ICMP message.
func TestEchoReplyGolden(t *testing.T) {
	req := mustHeader(t, unhex(t, pingRequest))
	want := unhex(t, pingReply)
	m, err := ParseICMP(req.Payload())
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 84)
	n := PutEchoReply(out[HeaderLen:], m)
	if n != 64 {
		t.Fatalf("PutEchoReply = %d, want 64", n)
	}
	PutHeader(out, &Fields{TotalLength: uint16(HeaderLen + n), ID: 0x9211, TTL: 64,
		Protocol: ProtocolICMP, Source: req.Destination(), Destination: req.Source()})
	if !bytes.Equal(out, want) {
		t.Fatalf("reply:\n got %x\nwant %x", out, want)
	}
	// The reply parses back.
	rm, err := ParseICMP(mustHeader(t, out).Payload())
	if err != nil || rm.Type() != TypeEchoReply || rm.Ident() != 0x5514 || rm.Sequence() != 1 {
		t.Errorf("reply parse: %v", err)
	}
}

func TestEchoReplyInPlace(t *testing.T) {
	b := unhex(t, pingRequest)
	want := unhex(t, pingReply)[HeaderLen:]
	m, err := ParseICMP(b[HeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	if n := PutEchoReply(b[HeaderLen:], m); n != 64 || !bytes.Equal(b[HeaderLen:], want) {
		t.Fatalf("in place: n %d\n got %x\nwant %x", n, b[HeaderLen:], want)
	}
	// Shifted overlap: reply written 4 bytes before the request.
	b = unhex(t, pingRequest)
	m = ICMP(b[24:])
	orig := bytes.Clone(m)
	if n := PutEchoReply(b[20:], m); n != len(orig) {
		t.Fatalf("n = %d", n)
	}
	r, err := ParseICMP(b[20 : 20+len(orig)])
	if err != nil || r.Type() != TypeEchoReply || !bytes.Equal(r[4:], orig[4:]) {
		t.Errorf("overlapping reply wrong: %v", err)
	}
	if PutEchoReply(make([]byte, 63), ICMP(want)) != 0 {
		t.Error("short buffer accepted")
	}
}

// offendingUDP is a UDP datagram 192.0.2.1:54321 -> 198.51.100.7:53 with 16
// bytes of data, and errPortUnreachable the ICMP Port Unreachable quoting
// it (checksums computed independently).
const (
	offendingUDP = `4500002c1c4640004011323fc0000201c6336407d4310035001800007061796c6f61647061796c6f61647878`
	portUnreach  = `0303287e000000004500002c1c4640004011323fc0000201c6336407d431003500180000`
)

func TestPutErrorGolden(t *testing.T) {
	off := unhex(t, offendingUDP)
	want := unhex(t, portUnreach)
	b := make([]byte, ICMPHeaderLen+MaxHeaderLen+8)
	n := PutError(b, TypeDestinationUnreachable, CodePortUnreachable, off)
	if !bytes.Equal(b[:n], want) {
		t.Fatalf("PutError:\n got %x\nwant %x", b[:n], want)
	}
	m, err := ParseICMP(b[:n])
	if err != nil || !IsError(m.Type()) || m.Code() != CodePortUnreachable {
		t.Fatalf("parse: %v", err)
	}
	q := mustHeaderNoTrim(t, m.Payload())
	if q.Source() != netip.MustParseAddr("192.0.2.1") || q.Protocol() != ProtocolUDP {
		t.Error("quoted header wrong")
	}
	// In place, in the buffer the datagram arrived in.
	buf := bytes.Clone(off)
	buf = append(buf, make([]byte, 8)...)
	if n := PutError(buf, TypeDestinationUnreachable, CodePortUnreachable, buf[:len(off)]); !bytes.Equal(buf[:n], want) {
		t.Errorf("in place:\n got %x\nwant %x", buf[:n], want)
	}
	if PutError(make([]byte, len(want)-1), 3, 3, off) != 0 {
		t.Error("short buffer accepted")
	}
}

// mustHeaderNoTrim returns the quoted header without checking Total Length
// (a quote is cut after 8 data bytes).
func mustHeaderNoTrim(t *testing.T, b []byte) Header {
	t.Helper()
	if len(b) < HeaderLen {
		t.Fatal("quote too short")
	}
	return Header(b)
}

func TestPutErrorWord(t *testing.T) {
	off := unhex(t, offendingUDP)
	b := make([]byte, 100)
	n := PutErrorWord(b, TypeDestinationUnreachable, CodeFragmentationNeeded, 1400, off)
	m, err := ParseICMP(b[:n])
	if err != nil || m.NextHopMTU() != 1400 || m.RestOfHeader() != 1400 {
		t.Errorf("MTU %d, %v", m.NextHopMTU(), err)
	}
	n = PutErrorWord(b, TypeParameterProblem, CodeParameterPointer, 8<<24, off)
	if m, _ := ParseICMP(b[:n]); m.Pointer() != 8 {
		t.Errorf("pointer %d", m.Pointer())
	}
	// A quote of a datagram with options keeps the whole header.
	withOpts := withOptions([]byte{0x82, 4, 0, 0, 1, 1, 1, 0}, bytes.Repeat([]byte{9}, 20))
	n = PutError(b, TypeTimeExceeded, CodeReassemblyTimeExceeded, withOpts)
	if n != 8+28+8 || !bytes.Equal(b[8:n], withOpts[:36]) {
		t.Errorf("quote with options: n %d", n)
	}
	// Short offending data is quoted whole.
	if n := PutError(b, 3, 2, off[:24]); n != 32 {
		t.Errorf("short quote n = %d, want 32", n)
	}
}

func TestParseICMPMalformed(t *testing.T) {
	good := mustHeader(t, unhex(t, pingRequest)).Payload()
	bad := bytes.Clone(good)
	bad[10] ^= 0x40
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"7 bytes", good[:7], ErrTruncated},
		{"cut short", good[:63], ErrChecksum},
		{"flipped bit", bad, ErrChecksum},
		{"zero checksum", append([]byte{8, 0, 0, 0}, good[4:]...), ErrChecksum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseICMP(tc.b)
			if !errors.Is(err, tc.want) || m != nil {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// testDatagram returns a parsed datagram src -> dst with the given protocol,
// fragment offset and payload.
func testDatagram(t *testing.T, src, dst string, proto uint8, off uint16, payload []byte) Header {
	t.Helper()
	b := make([]byte, HeaderLen+len(payload))
	PutHeader(b, &Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: proto, FragmentOffset: off,
		Source: netip.MustParseAddr(src), Destination: netip.MustParseAddr(dst)})
	copy(b[HeaderLen:], payload)
	return mustHeader(t, b)
}

func TestMayReplyWithError(t *testing.T) {
	udp := []byte{0xd4, 0x31, 0, 53, 0, 8, 0, 0}
	for _, tc := range []struct {
		name     string
		h        Header
		linkBc   bool
		mayReply bool
	}{
		{"unicast UDP", testDatagram(t, "192.0.2.1", "192.0.2.2", ProtocolUDP, 0, udp), false, true},
		{"link broadcast", testDatagram(t, "192.0.2.1", "192.0.2.2", ProtocolUDP, 0, udp), true, false},
		{"to 255.255.255.255", testDatagram(t, "192.0.2.1", "255.255.255.255", ProtocolUDP, 0, udp), false, false},
		{"to multicast", testDatagram(t, "192.0.2.1", "224.0.0.251", ProtocolUDP, 0, udp), false, false},
		{"non-initial fragment", testDatagram(t, "192.0.2.1", "192.0.2.2", ProtocolUDP, 1480, udp), false, false},
		{"from 0.0.0.0", testDatagram(t, "0.0.0.0", "192.0.2.2", ProtocolUDP, 0, udp), false, false},
		{"from 0.1.2.3", testDatagram(t, "0.1.2.3", "192.0.2.2", ProtocolUDP, 0, udp), false, false},
		{"from broadcast", testDatagram(t, "255.255.255.255", "192.0.2.2", ProtocolUDP, 0, udp), false, false},
		{"from multicast", testDatagram(t, "239.1.1.1", "192.0.2.2", ProtocolUDP, 0, udp), false, false},
		{"from class E", testDatagram(t, "240.0.0.1", "192.0.2.2", ProtocolUDP, 0, udp), false, false},
		{"from loopback", testDatagram(t, "127.0.0.1", "192.0.2.2", ProtocolUDP, 0, udp), false, false},
		{"ICMP error", testDatagram(t, "192.0.2.1", "192.0.2.2", ProtocolICMP, 0, []byte{3, 3, 0, 0, 0, 0, 0, 0}), false, false},
		{"ICMP echo", testDatagram(t, "192.0.2.1", "192.0.2.2", ProtocolICMP, 0, []byte{8, 0, 0, 0, 0, 0, 0, 0}), false, true},
		{"ICMP unknown type", testDatagram(t, "192.0.2.1", "192.0.2.2", ProtocolICMP, 0, []byte{42, 0, 0, 0}), false, false},
		{"ICMP empty", testDatagram(t, "192.0.2.1", "192.0.2.2", ProtocolICMP, 0, nil), false, false},
		{"first fragment", testDatagram(t, "192.0.2.1", "192.0.2.2", ProtocolUDP, 0, udp), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MayReplyWithError(tc.h, tc.linkBc); got != tc.mayReply {
				t.Errorf("MayReplyWithError = %v, want %v", got, tc.mayReply)
			}
		})
	}
}

func TestIsError(t *testing.T) {
	for typ := range 256 {
		want := typ == 3 || typ == 4 || typ == 5 || typ == 11 || typ == 12
		if IsError(uint8(typ)) != want {
			t.Errorf("IsError(%d) = %v", typ, !want)
		}
	}
}

func TestIsSubnetBroadcast(t *testing.T) {
	for _, tc := range []struct {
		p, a string
		want bool
	}{
		{"192.168.1.0/24", "192.168.1.255", true},
		{"192.168.1.0/24", "192.168.1.0", true},
		{"192.168.1.0/24", "192.168.1.254", false},
		{"192.168.1.0/24", "192.168.2.255", false},
		{"10.0.0.0/8", "10.255.255.255", true},
		{"10.1.2.3/8", "10.255.255.255", true}, // unmasked prefix
		{"192.168.1.4/30", "192.168.1.7", true},
		{"192.168.1.4/31", "192.168.1.5", false},
		{"192.168.1.4/32", "192.168.1.4", false},
		{"192.168.1.0/24", "::ffff:192.168.1.255", true},
		{"2001:db8::/64", "2001:db8::ffff", false},
	} {
		if got := IsSubnetBroadcast(netip.MustParsePrefix(tc.p), netip.MustParseAddr(tc.a)); got != tc.want {
			t.Errorf("IsSubnetBroadcast(%s, %s) = %v", tc.p, tc.a, got)
		}
	}
}

func FuzzParseICMP(f *testing.F) {
	f.Add(unhex(f, pingRequest)[HeaderLen:])
	f.Add(unhex(f, portUnreach))
	f.Add([]byte{8, 0, 0xf7, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseICMP(b)
		if err != nil {
			return
		}
		_ = m.Type() + m.Code() + m.Pointer()
		_, _, _, _, _ = m.Checksum(), m.Ident(), m.Sequence(), m.RestOfHeader(), m.NextHopMTU()
		if len(m.Payload())+ICMPHeaderLen != len(m) {
			t.Fatal("payload length")
		}
		out := make([]byte, len(m))
		if n := PutEchoReply(out, m); n != len(m) {
			t.Fatalf("PutEchoReply = %d", n)
		}
		r, err := ParseICMP(out)
		if err != nil || r.Type() != TypeEchoReply || !bytes.Equal(r[4:], m[4:]) {
			t.Fatalf("echo reply does not parse back: %v", err)
		}
		// In place gives the same bytes.
		in := bytes.Clone(m)
		PutEchoReply(in, ICMP(in))
		if !bytes.Equal(in, out) {
			t.Fatal("in-place reply differs")
		}
		// Quoting arbitrary bytes as an offending datagram.
		eb := make([]byte, ICMPHeaderLen+MaxHeaderLen+8)
		n := PutError(eb, TypeParameterProblem, 0, b)
		if _, err := ParseICMP(eb[:n]); err != nil {
			t.Fatalf("error message does not parse: %v", err)
		}
	})
}

func TestICMPAllocs(t *testing.T) {
	b := mustHeader(t, unhex(t, pingRequest)).Payload()
	out := make([]byte, 128)
	off := unhex(t, offendingUDP)
	h := mustHeader(t, off)
	l := ip.NewRateLimiter(1, 1)
	n := testing.AllocsPerRun(100, func() {
		m, err := ParseICMP(b)
		if err != nil {
			t.Fatal(err)
		}
		_ = m.Type() + m.Code()
		_, _, _ = m.Checksum(), m.Ident(), m.Sequence()
		PutEchoReply(out, m)
		PutError(out, 3, 3, off)
		MayReplyWithError(h, false)
		l.Allow(t0)
	})
	if n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
}
