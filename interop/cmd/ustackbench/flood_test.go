package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/netns"
)

// tableRows returns the cells after the first of every table line of out
// whose first cell is name, one slice per table.
func tableRows(out, name string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(out, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 2 || strings.TrimSpace(cells[0]) != name {
			continue
		}
		var row []string
		for _, c := range cells[1:] {
			row = append(row, strings.TrimSpace(c))
		}
		rows = append(rows, row)
	}
	return rows
}

// positive reports whether cell is a number above zero.
func positive(cell string) bool {
	v, err := strconv.ParseFloat(cell, 64)
	return err == nil && v > 0
}

// TestFloodQuick floods ustack, gVisor and Linux for a moment at the
// default rate and flat out, so that the benchmark cannot rot: every
// server has figures, the flood was written, legitimate clients tried,
// and nothing is left behind. It asserts no success rate: that is the
// benchmark's to print.
func TestFloodQuick(t *testing.T) {
	netns.Require(t)
	var out, errOut bytes.Buffer
	err := run([]string{"-flood", "-quick", "-flood-time", "300ms"}, &out, &errOut)
	t.Logf("\n%s%s", out.String(), errOut.String())
	if err != nil {
		t.Fatalf("ustackbench -flood -quick: %v", err)
	}
	s := out.String()
	for _, want := range []string{"SYN flood 20000 SYN/s", "SYN flood flat out", "ustack/Linux", "ustack/gVisor", "listener counters"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(s, "FAILED") {
		t.Errorf("a run failed")
	}
	sent := tableRows(s, "flood sent (SYN/s)")
	if len(sent) != 2 {
		t.Fatalf("%d tables with the flood rate, want 2", len(sent))
	}
	for i, row := range sent {
		for j, c := range row[:3] { // ustack, gVisor, Linux
			if !positive(c) {
				t.Errorf("table %d, server %d: flood rate %q", i, j, c)
			}
		}
	}
	for i, row := range tableRows(s, "legitimate connects echoed / attempted") {
		for j, c := range row[:3] {
			var ok, tried int
			if _, err := fmt.Sscanf(c, "%d / %d", &ok, &tried); err != nil || tried <= 0 || ok > tried {
				t.Errorf("table %d, server %d: connects %q", i, j, c)
			}
		}
	}
	for i, row := range tableRows(s, "server RSS growth (MB)") {
		for j, c := range row[:2] { // the userspace servers
			if _, err := strconv.ParseFloat(c, 64); err != nil {
				t.Errorf("table %d, server %d: RSS growth %q", i, j, c)
			}
		}
	}
	if left := benchNamespaces(t, os.Getpid()); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
}

// TestChurnQuick churns ustack and gVisor for a moment: both made
// connections and report their memory per connection and per TIME-WAIT
// connection.
func TestChurnQuick(t *testing.T) {
	netns.Require(t)
	var out, errOut bytes.Buffer
	err := run([]string{"-churn", "-quick", "-churn-time", "500ms"}, &out, &errOut)
	t.Logf("\n%s%s", out.String(), errOut.String())
	if err != nil {
		t.Fatalf("ustackbench -churn -quick: %v", err)
	}
	s := out.String()
	if strings.Contains(s, "FAILED") {
		t.Errorf("a run failed")
	}
	for _, name := range []string{"connections", "connections/s", "of which in TIME-WAIT"} {
		rows := tableRows(s, name)
		if len(rows) != 1 || len(rows[0]) < 2 || !positive(rows[0][0]) || !positive(rows[0][1]) {
			t.Errorf("row %q: %v, want positive figures for ustack and gVisor", name, rows)
		}
	}
	for _, name := range []string{"heap growth per connection (B)", "heap growth per TIME-WAIT connection (B)", "RSS growth per TIME-WAIT connection (B)"} {
		rows := tableRows(s, name)
		if len(rows) != 1 || len(rows[0]) < 2 {
			t.Fatalf("row %q missing", name)
		}
		for _, c := range rows[0][:2] {
			if _, err := strconv.ParseFloat(c, 64); err != nil {
				t.Errorf("row %q: %q is not a number", name, c)
			}
		}
	}
	if left := benchNamespaces(t, os.Getpid()); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
}

// TestFloodInterrupted interrupts a flood against ustack and checks that
// its namespace is deleted and its server child ended.
func TestFloodInterrupted(t *testing.T) {
	// A seed no other run uses marks this run's processes.
	args := fmt.Sprintf("-flood -servers ustack -flood-time 1m -flood-seed %d", rand.Uint64())
	marker := argsEnv + "=" + args
	// Interrupted once its server child runs (the child's environment
	// has the marker and the child's variable).
	interruptRun(t, args, 1, func() bool { return len(processesWithEnv(t, marker, childEnv)) > 0 })
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := processesWithEnv(t, marker)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server children left behind: PIDs %v", left)
		}
		time.Sleep(20 * time.Millisecond) // polling other processes
	}
}

// childEnv is the variable the benchmark's server children have.
const childEnv = "USTACKBENCH_SERVER_CHILD"

// processesWithEnv returns the PIDs of processes whose environment holds
// the variable assignment kv and, if name is not empty, a variable name.
func processesWithEnv(t *testing.T, kv string, name ...string) []int {
	t.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*/environ")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue // gone, or not ours to read
		}
		vars := strings.Split(string(b), "\x00")
		if !slices.Contains(vars, kv) {
			continue
		}
		if len(name) > 0 && !slices.ContainsFunc(vars, func(v string) bool { return strings.HasPrefix(v, name[0]+"=") }) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		pids = append(pids, pid)
	}
	return pids
}

func TestFloodBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-flood", "-flood-rate", "0"},
		{"-flood", "-flood-time", "0s"},
		{"-flood", "-flood-connect-interval", "-1s"},
		{"-flood", "-flood-connect-timeout", "0s"},
		{"-flood", "-servers", "bsd"},
		{"-flood", "-mtu", "100"},
		{"-churn", "-churn-time", "0s"},
		{"-churn", "-churn-conns", "0"},
		{"-churn", "-servers", "linux"},
		{"-flood", "-tap"},
		{"-churn", "-flood"},
	} {
		var out, errOut bytes.Buffer
		err := run(args, &out, &errOut)
		if err == nil {
			t.Errorf("run(%q) succeeded, want an error", args)
			continue
		}
		if name := strings.TrimPrefix(args[1], "-"); !strings.Contains(err.Error(), name) {
			t.Errorf("run(%q) = %v: does not name -%s", args, err, name)
		}
	}
}
