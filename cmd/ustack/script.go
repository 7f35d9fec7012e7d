package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ustack/ustack/tcptest/script"
)

// scriptCmd runs packetdrill-syntax scripts against a fresh ustack stack
// each, in virtual time, and prints PASS or FAIL per script. It returns an
// error when any script fails.
func scriptCmd(args []string) error {
	return runScripts(args, os.Stdout)
}

func runScripts(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("script", flag.ContinueOnError)
	verbose := fs.Bool("v", false, "print every event as it runs, and the notes of passing scripts")
	lenient := fs.Bool("lenient-options", false, "compare TCP options by the presence of each kind, not by exact values and layout")
	ignorePush := fs.Bool("ignore-psh", false, "do not compare the PSH flag (its placement is the sender's choice, RFC 9293 §3.9.1)")
	tolerance := fs.Duration("tolerance", script.DefaultTolerance, "how far an event may be from its scripted time (packetdrill's --tolerance_usecs)")
	percent := fs.Float64("tolerance-percent", 0, "widen the tolerance to this percentage of the time since the previous event (packetdrill uses 12.5)")
	pcapDir := fs.String("pcap", "", "write a pcap of each failing script's exchange into this directory")
	ipVersion := fs.String("ip-version", "", "ipv4, ipv6 or ipv4-mapped-ipv6 (packetdrill's --ip_version; overrides the script's); default: the script's, else ipv4")
	mtu := fs.Int("mtu", 0, "the MTU of the stack's link (packetdrill's --mtu; overrides the script's); default: the script's, else 1500. Linux's selftests run IPv6 with 1520, so that an MSS of 1460 holds")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: ustack script [-v] [-lenient-options] [-ignore-psh] [-tolerance D] [-tolerance-percent P] [-ip-version V] [-mtu N] [-pcap DIR] FILE...

Runs packetdrill-syntax .pkt scripts against a fresh ustack TCP stack each,
in virtual time: the stack under test is 192.168.0.1, the scripted peer
192.0.2.1 (with -ip-version ipv6, fd3d:fa7b:d17d::1 and 2001:db8::1).
Prints PASS or FAIL per script; exits non-zero if any fails.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no script given")
	}
	var ver script.IPVersion
	if *ipVersion != "" {
		v, err := script.ParseIPVersion(*ipVersion)
		if err != nil {
			return fmt.Errorf("-ip-version: %v", err)
		}
		ver = v
	}
	if *mtu < 0 || *mtu > 65535 {
		return fmt.Errorf("-mtu: %d is not an MTU", *mtu)
	}
	failed := 0
	for _, path := range fs.Args() {
		opts := script.Options{Tolerance: *tolerance, TolerancePercent: *percent, LenientOptions: *lenient, IgnorePush: *ignorePush,
			IPVersion: ver, MTU: *mtu}
		if *verbose {
			fmt.Fprintf(w, "=== RUN %s\n", path)
			opts.Trace = w
		}
		start := time.Now()
		res := script.RunFile(path, opts)
		took := time.Since(start).Round(time.Microsecond)
		if res.Passed() {
			fmt.Fprintf(w, "PASS %s (%v virtual, %v)\n", path, res.Elapsed, took)
			if *verbose {
				printNotes(w, res.Notes)
			}
			continue
		}
		failed++
		var f *script.Failure
		if errors.As(res.Err, &f) {
			fmt.Fprintf(w, "FAIL %s\n  %s\n", path, strings.ReplaceAll(f.Detail(), "\n", "\n  "))
		} else {
			fmt.Fprintf(w, "FAIL %s\n  %v\n", path, res.Err)
		}
		printNotes(w, res.Notes)
		if *pcapDir != "" && len(res.Packets) > 0 {
			name := filepath.Join(*pcapDir, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))+".pcap")
			if err := writePcap(name, res); err != nil {
				fmt.Fprintf(w, "  writing %s: %v\n", name, err)
			} else {
				fmt.Fprintf(w, "  capture: %s\n", name)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d scripts failed", failed, fs.NArg())
	}
	return nil
}

func printNotes(w io.Writer, notes []string) {
	for _, n := range notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func writePcap(path string, res *script.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := res.WritePcap(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
