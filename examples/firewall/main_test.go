package main

import (
	"strings"
	"testing"
)

// TestRun: behind the naive stateless rules nothing works, not even the
// service; the fixed stateless rules let the connections through and the
// hole with them; the stateful rules let through what is meant and
// nothing else.
func TestRun(t *testing.T) {
	var out strings.Builder
	if err := run(&out, false); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	want := []string{
		"== stateless-naive.rules",
		"  client -> server:80        no answer",
		"  server -> client:9000      no answer",
		"  client:9000 -> server:22   no answer",
		"  (each packet alone",
		"== stateless.rules",
		"  client -> server:80        connected",
		"  server -> client:9000      connected",
		"  client:9000 -> server:22   connected",
		"  (the replies get through",
		"== stateful.rules",
		"  client -> server:80        connected",
		"  server -> client:9000      connected",
		"  client:9000 -> server:22   no answer",
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < len(want) {
		t.Fatalf("%d lines, want %d", len(lines), len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q, want it to begin %q", i, lines[i], w)
		}
	}
}
