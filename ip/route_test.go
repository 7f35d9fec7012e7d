package ip

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func testTable(t *testing.T) *Table {
	t.Helper()
	var tb Table
	for _, r := range []Route{
		{Destination: pfx("0.0.0.0/0"), Gateway: addr("192.168.1.1"), NIC: 1, Metric: 100},
		{Destination: pfx("192.168.1.0/24"), NIC: 1},
		{Destination: pfx("10.0.0.0/8"), Gateway: addr("192.168.1.254"), NIC: 1},
		{Destination: pfx("10.1.0.0/16"), NIC: 2},
		{Destination: pfx("10.1.2.3/32"), Gateway: addr("10.1.0.1"), NIC: 2},
	} {
		if err := tb.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	return &tb
}

func TestTableLookup(t *testing.T) {
	tb := testTable(t)
	for _, tc := range []struct {
		name    string
		dst     string
		want    string // Destination of the chosen route
		nextHop string
	}{
		{"on-link", "192.168.1.20", "192.168.1.0/24", "192.168.1.20"},
		{"default", "8.8.8.8", "0.0.0.0/0", "192.168.1.1"},
		{"gateway /8", "10.9.9.9", "10.0.0.0/8", "192.168.1.254"},
		{"longer /16 on-link", "10.1.200.1", "10.1.0.0/16", "10.1.200.1"},
		{"host route", "10.1.2.3", "10.1.2.3/32", "10.1.0.1"},
		{"next to host route", "10.1.2.4", "10.1.0.0/16", "10.1.2.4"},
		{"4in6 is unmapped", "::ffff:10.1.2.3", "10.1.2.3/32", "10.1.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := tb.Lookup(addr(tc.dst))
			if !ok {
				t.Fatal("no route")
			}
			if r.Destination != pfx(tc.want) {
				t.Errorf("route %v, want %s", r, tc.want)
			}
			if nh := r.NextHop(addr(tc.dst).Unmap()); nh != addr(tc.nextHop) {
				t.Errorf("next hop %v, want %s", nh, tc.nextHop)
			}
		})
	}
}

func TestTableNoRoute(t *testing.T) {
	var tb Table
	if _, ok := tb.Lookup(addr("1.2.3.4")); ok {
		t.Error("empty table found a route")
	}
	tb.Add(Route{Destination: pfx("10.0.0.0/8"), NIC: 1})
	if _, ok := tb.Lookup(addr("11.0.0.1")); ok {
		t.Error("found a route without a default")
	}
	if _, ok := tb.Lookup(addr("2001:db8::1")); ok {
		t.Error("an IPv4 route matched IPv6")
	}
	if _, ok := tb.Lookup(netip.Addr{}); ok {
		t.Error("found a route for the zero Addr")
	}
}

func TestTableTieByMetric(t *testing.T) {
	var tb Table
	a := Route{Destination: pfx("0.0.0.0/0"), Gateway: addr("10.0.0.1"), NIC: 1, Metric: 200}
	b := Route{Destination: pfx("0.0.0.0/0"), Gateway: addr("10.0.0.2"), NIC: 1, Metric: 100}
	c := Route{Destination: pfx("0.0.0.0/0"), Gateway: addr("10.0.0.3"), NIC: 2, Metric: 100}
	for _, r := range []Route{a, b, c} {
		if err := tb.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if r, _ := tb.Lookup(addr("1.1.1.1")); r != b {
		t.Errorf("got %v, want lowest metric, first added: %v", r, b)
	}
}

func TestTableAddErrors(t *testing.T) {
	var tb Table
	for _, tc := range []struct {
		name string
		r    Route
		want error
	}{
		{"zero prefix", Route{}, ErrRouteInvalid},
		{"ipv6 gateway", Route{Destination: pfx("10.0.0.0/8"), Gateway: addr("fe80::1")}, ErrRouteFamily},
		{"ipv4 gateway", Route{Destination: pfx("2001:db8::/32"), Gateway: addr("10.0.0.1")}, ErrRouteFamily},
		{"first", Route{Destination: pfx("10.0.0.0/8"), NIC: 1}, nil},
		{"duplicate", Route{Destination: pfx("10.0.0.0/8"), NIC: 1, Metric: 5}, ErrRouteExists},
		{"duplicate unmasked", Route{Destination: pfx("10.2.3.4/8"), NIC: 1}, ErrRouteExists},
		{"other NIC", Route{Destination: pfx("10.0.0.0/8"), NIC: 2}, nil},
		{"gateway", Route{Destination: pfx("10.0.0.0/8"), Gateway: addr("10.0.0.1"), NIC: 1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tb.Add(tc.r); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if tb.Len() != 3 {
		t.Errorf("Len = %d, want 3", tb.Len())
	}
}

func TestTableMasks(t *testing.T) {
	var tb Table
	tb.Add(Route{Destination: pfx("172.16.5.9/12"), NIC: 1})
	r, ok := tb.Lookup(addr("172.31.0.1"))
	if !ok || r.Destination != pfx("172.16.0.0/12") {
		t.Errorf("got %v %v", r, ok)
	}
}

func TestTableRemove(t *testing.T) {
	tb := testTable(t)
	if !tb.Remove(pfx("10.1.0.0/16")) {
		t.Fatal("Remove returned false")
	}
	if tb.Remove(pfx("10.1.0.0/16")) {
		t.Error("second Remove returned true")
	}
	if r, _ := tb.Lookup(addr("10.1.200.1")); r.Destination != pfx("10.0.0.0/8") {
		t.Errorf("after remove got %v", r)
	}
	tb.Remove(pfx("0.0.0.0/0"))
	if _, ok := tb.Lookup(addr("8.8.8.8")); ok {
		t.Error("default still used after Remove")
	}
	if tb.Len() != 3 {
		t.Errorf("Len = %d, want 3", tb.Len())
	}
}

func TestTableRoutes(t *testing.T) {
	tb := testTable(t)
	want := []string{
		"default via 192.168.1.1 dev 1 metric 100",
		"10.0.0.0/8 via 192.168.1.254 dev 1",
		"10.1.0.0/16 dev 2",
		"10.1.2.3/32 via 10.1.0.1 dev 2",
		"192.168.1.0/24 dev 1",
	}
	rs := tb.Routes()
	if len(rs) != len(want) {
		t.Fatalf("got %d routes, want %d", len(rs), len(want))
	}
	for i, r := range rs {
		if r.String() != want[i] {
			t.Errorf("Routes()[%d] = %q, want %q", i, r, want[i])
		}
	}
}

func TestTableLookupAllocs(t *testing.T) {
	tb := testTable(t)
	dst := addr("10.1.2.4")
	if n := testing.AllocsPerRun(100, func() { tb.Lookup(dst) }); n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
}

func TestTableIPv6(t *testing.T) {
	tb := testTable(t)
	for _, r := range []Route{
		{Destination: pfx("::/0"), Gateway: addr("fe80::1"), NIC: 1},
		{Destination: pfx("2001:db8::/32"), NIC: 2},
		{Destination: pfx("2001:db8:1::/48"), Gateway: addr("2001:db8::1"), NIC: 2},
		{Destination: pfx("2001:db8:1::7/128"), NIC: 3},
	} {
		if err := tb.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ dst, want string }{
		{"2001:db8:1::7", "2001:db8:1::7/128"},
		{"2001:db8:1::8", "2001:db8:1::/48"},
		{"2001:db8:2::1", "2001:db8::/32"},
		{"2002::1", "::/0"},
		{"10.1.2.3", "10.1.2.3/32"},        // IPv4 unaffected by the v6 routes
		{"192.0.2.1", "0.0.0.0/0"},         // and a v4 default for v4 only
		{"::ffff:10.1.0.9", "10.1.0.0/16"}, // mapped: the IPv4 table
	} {
		r, ok := tb.Lookup(addr(tc.dst))
		if !ok || r.Destination != pfx(tc.want) {
			t.Errorf("Lookup(%s) = %v, %v; want %s", tc.dst, r, ok, tc.want)
		}
	}
	if tb.Len() != 9 {
		t.Errorf("Len = %d, want 9", tb.Len())
	}
	if !tb.Remove(pfx("::/0")) {
		t.Fatal("Remove ::/0")
	}
	if _, ok := tb.Lookup(addr("2002::1")); ok {
		t.Error("v6 default still used after Remove")
	}
	if r, _ := tb.Lookup(addr("8.8.8.8")); r.Destination != pfx("0.0.0.0/0") {
		t.Error("removing ::/0 removed 0.0.0.0/0")
	}
	rs := tb.Routes()
	if last := rs[len(rs)-1]; last.Destination != pfx("2001:db8:1::7/128") {
		t.Errorf("Routes ends with %v, want the v6 host route (v4 first)", last)
	}
}

func TestTableDelete(t *testing.T) {
	var tb Table
	a := Route{Destination: pfx("10.0.0.0/8"), NIC: 1}
	b := Route{Destination: pfx("10.0.0.0/8"), NIC: 2, Metric: 5}
	tb.Add(a)
	tb.Add(b)
	if tb.Delete(Route{Destination: pfx("10.0.0.0/8"), NIC: 3}) {
		t.Error("deleted a route that is not there")
	}
	if !tb.Delete(Route{Destination: pfx("10.9.9.9/8"), NIC: 1, Metric: 77}) {
		t.Fatal("Delete of a (unmasked, other metric) route failed")
	}
	if r, ok := tb.Lookup(addr("10.1.1.1")); !ok || r != b {
		t.Errorf("after Delete got %v, %v; want %v", r, ok, b)
	}
	if !tb.Delete(b) || tb.Len() != 0 {
		t.Errorf("Len = %d after deleting both", tb.Len())
	}
	if _, ok := tb.Lookup(addr("10.1.1.1")); ok {
		t.Error("found a route in an empty table")
	}
}

func TestTableLookupAllocsIPv6(t *testing.T) {
	var tb Table
	tb.Add(Route{Destination: pfx("2001:db8::/32"), NIC: 1})
	dst := addr("2001:db8::99")
	if n := testing.AllocsPerRun(100, func() { tb.Lookup(dst) }); n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
}

// FuzzTable adds and removes routes drawn from the input, v4 and v6,
// overlapping and default ones included, and checks every lookup against
// a linear scan for the longest match (RFC 1812 §5.2.4.3).
func FuzzTable(f *testing.F) {
	f.Add([]byte{0, 10, 0, 0, 0, 8, 1, 1, 10, 1, 2, 3, 2, 10, 1, 2, 3})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 1, 0x20, 0x01, 0, 0, 0x40, 2, 3, 0x20, 0x01, 0, 0, 7})
	f.Fuzz(func(t *testing.T, in []byte) {
		var tb Table
		var ref []Route
		for len(in) >= 6 {
			op, b := in[0]%4, in[1:6]
			in = in[6:]
			var a netip.Addr
			if b[0]&1 == 0 {
				a = netip.AddrFrom4([4]byte{b[0] & 0xf0, b[1], b[2], b[3]})
			} else {
				a = netip.AddrFrom16([16]byte{0x20, 0x01, b[0] & 0xf0, b[1], b[2], b[3], 15: b[4]})
			}
			bits := int(b[4]) % (a.BitLen() + 1)
			p, _ := a.Prefix(bits)
			switch op {
			case 0, 1: // add
				r := Route{Destination: p, NIC: int(b[4] % 3), Metric: int(b[1] % 4)}
				err := tb.Add(r)
				dup := slices.ContainsFunc(ref, func(o Route) bool { return o.Destination == p && o.NIC == r.NIC })
				if dup != errors.Is(err, ErrRouteExists) || !dup && err != nil {
					t.Fatalf("Add(%v) = %v, duplicate %v", r, err, dup)
				}
				if err == nil {
					ref = append(ref, r)
				}
			case 2: // remove
				had := slices.ContainsFunc(ref, func(o Route) bool { return o.Destination == p })
				if tb.Remove(p) != had {
					t.Fatalf("Remove(%v) != %v", p, had)
				}
				ref = slices.DeleteFunc(ref, func(o Route) bool { return o.Destination == p })
			case 3: // look up
				got, ok := tb.Lookup(a)
				want, wok := lpm(ref, a)
				if ok != wok || got != want {
					t.Fatalf("Lookup(%v) = %v, %v; want %v, %v", a, got, ok, want, wok)
				}
			}
			if tb.Len() != len(ref) {
				t.Fatalf("Len = %d, want %d", tb.Len(), len(ref))
			}
		}
	})
}

// lpm is the reference longest-prefix match: a linear scan in insertion
// order, longest prefix then lowest metric, first added on a tie.
func lpm(rs []Route, a netip.Addr) (Route, bool) {
	best, ok := Route{}, false
	for _, r := range rs {
		if !r.Destination.Contains(a) {
			continue
		}
		if !ok || r.Destination.Bits() > best.Destination.Bits() ||
			r.Destination.Bits() == best.Destination.Bits() && r.Metric < best.Metric {
			best, ok = r, true
		}
	}
	return best, ok
}
