package trace

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/stack"
)

// writes records every Write call apart.
type writes struct {
	mu     sync.Mutex
	calls  []string
	notify chan struct{} // if not nil, signalled after each Write
}

func (w *writes) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.calls = append(w.calls, string(b))
	w.mu.Unlock()
	if w.notify != nil {
		select {
		case w.notify <- struct{}{}:
		default:
		}
	}
	return len(b), nil
}

func (w *writes) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.calls...)
}

// Frames traced by several goroutines come out whole, one Write each.
func TestWriterConcurrent(t *testing.T) {
	var out writes
	w := NewWriter(&out, nil)
	cases := goldenCases()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				f := cases[(g+i)%len(cases)].f
				w.Frame(&f)
			}
		}()
	}
	wg.Wait()
	calls := out.all()
	if len(calls) != 200 {
		t.Fatalf("%d writes, want 200", len(calls))
	}
	for _, c := range calls {
		checkShape(t, "concurrent", []byte(c))
	}
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestWriterErrorsCounted(t *testing.T) {
	w := NewWriter(failing{}, time.Now)
	f := goldenCases()[0].f
	w.Frame(&f)
	w.Event("x")
	if w.Errors() != 2 {
		t.Errorf("Errors = %d, want 2", w.Errors())
	}
}

// The decorator traces both directions and passes frames and metadata on.
func TestEndpoint(t *testing.T) {
	var out writes
	w := NewWriter(&out, nil)
	a, b := link.NewPipe(link.PipeOptions{Offloads: link.Offloads{TxChecksum: true, RxChecksum: true}})
	defer b.Close()
	ta, err := NewEndpoint(a, w, "a")
	if err != nil {
		t.Fatal(err)
	}
	tb, _ := NewEndpoint(b, w, "b")
	if _, err := NewEndpoint(nil, w, "x"); err == nil {
		t.Error("NewEndpoint(nil) succeeded")
	}
	f := goldenCases()[0].f.Data // an ARP request
	if err := ta.WriteFrame(f); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2000)
	var o ip.Offload
	n, err := tb.ReadFrameOffload(buf, &o)
	if err != nil || n != len(f) {
		t.Fatalf("read %d, %v", n, err)
	}
	seg := goldenCases()[7].f // TCP with a partial checksum (its GSO dropped below)
	meta := ip.Offload{NeedsChecksum: true, ChecksumStart: 20, ChecksumOffset: 16}
	if err := ta.WriteFrameOffload(seg.Data, &meta); err != nil {
		t.Fatal(err)
	}
	if n, err = tb.ReadFrameOffload(buf, &o); err != nil || o != meta {
		t.Fatalf("read %d, %v, metadata %+v", n, err, o)
	}
	calls := out.all()
	want := []string{"out a 42 bytes\n", "in b 42 bytes\n", "out a 1054 bytes\n", "in b 1054 bytes\n"}
	if len(calls) != len(want) {
		t.Fatalf("%d traces: %q", len(calls), calls)
	}
	for i, c := range calls {
		if !strings.HasPrefix(c, want[i]) {
			t.Errorf("trace %d begins %q, want %q", i, strings.SplitN(c, "\n", 2)[0], want[i])
		}
	}
	if !strings.Contains(calls[3], "cksum partial") {
		t.Errorf("partial checksum not shown as such:\n%s", calls[3])
	}
	if ta.MTU() != 1500 || ta.HardwareAddr() != a.HardwareAddr() || !ta.Offloads().TxChecksum {
		t.Error("MTU, HardwareAddr or Offloads not the wrapped endpoint's")
	}
	if err := ta.Close(); err != nil {
		t.Fatal(err)
	}
}

// A stack over traced endpoints, its connection events through
// EventHandler: a TCP connection's frames and its opened and closed
// lines appear in the trace.
func TestEventHandlerWithStack(t *testing.T) {
	leakcheck.Check(t)
	out := writes{notify: make(chan struct{}, 1)}
	w := NewWriter(&out, nil)
	a, b := link.NewPipe(link.PipeOptions{})
	ta, _ := NewEndpoint(a, w, "a")
	sa := stack.New(stack.Options{Logger: slog.New(NewEventHandler(w))})
	sb := stack.New(stack.Options{})
	defer sb.Close()
	defer sa.Close()
	if _, err := sa.AddNIC(ta, netip.MustParsePrefix("10.9.0.1/24")); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.AddNIC(b, netip.MustParsePrefix("10.9.0.2/24")); err != nil {
		t.Fatal(err)
	}
	l, err := sb.Listen("tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := sa.DialContext(ctx, "tcp", "10.9.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello"))
	c.Close()
	// Wait for the closed event: both FINs exchanged.
	deadline := time.After(5 * time.Second)
	for {
		all := strings.Join(out.all(), "")
		if strings.Contains(all, " closed") {
			for _, want := range []string{"L3 ARP who-has 10.9.0.2", "[S] seq", "[S.] seq", "len 5", "TCP 10.9.0.1:", " - 10.9.0.2:7 opened"} {
				if !strings.Contains(all, want) {
					t.Errorf("trace lacks %q:\n%s", want, all)
				}
			}
			return
		}
		select {
		case <-deadline:
			t.Fatalf("no closed event in the trace:\n%s", all)
		case <-out.notify:
		}
	}
}

func TestEventHandlerWarn(t *testing.T) {
	var out writes
	l := slog.New(NewEventHandler(NewWriter(&out, nil))).With("nic", 1)
	l.Info("ignored")
	l.Warn("read failed", "err", "boom")
	l.Debug("tcp connection reset", "local", "1.2.3.4:1", "remote", "5.6.7.8:2", "err", "connection reset")
	got := out.all()
	want := []string{"stack: read failed nic=1 err=boom\n", "TCP 1.2.3.4:1 - 5.6.7.8:2 reset: connection reset\n"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("lines %q, want %q", got, want)
	}
}
