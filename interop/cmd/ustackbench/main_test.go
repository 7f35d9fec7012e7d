package main

import (
	"bytes"
	"strings"
	"testing"
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

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-metrics", "nope"}, {"-pairs", "linux"}, {"-mtu", "100"}, {"-datagrams", "0"}, {"-window", "-1"}, {"-queues", "2"}, {"-tap", "-queues", "1"}} {
		var out, errOut bytes.Buffer
		if err := run(args, &out, &errOut); err == nil {
			t.Errorf("run(%q) succeeded, want an error", args)
		}
	}
}
