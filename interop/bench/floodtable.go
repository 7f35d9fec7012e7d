package bench

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// floodRow is a line of a flood table: a figure of a run, whether it has
// one, and whether the ratio columns apply.
type floodRow struct {
	name  string
	value func(*floodRun) (string, float64, bool)
	ratio bool
}

func mb(b uint64) float64 { return float64(b) / 1e6 }

// memRow is a row of a userspace server's memory.
func memRow(name string, f func(before, after *childStats) (string, float64)) floodRow {
	return floodRow{name, func(r *floodRun) (string, float64, bool) {
		if r.before == nil || r.after == nil {
			return "—", 0, false
		}
		s, v := f(r.before, r.after)
		return s, v, true
	}, true}
}

func num(format string, v float64) (string, float64, bool) { return fmt.Sprintf(format, v), v, true }

var floodRows = []floodRow{
	{"flood sent (SYN/s)", func(r *floodRun) (string, float64, bool) { return num("%.0f", r.tally.Rate()) }, false},
	{"flood dropped by the link (%)", func(r *floodRun) (string, float64, bool) { return num("%.1f", r.dropPct()) }, false},
	{"flood reaching the server (SYN/s)", func(r *floodRun) (string, float64, bool) {
		return num("%.0f", r.tally.Rate()*(1-r.dropPct()/100))
	}, false},
	{"frames the server read (frames/s)", func(r *floodRun) (string, float64, bool) {
		f, ok := r.framesRead()
		if !ok || r.tally.Elapsed <= 0 {
			return "—", 0, false
		}
		return num("%.0f", float64(f)/r.tally.Elapsed.Seconds())
	}, true},
	{"server CPU per frame read (µs)", func(r *floodRun) (string, float64, bool) {
		f, ok := r.framesRead()
		if !ok || f == 0 || r.after.CPU < r.before.CPU {
			return "—", 0, false
		}
		return num("%.2f", float64(r.after.CPU-r.before.CPU)/1e3/float64(f))
	}, true},
	{"legitimate connects echoed / attempted", func(r *floodRun) (string, float64, bool) {
		return fmt.Sprintf("%d / %d", r.echoed, r.attempted), 0, false
	}, false},
	{"connected, echo failed", func(r *floodRun) (string, float64, bool) {
		return fmt.Sprint(r.connected - r.echoed), 0, false
	}, false},
	{"echoed (%)", func(r *floodRun) (string, float64, bool) { return num("%.1f", 100*r.success()) }, true},
	{"connect p50 of those echoed (ms)", latRow(50), true},
	{"connect p99 of those echoed (ms)", latRow(99), true},
	{"connect max of those echoed (ms)", latRow(100), true},
	memRow("server RSS before → after (MB)", func(b, a *childStats) (string, float64) {
		return fmt.Sprintf("%.1f → %.1f", mb(b.RSS), mb(a.RSS)), 0
	}),
	memRow("server RSS growth (MB)", func(b, a *childStats) (string, float64) {
		v := mb(a.RSS) - mb(b.RSS)
		return fmt.Sprintf("%.1f", v), v
	}),
	memRow("server peak RSS (MB)", func(b, a *childStats) (string, float64) {
		return fmt.Sprintf("%.1f", mb(a.PeakRSS)), mb(a.PeakRSS)
	}),
	memRow("server Go heap live before → after (MB)", func(b, a *childStats) (string, float64) {
		return fmt.Sprintf("%.1f → %.1f", mb(b.HeapLive), mb(a.HeapLive)), 0
	}),
	memRow("server Go heap growth (MB)", func(b, a *childStats) (string, float64) {
		v := mb(a.HeapLive) - mb(b.HeapLive)
		return fmt.Sprintf("%.1f", v), v
	}),
}

// framesRead returns the frames a ustack server read during the flood
// (its Link.FramesIn), and false for another server.
func (r *floodRun) framesRead() (uint64, bool) {
	if r.before == nil || r.after == nil {
		return 0, false
	}
	a, ok := r.after.Counters["Link.FramesIn"]
	if !ok || a < r.before.Counters["Link.FramesIn"] {
		return 0, false
	}
	return a - r.before.Counters["Link.FramesIn"], true
}

// latRow is the row of the p-th percentile of the connect latency (100:
// the slowest).
func latRow(p int) func(*floodRun) (string, float64, bool) {
	return func(r *floodRun) (string, float64, bool) {
		d := r.pct(p)
		if d < 0 {
			return "—", 0, false
		}
		return num("%.2f", ms(d))
	}
}

// printFloodTable writes the table of the runs at rate.
func printFloodTable(w io.Writer, cfg FloodConfig, rate int, runs []*floodRun) {
	byServer := map[string]*floodRun{}
	for _, r := range runs {
		if r.rate == rate && r.err == nil {
			byServer[r.server] = r
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "SYN flood %s for %v; a legitimate connect every %v\n", rateTitle(rate), cfg.Duration, cfg.ConnectInterval)
	header := []string{"metric"}
	for _, s := range cfg.Servers {
		header = append(header, stackTitle[s])
	}
	var ratios [][2]string
	for _, o := range []string{StackLinux, StackGVisor} {
		if slices.Contains(cfg.Servers, StackUstack) && slices.Contains(cfg.Servers, o) {
			ratios = append(ratios, [2]string{StackUstack, o})
			header = append(header, "ustack/"+stackTitle[o])
		}
	}
	table := [][]string{header}
	for _, row := range floodRows {
		line := []string{row.name}
		for _, s := range cfg.Servers {
			c := "FAILED"
			if r := byServer[s]; r != nil {
				c, _, _ = row.value(r)
			}
			line = append(line, c)
		}
		for _, p := range ratios {
			line = append(line, floodRatio(row, byServer[p[0]], byServer[p[1]]))
		}
		table = append(table, line)
	}
	writeTable(w, table)
	if u := byServer[StackUstack]; u != nil {
		fmt.Fprintln(w, floodBar(u, byServer[StackLinux]))
	}
}

// floodBar says which of issue 8's targets ustack's run u met: at least
// 99% of the legitimate connects served, p99 connect under 10 ms, RSS
// growth under 20 MB, and no worse than Linux's run l (if any) in the
// share served and the p99.
func floodBar(u, l *floodRun) string {
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	p99 := u.p99All()
	parts := []string{
		fmt.Sprintf("≥ 99%% echoed: %s", mark(u.success() >= 0.99)),
		fmt.Sprintf("p99 of all connects < 10 ms: %s", mark(p99 >= 0 && p99 < 10*time.Millisecond)),
	}
	if u.before != nil && u.after != nil {
		parts = append(parts, fmt.Sprintf("RSS growth < 20 MB: %s", mark(u.after.RSS < u.before.RSS+20e6)))
	}
	if l != nil {
		lp99 := l.p99All()
		parts = append(parts, fmt.Sprintf("as good as Linux: %s", mark(u.success() >= l.success() && p99 >= 0 && (lp99 < 0 || p99 <= lp99))))
	}
	return "ustack against issue 8's targets: " + strings.Join(parts, ", ")
}

// p99All returns the 99th percentile of the connect latency over every
// attempt, a failed one counting as slower than any, or -1 if that
// percentile is a failure.
func (r *floodRun) p99All() time.Duration {
	i := r.attempted * 99 / 100
	if i >= len(r.latencies) {
		return -1
	}
	return r.latencies[i]
}

func floodRatio(row floodRow, a, b *floodRun) string {
	if !row.ratio || a == nil || b == nil {
		return "—"
	}
	_, av, aok := row.value(a)
	_, bv, bok := row.value(b)
	if !aok || !bok || bv == 0 {
		return "—"
	}
	if strings.HasSuffix(row.name, "(MB)") && bv < 1 {
		return "—" // a growth within the noise: no meaningful ratio
	}
	return fmt.Sprintf("%.2f", av/bv)
}

// listenCounter matches the names of the counters printed for the
// userspace servers: those of the listener, its SYN queue and cookies.
var listenCounter = regexp.MustCompile(`(?i)syn|cookie|listen|backlog|halfopen|accept`)

// linuxCounters are the Linux server's counters printed, nstat names.
var linuxCounters = []string{
	"TcpExt.ListenOverflows", "TcpExt.ListenDrops", "TcpExt.TCPReqQFullDoCookies", "TcpExt.TCPReqQFullDrop",
	"TcpExt.SyncookiesSent", "TcpExt.SyncookiesRecv", "TcpExt.SyncookiesFailed", "Tcp.PassiveOpens",
}

// printFloodCounters writes each run's listener counters: what changed
// during the flood.
func printFloodCounters(w io.Writer, runs []*floodRun) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "listener counters during each flood (ustack: stack.Stats and any listener Stats, names with SYN, Cookie, Listen, Backlog, Accept; gVisor: tcpip.Stats.TCP; Linux: nstat)")
	for _, r := range runs {
		if r.err != nil {
			continue
		}
		var parts []string
		switch {
		case r.before != nil && r.after != nil:
			names := make([]string, 0, len(r.after.Counters))
			for k := range r.after.Counters {
				if listenCounter.MatchString(k) {
					names = append(names, k)
				}
			}
			slices.Sort(names)
			for _, k := range names {
				if d := r.after.Counters[k] - r.before.Counters[k]; d != 0 {
					parts = append(parts, fmt.Sprintf("%s %d", k, d))
				}
			}
		case r.kernAfter != nil:
			for _, k := range linuxCounters {
				if d := r.kernAfter[k] - r.kernBefore[k]; d != 0 {
					parts = append(parts, fmt.Sprintf("%s %d", k, d))
				}
			}
		}
		if len(parts) == 0 {
			parts = []string{"none changed"}
		}
		fmt.Fprintf(w, "  %s, %s: %s\n", stackTitle[r.server], rateTitle(r.rate), strings.Join(parts, ", "))
	}
}
