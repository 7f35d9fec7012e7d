package tcp

import (
	"bytes"
	"testing"
)

func TestRingWrap(t *testing.T) {
	r := newRing(8)
	if r.buf != nil {
		t.Fatal("ring allocated before the first write")
	}
	if n := r.Write([]byte("abcdef")); n != 6 {
		t.Fatalf("Write %d", n)
	}
	p := make([]byte, 4)
	if n := r.Read(p); n != 4 || string(p) != "abcd" {
		t.Fatalf("Read %d %q", n, p)
	}
	if n := r.Write([]byte("ghijklmn")); n != 6 || r.Len() != 8 || r.Free() != 0 {
		t.Fatalf("Write %d Len %d Free %d", n, r.Len(), r.Free())
	}
	got := make([]byte, 8)
	if n := r.CopyAt(got, 1); n != 7 || string(got[:n]) != "fghijkl" {
		t.Fatalf("CopyAt %d %q", n, got[:n])
	}
	r.Discard(3)
	if n := r.Read(got); n != 5 || string(got[:n]) != "hijkl" {
		t.Fatalf("Read %d %q", n, got[:n])
	}
	// Out-of-order storage beyond the in-order part, across the wrap.
	r.WriteAt(2, []byte("XYZ"))
	r.WriteAt(0, []byte("VW"))
	r.Commit(5)
	if n := r.Read(got); n != 5 || string(got[:n]) != "VWXYZ" {
		t.Fatalf("Read %d %q", n, got[:n])
	}
}

// TestRingGrows checks that a ring starts small and grows, wrapped and
// with out-of-order bytes stored past its in-order end, without losing or
// moving a byte, and never beyond its size.
func TestRingGrows(t *testing.T) {
	const size = 64 << 10
	r := newRing(size)
	var model []byte // the bytes the ring should hold, by offset
	next := byte(0)
	fill := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = next
			next++
		}
		return p
	}
	check := func(what string) {
		t.Helper()
		got := make([]byte, r.Len())
		if n := r.CopyAt(got, 0); n != r.Len() || !bytes.Equal(got, model[:r.Len()]) {
			t.Fatalf("%s: ring holds %d bytes that differ from the model", what, n)
		}
		if len(r.buf) > size {
			t.Fatalf("%s: buffer %d beyond size %d", what, len(r.buf), size)
		}
	}
	// Write 3 KiB, read 2 KiB: head moves inside the first allocation.
	p := fill(3 << 10)
	r.Write(p)
	model = append(model, p...)
	if len(r.buf) != minRingAlloc {
		t.Fatalf("first allocation %d, want %d", len(r.buf), minRingAlloc)
	}
	r.Discard(2 << 10)
	model = model[2<<10:]
	// Wrap, then store out-of-order bytes beyond a gap: both force growth.
	p = fill(2 << 10)
	r.Write(p)
	model = append(model, p...)
	check("wrapped")
	gap := fill(5 << 10)
	ooo := fill(20 << 10)
	r.WriteAt(r.Len()+len(gap), ooo)
	r.WriteAt(r.Len(), gap)
	r.Commit(len(gap) + len(ooo))
	model = append(model, gap...)
	model = append(model, ooo...)
	check("grown with out-of-order data")
	// Fill to the size exactly.
	p = fill(r.Free())
	if n := r.Write(p); n != len(p) || r.Free() != 0 {
		t.Fatalf("Write %d of %d, Free %d", n, len(p), r.Free())
	}
	model = append(model, p...)
	check("full")
	if len(r.buf) != size {
		t.Fatalf("full ring has %d bytes, want %d", len(r.buf), size)
	}
	r.Discard(size)
	if r.Len() != 0 {
		t.Fatalf("Len %d after discarding everything", r.Len())
	}
}

func TestRangeSet(t *testing.T) {
	var s rangeSet
	add := func(a, b Value) bool { return s.Add(a, b) }
	add(100, 110)
	add(130, 140)
	add(120, 125)
	add(125, 130) // touches both neighbours: merges into 120-140
	want := []seqRange{{100, 110}, {120, 140}}
	if s.Len() != 2 || !bytes.Equal(rangesBytes(s.r[:s.n]), rangesBytes(want)) {
		t.Fatalf("ranges %v", s.r[:s.n])
	}
	add(105, 150) // covers everything from 105
	if s.Len() != 1 || s.r[0] != (seqRange{100, 150}) {
		t.Fatalf("ranges %v", s.r[:s.n])
	}
	for i := 0; i < maxOOORanges-1; i++ {
		if !add(Value(200+10*i), Value(205+10*i)) {
			t.Fatalf("range %d refused", i)
		}
	}
	if add(1000, 1001) {
		t.Fatal("range beyond the bound accepted")
	}
	if !add(203, 212) { // merges two existing ranges: always fits
		t.Fatal("merging range refused")
	}
	if _, ok := s.PopFront(99); ok {
		t.Fatal("popped a range beyond nxt")
	}
	if r, ok := s.PopFront(100); !ok || r != (seqRange{100, 150}) {
		t.Fatalf("PopFront %v %v", r, ok)
	}
	// Sequence numbers wrap.
	var w rangeSet
	w.Add(0xfffffff0, 0xfffffff8)
	w.Add(4, 8)
	w.Add(0xfffffff8, 4)
	if w.Len() != 1 || w.r[0] != (seqRange{0xfffffff0, 8}) {
		t.Fatalf("wrapped ranges %v", w.r[:w.n])
	}
}

func rangesBytes(rs []seqRange) []byte {
	var b []byte
	for _, r := range rs {
		b = append(b, byte(r.start), byte(r.start>>8), byte(r.end), byte(r.end>>8))
	}
	return b
}

// TestRingReleasesWhenEmpty: a small ring that empties gives its memory
// back and takes it again with the next write, bytes intact; a grown
// ring keeps its buffer.
func TestRingReleasesWhenEmpty(t *testing.T) {
	r := newRing(64 << 10)
	r.Write([]byte("hello"))
	if len(r.buf) != minRingAlloc {
		t.Fatalf("buffer %d bytes after a small write, want %d", len(r.buf), minRingAlloc)
	}
	r.release() // not empty: kept
	if r.buf == nil {
		t.Fatal("a ring holding bytes released its buffer")
	}
	p := make([]byte, 5)
	if n := r.Read(p); n != 5 || string(p) != "hello" {
		t.Fatalf("read %q", p[:n])
	}
	r.release()
	if r.buf != nil || r.Len() != 0 {
		t.Fatalf("empty ring kept %d bytes of buffer", len(r.buf))
	}
	r.Write([]byte("again"))
	if n := r.Read(p); n != 5 || string(p) != "again" {
		t.Fatalf("read %q after release", p[:n])
	}
	big := make([]byte, 3*minRingAlloc)
	r.Write(big)
	r.Discard(r.Len())
	r.release()
	if len(r.buf) <= minRingAlloc {
		t.Fatalf("grown ring released its buffer (%d bytes left)", len(r.buf))
	}
}
