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
	checkFramesRead(t, s)
	if left := benchNamespaces(t, os.Getpid()); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
}

// checkFramesRead checks that both tables of a flood's output out give
// ustack (the first column) a rate of frames read and a CPU per frame.
func checkFramesRead(t *testing.T, out string) {
	t.Helper()
	for _, name := range []string{"frames the server read (frames/s)", "server CPU per frame read (µs)"} {
		rows := tableRows(out, name)
		if len(rows) != 2 {
			t.Errorf("%d tables with %q, want 2", len(rows), name)
		}
		for i, row := range rows {
			if !positive(row[0]) {
				t.Errorf("table %d: ustack's %q is %q", i, name, row[0])
			}
		}
	}
}

// TestFloodQueuesQuick floods ustack on a TAP device of two queues, a
// reader each: the frames are read and the legitimate clients served.
func TestFloodQueuesQuick(t *testing.T) {
	netns.Require(t)
	var out, errOut bytes.Buffer
	err := run([]string{"-flood", "-quick", "-flood-time", "300ms", "-servers", "ustack", "-flood-queues", "2"}, &out, &errOut)
	t.Logf("\n%s%s", out.String(), errOut.String())
	if err != nil {
		t.Fatalf("ustackbench -flood -flood-queues 2: %v", err)
	}
	s := out.String()
	if !strings.Contains(s, "ustack (2 TAP queue(s)") || strings.Contains(s, "FAILED") {
		t.Errorf("the run did not have two queues, or failed")
	}
	checkFramesRead(t, s)
	for i, row := range tableRows(s, "legitimate connects echoed / attempted") {
		var ok, tried int
		if _, err := fmt.Sscanf(row[0], "%d / %d", &ok, &tried); err != nil || tried <= 0 || ok <= 0 {
			t.Errorf("table %d: connects %q", i, row[0])
		}
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
	// The CPU and frames per connection are ustack's (the first column).
	if rows := tableRows(s, "server CPU per connection (µs)"); len(rows) != 1 || !positive(rows[0][0]) {
		t.Errorf("row CPU per connection: %v, want a positive figure for ustack", rows)
	}
	if rows := tableRows(s, "frames in / out per connection"); len(rows) != 1 {
		t.Errorf("row frames per connection: %v", rows)
	} else {
		var in, out float64
		if _, err := fmt.Sscanf(rows[0][0], "%f / %f", &in, &out); err != nil || in < 3 || out < 3 {
			t.Errorf("ustack's frames in / out per connection %q, want at least 3 each way (a handshake, a request and an answer, a close)", rows[0][0])
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
		{"-flood", "-flood-queues", "0"},
		{"-flood", "-flood-queues", "17"},
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
