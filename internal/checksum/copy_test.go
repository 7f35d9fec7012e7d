package checksum

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestCopySum checks that CopySum copies as copy does and sums as Sum
// does, for lengths around the chunk size and odd ones, and for a dst
// shorter than src.
func TestCopySum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 3, 7, 64, copyChunk - 1, copyChunk, copyChunk + 1, 3*copyChunk + 5, 65535} {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(r.Uint32())
		}
		for _, dl := range []int{n, n / 2} {
			dst := make([]byte, dl)
			got, sum := CopySum(dst, src, 0x1234)
			if got != dl || !bytes.Equal(dst, src[:dl]) {
				t.Fatalf("n=%d dst=%d: copied %d bytes, want %d and equal bytes", n, dl, got, dl)
			}
			if want := naiveSum(src[:dl], 0x1234); sum != want && !(sum == 0xffff && want == 0) && !(sum == 0 && want == 0xffff) {
				t.Fatalf("n=%d dst=%d: sum %#04x, want %#04x", n, dl, sum, want)
			}
		}
	}
}
