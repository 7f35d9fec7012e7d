package bench

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// DefaultTAPConfig is the full run over TAP and veth, about two minutes
// on two cores (the UDP rows one of them): 256 MiB bulk, 20000 round trips (TCP and UDP),
// 3000 connections (at most 5 s each), UDP streams of 100000 datagrams
// (paced ones 64 in flight), MTU 1500, every TAP kind, three times.
func DefaultTAPConfig() Config {
	return Config{
		MTU:          1500,
		BulkBytes:    256 << 20,
		Rounds:       20000,
		Conns:        3000,
		UDPDatagrams: 100000,
		UDPWindow:    64,
		ConnBudget:   5 * time.Second,
		Count:        3,
		Metrics:      TAPMetrics,
		Kinds:        AllTAPKinds,
	}
}

// QuickTAPConfig is a run over TAP and veth small enough for a unit test:
// it checks that every pair and metric works, not how fast.
func QuickTAPConfig() Config {
	c := DefaultTAPConfig()
	c.BulkBytes = 4 << 20
	c.Rounds = 200
	c.Conns = 50
	c.UDPDatagrams = 2000
	c.Count = 1
	return c
}

// RunTAP measures cfg's TAP and veth kinds Count times, interleaved, and
// writes their table of medians to w: each kind's figures and the ratios
// ustack/gVisor with the kernel as client and as server. Every namespace
// it creates is deleted before it returns. It needs root, /dev/net/tun
// and ip(8), and says so when they are missing.
func RunTAP(cfg Config, w io.Writer) error {
	if err := TAPAvailable(); err != nil {
		return fmt.Errorf("bench: over TAP: %w", err)
	}
	for _, m := range cfg.Metrics {
		if !contains(TAPMetrics, m) {
			return fmt.Errorf("bench: metric %q is not measured over TAP", m)
		}
	}
	fmt.Fprintf(w, "TAP (and veth) against the Linux kernel in throw-away namespaces, MTU %d; bulk %d MiB, %d round trips, %d connections; UDP streams of %d datagrams (paced: %d in flight); median of %d interleaved runs\n",
		cfg.MTU, cfg.BulkBytes>>20, cfg.Rounds, cfg.Conns, cfg.UDPDatagrams, cfg.UDPWindow, max(cfg.Count, 1))
	defer closeLive() // also on a panic; a no-op after the call below
	results, err := collect(cfg, w)
	err = errors.Join(err, closeLive())
	printTAPTable(w, cfg, results)
	return err
}

func printTAPTable(w io.Writer, cfg Config, results map[string][]Result) {
	kinds := []string{nameKernelToUstack, nameUstackToKernel, nameKernelToGVisor, nameGVisorToKernel, nameVeth, nameVethNoOffload}
	header := append([]string{"metric"}, kinds...)
	header = append(header, "ustack/gVisor, kernel client", "ustack/gVisor, kernel server")
	table := [][]string{header}
	for _, r := range rows {
		if !contains(cfg.Metrics, r.metric) {
			continue
		}
		label := r.name
		if r.metric == MetricBulk && r.name != rows[0].name {
			label = "allocs/segment (bulk, Go side)"
		}
		label = strings.Replace(label, "both ends", "Go side", 1)
		line := []string{label}
		for _, k := range kinds {
			c, _, _ := cell(results, r, k)
			line = append(line, c)
		}
		line = append(line,
			ratio(results, r, nameKernelToUstack, nameKernelToGVisor),
			ratio(results, r, nameUstackToKernel, nameGVisorToKernel))
		table = append(table, line)
	}
	writeTable(w, table)
	fmt.Fprintln(w, "bulk data and UDP streams flow from client to server: in kernel→X the kernel sends; allocations count this process's only")
}
