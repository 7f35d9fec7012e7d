// Package stack ties ustack's layers together: it owns the NICs, their
// addresses and the routing table, runs one reader goroutine per NIC queue
// and one timer goroutine, demultiplexes frames to ARP, IPv4, ICMP, TCP and UDP,
// and offers the user API (ping, net.Listener, net.Conn, net.PacketConn).
//
// The protocol packages (arp, ipv4, tcp) are pure: they never read a clock
// and never start goroutines. The stack reads its Clock, passes the time in,
// and sleeps until the earliest deadline any of them reports.
package stack

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/filter"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/neigh"
	"github.com/ustack/ustack/tcp"
)

// NICID names a NIC of a Stack. IDs start at 1.
type NICID int

// Options configure a Stack. The zero value is usable; zero fields take
// their defaults, and negative or out-of-range values are rejected by
// NewStack (and Validate) with an error naming the field.
type Options struct {
	// Clock is the stack's source of time; nil means the system clock.
	Clock Clock
	// Logger receives the stack's messages; nil discards them. At
	// slog.LevelDebug it gets one event per TCP connection for each of:
	// "tcp connection opened" (the handshake completed, either side),
	// "tcp connection closed" (it ended normally: both FINs exchanged, or
	// aborted by the user), "tcp connection reset" (a RST from the peer
	// ended it) and "tcp connection given up" (retransmissions or
	// keepalives timed out, or a hard ICMP error aborted the handshake);
	// each carries "local" and "remote" and, but the first, "err". At
	// slog.LevelWarn it gets failing reads of a NIC's device.
	Logger *slog.Logger
	// ARP configures every NIC's neighbour cache.
	ARP arp.Config
	// Reassembly configures every NIC's IPv4 reassembler.
	Reassembly ipv4.ReassemblyConfig
	// NDP configures every NIC's IPv6 neighbour cache (RFC 4861 §10's
	// constants by default); its RetransTimer also spaces duplicate
	// address detection's solicitations.
	NDP neigh.Config
	// Reassembly6 configures every NIC's IPv6 reassembler.
	Reassembly6 ipv6.ReassemblyConfig
	// DADTransmits is DupAddrDetectTransmits (RFC 4862 §5.1): how many
	// Neighbor Solicitations duplicate address detection sends, one
	// RetransTimer apart, before an IPv6 address is assigned. Zero means
	// 1 (the RFC's default); negative turns DAD off, and addresses are
	// assigned at once.
	DADTransmits int
	// SLAAC turns on stateless address autoconfiguration (RFC 4862
	// §5.5): each Ethernet NIC solicits routers and forms an address from
	// every autonomous prefix a Router Advertisement carries. Router
	// advertisements set default routes, on-link prefixes and the link
	// MTU whether or not it is set.
	SLAAC bool
	// StableSecret, when set, makes the interface identifiers of IPv6
	// addresses formed on a NIC (its link-local address and SLAAC's)
	// RFC 7217 stable ones instead of modified EUI-64 ones: the same for
	// a prefix and NIC across restarts with the same secret, different
	// per prefix and per NIC (the MAC is its Net_Iface), and not the MAC
	// for all to see. It is the secret_key of RFC 7217 §5, at least 16
	// bytes (128 bits), to be kept secret and stable.
	StableSecret []byte
	// ICMPErrorRate and ICMPErrorBurst bound the ICMP error messages the
	// stack sends (RFC 1122 §3.2.2: a host SHOULD limit them). Zero means
	// 100 per second with a burst of 50.
	ICMPErrorRate  float64
	ICMPErrorBurst int
	// ICMPEchoRate and ICMPEchoBurst bound the echo replies the stack
	// sends, so that an echo-request flood from spoofed sources cannot
	// make it reflect packets at the rate they arrive (a token bucket,
	// as RFC 1812 §4.3.2.8 suggests for ICMP; Linux's icmp_msgs_per_sec
	// and icmp_msgs_burst). Zero means 1000 per second with a burst of
	// 50; a negative rate turns the limit off.
	ICMPEchoRate  float64
	ICMPEchoBurst int
	// TTL is the time to live of outgoing datagrams; zero means 64
	// (RFC 1700's recommended default).
	TTL uint8
	// TCP configures every TCP connection; nil means tcp.DefaultConfig().
	// Its zero numeric fields take DefaultConfig's values
	// (tcp.Config.WithDefaults); its booleans are taken as given. Its
	// Stats, TimestampOffset and SYNCookieHash are replaced by the
	// stack's own.
	TCP *tcp.Config
	// MaxTimeWait bounds the connections kept in TIME-WAIT after their
	// users closed them (Linux's tcp_max_tw_buckets); past it a closing
	// connection skips TIME-WAIT (counted in TCPStats.TimeWaitOverflows).
	// Zero means DefaultMaxTimeWait; negative keeps none; values above
	// 1<<30 count as 1<<30.
	MaxTimeWait int
	// Nameservers are the DNS servers of the stack's Resolver, which
	// DialContext, Listen and ListenPacket use for host names, tried in
	// order; a port of 0 means 53. Each must be a unicast IPv4 address.
	// None means that names do not resolve (but those in the host's
	// /etc/hosts: see Resolver).
	Nameservers []netip.AddrPort
	// NoGSO turns software GSO off. By default a connection sends
	// super-segments of up to tcp.MaxGSOSize bytes
	// (tcp.Conn.SetGSOMaxSize, sized to about a millisecond of its rate,
	// tcp.Config.TSOBurst) on every route, and the stack cuts them just
	// before the link for an endpoint without TSO (the checksum summed as
	// the payload is copied), so that the TCP core works once per 64 KB
	// whatever the device. With NoGSO, a connection sends super-segments
	// only through a NIC whose device cuts them itself (link.Offloads
	// TSO4 or TSO6 with TxChecksum: a TAP or TUN opened with its vnet
	// header, as by default on Linux, or a Pipe configured so), and
	// segments of one MSS elsewhere. Receiving super-segments (GRO, the
	// kernel's TSO) depends on neither.
	NoGSO bool
	// Forwarding makes the stack a router (RFC 1812 for IPv4, RFC 8200
	// §3 and RFC 4443 for IPv6): a datagram received for an address the
	// stack does not have is routed on through the NIC its route names,
	// with its TTL or Hop Limit decremented, instead of dropped, and the
	// packet filter's FORWARD chain and NAT see it (ipforward.go). Off,
	// the default, the stack is a host (RFC 1122 §3.3.1) and drops them
	// (IPv4Stats.DropNotForUs). A router takes datagrams for any of its
	// addresses, whichever NIC they come in on. A NIC with a Forwarder
	// (SetForwarder) still terminates the TCP and UDP flows it takes;
	// the rest is routed.
	//
	// It is one switch for the whole stack, like Linux's
	// net.ipv4.ip_forward, not a setting per NIC: whether a node is a
	// router is a property of the node (RFC 1812 §2.2.1, RFC 8200 §2),
	// and which NICs may forward to which is what the FORWARD chain's -i
	// and -o say, per rule, with counters.
	Forwarding bool
	// NoGRO turns software GRO off: a NIC whose endpoint reads batches
	// (link.BatchReader) otherwise merges the consecutive in-order TCP
	// segments of a flow in a batch into one super-segment
	// (vnet.Coalescer) before TCP sees them.
	NoGRO bool
}

// Errors returned by the stack's configuration methods.
var (
	ErrClosed        = errors.New("stack: closed")
	ErrNoRoute       = errors.New("stack: no route to host")
	ErrUnknownNIC    = errors.New("stack: unknown NIC")
	ErrInvalidPrefix = errors.New("stack: not an IP address prefix")
	// ErrNotInitialized is returned by every method of a Stack that was
	// not made with New or NewStack (a zero Stack{}, or a nil *Stack).
	ErrNotInitialized = errors.New("stack: Stack not made with New")
	// ErrNilEndpoint is returned by AddNIC for a nil link.Endpoint.
	ErrNilEndpoint = errors.New("stack: nil link endpoint")
	// ErrInvalidAddress is returned by AddNIC for an address no NIC may
	// have (unspecified, multicast, broadcast, loopback, a /0 subnet),
	// one that another NIC has, or a subnet that overlaps another NIC's.
	ErrInvalidAddress = errors.New("stack: invalid NIC address")
)

// Stack is a userspace TCP/IP stack. Create it with New, attach NICs with
// AddNIC, and end it with Close, which stops every goroutine it started.
// Many Stacks can live in one process; they share nothing.
type Stack struct {
	// err is why the Options given to New were refused; every method
	// then fails with it (nil for a working Stack).
	err error
	// filt is the packet filter (SetFilter), nil for none; ctNext is
	// when the timer next expires its connection tracking entries
	// (UnixNano).
	filt     atomic.Pointer[filter.Filter]
	ctNext   atomic.Int64
	fscratch sync.Pool // *ip.Packet, the filter's copies (scratchPacket)
	clock    Clock
	log      *slog.Logger
	opts     Options
	ttl      uint8

	mu     sync.RWMutex // guards nics and routes
	nics   []*nic
	routes ip.Table

	ctr counters

	icmpMu      sync.Mutex // guards icmpLimiter and echoLimiter
	icmpLimiter *ip.RateLimiter
	echoLimiter *ip.RateLimiter // nil: echo replies are not limited

	pingMu  sync.Mutex // guards pings
	pings   map[uint32]chan time.Time
	pingSeq atomic.Uint32
	ipID    atomic.Uint32
	// fragSalt mixes the IPv6 Fragment Identifications (sendIPv6).
	fragSalt uint32
	// routeGen is bumped by every change that can make a routeCache
	// wrong: routes, addresses, ARP entries (route.go).
	routeGen atomic.Uint64

	bufs    sync.Pool // *packetBuf
	batches sync.Pool // *txBatch
	segs    segPools  // copies of segments on connections backlogs (backlog.go)

	// fwdRoutes caches the routes of forwarded datagrams (ipforward.go);
	// nil unless Options.Forwarding.
	fwdRoutes *fwdCache

	tcp  tcpState
	udp  udpState
	pmtu pmtuCache // path MTUs lowered by ICMP, per destination (icmperr.go)
	dns  dnsState  // the Resolver (resolver.go)

	wake    chan struct{} // nudges the timer goroutine to recompute its deadline
	done    chan struct{}
	closing atomic.Bool
	wg      sync.WaitGroup
}

// NewStack checks opts (see Options.Validate), and returns a Stack with no
// NICs with its timer goroutine started, or the error naming the first
// field out of range.
func NewStack(opts Options) (*Stack, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return newStack(opts), nil
}

// New is NewStack for options known to be valid (New(Options{}) always
// is): it returns a Stack with no NICs and starts its timer goroutine. If
// opts are invalid, the Stack it returns has started nothing, and every
// method that can fail returns the error NewStack would have (Close
// returns nil); use NewStack to learn of it at once.
func New(opts Options) *Stack {
	if err := opts.Validate(); err != nil {
		return &Stack{err: err}
	}
	return newStack(opts)
}

func newStack(opts Options) *Stack {
	opts.Nameservers = slices.Clone(opts.Nameservers) // the caller may change its slice
	opts.StableSecret = slices.Clone(opts.StableSecret)
	s := &Stack{
		clock: opts.Clock,
		log:   opts.Logger,
		opts:  opts,
		ttl:   opts.TTL,
		pings: make(map[uint32]chan time.Time),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	if s.clock == nil {
		s.clock = SystemClock()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.ttl == 0 {
		s.ttl = 64
	}
	rate, burst := opts.ICMPErrorRate, opts.ICMPErrorBurst
	if rate == 0 {
		rate = 100
	}
	if burst == 0 {
		burst = 50
	}
	s.icmpLimiter = ip.NewRateLimiter(rate, burst)
	if rate, burst = opts.ICMPEchoRate, opts.ICMPEchoBurst; rate >= 0 {
		if rate == 0 {
			rate = 1000
		}
		if burst == 0 {
			burst = 50
		}
		s.echoLimiter = ip.NewRateLimiter(rate, burst)
	}
	s.fragSalt = rand.Uint32()
	if opts.Forwarding {
		s.fwdRoutes = new(fwdCache)
	}
	s.bufs.New = func() any { return new(packetBuf) }
	s.batches.New = func() any { return &txBatch{frames: make([]*packetBuf, 0, maxQueuedFrames)} }
	s.segs.init()
	s.initTCP(opts.TCP)
	s.wg.Add(1)
	go s.timerLoop()
	return s
}

// usable returns nil if s was made with valid options by New or
// NewStack, else the error every method reports.
func (s *Stack) usable() error {
	switch {
	case s == nil || (s.done == nil && s.err == nil):
		return ErrNotInitialized
	case s.err != nil:
		return s.err
	}
	return nil
}

// Clock returns the stack's clock (the system clock for a Stack not made
// with New).
func (s *Stack) Clock() Clock {
	if s.usable() != nil && (s == nil || s.clock == nil) {
		return SystemClock()
	}
	return s.clock
}

// Stats returns a snapshot of the stack's counters; a Stack not made with
// New has none, and all are zero.
func (s *Stack) Stats() Stats {
	if s.usable() != nil {
		return Stats{}
	}
	st := s.ctr.snapshot()
	for _, n := range s.nicList() {
		for _, q := range n.queues {
			addCounters(&st, &q.rx.counters)
			addCounters(&st, &q.tx.counters)
		}
		n.arpMu.Lock()
		a := n.arp.Stats()
		n.arpMu.Unlock()
		st.ARP.DropTimeout += a.TimeoutDrops + a.EvictionDrops
		st.ARP.DropQueueFull += a.QueueDrops
		st.ARP.DropUnsolicited += a.UnsolicitedIgnored
		st.ARP.Evictions += a.Evictions
		st.ARP.EvictionsInUse += a.EvictionsInUse
		st.ARP.LearnSkipped += a.LearnSkipped
		n.reasmMu.Lock()
		r := n.reasm.Stats()
		n.reasmMu.Unlock()
		st.IPv4.ReassemblyEvictions += r.Evictions + r.SourceEvictions
		st.IPv4.ReassemblyTimeouts += r.Timeouts
		n.ndMu.Lock()
		d := n.nd.Stats()
		n.ndMu.Unlock()
		st.NDP.DropTimeout += d.TimeoutDrops + d.EvictionDrops
		st.NDP.DropQueueFull += d.QueueDrops
		st.NDP.DropUnsolicited += d.UnsolicitedIgnored
		n.reasm6Mu.Lock()
		r6 := n.reasm6.Stats()
		n.reasm6Mu.Unlock()
		st.IPv6.ReassemblyEvictions += r6.Evictions + r6.SourceEvictions
		st.IPv6.ReassemblyTimeouts += r6.Timeouts
	}
	copyTCPStats(&st.TCP, &s.tcp.stats)
	st.TCP.TimeWait = uint64(s.tcp.demux.TimeWaitLen())
	st.TCP.DropNoConnection = s.tcp.stats.DroppedNoConnection.Load()
	return st
}

// AddNIC attaches ep to the stack with the address addr (for example
// 10.0.0.2/24 or fd00::2/64), adds the on-link route for addr's subnet,
// announces an IPv4 address with a gratuitous ARP (RFC 5227 §3) and
// starts the NIC's reader: one per queue of a link.MultiQueue (a TAP or
// TUN device opened with several Queues), each frame written on the
// queue its flow hashes to. An Ethernet NIC whose MTU is at least 1280
// also forms its IPv6 link-local address from its MAC (modified EUI-64,
// RFC 4862 §5.3); IPv6 addresses are assigned once duplicate address
// detection passes (RFC 4862 §5.4, Options.DADTransmits).
// A nil ep is ErrNilEndpoint, and an MTU outside 68-65535 an error; an
// invalid prefix, or an IPv6 one on a NIC whose MTU is below 1280, is
// ErrInvalidPrefix; an address that no host may have (see checkNICAddr,
// checkNICAddr6), that another NIC has, or whose subnet overlaps another
// NIC's is ErrInvalidAddress, with the reason.
func (s *Stack) AddNIC(ep link.Endpoint, addr netip.Prefix) (NICID, error) {
	if err := s.usable(); err != nil {
		return 0, err
	}
	if err := checkEndpoint(ep); err != nil {
		return 0, err
	}
	if err := checkAddrFor(ep.MTU(), addr); err != nil {
		return 0, err
	}
	if s.closing.Load() {
		return 0, ErrClosed
	}
	n := &nic{
		s:     s,
		ep:    ep,
		mac:   ep.HardwareAddr(),
		mtu:   ep.MTU(),
		arp:   arp.NewCache(s.opts.ARP),
		reasm: ipv4.NewReassembler(s.opts.Reassembly),
	}
	if oep, ok := ep.(link.OffloadEndpoint); ok {
		n.oep, n.ofl = oep, oep.Offloads()
	}
	n.queues = newQueues(ep)
	n.initIPv6()
	s.mu.Lock()
	for _, o := range s.nics {
		if err := nicAddrConflict(o, addr); err != nil {
			s.mu.Unlock()
			return 0, err
		}
	}
	n.id = NICID(len(s.nics) + 1)
	name := nicName(ep, n.id)
	n.name.Store(&name)
	as := []netip.Prefix{}
	var err error
	if addr.Addr().Is4() {
		as = append(as, addr)
		err = s.routes.Add(ip.Route{Destination: addr.Masked(), NIC: int(n.id)})
	}
	n.addrs.Store(&as)
	s.nics = append(s.nics, n)
	s.routeChanged()
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	s.wg.Add(len(n.queues))
	for _, q := range n.queues {
		go n.readLoop(q)
	}
	n.startIPv6()
	if addr.Addr().Is4() {
		n.announce(addr.Addr())
	} else {
		n.startDAD(addr, false, false)
	}
	return n.id, nil
}

// AddRoute adds r to the routing table. A route with a Gateway sends
// matching traffic to the gateway's MAC; without one, destinations are
// resolved on-link. r.NIC may be 0 when r.Gateway is set: the NIC whose
// subnet holds the gateway is used.
func (s *Stack) AddRoute(r ip.Route) error {
	if err := s.usable(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !r.Destination.IsValid() {
		return fmt.Errorf("%w: %v", ErrInvalidPrefix, r.Destination)
	}
	if r.Gateway.IsValid() && r.Gateway.Is6() != r.Destination.Addr().Is6() {
		return fmt.Errorf("%w: gateway %v for %v", ErrInvalidPrefix, r.Gateway, r.Destination)
	}
	if r.NIC == 0 {
		if !r.Gateway.IsValid() {
			return fmt.Errorf("stack: route %v needs a NIC or a gateway", r.Destination)
		}
	nics:
		for _, n := range s.nics {
			for _, p := range n.addrList() {
				if p.Contains(r.Gateway) {
					r.NIC = int(n.id)
					break nics
				}
			}
		}
		if r.NIC == 0 && r.Gateway.IsLinkLocalUnicast() {
			// A link-local gateway names no NIC by itself (RFC 4007 §6):
			// the only IPv6 NIC, if there is one.
			for _, n := range s.nics {
				if n.ethernet() && n.ipv6Capable() {
					if r.NIC != 0 {
						return fmt.Errorf("stack: link-local gateway %v needs a NIC: several have IPv6", r.Gateway)
					}
					r.NIC = int(n.id)
				}
			}
		}
		if r.NIC == 0 {
			return fmt.Errorf("stack: gateway %v is on no NIC's subnet", r.Gateway)
		}
	}
	if r.NIC < 1 || r.NIC > len(s.nics) {
		return ErrUnknownNIC
	}
	if err := s.routes.Add(r); err != nil {
		return err
	}
	s.routeChanged()
	return nil
}

// Routes returns the routing table in the order `ip route` prints it.
func (s *Stack) Routes() []ip.Route {
	if s.usable() != nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.routes.Routes()
}

// Neighbor is one entry of a NIC's ARP cache or IPv6 neighbour cache.
type Neighbor struct {
	NIC NICID
	arp.Entry
}

// Neighbors returns the ARP and IPv6 neighbour cache entries of every
// NIC, like `ip neigh`.
func (s *Stack) Neighbors() []Neighbor {
	if s.usable() != nil {
		return nil
	}
	var out []Neighbor
	for _, n := range s.nicList() {
		n.arpMu.Lock()
		for _, e := range n.arp.Entries() {
			out = append(out, Neighbor{NIC: n.id, Entry: e})
		}
		n.arpMu.Unlock()
		n.ndMu.Lock()
		for _, e := range n.nd.Entries() {
			out = append(out, Neighbor{NIC: n.id, Entry: e})
		}
		n.ndMu.Unlock()
	}
	return out
}

// Close detaches and closes every NIC's endpoint and stops every goroutine
// the stack started; it returns once they have all ended.
func (s *Stack) Close() error {
	if err := s.usable(); err != nil {
		if err == ErrNotInitialized {
			return err
		}
		return nil // New refused the options and started nothing
	}
	if s.closing.Swap(true) {
		return nil
	}
	s.closeForwarders()
	s.closeTCP()
	s.closeUDP()
	close(s.done)
	var errs []error
	for _, n := range s.nicList() {
		if err := n.ep.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

func (s *Stack) nicList() []*nic {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]*nic(nil), s.nics...)
}

func (s *Stack) nicByID(id int) *nic {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if id < 1 || id > len(s.nics) {
		return nil
	}
	return s.nics[id-1]
}

// kick makes the timer goroutine recompute its deadline.
func (s *Stack) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// timerLoop is the stack's one timer goroutine: it sleeps until the
// earliest deadline of any protocol core and then lets each run its due
// work with the current time.
func (s *Stack) timerLoop() {
	defer s.wg.Done()
	t := s.clock.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := s.clock.Now()
		next := s.runTimers(now)
		if next.IsZero() {
			next = now.Add(time.Hour)
		}
		t.Stop()
		t.ResetAt(next)
		select {
		case <-s.done:
			return
		case <-s.wake:
		case <-t.C():
		}
	}
}

// runTimers runs every core's due work at now and returns the earliest
// deadline that remains (zero if none).
func (s *Stack) runTimers(now time.Time) time.Time {
	var next time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, n := range s.nicList() {
		earliest(n.runTimers(now))
	}
	earliest(s.runTransportTimers(now))
	earliest(s.tcp.demux.ExpireTimeWait(now))
	earliest(s.runForwarders(now))
	earliest(s.expireConntrack(now))
	return next
}
