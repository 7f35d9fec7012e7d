package ipv4

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Errors returned by Table.Add.
var (
	// ErrRouteNotIPv4: the destination prefix or the gateway is not IPv4.
	ErrRouteNotIPv4 = errors.New("ipv4: route is not IPv4")
	// ErrRouteExists: a route with the same destination, gateway and NIC is
	// already in the table.
	ErrRouteExists = errors.New("ipv4: route exists")
)

// Route is an entry of the routing table (RFC 1122 §3.3.1.2, "Next-hop
// Gateway Selection": a destination is either on a connected network, sent
// directly, or reached through a gateway).
type Route struct {
	// Destination is the IPv4 prefix the route covers; 0.0.0.0/0 is the
	// default route.
	Destination netip.Prefix
	// Gateway is the next-hop router; the zero (invalid) Addr means the
	// destination is on-link.
	Gateway netip.Addr
	// NIC identifies the outgoing interface; its meaning is the caller's.
	NIC int
	// Metric breaks ties between routes with the same prefix length: the
	// lowest wins.
	Metric int
}

// NextHop returns the address to resolve with ARP to send a datagram to dst
// over r: the gateway if the route has one, else dst itself (on-link).
func (r Route) NextHop(dst netip.Addr) netip.Addr {
	if r.Gateway.IsValid() {
		return r.Gateway
	}
	return dst
}

// String formats r like a line of `ip route`.
func (r Route) String() string {
	dst := r.Destination.String()
	if r.Destination.Bits() == 0 {
		dst = "default"
	}
	s := dst
	if r.Gateway.IsValid() {
		s += " via " + r.Gateway.String()
	}
	s += fmt.Sprintf(" dev %d", r.NIC)
	if r.Metric != 0 {
		s += fmt.Sprintf(" metric %d", r.Metric)
	}
	return s
}

// tableEntry is a route with its insertion sequence number, which breaks
// ties after the metric.
type tableEntry struct {
	Route
	seq uint64
}

// Table is an IPv4 routing table with longest-prefix-match lookup.
//
// Routes are grouped by prefix length, one map per length from /32 down to
// /0, so a lookup costs at most 33 map probes of a netip.Prefix key and does
// not allocate. A Table is not safe for concurrent use: the caller (the
// stack) guards it.
type Table struct {
	byLen [33]map[netip.Prefix][]tableEntry
	count [33]int // routes per prefix length, to skip empty lengths
	seq   uint64
}

// Add inserts r. The destination must be an IPv4 prefix and the gateway
// either invalid (on-link) or IPv4, else ErrRouteNotIPv4. A prefix with
// host bits set is masked (10.1.2.3/8 becomes 10.0.0.0/8), as `ip route`
// would refuse it and a caller most likely meant the network. A route with
// the same destination, gateway and NIC as an existing one is
// ErrRouteExists.
func (t *Table) Add(r Route) error {
	if !r.Destination.IsValid() || !r.Destination.Addr().Is4() {
		return ErrRouteNotIPv4
	}
	if r.Gateway.IsValid() && !r.Gateway.Is4() {
		return ErrRouteNotIPv4
	}
	r.Destination = r.Destination.Masked()
	l := r.Destination.Bits()
	if t.byLen[l] == nil {
		t.byLen[l] = make(map[netip.Prefix][]tableEntry)
	}
	es := t.byLen[l][r.Destination]
	for _, e := range es {
		if e.Gateway == r.Gateway && e.NIC == r.NIC {
			return ErrRouteExists
		}
	}
	t.seq++
	t.byLen[l][r.Destination] = append(es, tableEntry{Route: r, seq: t.seq})
	t.count[l]++
	return nil
}

// Remove deletes every route whose destination is dst (masked) and reports
// whether there was one.
func (t *Table) Remove(dst netip.Prefix) bool {
	if !dst.IsValid() || !dst.Addr().Is4() {
		return false
	}
	dst = dst.Masked()
	l := dst.Bits()
	es, ok := t.byLen[l][dst]
	if !ok {
		return false
	}
	t.count[l] -= len(es)
	delete(t.byLen[l], dst)
	return true
}

// Lookup returns the route for dst: the longest matching prefix (RFC 1812
// §5.2.4.3, "Longest Match"), then the lowest Metric, then the route added
// first. It does not allocate.
func (t *Table) Lookup(dst netip.Addr) (Route, bool) {
	dst = dst.Unmap()
	if !dst.Is4() {
		return Route{}, false
	}
	for l := 32; l >= 0; l-- {
		if t.count[l] == 0 {
			continue
		}
		p, _ := dst.Prefix(l)
		es := t.byLen[l][p]
		if len(es) == 0 {
			continue
		}
		best := 0
		for i := 1; i < len(es); i++ { // es is in insertion order
			if es[i].Metric < es[best].Metric {
				best = i
			}
		}
		return es[best].Route, true
	}
	return Route{}, false
}

// Len returns the number of routes.
func (t *Table) Len() int {
	n := 0
	for _, c := range t.count {
		n += c
	}
	return n
}

// Routes returns a copy of the routes sorted for display as `ip route` does:
// by destination address (so the default route comes first), then prefix
// length, then metric, then insertion order.
func (t *Table) Routes() []Route {
	var es []tableEntry
	for _, m := range t.byLen {
		for _, v := range m {
			es = append(es, v...)
		}
	}
	slices.SortFunc(es, func(a, b tableEntry) int {
		if c := a.Destination.Addr().Compare(b.Destination.Addr()); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Destination.Bits(), b.Destination.Bits()); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Metric, b.Metric); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	rs := make([]Route, len(es))
	for i, e := range es {
		rs[i] = e.Route
	}
	return rs
}
