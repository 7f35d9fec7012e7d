package stack

import (
	"github.com/ustack/ustack/internal/tcpdemux"
	"github.com/ustack/ustack/tcp"
)

// DefaultMaxTimeWait is the number of TIME-WAIT records a stack keeps
// when Options.MaxTimeWait is zero: Linux's tcp_max_tw_buckets on a
// machine of some memory (it scales the default with the hash table).
const DefaultMaxTimeWait = tcpdemux.DefaultMaxTimeWait

// enterTimeWait replaces ep, a connection that c.TimeWait compacted, by its
// record r: ep leaves the connection table and the timer heap, r enters
// the demultiplexer's TIME-WAIT records. When they are full, the
// connection closes without TIME-WAIT, as Linux does past
// tcp_max_tw_buckets (counted in TimeWaitOverflows, Linux's
// TCPTimeWaitOverflow). ep.mu is held.
func (s *Stack) enterTimeWait(ep *tcpEndpoint, r tcp.TimeWait) {
	ep.removed = true
	s.unschedule(&ep.tm)
	if !s.tcp.demux.EnterTimeWait(ep, r) {
		inc(&s.ctr.get().TCP.TimeWaitOverflows)
		return
	}
	s.tcp.timerMu.Lock()
	wake := s.tcp.wakeAt.IsZero() || r.Deadline().Before(s.tcp.wakeAt)
	s.tcp.timerMu.Unlock()
	if wake {
		s.kick()
	}
}
