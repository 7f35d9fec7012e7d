package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/ustack/ustack/interop/gvnet"
)

// UDPConn is a UDP socket as the benchmarks use it: connected, a net.Conn;
// bound, a net.PacketConn.
type UDPConn interface {
	net.Conn
	net.PacketConn
}

// UDPPeer is one stack's UDP as the benchmarks see it.
type UDPPeer interface {
	// ListenUDP opens a socket bound to port on the peer's address, with
	// the stack's default receive queue.
	ListenUDP(port uint16) (UDPConn, error)
	// DialUDP opens a socket connected to addr from an ephemeral port.
	DialUDP(addr netip.AddrPort) (UDPConn, error)
}

// ErrNoUDP reports a pair without UDP on both ends.
var ErrNoUDP = errors.New("bench: pair has no UDP")

// Ports the UDP metrics use.
const (
	portUDPStream = 5005
	portUDPRR     = 5006
)

// UDP payload sizes of the stream metrics: the smallest typical datagram
// (DNS, VoIP, games) and the largest that fits a 1500-byte MTU unfragmented
// with room for a tunnel's headers (QUIC, WireGuard).
const (
	UDPSmall = 64
	UDPLarge = 1400
)

// udpIdle is how long a stream's receiver may go without a datagram, after
// the sender finished (or, paced, while it waits), before the datagrams
// not yet received are counted as lost.
const udpIdle = 200 * time.Millisecond

// UDPStream is the result of one stream of datagrams from client to
// server.
type UDPStream struct {
	Size     int   // payload bytes per datagram
	Window   int   // datagrams in flight the paced sender allows; 0: flat out
	Sent     int64 // datagrams written without error
	Received int64 // datagrams the server read
	// Elapsed is from the first Write to the last datagram read.
	Elapsed time.Duration
	// Mallocs is the process's heap allocations while the stream ran
	// (both stacks, the link and the socket adapters).
	Mallocs uint64
}

// PerSecond returns the datagrams received per second.
func (u UDPStream) PerSecond() float64 { return float64(u.Received) / u.Elapsed.Seconds() }

// MBps returns the payload received in megabytes (10^6 bytes) per second.
func (u UDPStream) MBps() float64 { return u.PerSecond() * float64(u.Size) / 1e6 }

// LossPercent returns the share of datagrams sent that were not received,
// in percent.
func (u UDPStream) LossPercent() float64 {
	if u.Sent == 0 {
		return 0
	}
	return 100 * float64(u.Sent-u.Received) / float64(u.Sent)
}

// AllocsPerDatagram returns Mallocs per datagram sent.
func (u UDPStream) AllocsPerDatagram() float64 {
	if u.Sent == 0 {
		return 0
	}
	return float64(u.Mallocs) / float64(u.Sent)
}

// udpPeers returns the pair's UDP ends, or ErrNoUDP.
func udpPeers(p *Pair) (client, server UDPPeer, err error) {
	if p.ClientUDP == nil || p.ServerUDP == nil {
		return nil, nil, fmt.Errorf("%s: %w", p.Name, ErrNoUDP)
	}
	return p.ClientUDP, p.ServerUDP, nil
}

// MeasureUDPStream sends n datagrams of size (at least 16) bytes from a
// connected client socket to a bound server socket, which reads them.
// With window > 0 the
// sender keeps at most window datagrams written and not yet read (an
// application-level flow control, so that a receiver that keeps up loses
// nothing); with window 0 it writes flat out, and whatever the receive
// queue or the link drops is lost. Datagrams not read within udpIdle of
// the last one (paced: of the sender waiting) count as lost; a paced
// sender then carries on. The first datagram, which waits for ARP, is
// sent and read before the clock starts.
func MeasureUDPStream(p *Pair, size, n, window int) (UDPStream, error) {
	if size < 16 || n <= 0 || window < 0 {
		return UDPStream{}, fmt.Errorf("bench: UDP stream of %d datagrams of %d bytes, window %d: need size ≥ 16, n > 0, window ≥ 0", n, size, window)
	}
	cp, sp, err := udpPeers(p)
	if err != nil {
		return UDPStream{}, err
	}
	srv, err := sp.ListenUDP(portUDPStream)
	if err != nil {
		return UDPStream{}, err
	}
	defer srv.Close()
	cl, err := cp.DialUDP(netip.AddrPortFrom(p.ServerAddr, portUDPStream))
	if err != nil {
		return UDPStream{}, err
	}
	defer cl.Close()

	// Every datagram carries the stream's nonce at bytes 8-15, so that a
	// straggler of an earlier stream to the same port is not counted.
	nonce := uint64(time.Now().UnixNano())
	var (
		received atomic.Int64
		last     atomic.Int64 // UnixNano of the last datagram read
		progress = make(chan struct{}, 1)
		rdone    = make(chan error, 1)
	)
	go func() {
		buf := make([]byte, size+1)
		for {
			k, err := srv.Read(buf)
			if err != nil {
				if isTimeout(err) || errors.Is(err, net.ErrClosed) {
					err = nil
				}
				rdone <- err
				return
			}
			if k != size || binary.BigEndian.Uint64(buf[8:]) != nonce {
				continue
			}
			last.Store(time.Now().UnixNano())
			received.Add(1)
			signal(progress)
		}
	}()
	stopReceiver := func() error {
		srv.SetReadDeadline(time.Now())
		return <-rdone
	}

	// Warm up: the first datagram waits for ARP.
	buf := make([]byte, size)
	binary.BigEndian.PutUint64(buf[8:], nonce)
	if _, err := cl.Write(buf); err != nil {
		stopReceiver()
		return UDPStream{}, fmt.Errorf("warm-up write: %w", err)
	}
	select {
	case <-progress:
	case <-time.After(5 * time.Second):
		stopReceiver()
		return UDPStream{}, errors.New("warm-up datagram not received in 5s")
	}
	base := received.Load()

	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	// One timer for every wait, so that the harness allocates nothing
	// per datagram; waitProgress reports false after udpIdle without.
	idle := time.NewTimer(udpIdle)
	defer idle.Stop()
	waitProgress := func() bool {
		idle.Reset(udpIdle)
		select {
		case <-progress:
			return true
		case <-idle.C:
			return false
		}
	}
	var sent, writtenOff int64
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint64(buf, uint64(i))
		for window > 0 && sent-(received.Load()-base)-writtenOff >= int64(window) {
			if !waitProgress() {
				// The datagrams in flight are lost: carry on without them.
				writtenOff = sent - (received.Load() - base)
			}
		}
		if _, err := cl.Write(buf); err != nil {
			// Every stack measured blocks a sender that fills its send
			// buffer (or never fills one): an error is a failure, not a
			// datagram to count as lost.
			stopReceiver()
			return UDPStream{}, fmt.Errorf("write %d: %w", i, err)
		}
		sent++
	}
	// Wait for the receiver to read everything, or to go quiet.
	for got := received.Load(); got-base < sent; got = received.Load() {
		if !waitProgress() && received.Load() == got {
			break
		}
	}
	runtime.ReadMemStats(&ms1)
	if err := stopReceiver(); err != nil {
		return UDPStream{}, fmt.Errorf("server: %w", err)
	}
	got := received.Load() - base
	if got == 0 {
		return UDPStream{}, fmt.Errorf("none of %d datagrams received", sent)
	}
	return UDPStream{
		Size:     size,
		Window:   window,
		Sent:     sent,
		Received: got,
		Elapsed:  time.Unix(0, last.Load()).Sub(start),
		Mallocs:  ms1.Mallocs - ms0.Mallocs,
	}, nil
}

// UDPRR is the result of MeasureUDPRR.
type UDPRR struct {
	Size    int // payload bytes each way
	Rounds  int // round trips completed
	Lost    int // requests or replies lost (no reply within udpIdle)
	Elapsed time.Duration
	Median  time.Duration
}

// PerSecond returns round trips per second.
func (r UDPRR) PerSecond() float64 { return float64(r.Rounds) / r.Elapsed.Seconds() }

// MeasureUDPRR does rounds request/response exchanges of size bytes: the
// client (a connected socket) writes a datagram, the server (a bound
// socket) reads it with ReadFrom and sends it back with WriteTo, as an
// echo server does, and the client reads the reply. A round whose reply
// does not come within udpIdle is counted lost and the next begins; each
// datagram carries its round's number, so that a late reply is discarded.
func MeasureUDPRR(p *Pair, size, rounds int) (UDPRR, error) {
	if size < 8 || rounds <= 0 {
		return UDPRR{}, fmt.Errorf("bench: UDP RR of %d rounds of %d bytes: need size ≥ 8, rounds > 0", rounds, size)
	}
	cp, sp, err := udpPeers(p)
	if err != nil {
		return UDPRR{}, err
	}
	srv, err := sp.ListenUDP(portUDPRR)
	if err != nil {
		return UDPRR{}, err
	}
	sdone := make(chan error, 1)
	go func() {
		b := make([]byte, size)
		for {
			k, from, err := srv.ReadFrom(b)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					err = nil
				}
				sdone <- err
				return
			}
			if _, err := srv.WriteTo(b[:k], from); err != nil {
				sdone <- fmt.Errorf("server write: %w", err)
				return
			}
		}
	}()
	defer func() { srv.Close(); <-sdone }()
	cl, err := cp.DialUDP(netip.AddrPortFrom(p.ServerAddr, portUDPRR))
	if err != nil {
		return UDPRR{}, err
	}
	defer cl.Close()

	// A watchdog unblocks a Read that waited udpIdle without a round
	// completing (a datagram lost either way), so that no round needs a
	// deadline timer of its own.
	var completed atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(udpIdle / 2)
		defer t.Stop()
		seen, quiet := completed.Load(), 0
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if c := completed.Load(); c != seen {
				seen, quiet = c, 0
			} else if quiet++; quiet >= 2 {
				cl.SetReadDeadline(time.Now())
				quiet = 0
			}
		}
	}()
	// round makes round trip i: it writes and waits for its reply, and
	// reports false when the watchdog gave up on it.
	req, rep := make([]byte, size), make([]byte, size)
	round := func(i int) (bool, error) {
		binary.BigEndian.PutUint64(req, uint64(i))
		if _, err := cl.Write(req); err != nil {
			return false, fmt.Errorf("round %d: %w", i, err)
		}
		for {
			k, err := cl.Read(rep)
			if isTimeout(err) {
				cl.SetReadDeadline(time.Time{})
				return false, nil
			}
			if err != nil {
				return false, fmt.Errorf("round %d: %w", i, err)
			}
			if k == size && binary.BigEndian.Uint64(rep) == uint64(i) {
				completed.Add(1)
				return true, nil
			}
		}
	}
	// Warm up (ARP both ways), retrying a few times.
	ok := false
	for try := 0; try < 10 && !ok; try++ {
		if ok, err = round(-1 - try); err != nil {
			return UDPRR{}, err
		}
	}
	if !ok {
		return UDPRR{}, errors.New("warm-up: no reply")
	}
	r := UDPRR{Size: size}
	rtts := make([]time.Duration, 0, rounds)
	start := time.Now()
	for i := 0; i < rounds; i++ {
		t0 := time.Now()
		ok, err := round(i)
		if err != nil {
			return UDPRR{}, err
		}
		if !ok {
			select {
			case err := <-sdone: // the echo server stopped: no use going on
				sdone <- err // for the deferred wait
				return UDPRR{}, fmt.Errorf("round %d: server ended: %v", i, err)
			default:
			}
			r.Lost++
			continue
		}
		rtts = append(rtts, time.Since(t0))
	}
	r.Elapsed = time.Since(start)
	r.Rounds = len(rtts)
	if r.Rounds == 0 {
		return UDPRR{}, fmt.Errorf("all %d rounds lost", rounds)
	}
	r.Median = medianDuration(rtts)
	return r, nil
}

// medianDuration returns the median of v, which it sorts.
func medianDuration(v []time.Duration) time.Duration {
	f := make([]float64, len(v))
	for i, d := range v {
		f[i] = float64(d)
	}
	return time.Duration(median(f))
}

// isTimeout reports whether err is a deadline's timeout: gVisor's
// adapters return their own net.Error, not os.ErrDeadlineExceeded.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// signal wakes the goroutine waiting on ch, if any, without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// gvisorUDP adapts a gVisor stack's UDP to UDPPeer.
type gvisorUDP struct{ s *gvnet.Stack }

func (g gvisorUDP) ListenUDP(port uint16) (UDPConn, error) {
	c, err := g.s.ListenUDP(port)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (g gvisorUDP) DialUDP(addr netip.AddrPort) (UDPConn, error) {
	c, err := g.s.DialUDP(addr)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ListenUDP implements UDPPeer.
func (u ustackPeer) ListenUDP(port uint16) (UDPConn, error) {
	c, err := u.s.ListenUDP(netip.AddrPortFrom(u.addr, port))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// DialUDP implements UDPPeer.
func (u ustackPeer) DialUDP(addr netip.AddrPort) (UDPConn, error) {
	c, err := u.s.DialUDP(netip.AddrPort{}, addr)
	if err != nil {
		return nil, err
	}
	return c, nil
}
