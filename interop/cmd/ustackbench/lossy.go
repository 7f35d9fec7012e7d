package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ustack/ustack/interop/bench"
)

// lossyFlags are the flag values of a -lossy run.
type lossyFlags struct {
	mtu                      int
	cases, stacks, workloads string
	size, longSize           string
	seed                     uint64
	timeout                  time.Duration
	bridgeCost               bool
	count                    int
	offloads                 bool
	pcapDir                  string
}

func lossyCaseNames() []string {
	var names []string
	for _, c := range bench.LossyCases {
		names = append(names, c.Name)
	}
	return names
}

// runLossy applies the flags that were set to cfg, checks them and runs
// the lossy-link benchmark.
func runLossy(cfg bench.LossyConfig, set map[string]bool, f lossyFlags, stdout, stderr io.Writer) error {
	var err error
	if set["mtu"] {
		cfg.MTU = f.mtu
	}
	if cfg.MTU < 576 || cfg.MTU > 65000 {
		return fmt.Errorf("-mtu %d: want 576 to 65000", cfg.MTU)
	}
	if set["size"] {
		if cfg.Size, err = parseSize("size", f.size); err != nil {
			return err
		}
	}
	if set["longsize"] {
		if cfg.LongSize, err = parseSize("longsize", f.longSize); err != nil {
			return err
		}
	}
	if set["seed"] {
		cfg.Seed = f.seed
	}
	cfg.Offloads = f.offloads
	cfg.PcapDir = f.pcapDir
	if set["timeout"] {
		if f.timeout <= 0 {
			return fmt.Errorf("-timeout %v: want a positive duration", f.timeout)
		}
		cfg.Timeout = f.timeout
	}
	if set["cases"] && f.cases != "all" {
		cfg.Cases = nil
		for _, name := range splitList(f.cases) {
			c, ok := bench.LossyCaseNamed(name)
			if !ok {
				return fmt.Errorf("-cases: unknown case %q (want all, or some of %s)", name, strings.Join(lossyCaseNames(), ", "))
			}
			cfg.Cases = append(cfg.Cases, c)
		}
	} else if set["cases"] {
		cfg.Cases = bench.LossyCases
	}
	if set["stacks"] {
		if cfg.Stacks, err = pick("stacks", f.stacks, bench.AllLossyStacks); err != nil {
			return err
		}
	}
	if set["workloads"] {
		if cfg.Workloads, err = pick("workloads", f.workloads, bench.AllWorkloads); err != nil {
			return err
		}
	}
	if f.count <= 0 {
		return fmt.Errorf("-count %d: want a positive count", f.count)
	}
	if set["count"] && !f.bridgeCost {
		cfg.Runs = f.count // else once each: a full run takes half an hour
	}
	if err := bench.TAPAvailable(); err != nil {
		return fmt.Errorf("-lossy needs root, /dev/net/tun and ip(8) (iproute2): %w", err)
	}
	if f.bridgeCost {
		return withCleanup(stderr, func() error { return bench.RunBridgeCost(cfg, f.count, stdout) })
	}
	return withCleanup(stderr, func() error { return bench.RunLossy(cfg, stdout) })
}

// splitList splits a comma-separated flag value, trimming and lowering
// each item and dropping empty ones.
func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.ToLower(strings.TrimSpace(x)); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// pick parses a list flag whose items must be among valid, keeping the
// order of valid.
func pick(flagName, value string, valid []string) ([]string, error) {
	items := splitList(value)
	if len(items) == 0 {
		return nil, fmt.Errorf("-%s: empty list (want some of %s)", flagName, strings.Join(valid, ", "))
	}
	for _, x := range items {
		if !contains(valid, x) {
			return nil, fmt.Errorf("-%s: unknown item %q (want some of %s)", flagName, x, strings.Join(valid, ", "))
		}
	}
	var out []string
	for _, v := range valid {
		if contains(items, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// parseSize parses a byte count such as 4MiB, 512KiB, 1GiB or 100000
// (binary units; K, M and G are accepted for KiB, MiB and GiB).
func parseSize(flagName, s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(strings.ToUpper(t), strings.ToUpper(u.suffix)) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("-%s %q: want a positive size such as 4MiB, 512KiB or 100000", flagName, s)
	}
	return n * mult, nil
}
