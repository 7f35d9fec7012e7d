package bench

import (
	"errors"
	"fmt"
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
	t.Logf("%.0f MB/s, %.2f allocs/segment, RR median %v p99 %v, %.0f conns/s, %.0f B/idle conn, %.0f B/TIME-WAIT conn, UDP %.0f/%.0f datagrams/s paced, %.0f round trips/s (%v)",
		r.Bulk.MBps(), r.Bulk.AllocsPerSegment(), r.Latency.Median, r.Latency.P99, r.Conn.PerSecond(), r.IdleB, r.TimeWaitB,
		r.UDPPaced[0].PerSecond(), r.UDPPaced[1].PerSecond(), r.UDPRR.PerSecond(), time.Since(start))
	if r.Bulk.MBps() <= 0 || r.Latency.Median <= 0 || r.Conn.PerSecond() <= 0 || r.IdleB <= 0 || r.TimeWaitB <= 0 ||
		r.UDPPaced[0].PerSecond() <= 0 || r.UDPPaced[1].PerSecond() <= 0 || r.UDPFlat[0].PerSecond() <= 0 || r.UDPFlat[1].PerSecond() <= 0 || r.UDPRR.PerSecond() <= 0 {
		t.Errorf("a metric is not positive: %+v", r)
	}
}

// TestUDPStreamCounts checks the UDP stream's bookkeeping on every in-memory
// pair: a paced stream delivers every datagram (the window keeps the
// receive queue from overflowing), a flat-out one never reports more
// received than sent, and the request/response rounds all complete.
func TestUDPStreamCounts(t *testing.T) {
	for _, k := range AllKinds {
		t.Run(k.Name, func(t *testing.T) {
			p, err := k.New(1500)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			for _, size := range []int{UDPSmall, UDPLarge} {
				paced, err := MeasureUDPStream(p, size, 3000, 64)
				if err != nil {
					t.Fatalf("paced, %d bytes: %v", size, err)
				}
				if paced.Sent != 3000 || paced.Received != 3000 {
					t.Errorf("paced, %d bytes: sent %d, received %d, want 3000 each", size, paced.Sent, paced.Received)
				}
				flat, err := MeasureUDPStream(p, size, 3000, 0)
				if err != nil {
					t.Fatalf("flat out, %d bytes: %v", size, err)
				}
				if flat.Received > flat.Sent || flat.Received <= 0 {
					t.Errorf("flat out, %d bytes: sent %d, received %d", size, flat.Sent, flat.Received)
				}
			}
			rr, err := MeasureUDPRR(p, UDPSmall, 500)
			if err != nil {
				t.Fatal(err)
			}
			if rr.Rounds+rr.Lost != 500 || rr.Rounds == 0 {
				t.Errorf("RR: %d rounds and %d lost, want 500 in all", rr.Rounds, rr.Lost)
			}
		})
	}
}

// TestUDPNotOnTCPOnlyPair checks that a pair without UDP is refused with
// ErrNoUDP, not a nil dereference.
func TestUDPNotOnTCPOnlyPair(t *testing.T) {
	p := &Pair{Name: "tcp-only"}
	if _, err := MeasureUDPStream(p, UDPSmall, 10, 0); !errors.Is(err, ErrNoUDP) {
		t.Errorf("MeasureUDPStream: %v, want ErrNoUDP", err)
	}
	if _, err := MeasureUDPRR(p, UDPSmall, 10); !errors.Is(err, ErrNoUDP) {
		t.Errorf("MeasureUDPRR: %v, want ErrNoUDP", err)
	}
}

// BenchmarkUDPStream sends b.N datagrams, paced, of each size.
func BenchmarkUDPStream(b *testing.B) {
	for _, k := range AllKinds {
		for _, size := range []int{UDPSmall, UDPLarge} {
			b.Run(fmt.Sprintf("%s/%d", k.Name, size), func(b *testing.B) {
				p := pairOrSkip(b, k)
				b.SetBytes(int64(size))
				r, err := MeasureUDPStream(p, size, max(b.N, 100), 64)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(r.PerSecond(), "datagrams/s")
				b.ReportMetric(r.AllocsPerDatagram(), "allocs/datagram")
				b.ReportMetric(r.LossPercent(), "%loss")
			})
		}
	}
}

// BenchmarkUDPRR does b.N 64-byte UDP round trips.
func BenchmarkUDPRR(b *testing.B) {
	for _, k := range AllKinds {
		b.Run(k.Name, func(b *testing.B) {
			p := pairOrSkip(b, k)
			r, err := MeasureUDPRR(p, UDPSmall, max(b.N, 100))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.PerSecond(), "round-trips/s")
		})
	}
}
