package fault

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/link"
)

const frameLen = 64

// numbered returns a frame whose payload starts with seq.
func numbered(seq uint32) []byte {
	b := make([]byte, frameLen)
	link.PutEthernetHeader(b, link.MAC{2, 0, 0, 0, 0, 2}, link.MAC{2, 0, 0, 0, 0, 1}, 0x88b5)
	binary.BigEndian.PutUint32(b[link.EthernetHeaderLen:], seq)
	return b
}

func seqOf(b []byte) uint32 { return binary.BigEndian.Uint32(b[link.EthernetHeaderLen:]) }

// pipe returns a Pipe large enough to queue n small frames per direction.
func pipe(t *testing.T, n int) (a, b *link.PipeEnd) {
	a, b = link.NewPipe(link.PipeOptions{MTU: 100, QueueLen: n})
	t.Cleanup(func() { a.Close() })
	return a, b
}

// drain reads every frame queued on ep without blocking past the last
// one: it stops when the peer (already closed by the caller) reports
// net.ErrClosed.
func drain(t *testing.T, ep link.Endpoint) [][]byte {
	t.Helper()
	var out [][]byte
	buf := make([]byte, 200)
	for {
		n, err := ep.ReadFrame(buf)
		if errors.Is(err, net.ErrClosed) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(buf[:n]))
	}
}

// sendTx writes n numbered frames through a fault Endpoint with cfg and
// returns what arrives at the other end of the pipe, and the counters.
func sendTx(t *testing.T, cfg Config, n int) ([][]byte, Stats) {
	t.Helper()
	a, b := pipe(t, 3*n)
	f := New(a, cfg)
	for i := range n {
		if err := f.WriteFrame(numbered(uint32(i))); err != nil {
			t.Fatal(err)
		}
	}
	s := f.Stats()
	f.Close() // closes a; b drains what was queued
	return drain(t, b), s
}

// recvRx writes n numbered frames into the pipe and reads them through a
// fault Endpoint with cfg until the pipe is drained.
func recvRx(t *testing.T, cfg Config, n int) ([][]byte, Stats) {
	t.Helper()
	a, b := pipe(t, n)
	for i := range n {
		if err := b.WriteFrame(numbered(uint32(i))); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	f := New(a, cfg)
	defer f.Close()
	return drain(t, f), f.Stats()
}

func seqs(frames [][]byte) []uint32 {
	s := make([]uint32, len(frames))
	for i, f := range frames {
		s[i] = seqOf(f)
	}
	return s
}

func TestProportions(t *testing.T) {
	const n = 10000
	within := func(t *testing.T, what string, got uint64, p float64) {
		t.Helper()
		lo, hi := uint64(float64(n)*p*0.9), uint64(float64(n)*p*1.1)
		if got < lo || got > hi {
			t.Errorf("%s = %d of %d, want %d..%d", what, got, n, lo, hi)
		}
	}
	for _, dir := range []string{"tx", "rx"} {
		t.Run(dir, func(t *testing.T) {
			im := Impairment{Drop: 0.2, Duplicate: 0.1, Corrupt: 0.1, Reorder: 0.1}
			var got [][]byte
			var c Counters
			if dir == "tx" {
				frames, s := sendTx(t, Config{Seed: 1, Tx: im}, n)
				got, c = frames, s.Tx
			} else {
				frames, s := recvRx(t, Config{Seed: 1, Rx: im}, n)
				got, c = frames, s.Rx
			}
			t.Logf("%d frames: %+v, %d delivered", n, c, len(got))
			within(t, "Dropped", c.Dropped, 0.2)
			within(t, "Duplicated", c.Duplicated, 0.1*0.8)
			within(t, "Corrupted", c.Corrupted, 0.1*0.8)
			// A frame is held back only when none is held already.
			within(t, "Reordered", c.Reordered, 0.1*0.8*0.9)
			// Every reordered frame is released by a later one, except
			// possibly the last.
			want := n - int(c.Dropped) + int(c.Duplicated)
			if len(got) != want && len(got) != want-1 && len(got) != want-2 {
				t.Errorf("%d frames delivered, want %d (n - dropped + duplicated)", len(got), want)
			}
		})
	}
}

func TestReproducible(t *testing.T) {
	im := Impairment{Drop: 0.1, Duplicate: 0.1, Corrupt: 0.1, Reorder: 0.1}
	run := func(cfg Config) [][]byte {
		frames, _ := sendTx(t, cfg, 1000)
		return frames
	}
	first := run(Config{Seed: 42, Tx: im})
	second := run(Config{Seed: 42, Tx: im})
	if !slices.EqualFunc(first, second, bytes.Equal) {
		t.Errorf("two runs with seed 42 delivered different frames")
	}
	// The Rx stream does not perturb Tx decisions.
	withRx := run(Config{Seed: 42, Tx: im, Rx: Impairment{Drop: 0.5, Corrupt: 0.5}})
	if !slices.EqualFunc(first, withRx, bytes.Equal) {
		t.Errorf("Rx impairments changed the Tx decisions")
	}
	other := run(Config{Seed: 43, Tx: im})
	if slices.EqualFunc(first, other, bytes.Equal) {
		t.Errorf("seeds 42 and 43 delivered the same frames")
	}

	rx1, _ := recvRx(t, Config{Seed: 7, Rx: im}, 1000)
	rx2, _ := recvRx(t, Config{Seed: 7, Rx: im}, 1000)
	if !slices.EqualFunc(rx1, rx2, bytes.Equal) {
		t.Errorf("two Rx runs with seed 7 delivered different frames")
	}
}

func TestCorruptFlipsOneBit(t *testing.T) {
	for _, dir := range []string{"tx", "rx"} {
		t.Run(dir, func(t *testing.T) {
			var got [][]byte
			var c Counters
			if dir == "tx" {
				frames, s := sendTx(t, Config{Seed: 3, Tx: Impairment{Corrupt: 1}}, 500)
				got, c = frames, s.Tx
			} else {
				frames, s := recvRx(t, Config{Seed: 3, Rx: Impairment{Corrupt: 1}}, 500)
				got, c = frames, s.Rx
			}
			if len(got) != 500 || c.Corrupted != 500 {
				t.Fatalf("%d frames, %d corrupted; want 500, 500", len(got), c.Corrupted)
			}
			positions := map[int]bool{}
			for i, f := range got {
				want := numbered(uint32(i))
				flipped := 0
				for j := range f {
					if d := f[j] ^ want[j]; d != 0 {
						flipped += bits.OnesCount8(d)
						positions[j] = true
					}
				}
				if flipped != 1 {
					t.Fatalf("frame %d: %d bits flipped, want 1", i, flipped)
				}
			}
			if len(positions) < frameLen/2 {
				t.Errorf("flips hit only %d distinct bytes of %d", len(positions), frameLen)
			}
		})
	}
}

func TestCorruptDoesNotModifyCallerBuffer(t *testing.T) {
	a, _ := pipe(t, 10)
	f := New(a, Config{Tx: Impairment{Corrupt: 1}})
	defer f.Close()
	b := numbered(5)
	if err := f.WriteFrame(b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, numbered(5)) {
		t.Errorf("WriteFrame modified the caller's frame")
	}
}

func TestReorderSwapsNeighbours(t *testing.T) {
	want := []uint32{1, 0, 3, 2, 5, 4, 7, 6}
	tx, s := sendTx(t, Config{Tx: Impairment{Reorder: 1}}, 8)
	if got := seqs(tx); !slices.Equal(got, want) {
		t.Errorf("Tx order %v, want %v", got, want)
	}
	if s.Tx.Reordered != 4 {
		t.Errorf("Reordered = %d, want 4", s.Tx.Reordered)
	}
	rx, _ := recvRx(t, Config{Rx: Impairment{Reorder: 1}}, 8)
	if got := seqs(rx); !slices.Equal(got, want) {
		t.Errorf("Rx order %v, want %v", got, want)
	}
}

func TestDuplicate(t *testing.T) {
	want := []uint32{0, 0, 1, 1, 2, 2}
	tx, _ := sendTx(t, Config{Tx: Impairment{Duplicate: 1}}, 3)
	if got := seqs(tx); !slices.Equal(got, want) {
		t.Errorf("Tx %v, want %v", got, want)
	}
	rx, _ := recvRx(t, Config{Rx: Impairment{Duplicate: 1}}, 3)
	if got := seqs(rx); !slices.Equal(got, want) {
		t.Errorf("Rx %v, want %v", got, want)
	}
}

func TestUntimedStartsNoGoroutine(t *testing.T) {
	a, _ := pipe(t, 10)
	before := runtime.NumGoroutine()
	f := New(a, Config{Tx: Impairment{Drop: 0.5}, Rx: Impairment{Reorder: 0.5}})
	if after := runtime.NumGoroutine(); after != before {
		t.Errorf("New started %d goroutines without timing", after-before)
	}
	f.Close()
}

func TestUntimedNoAllocs(t *testing.T) {
	a, b := pipe(t, 10)
	f := New(a, Config{Seed: 1, Tx: Impairment{Corrupt: 1}, Rx: Impairment{Corrupt: 1}})
	defer f.Close()
	frame := numbered(1)
	buf := make([]byte, 200)
	allocs := testing.AllocsPerRun(1000, func() {
		f.WriteFrame(frame)
		b.ReadFrame(buf)
		b.WriteFrame(frame)
		f.ReadFrame(buf)
	})
	if allocs != 0 {
		t.Errorf("untimed fault path allocates %v per frame", allocs)
	}
}

// receive reads one frame from ep with a timeout.
func receive(t *testing.T, ep link.Endpoint) []byte {
	t.Helper()
	ch := make(chan []byte, 1)
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 200)
		n, err := ep.ReadFrame(buf)
		if err != nil {
			errc <- err
			return
		}
		ch <- buf[:n]
	}()
	select {
	case f := <-ch:
		return f
	case err := <-errc:
		t.Fatalf("ReadFrame: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no frame within 5 s")
	}
	return nil
}

func TestTxDelayAndOrder(t *testing.T) {
	leakcheck.Check(t)
	a, b := pipe(t, 100)
	const delay = 30 * time.Millisecond
	f := New(a, Config{Seed: 9, Tx: Impairment{Delay: delay, Jitter: 20 * time.Millisecond}})
	t.Cleanup(func() { f.Close() })
	start := time.Now()
	for i := range 20 {
		if err := f.WriteFrame(numbered(uint32(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		got := receive(t, b)
		if i == 0 {
			if el := time.Since(start); el < delay {
				t.Errorf("first frame arrived after %v, before the %v delay", el, delay)
			}
		}
		if seqOf(got) != uint32(i) {
			t.Fatalf("frame %d arrived as %d: jitter reordered", i, seqOf(got))
		}
	}
	if s := f.Stats().Tx; s.Delayed != 20 {
		t.Errorf("Delayed = %d, want 20", s.Delayed)
	}
}

func TestRxDelay(t *testing.T) {
	leakcheck.Check(t)
	a, b := pipe(t, 100)
	const delay = 30 * time.Millisecond
	f := New(a, Config{Rx: Impairment{Delay: delay}})
	t.Cleanup(func() { f.Close() })
	start := time.Now()
	if err := b.WriteFrame(numbered(7)); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, f); seqOf(got) != 7 {
		t.Fatalf("got frame %d", seqOf(got))
	}
	if el := time.Since(start); el < delay {
		t.Errorf("frame read after %v, before the %v delay", el, delay)
	}
	// Closing the peer ends the stream after the queue drains.
	b.Close()
	buf := make([]byte, 200)
	if _, err := f.ReadFrame(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrame after the peer closed = %v, want net.ErrClosed", err)
	}
}

func TestRateLimit(t *testing.T) {
	leakcheck.Check(t)
	a, b := pipe(t, 100)
	// 10 frames of 64 bytes at 6400 B/s occupy the link for 100 ms.
	f := New(a, Config{Tx: Impairment{RateBytesPerSec: 6400}})
	t.Cleanup(func() { f.Close() })
	start := time.Now()
	for i := range 10 {
		f.WriteFrame(numbered(uint32(i)))
	}
	for range 10 {
		receive(t, b)
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Errorf("10 frames passed a 6400 B/s link in %v, want >= 100 ms", el)
	}
}

func TestCloseEndsGoroutines(t *testing.T) {
	leakcheck.Check(t)
	a, _ := pipe(t, 10)
	f := New(a, Config{
		Tx: Impairment{Delay: time.Hour},
		Rx: Impairment{Delay: time.Hour, RateBytesPerSec: 1},
	})
	// Frames stuck in the Tx queue and a reader blocked in ReadFrame.
	f.WriteFrame(numbered(1))
	errc := make(chan error, 1)
	go func() {
		_, err := f.ReadFrame(make([]byte, 200))
		errc <- err
	}()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadFrame after Close = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock ReadFrame")
	}
	if err := f.WriteFrame(numbered(2)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteFrame after Close = %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestPassThrough(t *testing.T) {
	a, _ := pipe(t, 10)
	f := New(a, Config{})
	defer f.Close()
	if f.MTU() != 100 || f.HardwareAddr() != a.HardwareAddr() {
		t.Errorf("MTU/HardwareAddr not passed through")
	}
	if got, _ := sendTx(t, Config{}, 100); len(got) != 100 || !slices.Equal(seqs(got), seqs(func() [][]byte {
		var w [][]byte
		for i := range 100 {
			w = append(w, numbered(uint32(i)))
		}
		return w
	}())) {
		t.Errorf("zero Config changed the traffic")
	}
}

// BenchmarkUntimed measures write+read of a 1514-byte frame through a
// fault Endpoint whose decisions are drawn but never hit (the overhead
// over BenchmarkPipe in package link).
func BenchmarkUntimed(b *testing.B) {
	x, y := link.NewPipe(link.PipeOptions{})
	f := New(x, Config{Seed: 1, Tx: Impairment{Drop: 1e-12}})
	defer f.Close()
	frame := make([]byte, 1514)
	buf := make([]byte, 1514)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		f.WriteFrame(frame)
		y.ReadFrame(buf)
	}
}

// TestReorderDelay holds some frames back for ReorderDelay while the ones
// behind them pass: every held frame arrives after every frame that was
// not held (all are written well within the delay), and each group keeps
// its order.
func TestReorderDelay(t *testing.T) {
	leakcheck.Check(t)
	a, b := pipe(t, 100)
	f := New(a, Config{Seed: 3, Tx: Impairment{Reorder: 0.3, ReorderDelay: 300 * time.Millisecond}})
	t.Cleanup(func() { f.Close() })
	const n = 30
	for i := range n {
		if err := f.WriteFrame(numbered(uint32(i))); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint32
	for range n {
		got = append(got, seqOf(receive(t, b)))
	}
	held := int(f.Stats().Tx.Reordered)
	if held == 0 || held == n {
		t.Fatalf("Reordered = %d of %d frames; the seed should hold back some, not all", held, n)
	}
	onTime, late := got[:n-held], got[n-held:]
	if !slices.IsSorted(onTime) || !slices.IsSorted(late) {
		t.Errorf("arrival order %v: the %d frames not held, then the %d held, each in order", got, n-held, held)
	}
	if onTime[len(onTime)-1] < late[0] {
		t.Errorf("arrival order %v: nothing overtook a held frame", got)
	}
}

// TestRxReorderDelay is TestReorderDelay on the receiving side.
func TestRxReorderDelay(t *testing.T) {
	leakcheck.Check(t)
	a, b := pipe(t, 100)
	f := New(a, Config{Seed: 4, Rx: Impairment{Reorder: 0.3, ReorderDelay: 300 * time.Millisecond}})
	t.Cleanup(func() { f.Close() })
	const n = 30
	for i := range n {
		if err := b.WriteFrame(numbered(uint32(i))); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint32
	for range n {
		got = append(got, seqOf(receive(t, f)))
	}
	held := int(f.Stats().Rx.Reordered)
	if held == 0 || held == n {
		t.Fatalf("Reordered = %d of %d frames", held, n)
	}
	if onTime, late := got[:n-held], got[n-held:]; !slices.IsSorted(onTime) || !slices.IsSorted(late) || onTime[len(onTime)-1] < late[0] {
		t.Errorf("arrival order %v, want the %d frames not held, in order, then the %d held", got, n-held, held)
	}
}

func TestTimedQueueOrder(t *testing.T) {
	q := newTimedQueue()
	base := time.Now().Add(-time.Hour) // all due
	for i, d := range []int{5, 1, 4, 1, 3, 2, 0, 5} {
		q.push(item{b: []byte{byte(i)}, due: base.Add(time.Duration(d))})
	}
	q.close()
	var got []byte
	q.run(make(chan struct{}), func(it item) bool { got = append(got, it.b[0]); return true })
	// By due time; ties (1: frames 1 and 3; 5: frames 0 and 7) in arrival order.
	if want := []byte{6, 1, 3, 5, 4, 2, 0, 7}; !slices.Equal(got, want) {
		t.Errorf("delivery order %v, want %v", got, want)
	}
}

// TestCorruptIP corrupts only IP packets, past the Ethernet header, and
// leaves ARP and other frames intact.
func TestCorruptIP(t *testing.T) {
	a, b := pipe(t, 500)
	f := New(a, Config{Seed: 8, Tx: Impairment{Corrupt: 1, CorruptIP: true}})
	defer f.Close()
	withType := func(seq uint32, etherType uint16) []byte {
		fr := numbered(seq)
		binary.BigEndian.PutUint16(fr[12:], etherType)
		return fr
	}
	types := []uint16{0x0800, 0x86dd, 0x0806, 0x88b5}
	const n = 100
	for i := range n {
		for _, et := range types {
			if err := f.WriteFrame(withType(uint32(i), et)); err != nil {
				t.Fatal(err)
			}
		}
	}
	buf := make([]byte, 200)
	for i := range n {
		for _, et := range types {
			m, err := b.ReadFrame(buf)
			if err != nil {
				t.Fatal(err)
			}
			got, want := buf[:m], withType(uint32(i), et)
			ip := et == 0x0800 || et == 0x86dd
			if !bytes.Equal(got[:link.EthernetHeaderLen], want[:link.EthernetHeaderLen]) {
				t.Fatalf("EtherType %#04x: Ethernet header corrupted", et)
			}
			if changed := !bytes.Equal(got, want); changed != ip {
				t.Fatalf("EtherType %#04x: corrupted %v, want %v", et, changed, ip)
			}
		}
	}
	if c := f.Stats().Tx.Corrupted; c != 2*n {
		t.Errorf("Corrupted = %d, want %d", c, 2*n)
	}
}
