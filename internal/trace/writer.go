package trace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
)

// Writer writes traces to an io.Writer, the lines of each frame or event
// in one Write, so that frames traced by several goroutines never
// interleave. A failed Write is counted (Errors), not returned.
type Writer struct {
	now func() time.Time // nil: no timestamps

	mu     sync.Mutex // guards w, buf and errors
	w      io.Writer
	buf    []byte
	errors uint64
}

// NewWriter returns a Writer to w. now stamps each frame; nil prints no
// times (golden tests).
func NewWriter(w io.Writer, now func() time.Time) *Writer {
	return &Writer{w: w, now: now}
}

// Frame writes the trace of f, stamped with the Writer's clock if f has
// no Time.
func (w *Writer) Frame(f *Frame) {
	if f.Time.IsZero() && w.now != nil {
		f.Time = w.now()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = Append(w.buf[:0], f)
	w.write()
}

// Event writes one line that is not a frame's (a connection's state
// change), at depth 1 under the frames.
func (w *Writer) Event(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = w.buf[:0]
	if w.now != nil {
		w.buf = w.now().AppendFormat(w.buf, "15:04:05.000000 ")
	}
	w.buf = line(w.buf, 0, format, args...)
	w.write()
}

func (w *Writer) write() {
	if _, err := w.w.Write(w.buf); err != nil {
		w.errors++
	}
}

// Errors counts the traces lost because the io.Writer failed.
func (w *Writer) Errors() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errors
}

// Endpoint is a link decorator that traces every frame read from and
// written to the endpoint it wraps, then passes it on; an
// OffloadEndpoint's metadata passes through too.
type Endpoint struct {
	ep  link.Endpoint
	oep link.OffloadEndpoint // ep when it carries offload metadata, else nil
	w   *Writer
	nic string
	raw bool
}

var _ link.OffloadEndpoint = (*Endpoint)(nil)

// NewEndpoint returns an Endpoint that traces the traffic of ep, named
// nic in the trace, to w.
func NewEndpoint(ep link.Endpoint, w *Writer, nic string) (*Endpoint, error) {
	if ep == nil || w == nil {
		return nil, errors.New("trace: nil endpoint or writer")
	}
	e := &Endpoint{ep: ep, w: w, nic: nic, raw: ep.HardwareAddr().IsZero()}
	if oep, ok := ep.(link.OffloadEndpoint); ok {
		e.oep = oep
	}
	return e, nil
}

func (e *Endpoint) trace(dir Direction, b []byte, o *ip.Offload) {
	f := Frame{Dir: dir, NIC: e.nic, Data: b, Raw: e.raw}
	if o != nil {
		f.Offload = *o
	}
	e.w.Frame(&f)
}

// ReadFrame reads a frame and traces it.
func (e *Endpoint) ReadFrame(b []byte) (int, error) {
	n, err := e.ep.ReadFrame(b)
	if err == nil {
		e.trace(In, b[:n], nil)
	}
	return n, err
}

// WriteFrame traces a frame and writes it.
func (e *Endpoint) WriteFrame(b []byte) error {
	e.trace(Out, b, nil)
	return e.ep.WriteFrame(b)
}

// ReadFrameOffload reads a frame with its metadata and traces it.
func (e *Endpoint) ReadFrameOffload(b []byte, o *ip.Offload) (int, error) {
	if e.oep == nil {
		*o = ip.Offload{}
		return e.ReadFrame(b)
	}
	n, err := e.oep.ReadFrameOffload(b, o)
	if err == nil {
		e.trace(In, b[:n], o)
	}
	return n, err
}

// WriteFrameOffload traces a frame with its metadata and writes it.
func (e *Endpoint) WriteFrameOffload(b []byte, o *ip.Offload) error {
	if e.oep == nil {
		if *o != (ip.Offload{}) {
			return fmt.Errorf("%w: the traced endpoint carries no metadata", link.ErrOffload)
		}
		return e.WriteFrame(b)
	}
	e.trace(Out, b, o)
	return e.oep.WriteFrameOffload(b, o)
}

// Offloads returns the wrapped endpoint's offloads (none if it has no
// metadata).
func (e *Endpoint) Offloads() link.Offloads {
	if e.oep == nil {
		return link.Offloads{}
	}
	return e.oep.Offloads()
}

// MTU returns the wrapped endpoint's MTU.
func (e *Endpoint) MTU() int { return e.ep.MTU() }

// HardwareAddr returns the wrapped endpoint's hardware address.
func (e *Endpoint) HardwareAddr() link.MAC { return e.ep.HardwareAddr() }

// Close closes the wrapped endpoint.
func (e *Endpoint) Close() error { return e.ep.Close() }

// EventHandler is a slog.Handler for stack.Options.Logger that writes the
// stack's TCP connection events ("tcp connection opened", "... closed",
// "... reset", "... given up", at slog.LevelDebug) as trace lines,
//
//	TCP 10.0.0.2:7 - 10.0.0.1:40000 opened
//
// and its other messages at Warn and above as "stack: message key=value".
type EventHandler struct {
	w     *Writer
	attrs []slog.Attr
}

// NewEventHandler returns an EventHandler writing to w.
func NewEventHandler(w *Writer) *EventHandler { return &EventHandler{w: w} }

// connEventPrefix begins the messages of the stack's connection events
// (stack.Options.Logger).
const connEventPrefix = "tcp connection "

// Enabled reports whether a record of level l is written: debug (the
// connection events) and above.
func (h *EventHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelDebug }

// Handle writes r as a trace line.
func (h *EventHandler) Handle(_ context.Context, r slog.Record) error {
	var local, remote, errText string
	var rest strings.Builder
	each := func(a slog.Attr) bool {
		switch a.Key {
		case "local":
			local = a.Value.String()
		case "remote":
			remote = a.Value.String()
		case "err":
			errText = a.Value.String()
		default:
			fmt.Fprintf(&rest, " %s=%v", a.Key, a.Value)
		}
		return true
	}
	for _, a := range h.attrs {
		each(a)
	}
	r.Attrs(each)
	if what, ok := strings.CutPrefix(r.Message, connEventPrefix); ok {
		if errText != "" && errText != "none" {
			h.w.Event("TCP %s - %s %s: %s", local, remote, what, errText)
		} else {
			h.w.Event("TCP %s - %s %s", local, remote, what)
		}
		return nil
	}
	if r.Level < slog.LevelWarn {
		return nil
	}
	for _, kv := range [][2]string{{"local", local}, {"remote", remote}, {"err", errText}} {
		if kv[1] != "" {
			fmt.Fprintf(&rest, " %s=%s", kv[0], kv[1])
		}
	}
	h.w.Event("stack: %s%s", r.Message, rest.String())
	return nil
}

// WithAttrs returns a handler that adds attrs to every record.
func (h *EventHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &EventHandler{w: h.w, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

// WithGroup returns h: groups are not shown.
func (h *EventHandler) WithGroup(string) slog.Handler { return h }
