package stack

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
)

// raPrefix is the prefix the router of raNet advertises.
var raPrefix = netip.MustParsePrefix("fd09:1::/64")

// raNet is a stack with Options.SLAAC on a manual clock, on one end of a
// Pipe whose other end the test holds as a router.
type raNet struct {
	s      *Stack
	clock  *ManualClock
	peer   *link.PipeEnd
	router netip.Addr // the router's link-local address
	frames <-chan []byte
}

func newRANet(t *testing.T, opts Options) *raNet { return newRANetMAC(t, opts, link.MAC{}) }

// newRANetMAC is newRANet with the stack's NIC at mac (zero: the Pipe's
// default).
func newRANetMAC(t *testing.T, opts Options, mac link.MAC) *raNet {
	t.Helper()
	leakcheck.Check(t)
	r := &raNet{clock: NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}
	ea, eb := link.NewPipe(link.PipeOptions{MACA: mac})
	opts.Clock, opts.SLAAC = r.clock, true
	if opts.DADTransmits == 0 {
		opts.DADTransmits = -1
	}
	r.s = New(opts)
	t.Cleanup(func() { r.s.Close() })
	if _, err := r.s.AddNIC(ea, addrA); err != nil {
		t.Fatal(err)
	}
	r.peer, r.frames = eb, readerAll(t, eb)
	r.router = ipv6.LinkLocalFromMAC(eb.HardwareAddr())
	return r
}

// advertise sends a Router Advertisement with the router lifetime life
// and, unless valid and preferred are both negative, raPrefix (on-link,
// autonomous) with those lifetimes in seconds, and waits until the stack
// counted it.
func (r *raNet) advertise(t *testing.T, life time.Duration, valid, preferred int64) {
	t.Helper()
	r.advertisePrefix(t, life, raPrefix, valid, preferred)
}

// advertisePrefix is advertise for the prefix pfx.
func (r *raNet) advertisePrefix(t *testing.T, life time.Duration, pfx netip.Prefix, valid, preferred int64) {
	t.Helper()
	mac := r.peer.HardwareAddr()
	f := ipv6.RouterAdvertisementFields{RouterLifetime: life, SourceLinkAddr: mac[:]}
	if valid >= 0 || preferred >= 0 {
		f.Prefixes = []ipv6.PrefixInformationFields{{Prefix: pfx, OnLink: true, Autonomous: true, ValidLifetime: uint32(valid), PreferredLifetime: uint32(preferred)}}
	}
	b := make([]byte, 200)
	n := ipv6.PutRouterAdvertisement(b, r.router, ipv6.AllNodes, &f)
	if n == 0 {
		t.Fatal("PutRouterAdvertisement")
	}
	before := r.s.Stats().NDP.RouterAdvertisementsIn
	if err := r.peer.WriteFrame(eth6(ipv6.MulticastMAC(ipv6.AllNodes), mac, ipv6.Fields{NextHeader: ipv6.NextHeaderICMPv6, HopLimit: 255, Source: r.router, Destination: ipv6.AllNodes}, b[:n])); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the RA", func() bool { return r.s.Stats().NDP.RouterAdvertisementsIn > before })
}

// at moves the clock to d after its start and runs the stack's timers
// there (synchronously, so that what did not happen is seen too).
func (r *raNet) at(d time.Duration) {
	r.clock.Set(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(d))
	r.s.runTimers(r.clock.Now())
}

func (r *raNet) defaultRouter() bool {
	return slices.Contains(r.s.Routes(), ip.Route{Destination: netip.MustParsePrefix("::/0"), Gateway: r.router, NIC: 1})
}

func (r *raNet) onLink() bool {
	return slices.ContainsFunc(r.s.Routes(), func(rt ip.Route) bool { return rt.Destination == raPrefix && !rt.Gateway.IsValid() })
}

// auto returns the address SLAAC formed in raPrefix, or the zero Addr.
func (r *raNet) auto() netip.Addr { return r.autoIn(raPrefix) }

// autoIn returns the address SLAAC formed in pfx, or the zero Addr.
func (r *raNet) autoIn(pfx netip.Prefix) netip.Addr {
	for _, p := range r.s.Addresses(1) {
		if pfx.Contains(p.Addr()) {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

// TestRALifetimes runs an advertisement's lifetimes in virtual time: the
// default router leaves at its Router Lifetime, and at once with a
// lifetime of 0 (RFC 4861 §6.3.4); the SLAAC address is deprecated at its
// preferred lifetime (a source no longer chosen while another will do)
// and removed at its valid lifetime with the on-link prefix (RFC 4862
// §5.5.4); a new advertisement restarts each timer.
func TestRALifetimes(t *testing.T) {
	r := newRANet(t, Options{})
	r.advertise(t, 600*time.Second, 3600, 1800)
	a := r.auto()
	if !r.defaultRouter() || !r.onLink() || a != ipv6.AddrFromInterfaceID(raPrefix.Addr(), ipv6.EUI64InterfaceID(r.s.nicByID(1).mac)) {
		t.Fatalf("after the RA: default router %v, on-link %v, SLAAC address %v; routes %v", r.defaultRouter(), r.onLink(), a, r.s.Routes())
	}
	n := r.s.nicByID(1)
	r.at(599 * time.Second)
	if !r.defaultRouter() {
		t.Fatal("the router left before its lifetime")
	}
	r.at(600 * time.Second)
	if r.defaultRouter() {
		t.Fatal("the router stayed past its lifetime")
	}
	// A new RA brings it back with a new lifetime; lifetime 0 removes it.
	r.advertise(t, 600*time.Second, -1, -1)
	r.at(1100 * time.Second)
	if !r.defaultRouter() {
		t.Fatal("the re-advertised router left before its new lifetime")
	}
	r.advertise(t, 0, -1, -1)
	if r.defaultRouter() {
		t.Fatal("an RA with Router Lifetime 0 left the router")
	}

	// Deprecated at 1800 s: kept, but a static address is the source
	// chosen now.
	if err := r.s.AddAddress(1, netip.MustParsePrefix("fd0a::1/64")); err != nil {
		t.Fatal(err)
	}
	off := netip.MustParseAddr("2001:db8::1")
	if got := n.sourceFor(off); got != a {
		t.Fatalf("source %v before deprecation, want the SLAAC address %v (the first)", got, a)
	}
	r.at(1799 * time.Second)
	if n.isDeprecated(a) {
		t.Fatal("deprecated before its preferred lifetime")
	}
	r.at(1800 * time.Second)
	if !n.isDeprecated(a) || r.auto() != a {
		t.Fatalf("at the preferred lifetime: deprecated %v, address %v", n.isDeprecated(a), r.auto())
	}
	if got := n.sourceFor(off); got != netip.MustParseAddr("fd0a::1") {
		t.Errorf("source %v with %v deprecated, want fd0a::1", got, a)
	}
	if got := n.sourceFor(netip.MustParseAddr("fd09:1::99")); got != netip.MustParseAddr("fd0a::1") {
		t.Errorf("source %v on the deprecated address's own prefix, want fd0a::1 (RFC 6724 rule 3 before rule 8)", got)
	}
	r.at(3599 * time.Second)
	if r.auto() != a || !r.onLink() {
		t.Fatal("the address or prefix left before the valid lifetime")
	}
	r.at(3600 * time.Second)
	if r.auto().IsValid() || r.onLink() || r.s.Stats().NDP.AddressesExpired != 1 {
		t.Fatalf("at the valid lifetime: address %v, on-link %v, expired %d", r.auto(), r.onLink(), r.s.Stats().NDP.AddressesExpired)
	}
	if r.s.isLocalAddr(a) || n.isDeprecated(a) {
		t.Error("the expired address is still the host's")
	}
	// The prefix advertised again forms the address again, preferred.
	r.advertise(t, 600*time.Second, 3600, 3600)
	if r.auto() != a || n.isDeprecated(a) {
		t.Fatalf("re-formed address %v, deprecated %v", r.auto(), n.isDeprecated(a))
	}
}

// TestSLAACTwoHourRule: RFC 4862 §5.5.3 (e), an advertisement for a
// prefix whose address has a remaining valid lifetime: a valid lifetime
// over two hours, or over the remaining one, is taken; with two hours or
// less remaining the remaining lifetime stays; else it becomes two
// hours, so that a forged advertisement cannot end an address at once.
func TestSLAACTwoHourRule(t *testing.T) {
	const h = 3600
	for _, tc := range []struct {
		name            string
		first, second   int64 // valid lifetimes, seconds
		at              time.Duration
		expiresAt       time.Duration // from the start
		secondPreferred int64
	}{
		{"longer than two hours: taken", 3 * h, 5 * h, time.Hour, 6 * time.Hour, 5 * h},
		{"longer than the remaining: taken", h, 1800 + 60, 45 * time.Minute, 45*time.Minute + 1860*time.Second, 60},
		{"forged short, remaining over two hours: two hours", 5 * h, 60, time.Hour, 3 * time.Hour, 60},
		{"forged zero, remaining over two hours: two hours", 5 * h, 0, time.Hour, 3 * time.Hour, 0},
		{"two hours or less remaining: kept", 2 * h, 60, 30 * time.Minute, 2 * time.Hour, 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRANet(t, Options{})
			r.advertise(t, 0, tc.first, tc.first)
			a := r.auto()
			if !a.IsValid() {
				t.Fatal("no SLAAC address")
			}
			r.at(tc.at)
			r.advertise(t, 0, tc.second, tc.secondPreferred)
			r.at(tc.expiresAt - time.Second)
			if r.auto() != a {
				t.Fatalf("gone before %v", tc.expiresAt)
			}
			r.at(tc.expiresAt)
			if r.auto().IsValid() {
				t.Fatalf("still there at %v", tc.expiresAt)
			}
		})
	}
}

// stableSecret is the RFC 7217 secret_key of the tests: 128 bits.
var stableSecret = []byte("0123456789abcdef")

// stableAddr is the RFC 7217 address in pfx for the NIC at mac, secret
// and DAD_Counter counter, as ipv6.StableInterfaceID computes it.
func stableAddr(t *testing.T, pfx netip.Prefix, mac link.MAC, counter uint8, secret []byte) netip.Addr {
	t.Helper()
	iid, err := ipv6.StableInterfaceID(pfx, mac[:], nil, counter, secret)
	if err != nil {
		t.Fatal(err)
	}
	return ipv6.AddrFromInterfaceID(pfx.Addr(), iid)
}

// TestStableAddresses: with Options.StableSecret the link-local and SLAAC
// addresses are RFC 7217 §5's, not modified EUI-64: the same for a
// secret, prefix and NIC in another stack (across a restart), different
// for another secret, another prefix and another NIC (MAC).
func TestStableAddresses(t *testing.T) {
	other := netip.MustParsePrefix("fd09:2::/64")
	macA := link.MAC{0x02, 0, 0, 0, 0, 0x01}
	macC := link.MAC{0x02, 0, 0, 0, 0, 0x03}
	run := func(secret []byte, mac link.MAC) (ll, a, b netip.Addr) {
		t.Helper()
		r := newRANetMAC(t, Options{StableSecret: secret}, mac)
		r.advertise(t, 0, 3600, 3600)
		r.advertisePrefix(t, 0, other, 3600, 3600)
		return r.s.LinkLocalAddress(1), r.auto(), r.autoIn(other)
	}
	ll, a, b := run(stableSecret, macA)
	if ll != stableAddr(t, ipv6.LinkLocalPrefix, macA, 0, stableSecret) || a != stableAddr(t, raPrefix, macA, 0, stableSecret) || b != stableAddr(t, other, macA, 0, stableSecret) {
		t.Fatalf("addresses %v %v %v, want RFC 7217's for DAD_Counter 0", ll, a, b)
	}
	if eui := ipv6.AddrFromInterfaceID(raPrefix.Addr(), ipv6.EUI64InterfaceID(macA)); a == eui || ll == ipv6.LinkLocalFromMAC(macA) {
		t.Fatal("a stable address is the modified EUI-64 one")
	}
	if a16, b16 := a.As16(), b.As16(); [8]byte(a16[8:]) == [8]byte(b16[8:]) {
		t.Errorf("the same interface identifier in two prefixes: %v %v", a, b)
	}
	if ll2, a2, b2 := run(stableSecret, macA); ll2 != ll || a2 != a || b2 != b {
		t.Errorf("another stack with the same secret and NIC: %v %v %v, want %v %v %v", ll2, a2, b2, ll, a, b)
	}
	if _, a3, _ := run([]byte("another secret of 128 bits"), macA); a3 == a || !a3.IsValid() {
		t.Errorf("another secret: %v", a3)
	}
	if _, a4, _ := run(stableSecret, macC); a4 == a || a4 != stableAddr(t, raPrefix, macC, 0, stableSecret) {
		t.Errorf("another NIC: %v", a4)
	}
	s := New(Options{StableSecret: stableSecret[:15]})
	if _, err := s.AddNIC(newCaptureEndpoint(), addrA); err == nil || !strings.Contains(err.Error(), "StableSecret") {
		t.Errorf("a 120-bit secret: %v, want an error naming Options.StableSecret", err)
	}
}

// TestStableAddressDADRetry: when duplicate address detection finds the
// stable address in use, the next is formed with DAD_Counter incremented
// (RFC 7217 §6) and assigned once its own detection passes.
func TestStableAddressDADRetry(t *testing.T) {
	r := newRANet(t, Options{StableSecret: stableSecret, DADTransmits: 1})
	mac := r.s.nicByID(1).mac
	first, second := stableAddr(t, raPrefix, mac, 0, stableSecret), stableAddr(t, raPrefix, mac, 1, stableSecret)
	r.advertise(t, 0, 3600, 3600)
	r.waitDAD(t, first)
	// Another node has it: its advertisement to all nodes (RFC 4862
	// §5.4.4).
	b := make([]byte, 100)
	peer := r.peer.HardwareAddr()
	n := ipv6.PutNeighborAdvertisement(b, first, ipv6.AllNodes, first, ipv6.FlagOverride, peer[:])
	if err := r.peer.WriteFrame(eth6(ipv6.MulticastMAC(ipv6.AllNodes), peer, ipv6.Fields{NextHeader: ipv6.NextHeaderICMPv6, HopLimit: 255, Source: first, Destination: ipv6.AllNodes}, b[:n])); err != nil {
		t.Fatal(err)
	}
	r.waitDAD(t, second)
	r.at(10 * time.Second) // past RetransTimer: the detection passed
	if got := r.auto(); got != second || r.s.Stats().NDP.DADFailed != 1 {
		t.Fatalf("address %v after a duplicate (DAD failed %d), want %v (DAD_Counter 1)", got, r.s.Stats().NDP.DADFailed, second)
	}
}

// waitDAD waits for the Neighbor Solicitation of duplicate address
// detection for target.
func (r *raNet) waitDAD(t *testing.T, target netip.Addr) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f := <-r.frames:
			const l3 = link.EthernetHeaderLen
			if len(f) >= l3+ipv6.HeaderLen+24 && f[l3+6] == ipv6.NextHeaderICMPv6 && f[l3+ipv6.HeaderLen] == ipv6.TypeNeighborSolicitation &&
				netip.AddrFrom16([16]byte(f[l3+ipv6.HeaderLen+8:])) == target {
				return
			}
		case <-timeout:
			t.Fatalf("no DAD solicitation for %v", target)
		}
	}
}
