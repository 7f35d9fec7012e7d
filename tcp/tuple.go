package tcp

import "github.com/ustack/ustack/ip"

// Tuple is a connection's 4-tuple, shared by every transport: see
// ip.Tuple.
type Tuple = ip.Tuple
