package checksum

// copyChunk is how much CopySum copies before it sums: small enough that
// the sum reads what the copy just wrote from the L1 cache, so that copy
// and checksum cost one pass over memory; even, so every chunk starts on
// a 16-bit word boundary of the whole.
const copyChunk = 2048

// CopySum copies src into dst, as copy does, and returns the number of
// bytes copied and their one's-complement sum added to initial (as Sum
// would return for dst[:n]): the checksum is folded into a copy made
// anyway (RFC 1071 §4.2 suggests the same for the data path).
func CopySum(dst, src []byte, initial uint16) (int, uint16) {
	n := min(len(dst), len(src))
	sum := initial
	for i := 0; i < n; i += copyChunk {
		end := min(i+copyChunk, n)
		copy(dst[i:end], src[i:end])
		sum = Sum(dst[i:end], sum)
	}
	return n, sum
}
