package bench

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Metric names accepted by Config.Metrics.
const (
	MetricBulk    = "bulk"    // throughput and allocations per segment
	MetricLatency = "latency" // 1-byte request/response, median and p99
	MetricConnect = "connect" // connections per second
	MetricIdle    = "idle"    // heap bytes per idle established connection
	// MetricTimeWait is the heap bytes per connection left in TIME-WAIT
	// (IdleConns connections, closed by the server first).
	MetricTimeWait = "timewait"
	// MetricUDP is one-way streams of UDPDatagrams datagrams of UDPSmall
	// and UDPLarge bytes, paced (UDPWindow in flight) and flat out:
	// datagrams and MB/s received, loss, allocations per datagram.
	MetricUDP = "udp"
	// MetricUDPRR is UDPSmall-byte request/response over UDP (Rounds
	// round trips): round trips per second.
	MetricUDPRR = "udprr"
)

// AllMetrics lists every metric in table order.
var AllMetrics = []string{MetricBulk, MetricLatency, MetricConnect, MetricIdle, MetricTimeWait, MetricUDP, MetricUDPRR}

// PairKind names a pair constructor for Config.Pairs.
type PairKind struct {
	Name string
	New  PairFunc
}

// Pair kinds in table order: the two same-kind pairs the ratio compares,
// then the mixed pairs.
var (
	KindUstack         = PairKind{"ustack", UstackPair}
	KindGVisor         = PairKind{"gVisor", GVisorPair}
	KindUstackToGVisor = PairKind{"ustack→gVisor", UstackToGVisor}
	KindGVisorToUstack = PairKind{"gVisor→ustack", GVisorToUstack}
	// KindUstackOffload is not in AllKinds: ask for it (-pairs ustack-tso).
	KindUstackOffload = PairKind{"ustack, offloads", UstackOffloadPair}
	// KindUstackIPv4 and KindUstackOffloadIPv4 are ustack's pairs over
	// IPv4 whatever UseIPv6 says: an IPv6 run adds them to compare the
	// families in one run (columns "IPv6/IPv4").
	KindUstackIPv4        = PairKind{"ustack IPv4", UstackIPv4Pair}
	KindUstackOffloadIPv4 = PairKind{"ustack IPv4, offloads", UstackOffloadIPv4Pair}
	AllKinds              = []PairKind{KindUstack, KindGVisor, KindUstackToGVisor, KindGVisorToUstack}
)

// Config sizes a run.
type Config struct {
	MTU       int   // link MTU
	BulkBytes int64 // bytes sent by the bulk transfer
	Rounds    int   // request/response round trips
	Conns     int   // connections opened by the rate test
	IdleConns int   // connections held open by the idle-heap test
	// UDPDatagrams is the datagrams sent by each UDP stream, UDPWindow
	// the datagrams a paced stream keeps in flight.
	UDPDatagrams, UDPWindow int
	// Count is how many times each pair is measured; the table shows
	// medians. Zero means once.
	Count int
	// ConnBudget bounds the connection-rate test of each pair; it reports
	// the connections completed when time runs out. Zero means no bound.
	ConnBudget time.Duration
	Metrics    []string   // subset of AllMetrics
	Kinds      []PairKind // subset of AllKinds
}

// DefaultConfig is the full run: 256 MiB bulk, 20000 round trips (TCP
// and UDP), 3000 connections (at most 10 s), 1000 idle connections, UDP
// streams of 200000 datagrams (paced ones 64 in flight), MTU 1500, every
// metric and pair, three times.
func DefaultConfig() Config {
	return Config{
		MTU:          1500,
		BulkBytes:    256 << 20,
		Rounds:       20000,
		Conns:        3000,
		IdleConns:    1000,
		UDPDatagrams: 200000,
		UDPWindow:    64,
		ConnBudget:   10 * time.Second,
		Count:        3,
		Metrics:      AllMetrics,
		Kinds:        AllKinds,
	}
}

// QuickConfig is a run small enough for a unit test (well under a second
// per pair): it checks that every metric works, not how fast.
func QuickConfig() Config {
	c := DefaultConfig()
	c.BulkBytes = 4 << 20
	c.Rounds = 200
	c.Conns = 50
	c.IdleConns = 50
	c.UDPDatagrams = 2000
	c.Count = 1
	return c
}

// Result holds one pair's figures; a metric not measured is NaN-free zero
// with its Err set.
type Result struct {
	Kind    string
	Err     error // the pair could not be built (ErrUnavailable) or a metric failed
	Bulk    Bulk
	Latency Latency
	Conn    ConnRate
	IdleB   float64
	// TimeWaitB is the heap per connection in TIME-WAIT.
	TimeWaitB float64
	// UDPPaced and UDPFlat are the UDP streams, paced and flat out, at
	// UDPSmall ([0]) and UDPLarge ([1]) bytes.
	UDPPaced, UDPFlat [2]UDPStream
	UDPRR             UDPRR
	has               map[string]bool
}

// Measure runs every metric of cfg on one pair kind, building a fresh pair
// for each metric so that none sees another's connections.
func Measure(cfg Config, kind PairKind) Result {
	r := Result{Kind: kind.Name, has: map[string]bool{}}
	for _, m := range cfg.Metrics {
		p, err := kind.New(cfg.MTU)
		if err != nil {
			r.Err = err
			return r
		}
		measure := func() (err error) {
			switch m {
			case MetricBulk:
				r.Bulk, err = MeasureBulk(p, cfg.BulkBytes)
			case MetricLatency:
				r.Latency, err = MeasureLatency(p, cfg.Rounds)
			case MetricConnect:
				r.Conn, err = MeasureConnRate(p, cfg.Conns, cfg.ConnBudget)
			case MetricIdle:
				r.IdleB, err = MeasureIdleHeap(p, cfg.IdleConns)
			case MetricTimeWait:
				r.TimeWaitB, err = MeasureTimeWaitHeap(p, cfg.IdleConns)
			case MetricUDP:
				for i, size := range []int{UDPSmall, UDPLarge} {
					if r.UDPPaced[i], err = MeasureUDPStream(p, size, cfg.UDPDatagrams, cfg.UDPWindow); err != nil {
						return fmt.Errorf("paced, %d bytes: %w", size, err)
					}
					if r.UDPFlat[i], err = MeasureUDPStream(p, size, cfg.UDPDatagrams, 0); err != nil {
						return fmt.Errorf("flat out, %d bytes: %w", size, err)
					}
				}
			case MetricUDPRR:
				r.UDPRR, err = MeasureUDPRR(p, UDPSmall, cfg.Rounds)
			default:
				err = fmt.Errorf("unknown metric %q", m)
			}
			return err
		}
		err = measure()
		p.Close()
		if err != nil {
			r.Err = fmt.Errorf("%s: %s: %w", kind.Name, m, err)
			return r
		}
		r.has[m] = true
	}
	return r
}

// Run measures every pair kind of cfg Count times, interleaving the kinds
// so that the machine's noise falls on all of them alike, and writes the
// side-by-side table of medians to w. It returns the errors of failed
// measurements; an unavailable pair is only reported.
func Run(cfg Config, w io.Writer) error {
	fmt.Fprintf(w, "in-memory link, MTU %d; bulk %d MiB, %d round trips, %d connections, %d idle connections; UDP streams of %d datagrams (paced: %d in flight); median of %d interleaved runs\n",
		cfg.MTU, cfg.BulkBytes>>20, cfg.Rounds, cfg.Conns, cfg.IdleConns, cfg.UDPDatagrams, cfg.UDPWindow, max(cfg.Count, 1))
	results, err := collect(cfg, w)
	printTable(w, cfg, results)
	return err
}

// collect measures every pair kind of cfg Count times, interleaving the
// kinds, reports skipped and failed pairs and the time spent on each to w,
// and returns the results by kind name and the errors of failed
// measurements.
func collect(cfg Config, w io.Writer) (map[string][]Result, error) {
	count := max(cfg.Count, 1)
	results := map[string][]Result{}
	skip := map[string]bool{}
	spent := map[string]time.Duration{}
	var errs []error
	for range count {
		for _, k := range cfg.Kinds {
			if skip[k.Name] {
				continue
			}
			start := time.Now()
			r := Measure(cfg, k)
			spent[k.Name] += time.Since(start)
			switch {
			case errors.Is(r.Err, ErrUnavailable):
				fmt.Fprintf(w, "%s: skipped: %v\n", k.Name, r.Err)
				skip[k.Name] = true
				continue
			case r.Err != nil:
				fmt.Fprintf(w, "%s: FAILED: %v\n", k.Name, r.Err)
				errs = append(errs, r.Err)
				skip[k.Name] = true
			}
			if c := r.Conn; c.Conns < c.Wanted {
				fmt.Fprintf(w, "%s: connection test stopped by its %v budget after %d of %d connections\n",
					k.Name, cfg.ConnBudget, c.Conns, c.Wanted)
			}
			results[k.Name] = append(results[k.Name], r)
		}
	}
	for _, k := range cfg.Kinds {
		if d, ok := spent[k.Name]; ok && !skip[k.Name] {
			fmt.Fprintf(w, "%s: measured in %v\n", k.Name, d.Round(time.Millisecond))
		}
	}
	return results, errors.Join(errs...)
}

// median returns the median of v, which it sorts.
func median(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// row is one line of the table: how to read a figure out of a Result and
// whether a higher figure is better (for the reader; ratios are always
// ustack/gVisor).
type row struct {
	name   string
	metric string
	value  func(Result) float64
	format string
}

var rows = []row{
	{"bulk throughput (MB/s)", MetricBulk, func(r Result) float64 { return r.Bulk.MBps() }, "%.0f"},
	{"allocs/segment (bulk, both ends)", MetricBulk, func(r Result) float64 { return r.Bulk.AllocsPerSegment() }, "%.2f"},
	{"1-byte RR median (µs)", MetricLatency, func(r Result) float64 { return us(r.Latency.Median) }, "%.1f"},
	{"1-byte RR p99 (µs)", MetricLatency, func(r Result) float64 { return us(r.Latency.P99) }, "%.1f"},
	{"connections/s", MetricConnect, func(r Result) float64 { return r.Conn.PerSecond() }, "%.0f"},
	{"slowest connection (ms)", MetricConnect, func(r Result) float64 { return ms(r.Conn.Slowest) }, "%.1f"},
	{"heap B/idle conn (both ends)", MetricIdle, func(r Result) float64 { return r.IdleB }, "%.0f"},
	{"heap B/TIME-WAIT conn", MetricTimeWait, func(r Result) float64 { return r.TimeWaitB }, "%.0f"},
	{"UDP 64 B paced (datagrams/s)", MetricUDP, func(r Result) float64 { return r.UDPPaced[0].PerSecond() }, "%.0f"},
	{"UDP 64 B paced (MB/s)", MetricUDP, func(r Result) float64 { return r.UDPPaced[0].MBps() }, "%.1f"},
	{"UDP 1400 B paced (datagrams/s)", MetricUDP, func(r Result) float64 { return r.UDPPaced[1].PerSecond() }, "%.0f"},
	{"UDP 1400 B paced (MB/s)", MetricUDP, func(r Result) float64 { return r.UDPPaced[1].MBps() }, "%.0f"},
	{"UDP paced loss (%, 64 B and 1400 B)", MetricUDP, func(r Result) float64 {
		p := r.UDPPaced
		return 100 * float64(p[0].Sent-p[0].Received+p[1].Sent-p[1].Received) / float64(p[0].Sent+p[1].Sent)
	}, "%.2f"},
	{"UDP allocs/datagram (paced 64 B, both ends)", MetricUDP, func(r Result) float64 { return r.UDPPaced[0].AllocsPerDatagram() }, "%.2f"},
	{"UDP allocs/datagram (paced 1400 B, both ends)", MetricUDP, func(r Result) float64 { return r.UDPPaced[1].AllocsPerDatagram() }, "%.2f"},
	{"UDP 64 B flat out (datagrams/s received)", MetricUDP, func(r Result) float64 { return r.UDPFlat[0].PerSecond() }, "%.0f"},
	{"UDP 64 B flat out loss (%)", MetricUDP, func(r Result) float64 { return r.UDPFlat[0].LossPercent() }, "%.1f"},
	{"UDP 1400 B flat out (datagrams/s received)", MetricUDP, func(r Result) float64 { return r.UDPFlat[1].PerSecond() }, "%.0f"},
	{"UDP 1400 B flat out (MB/s received)", MetricUDP, func(r Result) float64 { return r.UDPFlat[1].MBps() }, "%.0f"},
	{"UDP 1400 B flat out loss (%)", MetricUDP, func(r Result) float64 { return r.UDPFlat[1].LossPercent() }, "%.1f"},
	{"UDP 64 B RR (round trips/s)", MetricUDPRR, func(r Result) float64 { return r.UDPRR.PerSecond() }, "%.0f"},
	{"UDP 64 B RR median (µs)", MetricUDPRR, func(r Result) float64 { return us(r.UDPRR.Median) }, "%.1f"},
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cell returns the median of row r over kind's results, formatted, and
// whether there was any.
func cell(results map[string][]Result, r row, kind string) (string, float64, bool) {
	var vs []float64
	for _, res := range results[kind] {
		if res.has[r.metric] {
			vs = append(vs, r.value(res))
		}
	}
	if len(vs) == 0 {
		return "n/a", 0, false
	}
	v := median(vs)
	return fmt.Sprintf(r.format, v), v, true
}

// ratio formats a/b for the ratio columns, or "n/a".
func ratio(results map[string][]Result, r row, a, b string) string {
	_, av, aok := cell(results, r, a)
	_, bv, bok := cell(results, r, b)
	if !aok || !bok || bv == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", av/bv)
}

func printTable(w io.Writer, cfg Config, results map[string][]Result) {
	header := []string{"metric", KindUstack.Name, KindGVisor.Name, "ustack/gVisor", KindUstackToGVisor.Name, KindGVisorToUstack.Name}
	table := [][]string{header}
	for _, r := range rows {
		if !contains(cfg.Metrics, r.metric) {
			continue
		}
		u, _, _ := cell(results, r, KindUstack.Name)
		g, _, _ := cell(results, r, KindGVisor.Name)
		ug, _, _ := cell(results, r, KindUstackToGVisor.Name)
		gu, _, _ := cell(results, r, KindGVisorToUstack.Name)
		line := []string{r.name, u, g, ratio(results, r, KindUstack.Name, KindGVisor.Name), ug, gu}
		if slices.ContainsFunc(cfg.Kinds, func(k PairKind) bool { return k.Name == KindUstackOffload.Name }) {
			o, _, _ := cell(results, r, KindUstackOffload.Name)
			line = append(line, o, ratio(results, r, KindUstackOffload.Name, KindGVisor.Name))
		}
		table = append(table, line)
	}
	if slices.ContainsFunc(cfg.Kinds, func(k PairKind) bool { return k.Name == KindUstackOffload.Name }) {
		table[0] = append(table[0], KindUstackOffload.Name, "ustack offloads/gVisor")
	}
	// An IPv6 run's IPv4 references: ustack's pairs over each family.
	for _, c := range [][2]PairKind{{KindUstack, KindUstackIPv4}, {KindUstackOffload, KindUstackOffloadIPv4}} {
		if !slices.ContainsFunc(cfg.Kinds, func(k PairKind) bool { return k.Name == c[1].Name }) {
			continue
		}
		table[0] = append(table[0], c[1].Name, c[0].Name+" IPv6/IPv4")
		i := 1
		for _, r := range rows {
			if !contains(cfg.Metrics, r.metric) {
				continue
			}
			v, _, _ := cell(results, r, c[1].Name)
			table[i] = append(table[i], v, ratio(results, r, c[0].Name, c[1].Name))
			i++
		}
	}
	writeTable(w, table)
}

// writeTable writes table with its columns aligned: the first column to
// the left, the others to the right, a rule under the header line.
func writeTable(w io.Writer, table [][]string) {
	width := make([]int, len(table[0]))
	for _, line := range table {
		for i, c := range line {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for n, line := range table {
		var b strings.Builder
		for i, c := range line {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(" | " + pad + c)
			}
		}
		fmt.Fprintln(w, b.String())
		if n == 0 {
			var sep strings.Builder
			for i, wd := range width {
				if i > 0 {
					sep.WriteString("-|-")
				}
				sep.WriteString(strings.Repeat("-", wd))
			}
			fmt.Fprintln(w, sep.String())
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
