package bench

import (
	"testing"
	"time"
)

// A report of wrk 4.1 (Debian's), with the error lines wrk adds when
// some requests fail.
const wrkReport = `Running 1s test @ http://10.77.0.2:5006/
  2 threads and 5 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    36.29ms   42.71ms 253.60ms   87.21%
    Req/Sec    75.22     48.66   190.00     66.67%
  Latency Distribution
     50%   19.49ms
     75%   50.81ms
     90%   92.67ms
     99%  217.91ms
  146 requests in 1.03s, 1.55MB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:    141.08
Transfer/sec:      1.50MB
`

func TestParseWrk(t *testing.T) {
	var r churnRun
	if err := r.parseWrk(wrkReport); err != nil {
		t.Fatal(err)
	}
	if r.conns != 136 || r.failed != 10 {
		t.Errorf("conns %d failed %d, want 136 and 10", r.conns, r.failed)
	}
	if r.elapsed != 1030*time.Millisecond {
		t.Errorf("elapsed %v, want 1.03s", r.elapsed)
	}
	if p50, _, _ := churnPct(&r, 50); p50 != "19.49" {
		t.Errorf("p50 %s ms, want 19.49", p50)
	}
	if p99, _, _ := churnPct(&r, 99); p99 != "217.91" {
		t.Errorf("p99 %s ms, want 217.91", p99)
	}
	if err := new(churnRun).parseWrk("wrk: connection refused"); err == nil {
		t.Error("a report without a summary parsed")
	}
}
