package stack

import (
	"testing"
	"time"
)

func TestDeadlineManualClock(t *testing.T) {
	clock := NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	d := newDeadline()
	expired := func() bool {
		select {
		case <-d.wait():
			return true
		default:
			return false
		}
	}
	d.set(clock, clock.Now().Add(time.Second))
	clock.Advance(999 * time.Millisecond)
	if expired() {
		t.Fatal("expired before its time")
	}
	clock.Advance(time.Millisecond)
	select {
	case <-d.wait():
	case <-time.After(10 * time.Second):
		t.Fatal("did not expire at its time")
	}
	// Re-arming clears the expiry; the zero time disarms.
	d.set(clock, clock.Now().Add(time.Second))
	if expired() {
		t.Fatal("still expired after re-arming")
	}
	d.set(clock, time.Time{})
	clock.Advance(time.Hour)
	if expired() {
		t.Fatal("a disarmed deadline expired")
	}
	// A deadline in the past expires at once.
	d.set(clock, clock.Now().Add(-time.Second))
	if !expired() {
		t.Fatal("a past deadline did not expire")
	}
}
