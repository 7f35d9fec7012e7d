package tcp

import (
	"net/netip"
	"testing"
)

// tuple6 is the harness's 4-tuple over IPv6.
var tuple6 = Tuple{
	Local:  netip.AddrPortFrom(netip.MustParseAddr("2001:db8::1"), localAP.Port()),
	Remote: netip.AddrPortFrom(netip.MustParseAddr("2001:db8::2"), remoteAP.Port()),
}

// established6 is established over IPv6: the MSS advertised is an
// Ethernet MTU of 1500 less 60 (RFC 8200 §8.3), 1440.
func established6(t *testing.T) *harness {
	t.Helper()
	h := newHarness(testConfig())
	h.c = Dial(&h.cfg, tuple6, localISS, 1440, t0, &h.out)
	h.expect(t, 0, sg{flags: SYN, seq: localISS, opts: mssOpt(1440)})
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535, opts: mssOpt(1460)})
	h.expect(t, ms(10), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1})
	h.expectState(t, StateEstablished)
	return h
}

// RFC 8200 §8.3: over IPv6 an MTU holds 60 octets of headers besides the
// payload, so the interface MTU of an MSS of 1440 is 1500, and a Packet
// Too Big message of 1400 lowers the MSS to 1340 (not to 1360, IPv4's
// MTU - 40).
func TestPacketTooBigMSS(t *testing.T) {
	h := established6(t)
	if mtu, mss := h.c.PathMTU(), h.c.Info().MSS; mtu != 1500 || mss != 1440 {
		t.Fatalf("path MTU %d, MSS %d; want 1500, 1440", mtu, mss)
	}
	if _, err := h.c.Write(t0.Add(ms(20)), pattern(2*1440), &h.out); err != nil {
		t.Fatal(err)
	}
	h.out.segs = nil
	r := h.c.HandleICMP(t0.Add(ms(25)), ICMPError{Kind: ICMPFragmentationNeeded, MTU: 1400, Seq: localISS + 1}, &h.out)
	if r != ICMPMTULowered {
		t.Fatalf("Packet Too Big 1400: %v, want ICMPMTULowered", r)
	}
	if in := h.c.Info(); in.MSS != 1340 || in.PathMTU != 1400 {
		t.Fatalf("MSS %d, path MTU %d; want 1340, 1400", in.MSS, in.PathMTU)
	}
	checkResent(t, h.out.segs, localISS+1, 2*1440, 1340)
}

// RFC 8201 §4: a Packet Too Big message below the IPv6 minimum link MTU
// (1280) is discarded, and so is one with no MTU (IPv4's RFC 1191 §5
// plateau search does not apply: the MTU field is always set, RFC 4443
// §3.2); 1280 itself is taken. SetPathMTU keeps the same floor.
func TestPacketTooBigMinimumMTU(t *testing.T) {
	h := established6(t)
	if _, err := h.c.Write(t0.Add(ms(20)), pattern(1440), &h.out); err != nil {
		t.Fatal(err)
	}
	h.out.segs = nil
	for _, mtu := range []int{1279, 1200, 576, 0} {
		if r := h.c.HandleICMP(t0.Add(ms(25)), ICMPError{Kind: ICMPFragmentationNeeded, MTU: mtu, QuotedLength: 1500, Seq: localISS + 1}, &h.out); r != ICMPIgnored {
			t.Errorf("Packet Too Big %d: %v, want ICMPIgnored", mtu, r)
		}
	}
	if h.c.PathMTU() != 1500 || len(h.out.segs) != 0 {
		t.Fatalf("path MTU %d and %d segments sent after discarded messages", h.c.PathMTU(), len(h.out.segs))
	}
	h.c.SetPathMTU(1000)
	if h.c.PathMTU() != 1500 {
		t.Fatalf("SetPathMTU(1000) over IPv6: path MTU %d, want 1500", h.c.PathMTU())
	}
	if r := h.c.HandleICMP(t0.Add(ms(26)), ICMPError{Kind: ICMPFragmentationNeeded, MTU: 1280, Seq: localISS + 1}, &h.out); r != ICMPMTULowered {
		t.Fatalf("Packet Too Big 1280: %v, want ICMPMTULowered", r)
	}
	if in := h.c.Info(); in.MSS != 1220 || in.PathMTU != 1280 {
		t.Fatalf("MSS %d, path MTU %d; want 1220, 1280", in.MSS, in.PathMTU)
	}
}

// The same messages over IPv4 keep RFC 1191's rules: an MTU of 1200 is
// taken (MSS 1160), and the base of black-hole probing is IPv4's.
func TestFragNeededIPv4Unchanged(t *testing.T) {
	h := established(t)
	if h.c.PathMTU() != localMSS+40 {
		t.Fatalf("IPv4 path MTU %d, want %d", h.c.PathMTU(), localMSS+40)
	}
	if _, err := h.c.Write(t0.Add(ms(20)), pattern(localMSS), &h.out); err != nil {
		t.Fatal(err)
	}
	if r := h.c.HandleICMP(t0.Add(ms(25)), ICMPError{Kind: ICMPFragmentationNeeded, MTU: 1200, Seq: localISS + 1}, &h.out); r != ICMPMTULowered {
		t.Fatalf("frag needed 1200: %v", r)
	}
	if in := h.c.Info(); in.MSS != 1160 {
		t.Fatalf("MSS %d, want 1160", in.MSS)
	}
}

func TestICMPv6KindOf(t *testing.T) {
	for _, tc := range []struct {
		typ, code uint8
		want      ICMPKind
		ok        bool
	}{
		{1, 0, ICMPNetUnreachable, true}, {1, 1, ICMPHostUnreachable, true}, {1, 2, ICMPHostUnreachable, true},
		{1, 3, ICMPHostUnreachable, true}, {1, 4, ICMPPortUnreachable, true}, {1, 5, ICMPHostUnreachable, true},
		{1, 6, ICMPHostUnreachable, true}, {1, 7, 0, false},
		{2, 0, ICMPFragmentationNeeded, true},
		{3, 0, ICMPTimeExceeded, true}, {3, 1, ICMPTimeExceeded, true},
		{4, 0, ICMPParameterProblem, true}, {4, 1, ICMPProtocolUnreachable, true}, {4, 2, ICMPParameterProblem, true},
		{128, 0, 0, false}, {137, 0, 0, false}, {0, 0, 0, false},
	} {
		if k, ok := ICMPv6KindOf(tc.typ, tc.code); k != tc.want || ok != tc.ok {
			t.Errorf("ICMPv6KindOf(%d, %d) = %v %v, want %v %v", tc.typ, tc.code, k, ok, tc.want, tc.ok)
		}
	}
}
