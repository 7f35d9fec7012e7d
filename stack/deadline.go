package stack

import (
	"sync"
	"time"
)

// deadline is one direction's deadline of a connection or listener: a
// channel that is closed when the deadline passes, re-armed by set.
type deadline struct {
	mu      sync.Mutex // guards timer and expired
	timer   Timer
	expired chan struct{}
}

func newDeadline() *deadline { return &deadline{expired: make(chan struct{})} }

// set arms the deadline for t on clock; the zero time disarms it.
func (d *deadline) set(clock Clock, t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.expired // the timer fired: wait for it to close the channel
	}
	d.timer = nil
	select {
	case <-d.expired:
		d.expired = make(chan struct{})
	default:
	}
	if t.IsZero() {
		return
	}
	if !t.After(clock.Now()) {
		close(d.expired)
		return
	}
	ch := d.expired
	// Armed far away first, then pinned to t itself: a ManualClock moved by
	// another goroutine since Now was read must not shift the deadline, and
	// the timer cannot fire before it is pinned.
	d.timer = clock.AfterFunc(365*24*time.Hour, func() { close(ch) })
	d.timer.ResetAt(t)
}

// wait returns a channel that is closed once the deadline has passed.
func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.expired
}
