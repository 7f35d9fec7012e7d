package stack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/tcp"
)

// eventLog is a slog.Handler that records each record's message and its
// "local" and "remote" attributes, and signals every record.
type eventLog struct {
	mu     sync.Mutex
	events []string // "message local remote"
	added  chan struct{}
}

func (h *eventLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *eventLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *eventLog) WithGroup(string) slog.Handler            { return h }
func (h *eventLog) Handle(_ context.Context, r slog.Record) error {
	local, remote := "", ""
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "local":
			local = a.Value.String()
		case "remote":
			remote = a.Value.String()
		}
		return true
	})
	h.mu.Lock()
	h.events = append(h.events, r.Message+" "+local+" "+remote)
	h.mu.Unlock()
	select {
	case h.added <- struct{}{}:
	default:
	}
	return nil
}

// waitEvent waits up to 10 s for an event that starts with want.
func (h *eventLog) waitEvent(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		h.mu.Lock()
		ok := slices.ContainsFunc(h.events, func(e string) bool { return strings.HasPrefix(e, want) })
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-h.added:
		case <-deadline:
			t.Fatalf("no event %q in %q", want, h.snapshot())
		}
	}
}

func (h *eventLog) snapshot() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

// TestConnectionEvents: the debug events Options.Logger documents appear
// once per connection, each for its own cause, and the counters Stats
// documents for the same causes agree: a connection closed with FINs
// (opened, closed), one reset by the peer (opened, reset) and a dial
// whose SYNs go unanswered (given up). Both stacks log to one handler:
// the server's side of the first two is opened and closed (the second
// aborted by its user).
func TestConnectionEvents(t *testing.T) {
	leakcheck.Check(t)
	h := &eventLog{added: make(chan struct{}, 1)}
	cfg := tcp.DefaultConfig()
	cfg.InitialRTO = 10 * time.Millisecond
	cfg.SynRetries = 2
	a, b := pair(t, Options{TCP: &cfg, Logger: slog.New(h)}, nil)

	// Closed: the server closes first, the client reads EOF and closes;
	// its LAST-ACK ends the connection.
	c, s := connectedPair(t, a, b)
	la := c.LocalAddr().String()
	h.waitEvent(t, eventOpened+" "+la)
	s.Close()
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after the peer's FIN: %v", err)
	}
	c.Close()
	h.waitEvent(t, eventClosed+" "+la)

	// Reset: the server aborts (SetLinger(0)), the client gets the RST.
	c, s = connectedPair(t, a, b)
	lb := c.LocalAddr().String()
	h.waitEvent(t, eventOpened+" "+lb)
	s.SetLinger(0)
	s.Close()
	h.waitEvent(t, eventReset+" "+lb)

	// Given up: SYNs to a gateway nobody owns are never answered.
	if err := a.AddRoute(ip.Route{Destination: netip.MustParsePrefix("192.0.2.0/24"), Gateway: netip.MustParseAddr("10.1.0.77")}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.DialTCP(ctx, netip.MustParseAddrPort("192.0.2.9:80")); !isTimeout(err) {
		t.Fatalf("dial to a silent address: %v, want a timeout", err)
	}
	h.waitEvent(t, eventGivenUp+" 10.1.0.1:")
	h.waitEvent(t, eventClosed+" "+s.LocalAddr().String()+" "+lb)

	c.Close()
	// Per stack (by the local address) and per event.
	want := map[string]int{
		"a " + eventOpened: 2, "a " + eventClosed: 1, "a " + eventReset: 1, "a " + eventGivenUp: 1,
		"b " + eventOpened: 2, "b " + eventClosed: 2,
	}
	got := map[string]int{}
	seen := map[string]bool{}
	for _, e := range h.snapshot() {
		if seen[e] {
			t.Errorf("event %q logged twice", e)
		}
		seen[e] = true
		who := "a "
		if strings.Contains(e, " "+addrB.Addr().String()+":7 ") {
			who = "b "
		}
		for _, k := range []string{eventOpened, eventClosed, eventReset, eventGivenUp} {
			if strings.HasPrefix(e, k+" ") {
				got[who+k]++
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events %v,\n want %v: %q", got, want, h.snapshot())
	}
	st := a.Stats().TCP
	if st.ActiveOpens != 3 || st.EstablishedResets != 1 || st.ResetsReceived != 1 || st.ConnectionTimeouts != 1 {
		t.Errorf("ActiveOpens %d, EstablishedResets %d, ResetsReceived %d, ConnectionTimeouts %d; want 3, 1, 1, 1",
			st.ActiveOpens, st.EstablishedResets, st.ResetsReceived, st.ConnectionTimeouts)
	}
}
