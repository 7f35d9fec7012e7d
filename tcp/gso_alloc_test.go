package tcp

import (
	"encoding/binary"
	"testing"
	"time"
)

// gsoLoopOut is loopOut for a sender with GSO: its buffers hold a whole
// super-segment, and SendGSO queues the super-segment whole with the
// number of segments it holds, for the receiver's InputSegments (the
// path of two stacks over a link with offloads both ways).
type gsoLoopOut struct {
	loopOut
	segs []int // per queued segment: how many wire segments it holds
	// cut makes SendGSO cut super-segments into pieces, as software GSO
	// in front of a link without offloads does, for a receiver without
	// GRO.
	cut bool
}

func newGSOLoopOut(n int) *gsoLoopOut {
	o := &gsoLoopOut{loopOut: loopOut{q: make([][]byte, 0, n), bufs: make([][]byte, 0, n)}, segs: make([]int, 0, n)}
	for i := 0; i < n; i++ {
		o.free = append(o.free, make([]byte, 34+MaxHeaderLen+MaxGSOSize))
	}
	return o
}

func (o *gsoLoopOut) Send(t Tuple, buf []byte, off int) {
	o.loopOut.Send(t, buf, off)
	o.segs = append(o.segs, 1)
}

func (o *gsoLoopOut) SendGSO(t Tuple, buf []byte, off, mss int) {
	if !o.cut {
		o.loopOut.Send(t, buf, off)
		o.segs = append(o.segs, (len(buf)-off-HeaderLen-1)/mss+1)
		return
	}
	super := buf[off:]
	hl := Segment(super).DataOffset()
	flags := Segment(super).Flags()
	src, dst := t.Local.Addr(), t.Remote.Addr()
	for p := hl; p < len(super); p += mss {
		n := min(mss, len(super)-p)
		b, o2 := o.Buffer(hl + n)
		seg := b[o2:]
		copy(seg, super[:hl])
		copy(seg[hl:], super[p:p+n])
		binary.BigEndian.PutUint32(seg[offSeq:], uint32(Segment(super).Seq())+uint32(p-hl))
		if p+n < len(super) {
			seg[offFlags] = byte(flags &^ (FlagPSH | FlagFIN))
		}
		SetChecksum(seg, src, dst)
		o.Send(t, b, o2)
	}
	o.free = append(o.free, buf[:cap(buf)])
}

// deliver hands every queued segment to c with its segment count; the
// checksum of a super-segment, left partial by the sender, is trusted
// (virtio's NEEDS_CSUM between two stacks of one host).
func (o *gsoLoopOut) deliver(tb testing.TB, now time.Time, from Tuple, c *Conn, back Output) int {
	n := 0
	for i := 0; i < len(o.q); i++ {
		parse := ParseSegment
		if o.segs[i] > 1 {
			parse = ParseSegmentVerified
		}
		seg, err := parse(o.q[i], from.Local.Addr(), from.Remote.Addr())
		if err != nil {
			tb.Fatal(err)
		}
		c.InputSegments(now, seg, o.segs[i], back)
		n++
	}
	o.free = append(o.free, o.bufs...)
	o.q, o.bufs, o.segs = o.q[:0], o.bufs[:0], o.segs[:0]
	return n
}

// bulkRig is a sender a and a receiver c between which rounds of 64 KiB
// move; with gso the sender sends super-segments of up to 64 KiB, taken
// whole by the receiver.
type bulkRig struct {
	a, c     *Conn
	oa       Output
	deliverA func(now time.Time) int
	ob       *loopOut
	now      time.Time
	src, dst []byte
}

func newBulkRig(tb testing.TB, gso, cut bool) *bulkRig {
	cfg := DefaultConfig()
	cfg.Stats = new(Stats)
	r := &bulkRig{now: t0, src: make([]byte, 64<<10), dst: make([]byte, 64<<10), ob: newLoopOut(1024)}
	l := NewListener(&cfg, tuple.Remote, 4)
	if gso {
		oa := newGSOLoopOut(256)
		oa.cut = cut
		r.oa = oa
		r.a = Dial(&cfg, tuple, 1, 1460, r.now, oa)
		r.c = acceptVia(tb, r.now, l, r.a, &oa.loopOut, r.ob)
		oa.segs = oa.segs[:0]
		r.a.SetGSOMaxSize(65535)
		r.deliverA = func(now time.Time) int { return oa.deliver(tb, now, tuple, r.c, r.ob) }
	} else {
		oa := newLoopOut(1024)
		r.oa = oa
		r.a = Dial(&cfg, tuple, 1, 1460, r.now, oa)
		r.c = acceptVia(tb, r.now, l, r.a, oa, r.ob)
		r.deliverA = func(now time.Time) int { return oa.deliver(tb, now, tuple, r.c, r.ob) }
	}
	return r
}

// round moves 64 KiB from a to c, with the reads and ACKs, and returns
// the segments exchanged.
func (r *bulkRig) round(tb testing.TB) int {
	segs := 0
	r.now = r.now.Add(time.Millisecond)
	left := len(r.src)
	n, _ := r.a.Write(r.now, r.src, r.oa)
	left -= n
	pending := func() bool {
		switch o := r.oa.(type) {
		case *gsoLoopOut:
			return len(o.q) > 0
		case *loopOut:
			return len(o.q) > 0
		}
		return false
	}
	for pending() || len(r.ob.q) > 0 || left > 0 {
		segs += r.deliverA(r.now)
		for {
			n, _ := r.c.Read(r.now, r.dst, r.ob)
			if n == 0 {
				break
			}
		}
		segs += r.ob.deliver(tb, r.now, tuple.Reverse(), r.a, r.oa)
		n, _ := r.a.Write(r.now, r.src[:left], r.oa)
		left -= n
	}
	return segs
}

// TestNoAllocationsPerSuperSegment is TestNoAllocationsPerSegment with
// GSO at the sender and GRO at the receiver: the steady state allocates
// nothing per super-segment.
func TestNoAllocationsPerSuperSegment(t *testing.T) {
	r := newBulkRig(t, true, false)
	for i := 0; i < 20; i++ {
		r.round(t)
	}
	segs := 0
	allocs := testing.AllocsPerRun(50, func() { segs += r.round(t) })
	if segs == 0 {
		t.Fatal("no segments exchanged")
	}
	if segs/51 > 10 {
		t.Fatalf("%d segments per round of 64 KiB: no super-segments", segs/51)
	}
	t.Logf("%.2f allocations per round of %d segments (super-segments and ACKs)", allocs, segs/51)
	if allocs != 0 {
		t.Fatalf("%.2f allocations per round, want 0", allocs)
	}
}

// BenchmarkBulkTransferGSO compares the pure core moving 64 KiB rounds
// one way without GSO (off), with super-segments of up to 64 KiB taken
// whole by the receiver as GRO would hand them over (64K), and with the
// super-segments cut into MSS segments in the test's output, as software
// GSO before a link without offloads would, for a receiver without GRO
// (64K-cut): per byte, the sender's per-segment work (headers, the
// retransmission queue, the send loop) is done once per super-segment.
func BenchmarkBulkTransferGSO(b *testing.B) {
	for _, tc := range []struct {
		name     string
		gso, cut bool
	}{
		{"off", false, false},
		{"64K", true, false},
		{"64K-cut", true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := newBulkRig(b, tc.gso, tc.cut)
			for i := 0; i < 20; i++ {
				r.round(b)
			}
			b.SetBytes(int64(len(r.src)))
			b.ReportAllocs()
			b.ResetTimer()
			segs := 0
			for i := 0; i < b.N; i++ {
				segs += r.round(b)
			}
			b.ReportMetric(float64(segs)/float64(b.N), "segs/op")
		})
	}
}
