package fault

import (
	"time"

	"golang.org/x/sys/unix"
)

// fineSleep sleeps for d with the kernel's high-resolution timers
// (nanosleep(2)), where the Go runtime's timers on Linux wake up to a
// millisecond late: a 0.5 ms delay would become 1 ms or more.
func fineSleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	for unix.Nanosleep(&ts, &ts) == unix.EINTR {
	}
}
