package filter

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"sync"
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

// conn is one tracked connection.
type conn struct {
	tuple    [2]Tuple // original and reply directions
	tcp      TCPState
	win      [2]tcpWindow
	seenRep  bool // a packet went in the reply direction (IPS_SEEN_REPLY)
	assured  bool // IPS_ASSURED: not evicted early
	dnatDone bool // the nat table's PREROUTING/OUTPUT decision is made
	snatDone bool // the POSTROUTING decision is made
	dead     bool
	liberal  bool // picked up mid-stream: windows learnt, not enforced
	deadline time.Time
	prev     *conn // creation-order list, for early drop
	next     *conn
}

// ConntrackStats counts the table's events.
type ConntrackStats struct {
	Inserted, Deleted, Expired uint64
	EarlyDrop                  uint64 // unassured entries evicted for room
	InsertFailed               uint64 // no room: every entry scanned was assured
	Invalid                    uint64 // packets found INVALID
}

// Conntrack is the connection tracking table. It is safe for concurrent
// use.
type Conntrack struct {
	cfg   ConntrackConfig
	fst   *Stats
	mu    sync.Mutex // guards everything below
	m     map[Tuple]*conn
	n     int
	head  *conn // oldest
	tail  *conn
	stats ConntrackStats
}

func newConntrack(cfg ConntrackConfig, fst *Stats) *Conntrack {
	cfg.defaults()
	return &Conntrack{cfg: cfg, fst: fst, m: make(map[Tuple]*conn)}
}

// Len returns the number of tracked connections.
func (ct *Conntrack) Len() int {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.n
}

// Stats returns a copy of the table's counters.
func (ct *Conntrack) Stats() ConntrackStats {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.stats
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

// remove deletes c from the table; ct.mu is held.
func (ct *Conntrack) remove(c *conn) {
	if c.dead {
		return
	}
	c.dead = true
	for d := range 2 {
		if ct.m[c.tuple[d]] == c {
			delete(ct.m, c.tuple[d])
		}
	}
	ct.unlink(c)
	ct.n--
	ct.stats.Deleted++
}

// earlyDropScan is how many of the oldest entries an insertion into a full
// table looks at for an expired or unassured one to evict, as Linux's
// early_drop scans a bounded part of the table.
const earlyDropScan = 256

// insert adds c; ct.mu is held. A full table first loses an expired
// entry, else the oldest unassured one; if the entries scanned are all
// assured, the insert fails (a counted drop).
func (ct *Conntrack) insert(c *conn, now time.Time) bool {
	if ct.n >= ct.cfg.Max {
		var victim *conn
		i := 0
		for x := ct.head; x != nil && i < earlyDropScan; x, i = x.next, i+1 {
			if !now.Before(x.deadline) {
				victim = x
				ct.stats.Expired++
				break
			}
			if !x.assured && victim == nil {
				victim = x
			}
		}
		if victim == nil {
			ct.stats.InsertFailed++
			return false
		}
		if now.Before(victim.deadline) {
			ct.stats.EarlyDrop++
		}
		ct.remove(victim)
	}
	ct.m[c.tuple[0]] = c
	ct.m[c.tuple[1]] = c
	c.prev = ct.tail
	if ct.tail != nil {
		ct.tail.next = c
	} else {
		ct.head = c
	}
	ct.tail = c
	ct.n++
	ct.stats.Inserted++
	return true
}

// lookup returns the live connection with tuple t and the direction t is;
// an expired one is removed. ct.mu is held.
func (ct *Conntrack) lookup(t Tuple, now time.Time) (*conn, uint8) {
	c := ct.m[t]
	if c == nil {
		return nil, 0
	}
	if !now.Before(c.deadline) {
		ct.stats.Expired++
		ct.remove(c)
		return nil, 0
	}
	if c.tuple[0] == t {
		return c, dirOriginal
	}
	return c, dirReply
}

// Expire removes every entry whose timeout passed by now, and returns how
// many; the stack calls it now and then (entries also expire when found).
func (ct *Conntrack) Expire(now time.Time) int {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	n := 0
	for x := ct.head; x != nil; {
		next := x.next
		if !now.Before(x.deadline) {
			ct.remove(x)
			ct.stats.Expired++
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
// conntrack state; ct.mu is not held.
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
		ct.mu.Lock()
		ct.stats.Invalid++
		ct.mu.Unlock()
		return
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	c, dir := ct.lookup(t, now)
	if c != nil && v.proto == ip.ProtocolTCP && dir == dirOriginal && v.flags&(flagSYN|flagACK) == flagSYN &&
		(c.tcp == TCPTimeWait || c.tcp == TCPClose) {
		// A new SYN on a closed or TIME-WAIT tuple opens a new
		// connection (RFC 9293 §3.10.7.4 lets TIME-WAIT accept one).
		ct.remove(c)
		c = nil
	}
	if c == nil {
		if rep {
			p.ctst = StateInvalid // an echo reply to no request
			ct.stats.Invalid++
			return
		}
		c = &conn{tuple: [2]Tuple{t, t.Reverse()}}
		if v.proto == ip.ProtocolTCP && !ct.tcpNew(c, v, payload) {
			p.ctst = StateInvalid
			ct.stats.Invalid++
			return
		}
		c.deadline = now.Add(ct.timeout(c))
		if !ct.insert(c, now) {
			ct.fst.DropConntrackFull.Add(1)
			p.ctst = StateInvalid
			return
		}
		p.ct, p.dir, p.ctst = c, dirOriginal, StateNew
		return
	}
	if v.proto == ip.ProtocolTCP && !ct.tcpPacket(c, dir, v, payload) {
		p.ct, p.dir, p.ctst = c, dir, StateInvalid
		ct.stats.Invalid++
		return
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
	ct.mu.Lock()
	defer ct.mu.Unlock()
	// The quoted datagram went the other way: the error's own direction
	// is that of the quoted tuple reversed.
	c, dir := ct.lookup(inner.Reverse(), now)
	if c == nil {
		p.ctst = StateInvalid
		ct.stats.Invalid++
		return
	}
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
		if !now.Before(x.deadline) {
			continue
		}
		lines = append(lines, x.format(now))
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
