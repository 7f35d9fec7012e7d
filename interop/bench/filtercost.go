package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ustack/ustack/filter"
)

// FilterCostConfig sizes the packet filter's cost benchmark (issue 12:
// "the filter adds ≤ 15% to per-segment cost with 50 rules").
type FilterCostConfig struct {
	MTU   int
	Bytes int64 // sent by each bulk transfer
	Count int   // runs of each variant, interleaved
	Rules int   // rules in the filter's INPUT chain, the matching one last
}

// DefaultFilterCostConfig is the full run: 64 MiB at MTU 1500, five
// runs of each variant, 50 rules.
func DefaultFilterCostConfig() FilterCostConfig {
	return FilterCostConfig{MTU: 1500, Bytes: 64 << 20, Count: 5, Rules: 50}
}

// QuickFilterCostConfig checks that the benchmark works at all.
func QuickFilterCostConfig() FilterCostConfig {
	return FilterCostConfig{MTU: 1500, Bytes: 4 << 20, Count: 1, Rules: 50}
}

// FilterRules returns a realistic INPUT chain of n rules (n ≥ 2) for a
// server, in iptables-save form: a block list of source addresses
// (TEST-NET-1, RFC 5737), the ports of other services, ICMP, a NIC that
// is not there, then the benchmark's own port for NEW connections and,
// last, the rule its
// segments match: --ctstate ESTABLISHED,RELATED (connection tracking on),
// so that every segment of the bulk transfer is checked against all the
// others first. The policy is DROP; OUTPUT has no rules.
func FilterRules(n int) string {
	var b strings.Builder
	b.WriteString("*filter\n:INPUT DROP [0:0]\n")
	other := []string{
		"-A INPUT -i lo0 -j ACCEPT",
		"-A INPUT -p icmp -m icmp --icmp-type 8 -m limit --limit 10/sec -j ACCEPT",
		"-A INPUT -p udp -m udp --dport 53 -j ACCEPT",
		"-A INPUT -p tcp -m multiport --dports 25,465,587 -j ACCEPT",
		"-A INPUT -p tcp -s 10.9.0.0/24 -m tcp --dport 22 -j ACCEPT",
		"-A INPUT -p tcp -m tcp --dport 443 -j ACCEPT",
		"-A INPUT -p tcp -m tcp --dport 8000:8999 -j REJECT --reject-with tcp-reset",
		"-A INPUT -p udp -m udp --dport 123 -j ACCEPT",
		"-A INPUT -m conntrack --ctstate INVALID -j DROP",
	}
	for i := 0; i < n-2; i++ {
		if i < len(other) {
			b.WriteString(other[i] + "\n")
			continue
		}
		fmt.Fprintf(&b, "-A INPUT -s 192.0.2.%d/32 -j DROP\n", i)
	}
	fmt.Fprintf(&b, "-A INPUT -p tcp -m tcp --dport %d -m conntrack --ctstate NEW -j ACCEPT\n", portBulk)
	b.WriteString("-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\nCOMMIT\n")
	return b.String()
}

// filterRun is one bulk transfer's figures.
type filterRun struct {
	mbps      float64
	cpuPerSeg time.Duration // the process's CPU time (user and system) per segment
	allocs    float64       // per segment
}

// cpuTime returns the process's user and system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureFilter runs one bulk transfer between two ustack stacks in
// memory, both behind a filter of rules (none if rules is ""), and for a
// filter checks that the last rule took the segments.
func measureFilter(cfg FilterCostConfig, rules string) (filterRun, error) {
	p, err := UstackPair(cfg.MTU)
	if err != nil {
		return filterRun{}, err
	}
	defer p.Close()
	var filters []*filter.Filter
	if rules != "" {
		for _, peer := range []Peer{p.Client, p.Server} {
			f := filter.New(filter.Config{})
			if err := f.Load(strings.NewReader(rules)); err != nil {
				return filterRun{}, err
			}
			peer.(ustackPeer).s.SetFilter(f)
			filters = append(filters, f)
		}
	}
	cpu0 := cpuTime()
	b, err := MeasureBulk(p, cfg.Bytes)
	cpu := cpuTime() - cpu0
	if err != nil {
		return filterRun{}, err
	}
	for _, f := range filters {
		rs, err := f.Rules(filter.TableFilter, "INPUT")
		if err != nil || len(rs) != cfg.Rules {
			return filterRun{}, fmt.Errorf("filter has %d INPUT rules, want %d (%v)", len(rs), cfg.Rules, err)
		}
		last, _ := rs[len(rs)-1].Counters()
		var before uint64
		for _, r := range rs[:len(rs)-2] {
			n, _ := r.Counters()
			before += n
		}
		if last == 0 || before != 0 {
			return filterRun{}, fmt.Errorf("the last rule matched %d packets and the ones before the port's %d: the set does not test what it should", last, before)
		}
	}
	return filterRun{mbps: b.MBps(), cpuPerSeg: cpu / time.Duration(b.Segments), allocs: b.AllocsPerSegment()}, nil
}

// RunFilterCost measures the packet filter's cost: bulk transfers between
// two ustack stacks in memory without a filter and with cfg.Rules rules
// on both stacks (FilterRules: conntrack on, the matching rule last),
// interleaved cfg.Count times, and prints each run, the medians and the
// ratios: throughput, and per-segment cost as the process's CPU time per
// data segment (less sensitive than wall time to other load on a shared
// machine).
func RunFilterCost(cfg FilterCostConfig, w io.Writer) error {
	if cfg.Rules < 2 || cfg.Count < 1 || cfg.Bytes <= 0 {
		return fmt.Errorf("filter cost: need at least 2 rules, 1 run and some bytes")
	}
	rules := FilterRules(cfg.Rules)
	fmt.Fprintf(w, "packet filter cost: ustack↔ustack in memory, MTU %d, bulk %d MiB, %d rules in INPUT on both stacks (conntrack on, the matching rule last), median of %d interleaved runs\n",
		cfg.MTU, cfg.Bytes>>20, cfg.Rules, cfg.Count)
	var none, with []filterRun
	for i := range cfg.Count {
		for _, v := range []struct {
			name  string
			rules string
			into  *[]filterRun
		}{{"no filter", "", &none}, {"filter", rules, &with}} {
			r, err := measureFilter(cfg, v.rules)
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", v.name, i+1, err)
			}
			fmt.Fprintf(w, "  run %d %-9s %8.1f MB/s %6d ns CPU/segment %5.2f allocs/segment\n", i+1, v.name, r.mbps, r.cpuPerSeg.Nanoseconds(), r.allocs)
			*v.into = append(*v.into, r)
		}
	}
	med := func(rs []filterRun) filterRun {
		m := slices.Clone(rs)
		slices.SortFunc(m, func(a, b filterRun) int { return int(a.cpuPerSeg - b.cpuPerSeg) })
		mbps := make([]float64, len(rs))
		for i, r := range rs {
			mbps[i] = r.mbps
		}
		slices.Sort(mbps)
		out := m[len(m)/2]
		out.mbps = mbps[len(mbps)/2]
		return out
	}
	n, f := med(none), med(with)
	fmt.Fprintf(w, "%-28s %12s %12s %8s\n", "", "no filter", "filter", "ratio")
	fmt.Fprintf(w, "%-28s %12.1f %12.1f %8.2f\n", "bulk throughput (MB/s)", n.mbps, f.mbps, f.mbps/n.mbps)
	fmt.Fprintf(w, "%-28s %12d %12d %8.2f\n", "CPU per segment (ns)", n.cpuPerSeg.Nanoseconds(), f.cpuPerSeg.Nanoseconds(), float64(f.cpuPerSeg)/float64(n.cpuPerSeg))
	fmt.Fprintf(w, "%-28s %12.2f %12.2f\n", "allocs/segment", n.allocs, f.allocs)
	fmt.Fprintf(w, "per-segment cost added by the filter: %+.1f%% (issue 12's target: at most +15%%)\n", (float64(f.cpuPerSeg)/float64(n.cpuPerSeg)-1)*100)
	return nil
}
