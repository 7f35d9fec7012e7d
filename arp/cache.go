package arp

import (
	"net/netip"
	"slices"
	"time"

	"github.com/ustack/ustack/link"
)

// Defaults for the zero fields of Config.
const (
	// DefaultReachableTime is how long an entry stays usable after its last
	// confirmation. RFC 1122 §2.3.2.1: "For proxy ARP situations, the
	// timeout needs to be on the order of a minute."
	DefaultReachableTime = 60 * time.Second
	// DefaultRetryInterval spaces requests for one address. RFC 1122
	// §2.3.2.1: "The recommended maximum rate is 1 per second per
	// destination."
	DefaultRetryInterval = time.Second
	// DefaultMaxRequests is how many requests go out for an address before
	// resolution gives up.
	DefaultMaxRequests = 3
	// DefaultQueueLen is how many packets wait on one unresolved address.
	// RFC 1122 §2.3.2.2: the link layer "SHOULD save (rather than discard)
	// at least one (the latest) packet" of those sent to an unresolved
	// address.
	DefaultQueueLen = 16
	// DefaultMaxEntries bounds the table, complete and incomplete entries
	// together (Linux's gc_thresh3).
	DefaultMaxEntries = 1024
	// DefaultMaxIncomplete bounds the incomplete entries within it: each
	// holds up to QueueLen packets, and a flood of packets from forged
	// on-link sources makes one for every source it answers.
	DefaultMaxIncomplete = 128
)

// Config sets the behaviour of a Cache. A zero (or negative) field takes
// its default, except QueueLen, where a negative value holds no packets.
type Config struct {
	// ReachableTime is the lifetime of an entry after its last confirmation
	// by an ARP packet from its owner (default 60 s). RFC 1122 §2.3.2.1:
	// "If this mechanism involves a timeout, it SHOULD be possible to
	// configure the timeout value."
	ReachableTime time.Duration
	// RetryInterval is the least time between two requests for one address
	// (default 1 s), RFC 1122 §2.3.2.1's flood prevention.
	RetryInterval time.Duration
	// MaxRequests is how many requests are sent before giving up (default
	// 3). Resolution gives up one RetryInterval after the last request.
	MaxRequests int
	// QueueLen is how many packets are held per incomplete entry (default
	// 16; negative: none). On overflow the oldest is dropped.
	QueueLen int
	// MaxEntries bounds the number of entries (default 1024). When the
	// table is full, a new entry evicts, in this order: the entry not in
	// use that was least recently created or confirmed; for a resolution
	// of ours (Resolve), then the oldest incomplete entry, then the entry
	// in use least recently used. An entry is in use once a send used
	// its address (Resolve, or the resolution that completed it): an
	// attacker can create entries only by sending requests to us, and
	// those are not in use, so a flood of them cannot evict the entries
	// of the neighbours the stack talks to (as Linux's neighbour garbage
	// collection spares entries that routes and sockets hold). A request
	// that finds no entry to evict is answered but its sender is not
	// learned (Stats.LearnSkipped).
	MaxEntries int
	// MaxIncomplete bounds the incomplete entries (default 128, at most
	// MaxEntries); a new one beyond it evicts the oldest.
	MaxIncomplete int
}

func (c Config) withDefaults() Config {
	if c.ReachableTime <= 0 {
		c.ReachableTime = DefaultReachableTime
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.MaxRequests <= 0 {
		c.MaxRequests = DefaultMaxRequests
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
	return c
}

// State is the resolution state of a cache entry.
type State uint8

const (
	// StateIncomplete: requests are going out and packets wait for the
	// answer.
	StateIncomplete State = iota + 1
	// StateComplete: the MAC address is known and usable until the entry
	// expires.
	StateComplete
)

// String returns "INCOMPLETE" or "REACHABLE", the names ip-neighbour(8)
// shows for these states.
func (s State) String() string {
	switch s {
	case StateIncomplete:
		return "INCOMPLETE"
	case StateComplete:
		return "REACHABLE"
	}
	return "INVALID"
}

// Entry describes one cache entry, for display (see Cache.Entries).
type Entry struct {
	IP    netip.Addr
	MAC   link.MAC // zero while incomplete
	State State
	// Expires is when a complete entry stops being used (zero while
	// incomplete).
	Expires time.Time
	// Requests is how many requests went out for an incomplete entry.
	Requests int
	// Queued is how many packets wait on an incomplete entry.
	Queued int
	// InUse is set on a complete entry whose address a send has used
	// since it completed (see Config.MaxEntries).
	InUse bool
}

// Stats counts what a Cache did and what it refused. Counters only grow.
type Stats struct {
	// RequestsNeeded counts requests the cache asked the caller to send
	// (Resolve's sendRequest and Tick's request callback).
	RequestsNeeded uint64
	// RepliesNeeded counts requests for a local address that the caller
	// was asked to answer (InputResult.Reply).
	RepliesNeeded uint64
	// Received counts packets given to Input.
	Received uint64
	// Resolved counts incomplete entries completed by an ARP packet.
	Resolved uint64
	// Learned counts complete entries created by a request to us
	// (RFC 826's "add the triplet").
	Learned uint64
	// Refreshed counts complete entries confirmed again by an ARP packet.
	Refreshed uint64
	// Changed counts complete entries whose MAC address an ARP packet
	// replaced (RFC 826: "the new hardware address supersedes the old").
	Changed uint64
	// Released counts queued packets handed back when their entry
	// completed.
	Released uint64
	// QueueDrops counts queued packets dropped because the entry's queue
	// was full (the oldest goes).
	QueueDrops uint64
	// Timeouts counts resolutions given up after MaxRequests requests.
	Timeouts uint64
	// TimeoutDrops counts queued packets dropped when resolution gave up.
	TimeoutDrops uint64
	// Expired counts complete entries removed after ReachableTime.
	Expired uint64
	// Evictions counts entries removed to make room (MaxEntries,
	// MaxIncomplete).
	Evictions uint64
	// EvictionsInUse counts, among Evictions, entries in use: only a table
	// full of entries in use and incomplete ones comes to these.
	EvictionsInUse uint64
	// LearnSkipped counts requests to us whose sender was not entered
	// because every entry was in use or incomplete.
	LearnSkipped uint64
	// EvictionDrops counts queued packets dropped with an evicted entry.
	EvictionDrops uint64
	// UnsolicitedIgnored counts replies that matched no entry and so
	// created none.
	UnsolicitedIgnored uint64
	// Probes counts ARP Probes seen (sender IP 0.0.0.0, RFC 5227 §2.1.1):
	// never entered in the table.
	Probes uint64
	// Conflicts counts packets whose sender protocol address is one of
	// ours (RFC 5227 §2.4): never entered in the table.
	Conflicts uint64
	// InvalidSender counts packets ignored because the sender hardware
	// address is zero, multicast or broadcast, or the sender protocol
	// address is multicast or the limited broadcast.
	InvalidSender uint64
}

// InputResult tells the caller of Cache.Input what to send.
type InputResult struct {
	// Reply is set when the packet was a request for a local address: the
	// caller sends the reply built by PutReply(b, p, ourMAC) to
	// p.SenderHardwareAddr().
	Reply bool
	// Released holds, oldest first, the packets that waited for
	// ReleasedTo, whose hardware address ReleasedMAC the packet just
	// supplied. The caller now owns them and sends them in order.
	Released    [][]byte
	ReleasedTo  netip.Addr
	ReleasedMAC link.MAC
	// Conflict is set when the sender protocol address is local: another
	// host claims one of our addresses (RFC 5227 §2.4). The cache ignored
	// the packet; defending the address is the caller's business.
	Conflict bool
}

type entry struct {
	ip    netip.Addr
	state State
	mac   link.MAC
	// inUse: a send used the entry since it completed; lastUse: when.
	inUse   bool
	lastUse time.Time
	// list is the eviction list the entry is on (idle, active or
	// pending), prev and next its neighbours there.
	list       *entryList
	prev, next *entry
	// expires: end of a complete entry's lifetime.
	expires time.Time
	// updated: when the entry was created or last confirmed; the eviction
	// order.
	updated time.Time
	// lastRequest and requests: the incomplete entry's last request and
	// how many went out.
	lastRequest time.Time
	requests    int
	queue       [][]byte
}

// Cache is an ARP neighbour cache (RFC 826's "translation table") with the
// pending-packet queue of RFC 1122 §2.3.2.2.
//
// An entry is incomplete while requests go out and packets wait, complete
// once an ARP packet from its owner gives its MAC address. A complete entry
// lives ReachableTime after its last confirmation (RFC 1122 §2.3.2.1,
// mechanism 1, "Timeout": restarted when the entry is refreshed by an ARP
// packet from its owner, not by use). An expired entry behaves as absent:
// Lookup misses it, Resolve starts a fresh resolution over it (forgetting
// the old MAC), and Tick deletes it. Only an ARP packet from the owner
// arriving before Tick runs revives it, as RFC 826's merge would.
//
// A Cache is not safe for concurrent use: the stack serialises calls (one
// lock per NIC). It never reads the clock; every method takes now, and
// times must not go backwards.
type Cache struct {
	cfg     Config
	entries map[netip.Addr]*entry
	stats   Stats
	// The eviction lists, oldest first: complete entries not in use (by
	// creation or confirmation), complete entries in use (by last use),
	// incomplete entries (by creation). Every entry is on exactly one.
	idle, active, pending entryList
	// gen counts the changes that make a MAC address handed out before
	// wrong (see Generation).
	gen uint64
}

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

// complete makes e a complete entry for mac, confirmed at now, and keeps
// its place in the eviction order: in use entries stay in use.
func (c *Cache) complete(e *entry, mac link.MAC, now time.Time) {
	if e.state == StateComplete && e.mac != mac {
		c.gen++ // RFC 826's merge: the sender's hardware address changed
	}
	e.state, e.mac = StateComplete, mac
	e.expires, e.updated = now.Add(c.cfg.ReachableTime), now
	e.lastRequest, e.requests, e.queue = time.Time{}, 0, nil
	if e.inUse {
		if e.list != &c.active {
			moveTo(&c.active, e)
		}
	} else {
		moveTo(&c.idle, e) // the idle list is in confirmation order
	}
}

// restart makes e a fresh incomplete entry created at now (an expired
// entry being resolved again).
func (c *Cache) restart(e *entry, now time.Time) {
	if e.state == StateComplete {
		c.gen++
	}
	e.state, e.mac, e.inUse = StateIncomplete, link.MAC{}, false
	e.expires, e.updated, e.lastUse = time.Time{}, now, time.Time{}
	e.lastRequest, e.requests, e.queue = time.Time{}, 0, nil
	moveTo(&c.pending, e)
	c.boundPending(e)
}

// use records that a send used complete entry e at now.
func (c *Cache) use(e *entry, now time.Time) {
	e.inUse, e.lastUse = true, now
	moveTo(&c.active, e)
}

// boundPending evicts the oldest incomplete entries other than keep while
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

// remove evicts e, counting it and its queued packets.
func (c *Cache) remove(e *entry) {
	c.stats.Evictions++
	if e.state == StateComplete && e.inUse {
		c.stats.EvictionsInUse++
	}
	c.stats.EvictionDrops += uint64(len(e.queue))
	c.delete(e)
}

// delete forgets e.
func (c *Cache) delete(e *entry) {
	if e.state == StateComplete {
		c.gen++
	}
	unlink(e)
	delete(c.entries, e.ip)
}

// NewCache returns an empty cache; zero fields of cfg take their defaults.
func NewCache(cfg Config) *Cache {
	return &Cache{cfg: cfg.withDefaults(), entries: make(map[netip.Addr]*entry)}
}

// Config returns the configuration in force, defaults filled in.
func (c *Cache) Config() Config { return c.cfg }

// Len returns the number of entries, complete and incomplete.
func (c *Cache) Len() int { return len(c.entries) }

// Lookup returns the MAC address of ip if a complete, unexpired entry has
// it. It does not allocate, and does not refresh the entry.
func (c *Cache) Lookup(ip netip.Addr, now time.Time) (link.MAC, bool) {
	e, ok := c.entries[ip]
	if !ok || e.state != StateComplete || !now.Before(e.expires) {
		return link.MAC{}, false
	}
	return e.mac, true
}

// Resolve returns ip's MAC address if a complete, unexpired entry has it
// (ok true). Otherwise it holds a copy of pkt (an empty pkt holds nothing)
// on ip's incomplete entry, creating the entry if needed, and reports
// sendRequest when the caller must broadcast a request for ip now: on the
// first call, and when a retry is due (no request for ip in the last
// RetryInterval, RFC 1122 §2.3.2.1) and fewer than MaxRequests went out.
// A request reported here counts toward MaxRequests.
//
// RFC 1122 §2.3.2.2: packets to an unresolved address are saved and sent
// once it is resolved (see InputResult.Released); the queue holds QueueLen
// packets and drops the oldest beyond that.
func (c *Cache) Resolve(ip netip.Addr, pkt []byte, now time.Time) (mac link.MAC, ok bool, sendRequest bool) {
	e, found := c.entries[ip]
	if found && e.state == StateComplete {
		if now.Before(e.expires) {
			if !e.inUse || c.active.tail != e {
				c.use(e, now)
			} else {
				e.lastUse = now
			}
			return e.mac, true, false
		}
		// Expired: resolve afresh over the old entry.
		c.restart(e, now)
	}
	if !found {
		e = c.insert(ip, now, true)
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
	if c.requestDue(e, now) && e.requests < c.cfg.MaxRequests {
		c.sent(e, now)
		return link.MAC{}, false, true
	}
	return link.MAC{}, false, false
}

// requestDue reports whether incomplete e may send a request at now.
func (c *Cache) requestDue(e *entry, now time.Time) bool {
	return e.requests == 0 || !now.Before(e.lastRequest.Add(c.cfg.RetryInterval))
}

// sent records a request for incomplete e at now.
func (c *Cache) sent(e *entry, now time.Time) {
	e.requests++
	e.lastRequest = now
	c.stats.RequestsNeeded++
}

// insert adds a zero entry for ip (created at now, on no list), evicting
// one first if the table is full, in the order Config.MaxEntries gives;
// ours says the entry is for a resolution of ours, which may evict
// incomplete entries and entries in use. It returns nil when the table
// is full and nothing may be evicted.
func (c *Cache) insert(ip netip.Addr, now time.Time, ours bool) *entry {
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
	e := &entry{ip: ip, updated: now}
	c.entries[ip] = e
	return e
}

// Input processes an ARP packet p (from ParsePacket) received at now;
// isLocal (not nil) reports whether an address is one of this interface's.
// It follows
// RFC 826, Packet Reception:
//
//	Merge_flag := false
//	If the pair <protocol type, sender protocol address> is already in my
//	translation table, update the sender hardware address field of the
//	entry with the new information in the packet and set Merge_flag to true.
//	?Am I the target protocol address?
//	Yes:
//	  If Merge_flag is false, add the triplet <protocol type, sender
//	  protocol address, sender hardware address> to the translation table.
//	  ?Is the opcode ares_op$REQUEST? (NOW look at the opcode!!)
//	  Yes: [reply]
//
// with these restrictions:
//   - A reply that merges with no entry never adds one: only a request
//     to us does, as RFC 826 says, or our own pending resolution. An
//     unsolicited reply could otherwise fill the table with forged entries.
//   - An ARP Probe (sender IP 0.0.0.0, RFC 5227 §2.1.1, sent "to avoid
//     polluting ARP caches") touches no entry, but a probe for a local
//     address is answered, which tells the prober the address is taken.
//   - A gratuitous ARP / ARP Announcement (sender IP == target IP, RFC 5227
//     §2.3) only refreshes an existing entry: its target is not local.
//   - A packet whose sender IP is local (someone claims our address, RFC
//     5227 §2.4) touches nothing and sets Conflict.
//   - A sender hardware address that is zero, multicast or broadcast, or a
//     multicast or limited-broadcast sender IP, is ignored (as RFC 1812
//     §3.3.2 requires of routers) and counted.
func (c *Cache) Input(p Packet, isLocal func(netip.Addr) bool, now time.Time) (res InputResult) {
	c.stats.Received++
	sha, spa, tpa := p.SenderHardwareAddr(), p.SenderProtocolAddr(), p.TargetProtocolAddr()
	op := p.Op()

	if sha.IsZero() || sha.IsMulticast() || spa.IsMulticast() || spa == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		c.stats.InvalidSender++
		return res
	}
	targetLocal := isLocal(tpa)
	if spa.IsUnspecified() {
		// RFC 5227 §2.1.1: an ARP Probe; answer it if it asks for us.
		c.stats.Probes++
		if op == OpRequest && targetLocal {
			res.Reply = true
			c.stats.RepliesNeeded++
		}
		return res
	}
	if isLocal(spa) {
		c.stats.Conflicts++
		res.Conflict = true
		return res
	}

	mergeFlag := false
	if e, ok := c.entries[spa]; ok {
		mergeFlag = true
		switch {
		case e.state == StateIncomplete:
			c.stats.Resolved++
			if len(e.queue) > 0 {
				res.Released, res.ReleasedTo, res.ReleasedMAC = e.queue, spa, sha
				c.stats.Released += uint64(len(e.queue))
			}
			// A resolution of ours completes: its packets are sent now,
			// so the entry is in use.
			e.inUse, e.lastUse = true, now
		case e.mac != sha:
			c.stats.Changed++
		default:
			c.stats.Refreshed++
		}
		c.complete(e, sha, now)
	}
	if targetLocal {
		if !mergeFlag {
			if op == OpRequest {
				if e := c.insert(spa, now, false); e != nil {
					c.complete(e, sha, now)
					c.stats.Learned++
				} else {
					c.stats.LearnSkipped++
				}
			} else {
				c.stats.UnsolicitedIgnored++
			}
		}
		if op == OpRequest {
			res.Reply = true
			c.stats.RepliesNeeded++
		}
	} else if !mergeFlag && op == OpReply {
		c.stats.UnsolicitedIgnored++
	}
	return res
}

// Tick does the work due at now. For each incomplete entry whose retry is
// due, it calls request(ip) (the caller broadcasts a request for ip) if
// fewer than MaxRequests went out, and otherwise gives up: the entry and its
// queued packets are dropped (Stats.Timeouts, Stats.TimeoutDrops). Complete
// entries past their lifetime are deleted (Stats.Expired). request is called
// in increasing address order, after the table is updated, so it may call
// back into the cache; a nil request only counts.
func (c *Cache) Tick(now time.Time, request func(ip netip.Addr)) {
	var due []netip.Addr
	for ip, e := range c.entries {
		switch e.state {
		case StateComplete:
			if !now.Before(e.expires) {
				c.stats.Expired++
				c.delete(e)
			}
		case StateIncomplete:
			if !c.requestDue(e, now) {
				continue
			}
			if e.requests >= c.cfg.MaxRequests {
				c.stats.Timeouts++
				c.stats.TimeoutDrops += uint64(len(e.queue))
				c.delete(e)
				continue
			}
			c.sent(e, now)
			due = append(due, ip)
		}
	}
	if request == nil {
		return
	}
	slices.SortFunc(due, netip.Addr.Compare)
	for _, ip := range due {
		request(ip)
	}
}

// NextDeadline returns the earliest time at which Tick has work: a retry or
// give-up of an incomplete entry, or the expiry of a complete one. It
// returns the zero time when the table is empty. It scans the table.
func (c *Cache) NextDeadline() time.Time {
	var next time.Time
	for _, e := range c.entries {
		var t time.Time
		switch e.state {
		case StateComplete:
			t = e.expires
		case StateIncomplete:
			t = e.lastRequest.Add(c.cfg.RetryInterval)
		}
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next
}

// Entries returns the entries in increasing address order, for display
// like ip-neighbour(8). Expired entries that Tick has not yet deleted are
// included with their past Expires time.
func (c *Cache) Entries() []Entry {
	out := make([]Entry, 0, len(c.entries))
	for ip, e := range c.entries {
		en := Entry{IP: ip, State: e.state}
		switch e.state {
		case StateComplete:
			en.MAC, en.Expires, en.InUse = e.mac, e.expires, e.inUse
		case StateIncomplete:
			en.Requests, en.Queued = e.requests, len(e.queue)
		}
		out = append(out, en)
	}
	slices.SortFunc(out, func(a, b Entry) int { return a.IP.Compare(b.IP) })
	return out
}

// Generation returns a number that changes whenever a MAC address that
// Lookup or Resolve returned may have stopped being the right one: a
// complete entry's MAC address changed, or the entry expired (Tick),
// was evicted or was restarted by Resolve. A caller that keeps a resolved
// MAC address (a connection's cached route) keeps the generation with it
// and resolves again once it differs. New entries do not change it.
func (c *Cache) Generation() uint64 { return c.gen }

// Stats returns a copy of the counters.
func (c *Cache) Stats() Stats { return c.stats }
