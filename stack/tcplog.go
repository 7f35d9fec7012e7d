package stack

import (
	"context"
	"errors"
	"log/slog"

	"github.com/ustack/ustack/tcp"
)

// The debug events a connection logs, once each, as Options.Logger
// documents.
const (
	eventOpened  = "tcp connection opened"
	eventClosed  = "tcp connection closed"
	eventReset   = "tcp connection reset"
	eventGivenUp = "tcp connection given up"
)

// logOpenedLocked logs eventOpened the first time ep's connection is
// established; ep.mu is held. It costs a flag test per call, and a call
// to the handler's Enabled once per connection.
func (ep *tcpEndpoint) logOpenedLocked() {
	if ep.logged&loggedOpen != 0 || !ep.c.Established() {
		return
	}
	ep.logged |= loggedOpen
	l := ep.s.log
	if !l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	t := ep.c.Tuple()
	l.LogAttrs(context.Background(), slog.LevelDebug, eventOpened,
		slog.String("local", t.Local.String()), slog.String("remote", t.Remote.String()))
}

// logEndedLocked logs how ep's connection ended, once: reset by the peer
// (ErrConnectionReset, ErrConnectionRefused), given up (retransmissions
// or keepalives unanswered, ErrTimeout, or a hard ICMP error), or closed
// (FINs exchanged, or aborted by the user or the stack's Close); ep.mu is
// held.
func (ep *tcpEndpoint) logEndedLocked() {
	if ep.logged&loggedEnd != 0 {
		return
	}
	ep.logged |= loggedEnd
	l := ep.s.log
	if !l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	err := ep.c.Err()
	msg := eventGivenUp
	switch {
	case err == nil, errors.Is(err, tcp.ErrConnectionAborted), errors.Is(err, tcp.ErrClosed):
		msg = eventClosed
	case errors.Is(err, tcp.ErrConnectionReset), errors.Is(err, tcp.ErrConnectionRefused):
		msg = eventReset
	}
	t := ep.c.Tuple()
	errText := "none"
	if err != nil {
		errText = err.Error()
	}
	l.LogAttrs(context.Background(), slog.LevelDebug, msg,
		slog.String("local", t.Local.String()), slog.String("remote", t.Remote.String()),
		slog.String("err", errText))
}

// Bits of tcpEndpoint.logged.
const (
	loggedOpen uint8 = 1 << iota
	loggedEnd
)
