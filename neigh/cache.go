package neigh

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/ustack/ustack/link"
)

// Defaults for the zero fields of Config: the protocol constants of RFC
// 4861 §10 and the bounds arp.Cache had.
const (
	// DefaultBaseReachableTime is REACHABLE_TIME, 30,000 milliseconds (RFC
	// 4861 §10); Linux's base_reachable_time for ARP too.
	DefaultBaseReachableTime = 30 * time.Second
	// DefaultRetransTimer is RETRANS_TIMER, 1,000 milliseconds (§10). RFC
	// 1122 §2.3.2.1 asks the same of ARP: "The recommended maximum rate is
	// 1 per second per destination."
	DefaultRetransTimer = time.Second
	// DefaultDelayFirstProbeTime is DELAY_FIRST_PROBE_TIME, 5 seconds (§10).
	DefaultDelayFirstProbeTime = 5 * time.Second
	// DefaultMaxMulticastSolicit is MAX_MULTICAST_SOLICIT, 3 transmissions
	// (§10).
	DefaultMaxMulticastSolicit = 3
	// DefaultMaxUnicastSolicit is MAX_UNICAST_SOLICIT, 3 transmissions (§10).
	DefaultMaxUnicastSolicit = 3
	// DefaultStaleTime is how long an entry stays STALE without a packet
	// sent to it before it is deleted: Linux's gc_staletime, 60 s.
	DefaultStaleTime = 60 * time.Second
	// DefaultQueueLen is how many packets wait on one INCOMPLETE entry:
	// RFC 4861 §7.2.2 has the sender keep a small queue per neighbour
	// while resolution runs; RFC 1122 §2.3.2.2 asks ARP to save "at least
	// one (the latest)".
	DefaultQueueLen = 16
	// DefaultMaxEntries bounds the table (Linux's gc_thresh3).
	DefaultMaxEntries = 1024
	// DefaultMaxIncomplete bounds the INCOMPLETE entries within it: each
	// holds up to QueueLen packets, and a flood of packets from forged
	// on-link sources makes one for every source it answers.
	DefaultMaxIncomplete = 128
	// RerandomizeInterval is how often ReachableTime is drawn again: RFC
	// 4861 §6.3.4 asks for a new value at least once every few hours.
	RerandomizeInterval = 2 * time.Hour
)

// Config sets the behaviour of a Cache. A zero (or negative) field takes
// its default, except QueueLen, where a negative value holds no packets.
type Config struct {
	// BaseReachableTime is the mean time an entry stays REACHABLE after a
	// confirmation (default 30 s); the Cache draws ReachableTime uniformly
	// in [0.5, 1.5] × BaseReachableTime (RFC 4861 §6.3.2).
	BaseReachableTime time.Duration
	// RetransTimer spaces the solicitations for one address, multicast
	// (INCOMPLETE) or unicast (PROBE) (default 1 s).
	RetransTimer time.Duration
	// DelayFirstProbeTime is how long an entry stays in DELAY before the
	// first unicast probe (default 5 s).
	DelayFirstProbeTime time.Duration
	// MaxMulticastSolicit is how many multicast (for ARP, broadcast)
	// solicitations resolution sends before it gives up, one RetransTimer
	// after the last (default 3).
	MaxMulticastSolicit int
	// MaxUnicastSolicit is how many unicast probes PROBE sends before the
	// entry is deleted (default 3).
	MaxUnicastSolicit int
	// StaleTime is how long an entry stays STALE, no packet sent to it,
	// before it is deleted (default 60 s).
	StaleTime time.Duration
	// QueueLen is how many packets are held per INCOMPLETE entry (default
	// 16; negative: none). On overflow the newest replaces the oldest
	// (RFC 4861 §7.2.2).
	QueueLen int
	// MaxEntries bounds the number of entries (default 1024). When the
	// table is full, a new entry evicts, in this order: the entry not in
	// use that was least recently created or confirmed; for a resolution
	// of ours (Resolve), then the oldest INCOMPLETE entry, then the entry
	// in use least recently used. An entry is in use once a send used its
	// address (Resolve, or the resolution that completed it): a peer can
	// create entries only by soliciting us (Learn), and those are not in
	// use, so a flood of them cannot evict the entries of the neighbours
	// the caller talks to (as Linux's neighbour garbage collection spares
	// referenced entries). A Learn that finds no entry to evict creates
	// nothing (Stats.LearnSkipped).
	MaxEntries int
	// MaxIncomplete bounds the INCOMPLETE entries (default 128, at most
	// MaxEntries); a new one beyond it evicts the oldest.
	MaxIncomplete int
	// Rand returns a uniform random number in [0, n), n > 0; it draws
	// ReachableTime. Nil is math/rand/v2's Int64N. Tests inject their own.
	Rand func(n int64) int64
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.BaseReachableTime, DefaultBaseReachableTime)
	def(&c.RetransTimer, DefaultRetransTimer)
	def(&c.DelayFirstProbeTime, DefaultDelayFirstProbeTime)
	def(&c.StaleTime, DefaultStaleTime)
	if c.MaxMulticastSolicit <= 0 {
		c.MaxMulticastSolicit = DefaultMaxMulticastSolicit
	}
	if c.MaxUnicastSolicit <= 0 {
		c.MaxUnicastSolicit = DefaultMaxUnicastSolicit
	}
	if c.QueueLen == 0 {
		c.QueueLen = DefaultQueueLen
	} else if c.QueueLen < 0 {
		c.QueueLen = 0
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.MaxIncomplete <= 0 {
		c.MaxIncomplete = DefaultMaxIncomplete
	}
	c.MaxIncomplete = min(c.MaxIncomplete, c.MaxEntries)
	if c.Rand == nil {
		c.Rand = rand.Int64N
	}
	return c
}

// State is the reachability state of an entry (RFC 4861 §7.3.2).
type State uint8

// The states of RFC 4861 §7.3.2.
const (
	// StateIncomplete: address resolution is in progress (multicast
	// solicitations go out, packets wait); the link-layer address is not
	// yet known.
	StateIncomplete State = iota + 1
	// StateReachable: the neighbour was recently known to be reachable
	// (within ReachableTime).
	StateReachable
	// StateStale: no longer known to be reachable; nothing is done until
	// a packet is sent to it.
	StateStale
	// StateDelay: a packet was sent while STALE; a probe goes out unless
	// a confirmation arrives within DelayFirstProbeTime.
	StateDelay
	// StateProbe: unicast solicitations go out every RetransTimer.
	StateProbe
)

// String returns the state's name as RFC 4861 and ip-neighbour(8) write it.
func (s State) String() string {
	switch s {
	case StateIncomplete:
		return "INCOMPLETE"
	case StateReachable:
		return "REACHABLE"
	case StateStale:
		return "STALE"
	case StateDelay:
		return "DELAY"
	case StateProbe:
		return "PROBE"
	}
	return "INVALID"
}

// Solicit asks the caller to send a solicitation (an ARP request or a
// Neighbor Solicitation) for Target.
type Solicit struct {
	Target netip.Addr
	// Unicast is set for a PROBE's solicitation, sent to MAC, the cached
	// link-layer address (RFC 4861 §7.3.3; RFC 1122 §2.3.2.1 "unicast
	// poll"). Otherwise the solicitation is for address resolution and goes
	// to the broadcast address (ARP) or Target's solicited-node multicast
	// group (NDP, §7.2.2).
	Unicast bool
	MAC     link.MAC
}

// Failure reports a resolution that Tick gave up after
// MaxMulticastSolicit unanswered solicitations. RFC 4861 §7.2.2: "The
// sender MUST return ICMP destination unreachable indications with code 3
// (Address Unreachable) for each packet queued awaiting address
// resolution." Queued holds those packets, oldest first; the caller owns
// them.
type Failure struct {
	Target netip.Addr
	Queued [][]byte
}

// Flags are the flags of a Neighbor Advertisement (RFC 4861 §4.4). An ARP
// reply to us is Solicited and Override.
type Flags struct {
	Router, Solicited, Override bool
}

// Result tells the caller of an input method what changed.
type Result struct {
	// Released holds, oldest first, the packets that waited for the
	// address, whose link-layer address ReleasedMAC the input just
	// supplied. The caller now owns them and sends them in order.
	Released    [][]byte
	ReleasedMAC link.MAC
	// Created is set when Learn made a new (STALE) entry.
	Created bool
	// Changed is set when a known link-layer address was replaced.
	Changed bool
	// RouterLost is set when the entry's IsRouter flag went from true to
	// false: RFC 4861 §7.2.5 says the caller "MUST remove that router from
	// the Default Router List".
	RouterLost bool
}

// Entry describes one cache entry, for display (see Cache.Entries).
type Entry struct {
	IP    netip.Addr
	MAC   link.MAC // zero while INCOMPLETE
	State State
	// Router is the IsRouter flag (RFC 4861 §7.3.2), set by
	// advertisements.
	Router bool
	// Deadline is when the state's timer fires: the next solicitation or
	// giving up (INCOMPLETE, PROBE), the end of REACHABLE, the first probe
	// (DELAY), deletion (STALE).
	Deadline time.Time
	// Probes is how many solicitations went out in INCOMPLETE or PROBE.
	Probes int
	// Queued is how many packets wait on an INCOMPLETE entry.
	Queued int
	// InUse is set on an entry whose address a send has used since it was
	// created (see Config.MaxEntries).
	InUse bool
}

// Stats counts what a Cache did and what it refused. Counters only grow.
type Stats struct {
	// Solicits counts multicast (broadcast) solicitations the caller was
	// asked to send, UnicastSolicits the probes of PROBE.
	Solicits, UnicastSolicits uint64
	// Resolved counts INCOMPLETE entries that got their address.
	Resolved uint64
	// Learned counts entries created by Learn.
	Learned uint64
	// Changed counts link-layer addresses replaced.
	Changed uint64
	// Confirmed counts entries made REACHABLE again (advertisement or
	// Confirm) from STALE, DELAY or PROBE.
	Confirmed uint64
	// Released counts queued packets handed back on resolution.
	Released uint64
	// QueueDrops counts queued packets dropped because the entry's queue
	// was full (the oldest goes).
	QueueDrops uint64
	// Timeouts counts resolutions given up after MaxMulticastSolicit
	// solicitations, TimeoutDrops the packets that waited on them.
	Timeouts, TimeoutDrops uint64
	// Unreachable counts entries deleted after MaxUnicastSolicit probes
	// went unanswered.
	Unreachable uint64
	// Expired counts STALE entries deleted after StaleTime.
	Expired uint64
	// Evictions counts entries removed to make room (MaxEntries,
	// MaxIncomplete); EvictionsInUse those of them in use;
	// EvictionDrops the queued packets they held.
	Evictions, EvictionsInUse, EvictionDrops uint64
	// LearnSkipped counts Learn calls that would have created an entry but
	// found every entry in use or INCOMPLETE.
	LearnSkipped uint64
	// UnsolicitedIgnored counts advertisements for an address with no
	// entry: RFC 4861 §7.2.5, "the advertisement SHOULD be silently
	// discarded".
	UnsolicitedIgnored uint64
	// Ignored counts advertisements that matched an entry but left it
	// unchanged by rule (§7.2.5: no link-layer address for an INCOMPLETE
	// entry; Override clear with a different address outside REACHABLE).
	Ignored uint64
}

type entry struct {
	ip     netip.Addr
	state  State
	mac    link.MAC
	router bool
	// inUse: a send used the entry since it was created.
	inUse bool
	// list is the eviction list the entry is on (idle, active or
	// pending), prev and next its neighbours there.
	list       *entryList
	prev, next *entry
	// deadline: when the state's timer fires (see Entry.Deadline).
	deadline time.Time
	// probes: solicitations sent in INCOMPLETE or PROBE.
	probes int
	queue  [][]byte
}

// Cache is a neighbour cache running the NUD state machine of RFC 4861
// Appendix C on every entry.
//
// A Cache is not safe for concurrent use: the caller serialises calls (one
// lock per NIC). It never reads the clock; every method takes now, and
// times must not go backwards.
type Cache struct {
	cfg     Config
	entries map[netip.Addr]*entry
	stats   Stats
	// The eviction lists, oldest first: entries with an address not in
	// use (by creation or confirmation), entries in use (by last use),
	// INCOMPLETE entries (by creation). Every entry is on exactly one.
	idle, active, pending entryList
	// gen: see Generation.
	gen uint64
	// reachableTime is the ReachableTime of RFC 4861 §6.3.2, drawn again
	// at rerandomize.
	reachableTime time.Duration
	rerandomize   time.Time
	// due and failed are Tick's scratch lists, kept to spare allocations.
	due    []Solicit
	failed []Failure
}

// New returns an empty cache; zero fields of cfg take their defaults.
func New(cfg Config) *Cache {
	c := &Cache{cfg: cfg.withDefaults(), entries: make(map[netip.Addr]*entry)}
	c.pickReachableTime()
	return c
}

// pickReachableTime draws ReachableTime uniformly between
// MIN_RANDOM_FACTOR (0.5) and MAX_RANDOM_FACTOR (1.5) times
// BaseReachableTime (RFC 4861 §6.3.2).
func (c *Cache) pickReachableTime() {
	b := c.cfg.BaseReachableTime
	c.reachableTime = b/2 + time.Duration(c.cfg.Rand(int64(b)+1))
}

// Config returns the configuration in force, defaults filled in.
func (c *Cache) Config() Config { return c.cfg }

// ReachableTime returns the ReachableTime in force (RFC 4861 §6.3.2).
func (c *Cache) ReachableTime() time.Duration { return c.reachableTime }

// SetBaseReachableTime sets BaseReachableTime, as a Router Advertisement's
// Reachable Time field does (RFC 4861 §6.3.4), and draws ReachableTime
// again. Entries already REACHABLE keep their deadline. A d that is not
// positive is an error.
func (c *Cache) SetBaseReachableTime(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("neigh: BaseReachableTime %v is not positive", d)
	}
	if d != c.cfg.BaseReachableTime {
		c.cfg.BaseReachableTime = d
		c.pickReachableTime()
	}
	return nil
}

// SetRetransTimer sets RetransTimer, as a Router Advertisement's Retrans
// Timer field does (RFC 4861 §6.3.4), for the solicitations sent from
// now on. A d that is not positive is an error.
func (c *Cache) SetRetransTimer(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("neigh: RetransTimer %v is not positive", d)
	}
	c.cfg.RetransTimer = d
	return nil
}

// Len returns the number of entries.
func (c *Cache) Len() int { return len(c.entries) }

// State returns the state of ip's entry, and false if there is none.
func (c *Cache) State(ip netip.Addr) (State, bool) {
	e, ok := c.entries[ip]
	if !ok {
		return 0, false
	}
	return e.state, true
}

// Lookup returns the link-layer address of ip if an entry has one (any
// state but INCOMPLETE). It does not allocate and changes nothing: a send
// uses Resolve, which drives NUD.
func (c *Cache) Lookup(ip netip.Addr) (link.MAC, bool) {
	e, ok := c.entries[ip]
	if !ok || e.state == StateIncomplete {
		return link.MAC{}, false
	}
	return e.mac, true
}

// Resolve is Appendix C's "Packet to send" for ip, at now. If the entry
// has a link-layer address it returns it (ok true), and a STALE entry
// moves to DELAY (RFC 4861 §7.3.3: the first packet sent to a STALE
// neighbour starts the DELAY_FIRST_PROBE_TIME timer). Otherwise it holds a copy of pkt (an empty pkt holds nothing)
// on ip's INCOMPLETE entry, creating the entry if needed, and reports
// solicit when the caller must send a multicast (ARP: broadcast)
// solicitation for ip now: on creation, and when the RetransTimer since
// the last one has passed and fewer than MaxMulticastSolicit went out (a
// retransmission Tick would otherwise send).
//
// The queue holds QueueLen packets and drops the oldest beyond that (RFC
// 4861 §7.2.2, RFC 1122 §2.3.2.2). A hit does not allocate.
func (c *Cache) Resolve(ip netip.Addr, pkt []byte, now time.Time) (mac link.MAC, ok bool, solicit bool) {
	e, found := c.entries[ip]
	if found && e.state != StateIncomplete {
		if e.state == StateStale {
			e.state, e.deadline = StateDelay, now.Add(c.cfg.DelayFirstProbeTime)
		}
		if !e.inUse || c.active.tail != e {
			e.inUse = true
			moveTo(&c.active, e)
		}
		return e.mac, true, false
	}
	if !found {
		e = c.insert(ip, true)
		e.state = StateIncomplete
		c.pending.pushBack(e)
		c.boundPending(e)
	}
	if len(pkt) > 0 && c.cfg.QueueLen > 0 {
		if len(e.queue) >= c.cfg.QueueLen {
			n := len(e.queue) - c.cfg.QueueLen + 1
			c.stats.QueueDrops += uint64(n)
			clear(e.queue[:n])
			e.queue = append(e.queue[:0], e.queue[n:]...)
		}
		e.queue = append(e.queue, append([]byte(nil), pkt...))
	}
	if (e.probes == 0 || !now.Before(e.deadline)) && e.probes < c.cfg.MaxMulticastSolicit {
		c.solicited(e, now)
		c.stats.Solicits++
		return link.MAC{}, false, true
	}
	return link.MAC{}, false, false
}

// solicited records a solicitation for e at now and starts the retransmit
// timer.
func (c *Cache) solicited(e *entry, now time.Time) {
	e.probes++
	e.deadline = now.Add(c.cfg.RetransTimer)
}

// Confirm is upper-layer reachability confirmation for ip at now (RFC 4861
// §7.3.1: an upper layer that sees forward progress, such as a TCP ACK
// for new data, tells the cache): an entry with an address becomes REACHABLE for
// ReachableTime (Appendix C). It reports whether ip had such an entry. It
// does not allocate; TCP calls it when an ACK advances, as Linux's
// dst_confirm.
func (c *Cache) Confirm(ip netip.Addr, now time.Time) bool {
	e, ok := c.entries[ip]
	if !ok || e.state == StateIncomplete {
		return false
	}
	c.reachable(e, now)
	return true
}

// reachable makes e, which has an address, REACHABLE from now.
func (c *Cache) reachable(e *entry, now time.Time) {
	if e.state != StateReachable {
		c.stats.Confirmed++
	}
	e.state, e.deadline, e.probes = StateReachable, now.Add(c.reachableTime), 0
	if !e.inUse {
		moveTo(&c.idle, e) // the idle list is in confirmation order
	}
}

// stale makes e STALE from t. A STALE entry in use moves the generation:
// a caller that keeps the address (a cached route) then asks Resolve
// again at its next send, which starts the DELAY and PROBE that check the
// neighbour (Appendix C, "STALE: Sending packet").
func (c *Cache) stale(e *entry, t time.Time) {
	if e.inUse && e.state != StateIncomplete {
		c.gen++
	}
	e.state, e.deadline, e.probes = StateStale, t.Add(c.cfg.StaleTime), 0
}

// setMAC records mac on e, which has an address, and reports whether it
// differed.
func (c *Cache) setMAC(e *entry, mac link.MAC) bool {
	if e.mac == mac {
		return false
	}
	e.mac = mac
	c.gen++
	c.stats.Changed++
	return true
}

// resolved gives INCOMPLETE e the address mac and hands back its queue.
func (c *Cache) resolved(e *entry, mac link.MAC, res *Result) {
	c.stats.Resolved++
	if len(e.queue) > 0 {
		res.Released, res.ReleasedMAC = e.queue, mac
		c.stats.Released += uint64(len(e.queue))
	}
	e.queue, e.mac, e.probes = nil, mac, 0
	// A resolution of ours completes: its packets are sent now, so the
	// entry is in use.
	e.inUse = true
	moveTo(&c.active, e)
}

// Advertisement processes a Neighbor Advertisement for ip (RFC 4861
// §7.2.5) or an ARP reply from it, with its flags and its link-layer
// address (zero: no Target Link-Layer Address option), received at now:
//
//   - No entry: "the advertisement SHOULD be silently discarded"; nothing
//     is created (Stats.UnsolicitedIgnored).
//   - INCOMPLETE: without an address it is discarded; with one, the
//     address is recorded, the queued packets released, and the entry
//     becomes REACHABLE if Solicited, STALE otherwise.
//   - Otherwise, Override clear and a different address: a REACHABLE entry
//     becomes STALE and changes in no other way; another state ignores it.
//   - Otherwise (Override set, the same address, or none): the address is
//     recorded if supplied and different; the entry becomes REACHABLE if
//     Solicited, STALE if unsolicited and the address changed, and keeps
//     its state otherwise; IsRouter takes the Router flag.
func (c *Cache) Advertisement(ip netip.Addr, mac link.MAC, f Flags, now time.Time) (res Result) {
	e, ok := c.entries[ip]
	if !ok {
		c.stats.UnsolicitedIgnored++
		return res
	}
	if e.state == StateIncomplete {
		if mac.IsZero() {
			c.stats.Ignored++
			return res
		}
		c.resolved(e, mac, &res)
		e.router = f.Router
		if f.Solicited {
			c.reachable(e, now)
		} else {
			c.stale(e, now)
		}
		return res
	}
	differs := !mac.IsZero() && mac != e.mac
	if !f.Override && differs {
		if e.state == StateReachable {
			c.stale(e, now)
		} else {
			c.stats.Ignored++
		}
		return res
	}
	if differs {
		res.Changed = c.setMAC(e, mac)
	}
	switch {
	case f.Solicited:
		c.reachable(e, now)
	case res.Changed:
		c.stale(e, now)
	}
	res.RouterLost = e.router && !f.Router
	e.router = f.Router
	return res
}

// Learn processes the link-layer address mac of ip seen at now in a
// Neighbor Solicitation, Router Solicitation or Redirect (RFC 4861
// §7.2.3, §6.2.6, §8.3) or an ARP request (Linux's neigh_event_ns). None
// is a confirmation of reachability (it shows ip can send to us, not
// that it hears us), so: with no entry, create allows a STALE entry to be
// created ("If an entry does not already exist, the node SHOULD create a
// new one and set its reachability state to STALE"); an INCOMPLETE entry
// gets the address, releases its queue and becomes STALE; an entry with a
// different address takes mac and becomes STALE; one with the same
// address is unchanged. A zero mac is ignored.
func (c *Cache) Learn(ip netip.Addr, mac link.MAC, create bool, now time.Time) (res Result) {
	if mac.IsZero() {
		return res
	}
	e, ok := c.entries[ip]
	switch {
	case !ok:
		if !create {
			return res
		}
		if e = c.insert(ip, false); e == nil {
			c.stats.LearnSkipped++
			return res
		}
		e.mac = mac
		c.idle.pushBack(e)
		c.stale(e, now)
		c.stats.Learned++
		res.Created = true
	case e.state == StateIncomplete:
		c.resolved(e, mac, &res)
		c.stale(e, now)
	default:
		if res.Changed = c.setMAC(e, mac); res.Changed {
			c.stale(e, now)
		}
	}
	return res
}

// Tick does the work due at now, each entry's timer in Appendix C:
//
//   - INCOMPLETE: another multicast solicitation while fewer than
//     MaxMulticastSolicit went out, else the entry is deleted and its
//     queue handed to failed (Stats.Timeouts, TimeoutDrops).
//   - REACHABLE: past ReachableTime since the last confirmation, STALE.
//   - STALE: past StaleTime, deleted (Stats.Expired).
//   - DELAY: past DelayFirstProbeTime, PROBE, with a unicast solicitation.
//   - PROBE: another unicast solicitation while fewer than
//     MaxUnicastSolicit went out, else the entry is deleted
//     (Stats.Unreachable).
//
// Timers that fell due while nobody called Tick take effect at their own
// time (an entry long past REACHABLE may be deleted as STALE in the same
// Tick); solicitations go out at now. After Tick, no deadline is at or
// before now. solicit is called for each solicitation in increasing
// address order, after the table is updated, so it may call back into the
// cache; then failed is called for each resolution given up, with its
// queued packets, in the same order. A nil callback only counts.
func (c *Cache) Tick(now time.Time, solicit func(Solicit), failed func(Failure)) {
	if c.rerandomize.IsZero() {
		c.rerandomize = now.Add(RerandomizeInterval)
	} else if !now.Before(c.rerandomize) {
		c.pickReachableTime()
		c.rerandomize = now.Add(RerandomizeInterval)
	}
	due, fails := c.due[:0], c.failed[:0]
	for ip, e := range c.entries {
		for !now.Before(e.deadline) {
			switch e.state {
			case StateIncomplete:
				if e.probes >= c.cfg.MaxMulticastSolicit {
					c.stats.Timeouts++
					c.stats.TimeoutDrops += uint64(len(e.queue))
					if failed != nil {
						fails = append(fails, Failure{Target: ip, Queued: e.queue})
					}
					c.delete(e)
					break
				}
				c.solicited(e, now)
				c.stats.Solicits++
				due = append(due, Solicit{Target: ip})
			case StateReachable:
				c.stale(e, e.deadline)
			case StateStale:
				c.stats.Expired++
				c.delete(e)
			case StateDelay, StateProbe:
				if e.state == StateProbe && e.probes >= c.cfg.MaxUnicastSolicit {
					c.stats.Unreachable++
					c.delete(e)
					break
				}
				e.state = StateProbe
				c.solicited(e, now)
				c.stats.UnicastSolicits++
				due = append(due, Solicit{Target: ip, Unicast: true, MAC: e.mac})
			}
			if e.list == nil {
				break // deleted
			}
		}
	}
	slices.SortFunc(due, func(a, b Solicit) int { return a.Target.Compare(b.Target) })
	slices.SortFunc(fails, func(a, b Failure) int { return a.Target.Compare(b.Target) })
	c.due, c.failed = due, fails
	if solicit != nil {
		for _, s := range due {
			solicit(s)
		}
	}
	for i, f := range fails {
		failed(f)
		fails[i] = Failure{} // the caller owns the packets now
	}
}

// NextDeadline returns the earliest time at which Tick has work, or the
// zero time when the table is empty. It scans the table.
func (c *Cache) NextDeadline() time.Time {
	var next time.Time
	for _, e := range c.entries {
		if next.IsZero() || e.deadline.Before(next) {
			next = e.deadline
		}
	}
	return next
}

// Entries returns the entries in increasing address order, for display
// like ip-neighbour(8).
func (c *Cache) Entries() []Entry {
	out := make([]Entry, 0, len(c.entries))
	for ip, e := range c.entries {
		out = append(out, Entry{
			IP: ip, MAC: e.mac, State: e.state, Router: e.router, Deadline: e.deadline,
			Probes: e.probes, Queued: len(e.queue), InUse: e.inUse,
		})
	}
	slices.SortFunc(out, func(a, b Entry) int { return a.IP.Compare(b.IP) })
	return out
}

// Generation returns a number that changes whenever a link-layer address
// that Lookup or Resolve returned may have stopped being the right one or
// needs checking: an entry's address changed, an entry with an address
// was deleted (STALE expiry, failed probes, eviction), or an entry in use
// became STALE (so that the caller's next send goes through Resolve, which
// starts NUD's probing). A caller that keeps an address (a connection's
// cached route) keeps the generation with it and resolves again once it
// differs. New entries and resolutions do not change it.
func (c *Cache) Generation() uint64 { return c.gen }

// Stats returns a copy of the counters.
func (c *Cache) Stats() Stats { return c.stats }

// entryList is a doubly linked list of entries, oldest at head.
type entryList struct {
	head, tail *entry
	n          int
}

// pushBack appends e, which is on no list.
func (l *entryList) pushBack(e *entry) {
	e.list, e.prev, e.next = l, l.tail, nil
	if l.tail != nil {
		l.tail.next = e
	} else {
		l.head = e
	}
	l.tail = e
	l.n++
}

// unlink takes e off its list, if it is on one.
func unlink(e *entry) {
	l := e.list
	if l == nil {
		return
	}
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.list, e.prev, e.next = nil, nil, nil
	l.n--
}

// moveTo puts e at the back of l.
func moveTo(l *entryList, e *entry) {
	if e.list == l && l.tail == e {
		return
	}
	unlink(e)
	l.pushBack(e)
}

// boundPending evicts the oldest INCOMPLETE entries other than keep while
// there are more than MaxIncomplete.
func (c *Cache) boundPending(keep *entry) {
	for c.pending.n > c.cfg.MaxIncomplete {
		v := c.pending.head
		if v == keep {
			v = v.next
		}
		c.remove(v)
	}
}

// insert adds a zero entry for ip (on no list), evicting
// one first if the table is full, in the order Config.MaxEntries gives;
// ours says the entry is for a resolution of ours, which may evict
// INCOMPLETE entries and entries in use. It returns nil when the table is
// full and nothing may be evicted.
func (c *Cache) insert(ip netip.Addr, ours bool) *entry {
	if len(c.entries) >= c.cfg.MaxEntries {
		switch {
		case c.idle.head != nil:
			c.remove(c.idle.head)
		case !ours:
			return nil
		case c.pending.head != nil:
			c.remove(c.pending.head)
		case c.active.head != nil:
			c.remove(c.active.head)
		}
	}
	e := &entry{ip: ip}
	c.entries[ip] = e
	return e
}

// remove evicts e, counting it and its queued packets.
func (c *Cache) remove(e *entry) {
	c.stats.Evictions++
	if e.inUse && e.state != StateIncomplete {
		c.stats.EvictionsInUse++
	}
	c.stats.EvictionDrops += uint64(len(e.queue))
	c.delete(e)
}

// delete forgets e.
func (c *Cache) delete(e *entry) {
	if e.state != StateIncomplete {
		c.gen++
	}
	unlink(e)
	delete(c.entries, e.ip)
}
