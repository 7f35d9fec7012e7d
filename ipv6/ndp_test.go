package ipv6

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// ndp returns the header and validated ICMPv6 message of a captured NDP
// packet.
func ndp(t testing.TB, name string) (Header, ICMP) {
	t.Helper()
	h, err := ParseHeader(linux(t, name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseICMP(h.Payload(), h.Source(), h.Destination())
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateNDP(h, m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return h, m
}

var (
	macA = [6]byte{0x0a, 0x03, 0xf5, 0xf9, 0xef, 0x6b} // fd00::1's veth
	macB = [6]byte{0x12, 0xca, 0xe4, 0xbc, 0x04, 0x39} // fd00::2's veth
)

func TestNeighborSolicitationGolden(t *testing.T) {
	h, m := ndp(t, "ns")
	ns := NeighborSolicitation(m)
	if ns.Target() != addr2 || h.Destination() != SolicitedNodeMulticast(addr2) {
		t.Errorf("target %v, destination %v", ns.Target(), h.Destination())
	}
	o := FindOption(ns.Options(), OptionSourceLinkLayerAddress)
	if o == nil || o.LinkLayerAddress() != macA {
		t.Fatalf("source link-layer address option % x", o)
	}
	b := make([]byte, 64)
	n := PutNeighborSolicitation(b, addr1, SolicitedNodeMulticast(addr2), addr2, macA[:])
	if !bytes.Equal(b[:n], m) {
		t.Fatalf("PutNeighborSolicitation\n got % x\nwant % x", b[:n], m)
	}
}

func TestNeighborAdvertisementGolden(t *testing.T) {
	_, m := ndp(t, "na")
	na := NeighborAdvertisement(m)
	if na.Target() != addr2 || na.Router() || !na.Solicited() || !na.Override() {
		t.Errorf("target %v R %v S %v O %v", na.Target(), na.Router(), na.Solicited(), na.Override())
	}
	if o := FindOption(na.Options(), OptionTargetLinkLayerAddress); o == nil || o.LinkLayerAddress() != macB {
		t.Fatalf("target link-layer address option % x", o)
	}
	b := make([]byte, 64)
	n := PutNeighborAdvertisement(b, addr2, addr1, addr2, FlagSolicited|FlagOverride, macB[:])
	if !bytes.Equal(b[:n], m) {
		t.Fatalf("PutNeighborAdvertisement\n got % x\nwant % x", b[:n], m)
	}
}

// TestDADSolicitationGolden checks the duplicate address detection
// solicitation Linux sent for its link-local address: from ::, to the
// solicited-node group, with a Nonce option (RFC 7527, type 14) that is
// ignored as unknown.
func TestDADSolicitationGolden(t *testing.T) {
	h, m := ndp(t, "dad-ns")
	ns := NeighborSolicitation(m)
	if !h.Source().IsUnspecified() || ns.Target() != LinkLocalFromMAC(macB) ||
		h.Destination() != SolicitedNodeMulticast(ns.Target()) {
		t.Errorf("%v > %v target %v", h.Source(), h.Destination(), ns.Target())
	}
	o, rest := NextOption(ns.Options())
	if o.Type() != 14 || len(o.Data()) != 6 || rest == nil && len(rest) != 0 {
		t.Errorf("nonce option % x", o)
	}
}

// ndpPacket builds an NDP packet with hop limit hl.
func ndpPacket(src, dst netip.Addr, hl uint8, m []byte) Header {
	b := make([]byte, HeaderLen+len(m))
	PutHeader(b, &Fields{PayloadLength: uint16(len(m)), NextHeader: NextHeaderICMPv6, HopLimit: hl, Source: src, Destination: dst})
	copy(b[HeaderLen:], m)
	return Header(b)
}

// opt returns an option of type typ and units 8-octet units, zero data.
func opt(typ uint8, units int) []byte {
	b := make([]byte, units*8)
	b[0], b[1] = typ, byte(units)
	return b
}

func TestValidateNDP(t *testing.T) {
	ll := netip.MustParseAddr("fe80::1")
	ll2 := netip.MustParseAddr("fe80::2")
	unspec := netip.IPv6Unspecified()
	mcast := AllNodes
	lla := macA[:]
	build := func(f func(b []byte) int) []byte {
		b := make([]byte, 256)
		return b[:f(b)]
	}
	ns := func(src, dst, target netip.Addr, lla []byte) []byte {
		return build(func(b []byte) int { return PutNeighborSolicitation(b, src, dst, target, lla) })
	}
	na := func(dst netip.Addr, flags uint8) []byte {
		return build(func(b []byte) int { return PutNeighborAdvertisement(b, addr2, dst, addr2, flags, lla) })
	}
	ra := func(opts ...byte) []byte {
		return append(build(func(b []byte) int {
			return PutRouterAdvertisement(b, ll, AllNodes, &RouterAdvertisementFields{CurHopLimit: 64})
		}), opts...)
	}
	redirect := func(target, dest netip.Addr) []byte {
		return build(func(b []byte) int { return PutRedirect(b, ll, addr1, target, dest, nil, nil) })
	}
	rs := build(func(b []byte) int { return PutRouterSolicitation(b, unspec, AllRouters, lla) })
	goodNS := ns(addr1, SolicitedNodeMulticast(addr2), addr2, lla)
	codeOne := bytes.Clone(goodNS)
	codeOne[1] = 1
	for _, tc := range []struct {
		name     string
		src, dst netip.Addr
		hl       uint8
		m        []byte
		want     error
	}{
		{"NS", addr1, SolicitedNodeMulticast(addr2), 255, goodNS, nil},
		{"NS hop limit 254", addr1, SolicitedNodeMulticast(addr2), 254, goodNS, ErrNDPHopLimit},
		{"NS code 1", addr1, SolicitedNodeMulticast(addr2), 255, codeOne, ErrNDPCode},
		{"NS of 23 bytes", addr1, addr2, 255, goodNS[:23], ErrNDPLength},
		{"NS multicast target", addr1, addr2, 255, ns(addr1, addr2, mcast, lla), ErrNDPTargetMulticast},
		{"NS option of length 0", addr1, addr2, 255, append(ns(addr1, addr2, addr2, nil), 1, 0, 0, 0, 0, 0, 0, 0), ErrOptionZeroLength},
		{"NS option past the end", addr1, addr2, 255, append(ns(addr1, addr2, addr2, nil), 1, 2, 0, 0, 0, 0, 0, 0), ErrOptionOverrun},
		{"NS half an option", addr1, addr2, 255, append(ns(addr1, addr2, addr2, nil), 1), ErrOptionOverrun},
		{"DAD NS", unspec, SolicitedNodeMulticast(addr2), 255, ns(unspec, SolicitedNodeMulticast(addr2), addr2, nil), nil},
		{"DAD NS to unicast", unspec, addr2, 255, ns(unspec, addr2, addr2, nil), ErrNDPDADDestination},
		{"DAD NS with a link-layer address", unspec, SolicitedNodeMulticast(addr2), 255,
			ns(unspec, SolicitedNodeMulticast(addr2), addr2, lla), ErrNDPUnspecifiedWithLinkAddr},
		{"NA", addr2, addr1, 255, na(addr1, FlagSolicited), nil},
		{"NA unsolicited to all nodes", addr2, mcast, 255, na(mcast, FlagOverride), nil},
		{"NA solicited to multicast", addr2, mcast, 255, na(mcast, FlagSolicited), ErrNDPSolicitedMulticast},
		{"NA hop limit 64", addr2, addr1, 64, na(addr1, FlagSolicited), ErrNDPHopLimit},
		{"RS from unspecified with a link-layer address", unspec, AllRouters, 255, rs, ErrNDPUnspecifiedWithLinkAddr},
		{"RA", ll, AllNodes, 255, ra(), nil},
		{"RA from a global address", addr1, AllNodes, 255, ra(), ErrNDPSourceNotLinkLocal},
		{"RA prefix option of length 3", ll, AllNodes, 255, ra(opt(OptionPrefixInformation, 3)...), ErrOptionLength},
		{"RA MTU option of length 2", ll, AllNodes, 255, ra(opt(OptionMTU, 2)...), ErrOptionLength},
		{"RA unknown option ignored", ll, AllNodes, 255, ra(opt(200, 1)...), nil},
		{"redirect to a router", ll, addr1, 255, redirect(ll2, addr2), nil},
		{"redirect on-link", ll, addr1, 255, redirect(addr2, addr2), nil},
		{"redirect from a global address", addr1, addr1, 255, redirect(ll2, addr2), ErrNDPSourceNotLinkLocal},
		{"redirect of multicast", ll, addr1, 255, redirect(ll2, mcast), ErrNDPRedirectDestination},
		{"redirect to a global other than the destination", ll, addr1, 255, redirect(addr1, addr2), ErrNDPRedirectTarget},
		{"echo request", addr1, addr2, 255, icmpEcho, ErrNDPType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := bytes.Clone(tc.m)
			SetICMPChecksum(m, tc.src, tc.dst)
			h := ndpPacket(tc.src, tc.dst, tc.hl, m)
			msg, err := ParseICMP(h.Payload(), tc.src, tc.dst)
			if err != nil {
				t.Fatal(err)
			}
			if err := ValidateNDP(h, msg); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRouterAdvertisementRoundTrip(t *testing.T) {
	ll := netip.MustParseAddr("fe80::1")
	f := RouterAdvertisementFields{CurHopLimit: 64, Managed: true, RouterLifetime: 1800 * time.Second,
		ReachableTime: 30 * time.Second, RetransTimer: time.Second, SourceLinkAddr: macA[:], MTU: 1400,
		Prefixes: []PrefixInformationFields{
			{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), OnLink: true, Autonomous: true, ValidLifetime: 86400, PreferredLifetime: 14400},
			{Prefix: netip.MustParsePrefix("2001:db8:2::5/48"), OnLink: true, ValidLifetime: 0xffffffff, PreferredLifetime: 0xffffffff},
		}}
	b := make([]byte, 256)
	n := PutRouterAdvertisement(b, ll, AllNodes, &f)
	if n != 16+8+8+32+32 {
		t.Fatalf("length %d", n)
	}
	if PutRouterAdvertisement(make([]byte, n-1), ll, AllNodes, &f) != 0 {
		t.Error("into a short buffer")
	}
	h := ndpPacket(ll, AllNodes, 255, b[:n])
	m, err := ParseICMP(h.Payload(), ll, AllNodes)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateNDP(h, m); err != nil {
		t.Fatal(err)
	}
	ra := RouterAdvertisement(m)
	if ra.CurHopLimit() != 64 || !ra.Managed() || ra.OtherConfig() || ra.RouterLifetime() != 1800*time.Second ||
		ra.ReachableTime() != 30*time.Second || ra.RetransTimer() != time.Second {
		t.Errorf("fields % x", m[:16])
	}
	var prefixes []netip.Prefix
	for o, rest := NextOption(ra.Options()); o != nil; o, rest = NextOption(rest) {
		switch o.Type() {
		case OptionSourceLinkLayerAddress:
			if o.LinkLayerAddress() != macA {
				t.Errorf("link-layer address % x", o)
			}
		case OptionMTU:
			if o.MTU() != 1400 {
				t.Errorf("MTU %d", o.MTU())
			}
		case OptionPrefixInformation:
			p := o.PrefixInformation()
			prefixes = append(prefixes, p.Prefix())
			if p.Prefix().Bits() == 64 && (!p.OnLink() || !p.Autonomous() || p.ValidLifetime() != 86400 || p.PreferredLifetime() != 14400) {
				t.Errorf("prefix % x", p)
			}
		}
	}
	if len(prefixes) != 2 || prefixes[0].String() != "2001:db8:1::/64" || prefixes[1].String() != "2001:db8:2::/48" {
		t.Errorf("prefixes %v", prefixes)
	}
}

func TestRedirectAndRouterSolicitation(t *testing.T) {
	ll, ll2 := netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fe80::2")
	redirected := packet(addr1, addr2, nil, NextHeaderUDP, make([]byte, 2000))
	b := make([]byte, 2000)
	n := PutRedirect(b, ll, addr1, ll2, addr2, macB[:], redirected)
	if n > MaxErrorLen || n%8 != 0 {
		t.Fatalf("redirect of %d bytes", n)
	}
	h := ndpPacket(ll, addr1, 255, b[:n])
	m, err := ParseICMP(h.Payload(), ll, addr1)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateNDP(h, m); err != nil {
		t.Fatal(err)
	}
	rd := Redirect(m)
	if rd.Target() != ll2 || rd.Destination() != addr2 {
		t.Errorf("target %v destination %v", rd.Target(), rd.Destination())
	}
	o := FindOption(rd.Options(), OptionRedirectedHeader)
	if o == nil || !bytes.Equal(o.Data()[6:], redirected[:len(o)-8]) {
		t.Errorf("redirected header option of %d bytes", len(o))
	}
	n = PutRouterSolicitation(b, ll, AllRouters, macA[:])
	h = ndpPacket(ll, AllRouters, 255, b[:n])
	m, _ = ParseICMP(h.Payload(), ll, AllRouters)
	if err := ValidateNDP(h, m); err != nil || n != 16 {
		t.Fatalf("RS: %v, %d bytes", err, n)
	}
	if o := FindOption(RouterSolicitation(m).Options(), OptionSourceLinkLayerAddress); o == nil || o.LinkLayerAddress() != macA {
		t.Errorf("RS option % x", o)
	}
}

func TestNDPAllocs(t *testing.T) {
	h, m := ndp(t, "ns")
	b := make([]byte, 64)
	n := testing.AllocsPerRun(100, func() {
		ValidateNDP(h, m)
		FindOption(NeighborSolicitation(m).Options(), OptionSourceLinkLayerAddress)
		PutNeighborAdvertisement(b, addr2, addr1, addr2, FlagSolicited, macB[:])
	})
	if n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func FuzzNDPOptions(f *testing.F) {
	_, m := ndp(f, "ns")
	f.Add([]byte(NeighborSolicitation(m).Options()))
	f.Add(append(append([]byte{3, 4, 64, 0xc0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0x20, 1, 0xd, 0xb8}, make([]byte, 12)...), 5, 1, 0, 0, 0, 0, 5, 0))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, opts []byte) {
		if err := ValidateOptions(opts); err != nil {
			return
		}
		total := 0
		for o, rest := NextOption(opts); o != nil; o, rest = NextOption(rest) {
			total += len(o)
			if len(o) < 8 || len(o)%8 != 0 {
				t.Fatalf("option of %d bytes", len(o))
			}
			switch o.Type() {
			case OptionSourceLinkLayerAddress, OptionTargetLinkLayerAddress:
				_ = o.LinkLayerAddress()
			case OptionPrefixInformation:
				p := o.PrefixInformation()
				_, _ = p.Prefix(), p.ValidLifetime()
				DecideSLAAC(p, len(opts)%2 == 0, time.Duration(len(opts))*time.Hour)
			case OptionMTU:
				_ = o.MTU()
			}
		}
		if total != len(opts) {
			t.Fatalf("options cover %d of %d bytes", total, len(opts))
		}
	})
}

func TestPutRouterAdvertisementRanges(t *testing.T) {
	ll := netip.MustParseAddr("fe80::1")
	b := make([]byte, 256)
	for _, f := range []RouterAdvertisementFields{
		{RouterLifetime: 65536 * time.Second},
		{RouterLifetime: -time.Second},
		{ReachableTime: 1 << 32 * time.Millisecond},
		{RetransTimer: -1},
		{Prefixes: []PrefixInformationFields{{}}},
		{Prefixes: []PrefixInformationFields{{Prefix: netip.MustParsePrefix("10.0.0.0/8")}}},
	} {
		if n := PutRouterAdvertisement(b, ll, AllNodes, &f); n != 0 {
			t.Errorf("%+v: %d bytes", f, n)
		}
	}
	if n := PutRouterAdvertisement(b, ll, AllNodes, &RouterAdvertisementFields{RouterLifetime: 65535 * time.Second}); n != 16 {
		t.Errorf("65535 s: %d", n)
	}
}
