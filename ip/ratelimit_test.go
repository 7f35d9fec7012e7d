package ip

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestRateLimiter(t *testing.T) {
	l := NewRateLimiter(10, 3) // 10/s, bursts of 3
	now := t0
	allowed := 0
	for range 10 {
		if l.Allow(now) {
			allowed++
		}
	}
	if allowed != 3 {
		t.Fatalf("burst: %d allowed, want 3", allowed)
	}
	if l.Allow(now.Add(99 * time.Millisecond)) {
		t.Error("allowed before a token refilled")
	}
	if !l.Allow(now.Add(100 * time.Millisecond)) {
		t.Error("refused after 100 ms")
	}
	// Over a long idle period the bucket caps at the burst.
	now = now.Add(time.Hour)
	allowed = 0
	for range 10 {
		if l.Allow(now) {
			allowed++
		}
	}
	if allowed != 3 {
		t.Errorf("after idle: %d allowed, want 3", allowed)
	}
	// Steady state: 10 per second.
	allowed = 0
	for i := range 1000 {
		if l.Allow(now.Add(time.Duration(i+1) * 10 * time.Millisecond)) {
			allowed++
		}
	}
	if allowed < 99 || allowed > 101 {
		t.Errorf("10 s at 100 tries/s: %d allowed, want ~100", allowed)
	}
	// Time going backwards adds nothing.
	if l.Allow(t0) {
		t.Error("allowed with an earlier time and an empty bucket")
	}
	if z := NewRateLimiter(0, 0); z.Allow(t0) || z.Allow(t0.Add(time.Hour)) {
		t.Error("zero limiter allowed")
	}
}
