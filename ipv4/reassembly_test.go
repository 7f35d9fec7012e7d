package ipv4

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// mustHeader parses b or fails the test.
func mustHeader(t testing.TB, b []byte) Header {
	t.Helper()
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// checkDatagram verifies that got is pkt reassembled: same bytes except
// the header's flags, offset, length and checksum, which must be those of
// a whole datagram.
func checkDatagram(t testing.TB, got, pkt []byte) {
	t.Helper()
	h, err := ParseHeader(got)
	if err != nil {
		t.Fatalf("reassembled datagram does not parse: %v", err)
	}
	if h.IsFragment() || len(h) != len(pkt) {
		t.Fatalf("reassembled: fragment %v, len %d want %d", h.IsFragment(), len(h), len(pkt))
	}
	if !bytes.Equal(got, pkt) {
		t.Fatalf("reassembled datagram differs:\n got %x\nwant %x", got, pkt)
	}
}

// feed adds the fragments in the given order and returns what the last
// one completed; earlier fragments must not complete anything.
func feed(t *testing.T, r *Reassembler, fs [][]byte, order []int) []byte {
	t.Helper()
	var out []byte
	for n, i := range order {
		got, err := r.Add(mustHeader(t, fs[i]), t0)
		if err != nil {
			t.Fatalf("Add(fragment %d): %v", i, err)
		}
		if got != nil && n != len(order)-1 {
			t.Fatalf("fragment %d completed early", i)
		}
		out = got
	}
	return out
}

func TestReassemblyOrders(t *testing.T) {
	pkt := makeDatagram(t, 42, nil, 4000, false)
	fs := fragments(t, pkt, 1000) // 5 fragments
	for _, tc := range []struct {
		name  string
		order []int
	}{
		{"in order", []int{0, 1, 2, 3, 4}},
		{"reverse", []int{4, 3, 2, 1, 0}},
		{"out of order", []int{2, 0, 4, 1, 3}},
		{"last first", []int{4, 0, 1, 2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReassembler(ReassemblyConfig{})
			got := feed(t, r, fs, tc.order)
			checkDatagram(t, got, pkt)
			s := r.Stats()
			if s.Reassembled != 1 || s.Datagrams != 0 || s.Bytes != 0 || s.Fragments != 5 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

func TestReassemblyWithOptions(t *testing.T) {
	opts := []byte{0x07, 7, 4, 0, 0, 0, 0, 0, 0x82, 4, 0, 0} // record route (not copied), copied option
	pkt := makeDatagram(t, 42, opts, 3000, false)
	fs := fragments(t, pkt, 576)
	r := NewReassembler(ReassemblyConfig{})
	order := make([]int, len(fs))
	for i := range order {
		order[i] = len(fs) - 1 - i
	}
	checkDatagram(t, feed(t, r, fs, order), pkt)
}

func TestReassemblyNotFragment(t *testing.T) {
	pkt := makeDatagram(t, 1, nil, 10, false)
	r := NewReassembler(ReassemblyConfig{})
	got, err := r.Add(mustHeader(t, pkt), t0)
	if err != nil || !bytes.Equal(got, pkt) {
		t.Errorf("got %x, %v", got, err)
	}
}

func TestReassemblyDuplicate(t *testing.T) {
	pkt := makeDatagram(t, 42, nil, 3000, false)
	fs := fragments(t, pkt, 1000)
	r := NewReassembler(ReassemblyConfig{})
	for _, i := range []int{0, 1, 1, 0} {
		if got, err := r.Add(mustHeader(t, fs[i]), t0); got != nil || err != nil {
			t.Fatalf("Add(%d) = %x, %v", i, got, err)
		}
	}
	got, err := r.Add(mustHeader(t, fs[3]), t0)
	if err != nil || got != nil {
		t.Fatalf("Add(3) = %x, %v", got, err)
	}
	got, _ = r.Add(mustHeader(t, fs[3]), t0) // duplicate last: no completion yet
	if got != nil {
		t.Fatal("duplicate completed")
	}
	got, _ = r.Add(mustHeader(t, fs[2]), t0)
	checkDatagram(t, got, pkt)
	if s := r.Stats(); s.Duplicates != 3 || s.Overlaps != 0 {
		t.Errorf("stats %+v", s)
	}
}

// fragmentAt builds a fragment of pkt's data [off, off+n) with MF set as
// given.
func fragmentAt(t testing.TB, pkt []byte, off, n int, mf bool) Header {
	t.Helper()
	f := make([]byte, HeaderLen+n)
	copy(f, pkt[:HeaderLen])
	copy(f[HeaderLen:], pkt[HeaderLen+off:HeaderLen+off+n])
	f[2], f[3] = byte(len(f)>>8), byte(len(f))
	setFragment(f, mf, off)
	setChecksum(f[:HeaderLen])
	return mustHeader(t, f)
}

func TestReassemblyOverlap(t *testing.T) {
	pkt := makeDatagram(t, 7, nil, 128, false)
	for _, tc := range []struct {
		name   string
		first  [3]int // off, len, mf
		second [3]int
	}{
		{"inside", [3]int{0, 32, 1}, [3]int{8, 8, 1}},
		{"straddles end", [3]int{0, 16, 1}, [3]int{8, 16, 1}},
		{"straddles start", [3]int{16, 16, 1}, [3]int{8, 16, 1}},
		{"contains", [3]int{16, 8, 1}, [3]int{8, 24, 1}},
		{"same offset, longer", [3]int{16, 8, 1}, [3]int{16, 16, 1}},
		{"same offset, shorter", [3]int{16, 16, 1}, [3]int{16, 8, 1}},
		{"data past the last fragment", [3]int{16, 16, 0}, [3]int{40, 8, 1}},
		{"two different ends", [3]int{32, 32, 0}, [3]int{64, 8, 0}},
		{"last before received data", [3]int{40, 16, 1}, [3]int{16, 8, 0}},
		{"duplicate claims last", [3]int{16, 8, 1}, [3]int{16, 8, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReassembler(ReassemblyConfig{})
			a := fragmentAt(t, pkt, tc.first[0], tc.first[1], tc.first[2] == 1)
			b := fragmentAt(t, pkt, tc.second[0], tc.second[1], tc.second[2] == 1)
			if _, err := r.Add(a, t0); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Add(b, t0); !errors.Is(err, ErrFragmentOverlap) {
				t.Fatalf("err = %v, want ErrFragmentOverlap", err)
			}
			// The whole datagram is gone: even the right fragments are
			// discarded until the timeout.
			fs := fragments(t, pkt, 36)
			for _, f := range fs {
				if got, err := r.Add(mustHeader(t, f), t0.Add(time.Second)); got != nil || !errors.Is(err, ErrFragmentOverlap) {
					t.Fatalf("after overlap: %x, %v", got, err)
				}
			}
			s := r.Stats()
			if s.Overlaps != 1 || s.Discarded != uint64(len(fs)) || s.Bytes != 0 || s.Datagrams != 1 {
				t.Errorf("stats %+v", s)
			}
			// After the timeout the key is free again.
			called := false
			r.Expire(t0.Add(DefaultReassemblyTimeout), func([]byte) { called = true })
			if called || r.Stats().Timeouts != 0 || r.Stats().Datagrams != 0 {
				t.Errorf("a discarded datagram timed out: %+v", r.Stats())
			}
			later := t0.Add(DefaultReassemblyTimeout + time.Second)
			var got []byte
			for _, f := range fs {
				var err error
				if got, err = r.Add(mustHeader(t, f), later); err != nil {
					t.Fatal(err)
				}
			}
			checkDatagram(t, got, pkt)
		})
	}
}

func TestReassemblyDiscardedKeyReusedWithoutExpire(t *testing.T) {
	pkt := makeDatagram(t, 7, nil, 64, false)
	r := NewReassembler(ReassemblyConfig{Timeout: time.Second})
	r.Add(fragmentAt(t, pkt, 0, 32, true), t0)
	r.Add(fragmentAt(t, pkt, 8, 8, true), t0) // overlap
	fs := fragments(t, pkt, 52)
	now := t0.Add(time.Second) // deadline reached, Expire not called
	r.Add(mustHeader(t, fs[0]), now)
	got, err := r.Add(mustHeader(t, fs[1]), now)
	if err != nil {
		t.Fatal(err)
	}
	checkDatagram(t, got, pkt)
}

func TestReassemblyTimeout(t *testing.T) {
	pkt := makeDatagram(t, 9, nil, 3000, false)
	fs := fragments(t, pkt, 1000)
	for _, tc := range []struct {
		name      string
		send      []int
		wantFirst bool
	}{
		{"with fragment zero", []int{0, 2}, true},
		{"without fragment zero", []int{1, 2}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReassembler(ReassemblyConfig{Timeout: 30 * time.Second})
			if !r.NextDeadline().IsZero() {
				t.Error("deadline with nothing pending")
			}
			for _, i := range tc.send {
				r.Add(mustHeader(t, fs[i]), t0)
			}
			if d := r.NextDeadline(); !d.Equal(t0.Add(30 * time.Second)) {
				t.Errorf("NextDeadline = %v", d)
			}
			var got [][]byte
			timedOut := func(b []byte) { got = append(got, bytes.Clone(b)) }
			r.Expire(t0.Add(30*time.Second-1), timedOut)
			if len(got) != 0 || r.Stats().Datagrams != 1 {
				t.Fatal("expired early")
			}
			r.Expire(t0.Add(30*time.Second), timedOut)
			if s := r.Stats(); s.Timeouts != 1 || s.Datagrams != 0 || s.Bytes != 0 {
				t.Errorf("stats %+v", s)
			}
			if !tc.wantFirst {
				if len(got) != 0 {
					t.Errorf("timedOut called without fragment zero")
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("timedOut called %d times, want 1", len(got))
			}
			// Fragment zero's header as received, then 8 data bytes.
			if want := fs[0][:HeaderLen+8]; !bytes.Equal(got[0], want) {
				t.Errorf("timedOut got %x\nwant %x", got[0], want)
			}
			if !r.NextDeadline().IsZero() {
				t.Error("deadline left after expiry")
			}
		})
	}
}

func TestReassemblyMemoryBound(t *testing.T) {
	r := NewReassembler(ReassemblyConfig{MaxBytes: 10000})
	pkt := makeDatagram(t, 1, nil, 8000, false)
	// One fragment at the end reserves the whole datagram.
	if _, err := r.Add(fragmentAt(t, pkt, 7400, 600, false), t0); err != nil {
		t.Fatal(err)
	}
	if b := r.Stats().Bytes; b <= 8000 || b > 10000 {
		t.Fatalf("Bytes = %d", b)
	}
	// A second datagram of the same size does not fit beside it: the
	// older one is evicted.
	other := makeDatagram(t, 2, nil, 8000, false)
	if _, err := r.Add(fragmentAt(t, other, 7400, 600, false), t0); err != nil {
		t.Fatalf("err = %v, want the older datagram evicted", err)
	}
	if s := r.Stats(); s.Evictions != 1 || s.Datagrams != 1 || s.Bytes > 10000 {
		t.Errorf("stats %+v", s)
	}
	// The newer one completes.
	var got []byte
	fs := fragments(t, other, 1500)
	for _, f := range fs[:len(fs)-1] { // the last one came first
		if out, err := r.Add(mustHeader(t, f), t0); err != nil {
			t.Fatal(err)
		} else if out != nil {
			got = out
		}
	}
	checkDatagram(t, got, other)
	if s := r.Stats(); s.Bytes != 0 {
		t.Errorf("Bytes = %d after completion", s.Bytes)
	}
	// A datagram that alone needs more than MaxBytes is refused.
	small := NewReassembler(ReassemblyConfig{MaxBytes: 4000})
	if _, err := small.Add(fragmentAt(t, pkt, 7400, 600, false), t0); !errors.Is(err, ErrReassemblyFull) {
		t.Fatalf("err = %v, want ErrReassemblyFull", err)
	}
	if s := small.Stats(); s.MemoryDrops != 1 || s.Datagrams != 0 || s.Bytes != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestReassemblyMaxDatagrams(t *testing.T) {
	r := NewReassembler(ReassemblyConfig{MaxDatagrams: 2})
	pkts := make([][]byte, 3)
	for id := range uint16(3) {
		pkts[id] = makeDatagram(t, id, nil, 100, false)
		if _, err := r.Add(fragmentAt(t, pkts[id], 0, 8, true), t0); err != nil {
			t.Fatal(err)
		}
	}
	// One source holds them all: its share (here all of MaxDatagrams)
	// evicts its own oldest.
	if s := r.Stats(); s.Evictions+s.SourceEvictions != 1 || s.Datagrams != 2 {
		t.Errorf("stats %+v", s)
	}
	// Datagrams 1 and 2 complete; 0, the oldest, was evicted, so its
	// last fragment starts a new datagram instead.
	for _, id := range []int{2, 1} {
		got, err := r.Add(fragmentAt(t, pkts[id], 8, 92, false), t0)
		if err != nil {
			t.Fatal(err)
		}
		checkDatagram(t, got, pkts[id])
	}
	if got, err := r.Add(fragmentAt(t, pkts[0], 8, 92, false), t0); err != nil || got != nil {
		t.Fatalf("evicted datagram: got %d bytes, %v", len(got), err)
	}
	if s := r.Stats(); s.Datagrams != 1 || s.Reassembled != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestReassemblyInvalid(t *testing.T) {
	pkt := makeDatagram(t, 1, nil, 100, false)
	r := NewReassembler(ReassemblyConfig{})
	for _, tc := range []struct {
		name string
		h    Header
		want error
	}{
		{"MF, 7 bytes", fragmentAt(t, pkt, 0, 7, true), ErrFragmentInvalid},
		{"MF, no data", fragmentAt(t, pkt, 8, 0, true), ErrFragmentInvalid},
		{"ping of death", func() Header {
			f := make([]byte, HeaderLen+16)
			copy(f, pkt[:HeaderLen])
			f[2], f[3] = 0, byte(len(f))
			setFragment(f, false, 65528)
			setChecksum(f[:HeaderLen])
			return mustHeader(t, f)
		}(), ErrFragmentTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := r.Add(tc.h, t0); got != nil || !errors.Is(err, tc.want) {
				t.Errorf("got %x, %v; want %v", got, err, tc.want)
			}
		})
	}
	if s := r.Stats(); s.Invalid != 2 || s.TooLarge != 1 || s.Datagrams != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestReassemblyTooLargeWithOptions(t *testing.T) {
	// Data ending at 65504 fits behind a 20-byte header, not behind the
	// 40-byte one of fragment zero: the datagram is discarded.
	opts := make([]byte, 20)
	opts[0] = 1
	pkt := makeDatagram(t, 3, opts, 8, false)
	r := NewReassembler(ReassemblyConfig{})
	tail := make([]byte, HeaderLen+16)
	copy(tail, pkt[:HeaderLen])
	tail[0] = 0x45
	tail[2], tail[3] = 0, byte(len(tail))
	setFragment(tail, false, 65488)
	setChecksum(tail[:HeaderLen])
	if _, err := r.Add(mustHeader(t, tail), t0); err != nil {
		t.Fatal(err)
	}
	first := bytes.Clone(pkt)
	setFragment(first, true, 0)
	setChecksum(first[:40])
	if _, err := r.Add(mustHeader(t, first), t0); !errors.Is(err, ErrFragmentTooLarge) {
		t.Fatalf("err = %v, want ErrFragmentTooLarge", err)
	}
}

func TestReassemblyInterleaved(t *testing.T) {
	a := makeDatagram(t, 1, nil, 3000, false)
	b := makeDatagram(t, 2, nil, 2000, false)
	b[HeaderLen] ^= 0xff // different content
	setChecksum(b[:HeaderLen])
	fa, fb := fragments(t, a, 800), fragments(t, b, 800)
	r := NewReassembler(ReassemblyConfig{})
	var done [][]byte
	for i := range max(len(fa), len(fb)) {
		for _, fs := range [][][]byte{fa, fb} {
			if i < len(fs) {
				if got, err := r.Add(mustHeader(t, fs[len(fs)-1-i]), t0); err != nil {
					t.Fatal(err)
				} else if got != nil {
					done = append(done, got)
				}
			}
		}
	}
	if len(done) != 2 {
		t.Fatalf("%d datagrams, want 2", len(done))
	}
	checkDatagram(t, done[0], b) // b has fewer fragments
	checkDatagram(t, done[1], a)
}

func TestReassemblyRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := NewReassembler(ReassemblyConfig{})
	for iter := range 200 {
		n := 1 + rng.IntN(20000)
		var opts []byte
		if rng.IntN(2) == 0 {
			opts = []byte{0x82, 6, 1, 2, 3, 4, 0x07, 7, 4, 0, 0, 0, 0, 0, 1, 0}
		}
		pkt := makeDatagram(t, uint16(iter), opts, n, false)
		mtu := 68 + rng.IntN(1500)
		fs := fragments(t, pkt, mtu)
		rng.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
		// A few duplicates too, before the last fragment.
		for range rng.IntN(3) {
			if len(fs) > 1 {
				i := rng.IntN(len(fs) - 1)
				fs = append(fs[:i+1], fs[i:]...)
			}
		}
		var got []byte
		for _, f := range fs {
			out, err := r.Add(mustHeader(t, f), t0)
			if err != nil {
				t.Fatalf("iteration %d: %v", iter, err)
			}
			if out != nil {
				if got != nil {
					t.Fatalf("iteration %d: completed twice", iter)
				}
				got = out
			}
		}
		checkDatagram(t, got, pkt)
	}
	if s := r.Stats(); s.Datagrams != 0 || s.Bytes != 0 {
		t.Errorf("left over: %+v", s)
	}
}

// FuzzReassembly feeds fragments cut from one datagram, in an order and
// with boundaries chosen by the input, possibly overlapping. It must never
// panic, any returned datagram must parse, and its data must be the
// original's (all fragments carry the same bytes for the same offsets).
func FuzzReassembly(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 1, 1, 0, 2, 2, 0})
	f.Add([]byte{1, 3, 5, 1, 0, 4, 4, 0, 2, 2, 1})
	f.Add([]byte{2, 0, 2, 2, 0, 2, 0, 2, 0, 1, 3, 0, 4, 4, 1})
	f.Add(bytes.Repeat([]byte{7, 1, 9}, 30))
	const dataLen = 512
	pkt := makeDatagram(f, 77, nil, dataLen, false)
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReassembler(ReassemblyConfig{MaxDatagrams: 2, MaxBytes: 4000, Timeout: 10 * time.Second})
		now := t0
		// Each fragment takes 3 bytes: offset (8-byte units), length
		// (8-byte units; 0 means a short last piece), and flags: bit 0 MF,
		// bit 1 another ID, bit 2 advance the clock and expire, bit 3 an
		// odd (invalid unless last) length.
		for len(in) >= 3 {
			off := int(in[0]) % (dataLen / 8) * 8
			n := int(in[1]) % 9 * 8
			fl := in[2]
			in = in[3:]
			if fl&8 != 0 {
				n += 3
			}
			if off+n > dataLen {
				n = dataLen - off
			}
			mf := fl&1 != 0
			id := uint16(77)
			if fl&2 != 0 {
				id = 78
			}
			frag := make([]byte, HeaderLen+n)
			copy(frag, pkt[:HeaderLen])
			copy(frag[HeaderLen:], pkt[HeaderLen+off:HeaderLen+off+n])
			frag[2], frag[3] = byte(len(frag)>>8), byte(len(frag))
			frag[4], frag[5] = byte(id>>8), byte(id)
			setFragment(frag, mf, off)
			setChecksum(frag[:HeaderLen])
			h, err := ParseHeader(frag)
			if err != nil {
				t.Fatal(err)
			}
			if fl&4 != 0 {
				now = now.Add(time.Duration(fl>>4) * time.Second)
				r.Expire(now, func(b []byte) {
					if len(b) < HeaderLen+1 || len(b) > MaxHeaderLen+8 {
						t.Fatalf("timedOut got %d bytes", len(b))
					}
				})
			}
			got, err := r.Add(h, now)
			if got == nil {
				continue
			}
			if err != nil {
				t.Fatalf("datagram and error %v", err)
			}
			gh, err := ParseHeader(got)
			if err != nil {
				t.Fatalf("returned datagram does not parse: %v", err)
			}
			if gh.IsFragment() && h.IsFragment() {
				t.Fatal("returned datagram is a fragment")
			}
			if !bytes.Equal(gh.Payload(), pkt[HeaderLen:HeaderLen+len(gh.Payload())]) {
				t.Fatal("returned data differs from the original")
			}
		}
		s := r.Stats()
		if s.Bytes < 0 || s.Bytes > 4000 || s.Datagrams > 2 {
			t.Fatalf("bounds broken: %+v", s)
		}
		r.Expire(now.Add(time.Hour), nil)
		if s := r.Stats(); s.Bytes != 0 || s.Datagrams != 0 {
			t.Fatalf("left over after expiry: %+v", s)
		}
	})
}
