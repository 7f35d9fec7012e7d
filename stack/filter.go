package stack

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/ustack/ustack/filter"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
)

// SetFilter attaches the packet filter f (package filter: iptables rules,
// connection tracking, NAT) to the stack; nil detaches it. Every datagram
// received for the stack then passes f's prerouting and input hooks, after
// reassembly (as Linux's conntrack sees datagrams defragmented), and every
// datagram the stack sends passes output and postrouting, before
// fragmentation. A NIC's name, for -i and -o, is NICName's. A datagram the
// filter drops is counted in Stats().Filter; one it rejects is answered
// with the TCP reset or ICMP error the rule names (REJECT --reject-with),
// about the datagram received. The stack's timer expires the connection
// tracking table's entries every second.
//
// A stack that forwards (Options.Forwarding) runs prerouting, forward and
// postrouting on the datagrams it routes on, so that DNAT at prerouting
// (a port forward to a host behind the router, even for a datagram sent
// to the stack's own address) and SNAT or MASQUERADE at postrouting
// apply to them, and their replies are translated back by connection
// tracking. A host drops a datagram that destination NAT sends to an
// address the stack does not have (Filter.DropNATElsewhere: FORWARD
// never runs). The stack does not route again after output NAT.
//
// IPv6 packets pass the same hooks, after reassembly and with their
// extension headers walked, so that -p matches the upper-layer protocol,
// as ip6tables sees them: neighbour discovery and the other ICMPv6 the
// stack needs go through INPUT and OUTPUT like anything else, so a
// default-DROP INPUT needs -p ipv6-icmp -j ACCEPT (or the NDP types) for
// neighbours to resolve the stack's addresses. REJECT answers IPv6 with
// ICMPv6 (an IPv4 --reject-with name given as its ICMPv6 counterpart) or
// a reset. MLD reports, written straight to the link, bypass OUTPUT.
// Forwarded datagrams (Options.Forwarding) of both families pass
// prerouting, FORWARD and postrouting the same way.
func (s *Stack) SetFilter(f *filter.Filter) {
	s.filt.Store(f)
	s.kick()
}

// Filter returns the packet filter SetFilter attached, or nil.
func (s *Stack) Filter() *filter.Filter { return s.filt.Load() }

// FilterStats count what the packet filter did to the stack's datagrams.
type FilterStats struct {
	Dropped  uint64 // received or sent datagrams a DROP (or a policy) discarded
	Rejected uint64 // received datagrams a REJECT discarded and answered
	// DropNATElsewhere counts received datagrams that destination NAT
	// sent to an address the stack does not have, on a stack that does
	// not forward (Options.Forwarding).
	DropNATElsewhere uint64
	// OutRejected counts datagrams the stack sent that a REJECT
	// discarded (nothing is sent back to the stack itself).
	OutRejected uint64
}

// conntrackExpiry is how often the timer expires connection tracking
// entries.
const conntrackExpiry = time.Second

// NICName returns the name of NIC id, which the filter's -i and -o match:
// the device's name when its endpoint has one (link.TAP, link.TUN), else
// "nicN" for NIC N; "" for an unknown id.
func (s *Stack) NICName(id NICID) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if n := s.nicLocked(id); n != nil {
		return n.nicName()
	}
	return ""
}

// SetNICName names NIC id for the filter's -i and -o (NICName), as
// ustack serve names its NIC after the device beneath its capture and
// trace decorators. It is an error for an unknown id or an empty name.
func (s *Stack) SetNICName(id NICID, name string) error {
	if err := s.usable(); err != nil {
		return err
	}
	if name == "" {
		return fmt.Errorf("stack: SetNICName: empty name for NIC %d", id)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := s.nicLocked(id)
	if n == nil {
		return fmt.Errorf("%w: %d", ErrUnknownNIC, id)
	}
	n.name.Store(&name)
	return nil
}

// nicName is the NIC's name (NICName).
func (n *nic) nicName() string {
	if p := n.name.Load(); p != nil {
		return *p
	}
	return ""
}

// nicName is the name a NIC with endpoint ep and id gets (NICName).
func nicName(ep link.Endpoint, id NICID) string {
	if nm, ok := ep.(interface{ Name() string }); ok && nm.Name() != "" {
		return nm.Name()
	}
	return "nic" + itoa(int(id))
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for ; i > 0; i /= 10 {
		n--
		b[n] = byte('0' + i%10)
	}
	return string(b[n:])
}

// filterInput runs the filter's prerouting and input hooks on p, a
// datagram (IPv4) or packet (IPv6, its Protocol the upper layer's after
// the extension headers) received on n for this host and reassembled,
// and reports whether it goes on to its transport. A refused datagram is
// counted and, for REJECT, answered.
func (s *Stack) filterInput(n *nic, p *ip.Packet) bool {
	f := s.filt.Load()
	if f == nil {
		return true
	}
	return s.inputHooks(f, n, p)
}

// scratchPacket returns an ip.Packet for the filter to see, from a pool.
// The filter keeps a pointer to the packet it is given (package filter's
// Hook leaks the contents of its Packet, escape analysis being blind to
// which field), so it gets this copy, copied back for what NAT rewrote:
// the caller's packet, on the reader's stack frame, must not escape, and
// the pool keeps the copy from costing an allocation per datagram.
func (s *Stack) scratchPacket(p *ip.Packet) *ip.Packet {
	q, _ := s.fscratch.Get().(*ip.Packet)
	if q == nil {
		q = new(ip.Packet)
	}
	*q = *p
	return q
}

// putScratch copies q, the filter's view of p, back into p and returns
// q to the pool.
func (s *Stack) putScratch(p, q *ip.Packet) {
	*p = *q
	*q = ip.Packet{} // drop the references to the frame
	s.fscratch.Put(q)
}

// inputHooks is filterInput with a filter.
func (s *Stack) inputHooks(f *filter.Filter, n *nic, p *ip.Packet) bool {
	q := s.scratchPacket(p)
	fp := filter.Packet{IP: q, In: n.nicName()}
	now := s.clock.Now()
	v := f.Hook(filter.Prerouting, &fp, now)
	if v.Action == filter.Accept && q.Destination != p.Destination && !n.isLocal(q.Destination) {
		if s.opts.Forwarding {
			s.forwardDNAT(f, n, &fp) // a port forward, on a router
			s.putScratch(p, q)
			return false
		}
		s.putScratch(p, q)
		inc(&s.ctr.get().Filter.DropNATElsewhere)
		return false
	}
	if v.Action == filter.Accept {
		v = f.Hook(filter.Input, &fp, now)
	}
	s.putScratch(p, q)
	switch v.Action {
	case filter.Accept:
		return true
	case filter.Reject:
		inc(&s.ctr.get().Filter.Rejected)
		s.rejectInput(n, p, v.RejectWith)
	default:
		inc(&s.ctr.get().Filter.Dropped)
	}
	return false
}

// isLocal reports whether a received datagram to a is for this host on
// n: one of its addresses, a broadcast address of its subnets, or an IPv6
// group it joined.
func (n *nic) isLocal(a netip.Addr) bool {
	return n.hasAddr(a) || n.isBroadcast(a) || (a.Is6() && a.IsMulticast() && n.joined(a))
}

// rejectInput answers the received datagram p as REJECT --reject-with r
// says: a TCP reset as for a closed port (RFC 9293 §3.10.7.1), or an ICMP
// destination unreachable (RFC 792; for IPv6 an ICMPv6 one, RFC 4443
// §3.1, r given in the packet's family as ip6tables names it), with the
// rules of RFC 1122 §3.2.2 and RFC 4443 §2.4 (e) for errors.
func (s *Stack) rejectInput(n *nic, p *ip.Packet, r filter.RejectWith) {
	r = r.ForFamily(p.Destination.Is6())
	if typ, code, ok := r.ICMP(); ok {
		if p.Destination.Is6() {
			h := ipv6.Header(p.Datagram)
			if c, err := ipv6.ParseExtensions(h); err == nil && typ == ipv6.TypeDestinationUnreachable {
				s.sendICMPv6ErrorAbout(n, h, c, p.Broadcast, typ, code, 0)
			}
			return
		}
		if p.Is4() && ipv4.MayReplyWithError(ipv4.Header(p.Datagram), p.Broadcast) && typ == ipv4.TypeDestinationUnreachable {
			s.sendICMPError(p.Source, p.Datagram, typ, code)
		}
		return
	}
	if r != filter.RejectTCPReset || p.Protocol != ip.ProtocolTCP || p.Broadcast || p.Multicast {
		return
	}
	seg, err := tcpSegment(p)
	if err != nil {
		return
	}
	t := tcp.Tuple{
		Local:  netip.AddrPortFrom(p.Destination, seg.DestinationPort()),
		Remote: netip.AddrPortFrom(p.Source, seg.SourcePort()),
	}
	s.tcp.demux.Reset(t, seg)
}

// filterOutput runs the filter's output and postrouting hooks on p, a
// datagram the stack sends through n (IPv4 or IPv6: NDP's and ICMPv6's
// own messages too, as ip6tables sees them), before its IP header is
// written, and reports whether it goes out.
func (s *Stack) filterOutput(n *nic, p *ip.Packet) bool {
	f := s.filt.Load()
	if f == nil {
		return true
	}
	return s.outputHooks(f, n, p)
}

// outputHooks is filterOutput with a filter, on a scratch copy of p as in
// inputHooks.
func (s *Stack) outputHooks(f *filter.Filter, n *nic, p *ip.Packet) bool {
	q := s.scratchPacket(p)
	fp := filter.Packet{IP: q, Out: n.nicName()}
	now := s.clock.Now()
	v := f.Hook(filter.Output, &fp, now)
	if v.Action == filter.Accept {
		v = f.Hook(filter.Postrouting, &fp, now)
	}
	s.putScratch(p, q)
	switch v.Action {
	case filter.Accept:
		return true
	case filter.Reject:
		inc(&s.ctr.get().Filter.OutRejected)
	default:
		inc(&s.ctr.get().Filter.Dropped)
	}
	return false
}

// expireConntrack expires the filter's connection tracking entries at
// most once per conntrackExpiry and returns when it next wants to run
// (zero without a filter).
func (s *Stack) expireConntrack(now time.Time) time.Time {
	f := s.filt.Load()
	if f == nil {
		return time.Time{}
	}
	if next := s.ctNext.Load(); now.UnixNano() < next {
		return time.Unix(0, next)
	}
	f.Conntrack().Expire(now)
	next := now.Add(conntrackExpiry)
	s.ctNext.Store(next.UnixNano())
	return next
}

// forwardHooks runs the prerouting hook on p, received on n for an
// address the stack does not have, and forwards it by e or, if
// destination NAT made it the stack's own, delivers it through the input
// hook. An IPv4 fragment is reassembled first, as Linux's nf_defrag does
// before connection tracking, and goes on whole (fragmented again if the
// outgoing MTU asks).
func (s *Stack) forwardHooks(f *filter.Filter, n *nic, p *ip.Packet, e fwdRoute) {
	if p.Is4() {
		if h := ipv4.Header(p.Datagram); h.IsFragment() && !n.reassemble(h, p) {
			return
		}
	}
	q := s.scratchPacket(p) // the filter keeps it (inputHooks)
	defer func() { *q = ip.Packet{}; s.fscratch.Put(q) }()
	fp := &filter.Packet{IP: q, In: n.nicName()}
	dst := q.Destination
	if v := f.Hook(filter.Prerouting, fp, s.clock.Now()); v.Action != filter.Accept {
		s.refuseForward(n, q, v)
		return
	}
	if q.Destination != dst {
		if e = s.fwdLookup(q.Destination); e.local || n.isBroadcast(q.Destination) {
			s.forwardInput(f, n, fp)
			return
		}
	}
	s.forwardOut(f, n, fp, e)
}

// forwardDNAT forwards the datagram of fp, received on n for the stack,
// that destination NAT at prerouting sent to an address n does not have
// (inputHooks): a port forward.
func (s *Stack) forwardDNAT(f *filter.Filter, n *nic, fp *filter.Packet) {
	e := s.fwdLookup(fp.IP.Destination)
	if e.local {
		s.forwardInput(f, n, fp) // another NIC's address
		return
	}
	s.forwardOut(f, n, fp, e)
}

// forwardOut is forwardIPv4 or forwardIPv6 for the datagram of fp after
// prerouting.
func (s *Stack) forwardOut(f *filter.Filter, n *nic, fp *filter.Packet, e fwdRoute) {
	p := fp.IP
	if p.Is4() {
		s.forwardIPv4(n, p, e, f, fp)
		return
	}
	c, err := ipv6.ParseExtensions(ipv6.Header(p.Datagram))
	if err != nil {
		c = ipv6.Chain{Proto: p.Protocol, Offset: len(p.Datagram) - len(p.Payload)}
	}
	s.forwardIPv6(n, p, c, e, f, fp)
}

// forwardInput runs the input hook on the datagram of fp, which
// destination NAT at prerouting sent to the stack (REDIRECT, or DNAT to
// another of its addresses), and delivers it.
func (s *Stack) forwardInput(f *filter.Filter, n *nic, fp *filter.Packet) {
	v := f.Hook(filter.Input, fp, s.clock.Now())
	if v.Action != filter.Accept {
		s.refuseForward(n, fp.IP, v)
		return
	}
	if fp.IP.Is4() {
		s.deliverUp(n, fp.IP)
		return
	}
	c, err := ipv6.ParseExtensions(ipv6.Header(fp.IP.Datagram))
	if err != nil {
		return
	}
	s.deliverLocal6(n, fp.IP, c)
}

// forwardChain runs the FORWARD chain (hook point: forward, DESIGN.md) on
// the datagram of fp, routed from in to out, when a filter f is set, and
// reports whether it goes on, with the time the hook ran at (zero without
// a filter, for postrouting's hook to read the clock itself).
func (s *Stack) forwardChain(f *filter.Filter, in, out *nic, fp *filter.Packet) (now time.Time, ok bool) {
	if f == nil {
		return time.Time{}, true
	}
	now = s.clock.Now()
	fp.Out = out.nicName()
	if v := f.Hook(filter.Forward, fp, now); v.Action != filter.Accept {
		s.refuseForward(in, fp.IP, v)
		return now, false
	}
	return now, true
}

// refuseForward counts a datagram on its way through the stack that a
// hook refused with v and, for REJECT, answers it (rejectInput).
func (s *Stack) refuseForward(n *nic, p *ip.Packet, v filter.Verdict) {
	if v.Action == filter.Reject {
		inc(&s.ctr.get().Filter.Rejected)
		s.rejectInput(n, p, v.RejectWith)
		return
	}
	inc(&s.ctr.get().Filter.Dropped)
}

// LocalAddr returns the address of the NIC named name (NICName) of the
// family v6 says, its first: what MASQUERADE rewrites a source to, and
// REDIRECT a destination, as filter.Config.LocalAddr asks:
//
//	f := filter.New(filter.Config{LocalAddr: s.LocalAddr})
//
// ok is false for an unknown name or a NIC without such an address.
func (s *Stack) LocalAddr(name string, v6 bool) (addr netip.Addr, ok bool) {
	if s.usable() != nil {
		return netip.Addr{}, false
	}
	for _, n := range s.nicList() {
		if n.nicName() != name {
			continue
		}
		for _, p := range n.addrList() {
			if p.Addr().Is6() == v6 {
				return p.Addr(), true
			}
		}
		if ll := n.linkLocal(); v6 && ll.IsValid() {
			return ll, true
		}
		return netip.Addr{}, false
	}
	return netip.Addr{}, false
}
