package tcp

// Value is a TCP sequence number. RFC 9293 §3.4: the sequence number
// space "ranges from 0 to 2^32 - 1. Since the space is finite, all
// arithmetic dealing with sequence numbers must be performed modulo 2^32."
// Comparisons are those of serial number arithmetic: v is less than w when
// the distance from v forward to w is below 2^31, so they stay correct
// across the wrap from 2^32 - 1 to 0 as long as the two values are within
// 2^31 of each other, which windows of at most 2^30 (RFC 7323 §2.3)
// guarantee.
type Value uint32

// LessThan reports whether v comes before w in sequence space ("<" of
// RFC 9293 §3.4, modulo 2^32).
func (v Value) LessThan(w Value) bool { return int32(v-w) < 0 }

// LessThanEq reports whether v comes before w or equals it (RFC 9293
// §3.4: 'The symbol "=<" means "less than or equal" (modulo 2^32)').
func (v Value) LessThanEq(w Value) bool { return int32(v-w) <= 0 }

// GreaterThan reports whether v comes after w in sequence space.
func (v Value) GreaterThan(w Value) bool { return int32(v-w) > 0 }

// GreaterThanEq reports whether v comes after w or equals it.
func (v Value) GreaterThanEq(w Value) bool { return int32(v-w) >= 0 }

// InWindow reports whether first <= v < first+size in sequence space, the
// test RFC 9293 §3.4 uses for segment acceptability
// ("RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND"). A window of size 0 contains
// nothing.
func (v Value) InWindow(first Value, size uint32) bool {
	// v - first is the forward distance from the window's left edge; it is
	// in range exactly when it is smaller than the size (this is also
	// correct for windows of 2^31 or more, where signed comparisons
	// would not be).
	return uint32(v-first) < size
}

// Add returns v advanced by n octets of sequence space, modulo 2^32.
func (v Value) Add(n uint32) Value { return v + Value(n) }

// Sub returns the forward distance from w to v, v - w modulo 2^32 (for
// example SND.NXT - SND.UNA, the octets in flight).
func (v Value) Sub(w Value) uint32 { return uint32(v - w) }

// Max returns the later of a and b in sequence space.
func Max(a, b Value) Value {
	if a.GreaterThan(b) {
		return a
	}
	return b
}

// Min returns the earlier of a and b in sequence space.
func Min(a, b Value) Value {
	if a.LessThan(b) {
		return a
	}
	return b
}
