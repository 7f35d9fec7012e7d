package ip

import "net/netip"

// Tuple is a connection's 4-tuple (RFC 9293 §3.3.1: "a pair of sockets
// uniquely identifies each connection"), seen from our side: Local is our
// address and port, Remote the peer's. It is comparable and usable as a
// map key.
type Tuple struct {
	Local, Remote netip.AddrPort
}

// String returns the tuple as "local <-> remote", for example
// "10.0.0.2:80 <-> 10.0.0.1:41234".
func (t Tuple) String() string {
	return t.Local.String() + " <-> " + t.Remote.String()
}

// Reverse returns the tuple seen from the peer's side: Local and Remote
// swapped.
func (t Tuple) Reverse() Tuple {
	return Tuple{Local: t.Remote, Remote: t.Local}
}
