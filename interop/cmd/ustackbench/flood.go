package main

import (
	"flag"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/ustack/ustack/interop/bench"
)

// floodFlags are the flags of the -flood and -churn runs.
type floodFlags struct {
	flood, churn    bool
	rate            *int
	max             *bool
	floodTime       *time.Duration
	connectInterval *time.Duration
	connectTimeout  *time.Duration
	servers         *string
	seed            *uint64
	routed          *bool
	queues          *int
	churnTime       *time.Duration
	churnConc       *int
	churnWrk        *bool
	mtu             int
}

func addFloodFlags(fs *flag.FlagSet) *floodFlags {
	def, cdef := bench.DefaultFloodConfig(), bench.DefaultChurnConfig()
	f := &floodFlags{}
	fs.BoolVar(&f.flood, "flood", false, "SYN flood: spoofed SYNs into the link of ustack, gVisor (on TAP) and Linux (veth) while kernel clients connect and echo (needs root and /dev/net/tun)")
	fs.BoolVar(&f.churn, "churn", false, "churn: kernel clients open a new connection per HTTP request to ustack and gVisor over TAP; memory per connection and per TIME-WAIT connection (needs root and /dev/net/tun)")
	f.rate = fs.Int("flood-rate", def.Rate, "with -flood: SYNs per second of the paced flood")
	f.max = fs.Bool("flood-max", def.Max, "with -flood: also flood as fast as this machine can send")
	f.floodTime = fs.Duration("flood-time", def.Duration, "with -flood: how long each flood lasts")
	f.connectInterval = fs.Duration("flood-connect-interval", def.ConnectInterval, "with -flood: time between two legitimate connects")
	f.connectTimeout = fs.Duration("flood-connect-timeout", def.ConnectTimeout, "with -flood: time limit of each legitimate connect and echo")
	f.servers = fs.String("servers", strings.Join(def.Servers, ","), "with -flood: servers: ustack, gvisor, linux; with -churn: ustack, gvisor")
	f.seed = fs.Uint64("flood-seed", def.Seed, "with -flood: seed of the flood's sources, ports and ISNs")
	f.routed = fs.Bool("flood-routed", false, "with -flood: route the flood's sources from every server into the client namespace, whose kernel drops the SYN-ACKs (default: no namespace routes them, and a server may drop a SYN it cannot answer)")
	f.queues = fs.Int("flood-queues", 1, "with -flood: queues of ustack's TAP device, a reader each")
	f.churnTime = fs.Duration("churn-time", cdef.Duration, "with -churn: how long each server is churned")
	f.churnConc = fs.Int("churn-conns", cdef.Concurrency, "with -churn: concurrent clients (like wrk -c)")
	f.churnWrk = fs.Bool("churn-wrk", false, "with -churn: the clients are wrk(1) run in the client namespace (wrk -c CONNS -H 'Connection: close'), as in issue 8, instead of the benchmark's Go clients; wrk must be installed")
	return f
}

// runFloodOrChurn applies the flags that were set to the default (or,
// with quick, the quick) configuration, checks them and runs -flood or
// -churn.
func runFloodOrChurn(f *floodFlags, set map[string]bool, quick bool, stdout, stderr io.Writer) error {
	positive := func(name string, d time.Duration) error {
		if d <= 0 {
			return fmt.Errorf("-%s %v: want a positive duration", name, d)
		}
		return nil
	}
	if set["mtu"] && (f.mtu < 576 || f.mtu > 65000) {
		return fmt.Errorf("-mtu %d: want 576 to 65000", f.mtu)
	}
	if f.churn {
		cfg := bench.DefaultChurnConfig()
		if quick {
			cfg = bench.QuickChurnConfig()
		}
		if set["mtu"] {
			cfg.MTU = f.mtu
		}
		if set["churn-time"] {
			if err := positive("churn-time", *f.churnTime); err != nil {
				return err
			}
			cfg.Duration = *f.churnTime
		}
		if set["churn-conns"] {
			if *f.churnConc <= 0 || *f.churnConc > 10000 {
				return fmt.Errorf("-churn-conns %d: want 1 to 10000", *f.churnConc)
			}
			cfg.Concurrency = *f.churnConc
		}
		if *f.churnWrk {
			if _, err := exec.LookPath("wrk"); err != nil {
				return fmt.Errorf("-churn-wrk: %w (apt-get install wrk)", err)
			}
			cfg.Wrk = true
		}
		if set["servers"] {
			var err error
			if cfg.Servers, err = pick("servers", *f.servers, []string{bench.StackUstack, bench.StackGVisor}); err != nil {
				return err
			}
		}
		if err := bench.TAPAvailable(); err != nil {
			return fmt.Errorf("-churn needs root, /dev/net/tun and ip(8) (iproute2): %w", err)
		}
		return withCleanup(stderr, func() error { return bench.RunChurn(cfg, stdout) })
	}
	cfg := bench.DefaultFloodConfig()
	if quick {
		cfg = bench.QuickFloodConfig()
	}
	if set["mtu"] {
		cfg.MTU = f.mtu
	}
	if set["flood-rate"] {
		if *f.rate <= 0 || *f.rate > 100_000_000 {
			return fmt.Errorf("-flood-rate %d: want 1 to 100000000 SYNs per second", *f.rate)
		}
		cfg.Rate = *f.rate
	}
	if set["flood-max"] {
		cfg.Max = *f.max
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		dst  *time.Duration
	}{
		{"flood-time", *f.floodTime, &cfg.Duration},
		{"flood-connect-interval", *f.connectInterval, &cfg.ConnectInterval},
		{"flood-connect-timeout", *f.connectTimeout, &cfg.ConnectTimeout},
	} {
		if set[d.name] {
			if err := positive(d.name, d.v); err != nil {
				return err
			}
			*d.dst = d.v
		}
	}
	if set["servers"] {
		var err error
		if cfg.Servers, err = pick("servers", *f.servers, bench.AllLossyStacks); err != nil {
			return err
		}
	}
	cfg.Routed = *f.routed
	if set["flood-queues"] {
		if *f.queues < 1 || *f.queues > 16 {
			return fmt.Errorf("-flood-queues %d: want 1 to 16", *f.queues)
		}
		cfg.Queues = *f.queues
	}
	if set["flood-seed"] {
		cfg.Seed = *f.seed
	}
	if err := bench.TAPAvailable(); err != nil {
		return fmt.Errorf("-flood needs root, /dev/net/tun and ip(8) (iproute2): %w", err)
	}
	return withCleanup(stderr, func() error { return bench.RunFlood(cfg, stdout) })
}
