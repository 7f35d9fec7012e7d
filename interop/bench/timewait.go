package bench

// portTimeWait and the port after it serve the TIME-WAIT test.
const portTimeWait = 5010

// MeasureTimeWaitHeap opens n connections one after another, each closed
// by the server first (as an HTTP server with "Connection: close" does),
// so that every server-side connection ends in TIME-WAIT, and returns the
// growth of the live heap per connection: what a stack keeps of a
// connection in TIME-WAIT (RFC 9293 §3.10.7.4 keeps it 2*MSL, longer than
// the run).
func MeasureTimeWaitHeap(p *Pair, n int) (float64, error) {
	// A first round grows the tables and pools that every connection
	// shares (on its own port: the connections in TIME-WAIT hold theirs).
	if _, err := connRate(p, portTimeWait, min(n, 100), 0); err != nil {
		return 0, err
	}
	before := liveHeap()
	if _, err := connRate(p, portTimeWait+1, n, 0); err != nil {
		return 0, err
	}
	after := liveHeap()
	return (float64(after) - float64(before)) / float64(n), nil
}
