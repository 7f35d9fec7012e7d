package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ustack/ustack/interop/bench"
)

// TestQuick runs the command in quick mode so that it cannot rot.
func TestQuick(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"-quick"}, &out, &errOut); err != nil {
		t.Fatalf("ustackbench -quick: %v\n%s%s", err, out.String(), errOut.String())
	}
	t.Logf("\n%s", out.String())
	for _, want := range []string{"bulk throughput", "allocs/segment", "RR median", "RR p99", "connections/s", "heap B/idle conn", "heap B/TIME-WAIT conn",
		"UDP 64 B paced (datagrams/s)", "UDP 1400 B paced (MB/s)", "UDP allocs/datagram", "UDP 64 B flat out loss", "UDP 64 B RR (round trips/s)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestQuickIPv6 runs the in-memory bulk transfer over IPv6, every pair.
func TestQuickIPv6(t *testing.T) {
	c, srv := bench.ClientPrefix, bench.ServerPrefix
	defer func() { bench.ClientPrefix, bench.ServerPrefix = c, srv }()
	var out, errOut bytes.Buffer
	if err := run([]string{"-quick", "-ipv6", "-metrics", "bulk,udp"}, &out, &errOut); err != nil {
		t.Fatalf("ustackbench -quick -ipv6: %v\n%s%s", err, out.String(), errOut.String())
	}
	t.Logf("\n%s", out.String())
	if !strings.Contains(out.String(), "bulk throughput") || !bench.ServerPrefix.Addr().Is6() {
		t.Errorf("no IPv6 bulk figure:\n%s", out.String())
	}
}

// TestQuickFilter runs the filter's cost benchmark in quick mode: both
// variants run, the rules do what they should (measureFilter checks the
// last rule took the segments), and the ratio is printed.
func TestQuickFilter(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"-filter", "-quick"}, &out, &errOut); err != nil {
		t.Fatalf("ustackbench -filter -quick: %v\n%s%s", err, out.String(), errOut.String())
	}
	t.Logf("\n%s", out.String())
	for _, want := range []string{"run 1 no filter", "run 1 filter", "CPU per segment (ns)", "per-segment cost added by the filter"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if err := run([]string{"-filter", "-tap"}, &out, &errOut); err == nil {
		t.Error("-filter -tap accepted")
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-ipv6", "-tap"}, {"-metrics", "nope"}, {"-pairs", "linux"}, {"-mtu", "100"}, {"-datagrams", "0"}, {"-window", "-1"}, {"-queues", "2"}, {"-tap", "-queues", "1"}} {
		var out, errOut bytes.Buffer
		if err := run(args, &out, &errOut); err == nil {
			t.Errorf("run(%q) succeeded, want an error", args)
		}
	}
}
