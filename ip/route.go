package ip

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Errors returned by Table.Add.
var (
	// ErrRouteInvalid: the destination prefix is the zero Prefix.
	ErrRouteInvalid = errors.New("ip: route destination is not a prefix")
	// ErrRouteFamily: the gateway is not of the destination's family.
	ErrRouteFamily = errors.New("ip: route gateway and destination differ in family")
	// ErrRouteExists: a route with the same destination, gateway and NIC is
	// already in the table.
	ErrRouteExists = errors.New("ip: route exists")
)

// Route is an entry of the routing table (RFC 1122 §3.3.1.2, "Next-hop
// Gateway Selection": a destination is either on a connected network, sent
// directly, or reached through a gateway).
type Route struct {
	// Destination is the prefix the route covers, IPv4 or IPv6; 0.0.0.0/0
	// and ::/0 are the default routes of their families.
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

// NextHop returns the address to resolve (ARP, neighbour discovery) to
// send a datagram to dst over r: the gateway if the route has one, else
// dst itself (on-link).
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

// family is the routes of one address family, grouped by prefix length:
// one map per length, so that a lookup costs at most one map probe of a
// netip.Prefix key per length in use, and does not allocate.
type family struct {
	byLen []map[netip.Prefix][]tableEntry // indexed by prefix length
	count []int                           // routes per prefix length, to skip empty lengths
	n     int
}

func (f *family) init(bits int) {
	if f.byLen == nil {
		f.byLen = make([]map[netip.Prefix][]tableEntry, bits+1)
		f.count = make([]int, bits+1)
	}
}

// Table is a routing table with a longest-prefix-match lookup per family
// (RFC 1812 §5.2.4.3, RFC 4632 §5.1): IPv4 and IPv6 routes live side by
// side and never match the other family's destinations.
//
// The zero Table is empty and ready to use. A Table is not safe for
// concurrent use: the caller (the stack) guards it.
type Table struct {
	v4, v6 family
	seq    uint64
}

// fam returns the routes of a's family, or nil for the zero Addr.
func (t *Table) fam(a netip.Addr) *family {
	switch {
	case a.Is4():
		t.v4.init(32)
		return &t.v4
	case a.Is6():
		t.v6.init(128)
		return &t.v6
	}
	return nil
}

// canon returns p masked, with an IPv4-mapped IPv6 prefix of at least 96
// bits turned into its IPv4 prefix (as Lookup unmaps destinations).
func canon(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// Add inserts r. The destination must be a valid prefix (else
// ErrRouteInvalid) and the gateway either invalid (on-link) or of the
// destination's family (else ErrRouteFamily). A prefix with host bits set
// is masked (10.1.2.3/8 becomes 10.0.0.0/8), as `ip route` would refuse
// it and a caller most likely meant the network. A route with the same
// destination, gateway and NIC as an existing one is ErrRouteExists.
func (t *Table) Add(r Route) error {
	if !r.Destination.IsValid() {
		return ErrRouteInvalid
	}
	r.Destination = canon(r.Destination)
	r.Gateway = r.Gateway.Unmap()
	if r.Gateway.IsValid() && r.Gateway.Is4() != r.Destination.Addr().Is4() {
		return ErrRouteFamily
	}
	f := t.fam(r.Destination.Addr())
	l := r.Destination.Bits()
	if f.byLen[l] == nil {
		f.byLen[l] = make(map[netip.Prefix][]tableEntry)
	}
	es := f.byLen[l][r.Destination]
	for _, e := range es {
		if e.Gateway == r.Gateway && e.NIC == r.NIC {
			return ErrRouteExists
		}
	}
	t.seq++
	f.byLen[l][r.Destination] = append(es, tableEntry{Route: r, seq: t.seq})
	f.count[l]++
	f.n++
	return nil
}

// Remove deletes every route whose destination is dst (masked) and reports
// whether there was one.
func (t *Table) Remove(dst netip.Prefix) bool {
	if !dst.IsValid() {
		return false
	}
	dst = canon(dst)
	f := t.fam(dst.Addr())
	l := dst.Bits()
	es, ok := f.byLen[l][dst]
	if !ok {
		return false
	}
	f.count[l] -= len(es)
	f.n -= len(es)
	delete(f.byLen[l], dst)
	return true
}

// Delete deletes the route with r's destination (masked), gateway and NIC,
// whatever its metric, and reports whether there was one.
func (t *Table) Delete(r Route) bool {
	if !r.Destination.IsValid() {
		return false
	}
	dst := canon(r.Destination)
	gw := r.Gateway.Unmap()
	f := t.fam(dst.Addr())
	l := dst.Bits()
	es := f.byLen[l][dst]
	for i, e := range es {
		if e.Gateway == gw && e.NIC == r.NIC {
			if len(es) == 1 {
				delete(f.byLen[l], dst)
			} else {
				f.byLen[l][dst] = slices.Delete(es, i, i+1)
			}
			f.count[l]--
			f.n--
			return true
		}
	}
	return false
}

// Lookup returns the route for dst: the longest matching prefix of dst's
// family (RFC 1812 §5.2.4.3, "Longest Match"; RFC 4632 §5.1), then the
// lowest Metric, then the route added first. An IPv4-mapped IPv6 address
// is looked up as the IPv4 address it maps. It does not allocate.
func (t *Table) Lookup(dst netip.Addr) (Route, bool) {
	dst = dst.Unmap()
	var f *family
	switch {
	case dst.Is4():
		f = &t.v4
	case dst.Is6():
		f = &t.v6
	default:
		return Route{}, false
	}
	if f.n == 0 {
		return Route{}, false
	}
	for l := len(f.count) - 1; l >= 0; l-- {
		if f.count[l] == 0 {
			continue
		}
		p, _ := dst.Prefix(l)
		es := f.byLen[l][p]
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

// Len returns the number of routes, both families.
func (t *Table) Len() int { return t.v4.n + t.v6.n }

// Routes returns a copy of the routes sorted for display as `ip route`
// does: IPv4 before IPv6, then by destination address (so a default route
// comes first), then prefix length, then metric, then insertion order.
func (t *Table) Routes() []Route {
	var es []tableEntry
	for _, f := range []*family{&t.v4, &t.v6} {
		for _, m := range f.byLen {
			for _, v := range m {
				es = append(es, v...)
			}
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
