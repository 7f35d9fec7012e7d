package bench

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// TestPattern: the pattern read with Read and written with WriteTo are
// the same bytes, of the size asked, repeating the block; and its check
// catches a piece moved by one whole block, a dropped byte and a flipped
// bit.
func TestPattern(t *testing.T) {
	const size = 3*patternBlockLen + 12345
	var viaWrite bytes.Buffer
	if n, err := io.Copy(&viaWrite, pattern(size)); err != nil || n != size {
		t.Fatalf("WriteTo: %d, %v", n, err)
	}
	viaRead, err := io.ReadAll(io.LimitReader(struct{ io.Reader }{pattern(size)}, size+1)) // Read only
	if err != nil || !bytes.Equal(viaRead, viaWrite.Bytes()) {
		t.Fatalf("Read gave %d bytes (%v), WriteTo %d, or they differ", len(viaRead), err, viaWrite.Len())
	}
	b := viaWrite.Bytes()
	if !bytes.Equal(b[patternUnitLen+8:2*patternUnitLen], patternBlock()) || bytes.Equal(b[8:72], b[72:136]) {
		t.Fatal("the pattern does not repeat its block, or the block is not random")
	}
	if n := b[2*patternUnitLen : 2*patternUnitLen+8]; !bytes.Equal(n, []byte{0, 0, 0, 0, 0, 0, 0, 2}) {
		t.Fatalf("the third repetition's number is % x", n)
	}
	want := patternSum(size)
	sum := func(b []byte) [checkSize]byte {
		h := newCheck()
		h.Write(b)
		var s [checkSize]byte
		h.Sum(s[:0])
		return s
	}
	if sum(b) != want {
		t.Fatal("patternSum differs from the sum of the bytes")
	}
	// A piece of 70,000 bytes delivered one block late: the same bytes
	// in a different order.
	moved := append([]byte(nil), b...)
	copy(moved[patternUnitLen-100:], b[2*patternUnitLen-100:2*patternUnitLen-100+70000])
	copy(moved[2*patternUnitLen-100:], b[patternUnitLen-100:patternUnitLen-100+70000])
	if bytes.Equal(moved, b) {
		t.Fatal("the moved piece left the bytes as they were")
	}
	flipped := append([]byte(nil), b...)
	flipped[size/2] ^= 0x10
	for name, c := range map[string][]byte{"moved": moved, "flipped": flipped, "short": b[:size-1]} {
		if sum(c) == want {
			t.Errorf("%s: the check did not change", name)
		}
	}
}

// medianRun takes the middle run by time, failures counted as the
// slowest.
func TestMedianRun(t *testing.T) {
	r := func(ms int, fail bool) lossyResult {
		x := lossyResult{elapsed: time.Duration(ms) * time.Millisecond}
		if fail {
			x.err = errTimeout
		}
		return x
	}
	for _, tc := range []struct {
		runs []lossyResult
		want time.Duration
		fail bool
	}{
		{[]lossyResult{r(30, false), r(10, false), r(20, false)}, 20 * time.Millisecond, false},
		{[]lossyResult{r(5, true), r(10, false), r(20, false)}, 20 * time.Millisecond, false},
		{[]lossyResult{r(5, true), r(10, false), r(1, true)}, 0, true},
		{[]lossyResult{r(7, false)}, 7 * time.Millisecond, false},
	} {
		got := medianRun(tc.runs)
		if (got.err != nil) != tc.fail || !tc.fail && got.elapsed != tc.want {
			t.Errorf("medianRun of %v = %v, %v; want %v (failed %v)", tc.runs, got.elapsed, got.err, tc.want, tc.fail)
		}
	}
}
