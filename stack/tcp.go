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

	"github.com/ustack/ustack/internal/tcpdemux"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link/vnet"
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

// tcpState is the stack's TCP: the demultiplexer (the 4-tuple table, the
// listeners and the TIME-WAIT records, shared with package tcptest), the
// ISN key and the connection timers. The protocol itself lives in package
// tcp.
type tcpState struct {
	cfg   tcp.Config
	stats tcp.Stats
	isn   *tcp.ISNGenerator

	demux tcpdemux.Demux[*tcpEndpoint, *demuxListener]
	// demuxOut sends the TIME-WAIT records' replies and the resets, under
	// the demultiplexer's records lock (tcpdemux.Config.Output).
	demuxOut tcpOutput

	portTable [portTableLen]atomic.Uint32 // RFC 6056 Algorithm 4's counters

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
	t.demuxOut.s = s
	t.demux.Init(tcpdemux.Config{TCP: &t.cfg, MaxTimeWait: s.opts.MaxTimeWait, Now: s.clock.Now, Output: &t.demuxOut})
}

// tcpEndpoint is one connection: the pure core's Conn plus what the stack
// needs to drive it (its lock, its socket backlog, the goroutines waiting
// on it, its timer).
type tcpEndpoint struct {
	s *Stack
	// mu guards c, out, txq, listener, scheduled and removed, and is held
	// around every call into c. Whoever holds it owns the connection: it
	// is taken with lock and given up with release, which processes the
	// segments the NIC readers queued on bl meanwhile (backlog.go) and then
	// writes the frames made under it (unlockAndFlush).
	mu sync.Mutex
	c  *tcp.Conn
	// out is the connection's Output; its buffer is only in use during a
	// call into c, under mu.
	out tcpOutput
	// txq holds the frames out made under mu, which unlockAndFlush
	// writes once mu is released; nil when there are none.
	txq *txBatch

	// While one goroutine writes the connection's frames with mu
	// released (writing), the frames handed over meanwhile wait in tx
	// for it, so that they leave in the order they were made.
	txMu    sync.Mutex // guards tx and writing
	tx      *txBatch
	writing bool
	// taken is set by queueFrame: out's buffer went to txq. Under mu.
	taken bool

	// listener created c and waits for it to be established, or nil.
	listener *TCPListener

	// bl is the socket backlog: segments that arrived while mu was held.
	bl backlog

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
	ep.out.ep = ep
	ep.bl.setLimit(s.tcp.cfg.ReceiveBufferSize + s.tcp.cfg.SendBufferSize)
	return ep
}

// maxQueuedFrames bounds the frames a connection holds in txq under its
// lock. A longer burst (a large window opening at once) goes to the
// goroutine writing the connection's frames if there is one, and is
// otherwise written as it is made, under the lock.
const maxQueuedFrames = 16

// txBatch is a list of finished frames, from the stack's pool (so that
// an idle connection holds none and a busy one allocates nothing).
type txBatch struct{ frames []*packetBuf }

// getBatch returns an empty batch.
func (s *Stack) getBatch() *txBatch { return s.batches.Get().(*txBatch) }

// writeBatch writes b's frames, gives their buffers back and b with them.
func (s *Stack) writeBatch(b *txBatch) {
	for i, pb := range b.frames {
		pb.nic.writeFrameOffload(pb.frame(), &pb.o)
		pb.o = ip.Offload{}
		s.bufs.Put(pb)
		b.frames[i] = nil
	}
	b.frames = b.frames[:0]
	s.batches.Put(b)
}

// queueFrame queues the finished frame pb.b[off:off+n] for via, to be
// written after ep.mu is released; ep.mu is held.
func (ep *tcpEndpoint) queueFrame(pb *packetBuf, off, n int, via *nic) {
	if ep.txq == nil {
		ep.txq = ep.s.getBatch()
	}
	pb.off, pb.n, pb.nic = off, n, via
	ep.txq.frames = append(ep.txq.frames, pb)
	ep.taken = true
	if len(ep.txq.frames) >= maxQueuedFrames {
		ep.flushLocked()
	}
}

// unlockAndFlush releases ep.mu and then writes the frames the core made
// under it, so that no other goroutine waits for the connection's lock
// while its frames go out. Every call into the core ends with it. One
// goroutine at a time writes a connection's frames: frames handed over
// while it writes are written by it, after its own, in order.
func (ep *tcpEndpoint) unlockAndFlush() {
	b := ep.txq
	if b == nil {
		ep.mu.Unlock()
		return
	}
	ep.txq = nil
	if !ep.handOffLocked(b) {
		ep.mu.Unlock()
		return
	}
	ep.mu.Unlock()
	for b != nil {
		ep.s.writeBatch(b)
		ep.txMu.Lock()
		b, ep.tx = ep.tx, nil
		if b == nil {
			ep.writing = false
		}
		ep.txMu.Unlock()
	}
}

// handOffLocked gives b to the goroutine writing the connection's frames
// and reports false, or, when none is, makes the caller that goroutine
// and reports true; ep.mu is held, so frames are handed over in the order
// they were made.
func (ep *tcpEndpoint) handOffLocked(b *txBatch) bool {
	ep.txMu.Lock()
	defer ep.txMu.Unlock()
	if !ep.writing {
		ep.writing = true
		return true
	}
	if ep.tx == nil {
		ep.tx = b
	} else {
		ep.tx.frames = append(ep.tx.frames, b.frames...)
		clear(b.frames)
		b.frames = b.frames[:0]
		ep.s.batches.Put(b)
	}
	return false
}

// flushLocked writes txq's frames now, with ep.mu held (the bound of
// maxQueuedFrames is reached), or hands them to the goroutine writing.
func (ep *tcpEndpoint) flushLocked() {
	b := ep.txq
	ep.txq = nil
	ep.txMu.Lock()
	writing := ep.writing
	ep.txMu.Unlock()
	if writing {
		ep.handOffLocked(b)
		return
	}
	// No goroutine writes, and none can start to: that takes ep.mu.
	ep.s.writeBatch(b)
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
	ep.bl.setLimit(c.ReceiveBufferSize() + c.SendBufferSize())
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
	s *Stack
	// ep, if set, is the connection whose txq takes the finished frames,
	// written once its lock is released; otherwise (a listener's
	// SYN-ACKs, a reset) frames are written at once.
	ep *tcpEndpoint
	pb *packetBuf
	// rt is the connection's cached route (route.go); like pb, it is used
	// only under the lock of the connection (or listener) that owns it.
	rt routeCache
	// v6 is set for an IPv6 connection: its segments are built at
	// headroom6, after room for the IPv6 header, so that sendIPv6 need
	// not move them. A listener's output (both families) leaves it
	// clear: its segments are moved, a copy per SYN-ACK or reset.
	v6 bool
}

// hdr is where the core builds a segment: after the Ethernet and IP
// headers of the connection's family.
func (o *tcpOutput) hdr() int {
	if o.v6 {
		return headroom6
	}
	return headroom
}

// Buffer implements tcp.Output.
func (o *tcpOutput) Buffer(n int) ([]byte, int) {
	if o.pb == nil {
		o.pb = o.s.bufs.Get().(*packetBuf)
	}
	h := o.hdr()
	if headroom+n > maxFrame {
		n = maxFrame - headroom
	}
	return o.pb.b[:h+n], h
}

// Send implements tcp.Output.
func (o *tcpOutput) Send(t tcp.Tuple, buf []byte, off int) {
	o.send(t, buf, off, ip.Offload{})
}

// SendGSO implements tcp.GSOOutput: the super-segment buf[off:] leaves
// as one datagram with GSO metadata (TCPv4 or TCPv6 by the connection's
// family, gsoSize = the core's SendMSS), which the device's TSO or,
// without it, software GSO just before the link (nic.writeFrameOffload)
// cuts into segments.
func (o *tcpOutput) SendGSO(t tcp.Tuple, buf []byte, off int, gsoSize int) {
	gso := uint8(vnet.GSOTCPv4)
	if !t.Remote.Addr().Is4() {
		gso = vnet.GSOTCPv6
	}
	o.send(t, buf, off, ip.Offload{GSOType: gso, GSOSize: uint16(gsoSize)})
}

// send is Send and SendGSO: the segment with metadata ofl.
func (o *tcpOutput) send(t tcp.Tuple, buf []byte, off int, ofl ip.Offload) {
	pb := o.pb
	o.pb = nil
	if pb == nil || off != o.hdr() {
		return
	}
	p := ip.Packet{Source: t.Local.Addr(), Destination: t.Remote.Addr(), Protocol: ip.ProtocolTCP, Payload: buf[off:], Offload: ofl}
	if o.ep == nil {
		o.s.sendCached(&o.rt, pb, &p, nil)
		o.s.bufs.Put(pb)
		return
	}
	o.ep.taken = false
	o.s.sendCached(&o.rt, pb, &p, o.ep)
	if !o.ep.taken {
		o.s.bufs.Put(pb) // dropped, held by ARP (a copy) or written as fragments
	}
}

// deliverTCP parses a segment and hands it to the demultiplexer
// (tcpdemux): to its connection, its TIME-WAIT record, a listener, or a
// reset (RFC 9293 §3.10.7.1).
func (s *Stack) deliverTCP(n *nic, p *ip.Packet) {
	st := s.ctr.get()
	if p.Broadcast {
		inc(&st.TCP.DropBroadcast)
		return
	}
	seg, err := tcpSegment(p)
	if err != nil {
		if errors.Is(err, tcp.ErrChecksum) {
			inc(&st.TCP.DropBadChecksum)
		} else {
			inc(&st.TCP.DropMalformed)
		}
		return
	}
	t := tcp.Tuple{
		Local:  netip.AddrPortFrom(p.Destination, seg.DestinationPort()),
		Remote: netip.AddrPortFrom(p.Source, seg.SourcePort()),
	}
	if seg.Flags()&(tcp.FlagSYN|tcp.FlagACK|tcp.FlagRST) == tcp.FlagSYN {
		// A SYN from a source no route leads back to can have no answer
		// (a SYN-ACK, a cookie, a reset, a challenge ACK, a forwarded
		// flow): drop it here, the one place for every SYN, before the
		// demultiplexer's lookups and before a listener or the
		// forwarder keeps anything for it, as Linux does when its route
		// lookup for the SYN-ACK fails. A spoofed flood from an
		// unroutable prefix costs one route lookup per SYN.
		if _, _, ok := s.route(t.Remote.Addr()); !ok {
			inc(&st.TCP.DropSYNNoRoute)
			return
		}
	}
	if n.forwards(ip.ProtocolTCP, t.Local.Addr()) {
		// Not our address, on a forwarding NIC: the forwarder's
		// connections and TIME-WAIT records are in the table as any, but
		// a segment they do not take goes to the forwarder instead of the
		// listeners (which never take a forwarded destination), and what
		// it refuses too is answered as for a closed port.
		if !s.tcp.demux.DeliverConn(t, seg) && !s.forwardTCP(n, p, t, seg) {
			s.tcp.demux.Reset(t, seg)
		}
		return
	}
	if segs := inputSegments(p, seg); segs > 1 {
		// A super-segment for a connection goes to it whole, counted as
		// the segments it holds; to a listener or TIME-WAIT, as one.
		if ep, ok := s.tcp.demux.Lookup(t); ok && ep.deliverSegments(t, seg, segs) {
			return
		}
	}
	s.tcp.demux.Deliver(t, seg)
}

// setGSO turns on the core's super-segments for c (TCP segmentation
// offload) when its route leaves through a NIC whose device cuts them
// (link.Offloads TSO4 with TxChecksum: a TAP or TUN opened with its vnet
// header, a Pipe so configured), and on every other route unless
// Options.NoGSO turns software GSO off (nic.writeFrameOffload cuts them
// for a device without TSO). An IPv6 connection is the same with TSO6 and a header 20
// bytes longer: a super-segment is never longer than 65535 bytes of IP
// datagram in either family, the most a device or the reader's GRO
// takes.
func (s *Stack) setGSO(c *tcp.Conn) {
	dst := c.Tuple().Remote.Addr()
	hl := ipv4.HeaderLen
	if !dst.Is4() {
		hl = ipv6.HeaderLen
	}
	limit := min(tcp.MaxGSOSize, 0xffff-hl-tcp.MaxHeaderLen)
	if !s.opts.NoGSO {
		c.SetGSOMaxSize(limit)
		return
	}
	n, _, ok := s.route(dst)
	if !ok || !n.ofl.TxChecksum || n.ofl.MaxGSOSize <= int(mssFor(n, dst)) {
		return
	}
	tso := n.ofl.TSO4
	if !dst.Is4() {
		tso = n.ofl.TSO6
	}
	if !tso {
		return
	}
	c.SetGSOMaxSize(min(limit, n.ofl.MaxGSOSize-hl-tcp.MaxHeaderLen))
}

// tcpSegment parses the TCP segment p carries, verifying its checksum
// unless the device did (DataValid) or the segment comes from the host
// itself with its checksum left partial (NeedsChecksum: Linux's
// CHECKSUM_PARTIAL, which it trusts as verified too).
func tcpSegment(p *ip.Packet) (tcp.Segment, error) {
	if p.Offload.DataValid || p.Offload.NeedsChecksum {
		return tcp.ParseSegmentVerified(p.Payload, p.Source, p.Destination)
	}
	return tcp.ParseSegment(p.Payload, p.Source, p.Destination)
}

// inputSegments is the number of segments seg, received as p, stands
// for: a super-segment's (GRO, the kernel's TSO, over IPv4 or IPv6) as
// they were on the wire, at its GSO size; one otherwise.
func inputSegments(p *ip.Packet, seg tcp.Segment) int {
	if g := p.Offload.GSOType &^ vnet.GSOECN; g != vnet.GSOTCPv4 && g != vnet.GSOTCPv6 {
		return 1
	}
	return vnet.Segments(len(seg.Payload()), int(p.Offload.GSOSize))
}

// Deliver implements tcpdemux.Endpoint: the NIC reader's way into the
// connection. It never waits for ep.mu: when another goroutine owns the
// connection, seg goes on the socket backlog, which the owner processes
// before it gives the connection up (backlog.go).
func (ep *tcpEndpoint) Deliver(t tcp.Tuple, seg tcp.Segment) bool {
	return ep.deliverSegments(t, seg, 1)
}

// deliverSegments is Deliver for a segment that stands for segs
// segments (a super-segment, tcp.Conn.InputSegments).
func (ep *tcpEndpoint) deliverSegments(t tcp.Tuple, seg tcp.Segment, segs int) bool {
	if !ep.mu.TryLock() {
		ep.queue(t, seg, segs)
		return true
	}
	// Segments queued before this one go first.
	ep.processBacklogLocked()
	ok := ep.inputLocked(t, seg, segs)
	ep.release()
	return ok
}

// inputLocked processes seg for the connection, with ep.mu held, and
// reports false when the connection no longer answers for t: it left the
// table meanwhile (into TIME-WAIT, or CLOSED), or seg is a SYN that may
// reopen its TIME-WAIT, which removes it. The caller then demultiplexes
// seg again (tcpdemux.Demux.DeliverNoConn).
func (ep *tcpEndpoint) inputLocked(t tcp.Tuple, seg tcp.Segment, segs int) bool {
	if ep.removed {
		return false
	}
	if ep.c == nil {
		// Never: a dialer sets c before it lets the connection go. Drop
		// rather than demultiplex back to this same endpoint.
		return true
	}
	// The time is read under the connection's lock, so that the calls
	// into one connection see it move forward only.
	if ep.c.AcceptsSYN(seg) {
		// RFC 9293 §3.10.7.4 / RFC 6191 (tcpdemux.Input): forget the old
		// connection and let the listener take the SYN.
		ep.logEndedLocked()
		ep.removed = true
		ep.s.removeTCP(ep)
		return false
	}
	ep.c.InputSegments(ep.s.clock.Now(), seg, segs, &ep.out)
	ep.afterLocked()
	return true
}

// mssTo returns the MSS for a connection to remote: mssFor the NIC the
// route to remote leaves through (as Linux takes the advertised MSS from
// the route), or RFC 9293 §3.7.1's default of 536 when there is none.
func (s *Stack) mssTo(remote netip.Addr) uint16 {
	if n, _, ok := s.route(remote); ok {
		return mssFor(n, remote)
	}
	if remote.Is6() {
		return 1220 // RFC 9293 §3.7.1: the IPv6 minimum MTU less 60
	}
	return 536
}

// mssFor returns the MSS for a connection to remote leaving through n:
// the MTU less the IP and TCP headers (RFC 9293 §3.7.1, RFC 879; for
// IPv6, MTU - 60, RFC 8200 §8.3).
func mssFor(n *nic, remote netip.Addr) uint16 {
	m := n.mtu - ipv4.HeaderLen - tcp.HeaderLen
	if remote.Is6() {
		m = n.mtuFor(remote) - ipv6.HeaderLen - tcp.HeaderLen
	}
	if m > 65535 {
		m = 65535
	}
	return uint16(m)
}

// addTCP inserts ep under t; it fails if t is taken.
func (s *Stack) addTCP(t tcp.Tuple, ep *tcpEndpoint) bool {
	return s.tcp.demux.Add(t, ep)
}

func (s *Stack) removeTCP(ep *tcpEndpoint) {
	s.unschedule(&ep.tm)
	s.tcp.demux.Remove(ep.c.Tuple(), ep)
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
	for i := 0; i < n; i++ {
		p := uint16(ephemeralFirst + (offset+slot.Add(1))%n)
		if s.tcp.demux.Free(tcp.Tuple{Local: netip.AddrPortFrom(src, p), Remote: remote}) {
			return p, nil
		}
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
		ep.lock()
		ep.scheduled = time.Time{}
		if !ep.removed {
			ep.c.Tick(s.clock.Now(), &ep.out)
			ep.afterLocked()
		}
		ep.release()
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
	eps := s.tcp.demux.Conns()
	out := s.tcp.demux.TimeWaitInfos()
	for _, ep := range eps {
		ep.lock()
		if ep.c != nil {
			out = append(out, ep.c.Info())
		}
		ep.release()
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
	ls := s.tcp.demux.Listeners()
	eps := s.tcp.demux.Conns()
	for _, l := range ls {
		(*TCPListener)(l).Close()
	}
	for _, ep := range eps {
		ep.lock()
		if ep.c != nil && !ep.c.Done() {
			ep.c.Abort(s.clock.Now(), &ep.out)
		}
		if ep.c != nil {
			ep.afterLocked()
		}
		ep.release()
	}
}
