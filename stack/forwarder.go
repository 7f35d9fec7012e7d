package stack

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/tcp"
)

// Forwarder makes a NIC accept TCP connections and UDP flows addressed to
// any destination, not only to the NIC's own address: the transparent
// proxy of tun2socks or Tailscale, where every flow that enters a TUN
// device is relayed elsewhere. A handler sees each new connection or flow
// with its original destination and decides what to do with it. Replies
// leave from the original destination address, so the client sees the
// server it asked for.
//
// ustack is otherwise a host (RFC 1122 §3.3.1) and drops datagrams for
// other addresses; a forwarder changes that for TCP and UDP only, over
// IPv4 and IPv6, and only for unicast destinations. ICMP for other
// addresses (an echo request to the original destination, say) is still
// dropped, unanswered, and counted in Stats().IPv4.DropNotForUs or
// IPv6.DropNotForUs; ICMP errors about forwarded connections
// are not passed to them. The stack's own listeners and sockets see only
// datagrams to its addresses: one bound to 0.0.0.0 does not take
// forwarded connections or flows.
//
// Attach one with Stack.SetForwarder. Its handlers run in goroutines of
// their own, never on the NIC's reader.
type Forwarder struct {
	// TCP is called, in a goroutine of its own, for each SYN to another
	// address that no connection or handshake holds: the request names
	// the original 4-tuple, and the handler must Accept or Refuse it
	// before it returns (one left undecided is refused with a RST).
	// Retransmissions of the SYN while it decides are absorbed. Nil
	// leaves TCP to other addresses dropped.
	TCP func(*TCPForwardRequest)
	// UDP is called, in a goroutine of its own, for each new flow: the
	// first datagram of a 4-tuple (client address and port, original
	// destination address and port) that no flow holds. Nil leaves UDP
	// to other addresses dropped, unless UDPFullCone is set.
	UDP func(*UDPFlow)
	// UDPFullCone, set instead of UDP, makes flows endpoint-independent
	// (RFC 4787 §4.1, "Endpoint-Independent Mapping"): one flow per client
	// address and port, whatever the destination, as a net.PacketConn
	// whose ReadFrom reports each datagram's original destination and
	// whose WriteTo sends to the client from any address.
	UDPFullCone func(*UDPFullConeFlow)
	// MaxInFlight bounds the TCP handshakes in flight: requests the
	// handler has not decided plus accepted ones whose handshake has not
	// completed. SYNs beyond it are dropped (counted in
	// ForwardStats.TCPDropInFlight). Zero means DefaultForwardMaxInFlight.
	MaxInFlight int
	// MaxUDPFlows bounds the UDP flows alive at once; datagrams that would
	// start another are dropped (ForwardStats.UDPDropFlowLimit). Zero
	// means DefaultForwardMaxUDPFlows.
	MaxUDPFlows int
	// UDPIdleTimeout ends a UDP flow that neither received nor sent a
	// datagram for that long; zero means DefaultUDPIdleTimeout. Flows are
	// checked at most every UDPIdleTimeout/8 (and at least every second),
	// so one may outlive its timeout by that much.
	UDPIdleTimeout time.Duration
}

// Defaults of a Forwarder's bounds.
const (
	// DefaultForwardMaxInFlight is as large as Linux's default listen
	// backlog bound (net.core.somaxconn, 4096), so that a burst of
	// connections is never stalled by a small fixed bound (a bound of 10
	// stalled all TCP in containers/gvisor-tap-vsock#676).
	DefaultForwardMaxInFlight = 4096
	// DefaultForwardMaxUDPFlows bounds the UDP flows of a forwarder.
	DefaultForwardMaxUDPFlows = 65536
	// DefaultUDPIdleTimeout is the idle timeout of a UDP flow: Linux
	// conntrack's nf_conntrack_udp_timeout (30 s).
	DefaultUDPIdleTimeout = 30 * time.Second
)

// Errors of the forwarder.
var (
	// ErrRequestDecided is returned by Accept or Refuse on a
	// TCPForwardRequest that was already accepted or refused.
	ErrRequestDecided = errors.New("stack: forward request already decided")
	// ErrFlowIdle is returned by the reads and writes of a UDP flow that
	// the idle timeout ended.
	ErrFlowIdle = errors.New("stack: UDP flow idle timeout")
)

// ForwardStats counts what the stack's forwarders did.
type ForwardStats struct {
	// TCPRequests counts SYNs that became requests for the TCP handler.
	TCPRequests uint64
	// TCPSYNsAbsorbed counts retransmitted SYNs of requests not yet
	// decided: dropped, not made into second requests.
	TCPSYNsAbsorbed uint64
	// TCPDropUndecided counts other segments of undecided requests.
	TCPDropUndecided uint64
	// TCPDropInFlight counts SYNs dropped because MaxInFlight handshakes
	// were in flight.
	TCPDropInFlight uint64
	// TCPAccepted counts handshakes that completed for Accept;
	// TCPHandshakeFailures accepted requests whose handshake did not (the
	// client reset it or never answered, or the forwarder closed).
	TCPAccepted, TCPHandshakeFailures uint64
	// TCPRefused counts requests refused, with a RST or an ICMP error.
	TCPRefused uint64
	// UDPFlows counts UDP flows created; UDPIdleTimeouts those ended by
	// the idle timeout; UDPDropFlowLimit datagrams dropped because
	// MaxUDPFlows flows were alive.
	UDPFlows, UDPIdleTimeouts, UDPDropFlowLimit uint64
}

// SetForwarder attaches f to the NIC id, replacing any forwarder it had;
// nil detaches it. Detaching or replacing a forwarder fails its undecided
// and handshaking requests (net.ErrClosed) and closes its UDP flows;
// connections already accepted stay. The Forwarder is copied. A negative
// bound or timeout, both UDP and UDPFullCone set, or no handler at all is
// an error naming the field.
func (s *Stack) SetForwarder(id NICID, f *Forwarder) error {
	if err := s.usable(); err != nil {
		return err
	}
	if s.closing.Load() {
		return ErrClosed
	}
	n := s.nicByID(int(id))
	if n == nil {
		return fmt.Errorf("%w: %d", ErrUnknownNIC, id)
	}
	var fw *forwarder
	if f != nil {
		cfg, err := f.withDefaults()
		if err != nil {
			return err
		}
		fw = newForwarder(s, n, cfg)
	}
	if old := n.fwd.Swap(fw); old != nil {
		old.close()
	}
	if fw != nil && s.closing.Load() {
		// Close ran meanwhile and may have missed it.
		if n.fwd.CompareAndSwap(fw, nil) {
			fw.close()
		}
		return ErrClosed
	}
	return nil
}

// withDefaults checks f and fills its zero bounds.
func (f *Forwarder) withDefaults() (Forwarder, error) {
	c := *f
	switch {
	case c.TCP == nil && c.UDP == nil && c.UDPFullCone == nil:
		return c, errors.New("stack: Forwarder: no handler (TCP, UDP or UDPFullCone)")
	case c.UDP != nil && c.UDPFullCone != nil:
		return c, errors.New("stack: Forwarder: UDP and UDPFullCone are both set")
	case c.MaxInFlight < 0:
		return c, fmt.Errorf("stack: Forwarder.MaxInFlight %d is negative", c.MaxInFlight)
	case c.MaxUDPFlows < 0:
		return c, fmt.Errorf("stack: Forwarder.MaxUDPFlows %d is negative", c.MaxUDPFlows)
	case c.UDPIdleTimeout < 0:
		return c, fmt.Errorf("stack: Forwarder.UDPIdleTimeout %v is negative", c.UDPIdleTimeout)
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultForwardMaxInFlight
	}
	if c.MaxUDPFlows == 0 {
		c.MaxUDPFlows = DefaultForwardMaxUDPFlows
	}
	if c.UDPIdleTimeout == 0 {
		c.UDPIdleTimeout = DefaultUDPIdleTimeout
	}
	return c, nil
}

// forwarder is the live state of a NIC's Forwarder. Accepted handshakes
// run in ln, a listener core (tcp.Listener and its SYN queue) that is in
// no listener table and takes any 4-tuple: a request's SYN is fed to it
// when the handler accepts, and the connection its final ACK creates is
// handed to the waiting Accept.
type forwarder struct {
	s     *Stack
	n     *nic
	cfg   Forwarder // with defaults
	ln    *TCPListener
	life  time.Duration // the longest a half-open entry of ln can live
	epoch time.Time     // UDP flows keep their last activity as time since it

	// mu guards the fields below. It is taken after ln.mu, never before.
	mu         sync.RWMutex
	closed     bool
	pending    map[tcp.Tuple]*TCPForwardRequest // not decided yet
	handshakes map[tcp.Tuple]*TCPForwardRequest // accepted, handshake under way
	flows      map[tcp.Tuple]*udpFlow
	next       time.Time // the deadline runForwarders last reported; zero if none
}

func newForwarder(s *Stack, n *nic, cfg Forwarder) *forwarder {
	local := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	ln := s.newTCPListener(local, cfg.MaxInFlight)
	// The forwarder bounds its handshakes itself, and a cookie would
	// complete one that no request waits for.
	ln.l.SetSYNCookies(tcp.SYNCookiesNever)
	// A half-open entry lives through SynAckRetries retransmissions with
	// the timeout doubling from InitialRTO (RFC 6298 §5.5), then one more
	// timeout.
	c := &s.tcp.cfg
	var life time.Duration
	for i, rto := 0, c.InitialRTO; i <= c.SynAckRetries; i++ {
		life += rto
		rto = min(2*rto, c.MaxRTO)
	}
	return &forwarder{
		s: s, n: n, cfg: cfg, ln: ln, life: life, epoch: s.clock.Now(),
		pending:    make(map[tcp.Tuple]*TCPForwardRequest),
		handshakes: make(map[tcp.Tuple]*TCPForwardRequest),
		flows:      make(map[tcp.Tuple]*udpFlow),
	}
}

// forwards reports whether a datagram of protocol proto to dst, which is
// not one of n's addresses, goes to n's forwarder: it has a handler for
// proto and dst is a unicast address that is not n's nor a broadcast.
func (n *nic) forwards(proto uint8, dst netip.Addr) bool {
	f := n.fwd.Load()
	if f == nil {
		return false
	}
	switch proto {
	case ip.ProtocolTCP:
		if f.cfg.TCP == nil {
			return false
		}
	case ip.ProtocolUDP:
		if f.cfg.UDP == nil && f.cfg.UDPFullCone == nil {
			return false
		}
	default:
		return false
	}
	return n.forwardable(dst)
}

// forwardable reports whether dst, an IPv4 or IPv6 address, is one n's
// forwarder (if any) may terminate flows to: unicast, not unspecified
// nor loopback, not an IPv6 link-local address (RFC 4291 §2.5.6: never
// forwarded off its link), not n's own nor a broadcast.
func (n *nic) forwardable(dst netip.Addr) bool {
	return n.fwd.Load() != nil && !dst.IsUnspecified() && !dst.IsMulticast() && !dst.IsLoopback() &&
		!(dst.Is6() && dst.IsLinkLocalUnicast()) && !n.hasAddr(dst) && !n.isBroadcast(dst)
}

// scheduleLocked makes d the forwarder's next deadline if it is earlier,
// and reports whether the timer goroutine must be kicked; f.mu is held.
func (f *forwarder) scheduleLocked(d time.Time) bool {
	if f.next.IsZero() || d.Before(f.next) {
		f.next = d
		return true
	}
	return false
}

// runForwarders runs the forwarders' due work (handshakes given up, idle
// UDP flows) and returns their earliest deadline.
func (s *Stack) runForwarders(now time.Time) time.Time {
	var next time.Time
	for _, n := range s.nicList() {
		if f := n.fwd.Load(); f != nil {
			if d := f.tick(now); !d.IsZero() && (next.IsZero() || d.Before(next)) {
				next = d
			}
		}
	}
	return next
}

// closeForwarders detaches every NIC's forwarder when the stack closes.
func (s *Stack) closeForwarders() {
	for _, n := range s.nicList() {
		if f := n.fwd.Swap(nil); f != nil {
			f.close()
		}
	}
}

// tick fails the accepted requests whose handshake ln no longer holds
// after its longest life, ends idle UDP flows, and returns the next
// deadline.
func (f *forwarder) tick(now time.Time) time.Time {
	f.mu.RLock()
	next := f.next
	f.mu.RUnlock()
	if next.IsZero() || now.Before(next) {
		return next
	}
	st := f.s.ctr.get()
	earliest := func(d time.Time) {
		if next.IsZero() || d.Before(next) {
			next = d
		}
	}
	var expired []*udpFlow
	l := f.ln
	l.mu.Lock()
	f.mu.Lock()
	next = time.Time{}
	for t, r := range f.handshakes {
		switch {
		case now.Before(r.giveUp):
			earliest(r.giveUp)
		case l.l.HalfOpen(t):
			// The client started over with a new ISN, which made a new
			// entry: look again later.
			r.giveUp = now.Add(f.s.tcp.cfg.InitialRTO)
			earliest(r.giveUp)
		default:
			delete(f.handshakes, t)
			inc(&st.Forward.TCPHandshakeFailures) // counted before Accept can see it
			r.finishLocked(nil, syscall.ETIMEDOUT)
		}
	}
	idle := f.cfg.UDPIdleTimeout
	for k, fl := range f.flows {
		if d := f.epoch.Add(time.Duration(fl.last.Load()) + idle); now.Before(d) {
			earliest(d)
		} else {
			delete(f.flows, k)
			expired = append(expired, fl)
		}
	}
	if !next.IsZero() {
		// Coarse: one scan of the flows serves every flow due in the next
		// slice of time, so a scan is not made for each flow.
		next = maxTime(next, now.Add(min(idle/8, time.Second)))
	}
	f.next = next
	f.mu.Unlock()
	l.mu.Unlock()
	for _, fl := range expired {
		inc(&st.Forward.UDPIdleTimeouts)
		fl.expire()
	}
	return next
}

func maxTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}

// close fails every request, stops ln and closes every UDP flow.
func (f *forwarder) close() {
	st := f.s.ctr.get()
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	for t, r := range f.pending {
		delete(f.pending, t)
		r.finishLocked(nil, net.ErrClosed)
	}
	for t, r := range f.handshakes {
		delete(f.handshakes, t)
		inc(&st.Forward.TCPHandshakeFailures)
		r.finishLocked(nil, net.ErrClosed)
	}
	flows := make([]*udpFlow, 0, len(f.flows))
	for k, fl := range f.flows {
		delete(f.flows, k)
		flows = append(flows, fl)
	}
	f.mu.Unlock()
	f.ln.Close()
	for _, fl := range flows {
		fl.c.Close()
	}
}

// Refusal says how TCPForwardRequest.Refuse answers the SYN.
type Refusal uint8

// The ways to refuse a forwarded connection.
const (
	// RefuseReset answers with a RST, as a closed port does (RFC 9293
	// §3.10.7.1): the client's connect fails with ECONNREFUSED.
	RefuseReset Refusal = iota
	// RefuseNetUnreachable, RefuseHostUnreachable and
	// RefusePortUnreachable answer with an ICMP Destination Unreachable
	// of code 0, 1 or 3 (RFC 792; RFC 1122 §3.2.2.1), as a router or the
	// destination would; over IPv6 an ICMPv6 one of code 0 "no route to
	// destination", 3 "address unreachable" or 4 "port unreachable" (RFC
	// 4443 §3.1).
	RefuseNetUnreachable
	RefuseHostUnreachable
	RefusePortUnreachable
	// RefuseAdminProhibited answers with ICMP Destination Unreachable
	// code 13, "Communication Administratively Prohibited" (RFC 1812
	// §5.2.7.1), as a filtering router does; over IPv6 with code 1,
	// "communication with destination administratively prohibited" (RFC
	// 4443 §3.1).
	RefuseAdminProhibited
)

// codeAdminProhibited is RFC 1812 §5.2.7.1's code 13.
const codeAdminProhibited = 13

// unreachableCodes returns the Destination Unreachable codes of an ICMP
// refusal: ICMPv4's and ICMPv6's; ok is false for RefuseReset and values
// that are no Refusal.
func (r Refusal) unreachableCodes() (code4, code6 uint8, ok bool) {
	switch r {
	case RefuseNetUnreachable:
		return ipv4.CodeNetUnreachable, ipv6.CodeNoRoute, true
	case RefuseHostUnreachable:
		return ipv4.CodeHostUnreachable, ipv6.CodeAddressUnreachable, true
	case RefusePortUnreachable:
		return ipv4.CodePortUnreachable, ipv6.CodePortUnreachable, true
	case RefuseAdminProhibited:
		return codeAdminProhibited, ipv6.CodeAdminProhibited, true
	}
	return 0, 0, false
}

// String returns the refusal's name.
func (r Refusal) String() string {
	switch r {
	case RefuseReset:
		return "reset"
	case RefuseNetUnreachable:
		return "net-unreachable"
	case RefuseHostUnreachable:
		return "host-unreachable"
	case RefusePortUnreachable:
		return "port-unreachable"
	case RefuseAdminProhibited:
		return "admin-prohibited"
	}
	return fmt.Sprintf("Refusal(%d)", uint8(r))
}

// The states of a request, guarded by its forwarder's mu.
const (
	reqPending   = iota // the handler has not decided
	reqAccepting        // accepted; the handshake is under way
	reqDone             // refused, established, failed or closed
)

// TCPForwardRequest is a connection a client asked for through a
// forwarding NIC (Forwarder.TCP): its SYN was to LocalAddr, an address
// the stack does not own. The handler decides with Accept or Refuse,
// once.
type TCPForwardRequest struct {
	f *forwarder
	t tcp.Tuple
	// syn is a copy of the latest SYN's datagram, IPv4 or IPv6, whose
	// TCP header starts at synOff; f.mu.
	syn    []byte
	synOff int

	state  uint8     // f.mu
	giveUp time.Time // f.mu: when tick checks that the handshake is still alive

	done chan struct{} // closed when conn or err is set
	conn *TCPConn
	err  error
}

// LocalAddr returns the original destination of the connection: the
// address and port the client's SYN was sent to.
func (r *TCPForwardRequest) LocalAddr() netip.AddrPort { return r.t.Local }

// RemoteAddr returns the client's address and port.
func (r *TCPForwardRequest) RemoteAddr() netip.AddrPort { return r.t.Remote }

// NIC returns the NIC the SYN arrived on.
func (r *TCPForwardRequest) NIC() NICID { return r.f.n.id }

// opError wraps err as package net does for this connection.
func (r *TCPForwardRequest) opError(op string, err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: "tcp", Source: net.TCPAddrFromAddrPort(r.t.Local), Addr: net.TCPAddrFromAddrPort(r.t.Remote), Err: err}
}

// Accept completes the handshake with the client, answering its SYN from
// the original destination through the stack's listener core, and
// returns the connection once the client's final ACK arrives. The
// connection's LocalAddr is the original destination. Accept fails if the
// request was already decided (ErrRequestDecided), if the client resets
// the handshake (ECONNRESET) or never completes it (ETIMEDOUT, after the
// SYN-ACK retransmissions, about a minute with the default tcp.Config),
// if the handshake could not start (ECONNABORTED: no route back to the
// client, or the stack's half-open bound reached), or if the forwarder
// or the stack closes (net.ErrClosed).
func (r *TCPForwardRequest) Accept() (*TCPConn, error) {
	f := r.f
	s := f.s
	f.mu.Lock()
	if r.state != reqPending {
		f.mu.Unlock()
		if r.state == reqDone && errors.Is(r.err, net.ErrClosed) {
			return nil, r.opError("accept", net.ErrClosed)
		}
		return nil, r.opError("accept", ErrRequestDecided)
	}
	r.state = reqAccepting
	delete(f.pending, r.t)
	f.handshakes[r.t] = r
	r.giveUp = s.clock.Now().Add(f.life)
	kick := f.scheduleLocked(r.giveUp)
	syn := r.syn[r.synOff:]
	f.mu.Unlock()
	if kick {
		s.kick()
	}
	(*demuxListener)(f.ln).Deliver(r.t, tcp.Segment(syn))
	f.settle(r.t, syscall.ECONNABORTED)
	<-r.done
	if r.err != nil {
		return nil, r.opError("accept", r.err)
	}
	return r.conn, nil
}

// Refuse refuses the connection as how says, from the original
// destination address: with a RST, or with an ICMP Destination
// Unreachable quoting the SYN (within the stack's ICMP error rate limit,
// and never about a datagram RFC 1122 §3.2.2 forbids errors for). It
// fails if the request was already decided (ErrRequestDecided) or how is
// not a Refusal.
func (r *TCPForwardRequest) Refuse(how Refusal) error {
	code4, code6, ok := how.unreachableCodes()
	if !ok && how != RefuseReset {
		return r.opError("refuse", fmt.Errorf("stack: Refuse: unknown refusal %v: %w", how, syscall.EINVAL))
	}
	f := r.f
	s := f.s
	f.mu.Lock()
	if r.state != reqPending {
		f.mu.Unlock()
		return r.opError("refuse", ErrRequestDecided)
	}
	delete(f.pending, r.t)
	r.finishLocked(nil, ErrRequestDecided)
	syn, off := r.syn, r.synOff
	f.mu.Unlock()
	switch {
	case how == RefuseReset:
		out := tcpOutput{s: s}
		tcp.Reset(r.t, tcp.Segment(syn[off:]), &out)
	case r.t.Local.Addr().Is6():
		h := ipv6.Header(syn)
		if c, err := ipv6.ParseExtensions(h); err == nil {
			s.sendICMPv6ErrorFrom(f.n, r.t.Local.Addr(), h, c, false, ipv6.TypeDestinationUnreachable, code6, 0)
		}
	case ipv4.MayReplyWithError(ipv4.Header(syn), false):
		s.sendICMPErrorFrom(r.t.Local.Addr(), r.t.Remote.Addr(), syn, ipv4.TypeDestinationUnreachable, code4)
	}
	inc(&s.ctr.get().Forward.TCPRefused)
	return nil
}

// finishLocked ends the request with a connection or an error and wakes
// Accept; f.mu is held.
func (r *TCPForwardRequest) finishLocked(c *TCPConn, err error) {
	if r.state == reqDone {
		return
	}
	r.state = reqDone
	r.conn, r.err = c, err
	close(r.done)
}

// forwardTCP takes a segment from t.Remote to t.Local, an address that is
// not ours, that matched no connection: a SYN becomes a request for the
// handler (or is absorbed while one is undecided), and segments of an
// accepted handshake go to the listener core. p is the packet that
// carried seg, over IPv4 or IPv6. It returns false for a segment with no
// such state, which the caller answers as for a closed port.
func (s *Stack) forwardTCP(n *nic, p *ip.Packet, t tcp.Tuple, seg tcp.Segment) bool {
	f := n.fwd.Load()
	if f == nil {
		return false
	}
	st := s.ctr.get()
	isSYN := seg.Flags()&(tcp.FlagSYN|tcp.FlagACK|tcp.FlagRST) == tcp.FlagSYN
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return false
	}
	if r := f.pending[t]; r != nil {
		if isSYN {
			// A retransmission while the handler decides: absorbed. A
			// new ISN means the client started over: keep its SYN.
			inc(&st.Forward.TCPSYNsAbsorbed)
			if seg.Seq() != tcp.Segment(r.syn[r.synOff:]).Seq() {
				r.syn, r.synOff = synCopy(p)
			}
		} else {
			inc(&st.Forward.TCPDropUndecided)
		}
		f.mu.Unlock()
		return true
	}
	if _, ok := f.handshakes[t]; ok {
		f.mu.Unlock()
		(*demuxListener)(f.ln).Deliver(t, seg)
		cause := syscall.ECONNABORTED
		if seg.Flags().Has(tcp.FlagRST) {
			cause = syscall.ECONNRESET
		}
		f.settle(t, cause)
		return true
	}
	if !isSYN {
		f.mu.Unlock()
		return false
	}
	if len(f.pending)+len(f.handshakes) >= f.cfg.MaxInFlight {
		f.mu.Unlock()
		inc(&st.Forward.TCPDropInFlight)
		return true
	}
	f.mu.Unlock()
	// A SYN no SYN-ACK could answer never gets here (deliverTCP).
	r := &TCPForwardRequest{f: f, t: t, done: make(chan struct{})}
	r.syn, r.synOff = synCopy(p)
	f.mu.Lock()
	if f.closed || f.pending[t] != nil || f.handshakes[t] != nil {
		f.mu.Unlock()
		return true // another goroutine's SYN of t won the race
	}
	f.pending[t] = r
	f.mu.Unlock()
	inc(&st.Forward.TCPRequests)
	go f.handle(r)
	return true
}

// synCopy returns a copy of the datagram of the SYN p, and where its TCP
// header starts in it (after the IPv4 header, or the IPv6 header and its
// extension headers).
func synCopy(p *ip.Packet) ([]byte, int) {
	return append([]byte(nil), p.Datagram...), len(p.Datagram) - len(p.Payload)
}

// handle runs the TCP handler for r and refuses r with a RST if the
// handler left it undecided.
func (f *forwarder) handle(r *TCPForwardRequest) {
	defer func() {
		f.mu.RLock()
		undecided := r.state == reqPending
		f.mu.RUnlock()
		if undecided {
			r.Refuse(RefuseReset)
		}
	}()
	f.cfg.TCP(r)
}

// settle hands each connection that ln completed to its waiting Accept,
// aborting any that no request waits for, and fails the request of t with
// cause if its handshake is no longer in ln (the client reset it, or ln
// never took the SYN).
func (f *forwarder) settle(t tcp.Tuple, cause error) {
	s := f.s
	st := s.ctr.get()
	l := f.ln
	var orphans []*tcpEndpoint
	l.mu.Lock()
	for c := l.l.Accept(); c != nil; c = l.l.Accept() {
		ep, _ := s.tcp.demux.Lookup(c.Tuple())
		if ep == nil || ep.c != c {
			continue // reset and removed already: its request fails below or at tick
		}
		f.mu.Lock()
		r := f.handshakes[c.Tuple()]
		if r != nil {
			delete(f.handshakes, c.Tuple())
			inc(&st.Forward.TCPAccepted) // counted before Accept can see it
			r.finishLocked(newTCPConn(ep), nil)
		}
		f.mu.Unlock()
		if r == nil {
			orphans = append(orphans, ep)
		}
	}
	if !l.l.HalfOpen(t) {
		f.mu.Lock()
		if r := f.handshakes[t]; r != nil {
			delete(f.handshakes, t)
			inc(&st.Forward.TCPHandshakeFailures)
			r.finishLocked(nil, cause)
		}
		f.mu.Unlock()
	}
	l.mu.Unlock()
	for _, ep := range orphans {
		ep.lock()
		if !ep.c.Done() {
			ep.c.Abort(s.clock.Now(), &ep.out)
		}
		ep.afterLocked()
		ep.release()
	}
}
