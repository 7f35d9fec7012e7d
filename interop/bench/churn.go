package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ChurnConfig configures RunChurn.
type ChurnConfig struct {
	MTU int
	// Duration is how long the clients churn each server.
	Duration time.Duration
	// Concurrency is the number of clients, each opening a new
	// connection per request (wrk -c).
	Concurrency int
	// RequestTimeout bounds each connection: connect, request, response.
	RequestTimeout time.Duration
	// Servers are StackUstack and StackGVisor.
	Servers []string
	// Wrk runs wrk(1) in the client namespace as the clients (wrk -c
	// Concurrency -d Duration -H 'Connection: close'), as issue 8 measured,
	// instead of the benchmark's own Go clients. wrk must be on PATH.
	Wrk bool
}

// DefaultChurnConfig is the churn of issue 8: 50 clients for 20 s
// against each server.
func DefaultChurnConfig() ChurnConfig {
	return ChurnConfig{
		MTU:            1500,
		Duration:       20 * time.Second,
		Concurrency:    50,
		RequestTimeout: 5 * time.Second,
		Servers:        []string{StackUstack, StackGVisor},
	}
}

// QuickChurnConfig checks that the churn works: one second per server.
func QuickChurnConfig() ChurnConfig {
	c := DefaultChurnConfig()
	c.Duration = time.Second
	return c
}

// churnRun is what churning one server measured.
type churnRun struct {
	server        string
	conns, failed int
	firstErr      error
	elapsed       time.Duration
	latencies     []time.Duration // per connection, sorted
	before, after childStats
	err           error
}

// httpRequest is every churn client's request.
var httpRequest = []byte("GET / HTTP/1.1\r\nHost: 10.77.0.2\r\nConnection: close\r\n\r\n")

// RunChurn churns each server of cfg: for cfg.Duration, cfg.Concurrency
// kernel clients each open a new connection per HTTP request (the server
// answers and closes first, so that its side ends in TIME-WAIT), and it
// writes the connections made, their rate and the server's memory before
// and after, per connection and per connection in TIME-WAIT, ustack beside
// gVisor. Each server runs in a child process of its own, so that its RSS
// is its own. Every namespace and child it creates is gone when it
// returns.
func RunChurn(cfg ChurnConfig, w io.Writer) error {
	if err := TAPAvailable(); err != nil {
		return fmt.Errorf("bench: churn: %w", err)
	}
	clients := "kernel clients (Go)"
	if cfg.Wrk {
		clients = "kernel clients (wrk -t 2)"
	}
	fmt.Fprintf(w, "churn: %d %s in a throw-away namespace, a new connection per HTTP request (Connection: close; the server closes first) for %v, against ustack and gVisor (fdbased) on a TAP device, each in a child process of its own (memory: its RSS, and its Go heap live after a full GC); MTU %d\n",
		cfg.Concurrency, clients, cfg.Duration, cfg.MTU)
	defer closeLive() // also on a panic
	var runs []*churnRun
	var errs []error
	for _, server := range cfg.Servers {
		r := runChurn(cfg, server)
		runs = append(runs, r)
		if r.err != nil {
			fmt.Fprintf(w, "  %-7s FAILED: %v\n", stackTitle[server], r.err)
			errs = append(errs, fmt.Errorf("%s: %w", server, r.err))
			continue
		}
		fmt.Fprintf(w, "  %-7s %d connections in %v (%.0f/s), %d failed", stackTitle[server], r.conns, r.elapsed.Round(time.Millisecond), r.rate(), r.failed)
		if r.firstErr != nil {
			fmt.Fprintf(w, " (first: %v)", r.firstErr)
		}
		fmt.Fprintln(w)
	}
	errs = append(errs, closeLive())
	printChurnTable(w, cfg, runs)
	return errors.Join(errs...)
}

// runChurn builds one server, churns it and tears it down.
func runChurn(cfg ChurnConfig, server string) *churnRun {
	r := &churnRun{server: server}
	if server == StackLinux {
		r.err = errors.New("churn measures the userspace servers only")
		return r
	}
	n, err := newServerNet(server, cfg.MTU, false, 1)
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

func (r *churnRun) measure(cfg ChurnConfig, n *serverNet) error {
	// Every ephemeral port, so that the clients reuse 4-tuples as late as
	// they can (they do reuse them: the server's TIME-WAIT must let a new
	// SYN in, RFC 6191).
	if _, err := n.clientNS.Run("sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65535"); err != nil {
		return err
	}
	var err error
	if r.before, err = n.child.stats(); err != nil {
		return err
	}
	if cfg.Wrk {
		if err := r.runWrk(cfg, n); err != nil {
			return err
		}
		r.after, err = n.child.stats()
		return err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(cfg.Duration)
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lats []time.Duration
			conns, failed := 0, 0
			var first error
			for time.Now().Before(end) {
				t0 := time.Now()
				if err := n.request(t0.Add(cfg.RequestTimeout)); err != nil {
					failed++
					if first == nil {
						first = err
					}
					continue
				}
				conns++
				lats = append(lats, time.Since(t0))
			}
			mu.Lock()
			r.conns += conns
			r.failed += failed
			r.latencies = append(r.latencies, lats...)
			if r.firstErr == nil {
				r.firstErr = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	slices.Sort(r.latencies)
	r.after, err = n.child.stats()
	return err
}

// request opens a connection to the HTTP server, sends httpRequest, reads
// the response to the server's close and closes, all by deadline.
func (n *serverNet) request(deadline time.Time) error {
	c, err := n.client.dialFrom(netip.AddrPortFrom(StackPrefix.Addr(), portChurnHTTP), deadline)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	if _, err := c.Write(httpRequest); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	resp, err := io.ReadAll(io.LimitReader(c, 4096))
	if err != nil {
		return fmt.Errorf("response: %w", err)
	}
	if !bytes.Equal(resp, httpResponse) {
		return fmt.Errorf("response: %q", resp)
	}
	return nil
}

// wrkSummary and wrkErrors match wrk's summary lines: "98765 requests in
// 20.01s, 9.42MB read" and "Socket errors: connect 0, read 1, write 0,
// timeout 2" / "Non-2xx or 3xx responses: 3".
var (
	wrkSummary = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m)\b`)
	wrkErrors  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)|Non-2xx or 3xx responses: (\d+)`)
	wrkLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// runWrk churns n's HTTP server with wrk in the client namespace and
// reads the connections made (one per request: Connection: close), the
// errors and the latency percentiles from its report.
func (r *churnRun) runWrk(cfg ChurnConfig, n *serverNet) error {
	url := fmt.Sprintf("http://%v:%d/", StackPrefix.Addr(), portChurnHTTP)
	secs := max(1, int(cfg.Duration.Round(time.Second)/time.Second))
	out, err := n.clientNS.Run("wrk", "-t", "2", "-c", strconv.Itoa(cfg.Concurrency), "-d", strconv.Itoa(secs)+"s",
		"--timeout", cfg.RequestTimeout.String(), "--latency", "-H", "Connection: close", url)
	if err != nil {
		return fmt.Errorf("wrk: %w", err)
	}
	return r.parseWrk(string(out))
}

// parseWrk fills r from wrk's report.
func (r *churnRun) parseWrk(out string) error {
	m := wrkSummary.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("wrk: no summary line in %q", out)
	}
	total, _ := strconv.Atoi(m[1])
	r.elapsed = wrkDuration(m[2], m[3])
	failed := 0
	for _, e := range wrkErrors.FindAllStringSubmatch(out, -1) {
		for _, f := range e[1:] {
			v, _ := strconv.Atoi(f)
			failed += v
		}
	}
	r.failed = failed
	r.conns = max(0, total-failed)
	if r.conns == 0 {
		return fmt.Errorf("wrk made no successful request: %q", out)
	}
	// Two points stand for the distribution: the table prints p50 and p99.
	var p50, p99 time.Duration
	for _, l := range wrkLatency.FindAllStringSubmatch(out, -1) {
		d := wrkDuration(l[2], l[3])
		if l[1] == "50" {
			p50 = d
		} else {
			p99 = d
		}
	}
	r.latencies = make([]time.Duration, 100)
	for i := range r.latencies {
		r.latencies[i] = p50
		if i >= 99 {
			r.latencies[i] = p99
		}
	}
	return nil
}

// wrkDuration converts one of wrk's figures ("20.01", "s") to a duration.
func wrkDuration(v, unit string) time.Duration {
	f, _ := strconv.ParseFloat(v, 64)
	scale := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute}[unit]
	return time.Duration(f * float64(scale))
}

func (r *churnRun) rate() float64 { return float64(r.conns) / r.elapsed.Seconds() }

// timeWaitCounter matches counters about TIME-WAIT, printed below the
// table: a stack that keeps TIME-WAIT apart from its connections counts
// them there.
var timeWaitCounter = regexp.MustCompile(`(?i)time_?wait|\btw`)

type churnRow struct {
	name  string
	value func(*churnRun) (string, float64, bool)
}

// perConn formats bytes per connection, or "—" without connections.
func perConn(delta float64, n int) (string, float64, bool) {
	if n <= 0 {
		return "—", 0, false
	}
	v := delta / float64(n)
	return fmt.Sprintf("%.0f", v), v, true
}

var churnRows = []churnRow{
	{"connections", func(r *churnRun) (string, float64, bool) { return num("%.0f", float64(r.conns)) }},
	{"connections/s", func(r *churnRun) (string, float64, bool) { return num("%.0f", r.rate()) }},
	{"failed connections", func(r *churnRun) (string, float64, bool) { return num("%.0f", float64(r.failed)) }},
	{"connection p50 (ms)", func(r *churnRun) (string, float64, bool) { return churnPct(r, 50) }},
	{"connection p99 (ms)", func(r *churnRun) (string, float64, bool) { return churnPct(r, 99) }},
	{"server CPU per connection (µs)", func(r *churnRun) (string, float64, bool) {
		if r.conns <= 0 || r.after.CPU < r.before.CPU {
			return "—", 0, false
		}
		return num("%.1f", float64(r.after.CPU-r.before.CPU)/1e3/float64(r.conns))
	}},
	{"frames in / out per connection", func(r *churnRun) (string, float64, bool) {
		in, iok := r.after.Counters["Link.FramesIn"]
		out, ook := r.after.Counters["Link.FramesOut"]
		if !iok || !ook || r.conns <= 0 {
			return "—", 0, false
		}
		in -= r.before.Counters["Link.FramesIn"]
		out -= r.before.Counters["Link.FramesOut"]
		return fmt.Sprintf("%.2f / %.2f", float64(in)/float64(r.conns), float64(out)/float64(r.conns)), 0, false
	}},
	{"server RSS before → after (MB)", func(r *churnRun) (string, float64, bool) {
		return fmt.Sprintf("%.1f → %.1f", mb(r.before.RSS), mb(r.after.RSS)), 0, false
	}},
	{"server RSS growth (MB)", func(r *churnRun) (string, float64, bool) { return num("%.1f", mb(r.after.RSS)-mb(r.before.RSS)) }},
	{"server peak RSS (MB)", func(r *churnRun) (string, float64, bool) { return num("%.1f", mb(r.after.PeakRSS)) }},
	{"server Go heap live before → after (MB)", func(r *churnRun) (string, float64, bool) {
		return fmt.Sprintf("%.1f → %.1f", mb(r.before.HeapLive), mb(r.after.HeapLive)), 0, false
	}},
	{"RSS growth per connection (B)", func(r *churnRun) (string, float64, bool) {
		return perConn(float64(r.after.RSS)-float64(r.before.RSS), r.conns)
	}},
	{"heap growth per connection (B)", func(r *churnRun) (string, float64, bool) {
		return perConn(float64(r.after.HeapLive)-float64(r.before.HeapLive), r.conns)
	}},
	{"connections held at the end", func(r *churnRun) (string, float64, bool) { return num("%.0f", float64(r.after.Conns)) }},
	{"of which in TIME-WAIT", func(r *churnRun) (string, float64, bool) { return num("%.0f", float64(r.after.TimeWait)) }},
	{"heap growth per TIME-WAIT connection (B)", func(r *churnRun) (string, float64, bool) {
		return perConn(float64(r.after.HeapLive)-float64(r.before.HeapLive), r.after.TimeWait)
	}},
	{"RSS growth per TIME-WAIT connection (B)", func(r *churnRun) (string, float64, bool) {
		return perConn(float64(r.after.RSS)-float64(r.before.RSS), r.after.TimeWait)
	}},
}

func churnPct(r *churnRun, p int) (string, float64, bool) {
	if len(r.latencies) == 0 {
		return "—", 0, false
	}
	return num("%.2f", ms(r.latencies[min(len(r.latencies)*p/100, len(r.latencies)-1)]))
}

func printChurnTable(w io.Writer, cfg ChurnConfig, runs []*churnRun) {
	byServer := map[string]*churnRun{}
	for _, r := range runs {
		if r.err == nil {
			byServer[r.server] = r
		}
	}
	fmt.Fprintln(w)
	header := []string{"metric"}
	for _, s := range cfg.Servers {
		header = append(header, stackTitle[s])
	}
	both := slices.Contains(cfg.Servers, StackUstack) && slices.Contains(cfg.Servers, StackGVisor)
	if both {
		header = append(header, "ustack/gVisor")
	}
	table := [][]string{header}
	for _, row := range churnRows {
		line := []string{row.name}
		for _, s := range cfg.Servers {
			c := "FAILED"
			if r := byServer[s]; r != nil {
				c, _, _ = row.value(r)
			}
			line = append(line, c)
		}
		if both {
			ratio := "—"
			if u, g := byServer[StackUstack], byServer[StackGVisor]; u != nil && g != nil {
				_, uv, uok := row.value(u)
				_, gv, gok := row.value(g)
				if uok && gok && gv != 0 {
					ratio = fmt.Sprintf("%.2f", uv/gv)
				}
			}
			line = append(line, ratio)
		}
		table = append(table, line)
	}
	writeTable(w, table)
	if u := byServer[StackUstack]; u != nil {
		mark := func(ok bool) string {
			if ok {
				return "met"
			}
			return "MISSED"
		}
		fmt.Fprintf(w, "ustack against issue 8's targets (for 20 s of churn): ≥ 200k connections: %s, RSS growth < 64 MB: %s\n",
			mark(u.conns >= 200_000), mark(u.after.RSS < u.before.RSS+64e6))
	}
	fmt.Fprintln(w, "growth: after the churn less before it; TIME-WAIT connections counted at the end from the stack's connection table (ustack: Connections(); gVisor: its registered endpoints)")
	for _, s := range cfg.Servers {
		r := byServer[s]
		if r == nil {
			continue
		}
		var parts []string
		for k, v := range r.after.Counters {
			if timeWaitCounter.MatchString(k) {
				parts = append(parts, fmt.Sprintf("%s %d", k, v))
			}
		}
		slices.Sort(parts)
		if len(parts) > 0 {
			fmt.Fprintf(w, "%s's TIME-WAIT counters at the end: %s\n", stackTitle[s], strings.Join(parts, ", "))
		}
	}
}
