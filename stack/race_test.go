//go:build race

package stack

// raceEnabled reports that the race detector is on.
const raceEnabled = true
