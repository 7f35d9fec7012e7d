package filter

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ustack/ustack/ip"
)

// Tuple identifies one direction of a tracked flow: addresses, transport
// ports (the ICMP echo identifier in both port fields for ICMP echo; zero
// for protocols without ports) and protocol. It is comparable: a map key.
type Tuple struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Proto            uint8
}

// Reverse returns the tuple of the other direction.
func (t Tuple) Reverse() Tuple {
	return Tuple{Src: t.Dst, Dst: t.Src, SrcPort: t.DstPort, DstPort: t.SrcPort, Proto: t.Proto}
}

// Directions of a connection.
const (
	dirOriginal = 0
	dirReply    = 1
)

// TCPState is the state conntrack follows a TCP connection through, named
// as Linux's nf_conntrack_proto_tcp names them.
type TCPState uint8

// The TCP conntrack states.
const (
	TCPNone        TCPState = iota // NONE
	TCPSynSent                     // SYN_SENT
	TCPSynRecv                     // SYN_RECV
	TCPEstablished                 // ESTABLISHED
	TCPFinWait                     // FIN_WAIT
	TCPCloseWait                   // CLOSE_WAIT
	TCPLastAck                     // LAST_ACK
	TCPTimeWait                    // TIME_WAIT
	TCPClose                       // CLOSE
	TCPSynSent2                    // SYN_SENT2
	numTCPStates
)

var tcpStateNames = [numTCPStates]string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}

// String returns the state's conntrack name.
func (s TCPState) String() string {
	if s < numTCPStates {
		return tcpStateNames[s]
	}
	return "?"
}

// ConntrackConfig bounds and times the connection tracking table. Zero
// fields take Linux's defaults (Documentation/networking/
// nf_conntrack-sysctl.rst and nf_conntrack_proto_{tcp,udp,icmp}.c).
type ConntrackConfig struct {
	// Max is the most entries (nf_conntrack_max); default 65536.
	Max int
	// TCP holds the timeout of each TCP state, indexed by TCPState.
	TCP [numTCPStates]time.Duration
	// UDP is nf_conntrack_udp_timeout (30 s): a flow seen one way only.
	UDP time.Duration
	// UDPStream is nf_conntrack_udp_timeout_stream (120 s): seen both ways.
	UDPStream time.Duration
	// ICMP is nf_conntrack_icmp_timeout (30 s), for ICMP and ICMPv6 echo.
	ICMP time.Duration
	// Generic is nf_conntrack_generic_timeout (600 s), other protocols.
	Generic time.Duration
}

// Linux's default timeouts (nf_conntrack_proto_tcp.c tcp_timeouts[]).
var defaultTCPTimeouts = [numTCPStates]time.Duration{
	TCPSynSent:     120 * time.Second, // nf_conntrack_tcp_timeout_syn_sent
	TCPSynRecv:     60 * time.Second,  // nf_conntrack_tcp_timeout_syn_recv
	TCPEstablished: 432000 * time.Second,
	TCPFinWait:     120 * time.Second,
	TCPCloseWait:   60 * time.Second,
	TCPLastAck:     30 * time.Second,
	TCPTimeWait:    120 * time.Second,
	TCPClose:       10 * time.Second,
	TCPSynSent2:    120 * time.Second,
}

func (c *ConntrackConfig) defaults() {
	if c.Max <= 0 {
		c.Max = 65536
	}
	for i := range c.TCP {
		if c.TCP[i] <= 0 {
			c.TCP[i] = defaultTCPTimeouts[i]
		}
	}
	if c.UDP <= 0 {
		c.UDP = 30 * time.Second
	}
	if c.UDPStream <= 0 {
		c.UDPStream = 120 * time.Second
	}
	if c.ICMP <= 0 {
		c.ICMP = 30 * time.Second
	}
	if c.Generic <= 0 {
		c.Generic = 600 * time.Second
	}
}

// tcpWindow is what window tracking knows of one direction's sender, after
// Linux's struct ip_ct_tcp_state: the highest sequence number it sent
// (end), the highest the receiver allowed it to send (maxend), its largest
// advertised window, and its window scale.
type tcpWindow struct {
	end, maxend uint32
	maxwin      uint32
	scale       uint8
	wscale      bool // sent the Window Scale option on its SYN (RFC 7323 §2)
	init        bool
	fin         bool   // sent a FIN
	finEnd      uint32 // sequence number after its FIN
	finAcked    bool
}

// conn is one tracked connection. Its mutex guards every field but prev
// and next (which Conntrack.mu guards); dead is written under both.
type conn struct {
	mu       sync.Mutex
	tuple    [2]Tuple // original and reply directions
	tcp      TCPState
	win      [2]tcpWindow
	seenRep  bool // a packet went in the reply direction (IPS_SEEN_REPLY)
	assured  bool // IPS_ASSURED: not evicted early
	dnatDone bool // the nat table's PREROUTING/OUTPUT decision is made
	snatDone bool // the POSTROUTING decision is made
	dead     bool
	liberal  bool // picked up mid-stream: windows learnt, not enforced
	// natted is set once NAT gave the connection a reply tuple other
	// than its original's reverse: only then does natApply rewrite, so
	// that a flow without NAT pays no lock for it.
	natted   atomic.Bool
	deadline time.Time
	prev     *conn // creation-order list, for early drop
	next     *conn
}

// ConntrackStats counts the table's events.
type ConntrackStats struct {
	Inserted, Deleted, Expired uint64
	EarlyDrop                  uint64 // unassured entries evicted for room
	InsertFailed               uint64 // no room: every entry scanned was assured; or a reply tuple taken
	Invalid                    uint64 // packets found INVALID
}

// ctCounters are ConntrackStats as atomics, so that the lookup path
// counts without the table's lock.
type ctCounters struct {
	inserted, deleted, expired, earlyDrop, insertFailed, invalid atomic.Uint64
}

// numShards is how many locks split the tuple map: a lookup locks only
// its tuple's shard and then the connection, so flows on different NIC
// queues rarely meet on a lock (as Linux locks a bucket, not the table).
const numShards = 32

// shard is one part of the tuple map; its mutex guards m.
type shard struct {
	mu sync.Mutex
	m  map[Tuple]*conn
	_  [40]byte // keep neighbouring shards' locks off one cache line
}

// Conntrack is the connection tracking table. It is safe for concurrent
// use. Locks are taken in the order Conntrack.mu, conn.mu, shard.mu, and
// the lookup of an existing flow takes only the last two, one at a time.
type Conntrack struct {
	cfg    ConntrackConfig
	fst    *Stats
	shards [numShards]shard
	// hot caches the entries lookups found, by tuple hash, so that the
	// packets of a busy flow find theirs without the shard's lock and
	// map; an entry found here is checked (alive, the tuple its own)
	// under its own lock, so a stale one costs only a miss.
	hot   [hotSize]atomic.Pointer[conn]
	stats ctCounters
	mu    sync.Mutex // guards the creation-order list and n
	n     int
	head  *conn // oldest
	tail  *conn
}

func newConntrack(cfg ConntrackConfig, fst *Stats) *Conntrack {
	cfg.defaults()
	ct := &Conntrack{cfg: cfg, fst: fst}
	for i := range ct.shards {
		ct.shards[i].m = make(map[Tuple]*conn)
	}
	return ct
}

// hotSize is the number of slots of Conntrack.hot.
const hotSize = 1024

// hashOf mixes t's ports and the low bytes of its addresses.
func hashOf(t Tuple) uint32 {
	a, b := t.Src.As16(), t.Dst.As16()
	h := binary.LittleEndian.Uint32(a[12:]) ^ binary.LittleEndian.Uint32(b[12:])*0x9e3779b1
	h ^= (uint32(t.SrcPort)<<16 | uint32(t.DstPort)) * 0x85ebca6b
	h ^= uint32(t.Proto)
	h ^= h >> 15
	h *= 0x2c1b3c6d
	h ^= h >> 13
	return h
}

// shardOf picks t's shard.
func (ct *Conntrack) shardOf(t Tuple) *shard {
	return &ct.shards[hashOf(t)%numShards]
}

// get returns the entry with tuple t, without locking it.
func (ct *Conntrack) get(t Tuple) *conn {
	s := ct.shardOf(t)
	s.mu.Lock()
	c := s.m[t]
	s.mu.Unlock()
	return c
}

// getHot is get through the hot cache: the entry returned is locked,
// alive, and t is one of its tuples; nil if there is none.
func (ct *Conntrack) getHot(t Tuple) *conn {
	h := hashOf(t)
	slot := &ct.hot[(h/numShards)%hotSize]
	if c := slot.Load(); c != nil {
		c.mu.Lock()
		if !c.dead && (c.tuple[0] == t || c.tuple[1] == t) {
			return c
		}
		c.mu.Unlock()
	}
	s := &ct.shards[h%numShards]
	s.mu.Lock()
	c := s.m[t]
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return nil
	}
	slot.Store(c)
	return c
}

// claim makes t a key of c unless another live entry has it.
func (ct *Conntrack) claim(t Tuple, c *conn) bool {
	s := ct.shardOf(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if x := s.m[t]; x != nil && x != c {
		return false
	}
	s.m[t] = c
	return true
}

// release removes key t if it is c's.
func (ct *Conntrack) release(t Tuple, c *conn) {
	s := ct.shardOf(t)
	s.mu.Lock()
	if s.m[t] == c {
		delete(s.m, t)
	}
	s.mu.Unlock()
}

// tuples returns the number of keys in the map, for tests.
func (ct *Conntrack) tuples() int {
	n := 0
	for i := range ct.shards {
		s := &ct.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// Len returns the number of tracked connections.
func (ct *Conntrack) Len() int {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.n
}

// Stats returns a copy of the table's counters.
func (ct *Conntrack) Stats() ConntrackStats {
	return ConntrackStats{
		Inserted: ct.stats.inserted.Load(), Deleted: ct.stats.deleted.Load(), Expired: ct.stats.expired.Load(),
		EarlyDrop: ct.stats.earlyDrop.Load(), InsertFailed: ct.stats.insertFailed.Load(), Invalid: ct.stats.invalid.Load(),
	}
}

func (ct *Conntrack) unlink(c *conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		ct.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		ct.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

// remove deletes c from the table; ct.mu is held, c.mu is not.
func (ct *Conntrack) remove(c *conn) {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	c.dead = true
	tuples := c.tuple
	c.mu.Unlock()
	ct.release(tuples[0], c)
	ct.release(tuples[1], c)
	ct.unlink(c)
	ct.n--
	ct.stats.deleted.Add(1)
}

// expiredAt reports whether c's timeout passed by now.
func (c *conn) expiredAt(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !now.Before(c.deadline)
}

// earlyDropScan is how many of the oldest entries an insertion into a full
// table looks at for an expired or unassured one to evict, as Linux's
// early_drop scans a bounded part of the table.
const earlyDropScan = 256

// insert adds c, which no other goroutine sees yet. A full table first
// loses an expired entry, else the oldest unassured one; if the entries
// scanned are all assured, the insert fails (a counted drop). It fails
// too when another entry has one of c's tuples (lost is true when it is
// c's original tuple: another packet of the flow inserted it first).
func (ct *Conntrack) insert(c *conn, now time.Time) (ok, lost bool) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.n >= ct.cfg.Max {
		var victim *conn
		expired := false
		i := 0
		for x := ct.head; x != nil && i < earlyDropScan; x, i = x.next, i+1 {
			x.mu.Lock()
			exp, assured := !now.Before(x.deadline), x.assured
			x.mu.Unlock()
			if exp {
				victim, expired = x, true
				break
			}
			if !assured && victim == nil {
				victim = x
			}
		}
		if victim == nil {
			ct.stats.insertFailed.Add(1)
			return false, false
		}
		if expired {
			ct.stats.expired.Add(1)
		} else {
			ct.stats.earlyDrop.Add(1)
		}
		ct.remove(victim)
	}
	if !ct.claim(c.tuple[0], c) {
		return false, true
	}
	if !ct.claim(c.tuple[1], c) {
		ct.release(c.tuple[0], c)
		ct.stats.insertFailed.Add(1)
		return false, false
	}
	c.prev = ct.tail
	if ct.tail != nil {
		ct.tail.next = c
	} else {
		ct.head = c
	}
	ct.tail = c
	ct.n++
	ct.stats.inserted.Add(1)
	return true, false
}

// lookup returns the live connection with tuple t, locked, and the
// direction t is; an expired one is removed.
func (ct *Conntrack) lookup(t Tuple, now time.Time) (*conn, uint8) {
	c := ct.getHot(t)
	if c == nil {
		return nil, 0
	}
	if !now.Before(c.deadline) {
		c.mu.Unlock()
		ct.mu.Lock()
		if !c.dead {
			ct.stats.expired.Add(1)
		}
		ct.remove(c)
		ct.mu.Unlock()
		return nil, 0
	}
	if c.tuple[0] == t {
		return c, dirOriginal
	}
	if c.tuple[1] == t {
		return c, dirReply
	}
	c.mu.Unlock() // rekeyed since get
	return nil, 0
}

// Expire removes every entry whose timeout passed by now, and returns how
// many; the stack calls it now and then (entries also expire when found).
func (ct *Conntrack) Expire(now time.Time) int {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	n := 0
	for x := ct.head; x != nil; {
		next := x.next
		if x.expiredAt(now) {
			ct.remove(x)
			ct.stats.expired.Add(1)
			n++
		}
		x = next
	}
	return n
}

// Flush removes every entry.
func (ct *Conntrack) Flush() {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	for x := ct.head; x != nil; {
		next := x.next
		ct.remove(x)
		x = next
	}
}

// tupleOf returns the tuple of v's own direction; ok is false when v has
// no usable transport header.
func tupleOf(v *view) (Tuple, bool) {
	t := Tuple{Src: v.src, Dst: v.dst, Proto: v.proto}
	switch v.proto {
	case ip.ProtocolTCP, ip.ProtocolUDP:
		if !v.l4 {
			return t, false
		}
		t.SrcPort, t.DstPort = v.sport, v.dport
	case ip.ProtocolICMP, ip.ProtocolICMPv6:
		if !v.l4 {
			return t, false
		}
		t.SrcPort, t.DstPort = v.id, v.id
	}
	return t, true
}

// track finds or creates the connection of p's datagram and sets p's
// conntrack state.
func (ct *Conntrack) track(p *Packet, v *view, payload []byte, now time.Time) {
	p.track = true
	if v.icmpError() {
		ct.related(p, v, payload, now)
		return
	}
	req, rep := v.echo()
	if (v.proto == ip.ProtocolICMP || v.proto == ip.ProtocolICMPv6) && !req && !rep {
		// Neighbour discovery, MLD and router messages (RFC 4861, RFC
		// 3810) and other ICMP informational messages are not tracked:
		// Linux leaves NDP untracked for the same reason.
		p.ctst = StateUntracked
		return
	}
	t, ok := tupleOf(v)
	if !ok {
		p.ctst = StateInvalid
		ct.stats.invalid.Add(1)
		return
	}
	for range 2 {
		if ct.trackTuple(p, v, t, rep, payload, now) {
			return
		}
	}
	// Lost the race to insert twice: another goroutine keeps inserting
	// and removing this flow.
	p.ctst = StateInvalid
	ct.stats.invalid.Add(1)
}

// trackTuple is track for tuple t; false means another packet of the flow
// inserted it meanwhile: look again.
func (ct *Conntrack) trackTuple(p *Packet, v *view, t Tuple, rep bool, payload []byte, now time.Time) bool {
	c, dir := ct.lookup(t, now)
	if c != nil && v.proto == ip.ProtocolTCP && dir == dirOriginal && v.flags&(flagSYN|flagACK) == flagSYN &&
		(c.tcp == TCPTimeWait || c.tcp == TCPClose) {
		// A new SYN on a closed or TIME-WAIT tuple opens a new
		// connection (RFC 9293 §3.10.7.4 lets TIME-WAIT accept one).
		c.mu.Unlock()
		ct.mu.Lock()
		ct.remove(c)
		ct.mu.Unlock()
		c = nil
	}
	if c == nil {
		if rep {
			p.ctst = StateInvalid // an echo reply to no request
			ct.stats.invalid.Add(1)
			return true
		}
		c = &conn{tuple: [2]Tuple{t, t.Reverse()}}
		if v.proto == ip.ProtocolTCP && !ct.tcpNew(c, v, payload) {
			p.ctst = StateInvalid
			ct.stats.invalid.Add(1)
			return true
		}
		c.deadline = now.Add(ct.timeout(c))
		ok, lost := ct.insert(c, now)
		if lost {
			return false
		}
		if !ok {
			ct.fst.DropConntrackFull.Add(1)
			p.ctst = StateInvalid
			return true
		}
		p.ct, p.dir, p.ctst = c, dirOriginal, StateNew
		return true
	}
	defer c.mu.Unlock()
	if v.proto == ip.ProtocolTCP && !ct.tcpPacket(c, dir, v, payload) {
		p.ct, p.dir, p.ctst = c, dir, StateInvalid
		ct.stats.invalid.Add(1)
		return true
	}
	if dir == dirReply {
		c.seenRep = true
	}
	if v.proto == ip.ProtocolUDP && c.seenRep {
		// Assured once traffic went both ways (Linux's udp_packet on
		// IPS_SEEN_REPLY: the stream timeout and IPS_ASSURED).
		c.assured = true
	}
	c.deadline = now.Add(ct.timeout(c))
	p.ct, p.dir = c, dir
	if c.seenRep {
		p.ctst = StateEstablished
	} else {
		p.ctst = StateNew
	}
	return true
}

func (ct *Conntrack) timeout(c *conn) time.Duration {
	switch c.tuple[0].Proto {
	case ip.ProtocolTCP:
		return ct.cfg.TCP[c.tcp]
	case ip.ProtocolUDP:
		if c.seenRep {
			return ct.cfg.UDPStream
		}
		return ct.cfg.UDP
	case ip.ProtocolICMP, ip.ProtocolICMPv6:
		return ct.cfg.ICMP
	}
	return ct.cfg.Generic
}

// related sets p RELATED when its ICMP error quotes a datagram of a
// tracked connection (RFC 792; RFC 4443 §2.4: the error quotes "as much of
// invoking packet as possible"), else INVALID.
func (ct *Conntrack) related(p *Packet, v *view, payload []byte, now time.Time) {
	inner, _, ok := quotedTuple(payload[8:], v.v6)
	if !ok {
		p.ctst = StateInvalid
		return
	}
	// The quoted datagram went the other way: the error's own direction
	// is that of the quoted tuple reversed.
	c, dir := ct.lookup(inner.Reverse(), now)
	if c == nil {
		p.ctst = StateInvalid
		ct.stats.invalid.Add(1)
		return
	}
	c.mu.Unlock()
	p.ct, p.dir, p.ctst = c, dir, StateRelated
}

// quotedTuple parses the datagram an ICMP error quotes: its IP header and
// the first 8 bytes of its transport header, enough for ports or the echo
// identifier (RFC 792: "Internet Header + 64 bits of Original Data
// Datagram"). It returns the tuple and the offset of the transport header.
func quotedTuple(b []byte, v6 bool) (Tuple, int, bool) {
	var t Tuple
	var off int
	if !v6 {
		// RFC 791 §3.1.
		if len(b) < 20 || b[0]>>4 != 4 {
			return t, 0, false
		}
		off = int(b[0]&0x0f) * 4
		if off < 20 || len(b) < off+8 {
			return t, 0, false
		}
		if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
			return t, 0, false // a non-first fragment carries no ports
		}
		t.Proto = b[9]
		t.Src, t.Dst = netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
	} else {
		// RFC 8200 §3; extension headers are not walked.
		if len(b) < 48 || b[0]>>4 != 6 {
			return t, 0, false
		}
		off = 40
		t.Proto = b[6]
		t.Src, t.Dst = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
	}
	l4 := b[off:]
	switch t.Proto {
	case ip.ProtocolTCP, ip.ProtocolUDP:
		t.SrcPort, t.DstPort = binary.BigEndian.Uint16(l4[0:]), binary.BigEndian.Uint16(l4[2:])
	case ip.ProtocolICMP, ip.ProtocolICMPv6:
		echoReq := (t.Proto == ip.ProtocolICMP && !v6 && l4[0] == icmpEcho) || (t.Proto == ip.ProtocolICMPv6 && v6 && l4[0] == icmp6EchoRequest)
		echoRep := (t.Proto == ip.ProtocolICMP && !v6 && l4[0] == icmpEchoReply) || (t.Proto == ip.ProtocolICMPv6 && v6 && l4[0] == icmp6EchoReply)
		if !echoReq && !echoRep {
			return t, 0, false // no error about an error (RFC 1122 §3.2.2)
		}
		id := binary.BigEndian.Uint16(l4[4:])
		t.SrcPort, t.DstPort = id, id
	}
	return t, off, true
}

// List writes the table in the form of conntrack -L, one entry a line,
// sorted by original tuple, with the seconds each has left at now.
func (ct *Conntrack) List(w io.Writer, now time.Time) error {
	ct.mu.Lock()
	var lines []string
	for x := ct.head; x != nil; x = x.next {
		x.mu.Lock()
		if now.Before(x.deadline) {
			lines = append(lines, x.format(now))
		}
		x.mu.Unlock()
	}
	ct.mu.Unlock()
	sort.Strings(lines)
	for _, l := range lines {
		if _, err := io.WriteString(w, l+"\n"); err != nil {
			return err
		}
	}
	return nil
}

func (c *conn) format(now time.Time) string {
	o := c.tuple[0]
	name := protoName(o.Proto)
	if o.Proto == ip.ProtocolICMPv6 {
		name = "icmpv6"
	}
	s := fmt.Sprintf("%-8s %d %d ", name, o.Proto, int(c.deadline.Sub(now)/time.Second))
	if o.Proto == ip.ProtocolTCP {
		s += c.tcp.String() + " "
	}
	s += tupleString(o, false)
	if !c.seenRep {
		s += " [UNREPLIED]"
	}
	s += " " + tupleString(c.tuple[1], true)
	if c.assured {
		s += " [ASSURED]"
	}
	return s + " mark=0 use=1"
}

func tupleString(t Tuple, reply bool) string {
	s := fmt.Sprintf("src=%s dst=%s", t.Src, t.Dst)
	switch t.Proto {
	case ip.ProtocolTCP, ip.ProtocolUDP:
		s += fmt.Sprintf(" sport=%d dport=%d", t.SrcPort, t.DstPort)
	case ip.ProtocolICMP:
		typ := icmpEcho
		if reply {
			typ = icmpEchoReply
		}
		s += fmt.Sprintf(" type=%d code=0 id=%d", typ, t.SrcPort)
	case ip.ProtocolICMPv6:
		typ := icmp6EchoRequest
		if reply {
			typ = icmp6EchoReply
		}
		s += fmt.Sprintf(" type=%d code=0 id=%d", typ, t.SrcPort)
	}
	return s
}
