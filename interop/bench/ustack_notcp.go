//go:build !ustacktcp

package bench

import "fmt"

// UstackTCP reports whether this build measures ustack's TCP. It is false
// until ustack's stack package offers ListenTCP and DialTCP.
const UstackTCP = false

// UstackPair would return two ustack stacks over link.Pipe; ustack has no
// TCP yet.
func UstackPair(mtu int) (*Pair, error) {
	return nil, fmt.Errorf("ustack pair: %w: ustack has no TCP yet", ErrUnavailable)
}

// UstackToGVisor would return a ustack client and a gVisor server over
// gvnet.Link; ustack has no TCP yet.
func UstackToGVisor(mtu int) (*Pair, error) {
	return nil, fmt.Errorf("ustack→gVisor pair: %w: ustack has no TCP yet", ErrUnavailable)
}

// GVisorToUstack would return a gVisor client and a ustack server over
// gvnet.Link; ustack has no TCP yet.
func GVisorToUstack(mtu int) (*Pair, error) {
	return nil, fmt.Errorf("gVisor→ustack pair: %w: ustack has no TCP yet", ErrUnavailable)
}
