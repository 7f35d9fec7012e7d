package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"time"
)

// Ports the metrics listen on.
const (
	portBulk    = 5001
	portLatency = 5002
	portConnect = 5003
	portIdle    = 5004
)

// dialTimeout bounds each connection attempt.
const dialTimeout = 10 * time.Second

// chunk is the size of each Write in the bulk transfer.
const chunk = 64 << 10

// Bulk is the result of one bulk transfer.
type Bulk struct {
	Bytes   int64
	Elapsed time.Duration
	// Mallocs is the process's heap allocations during the transfer (both
	// stacks, the link and the net.Conn adapters).
	Mallocs uint64
	// Segments estimates the data segments sent: Bytes / MSS, rounded up.
	// Both stacks are counted the same way so the ratio is fair.
	Segments int64
}

// MBps returns the throughput in megabytes (10^6 bytes) per second.
func (b Bulk) MBps() float64 { return float64(b.Bytes) / b.Elapsed.Seconds() / 1e6 }

// AllocsPerSegment returns Mallocs / Segments.
func (b Bulk) AllocsPerSegment() float64 { return float64(b.Mallocs) / float64(b.Segments) }

// MeasureBulk sends n bytes over one connection from client to server and
// times it from the first Write to the server having read the last byte.
func MeasureBulk(p *Pair, n int64) (Bulk, error) {
	l, err := p.Server.Listen(portBulk)
	if err != nil {
		return Bulk{}, err
	}
	defer l.Close()
	got := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- err
			return
		}
		defer c.Close()
		buf := make([]byte, chunk)
		var m int64
		for m < n {
			k, err := c.Read(buf)
			m += int64(k)
			if err != nil {
				got <- fmt.Errorf("server read after %d bytes: %w", m, err)
				return
			}
		}
		got <- nil
	}()
	c, err := dial(p, portBulk)
	if err != nil {
		return Bulk{}, err
	}
	defer c.Close()
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i)
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		for sent := int64(0); sent < n; {
			k := min(int64(len(buf)), n-sent)
			if _, err := c.Write(buf[:k]); err != nil {
				werr <- fmt.Errorf("client write after %d bytes: %w", sent, err)
				return
			}
			sent += k
		}
		werr <- nil
	}()
	var rerr error
	select {
	case rerr = <-got:
	case err := <-werr:
		if err != nil {
			return Bulk{}, err
		}
		rerr = <-got
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&ms1)
	if rerr != nil {
		return Bulk{}, rerr
	}
	mss := int64(p.MSS())
	return Bulk{
		Bytes:    n,
		Elapsed:  elapsed,
		Mallocs:  ms1.Mallocs - ms0.Mallocs,
		Segments: (n + mss - 1) / mss,
	}, nil
}

// Latency is the distribution of 1-byte request/response round trips.
type Latency struct {
	Rounds      int
	Median, P99 time.Duration
}

// MeasureLatency does rounds 1-byte request/response exchanges on one
// connection: the client writes a byte, the server echoes it, and the
// client times each round trip.
func MeasureLatency(p *Pair, rounds int) (Latency, error) {
	l, err := p.Server.Listen(portLatency)
	if err != nil {
		return Latency{}, err
	}
	defer l.Close()
	srv := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			srv <- err
			return
		}
		defer c.Close()
		b := make([]byte, 1)
		for {
			if _, err := io.ReadFull(c, b); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				srv <- err
				return
			}
			if _, err := c.Write(b); err != nil {
				srv <- err
				return
			}
		}
	}()
	c, err := dial(p, portLatency)
	if err != nil {
		return Latency{}, err
	}
	rtts := make([]time.Duration, rounds)
	b := make([]byte, 1)
	for i := range rtts {
		start := time.Now()
		if _, err := c.Write(b); err != nil {
			c.Close()
			return Latency{}, fmt.Errorf("round %d: %w", i, err)
		}
		if _, err := io.ReadFull(c, b); err != nil {
			c.Close()
			return Latency{}, fmt.Errorf("round %d: %w", i, err)
		}
		rtts[i] = time.Since(start)
	}
	c.Close()
	if err := <-srv; err != nil {
		return Latency{}, fmt.Errorf("server: %w", err)
	}
	slices.Sort(rtts)
	return Latency{
		Rounds: rounds,
		Median: rtts[len(rtts)/2],
		P99:    rtts[len(rtts)*99/100],
	}, nil
}

// ConnRate is the result of MeasureConnRate.
type ConnRate struct {
	Conns   int // connections completed
	Wanted  int // connections asked for; more than Conns if the budget ran out
	Elapsed time.Duration
	// Slowest is the longest connection (dial to close); one far above
	// the mean points at a retransmission timeout.
	Slowest time.Duration
}

// PerSecond returns completed connections per second.
func (c ConnRate) PerSecond() float64 { return float64(c.Conns) / c.Elapsed.Seconds() }

// MeasureConnRate opens n connections one after another; on each the client
// writes one byte, the server answers with one byte and closes, then the
// client closes. It stops early, with the connections completed so far, if
// budget (when positive) runs out, so that a stack that stalls on some
// connections cannot stretch a run without bound.
func MeasureConnRate(p *Pair, n int, budget time.Duration) (ConnRate, error) {
	return connRate(p, portConnect, n, budget)
}

// connRate is MeasureConnRate on the server's port.
func connRate(p *Pair, port uint16, n int, budget time.Duration) (ConnRate, error) {
	l, err := p.Server.Listen(port)
	if err != nil {
		return ConnRate{}, err
	}
	defer l.Close()
	srv := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		b := make([]byte, 1)
		for i := 0; i < n; i++ {
			c, err := l.Accept()
			if err != nil {
				select {
				case <-stop:
					err = nil
				default:
					err = fmt.Errorf("accept %d: %w", i, err)
				}
				srv <- err
				return
			}
			_, err = io.ReadFull(c, b)
			if err == nil {
				_, err = c.Write(b)
			}
			c.Close()
			if err != nil {
				srv <- fmt.Errorf("connection %d: %w", i, err)
				return
			}
		}
		srv <- nil
	}()
	b := make([]byte, 1)
	start := time.Now()
	done := 0
	var slowest time.Duration
	for ; done < n; done++ {
		if budget > 0 && time.Since(start) > budget {
			break
		}
		t0 := time.Now()
		c, err := dial(p, port)
		if err != nil {
			return ConnRate{}, fmt.Errorf("connection %d: %w", done, err)
		}
		_, err = c.Write(b)
		if err == nil {
			_, err = io.ReadFull(c, b)
		}
		c.Close()
		if err != nil {
			return ConnRate{}, fmt.Errorf("connection %d: %w", done, err)
		}
		slowest = max(slowest, time.Since(t0))
	}
	elapsed := time.Since(start)
	if done < n {
		close(stop)
		l.Close() // ends the server's Accept
	}
	if err := <-srv; err != nil {
		return ConnRate{}, fmt.Errorf("server: %w", err)
	}
	return ConnRate{Conns: done, Wanted: n, Elapsed: elapsed, Slowest: slowest}, nil
}

// MeasureIdleHeap opens n connections and returns the growth of the live
// heap divided by n: the cost of one idle established connection, both
// of its ends and their net.Conn adapters included.
func MeasureIdleHeap(p *Pair, n int) (float64, error) {
	l, err := p.Server.Listen(portIdle)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	server := make([]net.Conn, 0, n)
	client := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range client {
			c.Close()
		}
		for _, c := range server {
			c.Close()
		}
	}()
	accepted := make(chan net.Conn, n)
	go func() {
		for range n {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	before := liveHeap()
	for i := 0; i < n; i++ {
		c, err := dial(p, portIdle)
		if err != nil {
			return 0, fmt.Errorf("connection %d: %w", i, err)
		}
		client = append(client, c)
	}
	timeout := time.After(dialTimeout)
	for len(server) < n {
		select {
		case c, ok := <-accepted:
			if !ok {
				return 0, fmt.Errorf("accepted only %d of %d connections", len(server), n)
			}
			server = append(server, c)
		case <-timeout:
			return 0, fmt.Errorf("accepted only %d of %d connections", len(server), n)
		}
	}
	after := liveHeap()
	runtime.KeepAlive(client)
	runtime.KeepAlive(server)
	return (float64(after) - float64(before)) / float64(n), nil
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// dial connects the pair's client to the server's port.
func dial(p *Pair, port uint16) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	return p.Client.Dial(ctx, netip.AddrPortFrom(p.ServerAddr, port))
}
