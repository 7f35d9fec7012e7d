package tcptest

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ustack/ustack/internal/tcpdemux"
	"github.com/ustack/ustack/tcp"
)

// The addresses of an exchange, packetdrill's defaults: the stack under test
// is LocalAddr and the scripted peer RemoteAddr (192.0.2.0/24 is TEST-NET-1
// of RFC 5737). They never leave the process.
var (
	LocalAddr  = netip.AddrFrom4([4]byte{192, 168, 0, 1})
	RemoteAddr = netip.AddrFrom4([4]byte{192, 0, 2, 1})
)

// The addresses of an IPv6 exchange, from packetdrill's IPv6 defaults
// (its config.c): the stack under test in the unique local prefix
// fd3d:fa7b:d17d::/48 (RFC 4193; packetdrill picks an address in it at
// random, this is its first), the peer 2001:db8::1 in the documentation
// prefix (RFC 3849). They never leave the process.
var (
	LocalAddr6  = netip.MustParseAddr("fd3d:fa7b:d17d::1")
	RemoteAddr6 = netip.MustParseAddr("2001:db8::1")
)

// Family is the IP version an exchange runs over: the addresses of the
// stack and the peer, the pseudo-header of the checksums, the headers an
// MTU holds and the headers in captures.
type Family uint8

// The families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns "IPv4" or "IPv6".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", uint8(f))
}

// HeaderLen returns the octets of IP and TCP headers without options that
// an MTU holds besides the payload: 40 for IPv4 (RFC 9293 §3.7.1, RFC 879)
// and 60 for IPv6 (RFC 8200 §8.3: "the MSS must be computed as the
// maximum packet size minus 60 octets").
func (f Family) HeaderLen() int {
	if f == IPv6 {
		return 60
	}
	return 40
}

// minMTU is the smallest MTU of the family: RFC 791's 68 octets for IPv4
// and RFC 8200 §5's minimum link MTU of 1280 for IPv6.
func (f Family) minMTU() int {
	if f == IPv6 {
		return 1280
	}
	return 68
}

// addrs returns the stack's and the peer's default addresses.
func (f Family) addrs() (local, remote netip.Addr) {
	if f == IPv6 {
		return LocalAddr6, RemoteAddr6
	}
	return LocalAddr, RemoteAddr
}

// DefaultMTU is the MTU of the stack's link unless SetMTU says otherwise:
// Ethernet's, as packetdrill's TUN device has by default.
const DefaultMTU = 1500

// Epoch is virtual time zero: every Stack starts its clock there.
var Epoch = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// DefaultMSS is the MSS an IPv4 Stack advertises unless told otherwise:
// an Ethernet MTU of 1500 less 40 octets of IPv4 and TCP headers
// (RFC 9293 §3.7.1).
const DefaultMSS = DefaultMTU - 40

// DefaultMSS6 is the MSS an IPv6 Stack advertises unless told otherwise:
// the same MTU less 60 octets of IPv6 and TCP headers (RFC 8200 §8.3).
const DefaultMSS6 = DefaultMTU - 60

// isnKey keys the stack's ISN generator. It is fixed so that runs are
// reproducible; scripts never see absolute sequence numbers anyway.
var isnKey = [32]byte{'u', 's', 't', 'a', 'c', 'k', ' ', 't', 'c', 'p', 't', 'e', 's', 't'}

// ErrPortInUse is returned by Listen and Dial for a port already taken.
var ErrPortInUse = errors.New("tcptest: port in use")

// Stack drives ustack's pure TCP core (package tcp) in virtual time through
// the demultiplexer package stack uses (internal/tcpdemux): the 4-tuple
// table of connections, the listeners, the TIME-WAIT records that closed
// connections become, resets for segments that reach none of them; an
// Output that records every segment, and a clock that moves only when told
// to. It starts no goroutine and never sleeps, so an exchange runs the
// same way every time, in microseconds.
//
// A Stack is not safe for concurrent use.
type Stack struct {
	fam           Family
	local, remote netip.Addr

	cfg   tcp.Config
	stats tcp.Stats
	mss   uint16
	now   time.Time
	isn   *tcp.ISNGenerator
	out   recorder

	demux     tcpdemux.Demux[*entry, *demuxListener]
	order     []*entry                // live connections in creation order (timers fire in this order)
	listeners map[uint16]*Listener    // by port, for the timers (the demultiplexer has them by address)
	iss       map[tcp.Tuple]tcp.Value // ISS of the latest connection on each tuple
	seq       int
	nextPort  uint16

	pmtu map[netip.Addr]pmtuEntry // path MTUs lowered by ICMP, per destination (icmp.go)

	log   []Packet // every segment, both directions
	queue []int    // indexes into log of outbound segments not taken yet

	onChange func()
	err      error
}

// entry is a connection in the table: the demultiplexer's
// tcpdemux.Endpoint.
type entry struct {
	s   *Stack
	c   *tcp.Conn
	seq int
}

// Deliver implements tcpdemux.Endpoint, as the stack's endpoints do but
// without a lock or a backlog: the Stack is single-threaded.
func (e *entry) Deliver(t tcp.Tuple, seg tcp.Segment) bool {
	s := e.s
	if !tcpdemux.Input(e.c, s.now, seg, &s.out) {
		// A SYN reopening the 4-tuple in TIME-WAIT: the listener takes it.
		s.remove(e)
		return false
	}
	return true
}

// NewStack returns an IPv4 stack whose connections use cfg (start from
// tcp.DefaultConfig). Its clock reads Epoch.
func NewStack(cfg tcp.Config) *Stack { return NewStackFamily(cfg, IPv4) }

// NewStackFamily returns a stack of family f (IPv4 when f is neither IPv4
// nor IPv6) at f's LocalAddr talking to a peer at f's RemoteAddr
// (LocalAddr6 and RemoteAddr6 for IPv6), advertising the MSS of
// DefaultMTU, whose connections use cfg. Its clock reads Epoch.
func NewStackFamily(cfg tcp.Config, f Family) *Stack {
	if f != IPv6 {
		f = IPv4
	}
	local, remote := f.addrs()
	s := &Stack{
		fam:       f,
		local:     local,
		remote:    remote,
		cfg:       cfg,
		mss:       uint16(DefaultMTU - f.HeaderLen()),
		now:       Epoch,
		isn:       tcp.NewISNGenerator(isnKey),
		listeners: make(map[uint16]*Listener),
		iss:       make(map[tcp.Tuple]tcp.Value),
		nextPort:  32768,
	}
	s.cfg.Stats = &s.stats
	s.cfg.SYNCookieHash = s.isn.CookieHash
	s.out.s = s
	s.demux.Init(tcpdemux.Config{TCP: &s.cfg, Now: s.Now, Output: &s.out})
	return s
}

// Config returns the configuration new connections and listeners use.
// Changing it affects connections created afterwards (and, because the
// core reads its Config as it goes, existing ones).
func (s *Stack) Config() *tcp.Config { return &s.cfg }

// Stats returns the counters of every connection of the stack.
func (s *Stack) Stats() *tcp.Stats { return &s.stats }

// SetMSS sets the MSS advertised by connections created afterwards.
func (s *Stack) SetMSS(mss uint16) { s.mss = mss }

// SetMTU sets the MTU of the stack's link: connections created afterwards
// advertise its MSS, mtu less the family's HeaderLen. An MTU below the
// family's minimum (68 octets for IPv4, RFC 791; 1280 for IPv6, RFC 8200
// §5) or above 65535 is an error.
func (s *Stack) SetMTU(mtu int) error {
	if mtu < s.fam.minMTU() || mtu > 65535 {
		return fmt.Errorf("tcptest: SetMTU: MTU %d outside %d-65535 for %v", mtu, s.fam.minMTU(), s.fam)
	}
	s.mss = uint16(mtu - s.fam.HeaderLen())
	return nil
}

// Family returns the stack's IP version.
func (s *Stack) Family() Family { return s.fam }

// LocalAddr returns the address of the stack under test: LocalAddr, or
// LocalAddr6 for IPv6.
func (s *Stack) LocalAddr() netip.Addr { return s.local }

// RemoteAddr returns the address of the scripted peer: RemoteAddr, or
// RemoteAddr6 for IPv6.
func (s *Stack) RemoteAddr() netip.Addr { return s.remote }

// MSS returns the MSS the stack advertises by default.
func (s *Stack) MSS() uint16 { return s.mss }

// Now returns the virtual time.
func (s *Stack) Now() time.Time { return s.now }

// Elapsed returns the virtual time since Epoch.
func (s *Stack) Elapsed() time.Duration { return s.now.Sub(Epoch) }

// Err returns the first inconsistency the stack detected in the core (a
// timer that stays due after Tick), or nil.
func (s *Stack) Err() error { return s.err }

// OnChange registers f to be called after every call into the core (a
// segment delivered, a timer fired, a user call): the script runner uses
// it to complete blocking system calls at the virtual time the core
// allows them.
func (s *Stack) OnChange(f func()) { s.onChange = f }

// EphemeralPort returns the next local port for an active open, counting
// up from 32768 (the start of Linux's default ip_local_port_range).
func (s *Stack) EphemeralPort() uint16 {
	for {
		p := s.nextPort
		s.nextPort++
		if s.nextPort == 0 {
			s.nextPort = 32768
		}
		if _, ok := s.listeners[p]; ok {
			continue
		}
		return p
	}
}

// ISS returns the initial send sequence number of the latest connection
// the stack created on tuple t.
func (s *Stack) ISS(t tcp.Tuple) (tcp.Value, bool) {
	v, ok := s.iss[t]
	return v, ok
}

// Conn returns the connection with 4-tuple t, if the table has one (a
// connection its user closed leaves it in TIME-WAIT, for a record; see
// TimeWait).
func (s *Stack) Conn(t tcp.Tuple) *Conn {
	if e, ok := s.demux.Lookup(t); ok {
		return &Conn{s: s, c: e.c}
	}
	return nil
}

// TimeWait reports whether 4-tuple t has a TIME-WAIT record: its
// connection, closed by its user, left the table in TIME-WAIT (as in
// package stack) and the record answers for it until 2*MSL has passed.
func (s *Stack) TimeWait(t tcp.Tuple) bool {
	s.demux.ExpireTimeWait(s.now)
	return s.demux.HoldsTimeWait(t)
}

// Conns returns the connections in the table, oldest first.
func (s *Stack) Conns() []*Conn {
	cs := make([]*Conn, 0, len(s.order))
	for _, e := range s.order {
		cs = append(cs, &Conn{s: s, c: e.c})
	}
	return cs
}

// defaults fills in the stack's configuration and MSS where Listen and
// Dial were given none, and makes the configuration count into the
// stack's Stats.
func (s *Stack) defaults(cfg *tcp.Config, mss uint16) (*tcp.Config, uint16) {
	if cfg == nil {
		cfg = &s.cfg
	}
	if cfg.Stats == nil {
		cfg.Stats = &s.stats
	}
	if cfg.SYNCookieHash == nil {
		cfg.SYNCookieHash = s.isn.CookieHash
	}
	if mss == 0 {
		mss = s.mss
	}
	return cfg, mss
}

// Listen opens a listener on the stack's address and port with the given backlog. cfg,
// if not nil, replaces the stack's configuration for the connections the
// listener creates; mss, if not zero, the MSS they advertise.
func (s *Stack) Listen(port uint16, backlog int, cfg *tcp.Config, mss uint16) (*Listener, error) {
	if port == 0 {
		return nil, fmt.Errorf("tcptest: Listen: port 0")
	}
	cfg, mss = s.defaults(cfg, mss)
	dl, ok := s.demux.Listen(netip.AddrPortFrom(s.local, port), port, port, func(local netip.AddrPort) *demuxListener {
		return &demuxListener{s: s, l: tcp.NewListener(cfg, local, backlog), mss: mss, port: port}
	})
	if !ok {
		return nil, ErrPortInUse
	}
	l := (*Listener)(dl)
	s.listeners[port] = l
	return l, nil
}

// Dial performs an active open from the stack's address and localPort (an
// ephemeral port when 0) to remote, an address of the stack's family. cfg
// and mss are as for Listen.
func (s *Stack) Dial(localPort uint16, remote netip.AddrPort, cfg *tcp.Config, mss uint16) (*Conn, error) {
	if !remote.Addr().IsValid() || remote.Addr().Is4() != (s.fam == IPv4) {
		return nil, fmt.Errorf("tcptest: Dial: remote address %v is not an %v address", remote.Addr(), s.fam)
	}
	if localPort == 0 {
		localPort = s.EphemeralPort()
	}
	t := tcp.Tuple{Local: netip.AddrPortFrom(s.local, localPort), Remote: remote}
	e := &entry{s: s}
	if !s.demux.Add(t, e) {
		return nil, ErrPortInUse // a connection, or a TIME-WAIT record
	}
	cfg, mss = s.defaults(cfg, mss)
	iss := s.isn.ISN(t, s.now)
	e.c = tcp.Dial(cfg, t, iss, mss, s.now, &s.out)
	s.applyPathMTU(e.c)
	s.add(e, iss)
	s.settle()
	return &Conn{s: s, c: e.c}, nil
}

// add puts e, in the table already, in the creation order.
func (s *Stack) add(e *entry, iss tcp.Value) {
	e.seq = s.seq
	s.seq++
	s.order = append(s.order, e)
	s.iss[e.c.Tuple()] = iss
}

// remove takes e out of the table and the creation order.
func (s *Stack) remove(e *entry) {
	s.demux.Remove(e.c.Tuple(), e)
	s.unorder(e)
}

func (s *Stack) unorder(e *entry) {
	for i, o := range s.order {
		if o == e {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
}

// settle runs after every call into the core, as the stack's afterLocked
// does: it moves connections that completed their handshake onto their
// listener's accept queue (Listener.Promote), deletes CLOSED connections
// from the table, replaces those their users closed in TIME-WAIT by their
// records (tcp.Conn.TimeWait, tcpdemux.Demux.EnterTimeWait), and tells
// the OnChange hook.
func (s *Stack) settle() {
	for i := 0; i < len(s.order); i++ {
		e := s.order[i]
		c := e.c
		if l := c.Listener(); l != nil && c.Established() && !c.Accepted() {
			l.Promote(c)
		}
		if c.Done() {
			s.remove(e)
			i--
			continue
		}
		if r, ok := c.TimeWait(); ok {
			// The Conn goes (its Conn value still answers its user's
			// calls); a small record answers for it.
			s.demux.EnterTimeWait(e, r)
			s.unorder(e)
			i--
		}
	}
	if s.onChange != nil {
		s.onChange()
	}
}

// Inject delivers seg, a complete TCP segment (header with a valid
// checksum, then payload) sent by t.Remote to t.Local, and demultiplexes it
// with the stack's demultiplexer (internal/tcpdemux): to the connection of
// its 4-tuple, else to its TIME-WAIT record, else to the listener of its
// address and port, else to tcp.Reset (RFC 9293 §3.10.7.1). It returns the
// error of tcp.ParseSegment for a malformed segment, which is dropped.
func (s *Stack) Inject(t tcp.Tuple, seg []byte) error {
	b := append([]byte(nil), seg...)
	s.log = append(s.log, Packet{Time: s.now, Dir: In, Tuple: t, Data: b})
	sg, err := tcp.ParseSegment(b, t.Remote.Addr(), t.Local.Addr())
	if err != nil {
		return err
	}
	s.demux.Deliver(t, sg)
	s.settle()
	return nil
}

// demuxListener is a Listener as the demultiplexer sees it
// (tcpdemux.Listener), so that Deliver stays out of Listener's API.
type demuxListener Listener

// Deliver implements tcpdemux.Listener, as the stack's listeners do.
func (dl *demuxListener) Deliver(t tcp.Tuple, seg tcp.Segment) {
	l := (*Listener)(dl)
	s := l.s
	var iss tcp.Value
	if seg.Flags().Has(tcp.FlagSYN) {
		iss = s.isn.ISN(t, s.now)
	}
	if c := l.l.Input(s.now, t, seg, iss, l.mss, &s.out); c != nil {
		e := &entry{s: s, c: c}
		if !s.demux.Add(t, e) {
			// Cannot happen: the demultiplexer found no connection.
			c.Abort(s.now, &s.out)
			return
		}
		s.applyPathMTU(c)
		s.add(e, s.iss[t]) // recorded from the SYN-ACK
	}
}

// NextDeadline returns the earliest timer of any connection or listener
// (a SYN-ACK retransmission), or the zero Time when no timer runs.
func (s *Stack) NextDeadline() time.Time {
	d, _, _ := s.nextDue()
	return d
}

// nextDue returns the earliest deadline and whose it is: a connection's
// (first in creation order among equals) or else a listener's (the lowest
// port among equals).
func (s *Stack) nextDue() (time.Time, *entry, *Listener) {
	var d time.Time
	var first *entry
	var firstL *Listener
	for _, e := range s.order {
		t := e.c.NextDeadline()
		if t.IsZero() {
			continue
		}
		if first == nil || t.Before(d) {
			d, first = t, e
		}
	}
	for _, l := range s.listeners {
		t := l.l.NextDeadline()
		if t.IsZero() {
			continue
		}
		if first == nil && firstL == nil || t.Before(d) || t.Equal(d) && first == nil && l.port < firstL.port {
			d, first, firstL = t, nil, l
		}
	}
	return d, first, firstL
}

// maxTicksPerInstant bounds the timer loop at one instant: a connection
// whose deadline stays due after Tick is a bug in the core, reported by Err.
const maxTicksPerInstant = 10000

// AdvanceTo moves the clock to t, firing every connection's timers in
// deadline order on the way: while the earliest deadline is not after t,
// the clock moves to it and that connection's Tick runs. A t before Now
// is ignored.
func (s *Stack) AdvanceTo(t time.Time) { s.run(t, false) }

// AdvanceBefore moves the clock to t like AdvanceTo but fires only the
// timers due strictly before t: something the test does at t then comes
// before a timer due at t, as a packet injected at t reaches a kernel
// before its timer for t fires (timers never fire early, and seldom
// exactly on time).
func (s *Stack) AdvanceBefore(t time.Time) {
	if !t.After(s.now) {
		return
	}
	s.run(t.Add(-time.Nanosecond), false)
	s.now = t
}

// Advance moves the clock forward by d (see AdvanceTo).
func (s *Stack) Advance(d time.Duration) { s.run(s.now.Add(d), false) }

// AdvanceUntilSent moves the clock towards limit like AdvanceTo, but stops
// at the first instant at which a segment is waiting in the queue (see
// Next). It reports whether one is.
func (s *Stack) AdvanceUntilSent(limit time.Time) bool { return s.run(limit, true) }

func (s *Stack) run(limit time.Time, stopOnSend bool) bool {
	ticks := 0
	last := s.now
	for s.err == nil {
		if stopOnSend && len(s.queue) > 0 {
			return true
		}
		d, e, l := s.nextDue()
		if e == nil && l == nil || d.After(limit) {
			break
		}
		if d.After(s.now) {
			s.now = d
		}
		if s.now.Equal(last) {
			ticks++
			if ticks > maxTicksPerInstant {
				if l != nil {
					s.err = fmt.Errorf("tcptest: core bug: the listener on port %d keeps a due timer (%v) after Tick at %v",
						l.port, l.l.NextDeadline().Sub(Epoch), s.now.Sub(Epoch))
				} else {
					s.err = fmt.Errorf("tcptest: core bug: %v keeps a due timer (%v) after Tick at %v",
						e.c.Tuple(), e.c.NextDeadline().Sub(Epoch), s.now.Sub(Epoch))
				}
				break
			}
		} else {
			ticks, last = 0, s.now
		}
		if l != nil {
			l.l.Tick(s.now, &s.out)
		} else {
			e.c.Tick(s.now, &s.out)
		}
		s.settle()
	}
	if stopOnSend && len(s.queue) > 0 {
		return true
	}
	if limit.After(s.now) {
		s.now = limit
	}
	s.demux.ExpireTimeWait(s.now)
	return len(s.queue) > 0
}

// Next takes the oldest outbound segment not taken yet.
func (s *Stack) Next() (Packet, bool) {
	if len(s.queue) == 0 {
		return Packet{}, false
	}
	p := s.log[s.queue[0]]
	s.queue = s.queue[1:]
	return p, true
}

// Peek returns the oldest outbound segment not taken yet without taking it.
func (s *Stack) Peek() (Packet, bool) {
	if len(s.queue) == 0 {
		return Packet{}, false
	}
	return s.log[s.queue[0]], true
}

// Queued returns the outbound segments not taken yet, oldest first.
func (s *Stack) Queued() []Packet {
	ps := make([]Packet, len(s.queue))
	for i, j := range s.queue {
		ps[i] = s.log[j]
	}
	return ps
}

// Log returns every segment of the exchange so far, in both directions.
func (s *Stack) Log() []Packet { return s.log }

// recorder is the stack's tcp.Output: it keeps a copy of every segment.
type recorder struct{ s *Stack }

// Buffer implements tcp.Output.
func (r *recorder) Buffer(n int) ([]byte, int) { return make([]byte, n), 0 }

// Send implements tcp.Output. A SYN records its sequence number as the
// ISS of the tuple's latest connection (a listener's SYN-ACK goes out
// before the connection exists, and may carry a cookie).
func (r *recorder) Send(t tcp.Tuple, buf []byte, off int) {
	s := r.s
	if seg := tcp.Segment(buf[off:]); len(seg) >= tcp.HeaderLen && seg.Flags().Has(tcp.FlagSYN) {
		s.iss[t] = seg.Seq()
	}
	s.queue = append(s.queue, len(s.log))
	s.log = append(s.log, Packet{Time: s.now, Dir: Out, Tuple: t, Data: append([]byte(nil), buf[off:]...)})
}
