package stack

import (
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv6"
)

// What router advertisements leave on a NIC, each with the deadline the
// stack's timer keeps (runTimers6 → expireAuto6); a zero deadline is an
// infinite lifetime. n.ndMu guards the lists.

// defaultRouter is an entry of the Default Router List (RFC 4861 §5.1):
// a router and when its Router Lifetime runs out ("the invalidation
// timer", §6.3.4).
type defaultRouter struct {
	addr    netip.Addr
	expires time.Time
}

// onLinkPrefix is an entry of the Prefix List (RFC 4861 §5.1) learnt from
// a Prefix Information option with the L flag, invalidated when its Valid
// Lifetime runs out (§6.3.4).
type onLinkPrefix struct {
	prefix  netip.Prefix
	expires time.Time
}

// autoAddr is an address SLAAC formed (RFC 4862 §5.5.3), tentative or
// assigned, with its lifetimes (§5.5.4): preferred until preferred, then
// deprecated, and removed at valid. dadCounter is RFC 7217's DAD_Counter
// for a stable address.
type autoAddr struct {
	addr             netip.Prefix
	preferred, valid time.Time
	deprecated       bool
	dadCounter       uint8
}

// idgenRetries is IDGEN_RETRIES (RFC 7217 §7): how many more stable
// addresses are tried after a duplicate.
const idgenRetries = 3

// lifetimeEnd returns the time a lifetime d from now ends: zero (never) for
// an infinite one.
func lifetimeEnd(now time.Time, d time.Duration) time.Time {
	if d == ipv6.InfiniteLifetime {
		return time.Time{}
	}
	return now.Add(d)
}

// expired reports whether the deadline at (zero: never) has passed at now.
func expired(at, now time.Time) bool { return !at.IsZero() && !now.Before(at) }

// secondsLifetime is a lifetime field of seconds, 0xffffffff meaning
// infinity (RFC 4861 §4.6.2).
func secondsLifetime(s uint32) time.Duration {
	if s == 0xffffffff {
		return ipv6.InfiniteLifetime
	}
	return time.Duration(s) * time.Second
}

// deliverRA handles a valid Router Advertisement (RFC 4861 §6.3.4): its
// source becomes a default router for its Router Lifetime (a lifetime of
// 0 removes it at once), its on-link prefixes become routes for their
// valid lifetimes, its MTU option lowers the link MTU, and with
// Options.SLAAC its autonomous prefixes form addresses and refresh their
// lifetimes (RFC 4862 §5.5.3).
func (n *nic) deliverRA(p *ip.Packet, ra ipv6.RouterAdvertisement) {
	s := n.s
	// Counted once acted on, so that whoever waits for the count sees
	// the routes and addresses it made.
	defer inc(&s.ctr.get().NDP.RouterAdvertisementsIn)
	router := p.Source // link-local: ValidateNDP checked (§6.1.2)
	now := s.clock.Now()
	if o := ipv6.FindOption(ra.Options(), ipv6.OptionSourceLinkLayerAddress); o != nil {
		n.ndMu.Lock()
		res := n.nd.Learn(router, o.LinkLayerAddress(), true, now)
		n.ndChangedLocked()
		n.releaseLocked(res)
		n.ndMu.Unlock()
	}
	// §6.3.4: "If the address is already present in the host's Default
	// Router List and the received Router Lifetime value is zero,
	// immediately time-out the entry"; otherwise the entry is created or
	// its invalidation timer reset to the Router Lifetime.
	life := ra.RouterLifetime()
	n.ndMu.Lock()
	i := slices.IndexFunc(n.routers6, func(r defaultRouter) bool { return r.addr == router })
	switch {
	case life > 0 && i < 0:
		n.routers6 = append(n.routers6, defaultRouter{router, now.Add(life)})
	case life > 0:
		n.routers6[i].expires = now.Add(life)
	case i >= 0:
		n.routers6 = slices.Delete(n.routers6, i, i+1)
	}
	n.ndMu.Unlock()
	def := defaultRoute6(n, router)
	s.mu.Lock()
	if life > 0 {
		_ = s.routes.Add(def) // ErrRouteExists: the timer was reset
	} else {
		s.routes.Delete(def)
	}
	s.routeChanged()
	s.mu.Unlock()
	if life > 0 {
		s.kick() // a new deadline
	}
	for opts := ra.Options(); len(opts) > 0; {
		var o ipv6.Option
		o, opts = ipv6.NextOption(opts)
		if o == nil {
			break
		}
		switch o.Type() {
		case ipv6.OptionMTU:
			// §6.3.4: "If the MTU option is present, hosts SHOULD copy the
			// option's value into LinkMTU" if it is valid: at least the
			// minimum and at most the link's own.
			if m := int(o.MTU()); m >= ipv6.MinMTU && m < n.mtu {
				n.mtu6.Store(int32(m))
				s.routeChanged()
			}
		case ipv6.OptionPrefixInformation:
			n.prefixInformation(o.PrefixInformation(), now)
		}
	}
}

// defaultRoute6 is the default route through router out of n.
func defaultRoute6(n *nic, router netip.Addr) ip.Route {
	return ip.Route{Destination: netip.PrefixFrom(netip.IPv6Unspecified(), 0), Gateway: router, NIC: int(n.id)}
}

// prefixInformation acts on one Prefix Information option received at
// now (RFC 4861 §6.3.4: the on-link flag; RFC 4862 §5.5.3: the
// autonomous flag, when Options.SLAAC is set).
func (n *nic) prefixInformation(pi ipv6.PrefixInformation, now time.Time) {
	s := n.s
	pfx := pi.Prefix()
	if !pfx.IsValid() || pfx.Addr().IsLinkLocalUnicast() {
		return // §6.3.4: "If the prefix is the link-local prefix, silently ignore"
	}
	if pi.OnLink() {
		n.onLinkPrefix(pfx, secondsLifetime(pi.ValidLifetime()), now)
	}
	if !s.opts.SLAAC {
		return
	}
	n.ndMu.Lock()
	j := slices.IndexFunc(n.auto6, func(a autoAddr) bool { return a.addr.Masked() == pfx })
	remaining := ipv6.InfiniteLifetime
	if j >= 0 && !n.auto6[j].valid.IsZero() {
		remaining = max(0, n.auto6[j].valid.Sub(now))
	}
	n.ndMu.Unlock()
	if j < 0 {
		// An address of the prefix given by hand, or under DAD: SLAAC
		// leaves the prefix alone.
		for _, a := range n.addrList() {
			if a.Masked() == pfx {
				return
			}
		}
		if n.tentativeIn(pfx) {
			return
		}
	}
	d, err := ipv6.DecideSLAAC(pi, j >= 0, remaining)
	if err != nil {
		return
	}
	switch d.Action {
	case ipv6.SLAACCreate:
		n.createAuto(pfx, d, now)
	case ipv6.SLAACUpdate:
		// §5.5.3 (e): the preferred lifetime is reset to the advertised
		// one, the valid lifetime as the two-hour rule says (DecideSLAAC);
		// an address preferred again is no longer deprecated.
		n.ndMu.Lock()
		if j < len(n.auto6) && n.auto6[j].addr.Masked() == pfx {
			a := &n.auto6[j]
			a.valid, a.preferred = lifetimeEnd(now, d.Valid), lifetimeEnd(now, d.Preferred)
			if a.deprecated && d.Preferred > 0 {
				a.deprecated = false
				n.setDeprecatedLocked()
			}
		}
		n.ndMu.Unlock()
		s.kick()
	}
}

// onLinkPrefix enters pfx in the Prefix List for valid from now, or with
// valid 0 times it out at once (RFC 4861 §6.3.4: "If the prefix is not
// already in the Prefix List, and the Prefix Information option's Valid
// Lifetime field is non-zero, create a new entry"; "If the prefix is
// already present ... reset its invalidation timer to the Valid Lifetime
// value ... If the new Lifetime value is zero, time-out the prefix
// immediately").
func (n *nic) onLinkPrefix(pfx netip.Prefix, valid time.Duration, now time.Time) {
	n.ndMu.Lock()
	i := slices.IndexFunc(n.prefixes6, func(p onLinkPrefix) bool { return p.prefix == pfx })
	switch {
	case valid > 0 && i < 0:
		n.prefixes6 = append(n.prefixes6, onLinkPrefix{pfx, lifetimeEnd(now, valid)})
	case valid > 0:
		n.prefixes6[i].expires = lifetimeEnd(now, valid)
	case i >= 0:
		n.prefixes6 = slices.Delete(n.prefixes6, i, i+1)
	default:
		n.ndMu.Unlock()
		return // an unknown prefix with lifetime 0: ignored
	}
	n.ndMu.Unlock()
	s := n.s
	if valid > 0 {
		s.mu.Lock()
		if err := s.routes.Add(ip.Route{Destination: pfx, NIC: int(n.id)}); err == nil {
			s.routeChanged()
		}
		s.mu.Unlock()
		s.kick()
		return
	}
	n.prefixInvalid(pfx)
}

// prefixInvalid removes the on-link route of pfx, an RA's prefix that
// timed out, unless an address of the NIC lies in it (whose own on-link
// route it is too).
func (n *nic) prefixInvalid(pfx netip.Prefix) {
	for _, a := range n.addrList() {
		if a.Masked() == pfx {
			return
		}
	}
	s := n.s
	s.mu.Lock()
	if s.routes.Delete(ip.Route{Destination: pfx, NIC: int(n.id)}) {
		s.routeChanged()
	}
	s.mu.Unlock()
}

// interfaceID returns the interface identifier of n's addresses in pfx:
// the modified EUI-64 one (RFC 4291 Appendix A), or with
// Options.StableSecret the RFC 7217 §5 one for DAD_Counter *counter, which
// it advances past identifiers RFC 5453 reserves (§5: handled as
// duplicates). Net_Iface is the NIC's MAC address, stable across restarts
// and different per NIC; there is no Network_ID.
func (n *nic) interfaceID(pfx netip.Prefix, counter *uint8) ([8]byte, bool) {
	secret := n.s.opts.StableSecret
	if secret == nil {
		return ipv6.EUI64InterfaceID(n.mac), true
	}
	for ; *counter <= idgenRetries; *counter++ {
		iid, err := ipv6.StableInterfaceID(netip.PrefixFrom(pfx.Addr(), 64).Masked(), n.mac[:], nil, *counter, secret)
		if err == nil {
			return iid, true
		}
		if !errors.Is(err, ipv6.ErrReservedInterfaceID) {
			return iid, false
		}
	}
	return [8]byte{}, false
}

// createAuto forms the address of the autonomous prefix pfx (RFC 4862
// §5.5.3 (d): the prefix and the interface identifier), records its
// lifetimes and starts its duplicate address detection.
func (n *nic) createAuto(pfx netip.Prefix, d ipv6.SLAACDecision, now time.Time) {
	var counter uint8
	iid, ok := n.interfaceID(pfx, &counter)
	if !ok {
		return
	}
	addr := netip.PrefixFrom(ipv6.AddrFromInterfaceID(pfx.Addr(), iid), pfx.Bits())
	s := n.s
	s.mu.RLock()
	for _, o := range s.nics {
		if o.hasAddr(addr.Addr()) {
			s.mu.RUnlock()
			return
		}
	}
	s.mu.RUnlock()
	n.ndMu.Lock()
	n.auto6 = append(n.auto6, autoAddr{addr: addr, preferred: lifetimeEnd(now, d.Preferred), valid: lifetimeEnd(now, d.Valid), dadCounter: counter})
	if d.Preferred == 0 {
		n.auto6[len(n.auto6)-1].deprecated = true
		n.setDeprecatedLocked()
	}
	n.ndMu.Unlock()
	inc(&s.ctr.get().NDP.AddressesAutoconfigured)
	n.startDAD(addr, false, true)
}

// autoDADFailed is dadFailed's sequel for a SLAAC address a: RFC 7217 §6
// forms the next stable address with DAD_Counter incremented, up to
// IDGEN_RETRIES times; a modified EUI-64 one is given up (RFC 4862
// §5.4.5), and so is a stable one after the retries.
func (n *nic) autoDADFailed(a netip.Addr) {
	n.ndMu.Lock()
	j := slices.IndexFunc(n.auto6, func(x autoAddr) bool { return x.addr.Addr() == a })
	if j < 0 {
		n.ndMu.Unlock()
		return
	}
	rec := n.auto6[j]
	n.auto6 = slices.Delete(n.auto6, j, j+1)
	n.ndMu.Unlock()
	if n.s.opts.StableSecret == nil || rec.dadCounter >= idgenRetries {
		return
	}
	rec.dadCounter++
	iid, ok := n.interfaceID(rec.addr.Masked(), &rec.dadCounter)
	if !ok {
		return
	}
	rec.addr = netip.PrefixFrom(ipv6.AddrFromInterfaceID(rec.addr.Addr(), iid), rec.addr.Bits())
	n.ndMu.Lock()
	n.auto6 = append(n.auto6, rec)
	n.ndMu.Unlock()
	inc(&n.s.ctr.get().NDP.AddressesAutoconfigured)
	n.startDAD(rec.addr, false, true)
}

// setDeprecatedLocked publishes the deprecated addresses of auto6 for
// source selection (sourceFor) and makes cached routes choose again;
// n.ndMu is held.
func (n *nic) setDeprecatedLocked() {
	var d []netip.Addr
	for _, a := range n.auto6 {
		if a.deprecated {
			d = append(d, a.addr.Addr())
		}
	}
	n.deprecated6.Store(&d)
	n.s.routeChanged()
}

// isDeprecated reports whether a is a deprecated address of n (RFC 4862
// §5.5.4): its preferred lifetime ran out.
func (n *nic) isDeprecated(a netip.Addr) bool {
	if p := n.deprecated6.Load(); p != nil {
		return slices.Contains(*p, a)
	}
	return false
}

// tentativeIn reports whether a tentative address of n is in pfx.
func (n *nic) tentativeIn(pfx netip.Prefix) bool {
	n.ndMu.Lock()
	defer n.ndMu.Unlock()
	for _, t := range n.tent {
		if pfx.Contains(t.addr.Addr()) {
			return true
		}
	}
	return false
}

// removeDefaultRouter deletes router from the default routers of n (RFC
// 4861 §7.2.5, an NA whose Router flag went clear).
func (s *Stack) removeDefaultRouter(n *nic, router netip.Addr) {
	n.ndMu.Lock()
	n.routers6 = slices.DeleteFunc(n.routers6, func(r defaultRouter) bool { return r.addr == router })
	n.ndMu.Unlock()
	s.mu.Lock()
	if s.routes.Delete(defaultRoute6(n, router)) {
		s.routeChanged()
	}
	s.mu.Unlock()
}

// expireAuto6 does what the lifetimes of n's routers, prefixes and SLAAC
// addresses make due at now, and returns the next of their deadlines:
// a router whose lifetime ran out leaves the Default Router List and its
// default route goes (RFC 4861 §6.3.4); a prefix whose valid lifetime ran
// out leaves the Prefix List and its on-link route goes (§6.3.4); an
// address past its preferred lifetime becomes deprecated, and past its
// valid lifetime is removed (RFC 4862 §5.5.4: "An address (and its
// association with an interface) becomes invalid when its valid lifetime
// expires").
func (n *nic) expireAuto6(now time.Time) time.Time {
	var next time.Time
	earlier := func(d time.Time) {
		if !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	var routers []netip.Addr
	var prefixes []netip.Prefix
	var invalid []netip.Prefix
	n.ndMu.Lock()
	n.routers6 = slices.DeleteFunc(n.routers6, func(r defaultRouter) bool {
		if expired(r.expires, now) {
			routers = append(routers, r.addr)
			return true
		}
		earlier(r.expires)
		return false
	})
	n.prefixes6 = slices.DeleteFunc(n.prefixes6, func(p onLinkPrefix) bool {
		if expired(p.expires, now) {
			prefixes = append(prefixes, p.prefix)
			return true
		}
		earlier(p.expires)
		return false
	})
	deprecated := false
	n.auto6 = slices.DeleteFunc(n.auto6, func(a autoAddr) bool {
		if expired(a.valid, now) {
			invalid = append(invalid, a.addr)
			deprecated = deprecated || a.deprecated
			return true
		}
		earlier(a.valid)
		if !a.deprecated {
			if expired(a.preferred, now) {
				deprecated = true
			} else {
				earlier(a.preferred)
			}
		}
		return false
	})
	for i := range n.auto6 {
		if expired(n.auto6[i].preferred, now) {
			n.auto6[i].deprecated = true
		}
	}
	if deprecated {
		n.setDeprecatedLocked()
	}
	n.ndMu.Unlock()
	s := n.s
	for _, r := range routers {
		s.mu.Lock()
		if s.routes.Delete(defaultRoute6(n, r)) {
			s.routeChanged()
		}
		s.mu.Unlock()
	}
	for _, a := range invalid {
		n.removeAuto(a)
	}
	for _, p := range prefixes {
		n.prefixInvalid(p)
	}
	return next
}

// removeAuto removes the SLAAC address a whose valid lifetime ran out:
// assigned, with its on-link route unless the Prefix List still holds
// its prefix; tentative, by ending its DAD.
func (n *nic) removeAuto(a netip.Prefix) {
	s := n.s
	n.ndMu.Lock()
	n.tent = slices.DeleteFunc(n.tent, func(t tentativeAddr) bool { return t.addr == a })
	onLink := slices.ContainsFunc(n.prefixes6, func(p onLinkPrefix) bool { return p.prefix == a.Masked() })
	n.ndMu.Unlock()
	s.mu.Lock()
	as := n.addrList()
	if i := slices.Index(as, a); i >= 0 {
		rest := slices.Delete(slices.Clone(as), i, i+1)
		n.addrs.Store(&rest)
		if !onLink && !slices.ContainsFunc(rest, func(p netip.Prefix) bool { return p.Masked() == a.Masked() }) {
			s.routes.Delete(ip.Route{Destination: a.Masked(), NIC: int(n.id)})
		}
		s.routeChanged()
	}
	s.mu.Unlock()
	inc(&s.ctr.get().NDP.AddressesExpired)
	if !n.tentativeShares(ipv6.SolicitedNodeMulticast(a.Addr())) {
		n.leave(ipv6.SolicitedNodeMulticast(a.Addr()))
	}
}
