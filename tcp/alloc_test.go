package tcp

import (
	"testing"
	"time"
	"unsafe"
)

// loopOut is an allocation-free Output for two Conns: a fixed pool of
// buffers and a fixed-capacity queue per direction.
type loopOut struct {
	free [][]byte
	q    [][]byte // segments queued for the peer (buf[off:])
	bufs [][]byte // the full buffers of q, to return to free
}

func newLoopOut(n int) *loopOut {
	o := &loopOut{q: make([][]byte, 0, n), bufs: make([][]byte, 0, n)}
	for i := 0; i < n; i++ {
		o.free = append(o.free, make([]byte, 2048))
	}
	return o
}

func (o *loopOut) Buffer(n int) ([]byte, int) {
	b := o.free[len(o.free)-1]
	o.free = o.free[:len(o.free)-1]
	return b[:34+n], 34
}

func (o *loopOut) Send(t Tuple, buf []byte, off int) {
	o.q = append(o.q, buf[off:])
	o.bufs = append(o.bufs, buf[:cap(buf)])
}

// deliver hands every queued segment to c, which answers through back.
func (o *loopOut) deliver(tb testing.TB, now time.Time, from Tuple, c *Conn, back Output) int {
	n := 0
	for i := 0; i < len(o.q); i++ {
		seg, err := ParseSegment(o.q[i], from.Local.Addr(), from.Remote.Addr())
		if err != nil {
			tb.Fatal(err)
		}
		c.Input(now, seg, back)
		n++
	}
	o.free = append(o.free, o.bufs...)
	o.q, o.bufs = o.q[:0], o.bufs[:0]
	return n
}

// acceptVia completes the handshake of a, whose SYN waits in oa, with
// listener l, and returns the listener's connection.
func acceptVia(tb testing.TB, now time.Time, l *Listener, a *Conn, oa, ob *loopOut) *Conn {
	toListener := func() *Conn {
		var c *Conn
		for i := range oa.q {
			seg, err := ParseSegment(oa.q[i], tuple.Local.Addr(), tuple.Remote.Addr())
			if err != nil {
				tb.Fatal(err)
			}
			if nc := l.Input(now, tuple.Reverse(), seg, 2, 1460, ob); nc != nil {
				c = nc
			}
		}
		oa.free = append(oa.free, oa.bufs...)
		oa.q, oa.bufs = oa.q[:0], oa.bufs[:0]
		return c
	}
	toListener()                                // SYN
	ob.deliver(tb, now, tuple.Reverse(), a, oa) // SYN-ACK
	c := toListener()                           // ACK
	if c == nil {
		tb.Fatal("handshake failed")
	}
	if l.Accept() != c {
		tb.Fatal("not on the accept queue")
	}
	return c
}

// TestNoAllocationsPerSegment moves bulk data between two Conns and checks
// that the steady state (send, receive, ACK, read) allocates nothing.
func TestNoAllocationsPerSegment(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Stats = new(Stats)
	oa, ob := newLoopOut(1024), newLoopOut(1024)
	now := t0
	a := Dial(&cfg, tuple, 1, 1460, now, oa)
	l := NewListener(&cfg, tuple.Remote, 4)
	b := acceptVia(t, now, l, a, oa, ob)
	if !a.Established() || !b.Established() {
		t.Fatal("handshake failed")
	}
	src := make([]byte, 64<<10)
	dst := make([]byte, 64<<10)
	segs := 0
	round := func() {
		now = now.Add(time.Millisecond)
		left := len(src)
		n, _ := a.Write(now, src, oa)
		left -= n
		for len(oa.q) > 0 || len(ob.q) > 0 || left > 0 {
			segs += oa.deliver(t, now, tuple, b, ob)
			for {
				n, _ := b.Read(now, dst, ob)
				if n == 0 {
					break
				}
			}
			segs += ob.deliver(t, now, tuple.Reverse(), a, oa)
			n, _ := a.Write(now, src[:left], oa)
			left -= n
		}
		now = now.Add(50 * time.Millisecond) // let delayed ACKs fire
		b.Tick(now, ob)
		a.Tick(now, oa)
		segs += ob.deliver(t, now, tuple.Reverse(), a, oa)
	}
	for i := 0; i < 20; i++ { // warm up: slow start, rings, queues
		round()
	}
	segs = 0
	allocs := testing.AllocsPerRun(50, round)
	if segs == 0 {
		t.Fatal("no segments exchanged")
	}
	t.Logf("%.2f allocations per round of %d segments", allocs, segs/51)
	if allocs != 0 {
		t.Fatalf("%.2f allocations per round (%d segments per round), want 0", allocs, segs/51)
	}
}

// BenchmarkBulkTransfer measures the pure core moving data one way between
// two Conns (MTU 1500 segments, default buffers, an allocation-free
// Output): send, segment, checksum, parse, receive, ACK and read.
func BenchmarkBulkTransfer(b *testing.B) {
	cfg := DefaultConfig()
	oa, ob := newLoopOut(1024), newLoopOut(1024)
	now := t0
	a := Dial(&cfg, tuple, 1, 1460, now, oa)
	l := NewListener(&cfg, tuple.Remote, 4)
	c := acceptVia(b, now, l, a, oa, ob)
	src := make([]byte, 64<<10)
	dst := make([]byte, 64<<10)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Millisecond)
		left := len(src)
		n, _ := a.Write(now, src, oa)
		left -= n
		for len(oa.q) > 0 || len(ob.q) > 0 || left > 0 {
			oa.deliver(b, now, tuple, c, ob)
			for {
				n, _ := c.Read(now, dst, ob)
				if n == 0 {
					break
				}
			}
			ob.deliver(b, now, tuple.Reverse(), a, oa)
			n, _ := a.Write(now, src[:left], oa)
			left -= n
		}
	}
}

// TestConnSizeClass keeps a Conn in Go's 768-byte size class: an object
// with pointers over 512 bytes carries an 8-byte malloc header, so a Conn
// of more than 760 bytes takes the 896-byte class, 128 bytes more for
// every connection, idle or not (the idle heap per connection pair is
// bounded in the stack's TestIdleHeapPerPair). Rarely used state lives
// behind pointers allocated on first use (rx, lossState, pmtu, chal).
func TestConnSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 768-8 {
		t.Errorf("Conn is %d bytes, over the 760 that fit the 768-byte size class with the malloc header", n)
	}
}

// Every error an ICMP message may leave as a soft error is one that
// Conn.softErr can hold: it comes back from Info and from a give-up.
func TestSoftErrorsRoundTrip(t *testing.T) {
	for i, err := range softErrors[1:] {
		if got := softErrorOf(err); got != uint8(i+1) || softErrors[got] != err {
			t.Errorf("%v: index %d", err, got)
		}
	}
	if softErrorOf(ErrTimeout) != 0 {
		t.Error("an error that is no soft error has an index")
	}
}
