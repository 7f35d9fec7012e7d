//go:build !linux

package link

import "errors"

var errNoTAP = errors.New("link: TAP and TUN devices are supported on Linux only")

// OpenTAP is supported on Linux only.
func OpenTAP(name string, opts TAPOptions) (*TAP, error) { return nil, errNoTAP }

// OpenTUN is supported on Linux only.
func OpenTUN(name string, opts TUNOptions) (*TUN, error) { return nil, errNoTAP }
