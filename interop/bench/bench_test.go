package bench

import (
	"errors"
	"testing"
	"time"
)

// pairOrSkip builds a pair of the given kind at MTU 1500, skipping the
// benchmark when this build cannot (ustack without TCP).
func pairOrSkip(b *testing.B, k PairKind) *Pair {
	b.Helper()
	p, err := k.New(1500)
	if errors.Is(err, ErrUnavailable) {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// BenchmarkBulk sends b.N chunks of 64 KiB over one connection.
func BenchmarkBulk(b *testing.B) {
	for _, k := range AllKinds {
		b.Run(k.Name, func(b *testing.B) {
			p := pairOrSkip(b, k)
			b.SetBytes(chunk)
			r, err := MeasureBulk(p, int64(b.N)*chunk)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.AllocsPerSegment(), "allocs/segment")
		})
	}
}

// BenchmarkLatency does b.N 1-byte request/response round trips.
func BenchmarkLatency(b *testing.B) {
	for _, k := range AllKinds {
		b.Run(k.Name, func(b *testing.B) {
			p := pairOrSkip(b, k)
			r, err := MeasureLatency(p, max(b.N, 100))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(us(r.Median), "µs-median")
			b.ReportMetric(us(r.P99), "µs-p99")
		})
	}
}

// BenchmarkConnect opens b.N connections, one byte each way.
func BenchmarkConnect(b *testing.B) {
	for _, k := range AllKinds {
		b.Run(k.Name, func(b *testing.B) {
			p := pairOrSkip(b, k)
			r, err := MeasureConnRate(p, b.N, 0)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.PerSecond(), "conns/s")
		})
	}
}

// BenchmarkIdleHeap opens 500 idle connections per iteration on a fresh
// pair and reports the live heap per connection.
func BenchmarkIdleHeap(b *testing.B) {
	const n = 500
	for _, k := range AllKinds {
		b.Run(k.Name, func(b *testing.B) {
			var sum float64
			for range b.N {
				p := pairOrSkip(b, k)
				v, err := MeasureIdleHeap(p, n)
				p.Close()
				if err != nil {
					b.Fatal(err)
				}
				sum += v
			}
			b.ReportMetric(sum/float64(b.N), "B/conn")
		})
	}
}

// TestMetricsGVisor runs every metric once, small, on a gVisor pair.
func TestMetricsGVisor(t *testing.T) {
	cfg := QuickConfig()
	cfg.Kinds = []PairKind{KindGVisor}
	start := time.Now()
	r := Measure(cfg, KindGVisor)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	t.Logf("%.0f MB/s, %.2f allocs/segment, RR median %v p99 %v, %.0f conns/s, %.0f B/idle conn, %.0f B/TIME-WAIT conn (%v)",
		r.Bulk.MBps(), r.Bulk.AllocsPerSegment(), r.Latency.Median, r.Latency.P99, r.Conn.PerSecond(), r.IdleB, r.TimeWaitB, time.Since(start))
	if r.Bulk.MBps() <= 0 || r.Latency.Median <= 0 || r.Conn.PerSecond() <= 0 || r.IdleB <= 0 || r.TimeWaitB <= 0 {
		t.Errorf("a metric is not positive: %+v", r)
	}
}
