package ipv6

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// TestAddressesLinux checks the derivations against what Linux did in the
// capture of testdata: the link-local addresses it formed from the veth
// MACs (its DAD solicitations' targets), their solicited-node groups, and
// the Ethernet destination of the solicitation for fd00::2.
func TestAddressesLinux(t *testing.T) {
	for _, tc := range []struct {
		mac       [6]byte
		ll, group string
		groupMAC  [6]byte
	}{
		{macB, "fe80::10ca:e4ff:febc:439", "ff02::1:ffbc:439", [6]byte{0x33, 0x33, 0xff, 0xbc, 0x04, 0x39}},
		{macA, "fe80::803:f5ff:fef9:ef6b", "ff02::1:fff9:ef6b", [6]byte{0x33, 0x33, 0xff, 0xf9, 0xef, 0x6b}},
	} {
		ll := LinkLocalFromMAC(tc.mac)
		if ll.String() != tc.ll {
			t.Errorf("link-local of %x: %v, want %s", tc.mac, ll, tc.ll)
		}
		g := SolicitedNodeMulticast(ll)
		if g.String() != tc.group || !IsSolicitedNodeMulticast(g) {
			t.Errorf("solicited-node of %v: %v", ll, g)
		}
		if m := MulticastMAC(g); m != tc.groupMAC {
			t.Errorf("MAC of %v: %x", g, m)
		}
	}
	if g := SolicitedNodeMulticast(addr2); MulticastMAC(g) != [6]byte{0x33, 0x33, 0xff, 0, 0, 2} || g.String() != "ff02::1:ff00:2" {
		t.Errorf("fd00::2: %v", g)
	}
	for _, a := range []string{"ff02::1", "ff02::1:fe00:1", "fe80::1", "::ffff:1.2.3.4", "ff05::1:ff00:1"} {
		if IsSolicitedNodeMulticast(netip.MustParseAddr(a)) {
			t.Errorf("%s is taken for solicited-node", a)
		}
	}
}

// TestEUI64RFC2464 is the example of RFC 2464 §4: the Interface
// Identifier of the Ethernet address 34-56-78-9A-BC-DE is
// 36-56-78-FF-FE-9A-BC-DE.
func TestEUI64RFC2464(t *testing.T) {
	iid := EUI64InterfaceID([6]byte{0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde})
	if iid != [8]byte{0x36, 0x56, 0x78, 0xff, 0xfe, 0x9a, 0xbc, 0xde} {
		t.Errorf("%x", iid)
	}
	if a := AddrFromInterfaceID(netip.MustParseAddr("2001:db8::"), iid); a.String() != "2001:db8::3656:78ff:fe9a:bcde" {
		t.Errorf("%v", a)
	}
}

func TestStableInterfaceID(t *testing.T) {
	secret := make([]byte, 16)
	for i := range secret {
		secret[i] = byte(i)
	}
	prefix := netip.MustParsePrefix("2001:db8:1::/64")
	// Golden values from an independent computation: python3 -c
	// "hashlib.sha256(bytes.fromhex('20010db800010000')+b'eth0'+bytes([c])+bytes(range(16))).hexdigest()[:16]".
	for c, want := range []string{"379ba260e5b39041", "011bd8535c5202e2"} {
		iid, err := StableInterfaceID(prefix, []byte("eth0"), nil, uint8(c), secret)
		if err != nil {
			t.Fatal(err)
		}
		var w [8]byte
		binary.BigEndian.PutUint64(w[:], mustHex64(t, want))
		if iid != w {
			t.Errorf("counter %d: %x, want %s", c, iid, want)
		}
	}
	// RFC 7217 §5: stable within a prefix, different across prefixes and
	// network identifiers.
	a, _ := StableInterfaceID(prefix, []byte("eth0"), nil, 0, secret)
	b, _ := StableInterfaceID(netip.MustParsePrefix("2001:db8:2::/64"), []byte("eth0"), nil, 0, secret)
	c, _ := StableInterfaceID(prefix, []byte("eth0"), []byte("ssid"), 0, secret)
	if a == b || a == c {
		t.Error("the identifier does not depend on the prefix or network")
	}
	if _, err := StableInterfaceID(netip.MustParsePrefix("2001:db8::/48"), nil, nil, 0, secret); !errors.Is(err, ErrPrefixLength) {
		t.Errorf("/48: %v", err)
	}
	if _, err := StableInterfaceID(prefix, nil, nil, 0, secret[:15]); !errors.Is(err, ErrSecretTooShort) {
		t.Errorf("120-bit secret: %v", err)
	}
}

func mustHex64(t *testing.T, s string) uint64 {
	t.Helper()
	var v uint64
	for _, c := range s {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= uint64(c - '0')
		case c >= 'a' && c <= 'f':
			v |= uint64(c-'a') + 10
		default:
			t.Fatalf("bad hex %q", s)
		}
	}
	return v
}

func TestIsReservedInterfaceID(t *testing.T) {
	for _, tc := range []struct {
		iid  uint64
		want bool
	}{
		{0, true},
		{0x02005efffe000000, true},
		{0x02005efffe005213, true},
		{0x02005effffffffff, false},
		{0xfdffffffffffff80, true},
		{0xfdffffffffffffff, true},
		{0xfdffffffffffff7f, false},
		{0x3656_78ff_fe9a_bcde, false},
	} {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], tc.iid)
		if got := IsReservedInterfaceID(b); got != tc.want {
			t.Errorf("%016x: %v", tc.iid, got)
		}
	}
}

// pio builds a Prefix Information option.
func pio(prefix string, auto bool, valid, preferred uint32) PrefixInformation {
	b := make([]byte, 64)
	n := PutRouterAdvertisement(b, netip.MustParseAddr("fe80::1"), AllNodes, &RouterAdvertisementFields{
		Prefixes: []PrefixInformationFields{{Prefix: netip.MustParsePrefix(prefix), OnLink: true, Autonomous: auto,
			ValidLifetime: valid, PreferredLifetime: preferred}}})
	return FindOption(b[RouterAdvertisementLen:n], OptionPrefixInformation).PrefixInformation()
}

func TestDecideSLAAC(t *testing.T) {
	const inf = 0xffffffff
	h := time.Hour
	for _, tc := range []struct {
		name      string
		p         PrefixInformation
		have      bool
		remaining time.Duration
		want      SLAACDecision
		err       error
	}{
		{"(a) not autonomous", pio("2001:db8::/64", false, 3600, 1800), false, 0, SLAACDecision{}, ErrNotAutonomous},
		{"(b) link-local", pio("fe80::/64", true, 3600, 1800), false, 0, SLAACDecision{}, ErrLinkLocalPrefix},
		{"(c) preferred over valid", pio("2001:db8::/64", true, 1800, 3600), false, 0, SLAACDecision{}, ErrPreferredOverValid},
		{"(d) create", pio("2001:db8::/64", true, 86400, 14400), false, 0,
			SLAACDecision{Action: SLAACCreate, Valid: 24 * h, Preferred: 4 * h}, nil},
		{"(d) create, infinite", pio("2001:db8::/64", true, inf, inf), false, 0,
			SLAACDecision{Action: SLAACCreate, Valid: InfiniteLifetime, Preferred: InfiniteLifetime}, nil},
		{"(d) zero valid lifetime", pio("2001:db8::/64", true, 0, 0), false, 0, SLAACDecision{}, ErrZeroValidLifetime},
		{"(d) prefix /56", pio("2001:db8::/56", true, 3600, 1800), false, 0, SLAACDecision{}, ErrPrefixLength},
		{"(e) 1: over two hours", pio("2001:db8::/64", true, 3*3600, 3600), true, 10 * h,
			SLAACDecision{Action: SLAACUpdate, Valid: 3 * h, Preferred: h}, nil},
		{"(e) 1: over the remaining", pio("2001:db8::/64", true, 3600, 600), true, 30 * time.Minute,
			SLAACDecision{Action: SLAACUpdate, Valid: h, Preferred: 10 * time.Minute}, nil},
		{"(e) 2: remaining under two hours kept", pio("2001:db8::/64", true, 0, 0), true, 90 * time.Minute,
			SLAACDecision{Action: SLAACUpdate, Valid: 90 * time.Minute, ValidLifetimeKept: true}, nil},
		{"(e) 3: reset to two hours", pio("2001:db8::/64", true, 60, 0), true, 10 * h,
			SLAACDecision{Action: SLAACUpdate, Valid: 2 * h}, nil},
		{"(e) 3: infinite remaining, short advertised", pio("2001:db8::/64", true, 300, 300), true, InfiniteLifetime,
			SLAACDecision{Action: SLAACUpdate, Valid: 2 * h, Preferred: 300 * time.Second}, nil},
		{"(e) preferred capped by a kept valid", pio("2001:db8::/64", true, 600, 600), true, 5 * time.Minute,
			SLAACDecision{Action: SLAACUpdate, Valid: 10 * time.Minute, Preferred: 10 * time.Minute}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecideSLAAC(tc.p, tc.have, tc.remaining)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Errorf("got %+v, %v; want %+v, %v", got, err, tc.want, tc.err)
			}
		})
	}
}
