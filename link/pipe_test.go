package link

import (
	"bytes"
	"errors"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Compile-time check that PipeEnd is an Endpoint.
var _ Endpoint = (*PipeEnd)(nil)

func frame(n int, seq byte) []byte {
	b := make([]byte, n)
	PutEthernetHeader(b, MAC{2, 0, 0, 0, 0, 2}, MAC{2, 0, 0, 0, 0, 1}, EtherTypeIPv4)
	for i := EthernetHeaderLen; i < n; i++ {
		b[i] = seq + byte(i)
	}
	return b
}

func TestPipeDefaults(t *testing.T) {
	a, b := NewPipe(PipeOptions{})
	defer a.Close()
	if a.MTU() != 1500 || b.MTU() != 1500 {
		t.Errorf("MTU = %d, %d; want 1500", a.MTU(), b.MTU())
	}
	if got, want := a.HardwareAddr(), (MAC{2, 0, 0, 0, 0, 1}); got != want {
		t.Errorf("A MAC = %v, want %v", got, want)
	}
	if got, want := b.HardwareAddr(), (MAC{2, 0, 0, 0, 0, 2}); got != want {
		t.Errorf("B MAC = %v, want %v", got, want)
	}
}

func TestPipeBothWays(t *testing.T) {
	a, b := NewPipe(PipeOptions{QueueLen: 4})
	defer a.Close()
	buf := make([]byte, 1514)
	for i := range 10 {
		f := frame(60+i, byte(i))
		if err := a.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
		n, err := b.ReadFrame(buf)
		if err != nil || !bytes.Equal(buf[:n], f) {
			t.Fatalf("B read %d, %v: % x; want % x", n, err, buf[:n], f)
		}
		if err := b.WriteFrame(f[:20]); err != nil {
			t.Fatal(err)
		}
		n, err = a.ReadFrame(buf)
		if err != nil || !bytes.Equal(buf[:n], f[:20]) {
			t.Fatalf("A read %d, %v", n, err)
		}
	}
	if s := a.Stats(); s != (PipeStats{TxFrames: 10, RxFrames: 10}) {
		t.Errorf("A stats = %+v", s)
	}
}

func TestPipeFIFOAndDrops(t *testing.T) {
	a, b := NewPipe(PipeOptions{QueueLen: 3})
	defer a.Close()
	for i := range 5 {
		if err := a.WriteFrame(frame(64, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	if s := a.Stats(); s.TxFrames != 3 || s.Drops != 2 {
		t.Errorf("stats = %+v, want 3 tx, 2 drops", s)
	}
	buf := make([]byte, 1514)
	for i := range 3 {
		n, err := b.ReadFrame(buf)
		if err != nil || !bytes.Equal(buf[:n], frame(64, byte(i))) {
			t.Fatalf("frame %d out of order or wrong: %v", i, err)
		}
	}
}

func TestPipeTooLargeAndTruncated(t *testing.T) {
	a, b := NewPipe(PipeOptions{MTU: 100})
	defer a.Close()
	if err := a.WriteFrame(make([]byte, 115)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("WriteFrame(115 bytes) over MTU 100 = %v, want ErrFrameTooLarge", err)
	}
	if err := a.WriteFrame(frame(114, 1)); err != nil {
		t.Fatalf("WriteFrame(MTU+14) = %v", err)
	}
	small := make([]byte, 20)
	n, err := b.ReadFrame(small)
	if n != 20 || !errors.Is(err, ErrTruncated) {
		t.Errorf("short read = %d, %v; want 20, ErrTruncated", n, err)
	}
	if !bytes.Equal(small, frame(114, 1)[:20]) {
		t.Errorf("truncated contents wrong")
	}
}

func readAsync(ep Endpoint) <-chan error {
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 2048)
		_, err := ep.ReadFrame(buf)
		done <- err
	}()
	return done
}

func waitErr(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: ReadFrame still blocked after 5 s", what)
		return nil
	}
}

func TestPipeCloseUnblocksBothEnds(t *testing.T) {
	a, b := NewPipe(PipeOptions{})
	ra, rb := readAsync(a), readAsync(b)
	waitBlocked(t, 2, "[sync.Cond.Wait", "link.(*PipeEnd).ReadFrame")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(t, ra, "closed end"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("closed end read = %v, want net.ErrClosed", err)
	}
	if err := waitErr(t, rb, "peer"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("peer read = %v, want net.ErrClosed", err)
	}
	if err := a.WriteFrame(frame(60, 0)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write on closed end = %v", err)
	}
	if err := b.WriteFrame(frame(60, 0)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write towards closed end = %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestPipePeerDrainsAfterClose(t *testing.T) {
	a, b := NewPipe(PipeOptions{})
	for i := range 2 {
		if err := a.WriteFrame(frame(60, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.WriteFrame(frame(60, 9)); err != nil {
		t.Fatal(err)
	}
	a.Close()
	buf := make([]byte, 1514)
	if _, err := a.ReadFrame(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("closed end with a queued frame read %v, want net.ErrClosed", err)
	}
	for i := range 2 {
		n, err := b.ReadFrame(buf)
		if err != nil || !bytes.Equal(buf[:n], frame(60, byte(i))) {
			t.Fatalf("drain frame %d: %v", i, err)
		}
	}
	if _, err := b.ReadFrame(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("drained peer read %v, want net.ErrClosed", err)
	}
}

func TestPipeConcurrentWriters(t *testing.T) {
	const writers, each = 4, 500
	a, b := NewPipe(PipeOptions{QueueLen: writers * each})
	defer a.Close()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := frame(100, byte(w))
			for range each {
				if err := a.WriteFrame(f); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	got := make(chan [writers]int)
	go func() {
		var count [writers]int
		buf := make([]byte, 1514)
		for range writers * each {
			n, err := b.ReadFrame(buf)
			if err != nil || n != 100 {
				t.Errorf("read %d, %v", n, err)
				break
			}
			count[buf[EthernetHeaderLen]-EthernetHeaderLen]++
		}
		got <- count
	}()
	wg.Wait()
	select {
	case count := <-got:
		for w, c := range count {
			if c != each {
				t.Errorf("writer %d: %d frames read, want %d", w, c, each)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reader did not finish")
	}
}

func TestPipeNoAllocs(t *testing.T) {
	a, b := NewPipe(PipeOptions{})
	defer a.Close()
	f := frame(1514, 0)
	buf := make([]byte, 1514)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := a.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
		if _, err := b.ReadFrame(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("write+read allocates %v times per frame, want 0", allocs)
	}
}

// BenchmarkPipe measures one write and one read of a 1514-byte frame on the
// same goroutine (no blocking).
func BenchmarkPipe(b *testing.B) {
	x, y := NewPipe(PipeOptions{})
	defer x.Close()
	f := frame(1514, 0)
	buf := make([]byte, 1514)
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	for b.Loop() {
		x.WriteFrame(f)
		y.ReadFrame(buf)
	}
}

// BenchmarkPipeStream measures a writer and a reader on two goroutines; the
// writer backs off when the queue is full so that nothing is dropped.
func BenchmarkPipeStream(b *testing.B) {
	x, y := NewPipe(PipeOptions{})
	f := frame(1514, 0)
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1514)
		for {
			if _, err := y.ReadFrame(buf); err != nil {
				return
			}
		}
	}()
	for b.Loop() {
		for {
			before := x.Stats().Drops
			x.WriteFrame(f)
			if x.Stats().Drops == before {
				break
			}
			runtime.Gosched()
		}
	}
	x.Close()
	<-done
}
