// Command ustackbench measures ustack and gVisor netstack side by side over
// in-memory links and prints one table: bulk throughput of one connection,
// allocations per segment, 1-byte request/response latency (median and
// p99), connections per second and heap bytes per idle connection, and
// UDP: datagrams/s, MB/s, loss and allocations per datagram of a stream
// of 64- and 1400-byte datagrams, paced (-window in flight, nothing lost
// when the receiver keeps up) and flat out, and 64-byte request/response
// round trips/s; each with the ratio ustack/gVisor.
//
// Usage:
//
//	go run ./interop/cmd/ustackbench [-quick] [-metrics bulk,latency,connect,idle]
//	    [-pairs ustack,gvisor,u2g,g2u] [-mtu 1500] [-bytes 256] [-rounds 20000]
//	    [-conns 3000] [-idle 1000] [-connbudget 10s] [-count 3]
//	    [-datagrams 200000] [-window 64]
//
// The full run takes well under two minutes on two cores; -quick shrinks
// every size to check that the benchmarks work at all.
//
// With -tap it measures against the Linux kernel instead, over a TAP
// device inside a throw-away network namespace: the kernel (Go's net
// package on sockets created in the namespace) as client and as server of
// ustack and of gVisor (its fdbased endpoint on the TAP descriptor), and
// the kernel talking to itself over a veth pair between two namespaces,
// with offloads on and off (ethtool), as the limit of the path. It needs
// root, /dev/net/tun and ip(8). Every namespace is deleted at the end,
// also on an error or on SIGINT, SIGTERM or SIGHUP. Pairs for -pairs:
// k2u, u2k, k2g, g2k, veth, veth-nooffload; metrics: bulk, latency,
// connect, udp, udprr (the kernel's UDP sockets in the namespace send,
// sink and echo the datagrams). The full -tap run takes about two
// minutes, one of them UDP.
//
// With -tap -queues N it measures instead how the stack scales with the
// queues of a TAP device (a reader goroutine each): -conns concurrent
// kernel→ustack bulk connections (default 4, spread evenly over the
// queues) of -bytes MiB each (default 64), over a TAP of one queue and of
// N queues, interleaved -count times; it prints each run, the median
// totals and their ratio:
//
//	ustackbench -tap -queues 2 -conns 4
//
// With -lossy it measures loss recovery through a lossy link (issue 7):
// the kernel in a throw-away namespace behind a TAP device whose
// descriptor a userspace bridge (link/fault.Bridge) holds; behind the
// bridge the server: ustack (in process, on a pipe), gVisor (in process,
// its fdbased endpoint on a socket pair) or Linux (a second namespace
// behind a second TAP device). The bridge impairs both directions with the
// same seed in front of every stack. Workloads: echo (the kernel client
// writes and reads back the bytes), http (the kernel client downloads
// them) and send (each stack as client sends them to a Linux server).
// Cases (-cases): clean, loss (2%), reorder (5% held 3 ms), dup (2%),
// corrupt (1%), mix, long (20 ms each way, 1% loss, -longsize bytes); all
// but long at 0.5 ms each way. It prints seconds per case, stack and
// workload, the ratios ustack/Linux and ustack/gVisor, and ustack's (and
// its kernel peer's) loss-recovery counters. A quick run:
//
//	ustackbench -lossy -cases mix -size 4MiB
//
// -lossy -bridgecost measures the bridge itself instead: the kernel
// echoing to and downloading from ustack over a TAP device ustack holds
// directly, against the same through an unimpaired bridge.
//
// With -flood it measures servers under a spoofed SYN flood (issue 8):
// ustack and gVisor (fdbased) on a TAP device, each in a child process of
// its own so that its RSS and Go heap are its own, and Linux in a
// namespace of its own behind a veth (tcp_syncookies=1). SYNs from random
// addresses of 198.18.0.0/16 (routed nowhere in the benchmark's
// namespaces), with random ports, ISNs and timestamps, are written with
// an AF_PACKET socket (sendmmsg) into the server's link for -flood-time
// (10s), at -flood-rate (20000/s) and, with -flood-max (on by default),
// as fast as the machine can; meanwhile a kernel client connects every
// -flood-connect-interval (20ms), each connect given
// -flood-connect-timeout (5s), writes 8 bytes, reads them back and
// closes. It prints per server the legitimate connects that echoed, their
// connect latency (p50, p99, max), the flood rate sent and what the link
// dropped, the server's RSS and Go heap before and after, and the
// listener counters (ustack's named SYN, Cookie, Listen..., gVisor's,
// Linux's nstat), with the ratios ustack/Linux and ustack/gVisor.
// -flood-routed routes the flood's sources from every server into the
// client namespace instead, whose kernel drops the SYN-ACKs: servers then
// send them, as they would to a real attack's routable sources.
//
// With -filter it measures the packet filter's cost (issue 12):
// ustack↔ustack bulk transfers in memory without a filter and with 50
// rules on both stacks (a server's INPUT chain, conntrack on, the rule
// the segments match last), interleaved -count times (5), and prints the
// throughput, the process's CPU time per segment and their ratios; the
// issue's target is at most 15% added per segment:
//
//	ustackbench -filter -bytes 64 -count 5
//
// With -churn, -churn-conns (50) kernel clients open a new connection per
// HTTP request (Connection: close, the server closes first) for
// -churn-time (20s) against ustack and gVisor on TAP, each in a child
// process, and it prints the connections made, their rate, the server's
// RSS and heap before and after, per connection and per connection left
// in TIME-WAIT.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ustack/ustack/interop/bench"
)

func main() {
	bench.RunChildIfAsked() // the server child of -flood and -churn
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ustackbench:", err)
		os.Exit(1)
	}
}

var tapPairNames = map[string]bench.PairKind{
	"k2u":            bench.KindKernelToUstack,
	"u2k":            bench.KindUstackToKernel,
	"k2g":            bench.KindKernelToGVisor,
	"g2k":            bench.KindGVisorToKernel,
	"veth":           bench.KindVeth,
	"veth-nooffload": bench.KindVethNoOffload,
}

var pairNames = map[string]bench.PairKind{
	"ustack": bench.KindUstack,
	"gvisor": bench.KindGVisor,
	"u2g":    bench.KindUstackToGVisor,
	"g2u":    bench.KindGVisorToUstack,
	// ustack↔ustack over a Pipe with checksum offload, TSO and GRO: the
	// super-segments and metadata a TAP device carries.
	"ustack-tso": bench.KindUstackOffload,
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ustackbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := bench.DefaultConfig()
	quick := fs.Bool("quick", false, "tiny sizes: check that every benchmark runs (for tests and CI)")
	tap := fs.Bool("tap", false, "measure against the Linux kernel over TAP and veth in throw-away namespaces (needs root and /dev/net/tun)")
	metrics := fs.String("metrics", strings.Join(bench.AllMetrics, ","), "metrics to measure: bulk, latency, connect, idle, timewait, udp (streams), udprr (UDP request/response)")
	pairs := fs.String("pairs", "ustack,gvisor,u2g,g2u", "pairs to measure: ustack (ustack↔ustack), gvisor (gVisor↔gVisor), u2g (ustack client, gVisor server), g2u (gVisor client, ustack server)")
	mtu := fs.Int("mtu", def.MTU, "link MTU")
	mib := fs.Int64("bytes", def.BulkBytes>>20, "MiB sent by the bulk transfer")
	rounds := fs.Int("rounds", def.Rounds, "request/response round trips (TCP 1 byte, UDP 64 bytes)")
	datagrams := fs.Int("datagrams", def.UDPDatagrams, "datagrams sent by each UDP stream")
	window := fs.Int("window", def.UDPWindow, "datagrams a paced UDP stream keeps in flight")
	conns := fs.Int("conns", def.Conns, "connections opened by the connection-rate test")
	idle := fs.Int("idle", def.IdleConns, "connections held open by the idle-heap test, and closed into TIME-WAIT by the timewait test")
	count := fs.Int("count", def.Count, "measure each pair this many times, interleaved, and print medians; with -lossy (where it is 1 unless given), each transfer with the seeds -seed, -seed+1, ... and the median run shown")
	budget := fs.Duration("connbudget", def.ConnBudget, "time limit of each pair's connection-rate test (0: none)")
	ipv6 := fs.Bool("ipv6", false, "in-memory pairs over IPv6 (fd09::1 and fd09::2) instead of IPv4, and ustack's pairs over IPv4 too, for the IPv6/IPv4 ratios")
	lossy := fs.Bool("lossy", false, "measure loss recovery through a lossy bridge against Linux and gVisor (needs root and /dev/net/tun)")
	cases := fs.String("cases", "all", "with -lossy: cases to run: all, or some of "+strings.Join(lossyCaseNames(), ","))
	stacks := fs.String("stacks", strings.Join(bench.AllLossyStacks, ","), "with -lossy: stacks to measure: ustack, gvisor, linux")
	workloads := fs.String("workloads", strings.Join(bench.AllWorkloads, ","), "with -lossy: workloads: echo, http, send")
	size := fs.String("size", "16MiB", "with -lossy: bytes per transfer (suffixes KiB, MiB, GiB)")
	longSize := fs.String("longsize", "64MiB", "with -lossy: bytes per transfer on the long path")
	seed := fs.Uint64("seed", 1, "with -lossy: the bridge's seed")
	lossyOffloads := fs.Bool("offloads", false, "with -lossy: the bridge carries super-segments whole (with their offload metadata) between the kernel's TAPs and ustack's pipe, with ustack's TSO on; one impairment decision per super-segment, as on a host bridge with GSO")
	lossyPcap := fs.String("pcap", "", "with -lossy: write a capture of each transfer with ustack in it into this directory (CASE-WORKLOAD-CLIENT-SERVER.pcap), for `ustack tsg`")
	bridgeCost := fs.Bool("bridgecost", false, "with -lossy: instead of the cases, measure the bridge's own cost (kernel→ustack echo and HTTP, direct TAP against an unimpaired bridge; -size, -count)")
	timeout := fs.Duration("timeout", 5*time.Minute, "with -lossy: time limit of each transfer, reported as \"timeout\"")
	filterCost := fs.Bool("filter", false, "measure the packet filter's cost instead: ustack↔ustack bulk in memory without a filter and with 50 rules (conntrack on, the matching rule last), per-segment CPU and throughput, and their ratio (-mtu, -bytes, -count)")
	queues := fs.Int("queues", 0, "with -tap: instead of the table, -conns (default 4) concurrent kernel→ustack bulk connections of -bytes MiB (default 64) each over a TAP of one queue and of this many queues, and the ratio of their totals")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (this process: ustack, gVisor, the bridge; not the kernel or child processes) to this file, for go tool pprof")
	ff := addFloodFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *ipv6 {
		if *tap || *lossy {
			return fmt.Errorf("-ipv6 is for the in-memory pairs: drop -tap and -lossy")
		}
		bench.UseIPv6()
	}
	if *filterCost {
		if *tap || *lossy || *queues != 0 {
			return fmt.Errorf("-filter is an in-memory run: drop -tap, -lossy and -queues")
		}
		fc := bench.DefaultFilterCostConfig()
		if *quick {
			fc = bench.QuickFilterCostConfig()
		}
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "mtu":
				fc.MTU = *mtu
			case "bytes":
				fc.Bytes = *mib << 20
			case "count":
				fc.Count = *count
			}
		})
		return bench.RunFilterCost(fc, stdout)
	}
	if *queues != 0 {
		if !*tap {
			return fmt.Errorf("-queues is a -tap run: give -tap too")
		}
		mq := bench.DefaultMultiQueueConfig()
		if *quick {
			mq.Bytes, mq.Count = 8<<20, 1
		}
		mq.Queues = *queues
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "conns":
				mq.Conns = *conns
			case "bytes":
				mq.Bytes = *mib << 20
			case "count":
				mq.Count = *count
			case "mtu":
				mq.MTU = *mtu
			}
		})
		if err := bench.TAPAvailable(); err != nil {
			return fmt.Errorf("-tap needs root, /dev/net/tun and ip(8) (iproute2): %w", err)
		}
		return withCleanup(stderr, func() error { return bench.RunMultiQueue(mq, stdout) })
	}
	if ff.flood || ff.churn {
		if *tap || *lossy || ff.flood && ff.churn {
			return fmt.Errorf("-flood, -churn, -tap and -lossy are separate runs: give one")
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		ff.mtu = *mtu
		return runFloodOrChurn(ff, set, *quick, stdout, stderr)
	}
	if *lossy {
		if *tap {
			return fmt.Errorf("-lossy and -tap are separate runs: give one")
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		cfg := bench.DefaultLossyConfig()
		if *quick {
			cfg = bench.QuickLossyConfig()
		}
		lf := lossyFlags{*mtu, *cases, *stacks, *workloads, *size, *longSize, *seed, *timeout, *bridgeCost, *count, *lossyOffloads, *lossyPcap}
		return runLossy(cfg, set, lf, stdout, stderr)
	}
	cfg := def
	switch {
	case *tap && *quick:
		cfg = bench.QuickTAPConfig()
	case *tap:
		cfg = bench.DefaultTAPConfig()
	case *quick:
		cfg = bench.QuickConfig()
	}
	set := map[string]bool{}
	// Explicit flags override the preset.
	fs.Visit(func(f *flag.Flag) {
		set[f.Name] = true
		switch f.Name {
		case "mtu":
			cfg.MTU = *mtu
		case "bytes":
			cfg.BulkBytes = *mib << 20
		case "rounds":
			cfg.Rounds = *rounds
		case "conns":
			cfg.Conns = *conns
		case "idle":
			cfg.IdleConns = *idle
		case "count":
			cfg.Count = *count
		case "connbudget":
			cfg.ConnBudget = *budget
		case "datagrams":
			cfg.UDPDatagrams = *datagrams
		case "window":
			cfg.UDPWindow = *window
		}
	})
	if !*tap || set["metrics"] {
		cfg.Metrics = nil
		for _, m := range strings.Split(*metrics, ",") {
			m = strings.TrimSpace(m)
			if !contains(bench.AllMetrics, m) || *tap && !contains(bench.TAPMetrics, m) {
				return fmt.Errorf("unknown metric %q (want %s)", m, strings.Join(bench.AllMetrics, ", "))
			}
			cfg.Metrics = append(cfg.Metrics, m)
		}
	}
	names, kinds := pairNames, "ustack, gvisor, u2g, g2u"
	if *tap {
		names, kinds = tapPairNames, "k2u, u2k, k2g, g2k, veth, veth-nooffload"
	}
	if !*tap || set["pairs"] {
		cfg.Kinds = nil
		for _, p := range strings.Split(*pairs, ",") {
			k, ok := names[strings.ToLower(strings.TrimSpace(p))]
			if !ok {
				return fmt.Errorf("unknown pair %q (want %s)", p, kinds)
			}
			cfg.Kinds = append(cfg.Kinds, k)
		}
	}
	if *ipv6 {
		// The same ustack pairs over IPv4, measured in the same run.
		for _, c := range [][2]bench.PairKind{{bench.KindUstack, bench.KindUstackIPv4}, {bench.KindUstackOffload, bench.KindUstackOffloadIPv4}} {
			if slices.ContainsFunc(cfg.Kinds, func(k bench.PairKind) bool { return k.Name == c[0].Name }) {
				cfg.Kinds = append(cfg.Kinds, c[1])
			}
		}
	}
	if cfg.MTU < 576 || cfg.BulkBytes <= 0 || cfg.Rounds <= 0 || cfg.Conns <= 0 || !*tap && cfg.IdleConns <= 0 || cfg.Count <= 0 || cfg.UDPDatagrams <= 0 || cfg.UDPWindow <= 0 {
		return fmt.Errorf("sizes must be positive and the MTU at least 576")
	}
	if *tap {
		return runTAP(cfg, stdout, stderr)
	}
	return bench.Run(cfg, stdout)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// runTAP runs the TAP benchmark, deleting its namespaces if a signal
// interrupts it before they are deleted in the ordinary way.
func runTAP(cfg bench.Config, stdout, stderr io.Writer) error {
	if err := bench.TAPAvailable(); err != nil {
		return fmt.Errorf("-tap needs root, /dev/net/tun and ip(8) (iproute2): %w", err)
	}
	return withCleanup(stderr, func() error { return bench.RunTAP(cfg, stdout) })
}

// withCleanup runs f, deleting the benchmark's namespaces if a signal
// interrupts it before they are deleted in the ordinary way.
func withCleanup(stderr io.Writer, f func() error) error {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	defer func() {
		signal.Stop(sigc)
		close(done)
	}()
	go func() {
		select {
		case s := <-sigc:
			err := bench.CloseNamespaces()
			fmt.Fprintf(stderr, "ustackbench: %v: namespaces deleted (errors: %v)\n", s, err)
			os.Exit(130)
		case <-done:
		}
	}()
	return f()
}
