package udp

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

type meta struct {
	src netip.AddrPort
	seq int
}

func newQueue(t testing.TB, maxCount, maxBytes int) *Queue[meta] {
	t.Helper()
	q, err := NewQueue[meta](maxCount, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// payload returns n bytes that depend on seq, so that a datagram read
// back from the wrong place, or mixed with another, shows.
func payload(seq, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seq*31 + i*7 + i>>8)
	}
	return b
}

func mustPop(t *testing.T, q *Queue[meta], buf []byte, wantSeq, wantSize int) []byte {
	t.Helper()
	n, size, m, ok := q.Pop(buf)
	if !ok {
		t.Fatalf("Pop: queue empty, want datagram %d", wantSeq)
	}
	if m.seq != wantSeq || size != wantSize || n != min(len(buf), size) {
		t.Fatalf("Pop = n %d, size %d, seq %d; want size %d, seq %d", n, size, m.seq, wantSize, wantSeq)
	}
	if want := payload(wantSeq, size)[:n]; !bytes.Equal(buf[:n], want) {
		t.Fatalf("datagram %d: payload differs", wantSeq)
	}
	return buf[:n]
}

func TestQueueFIFO(t *testing.T) {
	q := newQueue(t, 16, 1<<16)
	src := netip.MustParseAddrPort("192.0.2.1:40000")
	sizes := []int{1, 0, 1400, 7, 8000, 64}
	total := 0
	for i, n := range sizes {
		if !q.Push(payload(i, n), meta{src, i}) {
			t.Fatalf("Push %d refused", i)
		}
		total += n
	}
	if q.Len() != len(sizes) || q.Bytes() != total || q.Drops() != 0 {
		t.Fatalf("Len %d Bytes %d Drops %d", q.Len(), q.Bytes(), q.Drops())
	}
	if size, m, ok := q.Peek(); !ok || size != 1 || m.seq != 0 || m.src != src {
		t.Fatalf("Peek = %d, %+v, %v", size, m, ok)
	}
	buf := make([]byte, 9000)
	for i, n := range sizes {
		mustPop(t, q, buf, i, n)
	}
	if _, _, _, ok := q.Pop(buf); ok || q.Len() != 0 || q.Bytes() != 0 {
		t.Fatalf("after draining: ok %v, Len %d, Bytes %d", ok, q.Len(), q.Bytes())
	}
	if _, _, ok := q.Peek(); ok {
		t.Fatal("Peek on an empty queue reported a datagram")
	}
}

func TestQueueCountLimit(t *testing.T) {
	q := newQueue(t, 3, 1<<20)
	for i := range 5 {
		q.Push(payload(i, 10), meta{seq: i})
	}
	if q.Len() != 3 || q.Drops() != 2 {
		t.Fatalf("Len %d, Drops %d; want 3, 2", q.Len(), q.Drops())
	}
	buf := make([]byte, 10)
	mustPop(t, q, buf, 0, 10)
	if !q.Push(payload(5, 10), meta{seq: 5}) {
		t.Fatal("Push refused after a Pop made room")
	}
	for _, seq := range []int{1, 2, 5} {
		mustPop(t, q, buf, seq, 10)
	}
}

func TestQueueByteLimit(t *testing.T) {
	q := newQueue(t, 100, 1000)
	if !q.Push(payload(0, 600), meta{seq: 0}) || !q.Push(payload(1, 400), meta{seq: 1}) {
		t.Fatal("datagrams up to exactly maxBytes refused")
	}
	if q.Push(payload(2, 1), meta{seq: 2}) {
		t.Fatal("a byte past maxBytes admitted")
	}
	if !q.Push(nil, meta{seq: 3}) {
		t.Fatal("an empty datagram refused by a full byte budget")
	}
	if q.Drops() != 1 || q.Bytes() != 1000 || q.Len() != 3 {
		t.Fatalf("Drops %d Bytes %d Len %d", q.Drops(), q.Bytes(), q.Len())
	}
	buf := make([]byte, 1000)
	mustPop(t, q, buf, 0, 600)
	if !q.Push(payload(4, 600), meta{seq: 4}) {
		t.Fatal("Push refused after a Pop freed its bytes")
	}
	for _, d := range [][2]int{{1, 400}, {3, 0}, {4, 600}} {
		mustPop(t, q, buf, d[0], d[1])
	}
}

// TestQueueOneOversized checks Linux's "at least one packet" rule: an
// empty queue takes one datagram larger than its byte limit, and nothing
// more until that one is read.
func TestQueueOneOversized(t *testing.T) {
	q := newQueue(t, 10, 100)
	if !q.Push(payload(0, MaxPayload), meta{seq: 0}) {
		t.Fatal("an empty queue refused a datagram over its byte limit")
	}
	if q.Push(payload(1, 1), meta{seq: 1}) || q.Drops() != 1 {
		t.Fatalf("a second datagram admitted past the limit (Drops %d)", q.Drops())
	}
	buf := make([]byte, MaxPayload)
	mustPop(t, q, buf, 0, MaxPayload)
	for i := range 4 {
		if !q.Push(payload(2+i, 25), meta{seq: 2 + i}) {
			t.Fatalf("datagram %d within the limit refused", i)
		}
	}
	if q.Push(payload(6, 1), meta{seq: 6}) {
		t.Fatal("the byte limit no longer holds after an oversized datagram")
	}
	for i := range 4 {
		mustPop(t, q, buf, 2+i, 25)
	}
}

func TestQueueTooLong(t *testing.T) {
	q := newQueue(t, 10, 1<<20)
	if q.Push(make([]byte, MaxPayload+1), meta{}) || q.Drops() != 1 || q.Len() != 0 {
		t.Fatalf("a payload longer than MaxPayload: Len %d Drops %d", q.Len(), q.Drops())
	}
}

func TestQueueTruncation(t *testing.T) {
	q := newQueue(t, 10, 1<<16)
	q.Push(payload(0, 100), meta{seq: 0})
	q.Push(payload(1, 5), meta{seq: 1})
	q.Push(payload(2, 30), meta{seq: 2})
	buf := make([]byte, 10)
	mustPop(t, q, buf, 0, 100) // 10 of 100 copied, 90 discarded
	mustPop(t, q, buf, 1, 5)
	if n, size, m, ok := q.Pop(nil); !ok || n != 0 || size != 30 || m.seq != 2 {
		t.Fatalf("Pop(nil) = %d, %d, %+v, %v; want a discarded datagram of 30", n, size, m, ok)
	}
	if q.Len() != 0 || q.Bytes() != 0 {
		t.Fatalf("Len %d Bytes %d after truncated pops", q.Len(), q.Bytes())
	}
}

// TestQueueWrap keeps a small ring busy with datagrams of awkward sizes,
// so that payloads wrap around its end, and reads each back, whole and
// truncated at the wrap.
func TestQueueWrap(t *testing.T) {
	q := newQueue(t, 1000, minRing)
	buf := make([]byte, minRing)
	next, popped, wraps := 0, 0, 0
	sizes := []int{700, 333, 1, 0, 1024, 999, 48, 1500, 2}
	for round := range 400 {
		for q.Push(payload(next, sizes[next%len(sizes)]), meta{seq: next}) {
			next++
		}
		// Pop one or two, every third one truncated.
		for range 1 + round%2 {
			if q.Len() == 0 {
				break
			}
			if size, _, _ := q.Peek(); q.head+size > len(q.data) {
				wraps++
			}
			b := buf
			if popped%3 == 0 {
				b = buf[:popped%500]
			}
			mustPop(t, q, b, popped, sizes[popped%len(sizes)])
			popped++
		}
		if q.Bytes() > minRing || len(q.data) != minRing {
			t.Fatalf("round %d: Bytes %d, ring %d, limit %d", round, q.Bytes(), len(q.data), minRing)
		}
	}
	if popped < 500 || wraps < 50 {
		t.Fatalf("only %d datagrams went through, %d of them wrapping", popped, wraps)
	}
}

func TestQueueLimits(t *testing.T) {
	for _, tt := range []struct {
		count, bytes int
		name         string
	}{{0, 1, "maxCount 0"}, {-1, 1, "maxCount -1"}, {1, 0, "maxBytes 0"}, {5, -8, "maxBytes -8"}} {
		q, err := NewQueue[meta](tt.count, tt.bytes)
		if q != nil || !errors.Is(err, ErrQueueLimit) || !strings.Contains(err.Error(), tt.name) {
			t.Errorf("NewQueue(%d, %d) = %v, %v; want an ErrQueueLimit naming %q", tt.count, tt.bytes, q, err, tt.name)
		}
	}
	q := newQueue(t, 4, 100)
	for i := range 4 {
		q.Push(payload(i, 20), meta{seq: i})
	}
	if err := q.SetLimits(2, 0); !errors.Is(err, ErrQueueLimit) {
		t.Fatalf("SetLimits(2, 0) = %v", err)
	}
	if c, b := q.Limits(); c != 4 || b != 100 {
		t.Fatalf("a refused SetLimits changed the limits to %d, %d", c, b)
	}
	// Lowering the limits keeps what is queued and refuses more.
	if err := q.SetLimits(2, 30); err != nil {
		t.Fatal(err)
	}
	if q.Len() != 4 || q.Push(payload(9, 1), meta{seq: 9}) {
		t.Fatalf("after lowering: Len %d, a Push admitted", q.Len())
	}
	buf := make([]byte, 20)
	for i := range 3 {
		mustPop(t, q, buf, i, 20)
	}
	if q.Push(payload(4, 11), meta{seq: 4}) {
		t.Fatal("20 + 11 bytes admitted under a limit of 30")
	}
	if !q.Push(payload(5, 10), meta{seq: 5}) {
		t.Fatal("20 + 10 bytes refused under a limit of 30")
	}
	mustPop(t, q, buf, 3, 20)
	mustPop(t, q, buf, 5, 10)
}

// TestQueueReleasesMeta checks that a popped datagram's metadata is not
// kept alive by the ring.
func TestQueueReleasesMeta(t *testing.T) {
	q, err := NewQueue[*int](4, 100)
	if err != nil {
		t.Fatal(err)
	}
	v := 7
	q.Push([]byte("x"), &v)
	if _, _, m, _ := q.Pop(nil); m != &v {
		t.Fatal("metadata lost")
	}
	for i, s := range q.slots {
		if s.meta != nil {
			t.Fatalf("slot %d still points to popped metadata", i)
		}
	}
}

func TestQueueAllocs(t *testing.T) {
	for _, size := range []int{0, 64, 1400, 9000} {
		q := newQueue(t, 64, 256<<10)
		p := payload(1, size)
		buf := make([]byte, size)
		m := meta{src: netip.MustParseAddrPort("[2001:db8::1]:5353")}
		// Warm up: the rings grow to the working size of 32 in flight.
		for range 32 {
			q.Push(p, m)
		}
		if n := testing.AllocsPerRun(1000, func() {
			q.Push(p, m)
			q.Pop(buf)
		}); n != 0 {
			t.Errorf("size %d: Push+Pop allocates %v times per run", size, n)
		}
	}
}

// FuzzQueue drives a queue with operations decoded from the input and
// checks every result against a model: a slice of copied datagrams with
// the same admission rules.
func FuzzQueue(f *testing.F) {
	f.Add(uint8(4), uint16(3000), []byte{0, 10, 0, 200, 1, 5, 0, 0, 2, 1, 3})
	f.Add(uint8(1), uint16(1), []byte{0, 255, 0, 1, 1, 0, 0, 0})
	f.Add(uint8(64), uint16(minRing), []byte{0, 250, 0, 250, 0, 250, 1, 100, 0, 250, 0, 250, 1, 3, 0, 7})
	f.Add(uint8(8), uint16(40000), []byte{0, 255, 0, 255, 0, 255, 2, 9, 1, 255, 4, 1, 0, 1})
	f.Fuzz(func(t *testing.T, maxCount uint8, maxBytes uint16, ops []byte) {
		q, err := NewQueue[int](int(maxCount), int(maxBytes))
		if maxCount == 0 || maxBytes == 0 {
			if err == nil || q != nil {
				t.Fatalf("NewQueue(%d, %d) accepted", maxCount, maxBytes)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		type dgram struct {
			data []byte
			seq  int
		}
		var model []dgram
		var drops uint64
		cnt, lim := int(maxCount), int(maxBytes)
		maxLim := lim // the largest byte limit ever set bounds the ring
		used := func() int {
			n := 0
			for _, d := range model {
				n += len(d.data)
			}
			return n
		}
		seq := 0
		for len(ops) >= 2 {
			op, arg := ops[0], int(ops[1])
			ops = ops[2:]
			switch op % 5 {
			case 0, 4: // push arg*37 bytes (up to 9,435), or arg*257 (up to 65,535)
				n := arg * 37
				if op%5 == 4 {
					n = arg * 257
				}
				p := payload(seq, n)
				fits := n <= MaxPayload && len(model) < cnt && (len(model) == 0 || used()+n <= lim)
				if got := q.Push(p, seq); got != fits {
					t.Fatalf("Push(%d bytes) = %v with %d queued, %d bytes; limits %d, %d", n, got, len(model), used(), cnt, lim)
				}
				if fits {
					model = append(model, dgram{append([]byte{}, p...), seq})
				} else {
					drops++
				}
				for i := range p {
					p[i] = ^p[i] // the queue must have copied
				}
				seq++
			case 1: // pop into a buffer of arg*29 bytes
				buf := make([]byte, arg*29)
				n, size, m, ok := q.Pop(buf)
				if ok != (len(model) > 0) {
					t.Fatalf("Pop ok = %v with %d queued", ok, len(model))
				}
				if !ok {
					continue
				}
				want := model[0]
				model = model[1:]
				if m != want.seq || size != len(want.data) || n != min(len(buf), size) || !bytes.Equal(buf[:n], want.data[:n]) {
					t.Fatalf("Pop = %d of %d, seq %d; want %d bytes of seq %d", n, size, m, len(want.data), want.seq)
				}
			case 2: // peek
				size, m, ok := q.Peek()
				if ok != (len(model) > 0) || ok && (size != len(model[0].data) || m != model[0].seq) {
					t.Fatalf("Peek = %d, %d, %v", size, m, ok)
				}
			case 3: // change the limits
				c, b := arg%8, (arg*997)%70000
				err := q.SetLimits(c, b)
				if (err == nil) != (c > 0 && b > 0) {
					t.Fatalf("SetLimits(%d, %d) = %v", c, b, err)
				}
				if err == nil {
					cnt, lim = c, b
					maxLim = max(maxLim, b)
				}
			}
			if q.Len() != len(model) || q.Bytes() != used() || q.Drops() != drops {
				t.Fatalf("Len %d Bytes %d Drops %d; model %d, %d, %d", q.Len(), q.Bytes(), q.Drops(), len(model), used(), drops)
			}
			if len(q.data) > max(maxLim, MaxPayload) {
				t.Fatalf("byte ring of %d beyond every limit set (at most %d)", len(q.data), maxLim)
			}
		}
	})
}

func BenchmarkQueue(b *testing.B) {
	for _, size := range []int{64, 1400} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			q, _ := NewQueue[netip.AddrPort](256, 212992)
			p := payload(1, size)
			buf := make([]byte, 2048)
			src := netip.MustParseAddrPort("192.0.2.1:40000")
			for range 16 {
				q.Push(p, src)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				q.Push(p, src)
				q.Pop(buf)
			}
		})
	}
}

func TestQueueZeroValue(t *testing.T) {
	var q Queue[meta]
	if q.Push([]byte("x"), meta{}) || q.Drops() != 1 || q.Len() != 0 {
		t.Fatalf("the zero Queue admitted a datagram (Len %d, Drops %d)", q.Len(), q.Drops())
	}
	if _, _, _, ok := q.Pop(make([]byte, 4)); ok {
		t.Fatal("Pop on the zero Queue reported a datagram")
	}
}
