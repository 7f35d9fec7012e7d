package ipv4

import (
	"errors"
	"net/netip"
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
		t.Error("found a route for IPv6")
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
		{"ipv6 prefix", Route{Destination: pfx("2001:db8::/32")}, ErrRouteNotIPv4},
		{"zero prefix", Route{}, ErrRouteNotIPv4},
		{"ipv6 gateway", Route{Destination: pfx("10.0.0.0/8"), Gateway: addr("fe80::1")}, ErrRouteNotIPv4},
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
