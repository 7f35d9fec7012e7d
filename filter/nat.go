package filter

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/ustack/ustack/ip"
)

// natDst is the destination NAT of prerouting and output (Linux's
// NF_INET_PRE_ROUTING / LOCAL_OUT at NF_IP_PRI_NAT_DST): on a new flow's
// first packet the nat table chooses DNAT or REDIRECT; then every packet
// of the flow gets the destination its direction's tuple calls for.
func (f *Filter) natDst(rs *ruleset, h Hook, p *Packet, v *view, now time.Time) Verdict {
	c := p.ct
	if c == nil {
		return Verdict{}
	}
	if p.ctst == StateNew && p.dir == dirOriginal {
		if vd := f.natDecide(rs, h, p, v, now, true); vd.Action != Accept {
			return vd
		}
	}
	return f.natApply(p, v, true)
}

// natSrc is the source NAT of postrouting (and, undoing a destination NAT
// for replies to this host, input).
func (f *Filter) natSrc(rs *ruleset, h Hook, p *Packet, v *view, now time.Time) Verdict {
	c := p.ct
	if c == nil {
		return Verdict{}
	}
	if h == Postrouting && p.ctst == StateNew && p.dir == dirOriginal {
		if vd := f.natDecide(rs, h, p, v, now, false); vd.Action != Accept {
			return vd
		}
	}
	return f.natApply(p, v, false)
}

// natDecide runs the nat chain of h once per connection and binds the
// connection's reply tuple to the translation its target chooses.
func (f *Filter) natDecide(rs *ruleset, h Hook, p *Packet, v *view, now time.Time, dst bool) Verdict {
	ct := f.ct
	p.ct.mu.Lock()
	done := p.ct.dnatDone
	if !dst {
		done = p.ct.snatDone
	}
	p.ct.mu.Unlock()
	if done {
		return Verdict{}
	}
	var r *Rule
	if ch := rs.hookChain(TableNAT, h); ch != nil {
		r = f.walk(ch, p, v, now)
	}
	var addr netip.Addr
	var ports portRange
	switch {
	case r == nil || r.target == TargetAccept:
	case r.target == TargetDNAT || r.target == TargetSNAT:
		addr, ports = pickAddr(r.natAddr, p.ct.tuple[0]), r.natPorts
		if !r.natPortOK {
			ports = portRange{}
		}
	case r.target == TargetMasquerade || r.target == TargetRedirect:
		nic := p.Out
		if r.target == TargetRedirect {
			nic = p.In
		}
		ok := false
		if r.target == TargetRedirect && h == Output {
			// iptables-extensions(8), REDIRECT: locally generated packets
			// go to the loopback address.
			addr, ok = netip.IPv6Loopback(), true
			if !v.v6 {
				addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
			}
		} else if f.cfg.LocalAddr != nil {
			addr, ok = f.cfg.LocalAddr(nic, v.v6)
		}
		if !ok || !addr.IsValid() || addr.Is6() != v.v6 {
			f.stats.DropNATNoAddr.Add(1)
			return Verdict{Action: Drop}
		}
		if r.natPortOK {
			ports = r.natPorts
		}
	}
	c := p.ct
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return Verdict{}
	}
	if dst {
		c.dnatDone = true
	} else {
		c.snatDone = true
	}
	if !addr.IsValid() || addr.Is6() != c.tuple[0].Src.Is6() {
		return Verdict{}
	}
	want := c.tuple[1]
	if dst {
		want.Src = addr // the reply comes from the new destination
	} else {
		want.Dst = addr // and goes to the new source
	}
	if !ct.bindReply(c, want, ports, dst) {
		f.stats.DropNATNoPort.Add(1)
		return Verdict{Action: Drop}
	}
	return Verdict{}
}

// pickAddr chooses an address of the range [r[0], r[1]] for a flow: by a
// hash of the original source, so that one client keeps one address (as
// Linux's find_best_ips_proto does); IPv6 ranges use their first address.
func pickAddr(r [2]netip.Addr, t Tuple) netip.Addr {
	if r[0] == r[1] || !r[0].Is4() {
		return r[0]
	}
	lo, hi := binary.BigEndian.Uint32(r[0].AsSlice()), binary.BigEndian.Uint32(r[1].AsSlice())
	s := t.Src.As4()
	hsh := binary.BigEndian.Uint32(s[:]) * 0x9e3779b1
	n := lo + hsh%(hi-lo+1)
	if hi-lo == ^uint32(0) {
		n = hsh
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	return netip.AddrFrom4(b)
}

// maxPortTries bounds the search for a free port, as Linux's
// nf_nat_l4proto_unique_tuple gives up after a bounded number of tries.
const maxPortTries = 4096

// bindReply makes want c's reply tuple, choosing its port in ports (zero:
// keep the port if the tuple is free, else any in the original port's
// class) so that it collides with no tracked tuple; c.mu is held. The
// port is the reply's source port for destination NAT and its
// destination port for source NAT.
func (ct *Conntrack) bindReply(c *conn, want Tuple, ports portRange, dst bool) bool {
	hasPorts := want.Proto == ip.ProtocolTCP || want.Proto == ip.ProtocolUDP ||
		want.Proto == ip.ProtocolICMP || want.Proto == ip.ProtocolICMPv6
	port := &want.DstPort
	if dst {
		port = &want.SrcPort
	}
	echo := want.Proto == ip.ProtocolICMP || want.Proto == ip.ProtocolICMPv6
	set := func(n uint16) {
		*port = n
		if echo {
			want.SrcPort, want.DstPort = n, n
		}
	}
	// take claims want in the map, atomically with the check that no
	// other entry has it, and gives up c's old reply tuple.
	take := func() bool {
		if !ct.claim(want, c) {
			return false
		}
		if old := c.tuple[1]; old != want {
			c.tuple[1] = want
			c.natted.Store(true)
			ct.release(old, c)
		}
		return true
	}
	if !hasPorts {
		return take()
	}
	if ports.hi == 0 {
		if take() {
			return true
		}
		if dst {
			return false // DNAT keeps the port it was given
		}
		// Linux keeps ports below 1024 below 1024 (nf_nat_l4proto_unique_tuple).
		ports = portRange{1024, 65535}
		if *port < 1024 && !echo {
			ports = portRange{1, 1023}
		}
		if echo {
			ports = portRange{0, 65535}
		}
	} else if ports.has(*port) && take() {
		return true
	}
	size := uint32(ports.hi-ports.lo) + 1
	start := (uint32(c.tuple[0].SrcPort)*2654435761 + uint32(ct.stats.inserted.Load())) % size
	tries := min(size, maxPortTries)
	for i := range tries {
		set(ports.lo + uint16((start+i)%size))
		if take() {
			return true
		}
	}
	return false
}

// natApply rewrites p so that its tuple is the one its direction's
// translation calls for: the reverse of the other direction's tuple. dst
// selects the destination address and port (prerouting, output) or the
// source (postrouting, input).
func (f *Filter) natApply(p *Packet, v *view, dst bool) Verdict {
	c := p.ct
	if !c.natted.Load() {
		return Verdict{} // its tuples are each other's reverse: nothing to rewrite
	}
	c.mu.Lock()
	want := c.tuple[1-p.dir].Reverse()
	c.mu.Unlock()
	if p.ctst == StateRelated {
		rewriteICMPError(p.IP, v, want, dst)
		return Verdict{}
	}
	cur, ok := tupleOf(v)
	if !ok {
		return Verdict{}
	}
	if dst && (cur.Dst != want.Dst || cur.DstPort != want.DstPort) {
		rewrite(p.IP, v, true, want.Dst, want.DstPort)
	} else if !dst && (cur.Src != want.Src || cur.SrcPort != want.SrcPort) {
		rewrite(p.IP, v, false, want.Src, want.SrcPort)
	}
	return Verdict{}
}
