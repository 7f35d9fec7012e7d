package stack

import (
	"sync"
	"time"
)

// deadline is one direction's deadline of a connection or listener: a
// channel that is closed when the deadline passes, re-armed by set. The
// zero value has no deadline; the channel is made when a deadline is set
// or someone waits, so that a connection nobody blocks on has none.
type deadline struct {
	mu      sync.Mutex // guards timer and expired
	timer   Timer
	expired chan struct{} // nil until needed
}

func newDeadline() *deadline { return new(deadline) }

// set arms the deadline for t on clock; the zero time disarms it.
func (d *deadline) set(clock Clock, t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.expired // the timer fired: wait for it to close the channel
	}
	d.timer = nil
	if d.expired != nil {
		select {
		case <-d.expired:
			d.expired = nil // passed: the next deadline or waiter makes a new one
		default:
		}
	}
	if t.IsZero() {
		return
	}
	if d.expired == nil {
		d.expired = make(chan struct{})
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
	if d.expired == nil {
		d.expired = make(chan struct{})
	}
	return d.expired
}
