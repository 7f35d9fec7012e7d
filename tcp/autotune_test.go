package tcp

import (
	"testing"
	"time"
)

// longPath is a virtual-time path between a sender a and a receiver b: a
// one-way delay and a bottleneck rate each way, no loss, an unbounded
// queue. The sender writes without pause; the receiving application reads
// readChunk bytes every readEvery (everything at once when readEvery is
// zero).
type longPath struct {
	a, b      *Conn
	now       time.Time
	delay     time.Duration
	rate      float64 // bytes per second
	q         [2][]flight
	free      [2]time.Time // when the bottleneck of each direction is idle
	outs      [2]pathOut
	readEvery time.Duration
	readChunk int
	nextRead  time.Time

	received   int
	maxWnd     uint32 // the largest window b offered, in bytes
	rightEdge  Value  // b's highest right edge offered
	edgeShrank bool
}

type flight struct {
	at  time.Time
	seg []byte
}

// pathOut sends into one direction: 0 towards b, 1 towards a.
type pathOut struct {
	p   *longPath
	dir int
}

func (o *pathOut) Buffer(n int) ([]byte, int) { return make([]byte, n), 0 }

func (o *pathOut) Send(_ Tuple, buf []byte, off int) {
	p := o.p
	start := p.now
	if p.free[o.dir].After(start) {
		start = p.free[o.dir]
	}
	tx := time.Duration(float64(len(buf)-off+40) / p.rate * float64(time.Second))
	p.free[o.dir] = start.Add(tx)
	p.q[o.dir] = append(p.q[o.dir], flight{at: start.Add(tx + p.delay), seg: buf[off:]})
}

// newLongPath connects a to b (through a listener) over a path with the
// given one-way delay and rate.
func newLongPath(t testing.TB, cfg Config, delay time.Duration, rate float64) *longPath {
	t.Helper()
	p := &longPath{now: t0, delay: delay, rate: rate}
	p.outs[0], p.outs[1] = pathOut{p, 0}, pathOut{p, 1}
	cfgA, cfgB := cfg, cfg
	l := NewListener(&cfgB, tuple.Remote, 4)
	p.a = Dial(&cfgA, tuple, 1000, 1460, p.now, &p.outs[0])
	for p.a.State() != StateEstablished || p.b == nil || p.b.State() != StateEstablished {
		if !p.step(t, l) {
			t.Fatalf("handshake: %v", p.a.State())
		}
	}
	if l.Accept() != p.b {
		t.Fatal("not accepted")
	}
	return p
}

// step delivers the next segment due, or fires the next timer; it reports
// false when nothing is left to happen.
func (p *longPath) step(t testing.TB, l *Listener) bool {
	t.Helper()
	next := earliest(p.a.NextDeadline(), time.Time{})
	if p.b != nil {
		next = earliest(next, p.b.NextDeadline())
	}
	for dir := range p.q {
		if len(p.q[dir]) > 0 {
			next = earliest(next, p.q[dir][0].at)
		}
	}
	if p.readEvery > 0 && p.b != nil {
		next = earliest(next, p.nextRead)
	}
	if next.IsZero() {
		return false
	}
	if next.After(p.now) {
		p.now = next
	}
	for dir := range p.q {
		for len(p.q[dir]) > 0 && !p.q[dir][0].at.After(p.now) {
			raw := p.q[dir][0].seg
			p.q[dir] = p.q[dir][1:]
			if dir == 0 {
				seg, err := ParseSegment(raw, tuple.Local.Addr(), tuple.Remote.Addr())
				if err != nil {
					t.Fatal(err)
				}
				if p.b == nil {
					p.b = l.Input(p.now, tuple.Reverse(), seg, 90000, 1460, &p.outs[1])
				} else {
					p.b.Input(p.now, seg, &p.outs[1])
					if p.b.Established() && !p.b.Accepted() {
						l.Promote(p.b)
					}
				}
			} else {
				seg, err := ParseSegment(raw, tuple.Remote.Addr(), tuple.Local.Addr())
				if err != nil {
					t.Fatal(err)
				}
				p.watch(seg)
				p.a.Input(p.now, seg, &p.outs[0])
			}
		}
	}
	p.a.Tick(p.now, &p.outs[0])
	if p.b != nil {
		p.b.Tick(p.now, &p.outs[1])
	}
	return true
}

// watch records the window b offers and checks that its right edge never
// moves left (RFC 9293 §3.10.7.4: "The total of RCV.NXT and RCV.WND
// should not be reduced").
func (p *longPath) watch(seg Segment) {
	if !seg.Flags().Has(FlagACK) || seg.Flags().Has(FlagSYN) || p.b == nil {
		return
	}
	wnd := uint32(seg.Window()) << p.b.rcv.shift
	p.maxWnd = max(p.maxWnd, wnd)
	edge := seg.Ack().Add(wnd)
	if p.rightEdge != 0 && edge.LessThan(p.rightEdge) {
		p.edgeShrank = true
	}
	p.rightEdge = Max(p.rightEdge, edge)
}

// run moves data from a to b for d of virtual time.
func (p *longPath) run(t testing.TB, d time.Duration) {
	t.Helper()
	src := make([]byte, 256<<10)
	buf := make([]byte, 64<<10)
	end := p.now.Add(d)
	p.nextRead = p.now
	for p.now.Before(end) {
		for p.a.Writable() {
			n, err := p.a.Write(p.now, src, &p.outs[0])
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		if p.readEvery == 0 || !p.now.Before(p.nextRead) {
			left := p.readChunk
			for p.readEvery == 0 || left > 0 {
				m := len(buf)
				if p.readEvery > 0 {
					m = min(m, left)
				}
				n, err := p.b.Read(p.now, buf[:m], &p.outs[1])
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
				p.received += n
				left -= n
			}
			if p.readEvery > 0 {
				p.nextRead = p.now.Add(p.readEvery)
			}
		}
		if !p.step(t, nil) {
			t.Fatal("stalled")
		}
		if p.a.Err() != nil || p.b.Err() != nil {
			t.Fatal(p.a.Err(), p.b.Err())
		}
	}
}

func tuneConfig(ts bool, maxBuf int) Config {
	cfg := DefaultConfig()
	cfg.Timestamps = ts
	cfg.SendBufferSize = 8 << 20
	cfg.MaxReceiveBufferSize = maxBuf
	cfg.Stats = new(Stats)
	return cfg
}

// A 50 ms path at 25 MB/s (a bandwidth-delay product of 1.25 MB) and an
// application that reads at once: the window grows past the initial
// 256 KiB and stops at the configured maximum, with timestamps (RTT from
// TSecr) and without (RTT per window of data); the right edge never moves
// left.
func TestAutoTuneGrowsToMaximum(t *testing.T) {
	for _, ts := range []bool{true, false} {
		const maxBuf = 1 << 20
		p := newLongPath(t, tuneConfig(ts, maxBuf), 25*time.Millisecond, 25e6)
		initial := p.b.ReceiveBufferSize()
		p.run(t, 1500*time.Millisecond)
		info := p.b.Info()
		t.Logf("timestamps %v: received %d bytes in 1.5 s; buffer %d, largest window %d, receiver RTT %v", ts, p.received, info.ReceiveBufferSize, p.maxWnd, info.ReceiveRTT)
		if initial != 256<<10 {
			t.Fatalf("initial buffer %d", initial)
		}
		if info.ReceiveBufferSize != maxBuf {
			t.Errorf("timestamps %v: buffer %d, want the maximum %d", ts, info.ReceiveBufferSize, maxBuf)
		}
		if p.maxWnd <= uint32(initial) || p.maxWnd > maxBuf {
			t.Errorf("timestamps %v: largest window offered %d, want above %d and at most %d", ts, p.maxWnd, initial, maxBuf)
		}
		if info.ReceiveRTT < 50*time.Millisecond || info.ReceiveRTT > 100*time.Millisecond {
			t.Errorf("timestamps %v: receiver RTT %v on a 50 ms path", ts, info.ReceiveRTT)
		}
		if p.edgeShrank {
			t.Errorf("timestamps %v: the right edge of the window moved left", ts)
		}
		if p.b.rcv.shift != 5 { // 1 MiB needs a shift of 5 (RFC 7323 §2.3)
			t.Errorf("window scale %d", p.b.rcv.shift)
		}
	}
}

// A slow reader shows no need for a larger buffer, and an explicit size
// turns auto-tuning off: the buffer and the window stay put.
func TestAutoTuneSlowReaderAndExplicitSize(t *testing.T) {
	t.Run("slow reader", func(t *testing.T) {
		p := newLongPath(t, tuneConfig(true, 4<<20), 25*time.Millisecond, 25e6)
		p.readEvery, p.readChunk = 50*time.Millisecond, 32<<10 // 640 KB/s
		p.run(t, time.Second)
		if got := p.b.ReceiveBufferSize(); got != 256<<10 {
			t.Errorf("buffer %d, want 256 KiB", got)
		}
		if p.maxWnd > 256<<10 {
			t.Errorf("window %d offered", p.maxWnd)
		}
	})
	t.Run("explicit size", func(t *testing.T) {
		p := newLongPath(t, tuneConfig(true, 4<<20), 25*time.Millisecond, 25e6)
		if err := p.b.SetReceiveBufferSize(300 << 10); err != nil {
			t.Fatal(err)
		}
		p.run(t, time.Second)
		if got := p.b.ReceiveBufferSize(); got != 300<<10 {
			t.Errorf("buffer %d, want 300 KiB", got)
		}
		if p.maxWnd > 300<<10 || p.maxWnd <= 256<<10 {
			t.Errorf("window %d offered, want above 256 KiB and at most 300 KiB", p.maxWnd)
		}
		if p.edgeShrank {
			t.Error("the right edge of the window moved left")
		}
	})
	t.Run("off in the config", func(t *testing.T) {
		p := newLongPath(t, tuneConfig(true, 0), 25*time.Millisecond, 25e6)
		p.run(t, time.Second)
		if got := p.b.ReceiveBufferSize(); got != 256<<10 {
			t.Errorf("buffer %d, want 256 KiB", got)
		}
		if p.b.rcv.shift != 3 {
			t.Errorf("window scale %d, want 3 for 256 KiB", p.b.rcv.shift)
		}
	})
}

// A 20 µs path at 1 GB/s needs no more than the initial buffer: the
// millisecond timestamp clock reads its round trips as zero, and a zero
// estimate must not count as a millisecond (which would take 1 MB a round
// trip for the bandwidth-delay product and grow the buffer for nothing).
func TestAutoTuneShortPathStaysSmall(t *testing.T) {
	p := newLongPath(t, tuneConfig(true, 6<<20), 10*time.Microsecond, 1e9)
	p.run(t, 100*time.Millisecond)
	if got := p.b.ReceiveBufferSize(); got != 256<<10 {
		t.Errorf("buffer %d on a 20 µs path, want 256 KiB (receiver RTT %v)", got, p.b.Info().ReceiveRTT)
	}
}

// SetReceiveBufferSize names a bad size and never shrinks below the data
// held and the window offered.
func TestSetReceiveBufferSize(t *testing.T) {
	h, base := sackReceiver(t, false)
	if err := h.c.SetReceiveBufferSize(0); err != ErrBufferSize {
		t.Fatalf("size 0: %v", err)
	}
	data(t, h, ms(20), base, 0, 1000)
	data(t, h, ms(21), base, 3000, 1000)
	h.out.segs = nil
	wnd := h.c.rcv.WND
	if err := h.c.SetReceiveBufferSize(100); err != nil {
		t.Fatal(err)
	}
	if got, want := h.c.ReceiveBufferSize(), 1000+int(wnd); got != want {
		t.Fatalf("buffer %d, want %d (held + offered)", got, want)
	}
}

// BenchmarkAutoTuneLongPath moves data for 3 s of virtual time over a
// 50 ms, 25 MB/s path, with auto-tuning (up to 6 MiB) and with a fixed
// 256 KiB buffer, and reports the throughput in virtual time.
func BenchmarkAutoTuneLongPath(b *testing.B) {
	for _, c := range []struct {
		name   string
		maxBuf int
	}{{"fixed-256KiB", 0}, {"autotune-6MiB", 6 << 20}} {
		b.Run(c.name, func(b *testing.B) {
			var mbps float64
			for range b.N {
				p := newLongPath(b, tuneConfig(true, c.maxBuf), 25*time.Millisecond, 25e6)
				p.run(b, 3*time.Second)
				mbps = float64(p.received) / 3 / 1e6
			}
			b.ReportMetric(mbps, "MB/s-virtual")
		})
	}
}

// A window's worth that arrives at once (a GRO receiver takes the
// sender's super-segments whole), read by a reader that keeps up but
// takes it in 32 KiB pieces (an echo server reading a piece, then writing
// it back): each round trip's measure ends at the first read after the
// burst, with all but one piece still queued. That queue is no sign of a
// reader falling behind, it is the same in every round trip; counted
// against the reader, it held the buffer at its initial 256 KiB for good
// (the kernel's echo through the lossy bridge: 40 round trips of exactly
// 256 KiB read with 224 KiB queued at each measure). What counts is what
// the queue grew by.
func TestAutoTuneWindowBurstReadInPieces(t *testing.T) {
	cfg := testConfig()
	cfg.WindowScale, cfg.SACKPermitted = true, true
	cfg.ReceiveBufferSize, cfg.MaxReceiveBufferSize = 256<<10, 4<<20
	h := newHarness(cfg)
	h.l = NewListener(&h.cfg, localAP, 4)
	h.send(t, 0, sg{flags: SYN, seq: remoteISS, win: 65535, opts: &Options{MSS: 1460, WindowScale: 7}})
	h.send(t, ms(2), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535})
	if h.c == nil || h.c.State() != StateEstablished {
		t.Fatal("not established")
	}
	seq, buf := remoteISS+1, make([]byte, 32<<10)
	at := ms(10)
	for round := 0; round < 40; round++ {
		// The peer sends the whole window offered, at once, every 2 ms
		// (the receiver measures its round trip as the time a window
		// takes to arrive).
		// Pairs of full-sized segments: each pair is acknowledged at
		// once, no ACK is owed on the delayed-ACK timer when the reads
		// begin, and the window updates of the reads go at once
		// (windowUpdate), as they would once that timer fired.
		w := int(h.c.rcv.WND) / (2 * 1460) * (2 * 1460)
		for sent := 0; sent < w; {
			n := 1460
			h.send(t, at, sg{flags: ACK, seq: seq, ack: localISS + 1, win: 65535, data: make([]byte, n)})
			seq, sent = seq+Value(n), sent+n
		}
		// The reader takes it in pieces, one each 50 µs: all of it well
		// within the round trip.
		k := 0
		for ; ; k++ {
			n, err := h.c.Read(t0.Add(at+time.Duration(k)*50*time.Microsecond), buf, &h.out)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		h.out.segs = nil
		at += max(ms(2), time.Duration(k+1)*50*time.Microsecond)
	}
	if got := h.c.ReceiveBufferSize(); got <= 256<<10 {
		t.Errorf("buffer %d after 40 round trips of a full window read within each, want it grown (receiver RTT %v)", got, h.c.Info().ReceiveRTT)
	}
}
