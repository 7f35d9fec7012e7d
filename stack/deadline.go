package stack

import (
	"sync"
	"sync/atomic"
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

// passed reports whether the deadline is set and has passed.
func (d *deadline) passed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.expired == nil {
		return false
	}
	select {
	case <-d.expired:
		return true
	default:
		return false
	}
}

// lazyDeadline is a deadline allocated on first use: a connection whose
// deadlines are never set and that never blocks carries one pointer.
type lazyDeadline struct {
	p atomic.Pointer[deadline]
}

// get returns the deadline, making it on first use.
func (l *lazyDeadline) get() *deadline {
	if d := l.p.Load(); d != nil {
		return d
	}
	l.p.CompareAndSwap(nil, new(deadline))
	return l.p.Load()
}

// set arms the deadline for t on clock; the zero time disarms it (and
// costs nothing when no deadline was ever made).
func (l *lazyDeadline) set(clock Clock, t time.Time) {
	if t.IsZero() && l.p.Load() == nil {
		return
	}
	l.get().set(clock, t)
}

// passed reports whether the deadline is set and has passed; it costs one
// atomic load when no deadline was ever made.
func (l *lazyDeadline) passed() bool {
	d := l.p.Load()
	return d != nil && d.passed()
}

// wait returns a channel that is closed once the deadline has passed.
func (l *lazyDeadline) wait() <-chan struct{} { return l.get().wait() }
