package ipv6

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func TestICMPEchoGolden(t *testing.T) {
	req, reply := linux(t, "echo-request"), linux(t, "echo-reply")
	h, _ := ParseHeader(req)
	m, err := ParseICMP(h.Payload(), h.Source(), h.Destination())
	if err != nil {
		t.Fatal(err)
	}
	if m.Type() != TypeEchoRequest || m.Code() != 0 || m.Ident() != 0x4d2b || m.Sequence() != 1 ||
		!bytes.Equal(m.Payload(), []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("echo request % x", m)
	}
	// The reply, built in place in the request's buffer, is the kernel's.
	buf := bytes.Clone(m)
	n := PutEchoReply(buf, ICMP(buf), h.Destination(), h.Source())
	if want := reply[HeaderLen:]; !bytes.Equal(buf[:n], want) {
		t.Fatalf("reply\n got % x\nwant % x", buf[:n], want)
	}
	if PutEchoReply(make([]byte, n-1), m, addr2, addr1) != 0 {
		t.Error("reply into a short buffer")
	}
	// PutEcho builds the request itself.
	b := make([]byte, 64)
	n = PutEcho(b, TypeEchoRequest, addr1, addr2, 0x4d2b, 1, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	if !bytes.Equal(b[:n], m) {
		t.Fatalf("PutEcho\n got % x\nwant % x", b[:n], m)
	}
}

func TestParseICMPMalformed(t *testing.T) {
	h, _ := ParseHeader(linux(t, "echo-request"))
	m := bytes.Clone(h.Payload())
	if _, err := ParseICMP(m[:7], addr1, addr2); !errors.Is(err, ErrICMPTruncated) {
		t.Errorf("7 bytes: %v", err)
	}
	if _, err := ParseICMP(m, addr1, netip.MustParseAddr("fd00::3")); !errors.Is(err, ErrChecksum) {
		t.Errorf("other destination in the pseudo-header: %v", err)
	}
	m[9] ^= 1
	if _, err := ParseICMP(m, addr1, addr2); !errors.Is(err, ErrChecksum) {
		t.Errorf("flipped bit: %v", err)
	}
}

func TestPutError(t *testing.T) {
	big := packet(addr1, addr2, nil, NextHeaderUDP, make([]byte, 3000))
	small := packet(addr1, addr2, nil, NextHeaderUDP, make([]byte, 20))
	for _, tc := range []struct {
		name      string
		typ, code uint8
		word      uint32
		invoking  []byte
		wantLen   int
	}{
		{"port unreachable", TypeDestinationUnreachable, CodePortUnreachable, 0, small, 8 + 60},
		{"packet too big", TypePacketTooBig, 0, 1280, big, MaxErrorLen},
		{"time exceeded", TypeTimeExceeded, CodeFragmentReassemblyTimeExceeded, 0, big[:1000], 1008},
		{"parameter problem", TypeParameterProblem, CodeUnrecognizedOption, 42, small, 8 + 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := make([]byte, MaxErrorLen)
			n := PutError(b, tc.typ, tc.code, tc.word, addr2, addr1, tc.invoking)
			if n != tc.wantLen {
				t.Fatalf("length %d, want %d", n, tc.wantLen)
			}
			m, err := ParseICMP(b[:n], addr2, addr1)
			if err != nil {
				t.Fatal(err)
			}
			if m.Type() != tc.typ || m.Code() != tc.code || m.MTU() != tc.word || m.Pointer() != tc.word ||
				!bytes.Equal(m.Payload(), tc.invoking[:n-8]) {
				t.Errorf("message % x", m[:8])
			}
			q, err := ParseQuote(m.Payload())
			if err != nil || q.Source() != addr1 {
				t.Errorf("quote: %v", err)
			}
			if PutError(make([]byte, n-1), tc.typ, tc.code, tc.word, addr2, addr1, tc.invoking) != 0 {
				t.Error("error into a short buffer")
			}
		})
	}
	// In place: the message overwrites the packet it quotes, in the
	// receive buffer, starting at the same address.
	buf := bytes.Clone(small)
	n := PutError(buf, TypeDestinationUnreachable, CodePortUnreachable, 0, addr2, addr1, buf[:len(small)-8])
	if !bytes.Equal(buf[8:n], small[:n-8]) {
		t.Error("in place quote differs")
	}
}

func TestParseQuote(t *testing.T) {
	if _, err := ParseQuote(make([]byte, 39)); !errors.Is(err, ErrTruncated) {
		t.Errorf("39 bytes: %v", err)
	}
	if _, err := ParseQuote(make([]byte, 48)); !errors.Is(err, ErrVersion) {
		t.Errorf("version 0: %v", err)
	}
	// A quote shorter than its Payload Length still parses, and its chain
	// leads to the upper-layer header.
	p := packet(addr1, addr2, []ext{optionsHeader(NextHeaderDestOptions)}, NextHeaderTCP, make([]byte, 1000))
	q, err := ParseQuote(p[:100])
	if err != nil {
		t.Fatal(err)
	}
	if c, err := ParseExtensions(q); err != nil || c.Proto != NextHeaderTCP || c.Offset != 48 {
		t.Errorf("chain of a quote: %+v, %v", c, err)
	}
	q, _ = ParseQuote(p[:44])
	if _, err := ParseExtensions(q); !errors.Is(err, ErrExtensionTruncated) {
		t.Errorf("quote cut in an extension header: %v", err)
	}
}

func TestMayReplyWithError(t *testing.T) {
	mcast := netip.MustParseAddr("ff02::1")
	icmpErr := []byte{TypeDestinationUnreachable, 0, 0, 0, 0, 0, 0, 0}
	redirect := []byte{TypeRedirect, 0, 0, 0, 0, 0, 0, 0}
	for _, tc := range []struct {
		name      string
		src, dst  netip.Addr
		proto     uint8
		data      []byte
		linkMcast bool
		typ, code uint8
		want      bool
	}{
		{"udp to unicast", addr1, addr2, NextHeaderUDP, nil, false, TypeDestinationUnreachable, CodePortUnreachable, true},
		{"e.1 an ICMPv6 error", addr1, addr2, NextHeaderICMPv6, icmpErr, false, TypeParameterProblem, 0, false},
		{"an echo request", addr1, addr2, NextHeaderICMPv6, icmpEcho, false, TypeParameterProblem, 0, true},
		{"e.2 a redirect", addr1, addr2, NextHeaderICMPv6, redirect, false, TypeParameterProblem, 0, false},
		{"e.3 to multicast", addr1, mcast, NextHeaderUDP, nil, false, TypeDestinationUnreachable, CodePortUnreachable, false},
		{"e.3 exception: packet too big", addr1, mcast, NextHeaderUDP, nil, false, TypePacketTooBig, 0, true},
		{"e.3 exception: parameter problem code 2", addr1, mcast, NextHeaderUDP, nil, false, TypeParameterProblem, CodeUnrecognizedOption, true},
		{"e.3 parameter problem code 0", addr1, mcast, NextHeaderUDP, nil, false, TypeParameterProblem, 0, false},
		{"e.4 link-layer multicast", addr1, addr2, NextHeaderUDP, nil, true, TypeDestinationUnreachable, CodePortUnreachable, false},
		{"e.4 exception: packet too big", addr1, addr2, NextHeaderUDP, nil, true, TypePacketTooBig, 0, true},
		{"e.6 unspecified source", netip.IPv6Unspecified(), addr2, NextHeaderUDP, nil, false, TypeDestinationUnreachable, 0, false},
		{"e.6 loopback source", netip.IPv6Loopback(), addr2, NextHeaderUDP, nil, false, TypeDestinationUnreachable, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.data
			if data == nil {
				data = make([]byte, 8)
			}
			h := packet(tc.src, tc.dst, nil, tc.proto, data)
			c, err := ParseExtensions(h)
			if err != nil {
				t.Fatal(err)
			}
			if got := MayReplyWithError(h, c, tc.linkMcast, tc.typ, tc.code); got != tc.want {
				t.Errorf("got %v", got)
			}
		})
	}
}

func TestICMPAllocs(t *testing.T) {
	h, _ := ParseHeader(linux(t, "echo-request"))
	buf := make([]byte, MaxErrorLen)
	c, _ := ParseExtensions(h)
	n := testing.AllocsPerRun(100, func() {
		m, _ := ParseICMP(h.Payload(), h.Source(), h.Destination())
		PutEchoReply(buf, m, addr2, addr1)
		PutError(buf, TypeDestinationUnreachable, CodePortUnreachable, 0, addr2, addr1, h)
		MayReplyWithError(h, c, false, TypeDestinationUnreachable, CodePortUnreachable)
	})
	if n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// FuzzParseICMP feeds messages to ParseICMP and, when they verify, to
// the echo reply builder and the NDP validation. When fix is set the
// checksum is made right first, so that the fuzzer gets past it.
func FuzzParseICMP(f *testing.F) {
	for _, n := range []string{"echo-request", "ns", "na", "dad-ns"} {
		h, _ := ParseHeader(linux(f, n))
		f.Add(false, uint8(h.HopLimit()), []byte(h[offSource:HeaderLen]), []byte(h.Payload()))
	}
	f.Add(true, uint8(255), make([]byte, 32), []byte{TypeRouterAdvertisement, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 4})
	f.Fuzz(func(t *testing.T, fix bool, hopLimit uint8, addrs, m []byte) {
		if len(addrs) < 32 || len(m) > MaxPayloadLength-HeaderLen {
			return
		}
		src, dst := netip.AddrFrom16([16]byte(addrs)), netip.AddrFrom16([16]byte(addrs[16:]))
		if fix && len(m) >= 4 {
			SetICMPChecksum(m, src, dst)
		}
		msg, err := ParseICMP(m, src, dst)
		if err != nil {
			if fix && len(m) >= ICMPHeaderLen {
				t.Fatalf("fixed checksum: %v", err)
			}
			return
		}
		_, _, _, _ = msg.Type(), msg.Code(), msg.Ident(), msg.Pointer()
		// A reply to an echo verifies.
		b := make([]byte, len(msg))
		if n := PutEchoReply(b, msg, dst, src); n != len(msg) {
			t.Fatalf("reply %d bytes of %d", n, len(msg))
		}
		if _, err := ParseICMP(b, dst, src); err != nil {
			t.Fatalf("reply: %v", err)
		}
		// NDP validation never panics, and what it accepts has views
		// whose accessors do not either.
		p := make([]byte, HeaderLen+len(msg))
		PutHeader(p, &Fields{PayloadLength: uint16(len(msg)), NextHeader: NextHeaderICMPv6, HopLimit: hopLimit,
			Source: src, Destination: dst})
		copy(p[HeaderLen:], msg)
		if ValidateNDP(Header(p), msg) != nil {
			return
		}
		var opts []byte
		switch msg.Type() {
		case TypeRouterSolicitation:
			opts = RouterSolicitation(msg).Options()
		case TypeRouterAdvertisement:
			ra := RouterAdvertisement(msg)
			_, _, _ = ra.RouterLifetime(), ra.ReachableTime(), ra.RetransTimer()
			opts = ra.Options()
		case TypeNeighborSolicitation:
			opts = NeighborSolicitation(msg).Options()
		case TypeNeighborAdvertisement:
			opts = NeighborAdvertisement(msg).Options()
		case TypeRedirect:
			opts = Redirect(msg).Options()
		}
		for o, rest := NextOption(opts); o != nil; o, rest = NextOption(rest) {
			if o.Type() == OptionPrefixInformation {
				_ = o.PrefixInformation().Prefix()
			}
			if o.Type() == OptionSourceLinkLayerAddress {
				_ = o.LinkLayerAddress()
			}
		}
	})
}
