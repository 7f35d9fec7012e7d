// Package leakcheck reports goroutines that a test started and did not end.
//
// Call Check at the start of a test. When the test ends (after every Cleanup
// registered later has run, since cleanups run last-in first-out), Check
// waits up to Timeout for every goroutine that did not exist at the start to
// exit, then fails the test with the stacks of those still running.
//
// Goroutines are told apart by their ids, so goroutines of tests running in
// parallel would be reported as leaks: do not combine Check with t.Parallel.
package leakcheck

import (
	"bytes"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Timeout is how long Check waits for extra goroutines to exit.
const Timeout = 5 * time.Second

// Check records the running goroutines and registers a Cleanup on tb that
// fails the test if goroutines started since then are still running Timeout
// after the test (and its later cleanups) finished.
func Check(tb testing.TB) {
	tb.Helper()
	check(tb, Timeout)
}

func check(tb testing.TB, timeout time.Duration) {
	before := goroutines()
	tb.Cleanup(func() {
		deadline := time.Now().Add(timeout)
		delay := time.Millisecond
		for {
			extra := leaked(before)
			if len(extra) == 0 {
				return
			}
			if time.Now().After(deadline) {
				tb.Errorf("leakcheck: %d goroutine(s) still running %v after the test:\n\n%s",
					len(extra), timeout, strings.Join(extra, "\n\n"))
				return
			}
			// Waiting for other goroutines to finish: there is no event to
			// wait on, so back off exponentially up to 100 ms.
			time.Sleep(delay)
			delay = min(2*delay, 100*time.Millisecond)
		}
	})
}

// leaked returns the stacks of goroutines whose id is not in before,
// ignoring the runtime's own goroutines.
func leaked(before map[uint64]string) []string {
	var extra []string
	for id, stack := range goroutines() {
		if _, ok := before[id]; ok || ignorable(stack) {
			continue
		}
		extra = append(extra, stack)
	}
	return extra
}

// ignorable reports goroutines that the runtime and os/signal start on
// demand and never end.
func ignorable(stack string) bool {
	return strings.Contains(stack, "os/signal.signal_recv") ||
		strings.Contains(stack, "os/signal.loop") ||
		strings.Contains(stack, "runtime.ensureSigM")
}

// goroutines returns the stack of every goroutine keyed by id.
func goroutines() map[uint64]string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	m := make(map[uint64]string)
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		// Each stack starts "goroutine 123 [state]:".
		rest, ok := bytes.CutPrefix(g, []byte("goroutine "))
		if !ok {
			continue
		}
		idStr, _, _ := bytes.Cut(rest, []byte(" "))
		id, err := strconv.ParseUint(string(idStr), 10, 64)
		if err != nil {
			continue
		}
		m[id] = string(g)
	}
	return m
}
