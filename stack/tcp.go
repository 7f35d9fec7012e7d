package stack

import (
	"container/heap"
	crand "crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/tcp"
)

// Ephemeral port range, as Linux's default ip_local_port_range and within
// the range RFC 6056 §3.2 recommends (1024-65535).
const (
	ephemeralFirst = 32768
	ephemeralLast  = 60999
)

// DefaultBacklog is the listen backlog ListenTCP uses (SOMAXCONN's value).
const DefaultBacklog = 4096

// tcpState is the stack's TCP: the 4-tuple table, the listeners, the ISN
// key and the connection timers. The protocol itself lives in package tcp.
type tcpState struct {
	cfg   tcp.Config
	stats tcp.Stats
	isn   *tcp.ISNGenerator

	mu        sync.RWMutex // guards conns and listeners
	conns     map[tcp.Tuple]*tcpEndpoint
	listeners map[netip.AddrPort]*TCPListener

	portTable [portTableLen]atomic.Uint32 // RFC 6056 Algorithm 4's counters

	tw timeWaitTable // closed connections in TIME-WAIT (timewait.go)

	timerMu sync.Mutex // guards timers and wakeAt
	timers  timerHeap
	wakeAt  time.Time // the earliest deadline the timer goroutine knows of; zero if none
}

func (s *Stack) initTCP(cfg *tcp.Config) {
	t := &s.tcp
	if cfg != nil {
		t.cfg = cfg.WithDefaults() // Options.Validate checked it
	} else {
		t.cfg = tcp.DefaultConfig()
	}
	t.cfg.Stats = &t.stats
	var key [32]byte
	if _, err := crand.Read(key[:]); err != nil {
		panic("stack: crypto/rand failed: " + err.Error()) // cannot happen on Linux (crypto/rand never fails since Go 1.24)
	}
	t.isn = tcp.NewISNGenerator(key)
	t.cfg.TimestampOffset = t.isn.TimestampOffset
	t.cfg.SYNCookieHash = t.isn.CookieHash
	t.conns = make(map[tcp.Tuple]*tcpEndpoint)
	t.tw.init(s.opts.MaxTimeWait)
	t.listeners = make(map[netip.AddrPort]*TCPListener)
}

// tcpEndpoint is one connection: the pure core's Conn plus what the stack
// needs to drive it (its lock, the goroutines waiting on it, its timer).
type tcpEndpoint struct {
	s  *Stack
	mu sync.Mutex // guards c, out, listener and scheduled; held around every call into c
	c  *tcp.Conn
	// out is the connection's Output; its buffer is only in use during a
	// call into c, under mu.
	out tcpOutput
	// listener created c and waits for it to be established, or nil.
	listener *TCPListener

	// readable and writable are signalled when c may have become readable
	// or writable (or established); each is made, under mu, by the first
	// goroutine that waits on it (readChan, writeChan), nil before.
	readable chan struct{}
	writable chan struct{}

	scheduled time.Time // the deadline last put in the timer heap, zero if none
	removed   bool      // deleted from the table
	logged    uint8     // the debug events logged so far (tcplog.go)

	// tm is the connection's one entry in the timer heap.
	tm timerEntry
}

// timerEntry is the one entry of a connection or of a listener in the
// stack's timer heap: exactly one of ep and ln is set. when and index
// (-1 when not in the heap) are guarded by tcpState.timerMu.
type timerEntry struct {
	when  time.Time
	index int
	ep    *tcpEndpoint
	ln    *TCPListener
}

func newTCPEndpoint(s *Stack) *tcpEndpoint {
	ep := &tcpEndpoint{
		s: s,
	}
	ep.tm = timerEntry{index: -1, ep: ep}
	ep.out.s = s
	return ep
}

// readChan returns ep.readable, making it if needed; ep.mu is held.
func (ep *tcpEndpoint) readChan() chan struct{} {
	if ep.readable == nil {
		ep.readable = make(chan struct{}, 1)
	}
	return ep.readable
}

// writeChan returns ep.writable, making it if needed; ep.mu is held.
func (ep *tcpEndpoint) writeChan() chan struct{} {
	if ep.writable == nil {
		ep.writable = make(chan struct{}, 1)
	}
	return ep.writable
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// afterLocked runs after every call into the core, with ep.mu held: it
// wakes waiting readers and writers, moves a newly established connection
// to its listener's accept queue, schedules the next timer and removes a
// finished connection from the table.
func (ep *tcpEndpoint) afterLocked() {
	c := ep.c
	if c.Readable() {
		signal(ep.readable)
	}
	// Dial waits on writable too, for the handshake to end either way.
	if c.Writable() {
		signal(ep.writable)
	}
	ep.logOpenedLocked()
	if l := ep.listener; l != nil && c.Established() && !c.Accepted() {
		l.mu.Lock()
		l.l.Promote(c)
		l.mu.Unlock()
		signal(l.ready)
	}
	if c.Done() {
		if !ep.removed {
			ep.logEndedLocked()
			ep.removed = true
			ep.s.removeTCP(ep)
		}
		return
	}
	if ep.removed {
		return
	}
	if r, ok := c.TimeWait(); ok {
		ep.logEndedLocked()
		ep.s.enterTimeWait(ep, r) // the Conn goes; a small record answers for it
		return
	}
	// The heap entry only ever moves earlier here: a deadline that moved
	// later (an RTO restarted by an ACK) costs one early wake-up, at which
	// the connection is ticked and rescheduled, instead of heap work on
	// every segment.
	if d := c.NextDeadline(); !d.IsZero() && (ep.scheduled.IsZero() || d.Before(ep.scheduled)) {
		ep.scheduled = d
		ep.s.schedule(&ep.tm, d)
	}
}

// tcpOutput puts the core's segments on the wire: Buffer hands out a frame
// buffer with room for the Ethernet and IPv4 headers in front, Send fills
// them in and transmits.
type tcpOutput struct {
	s  *Stack
	pb *packetBuf
}

// Buffer implements tcp.Output.
func (o *tcpOutput) Buffer(n int) ([]byte, int) {
	if o.pb == nil {
		o.pb = o.s.bufs.Get().(*packetBuf)
	}
	if headroom+n > len(o.pb.b) {
		n = len(o.pb.b) - headroom
	}
	return o.pb.b[:headroom+n], headroom
}

// Send implements tcp.Output.
func (o *tcpOutput) Send(t tcp.Tuple, buf []byte, off int) {
	pb := o.pb
	o.pb = nil
	if pb == nil || off != headroom {
		return
	}
	o.s.sendIPv4(pb, len(buf)-off, t.Local.Addr(), t.Remote.Addr(), ipv4.ProtocolTCP)
	o.s.bufs.Put(pb)
}

// deliverTCP demultiplexes a segment by its 4-tuple: to its connection, to
// a listener, or to a reset (RFC 9293 §3.10.7.1).
func (s *Stack) deliverTCP(n *nic, h ipv4.Header, bcast bool) {
	st := s.ctr.get()
	if bcast {
		inc(&st.TCP.DropBroadcast)
		return
	}
	seg, err := tcp.ParseSegment(h.Payload(), h.Source(), h.Destination())
	if err != nil {
		if errors.Is(err, tcp.ErrChecksum) {
			inc(&st.TCP.DropBadChecksum)
		} else {
			inc(&st.TCP.DropMalformed)
		}
		return
	}
	t := tcp.Tuple{
		Local:  netip.AddrPortFrom(h.Destination(), seg.DestinationPort()),
		Remote: netip.AddrPortFrom(h.Source(), seg.SourcePort()),
	}
	s.tcp.mu.RLock()
	ep := s.tcp.conns[t]
	s.tcp.mu.RUnlock()
	if ep != nil {
		ep.mu.Lock()
		if ep.removed { // it went into the TIME-WAIT table meanwhile
			ep.mu.Unlock()
			ep = nil
		}
	}
	if ep != nil {
		// The time is read under the connection's lock, so that the calls
		// into one connection see it move forward only.
		now := s.clock.Now()
		if ep.c.State() == tcp.StateTimeWait && seg.Flags().Has(tcp.FlagSYN) && ep.c.AcceptsSYN(seg) {
			// RFC 9293 §3.10.7.4 / RFC 6191: a new SYN may reopen a
			// TIME-WAIT 4-tuple. Forget the old connection and let the
			// listener take the SYN.
			ep.logEndedLocked()
			ep.removed = true
			ep.mu.Unlock()
			s.removeTCP(ep)
		} else {
			ep.c.Input(now, seg, &ep.out)
			ep.afterLocked()
			ep.mu.Unlock()
			return
		}
	}
	if ep == nil && s.timeWaitInput(t, seg) {
		return
	}
	if n.forwards(ipv4.ProtocolTCP, t.Local.Addr()) {
		if s.forwardTCP(n, h, t, seg) {
			return
		}
	} else if l := s.findListener(t.Local); l != nil {
		l.input(n, t, seg)
		return
	}
	inc(&st.TCP.DropNoConnection)
	out := tcpOutput{s: s}
	tcp.Reset(t, seg, &out)
}

// findListener returns the listener for local, or for the wildcard address
// on local's port.
func (s *Stack) findListener(local netip.AddrPort) *TCPListener {
	s.tcp.mu.RLock()
	defer s.tcp.mu.RUnlock()
	if l := s.tcp.listeners[local]; l != nil {
		return l
	}
	return s.tcp.listeners[netip.AddrPortFrom(netip.IPv4Unspecified(), local.Port())]
}

// mssFor returns the MSS for a connection leaving through n: the MTU less
// the IPv4 and TCP headers (RFC 9293 §3.7.1, RFC 879).
func mssFor(n *nic) uint16 {
	m := n.mtu - ipv4.HeaderLen - tcp.HeaderLen
	if m > 65535 {
		m = 65535
	}
	return uint16(m)
}

// addTCP inserts ep under t; it fails if t is taken.
func (s *Stack) addTCP(t tcp.Tuple, ep *tcpEndpoint) bool {
	s.tcp.mu.Lock()
	defer s.tcp.mu.Unlock()
	if _, ok := s.tcp.conns[t]; ok || s.timeWaitHolds(t) {
		return false
	}
	s.tcp.conns[t] = ep
	return true
}

func (s *Stack) removeTCP(ep *tcpEndpoint) {
	s.unschedule(&ep.tm)
	t := ep.c.Tuple()
	s.tcp.mu.Lock()
	if s.tcp.conns[t] == ep {
		delete(s.tcp.conns, t)
	}
	s.tcp.mu.Unlock()
}

// portTableLen is the size of RFC 6056 Algorithm 4's table of counters.
const portTableLen = 256

// ephemeralPort picks a local port for a connection from src to remote
// with RFC 6056 §3.3.4 (Algorithm 4, double-hash port selection): ports
// start at a secret per-destination offset and advance by a per-bucket
// counter, so that they are unpredictable to others yet successive
// connections to one destination walk the whole range before reusing a
// port (and meeting its 4-tuple in TIME-WAIT at the peer). A port whose
// 4-tuple is live here, or that a listener holds, is skipped.
func (s *Stack) ephemeralPort(src netip.Addr, remote netip.AddrPort) (uint16, error) {
	const n = ephemeralLast - ephemeralFirst + 1
	offset, index := s.tcp.isn.PortHashes(src, remote)
	slot := &s.tcp.portTable[index%portTableLen]
	s.tcp.mu.RLock()
	defer s.tcp.mu.RUnlock()
	for i := 0; i < n; i++ {
		p := uint16(ephemeralFirst + (offset+slot.Add(1))%n)
		local := netip.AddrPortFrom(src, p)
		if _, ok := s.tcp.conns[tcp.Tuple{Local: local, Remote: remote}]; ok || s.timeWaitHolds(tcp.Tuple{Local: local, Remote: remote}) {
			continue
		}
		if s.tcp.listeners[local] != nil || s.tcp.listeners[netip.AddrPortFrom(netip.IPv4Unspecified(), p)] != nil {
			continue
		}
		return p, nil
	}
	return 0, fmt.Errorf("stack: no free ephemeral port to %v", remote)
}

// schedule asks the timer goroutine to fire e at d, moving its heap
// entry or adding it.
func (s *Stack) schedule(e *timerEntry, d time.Time) {
	t := &s.tcp
	t.timerMu.Lock()
	e.when = d
	if e.index >= 0 {
		heap.Fix(&t.timers, e.index)
	} else {
		heap.Push(&t.timers, e)
	}
	wake := t.wakeAt.IsZero() || d.Before(t.wakeAt)
	t.timerMu.Unlock()
	if wake {
		s.kick()
	}
}

// unschedule drops e's heap entry, if any.
func (s *Stack) unschedule(e *timerEntry) {
	t := &s.tcp
	t.timerMu.Lock()
	if e.index >= 0 {
		heap.Remove(&t.timers, e.index)
	}
	t.timerMu.Unlock()
}

// runTransportTimers ticks every connection and listener whose timer is
// due and returns the earliest deadline that remains.
func (s *Stack) runTransportTimers(now time.Time) time.Time {
	t := &s.tcp
	for {
		t.timerMu.Lock()
		if len(t.timers) == 0 || t.timers[0].when.After(now) {
			var next time.Time
			if len(t.timers) > 0 {
				next = t.timers[0].when
			}
			// The timer goroutine wakes no later than next; schedule
			// kicks it for anything earlier.
			t.wakeAt = next
			t.timerMu.Unlock()
			return next
		}
		e := heap.Pop(&t.timers).(*timerEntry)
		t.timerMu.Unlock()
		if e.ln != nil {
			e.ln.tick()
			continue
		}
		ep := e.ep
		ep.mu.Lock()
		ep.scheduled = time.Time{}
		if !ep.removed {
			ep.c.Tick(s.clock.Now(), &ep.out)
			ep.afterLocked()
		}
		ep.mu.Unlock()
	}
}

// timerHeap is a min-heap of connections and listeners by their timer
// deadline; each is in it at most once.
type timerHeap []*timerEntry

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].when.Before(h[j].when) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	e := x.(*timerEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}

// TCPInfo describes one connection, for Connections.
type TCPInfo = tcp.Info

// Connections returns a snapshot of every TCP connection in the table:
// 4-tuple, state, bytes in and out, retransmissions, smoothed RTT and
// congestion window.
func (s *Stack) Connections() []TCPInfo {
	if s.usable() != nil {
		return nil
	}
	s.tcp.mu.RLock()
	eps := make([]*tcpEndpoint, 0, len(s.tcp.conns))
	for _, ep := range s.tcp.conns {
		eps = append(eps, ep)
	}
	s.tcp.mu.RUnlock()
	out := s.timeWaitInfos()
	for _, ep := range eps {
		ep.mu.Lock()
		if ep.c != nil {
			out = append(out, ep.c.Info())
		}
		ep.mu.Unlock()
	}
	sortInfos(out)
	return out
}

func sortInfos(in []TCPInfo) {
	slices.SortFunc(in, func(a, b TCPInfo) int {
		if c := a.Tuple.Local.Compare(b.Tuple.Local); c != 0 {
			return c
		}
		return a.Tuple.Remote.Compare(b.Tuple.Remote)
	})
}

// closeTCP aborts every connection and listener when the stack closes.
func (s *Stack) closeTCP() {
	s.tcp.mu.Lock()
	ls := make([]*TCPListener, 0, len(s.tcp.listeners))
	for _, l := range s.tcp.listeners {
		ls = append(ls, l)
	}
	eps := make([]*tcpEndpoint, 0, len(s.tcp.conns))
	for _, ep := range s.tcp.conns {
		eps = append(eps, ep)
	}
	s.tcp.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	for _, ep := range eps {
		ep.mu.Lock()
		if !ep.c.Done() {
			ep.c.Abort(s.clock.Now(), &ep.out)
		}
		ep.afterLocked()
		ep.mu.Unlock()
	}
}
