package arp

import (
	"net/netip"
	"time"

	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/neigh"
)

// Defaults for the zero fields of Config (see package neigh).
const (
	// DefaultReachableTime is the base reachable time (RFC 4861's
	// REACHABLE_TIME, Linux's base_reachable_time for ARP too): an entry
	// stays REACHABLE between 0.5 and 1.5 times it after a confirmation.
	DefaultReachableTime = neigh.DefaultBaseReachableTime
	// DefaultRetryInterval spaces requests for one address. RFC 1122
	// §2.3.2.1: "The recommended maximum rate is 1 per second per
	// destination."
	DefaultRetryInterval = neigh.DefaultRetransTimer
	// DefaultMaxRequests is how many broadcast requests go out for an
	// address before resolution gives up.
	DefaultMaxRequests = neigh.DefaultMaxMulticastSolicit
	// DefaultStaleTime is how long an entry stays STALE, unused, before it
	// is deleted.
	DefaultStaleTime = neigh.DefaultStaleTime
	// DefaultQueueLen is how many packets wait on one unresolved address.
	// RFC 1122 §2.3.2.2: the link layer "SHOULD save (rather than discard)
	// at least one (the latest) packet" of those sent to an unresolved
	// address.
	DefaultQueueLen = neigh.DefaultQueueLen
	// DefaultMaxEntries bounds the table (Linux's gc_thresh3).
	DefaultMaxEntries = neigh.DefaultMaxEntries
	// DefaultMaxIncomplete bounds the incomplete entries within it.
	DefaultMaxIncomplete = neigh.DefaultMaxIncomplete
)

// Config sets the behaviour of a Cache: that of its neighbour cache. For
// ARP, RetransTimer is the least time between two requests for one
// address (RFC 1122 §2.3.2.1's flood prevention) and MaxMulticastSolicit
// the number of broadcast requests before resolution gives up.
type Config = neigh.Config

// State is the reachability state of an entry (RFC 4861 §7.3.2), which
// ARP entries go through as IPv6 ones do.
type State = neigh.State

// The states of an entry; see package neigh.
const (
	StateIncomplete = neigh.StateIncomplete
	StateReachable  = neigh.StateReachable
	StateStale      = neigh.StateStale
	StateDelay      = neigh.StateDelay
	StateProbe      = neigh.StateProbe
	// StateComplete is StateReachable, the name of an entry with a
	// confirmed MAC address before ARP had NUD.
	//
	// Deprecated: an entry with a MAC address is REACHABLE, STALE, DELAY
	// or PROBE; use those.
	StateComplete = neigh.StateReachable
)

// Entry describes one cache entry, for display (see Cache.Entries).
type Entry = neigh.Entry

// Stats counts what a Cache did and what it refused: the neighbour
// cache's counters and the ARP packets'. Counters only grow.
type Stats struct {
	neigh.Stats
	// RequestsNeeded counts requests the cache asked the caller to send
	// (neigh.Stats' Solicits and UnicastSolicits).
	RequestsNeeded uint64
	// RepliesNeeded counts requests for a local address that the caller
	// was asked to answer (InputResult.Reply).
	RepliesNeeded uint64
	// Received counts packets given to Input.
	Received uint64
	// Refreshed counts packets from the owner of an entry that left its
	// MAC address as it was.
	Refreshed uint64
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

// Cache is an ARP neighbour cache (RFC 826's "translation table") with the
// pending-packet queue of RFC 1122 §2.3.2.2 and Neighbor Unreachability
// Detection: a neigh.Cache fed by ARP packets, as Linux runs ARP through
// its neighbour state machine (net/core/neighbour.c).
//
// An ARP reply to us is a solicited advertisement with override (RFC 1122
// §2.3.2.1: the cache is validated by the owner's answer): it makes the
// entry REACHABLE. A request, an announcement or a reply to another host
// shows only that the sender can send: it records the sender's MAC address
// and leaves the entry STALE if that changed it. A REACHABLE entry turns
// STALE after ReachableTime without a confirmation (a reply, or
// Confirm, which the caller's TCP gives when an ACK advances); the next
// send to a STALE entry still uses its MAC address and moves it to DELAY,
// and unless a confirmation comes within DelayFirstProbeTime, PROBE
// sends unicast requests to that address (RFC 1122 §2.3.2.1, "Unicast
// Poll") before the entry is deleted.
//
// A Cache is not safe for concurrent use: the stack serialises calls (one
// lock per NIC). It never reads the clock; every method takes now, and
// times must not go backwards.
type Cache struct {
	n     *neigh.Cache
	stats Stats // the ARP counters; the cache's are read from n
}

// NewCache returns an empty cache; zero fields of cfg take their defaults.
func NewCache(cfg Config) *Cache { return &Cache{n: neigh.New(cfg)} }

// Config returns the configuration in force, defaults filled in.
func (c *Cache) Config() Config { return c.n.Config() }

// Neigh returns the neighbour cache underneath, for the methods ARP does
// not wrap (State, ReachableTime, SetBaseReachableTime).
func (c *Cache) Neigh() *neigh.Cache { return c.n }

// Len returns the number of entries.
func (c *Cache) Len() int { return c.n.Len() }

// Lookup returns the MAC address of ip if its entry has one (any state
// but INCOMPLETE). It does not allocate and changes nothing.
func (c *Cache) Lookup(ip netip.Addr) (link.MAC, bool) { return c.n.Lookup(ip) }

// Resolve returns ip's MAC address if its entry has one (ok true; a STALE
// entry moves to DELAY). Otherwise it holds a copy of pkt (an empty pkt
// holds nothing) on ip's incomplete entry, creating the entry if needed,
// and reports sendRequest when the caller must broadcast a request for ip
// now: on the first call, and when a retry is due (no request for ip in
// the last RetransTimer, RFC 1122 §2.3.2.1) and fewer than
// MaxMulticastSolicit went out. See neigh.Cache.Resolve.
//
// RFC 1122 §2.3.2.2: packets to an unresolved address are saved and sent
// once it is resolved (see InputResult.Released); the queue holds QueueLen
// packets and drops the oldest beyond that.
func (c *Cache) Resolve(ip netip.Addr, pkt []byte, now time.Time) (mac link.MAC, ok bool, sendRequest bool) {
	return c.n.Resolve(ip, pkt, now)
}

// Confirm is upper-layer reachability confirmation of ip at now (a TCP ACK
// that advanced): an entry with a MAC address becomes REACHABLE. It
// reports whether there was one. It does not allocate.
func (c *Cache) Confirm(ip netip.Addr, now time.Time) bool { return c.n.Confirm(ip, now) }

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
// in the terms of NUD (see Cache): a reply is an advertisement with
// override, solicited if it is to a local address and not gratuitous; a
// request is a solicitation (neigh.Cache.Learn), which may create a STALE
// entry only if it is for a local address. With these restrictions:
//   - A reply that merges with no entry never adds one: only a request
//     to us does, as RFC 826 says, or our own pending resolution. An
//     unsolicited reply could otherwise fill the table with forged entries.
//   - An ARP Probe (sender IP 0.0.0.0, RFC 5227 §2.1.1, sent "to avoid
//     polluting ARP caches") touches no entry, but a probe for a local
//     address is answered, which tells the prober the address is taken.
//   - A gratuitous ARP / ARP Announcement (sender IP == target IP, RFC 5227
//     §2.3) only updates an existing entry: its target is not local.
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

	state, merge := c.n.State(spa)
	var r neigh.Result
	if op == OpReply {
		r = c.n.Advertisement(spa, sha, neigh.Flags{Solicited: targetLocal && spa != tpa, Override: true}, now)
	} else {
		r = c.n.Learn(spa, sha, targetLocal, now)
	}
	if merge && state != StateIncomplete && !r.Changed {
		c.stats.Refreshed++
	}
	if len(r.Released) > 0 {
		res.Released, res.ReleasedTo, res.ReleasedMAC = r.Released, spa, r.ReleasedMAC
	}
	if targetLocal && op == OpRequest {
		res.Reply = true
		c.stats.RepliesNeeded++
	}
	return res
}

// Tick does the work due at now (see neigh.Cache.Tick): resolutions retry
// or give up, REACHABLE entries turn STALE, STALE ones expire, DELAY and
// PROBE ones probe or are deleted. request(ip) is called for every
// request to send, in increasing address order, after the table is
// updated, so it may call back into the cache; the caller broadcasts
// them. A caller that sends PROBE's requests by unicast, as RFC 1122
// §2.3.2.1 suggests, uses TickSolicit instead. A nil request only counts.
func (c *Cache) Tick(now time.Time, request func(ip netip.Addr)) {
	if request == nil {
		c.n.Tick(now, nil, nil)
		return
	}
	c.n.Tick(now, func(s neigh.Solicit) { request(s.Target) }, nil)
}

// TickSolicit is Tick reporting each request with its destination (a
// broadcast request for address resolution, or a unicast probe to the
// cached MAC address) and, to failed, the packets of each resolution
// given up, for ICMP host unreachable errors (see neigh.Cache.Tick).
func (c *Cache) TickSolicit(now time.Time, solicit func(neigh.Solicit), failed func(neigh.Failure)) {
	c.n.Tick(now, solicit, failed)
}

// NextDeadline returns the earliest time at which Tick has work, or the
// zero time when the table is empty. It scans the table.
func (c *Cache) NextDeadline() time.Time { return c.n.NextDeadline() }

// Entries returns the entries in increasing address order, for display
// like ip-neighbour(8).
func (c *Cache) Entries() []Entry { return c.n.Entries() }

// Generation returns a number that changes whenever a MAC address that
// Lookup or Resolve returned may have stopped being the right one or
// needs checking (see neigh.Cache.Generation). A caller that keeps a
// resolved MAC address (a connection's cached route) keeps the generation
// with it and resolves again once it differs.
func (c *Cache) Generation() uint64 { return c.n.Generation() }

// Stats returns a copy of the counters.
func (c *Cache) Stats() Stats {
	s := c.stats
	s.Stats = c.n.Stats()
	s.RequestsNeeded = s.Solicits + s.UnicastSolicits
	return s
}
