package filter

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ustack/ustack/ip"
)

// Target is what a rule does with a matching packet: a built-in action or
// a jump to a user chain.
type Target uint8

// The targets (iptables(8), iptables-extensions(8)).
const (
	TargetNone       Target = iota // no -j: the rule only counts
	TargetAccept                   // ACCEPT
	TargetDrop                     // DROP
	TargetReject                   // REJECT
	TargetReturn                   // RETURN
	TargetLog                      // LOG (non-terminating)
	TargetJump                     // a user chain
	TargetDNAT                     // DNAT (nat PREROUTING, OUTPUT)
	TargetSNAT                     // SNAT (nat POSTROUTING)
	TargetMasquerade               // MASQUERADE (nat POSTROUTING)
	TargetRedirect                 // REDIRECT (nat PREROUTING, OUTPUT)
)

var targetNames = [...]string{"", "ACCEPT", "DROP", "REJECT", "RETURN", "LOG", "", "DNAT", "SNAT", "MASQUERADE", "REDIRECT"}

// RejectWith is the reply a REJECT target asks the stack to send.
type RejectWith uint8

// The --reject-with types (iptables-extensions(8), REJECT): ICMP
// Destination Unreachable codes (RFC 792; RFC 1812 §5.2.7.1 for the
// "prohibited" ones), their ICMPv6 counterparts (RFC 4443 §3.1), and a TCP
// reset (RFC 9293 §3.10.7.1).
const (
	RejectNone RejectWith = iota
	RejectNetUnreachable
	RejectHostUnreachable
	RejectPortUnreachable
	RejectProtoUnreachable
	RejectNetProhibited
	RejectHostProhibited
	RejectAdminProhibited
	RejectTCPReset
	RejectICMP6NoRoute
	RejectICMP6AdmProhibited
	RejectICMP6AddrUnreachable
	RejectICMP6PortUnreachable
)

var rejectNames = [...]string{"", "icmp-net-unreachable", "icmp-host-unreachable", "icmp-port-unreachable",
	"icmp-proto-unreachable", "icmp-net-prohibited", "icmp-host-prohibited", "icmp-admin-prohibited",
	"tcp-reset", "icmp6-no-route", "icmp6-adm-prohibited", "icmp6-addr-unreachable", "icmp6-port-unreachable"}

// String returns the --reject-with name.
func (r RejectWith) String() string {
	if int(r) < len(rejectNames) {
		return rejectNames[r]
	}
	return "?"
}

// ICMP returns the ICMP (for IPv4) or ICMPv6 Destination Unreachable type
// and code of r; ok is false for a TCP reset or none.
func (r RejectWith) ICMP() (typ, code uint8, ok bool) {
	switch r {
	case RejectNetUnreachable:
		return icmpDestUnreachable, 0, true // RFC 792: net unreachable
	case RejectHostUnreachable:
		return icmpDestUnreachable, 1, true
	case RejectProtoUnreachable:
		return icmpDestUnreachable, 2, true
	case RejectPortUnreachable:
		return icmpDestUnreachable, 3, true
	case RejectNetProhibited:
		return icmpDestUnreachable, 9, true // RFC 1122 §3.2.2.1
	case RejectHostProhibited:
		return icmpDestUnreachable, 10, true
	case RejectAdminProhibited:
		return icmpDestUnreachable, 13, true // RFC 1812 §5.2.7.1
	case RejectICMP6NoRoute:
		return icmp6DestUnreachable, 0, true // RFC 4443 §3.1
	case RejectICMP6AdmProhibited:
		return icmp6DestUnreachable, 1, true
	case RejectICMP6AddrUnreachable:
		return icmp6DestUnreachable, 3, true
	case RejectICMP6PortUnreachable:
		return icmp6DestUnreachable, 4, true
	}
	return 0, 0, false
}

// ForFamily returns r as the REJECT of the family of a packet (v6: IPv6)
// says it: one table serves both families here, where Linux has iptables
// and ip6tables, so an ICMP name meets IPv6 packets and an icmp6 name
// IPv4 ones. Each maps to its counterpart (RFC 4443 §3.1 against RFC 792:
// net unreachable and no route, host and address unreachable, port and
// port unreachable, the prohibited codes and administratively
// prohibited); ICMPv6 has no protocol unreachable, and
// icmp-proto-unreachable becomes port unreachable, ip6tables' default. A
// TCP reset is the same in both.
func (r RejectWith) ForFamily(v6 bool) RejectWith {
	if v6 {
		switch r {
		case RejectNetUnreachable:
			return RejectICMP6NoRoute
		case RejectHostUnreachable:
			return RejectICMP6AddrUnreachable
		case RejectPortUnreachable, RejectProtoUnreachable:
			return RejectICMP6PortUnreachable
		case RejectNetProhibited, RejectHostProhibited, RejectAdminProhibited:
			return RejectICMP6AdmProhibited
		}
		return r
	}
	switch r {
	case RejectICMP6NoRoute:
		return RejectNetUnreachable
	case RejectICMP6AddrUnreachable:
		return RejectHostUnreachable
	case RejectICMP6PortUnreachable:
		return RejectPortUnreachable
	case RejectICMP6AdmProhibited:
		return RejectAdminProhibited
	}
	return r
}

// prefix4 is an IPv4 prefix as a network address and a mask; ok is
// false for none or an IPv6 one.
type prefix4 struct {
	addr, mask uint32
	ok         bool
}

// newPrefix4 returns p as a prefix4.
func newPrefix4(p netip.Prefix) prefix4 {
	if !p.IsValid() || !p.Addr().Is4() {
		return prefix4{}
	}
	a := p.Masked().Addr().As4()
	return prefix4{addr: binary.BigEndian.Uint32(a[:]), mask: ^uint32(0) << (32 - p.Bits()), ok: true}
}

// portRange is an inclusive range of ports.
type portRange struct{ lo, hi uint16 }

func (r portRange) has(p uint16) bool { return p >= r.lo && p <= r.hi }

// Rule is one rule of a chain: its matches, its target and its counters.
// Build one with ParseRule; a Rule is immutable once in a chain, except
// for its counters.
type Rule struct {
	proto    uint8 // 0: all
	protoSet bool
	protoNeg bool
	src, dst netip.Prefix
	// src4 and dst4 are src and dst when IPv4, as an address and a mask,
	// so that matching a packet costs an AND and a compare.
	src4, dst4 prefix4
	srcNeg     bool
	dstNeg     bool
	in, out    string // NIC names; a trailing '+' matches a prefix
	inNeg      bool
	outNeg     bool

	// -m tcp / -m udp
	sport, dport       portRange
	sportSet, dportSet bool
	sportNeg, dportNeg bool
	flagMask, flagComp uint8
	flagsSet, flagsNeg bool
	// -m multiport
	mports   []portRange
	mportDir uint8 // 1 source, 2 destination, 3 either
	mportNeg bool
	// -m icmp --icmp-type
	icmpType, icmpCode int16 // -1: any
	icmpSet, icmpNeg   bool
	// -m conntrack --ctstate / -m state --state
	ctstate    State
	ctSet      bool
	ctNeg      bool
	stateMatch bool // written as -m state
	// -m limit
	limitRate  float64 // per second
	limitBurst int
	limitSpec  string // as written, e.g. "5/sec"
	limiter    *limiter

	target    Target
	chain     string // TargetJump
	jump      *chain // resolved in a snapshot
	reject    RejectWith
	logPrefix string
	logLevel  string
	natAddr   [2]netip.Addr // DNAT/SNAT --to-*: first and last address
	natPorts  portRange
	natPortOK bool
	natSet    bool // --to-* given

	spec string // the rule as -S writes it (without -A CHAIN)
	ctr  *counters
}

// counterStripes is how many cache lines a rule's counters are spread
// over: packets of different flows (most likely on different NIC queues)
// add to different lines, and a read sums them (DESIGN.md: counters per
// queue, summed when read).
const counterStripes = 8

// counters are a rule's (or a policy's) packet and byte counts, shared by
// the copies of the rule in successive snapshots.
type counters struct {
	s [counterStripes]struct {
		pkts, bytes atomic.Uint64
		_           [48]byte // one stripe per cache line
	}
}

// add counts a packet of n bytes on stripe i (a hash of its flow).
func (c *counters) add(n int, i uint) {
	st := &c.s[i%counterStripes]
	st.pkts.Add(1)
	st.bytes.Add(uint64(n))
}

func (c *counters) load() (pkts, bytes uint64) {
	for i := range c.s {
		pkts += c.s[i].pkts.Load()
		bytes += c.s[i].bytes.Load()
	}
	return pkts, bytes
}

// limiter is the token bucket of -m limit, safe for concurrent use.
type limiter struct {
	mu sync.Mutex // guards rl
	rl *ip.RateLimiter
}

func (l *limiter) allow(now time.Time) bool {
	l.mu.Lock()
	ok := l.rl.Allow(now)
	l.mu.Unlock()
	return ok
}

// Counters returns the number of packets and bytes that matched r.
func (r *Rule) Counters() (packets, bytes uint64) {
	return r.ctr.load()
}

// String returns r in the form of iptables -S, without the "-A CHAIN".
func (r *Rule) String() string { return r.spec }

// Target returns r's target; for TargetJump, Chain names the chain.
func (r *Rule) Target() Target { return r.target }

// Chain returns the user chain r jumps to, or "".
func (r *Rule) Chain() string { return r.chain }
