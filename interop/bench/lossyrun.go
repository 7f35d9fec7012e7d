package bench

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ustack/ustack/link/fault"
	"github.com/ustack/ustack/stack"
)

// LossyCase is one impairment of the lossy-link benchmark, applied by the
// bridge to both directions.
type LossyCase struct {
	Name       string // for -cases, for example "mix"
	Title      string // for the tables
	Impairment fault.Impairment
	// Long makes the case move LossyConfig.LongSize bytes per transfer
	// instead of Size.
	Long bool
}

// lossyDelay is the one-way delay of every case but the long path.
const lossyDelay = 500 * time.Microsecond

// LossyCases are the cases of issue 7, in table order. Corruption is of
// IP packets only (fault.Impairment.CorruptIP): a bit flipped in an ARP
// reply would poison a neighbour cache, which a real link's frame check
// prevents, and stall every stack for its ARP timeouts.
var LossyCases = []LossyCase{
	{"clean", "clean", fault.Impairment{Delay: lossyDelay}, false},
	{"loss", "2% loss", fault.Impairment{Drop: 0.02, Delay: lossyDelay}, false},
	{"reorder", "5% reordered (held 3 ms)", fault.Impairment{Reorder: 0.05, ReorderDelay: 3 * time.Millisecond, Delay: lossyDelay}, false},
	{"dup", "2% duplicated", fault.Impairment{Duplicate: 0.02, Delay: lossyDelay}, false},
	{"corrupt", "1% corrupted", fault.Impairment{Corrupt: 0.01, CorruptIP: true, Delay: lossyDelay}, false},
	{"mix", "mix: 5% loss, 1% dup, 5% reorder, 0.5% corrupt, 1 ms jitter", fault.Impairment{
		Drop: 0.05, Duplicate: 0.01, Reorder: 0.05, ReorderDelay: 3 * time.Millisecond,
		Corrupt: 0.005, CorruptIP: true, Delay: lossyDelay, Jitter: time.Millisecond,
	}, false},
	{"long", "long path: 20 ms each way, 1% loss", fault.Impairment{Drop: 0.01, Delay: 20 * time.Millisecond}, true},
}

// LossyCaseNamed returns the case named name.
func LossyCaseNamed(name string) (LossyCase, bool) {
	for _, c := range LossyCases {
		if c.Name == name {
			return c, true
		}
	}
	return LossyCase{}, false
}

// LossyConfig configures RunLossy.
type LossyConfig struct {
	MTU       int
	Size      int64         // bytes per transfer
	LongSize  int64         // bytes per transfer of a Long case
	Seed      uint64        // the bridge's seed, the same in front of every stack
	Timeout   time.Duration // per transfer; a slower one is reported as "timeout"
	Cases     []LossyCase
	Stacks    []string // StackUstack, StackGVisor, StackLinux
	Workloads []string // WorkloadEcho, WorkloadHTTP, WorkloadSend
	// Offloads makes the bridge carry super-segments whole with their
	// metadata between sides whose endpoints can (the kernel's TAP, a
	// ustack pipe with TSO and GRO; not gVisor's socket pair), so that a
	// drop loses a whole super-segment, as on a host bridge or veth with
	// GSO; without it the bridge carries MTU-sized frames, as a wire.
	Offloads bool
	// PcapDir, if set, gets a capture of each transfer with ustack in it,
	// named after the case, workload, client and server
	// (loss-send-ustack-linux.pcap), for `ustack tsg`.
	PcapDir string
	// Runs is how many times each transfer is measured (at least once),
	// each repetition with the next seed (Seed, Seed+1, ...) and the
	// stacks interleaved within it; the tables show the median run. A
	// transfer of a tenth of a second moves by half between two runs on
	// this 2-core machine: one run compares noise.
	Runs int
}

// DefaultLossyConfig is the full run: every case, stack and workload,
// 16 MiB per transfer (64 MiB on the long path), 5 minutes at most each.
func DefaultLossyConfig() LossyConfig {
	return LossyConfig{
		MTU:       1500,
		Size:      16 << 20,
		LongSize:  64 << 20,
		Seed:      1,
		Timeout:   5 * time.Minute,
		Cases:     LossyCases,
		Stacks:    AllLossyStacks,
		Workloads: AllWorkloads,
	}
}

// QuickLossyConfig checks that every stack and workload works through the
// bridge, with 128 KiB transfers on the clean, reorder and dup cases: for
// tests. Cases that lose frames are left out because a lost SYN or ARP
// request costs a second or more whatever the transfer's size.
func QuickLossyConfig() LossyConfig {
	c := DefaultLossyConfig()
	c.Size, c.LongSize = 128<<10, 128<<10
	c.Timeout = time.Minute
	c.Cases = nil
	for _, name := range []string{"clean", "reorder", "dup"} {
		cs, _ := LossyCaseNamed(name)
		c.Cases = append(c.Cases, cs)
	}
	return c
}

// lossyRun is one transfer of the benchmark.
type lossyRun struct {
	client, server string
}

// runsOf returns the transfers of a workload for the stacks measured: the
// kernel as client of each stack, or, for WorkloadSend, each stack as
// client of the kernel.
func runsOf(workload string, stacks []string) map[string]lossyRun {
	runs := map[string]lossyRun{}
	for _, s := range stacks {
		if workload == WorkloadSend {
			runs[s] = lossyRun{client: s, server: StackLinux}
		} else {
			runs[s] = lossyRun{client: StackLinux, server: s}
		}
	}
	return runs
}

// lossyResult is what one transfer measured.
type lossyResult struct {
	elapsed time.Duration
	err     error
	ustack  *stack.TCPStats // ustack's counters, if it took part
	kernel  *kernelCounters // the kernel peer's counters, if ustack's peer was the kernel; both kernels' summed if both ends were
	bridge  fault.BridgeStats
}

type lossyKey struct{ cas, workload, stack string }

// RunLossy measures every case, workload and stack of cfg once, each
// transfer on a fresh topology (namespaces, TAP devices, stacks, bridge),
// and writes a progress line per transfer and then the tables: seconds
// per case and stack for each workload with the ratios ustack/Linux and
// ustack/gVisor, and ustack's and its kernel peer's loss-recovery
// counters. Every namespace it creates is deleted before it returns. It
// needs root, /dev/net/tun, ip(8) and sysctl(8).
func RunLossy(cfg LossyConfig, w io.Writer) error {
	if err := TAPAvailable(); err != nil {
		return fmt.Errorf("bench: lossy link: %w", err)
	}
	fmt.Fprintf(w, "lossy link: the kernel (SACK, timestamps, window scaling, CUBIC) in a throw-away namespace behind a TAP device, a userspace bridge (link/fault, seed %d) impairing both directions, the server behind it: ustack on a pipe, gVisor on its fdbased endpoint on a socket pair, Linux in a second namespace behind a second TAP device; MTU %d, %s per transfer (%s on the long path), timeout %v; seconds from the established connection to the verified end\n",
		cfg.Seed, cfg.MTU, FormatSize(cfg.Size), FormatSize(cfg.LongSize), cfg.Timeout)
	if cfg.Offloads {
		fmt.Fprintln(w, "offloading bridge: super-segments cross whole (one drop loses all of one) between the kernel's TAP devices and ustack's pipe (TSO and GRO on); gVisor's socket pair takes plain frames, so its bridge carries MTU-sized frames as without -offloads")
	}
	defer closeLive() // also on a panic
	runs := max(cfg.Runs, 1)
	if runs > 1 {
		fmt.Fprintf(w, "each transfer %d times, seeds %d to %d, the stacks interleaved; the tables show the median run (its counters too)\n", runs, cfg.Seed, cfg.Seed+uint64(runs)-1)
	}
	results := map[lossyKey]lossyResult{}
	var errs []error
	for _, cs := range cfg.Cases {
		size := cfg.Size
		if cs.Long {
			size = cfg.LongSize
		}
		for _, wl := range cfg.Workloads {
			pairs := runsOf(wl, cfg.Stacks)
			all := map[string][]lossyResult{}
			for rep := range runs {
				rc := cfg
				rc.Seed = cfg.Seed + uint64(rep)
				for _, st := range cfg.Stacks {
					r := runLossy(rc, cs, wl, pairs[st], size)
					all[st] = append(all[st], r)
					fmt.Fprintf(w, "  %-8s %-5s %s→%s: %s\n", cs.Name, wl, stackTitle[pairs[st].client], stackTitle[pairs[st].server], resultCell(r))
					if r.err != nil && !errors.Is(r.err, errTimeout) {
						errs = append(errs, fmt.Errorf("%s %s %s (seed %d): %w", cs.Name, wl, st, rc.Seed, r.err))
					}
				}
			}
			for st, rs := range all {
				results[lossyKey{cs.Name, wl, st}] = medianRun(rs)
			}
		}
	}
	errs = append(errs, closeLive())
	printLossyTables(w, cfg, results)
	return errors.Join(errs...)
}

// medianRun is the median of rs by time, failures counted as the
// slowest.
func medianRun(rs []lossyResult) lossyResult {
	rs = slices.Clone(rs)
	slices.SortStableFunc(rs, func(a, b lossyResult) int {
		if (a.err != nil) != (b.err != nil) {
			if a.err != nil {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.elapsed, b.elapsed)
	})
	return rs[len(rs)/2]
}

// runLossy builds the topology of one transfer, runs it and tears it down.
func runLossy(cfg LossyConfig, cs LossyCase, workload string, run lossyRun, size int64) lossyResult {
	var capture *bufio.Writer
	if cfg.PcapDir != "" && (run.client == StackUstack || run.server == StackUstack) {
		f, err := os.Create(filepath.Join(cfg.PcapDir, fmt.Sprintf("%s-%s-%s-%s.pcap", cs.Name, workload, run.client, run.server)))
		if err != nil {
			return lossyResult{err: err}
		}
		defer f.Close()
		capture = bufio.NewWriterSize(f, 1<<20)
		defer capture.Flush()
	}
	var cw io.Writer // nil without a capture, not a nil *bufio.Writer
	if capture != nil {
		cw = capture
	}
	n, err := newLossyNet(run.client, run.server, cfg.MTU, cs.Impairment, cfg.Seed, cfg.Offloads, cw)
	if err != nil {
		return lossyResult{err: err}
	}
	var r lossyResult
	r.elapsed, r.err = transfer(workload, n.client.peer, n.server.peer, StackPrefix.Addr(), size, cfg.Timeout)
	r.bridge = n.bridge.Stats()
	if u, kns := n.ustack(); u != nil {
		st := u.Stats().TCP
		r.ustack = &st
		if kns != nil {
			if kc, err := readKernelCounters(kns); err == nil {
				r.kernel = &kc
			}
		}
	}
	if n.client.ns != nil && n.server.ns != nil {
		kc, err1 := readKernelCounters(n.client.ns)
		ks, err2 := readKernelCounters(n.server.ns)
		if err1 == nil && err2 == nil {
			sum := kc.add(ks)
			r.kernel = &sum
		}
	}
	if err := n.Close(); err != nil && r.err == nil {
		r.err = fmt.Errorf("teardown: %w", err)
	}
	return r
}

func resultCell(r lossyResult) string {
	switch {
	case r.err == nil:
		return fmt.Sprintf("%.2f", r.elapsed.Seconds())
	case errors.Is(r.err, errTimeout):
		return "timeout"
	default:
		return "FAILED: " + r.err.Error()
	}
}

func printLossyTables(w io.Writer, cfg LossyConfig, results map[lossyKey]lossyResult) {
	for _, wl := range cfg.Workloads {
		fmt.Fprintln(w)
		switch wl {
		case WorkloadEcho:
			fmt.Fprintln(w, "echo (Linux client writes and reads back the bytes; server:)")
		case WorkloadHTTP:
			fmt.Fprintln(w, "HTTP download (Linux client, the server sends; server:)")
		case WorkloadSend:
			fmt.Fprintln(w, "send (the client sends to a Linux server; client:)")
		}
		header := []string{"case"}
		for _, st := range cfg.Stacks {
			header = append(header, stackTitle[st])
		}
		ratios := [][2]string{}
		for _, o := range []string{StackLinux, StackGVisor} {
			if contains(cfg.Stacks, StackUstack) && contains(cfg.Stacks, o) {
				ratios = append(ratios, [2]string{StackUstack, o})
				header = append(header, "ustack/"+stackTitle[o])
			}
		}
		table := [][]string{header}
		for _, cs := range cfg.Cases {
			line := []string{cs.Title}
			for _, st := range cfg.Stacks {
				c := resultCell(results[lossyKey{cs.Name, wl, st}])
				if strings.HasPrefix(c, "FAILED") {
					c = "FAILED"
				}
				line = append(line, c)
			}
			for _, p := range ratios {
				a, b := results[lossyKey{cs.Name, wl, p[0]}], results[lossyKey{cs.Name, wl, p[1]}]
				if a.err != nil || b.err != nil || b.elapsed <= 0 {
					line = append(line, "—")
					continue
				}
				line = append(line, fmt.Sprintf("%.2f", a.elapsed.Seconds()/b.elapsed.Seconds()))
			}
			table = append(table, line)
		}
		writeTable(w, table)

	}
	if contains(cfg.Stacks, StackUstack) {
		printUstackCounters(w, cfg, results)
	}
	if contains(cfg.Stacks, StackLinux) {
		printLinuxCounters(w, cfg, results)
	}
}

func printUstackCounters(w io.Writer, cfg LossyConfig, results map[lossyKey]lossyResult) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "ustack's TCP counters per transfer (stack.Stats().TCP), and its kernel peer's (nstat names)")
	table := [][]string{{"case", "workload", "Timeouts", "FastRetransmits", "Retransmits", "TLPProbes", "RACKLosses", "DSACKsSent", "DSACKsReceived", "SpuriousRetransmits", "SpuriousRTOs", "Undos", "kernel TCPTimeouts", "kernel RetransSegs", "kernel TCPLossProbes", "kernel DSACKs received", "kernel DSACKs sent"}}
	for _, cs := range cfg.Cases {
		for _, wl := range cfg.Workloads {
			r := results[lossyKey{cs.Name, wl, StackUstack}]
			if r.ustack == nil {
				continue
			}
			s := r.ustack
			line := []string{cs.Name, wl}
			for _, v := range []uint64{s.Timeouts, s.FastRetransmits, s.Retransmits, s.TLPProbes, s.RACKLosses, s.DSACKsSent, s.DSACKsReceived, s.SpuriousRetransmits, s.SpuriousRTOs, s.Undos} {
				line = append(line, fmt.Sprint(v))
			}
			if k := r.kernel; k != nil {
				line = append(line, fmt.Sprint(k.Timeouts), fmt.Sprint(k.RetransSegs), fmt.Sprint(k.LossProbes), fmt.Sprint(k.DSACKRecv), fmt.Sprint(k.DSACKSent))
			} else {
				line = append(line, "—", "—", "—", "—", "—")
			}
			table = append(table, line)
		}
	}
	writeTable(w, table)
	fmt.Fprintln(w, "echo and http: ustack is the server, the kernel its client; send: ustack is the client, the kernel its server")
}

func printLinuxCounters(w io.Writer, cfg LossyConfig, results map[lossyKey]lossyResult) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Linux↔Linux, the baseline: both kernels' counters per transfer, summed")
	table := [][]string{{"case", "workload", "TCPTimeouts", "RetransSegs", "TCPLossProbes", "DSACKs received", "DSACKs sent", "TCPSpuriousRTOs"}}
	for _, cs := range cfg.Cases {
		for _, wl := range cfg.Workloads {
			k := results[lossyKey{cs.Name, wl, StackLinux}].kernel
			if k == nil {
				continue
			}
			table = append(table, []string{cs.Name, wl, fmt.Sprint(k.Timeouts), fmt.Sprint(k.RetransSegs), fmt.Sprint(k.LossProbes), fmt.Sprint(k.DSACKRecv), fmt.Sprint(k.DSACKSent), fmt.Sprint(k.SpuriousRTOs)})
		}
	}
	writeTable(w, table)
}

// FormatSize formats a byte count as KiB or MiB when it is a whole number
// of them.
func FormatSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
