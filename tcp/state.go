package tcp

import "errors"

// State is a connection state of RFC 9293 §3.3.2. Only the eleven states of
// the RFC are values of State; socket-lifecycle facts (accepted, orphaned)
// are kept elsewhere.
type State uint8

// The states of RFC 9293 §3.3.2.
const (
	StateClosed      State = iota // CLOSED
	StateListen                   // LISTEN
	StateSynSent                  // SYN-SENT
	StateSynReceived              // SYN-RECEIVED
	StateEstablished              // ESTABLISHED
	StateFinWait1                 // FIN-WAIT-1
	StateFinWait2                 // FIN-WAIT-2
	StateCloseWait                // CLOSE-WAIT
	StateClosing                  // CLOSING
	StateLastAck                  // LAST-ACK
	StateTimeWait                 // TIME-WAIT
)

var stateNames = [...]string{
	StateClosed:      "CLOSED",
	StateListen:      "LISTEN",
	StateSynSent:     "SYN-SENT",
	StateSynReceived: "SYN-RECEIVED",
	StateEstablished: "ESTABLISHED",
	StateFinWait1:    "FIN-WAIT-1",
	StateFinWait2:    "FIN-WAIT-2",
	StateCloseWait:   "CLOSE-WAIT",
	StateClosing:     "CLOSING",
	StateLastAck:     "LAST-ACK",
	StateTimeWait:    "TIME-WAIT",
}

// String returns the RFC name of the state, such as "SYN-RECEIVED".
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "State(" + itoa(int(s)) + ")"
}

// synchronized reports whether s is one of the synchronized states of RFC
// 9293 §3.5 (ESTABLISHED and every state after it).
func (s State) synchronized() bool { return s >= StateEstablished }

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// timeoutError is the error of a connection that gave up retransmitting.
type timeoutError struct{}

// Error returns the error text.
func (timeoutError) Error() string { return "tcp: connection timed out" }

// Timeout reports true: the error is a timeout (net.Error).
func (timeoutError) Timeout() bool { return true }

// Temporary reports true, as for other timeouts of package net.
func (timeoutError) Temporary() bool { return true }

// Errors that end a connection or refuse a call; the stack maps them to
// errnos inside *net.OpError. Test them with errors.Is.
var (
	// ErrConnectionRefused: a RST answered our SYN (RFC 9293 §3.10.7.3).
	ErrConnectionRefused = errors.New("tcp: connection refused")
	// ErrConnectionReset: the peer reset a synchronized connection (RFC 9293 §3.10.7.4, second step).
	ErrConnectionReset = errors.New("tcp: connection reset by peer")
	// ErrTimeout: retransmissions or keepalive probes went unanswered (RFC 9293 §3.8.3,
	// RFC 1122 §4.2.3.5 R2). It has a Timeout() method that reports true.
	ErrTimeout error = timeoutError{}
	// ErrConnectionAborted: the connection was aborted locally (ABORT, RFC 9293 §3.10.5).
	ErrConnectionAborted = errors.New("tcp: connection aborted")
	// ErrClosed: the call is not allowed because the connection is closing or closed
	// (RFC 9293 §3.10.2 "error: connection closing").
	ErrClosed = errors.New("tcp: connection closed")
)
