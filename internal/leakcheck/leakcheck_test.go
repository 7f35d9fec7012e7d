package leakcheck

import (
	"strings"
	"testing"
	"time"
)

func TestNoLeak(t *testing.T) {
	Check(t)
	done := make(chan struct{})
	go func() { <-done }()
	t.Cleanup(func() { close(done) })
}

// recorder captures Errorf calls instead of failing.
type recorder struct {
	testing.TB
	cleanups []func()
	errors   []string
}

func (r *recorder) Cleanup(f func())                  { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(format string, args ...any) { r.errors = append(r.errors, format) }
func (r *recorder) Helper()                           {}

func TestReportsLeak(t *testing.T) {
	r := &recorder{TB: t}
	check(r, 200*time.Millisecond)
	stop := make(chan struct{})
	go leakyGoroutine(stop)
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	close(stop)
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "still running") {
		t.Fatalf("leak not reported: %q", r.errors)
	}
}

func leakyGoroutine(stop chan struct{}) { <-stop }

func TestGoroutinesParsesStacks(t *testing.T) {
	g := goroutines()
	if len(g) == 0 {
		t.Fatal("no goroutines parsed")
	}
	var found bool
	for _, s := range g {
		if strings.Contains(s, "TestGoroutinesParsesStacks") {
			found = true
		}
	}
	if !found {
		t.Error("the test's own goroutine is missing")
	}
}
