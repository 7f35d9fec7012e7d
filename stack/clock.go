package stack

import (
	"sort"
	"sync"
	"time"
)

// Clock is the stack's only source of time. The protocol cores never read
// a clock: the stack passes Now() into them and sleeps on Timers until the
// earliest deadline they report.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f in its own goroutine after d, like time.AfterFunc;
	// the returned Timer's C is nil.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a one-shot timer of a Clock, like time.Timer.
type Timer interface {
	// C returns the channel on which the time is delivered.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was active.
	Stop() bool
	// Reset changes the timer to fire after d.
	Reset(d time.Duration)
	// ResetAt changes the timer to fire when its clock reaches t. Unlike
	// Reset(t.Sub(Now())), it cannot miss a clock that moves between the
	// two calls (as a ManualClock can, from another goroutine).
	ResetAt(t time.Time)
}

// SystemClock returns a Clock backed by the time package.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

func (systemClock) AfterFunc(d time.Duration, f func()) Timer {
	return sysTimer{time.AfterFunc(d, f)}
}

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time   { return t.t.C }
func (t sysTimer) Stop() bool            { return t.t.Stop() }
func (t sysTimer) Reset(d time.Duration) { t.t.Reset(d) }
func (t sysTimer) ResetAt(at time.Time)  { t.t.Reset(time.Until(at)) }

// ManualClock is a Clock that moves only when told to, for tests that
// must not sleep. Timers fire during Advance or Set, in deadline order.
type ManualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*manualTimer]struct{}
}

// NewManualClock returns a ManualClock reading start.
func NewManualClock(start time.Time) *ManualClock {
	return &ManualClock{now: start, timers: make(map[*manualTimer]struct{})}
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires when the clock reaches Now()+d.
func (c *ManualClock) NewTimer(d time.Duration) Timer {
	t := &manualTimer{c: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// AfterFunc calls f in its own goroutine when the clock reaches Now()+d.
func (c *ManualClock) AfterFunc(d time.Duration, f func()) Timer {
	t := &manualTimer{c: c, f: f}
	t.Reset(d)
	return t
}

// Advance moves the clock forward by d, firing every timer that comes due.
func (c *ManualClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Set moves the clock to t (never backwards), firing every timer that
// comes due.
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	if t.After(c.now) {
		c.now = t
	}
	var due []*manualTimer
	for tm := range c.timers {
		if !tm.when.After(c.now) {
			due = append(due, tm)
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].when.Before(due[j].when) })
	now := c.now
	for _, tm := range due {
		delete(c.timers, tm)
	}
	c.mu.Unlock()
	for _, tm := range due {
		tm.fire(now)
	}
}

// Pending returns how many timers are waiting to fire.
func (c *ManualClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

type manualTimer struct {
	c    *ManualClock
	ch   chan time.Time // nil for AfterFunc timers
	f    func()         // nil for NewTimer timers
	when time.Time
}

func (t *manualTimer) C() <-chan time.Time { return t.ch }

func (t *manualTimer) fire(now time.Time) {
	if t.f != nil {
		go t.f()
		return
	}
	select {
	case t.ch <- now:
	default:
	}
}

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, ok := t.c.timers[t]
	delete(t.c.timers, t)
	return ok
}

func (t *manualTimer) Reset(d time.Duration) {
	t.c.mu.Lock()
	at := t.c.now.Add(d)
	t.c.mu.Unlock()
	t.ResetAt(at)
}

func (t *manualTimer) ResetAt(at time.Time) {
	t.c.mu.Lock()
	t.when = at
	fire := !at.After(t.c.now)
	if !fire {
		t.c.timers[t] = struct{}{}
	} else {
		delete(t.c.timers, t)
	}
	now := t.c.now
	t.c.mu.Unlock()
	if fire {
		t.fire(now)
	}
}
