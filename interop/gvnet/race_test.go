//go:build race

package gvnet

// raceEnabled reports a -race build, in which everything runs several
// times slower.
const raceEnabled = true
