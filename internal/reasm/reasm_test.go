package reasm

import (
	"bytes"
	"testing"
	"time"
)

var t0 = time.Unix(1000, 0)

type key = Key[byte, uint16]

// testConfig is a small family: 4-byte headers at most, 2 minimum,
// datagrams of at most 1000 bytes.
func testConfig() Config {
	return Config{MaxDatagrams: 8, MaxBytes: 1 << 20, Timeout: 10 * time.Second, MaxPerSource: 4,
		Headroom: 4, MinHeaderLen: 2, MaxLen: 1000, MaxBuf: 4 + 1000}
}

func newTest(cfg Config) *Reassembler[byte, uint16, int] { return New[byte, uint16, int](cfg) }

// pattern returns n bytes that differ from one offset to the next.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

func TestCompleteAnyOrder(t *testing.T) {
	data := pattern(40)
	hdr := []byte{0xa, 0xb, 0xc}
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}, {2, 0, 1}} {
		r := newTest(testConfig())
		k := key{Src: 1, Dst: 2, ID: 3}
		var out []byte
		for n, p := range order {
			off, end := p*16, min(p*16+16, len(data))
			o, info, res := r.Add(k, off, data[off:end], p < 2, hdr, 42+p, t0)
			if n < 2 && res != Stored {
				t.Fatalf("order %v: fragment %d: %v, want Stored", order, p, res)
			}
			if n == 2 {
				if res != Complete || info != 42 {
					t.Fatalf("order %v: last fragment: %v info %d, want Complete with fragment zero's info 42", order, res, info)
				}
				out = o
			}
		}
		if want := append(append([]byte{}, hdr...), data...); !bytes.Equal(out, want) {
			t.Fatalf("order %v: got % x, want % x", order, out, want)
		}
		if s := r.Stats(); s.Reassembled != 1 || s.Datagrams != 0 || s.Bytes != 0 || s.Fragments != 3 {
			t.Fatalf("order %v: stats %+v", order, s)
		}
	}
}

func TestDuplicateAndOverlap(t *testing.T) {
	r := newTest(testConfig())
	k := key{Src: 1, ID: 1}
	d := pattern(32)
	if _, _, res := r.Add(k, 0, d[:16], true, []byte{1, 2}, 0, t0); res != Stored {
		t.Fatal(res)
	}
	if _, _, res := r.Add(k, 0, d[:16], true, []byte{1, 2}, 0, t0); res != Stored || r.Stats().Duplicates != 1 {
		t.Fatalf("duplicate: %v %+v", res, r.Stats())
	}
	if _, _, res := r.Add(k, 8, d[8:24], true, nil, 0, t0); res != Overlap {
		t.Fatalf("overlap: %v, want Overlap", res)
	}
	// RFC 5722 §4: later fragments, the missing ones too, are discarded.
	if _, _, res := r.Add(k, 16, d[16:], false, nil, 0, t0.Add(time.Second)); res != Discarded {
		t.Fatalf("after overlap: %v, want Discarded", res)
	}
	if s := r.Stats(); s.Overlaps != 1 || s.Discarded != 1 || s.Bytes != 0 || s.Datagrams != 1 {
		t.Fatalf("stats %+v", s)
	}
	// After its timeout the key starts a new datagram.
	later := t0.Add(testConfig().Timeout)
	r.Add(k, 0, d[:16], true, []byte{1, 2}, 0, later)
	if out, _, res := r.Add(k, 16, d[16:], false, nil, 0, later); res != Complete || !bytes.Equal(out[2:], d) {
		t.Fatalf("after timeout: %v", res)
	}
}

func TestContradictions(t *testing.T) {
	d := pattern(64)
	for _, tc := range []struct {
		name string
		add  func(r *Reassembler[byte, uint16, int]) Result
	}{
		{"two lasts", func(r *Reassembler[byte, uint16, int]) Result {
			r.Add(key{}, 16, d[16:32], false, nil, 0, t0)
			_, _, res := r.Add(key{}, 16, d[16:40], false, nil, 0, t0)
			return res
		}},
		{"data beyond the last", func(r *Reassembler[byte, uint16, int]) Result {
			r.Add(key{}, 16, d[16:32], false, nil, 0, t0)
			_, _, res := r.Add(key{}, 32, d[32:48], true, nil, 0, t0)
			return res
		}},
		{"last before data", func(r *Reassembler[byte, uint16, int]) Result {
			r.Add(key{}, 32, d[32:48], true, nil, 0, t0)
			_, _, res := r.Add(key{}, 16, d[16:24], false, nil, 0, t0)
			return res
		}},
		{"duplicate claiming to be last", func(r *Reassembler[byte, uint16, int]) Result {
			r.Add(key{}, 16, d[16:32], true, nil, 0, t0)
			_, _, res := r.Add(key{}, 16, d[16:32], false, nil, 0, t0)
			return res
		}},
	} {
		if res := tc.add(newTest(testConfig())); res != Overlap {
			t.Errorf("%s: %v, want Overlap", tc.name, res)
		}
	}
}

func TestInvalidAndTooLarge(t *testing.T) {
	r := newTest(testConfig())
	if _, _, res := r.Add(key{}, 0, pattern(12), true, []byte{1, 2}, 0, t0); res != Invalid {
		t.Fatalf("12 bytes with more to follow: %v, want Invalid", res)
	}
	if _, _, res := r.Add(key{}, 0, nil, true, []byte{1, 2}, 0, t0); res != Invalid {
		t.Fatalf("empty with more to follow: %v, want Invalid", res)
	}
	// MaxLen 1000 counts the header: 2 (MinHeaderLen, fragment zero not
	// yet in) + 992 + 8 > 1000.
	if _, _, res := r.Add(key{}, 992, pattern(8), false, nil, 0, t0); res != TooLarge {
		t.Fatalf("over MaxLen: %v, want TooLarge", res)
	}
	if _, _, res := r.Add(key{ID: 1}, 992, pattern(6), false, nil, 0, t0); res != Stored {
		t.Fatalf("at MaxLen: %v, want Stored", res)
	}
	// Fragment zero's longer header now makes it too large: discarded.
	if _, _, res := r.Add(key{ID: 1}, 0, pattern(8), true, []byte{1, 2, 3, 4}, 0, t0); res != TooLarge {
		t.Fatalf("longer header: %v, want TooLarge", res)
	}
	if _, _, res := r.Add(key{ID: 1}, 8, pattern(8), true, nil, 0, t0); res != Discarded {
		t.Fatalf("after TooLarge: %v, want Discarded", res)
	}
	r.Reject()
	if s := r.Stats(); s.Invalid != 3 || s.TooLarge != 2 || s.Fragments != 7 || s.Bytes != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestEvictions(t *testing.T) {
	cfg := testConfig()
	r := newTest(cfg)
	// Source 1 fills its share; its next datagram evicts its own oldest.
	for id := range uint16(cfg.MaxPerSource + 1) {
		r.Add(key{Src: 1, ID: id}, 0, pattern(8), true, []byte{1, 2}, 0, t0)
	}
	if s := r.Stats(); s.SourceEvictions != 1 || s.Datagrams != cfg.MaxPerSource {
		t.Fatalf("one source: %+v", s)
	}
	// Other sources fill MaxDatagrams; the next evicts the oldest of all.
	for src := byte(2); r.Stats().Datagrams < cfg.MaxDatagrams; src++ {
		r.Add(key{Src: src}, 0, pattern(8), true, []byte{1, 2}, 0, t0)
	}
	r.Add(key{Src: 99}, 0, pattern(8), true, []byte{1, 2}, 0, t0)
	if s := r.Stats(); s.Evictions != 1 || s.Datagrams != cfg.MaxDatagrams {
		t.Fatalf("all: %+v", s)
	}
	// The evicted one was source 1's oldest left, ID 1: its fragment starts anew.
	if _, _, res := r.Add(key{Src: 1, ID: 1}, 8, pattern(8), false, nil, 0, t0); res != Stored {
		t.Fatal(res)
	}
	if s := r.Stats(); s.Reassembled != 0 || s.Evictions != 2 {
		t.Fatalf("after: %+v", s)
	}
}

func TestMemoryBound(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBytes = 1024
	r := newTest(cfg)
	// 4+1000 bytes in the last size class (1004) plus a span: over 1024
	// only with another datagram, which goes.
	r.Add(key{ID: 1}, 0, pattern(8), true, []byte{1, 2}, 0, t0)
	if _, _, res := r.Add(key{ID: 2}, 900, pattern(96), false, nil, 0, t0); res != Stored {
		t.Fatal(res)
	}
	if s := r.Stats(); s.Evictions != 1 || s.Datagrams != 1 || s.Bytes > cfg.MaxBytes {
		t.Fatalf("%+v", s)
	}
	cfg.MaxBytes = 512
	r = newTest(cfg)
	if _, _, res := r.Add(key{}, 900, pattern(96), false, nil, 0, t0); res != Full {
		t.Fatalf("alone over MaxBytes: %v, want Full", res)
	}
	if s := r.Stats(); s.MemoryDrops != 1 || s.Datagrams != 0 || s.Bytes != 0 {
		t.Fatalf("%+v", s)
	}
}

func TestExpire(t *testing.T) {
	cfg := testConfig()
	r := newTest(cfg)
	r.Add(key{ID: 1}, 0, pattern(16), true, []byte{9, 8, 7}, 5, t0)
	r.Add(key{ID: 2}, 16, pattern(8), true, nil, 0, t0.Add(time.Second)) // no fragment zero
	if got := r.NextDeadline(); !got.Equal(t0.Add(cfg.Timeout)) {
		t.Fatalf("NextDeadline %v", got)
	}
	var calls int
	cb := func(k key, hdr, data []byte, info int) {
		calls++
		if k.ID != 1 || !bytes.Equal(hdr, []byte{9, 8, 7}) || !bytes.Equal(data, pattern(16)) || info != 5 {
			t.Errorf("timedOut(%v, % x, % x, %d)", k, hdr, data, info)
		}
	}
	r.Expire(t0.Add(cfg.Timeout-1), cb)
	if calls != 0 || r.Stats().Datagrams != 2 {
		t.Fatal("expired before its deadline")
	}
	r.Expire(t0.Add(cfg.Timeout), cb)
	if s := r.Stats(); calls != 1 || s.Timeouts != 1 || s.Datagrams != 1 {
		t.Fatalf("calls %d, %+v", calls, s)
	}
	r.Expire(t0.Add(time.Hour), cb)
	if s := r.Stats(); calls != 1 || s.Timeouts != 2 || s.Datagrams != 0 || s.Bytes != 0 || !r.NextDeadline().IsZero() {
		t.Fatalf("calls %d, %+v", calls, s)
	}
	if s := r.Stats(); s.SpareBytes == 0 {
		t.Fatal("expired buffers not kept for reuse")
	}
}

// TestFloodAllocs: once the flood has filled the bounds, a fragment of a
// datagram that never completes allocates nothing (records and buffers
// reused), and Expire neither.
func TestFloodAllocs(t *testing.T) {
	r := newTest(testConfig())
	d := pattern(64)
	var id uint16
	step := func() {
		id++
		r.Add(key{Src: byte(id), ID: id}, 0, d, true, []byte{1, 2}, 0, t0)
		r.Expire(t0, func(key, []byte, []byte, int) {})
	}
	for range 1000 {
		step()
	}
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Fatalf("%v allocations per flood fragment, want 0", n)
	}
}

// FuzzReassembler feeds fragments of a few datagrams in any order, with
// any offsets, lengths and times, and checks the bounds after each, and
// that a completed datagram is fragment zero's header followed by the
// bytes each offset was given (every fragment of datagram id carries
// byte(id+offset) at offset, so that any mix-up shows).
func FuzzReassembler(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0x88, 1, 0, 1, 4, 0, 4, 1, 0x88, 2, 0xff, 0, 0, 3, 0, 0, 0})
	f.Add([]byte{0, 0, 2, 1, 0, 2, 2, 0})
	f.Add([]byte{1, 3, 1, 0, 1, 0, 1, 1, 1, 3, 1, 0, 2, 0xff, 0x80, 3})
	f.Fuzz(func(t *testing.T, ops []byte) {
		cfg := testConfig()
		cfg.MaxDatagrams, cfg.MaxPerSource, cfg.MaxBytes = 4, 2, 2048
		r := newTest(cfg)
		buf := make([]byte, cfg.MaxLen)
		now := t0
		for len(ops) >= 4 {
			op, a, b, c := ops[0], ops[1], ops[2], ops[3]
			ops = ops[4:]
			k := key{Src: a & 3, ID: uint16(a >> 2 & 3)}
			off, n := int(b%125)*8, int(c&0x7f)
			if off+n > len(buf) {
				n = len(buf) - off
			}
			data := buf[:n]
			for i := range data {
				data[i] = byte(int(k.ID) + off + i)
			}
			hdr := []byte{byte(k.ID), 0xee}[:2-int(op&1)]
			switch op % 4 {
			case 0, 1:
				out, info, res := r.Add(k, off, data, c&0x80 != 0, hdr, int(k.ID), now)
				if res == Complete {
					if info != int(k.ID) || out[0] != byte(k.ID) {
						t.Fatalf("completed %v with info %d, header % x", k, info, out[:2])
					}
					hl := 1
					if len(out) > 1 && out[1] == 0xee {
						hl = 2
					}
					for i, x := range out[hl:] {
						if x != byte(int(k.ID)+i) {
							t.Fatalf("completed %v: byte %d is %#x", k, i, x)
						}
					}
				}
			case 2:
				now = now.Add(time.Duration(b) * time.Second / 8)
			case 3:
				r.Expire(now, func(k key, hdr, data []byte, info int) {
					if info != int(k.ID) || hdr[0] != byte(k.ID) {
						t.Fatalf("expired %v with info %d, header % x", k, info, hdr)
					}
				})
			}
			s := r.Stats()
			if s.Bytes < 0 || s.Bytes > cfg.MaxBytes || s.Datagrams > cfg.MaxDatagrams || s.SpareBytes > cfg.MaxBytes {
				t.Fatalf("bounds broken: %+v", s)
			}
		}
	})
}
