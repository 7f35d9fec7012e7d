package link

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// waitBlocked waits until n goroutines' stacks contain both substrings
// (a function name and a wait state such as "[IO wait" or
// "[sync.Cond.Wait"), so that a test can be sure a reader is blocked before
// it closes the endpoint. It fails the test after 5 s.
func waitBlocked(t testing.TB, n int, state, function string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		var found int
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, state) && strings.Contains(g, function) {
				found++
			}
		}
		if found >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d goroutines blocked in %s (%s) after 5 s", found, n, function, state)
		}
		runtime.Gosched()
	}
}
