// Package tcpdemux is TCP's one demultiplexer (RFC 9293 §3.10.7): the
// table of connections by 4-tuple, the listeners by local address, the
// TIME-WAIT records of connections their users closed, and the order in
// which an arriving segment tries them. Package stack drives it from its
// NIC readers with its endpoints and locks; package tcptest drives the
// same code single-threaded in virtual time, so that the packetdrill-style
// scripts test what the stack runs.
//
// A segment for 4-tuple t goes
//
//  1. to the connection of t, if the table has one that still answers
//     for t (Endpoint.Deliver);
//  2. else to the TIME-WAIT record of t (RFC 9293 §3.10.7.4 in
//     TIME-WAIT), unless its 2*MSL timeout has ended or the segment is a
//     SYN that may reopen the 4-tuple (RFC 6191), which delete the record;
//  3. else to the listener of t's local address, or of the unspecified
//     address of its family on t's port (RFC 9293 §3.10.7.2);
//  4. else it is counted (tcp.Stats.DroppedNoConnection) and answered with
//     a reset (RFC 9293 §3.10.7.1, tcp.Reset).
//
// Like the protocol cores, the package reads no clock (the time comes from
// Config.Now) and starts no goroutine.
package tcpdemux

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/cpu"

	"github.com/ustack/ustack/tcp"
)

// DefaultMaxTimeWait is the number of TIME-WAIT records a Demux keeps
// when Config.MaxTimeWait is zero: Linux's tcp_max_tw_buckets on a
// machine of some memory (it scales the default with the hash table).
const DefaultMaxTimeWait = 262144

// Endpoint is the owner of one connection in the table.
type Endpoint interface {
	comparable
	// Deliver hands seg, a segment for 4-tuple t, to the connection.
	// It reports false when the connection no longer answers for t:
	// it has left the table (CLOSED, or replaced by its TIME-WAIT
	// record), or seg is a SYN that may reopen its TIME-WAIT (see
	// Input), in which case Deliver has removed it. The Demux then goes
	// on as if the table had no connection for t. An endpoint that keeps
	// seg to process later (the stack's socket backlog) reports true,
	// and hands seg to Demux.Deliver again itself if by then the
	// connection no longer answers for t (it is out of the table then,
	// so the segment reaches whatever took t since, or what DeliverNoConn
	// finds).
	Deliver(t tcp.Tuple, seg tcp.Segment) bool
}

// Listener is the owner of one listening socket.
type Listener interface {
	comparable
	// Deliver hands seg, a segment for 4-tuple t that has no connection
	// and no TIME-WAIT record, to the listener (tcp.Listener.Input).
	Deliver(t tcp.Tuple, seg tcp.Segment)
}

// DualStack is implemented by a Listener that may take IPv4 segments on
// the IPv6 unspecified address, as a Linux AF_INET6 socket without
// IPV6_V6ONLY does (RFC 3493 §5.3): a segment to an IPv4 address with no
// listener of its own, nor on 0.0.0.0, goes to the listener of [::] on
// its port if that one reports AcceptsIPv4.
type DualStack interface {
	AcceptsIPv4() bool
}

// Config configures a Demux.
type Config struct {
	// TCP is the configuration the TIME-WAIT records answer with (MSL,
	// ChallengeACKLimit) and whose Stats count the segments for no
	// connection (DroppedNoConnection).
	TCP *tcp.Config
	// MaxTimeWait bounds the TIME-WAIT records (Linux's
	// tcp_max_tw_buckets): zero means DefaultMaxTimeWait, negative none,
	// and values above 1<<30 count as 1<<30.
	MaxTimeWait int
	// Now returns the time, for the TIME-WAIT records; it is called
	// under the records' lock, so that they see it move forward only.
	Now func() time.Time
	// Output sends the TIME-WAIT records' replies and the resets; it is
	// used under the records' lock, one segment at a time.
	Output tcp.Output
}

// Demux is the demultiplexer. Its methods are safe for concurrent use.
// The connection table is cut in Shards shards by a seeded hash of the
// 4-tuple, each a map under its own read-write lock on cache lines of its
// own, so that the NIC readers of several queues look their connections
// up without sharing a lock or a cache line. Another read-write lock
// guards the listeners, and a mutex, taken after a shard's lock and never
// before, the TIME-WAIT records and the Output. Endpoint.Deliver and
// Listener.Deliver are called with none held, so an endpoint's own lock
// comes before them all.
type Demux[E Endpoint, L Listener] struct {
	cfg *tcp.Config
	now func() time.Time

	seed   uint64 // of the shards' hash, random per Demux
	shards [Shards]connShard[E]

	mu        sync.RWMutex // guards listeners
	listeners map[netip.AddrPort]L

	twMu sync.Mutex // guards tw and out; taken after a shard's mu, never before
	tw   timeWaitTable
	out  tcp.Output
}

// Shards is the number of shards of a Demux's connection table: a power
// of two, well above the number of readers (one per NIC queue) that look
// connections up at once.
const Shards = 64

// connShard is one shard of the connection table.
type connShard[E Endpoint] struct {
	mu    sync.RWMutex // guards conns
	conns map[tcp.Tuple]E
	_     cpu.CacheLinePad // the next shard's lock is on another line
}

// shard returns the shard of t: a multiply-xorshift mix of its addresses
// and ports with the Demux's seed, so that which tuples share a shard is
// not predictable from outside.
func (d *Demux[E, L]) shard(t tcp.Tuple) *connShard[E] { return &d.shards[d.shardIndex(t)] }

func (d *Demux[E, L]) shardIndex(t tcp.Tuple) uint64 {
	l, r := t.Local.Addr().As16(), t.Remote.Addr().As16()
	h := d.seed
	for _, w := range [...]uint64{
		binary.LittleEndian.Uint64(l[:8]), binary.LittleEndian.Uint64(l[8:]),
		binary.LittleEndian.Uint64(r[:8]), binary.LittleEndian.Uint64(r[8:]),
		uint64(t.Local.Port())<<16 | uint64(t.Remote.Port()),
	} {
		h = (h ^ w) * 0x9e3779b97f4a7c15
		h ^= h >> 29
	}
	return h % Shards
}

// Init makes d ready with cfg; it must be called before any other method.
func (d *Demux[E, L]) Init(cfg Config) {
	d.cfg = cfg.TCP
	d.now = cfg.Now
	d.out = cfg.Output
	d.seed = rand.Uint64()
	for i := range d.shards {
		d.shards[i].conns = make(map[tcp.Tuple]E)
	}
	d.listeners = make(map[netip.AddrPort]L)
	d.tw.init(cfg.MaxTimeWait)
}

// Input is what an Endpoint's Deliver does with its connection c, under
// whatever serializes the calls into c: it reports false for a SYN that
// may reopen c's TIME-WAIT (RFC 9293 §3.10.7.4 and RFC 6191: a new SYN
// with a newer timestamp, or a sequence number beyond RCV.NXT, "may
// reopen" the 4-tuple), which the caller answers by removing c from the
// table and returning false; every other segment goes to c.Input.
func Input(c *tcp.Conn, now time.Time, seg tcp.Segment, out tcp.Output) bool {
	if c.AcceptsSYN(seg) {
		return false
	}
	c.Input(now, seg, out)
	return true
}

// Deliver demultiplexes seg, a valid segment (tcp.ParseSegment) for
// 4-tuple t (from our side: Local is its destination), in the order the
// package documentation gives.
func (d *Demux[E, L]) Deliver(t tcp.Tuple, seg tcp.Segment) {
	if !d.DeliverConn(t, seg) {
		d.deliverListener(t, seg)
	}
}

// DeliverConn is the first two steps of Deliver: it hands seg to the
// connection of t, or else to t's TIME-WAIT record, and reports whether
// one of them took it. A caller with its own third step (the stack's
// forwarder, for addresses that are not ours) goes on from there, and
// ends with Reset.
func (d *Demux[E, L]) DeliverConn(t tcp.Tuple, seg tcp.Segment) bool {
	e, ok := d.Lookup(t)
	if ok && e.Deliver(t, seg) {
		return true
	}
	return d.TimeWaitInput(t, seg)
}

// DeliverNoConn demultiplexes seg as Deliver does when the table has no
// connection for t that answers for it: to t's TIME-WAIT record, else to
// a listener, else to a counted reset.
func (d *Demux[E, L]) DeliverNoConn(t tcp.Tuple, seg tcp.Segment) {
	if d.TimeWaitInput(t, seg) {
		return
	}
	d.deliverListener(t, seg)
}

// deliverListener hands seg to the listener of t's local address, else
// to Reset.
func (d *Demux[E, L]) deliverListener(t tcp.Tuple, seg tcp.Segment) {
	if l, ok := d.Listener(t.Local); ok {
		l.Deliver(t, seg)
		return
	}
	d.Reset(t, seg)
}

// Reset is the last step of Deliver, for a segment nothing took: it is
// counted (tcp.Stats.DroppedNoConnection) and answered with a reset.
func (d *Demux[E, L]) Reset(t tcp.Tuple, seg tcp.Segment) {
	// RFC 9293 §3.10.7.1: "If the state is CLOSED (i.e., TCB does not
	// exist) then all data in the incoming segment is discarded. An
	// incoming segment containing a RST is discarded. An incoming
	// segment not containing a RST causes a RST to be sent in response."
	if st := d.cfg.Stats; st != nil {
		st.DroppedNoConnection.Add(1)
	}
	d.twMu.Lock()
	tcp.Reset(t, seg, d.out)
	d.twMu.Unlock()
}

// Lookup returns the connection of 4-tuple t, if the table has one.
func (d *Demux[E, L]) Lookup(t tcp.Tuple) (E, bool) {
	sh := d.shard(t)
	sh.mu.RLock()
	e, ok := sh.conns[t]
	sh.mu.RUnlock()
	return e, ok
}

// Add enters e as the connection of t and reports whether t was free: no
// connection and no TIME-WAIT record holds it.
func (d *Demux[E, L]) Add(t tcp.Tuple, e E) bool {
	sh := d.shard(t)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.conns[t]; ok || d.HoldsTimeWait(t) {
		return false
	}
	sh.conns[t] = e
	return true
}

// Remove deletes e, the connection of t, from the table; it does nothing
// if t's connection is another.
func (d *Demux[E, L]) Remove(t tcp.Tuple, e E) {
	sh := d.shard(t)
	sh.mu.Lock()
	if o, ok := sh.conns[t]; ok && o == e {
		delete(sh.conns, t)
	}
	sh.mu.Unlock()
}

// EnterTimeWait replaces e, a connection that tcp.Conn.TimeWait
// compacted, by its record r. It reports false when Config.MaxTimeWait
// records are already held: then the connection just leaves the table,
// without TIME-WAIT, as Linux does past tcp_max_tw_buckets.
func (d *Demux[E, L]) EnterTimeWait(e E, r tcp.TimeWait) bool {
	t := r.Tuple()
	sh := d.shard(t)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if o, ok := sh.conns[t]; ok && o == e {
		delete(sh.conns, t)
	}
	d.twMu.Lock()
	defer d.twMu.Unlock()
	return d.tw.add(r)
}

// Conns returns the connections in the table, in no particular order.
func (d *Demux[E, L]) Conns() []E {
	var out []E
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.RLock()
		for _, e := range sh.conns {
			out = append(out, e)
		}
		sh.mu.RUnlock()
	}
	return out
}

// Range calls f for each connection in the table until f returns false.
// The lock of the shard of the connection is held for reading: f must not
// call back into d. A connection added or removed meanwhile may be seen
// or not.
func (d *Demux[E, L]) Range(f func(t tcp.Tuple, e E) bool) {
	for i := range d.shards {
		if !d.shards[i].rangeShard(f) {
			return
		}
	}
}

func (sh *connShard[E]) rangeShard(f func(t tcp.Tuple, e E) bool) bool {
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	for t, e := range sh.conns {
		if !f(t, e) {
			return false
		}
	}
	return true
}

// wildcard returns the unspecified address of a's family.
func wildcard(a netip.Addr) netip.Addr {
	if a.Is6() && !a.Is4In6() {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

// Listener returns the listener of local, or else the one of the
// unspecified address of local's family on local's port.
func (d *Demux[E, L]) Listener(local netip.AddrPort) (L, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.listenerLocked(local)
}

func (d *Demux[E, L]) listenerLocked(local netip.AddrPort) (L, bool) {
	if l, ok := d.listeners[local]; ok {
		return l, true
	}
	w := wildcard(local.Addr())
	l, ok := d.listeners[netip.AddrPortFrom(w, local.Port())]
	if !ok && w.Is4() {
		if l6, ok6 := d.listeners[netip.AddrPortFrom(netip.IPv6Unspecified(), local.Port())]; ok6 {
			if ds, is := any(l6).(DualStack); is && ds.AcceptsIPv4() {
				return l6, true
			}
		}
	}
	return l, ok
}

// listenedLocked reports whether a listener covers a:port: one on a
// itself or on the unspecified address, or, for an unspecified a, any on
// that port. d.mu is held.
func (d *Demux[E, L]) listenedLocked(a netip.Addr, port uint16) bool {
	if _, ok := d.listenerLocked(netip.AddrPortFrom(a, port)); ok {
		return true
	}
	if a.IsUnspecified() {
		for k := range d.listeners {
			if k.Port() == port && wildcard(k.Addr()) == a {
				return true
			}
		}
	}
	return false
}

// Listen enters the listener newL makes for the local address it is
// given, and returns that listener. A local port of 0 takes the first
// port of [first, last] no listener covers. It reports false, calling
// newL not at all, when a listener already covers local (on its
// address, or on the unspecified address; any on the port for an
// unspecified local address) or no port of the range is free. newL is
// called with the listeners' lock held: it must not call back into d.
func (d *Demux[E, L]) Listen(local netip.AddrPort, first, last uint16, newL func(netip.AddrPort) L) (L, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, port := local.Addr(), local.Port()
	if port == 0 {
		for p := int(first); p <= int(last); p++ {
			if !d.listenedLocked(a, uint16(p)) {
				port = uint16(p)
				break
			}
		}
	} else if d.listenedLocked(a, port) {
		port = 0
	}
	if port == 0 {
		var zero L
		return zero, false
	}
	local = netip.AddrPortFrom(a, port)
	l := newL(local)
	d.listeners[local] = l
	return l, true
}

// Unlisten deletes l, the listener of local; it does nothing if local's
// listener is another.
func (d *Demux[E, L]) Unlisten(local netip.AddrPort, l L) {
	d.mu.Lock()
	if o, ok := d.listeners[local]; ok && o == l {
		delete(d.listeners, local)
	}
	d.mu.Unlock()
}

// Listeners returns the listeners, in no particular order.
func (d *Demux[E, L]) Listeners() []L {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]L, 0, len(d.listeners))
	for _, l := range d.listeners {
		out = append(out, l)
	}
	return out
}

// Free reports whether an active open may take 4-tuple t: no connection
// or TIME-WAIT record holds it and no listener covers its local address
// and port.
func (d *Demux[E, L]) Free(t tcp.Tuple) bool {
	if _, ok := d.Lookup(t); ok || d.HoldsTimeWait(t) {
		return false
	}
	_, ok := d.Listener(t.Local)
	return !ok
}

// TimeWaitInput hands seg to the TIME-WAIT record of t, if there is one,
// and reports whether it took it. A SYN that may reopen the 4-tuple
// (RFC 9293 §3.10.7.4 fourth step in TIME-WAIT, RFC 6191) deletes the
// record and is left to the listener, as is any segment once the
// record's 2*MSL timeout has ended (RFC 9293 §3.10.8: the TCB is
// deleted), even before ExpireTimeWait reaches it.
func (d *Demux[E, L]) TimeWaitInput(t tcp.Tuple, seg tcp.Segment) bool {
	d.twMu.Lock()
	defer d.twMu.Unlock()
	tw := &d.tw
	i, pos, ok := tw.lookup(t)
	if !ok {
		return false
	}
	r := tw.slot(pos)
	now := d.now()
	if r.Expired(now) || seg.Flags().Has(tcp.FlagSYN) && r.AcceptsSYN(seg) {
		tw.remove(i, pos)
		return false
	}
	deadline := r.Deadline()
	r.Input(d.cfg, now, seg, d.out)
	switch {
	case r.Done(): // a RST at RCV.NXT
		tw.remove(i, pos)
	case !r.Deadline().Equal(deadline):
		// A FIN restarted the 2*MSL timeout: the record's deadline is now
		// the latest of all, its place the tail of the ring.
		tw.moveToTail(i, pos)
	}
	return true
}

// HoldsTimeWait reports whether t has a TIME-WAIT record: the 4-tuple
// cannot be used by a new active open meanwhile.
func (d *Demux[E, L]) HoldsTimeWait(t tcp.Tuple) bool {
	d.twMu.Lock()
	defer d.twMu.Unlock()
	_, _, ok := d.tw.lookup(t)
	return ok
}

// ExpireTimeWait deletes the records whose 2*MSL timeout has ended at now
// (RFC 9293 §3.10.8 TIME-WAIT TIMEOUT: "delete the TCB, enter the CLOSED
// state") and returns the earliest deadline left, zero if none.
func (d *Demux[E, L]) ExpireTimeWait(now time.Time) time.Time {
	d.twMu.Lock()
	defer d.twMu.Unlock()
	return d.tw.expire(now)
}

// TimeWaitLen returns the number of TIME-WAIT records.
func (d *Demux[E, L]) TimeWaitLen() int {
	d.twMu.Lock()
	defer d.twMu.Unlock()
	return d.tw.live
}

// TimeWaitInfos returns the records' Info (4-tuple and state).
func (d *Demux[E, L]) TimeWaitInfos() []tcp.Info {
	d.twMu.Lock()
	defer d.twMu.Unlock()
	tw := &d.tw
	out := make([]tcp.Info, 0, tw.live)
	for p := tw.head; p != tw.tail; p++ {
		if r := tw.slot(p); !r.IsZero() {
			out = append(out, r.Info())
		}
	}
	return out
}
