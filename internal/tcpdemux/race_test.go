//go:build race

package tcpdemux

// raceEnabled reports that the race detector is on.
const raceEnabled = true
