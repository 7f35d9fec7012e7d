//go:build !linux

package fault

import "time"

// fineSleep sleeps for d; elsewhere than on Linux, with the runtime's
// timers.
func fineSleep(d time.Duration) { time.Sleep(d) }
