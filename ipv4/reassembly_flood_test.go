package ipv4

import (
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// fragFlood generates the fragments of a flood that never completes:
// tiny first fragments, full-sized middle ones, single octets near the
// 64 KiB end (each pins a buffer of the largest class), overlapping pairs,
// fragments of invalid length and fragments past 65535 octets, each from
// a source drawn from 198.18.0.0/15 (RFC 2544's benchmarking range) with a
// fresh identification.
type fragFlood struct {
	rng       *rand.Rand
	kinds     []Header
	overlap   Header // the second half of an overlapping pair
	pending   bool
	id        uint16
	src       [4]byte
	Generated int
}

func newFragFlood(t testing.TB, seed uint64) *fragFlood {
	pkt := makeDatagram(t, 0, nil, 65000, false)
	f := &fragFlood{rng: rand.New(rand.NewPCG(seed, seed))}
	f.kinds = []Header{
		fragmentAt(t, pkt, 0, 8, true),                  // tiny first fragment
		fragmentAt(t, pkt, 1480, 1480, true),            // a middle fragment
		fragmentAt(t, pkt, 64000, 8, true),              // one block near the end: a 64 KiB buffer
		fragmentAt(t, pkt, 0, 16, true),                 // first half of an overlapping pair
		fragmentAt(t, pkt[:HeaderLen+7000], 8, 5, true), // invalid: MF and not a multiple of 8
	}
	big := makeDatagram(t, 0, nil, 65000, false)
	tooLarge := fragmentAt(t, big, 64992, 8, true)
	setFragment(tooLarge, false, 65528) // 20 + 65528 + 8 > 65535
	f.kinds = append(f.kinds, tooLarge)
	f.overlap = fragmentAt(t, pkt, 8, 16, true)
	return f
}

// next returns the next flood fragment. It reuses its buffers: the
// Reassembler copies what it keeps.
func (f *fragFlood) next() Header {
	f.Generated++
	if f.pending { // same source and identification as the previous one
		f.pending = false
		h := f.overlap
		binary.BigEndian.PutUint16(h[4:], f.id)
		copy(h[offSource:], f.src[:])
		return h
	}
	k := f.rng.IntN(len(f.kinds))
	h := f.kinds[k]
	f.id++
	v := f.rng.Uint32() & (1<<17 - 1)
	f.src = [4]byte{198, 18 + byte(v>>16), byte(v >> 8), byte(v)}
	binary.BigEndian.PutUint16(h[4:], f.id)
	copy(h[offSource:], f.src[:])
	f.pending = k == 3
	return h
}

// TestReassemblyFlood injects 300,000 flood fragments into a Reassembler
// with its default bounds while a genuine 3,000-byte datagram, fragmented
// in three, arrives over and over with 16 flood fragments between its
// fragments: every genuine datagram completes, the bounds hold after
// every fragment, and every kind of flood fragment is counted.
func TestReassemblyFlood(t *testing.T) {
	r := NewReassembler(ReassemblyConfig{})
	cfg := r.cfg
	fl := newFragFlood(t, 1)
	pkt := makeDatagram(t, 0, nil, 3000, false)
	legit := fragments(t, pkt, 1500)
	const total, between = 300_000, 16
	now := t0
	completed, rounds, part := 0, 0, 0
	for i := 0; i < total; i++ {
		if i%between == 0 {
			f := legit[part]
			binary.BigEndian.PutUint16(f[4:], uint16(rounds))
			setChecksum(f[:HeaderLen])
			got, err := r.Add(mustHeader(t, f), now)
			if err != nil {
				t.Fatalf("genuine fragment %d of round %d: %v", part, rounds, err)
			}
			if part == len(legit)-1 {
				binary.BigEndian.PutUint16(pkt[4:], uint16(rounds))
				setChecksum(pkt[:HeaderLen])
				checkDatagram(t, got, pkt)
				completed++
				rounds++
			} else if got != nil {
				t.Fatalf("round %d completed at fragment %d", rounds, part)
			}
			part = (part + 1) % len(legit)
		}
		r.Add(fl.next(), now) // dropped or held: the flood never completes
		s := r.Stats()
		if s.Bytes > cfg.MaxBytes || s.Datagrams > cfg.MaxDatagrams || s.SpareBytes > cfg.MaxBytes {
			t.Fatalf("fragment %d: bounds broken: %+v", i, s)
		}
		now = now.Add(time.Microsecond)
	}
	s := r.Stats()
	t.Logf("%d flood fragments, %d genuine datagrams completed; stats %+v", fl.Generated, completed, s)
	if completed != rounds || completed < total/between/len(legit)-1 {
		t.Fatalf("%d of %d genuine datagrams completed", completed, rounds)
	}
	if s.Evictions == 0 || s.Overlaps == 0 || s.Invalid == 0 || s.TooLarge == 0 {
		t.Fatalf("a kind of flood fragment went uncounted: %+v", s)
	}
	if s.Reassembled != uint64(completed) {
		t.Fatalf("Reassembled %d, want %d (the flood must complete nothing)", s.Reassembled, completed)
	}
}

// TestReassemblyFloodAllocs checks that, once the flood has filled the
// bounds, a flood fragment costs no allocation: evicted datagrams' records
// and buffers are reused.
func TestReassemblyFloodAllocs(t *testing.T) {
	r := NewReassembler(ReassemblyConfig{})
	fl := newFragFlood(t, 2)
	// The warm-up lets each buffer class reach its high-water mark.
	for i := 0; i < 100000; i++ {
		r.Add(fl.next(), t0)
	}
	// testing.AllocsPerRun rounds down; count every allocation instead.
	const runs = 20000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < runs; i++ {
		r.Add(fl.next(), t0)
	}
	runtime.ReadMemStats(&after)
	if n := after.Mallocs - before.Mallocs; n > 0 {
		t.Fatalf("%d allocations in %d flood fragments in the steady state, want none", n, runs)
	}
}

// BenchmarkReassemblyFlood measures the cost of one flood fragment.
func BenchmarkReassemblyFlood(b *testing.B) {
	r := NewReassembler(ReassemblyConfig{})
	fl := newFragFlood(b, 3)
	for i := 0; i < 20000; i++ {
		r.Add(fl.next(), t0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Add(fl.next(), t0)
	}
}

// TestReassemblyOneSourceFlood: one host floods with datagrams that never
// complete, 200 fragments between each two of another host's: the other
// host's datagrams still complete, since the flooding source may hold
// only MaxPerSource datagrams and evicts its own.
func TestReassemblyOneSourceFlood(t *testing.T) {
	r := NewReassembler(ReassemblyConfig{})
	fl := newFragFlood(t, 4)
	pkt := makeDatagram(t, 0, nil, 3000, false)
	binary.BigEndian.PutUint32(pkt[offSource:], 0xc0000263) // 192.0.2.99: another host
	setChecksum(pkt[:HeaderLen])
	legit := fragments(t, pkt, 1500)
	completed := 0
	for round := 0; round < 50; round++ {
		for part, f := range legit {
			for i := 0; i < 200; i++ {
				h := fl.next()
				copy(h[offSource:], []byte{198, 18, 0, 1}) // every flood fragment from one source
				r.Add(h, t0)
			}
			got, err := r.Add(mustHeader(t, f), t0)
			if err != nil {
				t.Fatal(err)
			}
			if part == len(legit)-1 && got != nil {
				completed++
			}
		}
		for _, f := range legit { // a fresh identification for the next round
			binary.BigEndian.PutUint16(f[4:], uint16(round+1))
			setChecksum(f[:HeaderLen])
		}
	}
	s := r.Stats()
	t.Logf("one-source flood: %d of 50 datagrams completed; %+v", completed, s)
	if completed != 50 || s.SourceEvictions == 0 || s.Evictions != 0 {
		t.Fatalf("%d of 50 completed; SourceEvictions %d, Evictions %d (want >0 and 0)", completed, s.SourceEvictions, s.Evictions)
	}
}
