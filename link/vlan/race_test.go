//go:build race

package vlan_test

// raceEnabled reports that the race detector is on (it allocates).
const raceEnabled = true
