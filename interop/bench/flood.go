package bench

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// FloodConfig configures RunFlood.
type FloodConfig struct {
	MTU int
	// Rate is the flood's SYNs per second in the paced runs.
	Rate int
	// Max adds runs with the flood written as fast as this machine can.
	Max bool
	// Duration is how long each flood lasts; legitimate clients connect
	// meanwhile.
	Duration time.Duration
	// ConnectInterval is the time between two legitimate connects.
	ConnectInterval time.Duration
	// ConnectTimeout bounds each legitimate connect and its echo.
	ConnectTimeout time.Duration
	// Servers are the servers flooded: StackUstack, StackGVisor, StackLinux.
	Servers []string
	Seed    uint64 // the flood's random sources, ports and ISNs
	// Routed gives every server a route for FloodPrefix into the client
	// namespace, whose kernel drops what it cannot forward: the servers
	// then send every SYN-ACK (and Linux's and gVisor's SYN queues and
	// cookies come into play), and the SYN-ACKs die there. Without it no
	// namespace has a route for the prefix, and a server may drop a SYN it
	// cannot answer before keeping any state (Linux and gVisor do).
	Routed bool
	// Queues is the number of queues of ustack's TAP device, a reader
	// each (0 or 1: one); the kernel spreads the flood's flows over them
	// by hash. gVisor's fdbased endpoint reads one.
	Queues int
}

// DefaultFloodConfig is the run of issue 8: 20000 SYN/s and flat out,
// 10 s each, a legitimate connect every 20 ms given 5 s, against every
// server.
func DefaultFloodConfig() FloodConfig {
	return FloodConfig{
		MTU:             1500,
		Rate:            20000,
		Max:             true,
		Duration:        10 * time.Second,
		ConnectInterval: 20 * time.Millisecond,
		ConnectTimeout:  5 * time.Second,
		Servers:         AllLossyStacks,
		Seed:            1,
	}
}

// QuickFloodConfig checks that every server and both kinds of flood work,
// in a few seconds: half a second of flood each, connects given a second.
func QuickFloodConfig() FloodConfig {
	c := DefaultFloodConfig()
	c.Duration = 500 * time.Millisecond
	c.ConnectTimeout = time.Second
	return c
}

// floodRun is what one flood against one server measured.
type floodRun struct {
	server     string
	rate       int // 0: flat out
	tally      floodTally
	linkDrops  uint64
	attempted  int
	connected  int             // connects that succeeded
	echoed     int             // of which echoed
	latencies  []time.Duration // of the connects that echoed, sorted
	before     *childStats     // userspace servers
	after      *childStats     // at the end of the flood
	kernBefore map[string]uint64
	kernAfter  map[string]uint64
	err        error
}

// RunFlood floods each server of cfg with spoofed SYNs, at cfg.Rate and
// (with cfg.Max) flat out, while kernel clients connect and echo, and
// writes a line per run and then one table per rate: legitimate connects
// that succeeded, their latency, the flood rate reached, the server's
// memory and its listener counters, with the ratios ustack/Linux and
// ustack/gVisor. Every namespace and child it creates is gone when it
// returns. It needs root, /dev/net/tun, ip(8) and sysctl(8).
func RunFlood(cfg FloodConfig, w io.Writer) error {
	if err := TAPAvailable(); err != nil {
		return fmt.Errorf("bench: flood: %w", err)
	}
	rates := []int{cfg.Rate}
	if cfg.Max {
		rates = append(rates, 0)
	}
	where := "routed nowhere in the benchmark's namespaces"
	if cfg.Routed {
		where = "the servers route them into the client namespace, whose kernel does not forward and drops the SYN-ACKs"
	}
	fmt.Fprintf(w, "SYN flood: spoofed SYNs from %v (%s; random ports, ISNs and timestamps) written with AF_PACKET into the server's link for %v, while a kernel client in the client namespace connects every %v (each given %v) and echoes %d bytes; servers: ustack (%d TAP queue(s), a reader each) and gVisor (fdbased) on a TAP device, each in a child process of its own (memory: that process's RSS, and its Go heap live after a full GC; CPU: that process's, user and system), Linux in its own namespace behind a veth (tcp_syncookies=1); MTU %d\n",
		FloodPrefix, where, cfg.Duration, cfg.ConnectInterval, cfg.ConnectTimeout, len(echoMessage), max(cfg.Queues, 1), cfg.MTU)
	defer closeLive() // also on a panic
	var runs []*floodRun
	var errs []error
	for _, rate := range rates {
		for _, server := range cfg.Servers {
			r := runFlood(cfg, server, rate)
			runs = append(runs, r)
			fmt.Fprintf(w, "  %-7s %-12s %s\n", stackTitle[server], rateTitle(rate), r.summary())
			if r.err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", server, rateTitle(rate), r.err))
			}
		}
	}
	errs = append(errs, closeLive())
	for _, rate := range rates {
		printFloodTable(w, cfg, rate, runs)
	}
	printFloodCounters(w, runs)
	return errors.Join(errs...)
}

func rateTitle(rate int) string {
	if rate == 0 {
		return "flat out"
	}
	return fmt.Sprintf("%d SYN/s", rate)
}

// runFlood builds one server, floods it and tears it down.
func runFlood(cfg FloodConfig, server string, rate int) *floodRun {
	r := &floodRun{server: server, rate: rate}
	n, err := newServerNet(server, cfg.MTU, cfg.Routed, cfg.Queues)
	if err != nil {
		r.err = err
		return r
	}
	r.err = r.measure(cfg, n)
	if err := n.Close(); err != nil && r.err == nil {
		r.err = fmt.Errorf("teardown: %w", err)
	}
	return r
}

// measure floods n while the clients connect.
func (r *floodRun) measure(cfg FloodConfig, n *serverNet) error {
	if err := n.checkNoRoute(FloodPrefix); err != nil {
		return err
	}
	serverMAC, clientMAC, err := n.macs()
	if err != nil {
		return err
	}
	fw, err := newFloodWriter(n.client, n.dev, newSYNBuilder(serverMAC, clientMAC, StackPrefix.Addr(), portFloodEcho, FloodPrefix, cfg.Seed))
	if err != nil {
		return err
	}
	defer fw.Close()
	if n.child != nil {
		st, err := n.child.stats()
		if err != nil {
			return err
		}
		r.before = &st
	}
	if r.kernBefore, err = n.kernelStats(); err != nil {
		return err
	}
	drops0, err := n.linkDrops()
	if err != nil {
		return err
	}

	stop := make(chan struct{})
	flooded := make(chan floodTally, 1)
	go func() { flooded <- fw.run(r.rate, stop) }()
	var mu sync.Mutex
	var wg sync.WaitGroup
	// The connects keep to their schedule: one due every interval from
	// the start, launched late rather than skipped when this process
	// could not run in time (a time.Ticker drops ticks), so that every
	// server gets the same number of attempts.
	start := time.Now()
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * cfg.ConnectInterval)
		if !due.Before(start.Add(cfg.Duration)) {
			break
		}
		time.Sleep(time.Until(due))
		r.attempted++
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, err := n.echo(time.Now().Add(cfg.ConnectTimeout))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				r.connected++
				r.echoed++
				r.latencies = append(r.latencies, lat)
			} else if !isConnectErr(err) {
				r.connected++ // connected, then the echo failed
			}
		}()
	}
	time.Sleep(time.Until(start.Add(cfg.Duration)))
	close(stop)
	r.tally = <-flooded
	if n.child != nil {
		var st childStats
		if st, err = n.child.stats(); err == nil {
			r.after = &st
		}
	}
	wg.Wait() // the connects in flight, which use n, before any return
	if err != nil {
		return err
	}
	if drops1, err := n.linkDrops(); err == nil {
		r.linkDrops = drops1 - drops0
	}
	if r.kernAfter, err = n.kernelStats(); err != nil {
		return err
	}
	slices.Sort(r.latencies)
	return r.tally.Err
}

// isConnectErr reports whether err came from the connect rather than the
// echo after it.
func isConnectErr(err error) bool {
	var ce *connectError
	return errors.As(err, &ce)
}

// summary is the progress line of a run.
func (r *floodRun) summary() string {
	if r.err != nil {
		return "FAILED: " + r.err.Error()
	}
	return fmt.Sprintf("%d of %d legitimate connects echoed, p50 %s p99 %s; flood %.0f SYN/s sent, %.0f%% dropped by the link",
		r.echoed, r.attempted, msCell(r.pct(50)), msCell(r.pct(99)), r.tally.Rate(), r.dropPct())
}

// pct returns the p-th percentile of the latencies, or -1 without any.
func (r *floodRun) pct(p int) time.Duration {
	if len(r.latencies) == 0 {
		return -1
	}
	return r.latencies[min(len(r.latencies)*p/100, len(r.latencies)-1)]
}

func (r *floodRun) dropPct() float64 {
	if r.tally.Sent == 0 {
		return 0
	}
	return 100 * float64(min(r.linkDrops, r.tally.Sent)) / float64(r.tally.Sent)
}

// success returns the fraction of legitimate connects that echoed.
func (r *floodRun) success() float64 {
	if r.attempted == 0 {
		return 0
	}
	return float64(r.echoed) / float64(r.attempted)
}

func msCell(d time.Duration) string {
	if d < 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f ms", ms(d))
}
