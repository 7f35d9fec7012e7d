package tcp

import "testing"

func TestValueCompare(t *testing.T) {
	tests := []struct {
		name           string
		v, w           Value
		lt, le, gt, ge bool
	}{
		{name: "equal", v: 100, w: 100, le: true, ge: true},
		{name: "less", v: 100, w: 101, lt: true, le: true},
		{name: "greater", v: 101, w: 100, gt: true, ge: true},
		{name: "wrap less", v: 0xffffffff, w: 0, lt: true, le: true},
		{name: "wrap greater", v: 0, w: 0xffffffff, gt: true, ge: true},
		{name: "wrap far less", v: 0xfffffff0, w: 0x10, lt: true, le: true},
		{name: "wrap far greater", v: 0x10, w: 0xfffffff0, gt: true, ge: true},
		{name: "half minus one ahead", v: 0x7fffffff, w: 0, gt: true, ge: true},
		{name: "half minus one behind", v: 0, w: 0x7fffffff, lt: true, le: true},
		// At exactly 2**31 apart int32(v-w) is -2**31 both ways round, so
		// each is LessThan the other: the order is undefined there (as in
		// RFC 1982 §3.2) and windows never get that large. Pin it.
		{name: "half apart", v: 0x80000000, w: 0, lt: true, le: true},
		{name: "half apart reversed", v: 0, w: 0x80000000, lt: true, le: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.LessThan(tt.w); got != tt.lt {
				t.Errorf("%d.LessThan(%d) = %v, want %v", tt.v, tt.w, got, tt.lt)
			}
			if got := tt.v.LessThanEq(tt.w); got != tt.le {
				t.Errorf("%d.LessThanEq(%d) = %v, want %v", tt.v, tt.w, got, tt.le)
			}
			if got := tt.v.GreaterThan(tt.w); got != tt.gt {
				t.Errorf("%d.GreaterThan(%d) = %v, want %v", tt.v, tt.w, got, tt.gt)
			}
			if got := tt.v.GreaterThanEq(tt.w); got != tt.ge {
				t.Errorf("%d.GreaterThanEq(%d) = %v, want %v", tt.v, tt.w, got, tt.ge)
			}
		})
	}
}

func TestValueInWindow(t *testing.T) {
	tests := []struct {
		name  string
		v     Value
		first Value
		size  uint32
		want  bool
	}{
		{name: "left edge", v: 1000, first: 1000, size: 10, want: true},
		{name: "inside", v: 1005, first: 1000, size: 10, want: true},
		{name: "last octet", v: 1009, first: 1000, size: 10, want: true},
		{name: "right edge excluded", v: 1010, first: 1000, size: 10},
		{name: "before", v: 999, first: 1000, size: 10},
		{name: "zero window", v: 1000, first: 1000, size: 0},
		{name: "wrap inside low", v: 0xfffffffe, first: 0xfffffff0, size: 0x20, want: true},
		{name: "wrap inside high", v: 5, first: 0xfffffff0, size: 0x20, want: true},
		{name: "wrap right edge", v: 0x10, first: 0xfffffff0, size: 0x20},
		{name: "wrap before", v: 0xffffffef, first: 0xfffffff0, size: 0x20},
		{name: "max scaled window", v: 1<<30 - 1, first: 0, size: 1 << 30, want: true},
		{name: "huge window", v: 0xc0000000, first: 0, size: 0xd0000000, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.InWindow(tt.first, tt.size); got != tt.want {
				t.Errorf("%#x.InWindow(%#x, %#x) = %v, want %v", tt.v, tt.first, tt.size, got, tt.want)
			}
		})
	}
}

func TestValueArithmetic(t *testing.T) {
	tests := []struct {
		name string
		v    Value
		n    uint32
		want Value
	}{
		{name: "plain", v: 1, n: 2, want: 3},
		{name: "to max", v: 0xfffffff0, n: 0xf, want: 0xffffffff},
		{name: "wrap", v: 0xffffffff, n: 1, want: 0},
		{name: "wrap far", v: 0xfffffff0, n: 0x20, want: 0x10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.v.Add(tt.n)
			if got != tt.want {
				t.Fatalf("%#x.Add(%#x) = %#x, want %#x", tt.v, tt.n, got, tt.want)
			}
			if d := got.Sub(tt.v); d != tt.n {
				t.Errorf("%#x.Sub(%#x) = %#x, want %#x", got, tt.v, d, tt.n)
			}
			if tt.n != 0 && !tt.v.LessThan(got) {
				t.Errorf("%#x not LessThan %#x", tt.v, got)
			}
		})
	}
}

func TestMaxMin(t *testing.T) {
	tests := []struct {
		name     string
		a, b     Value
		max, min Value
	}{
		{name: "plain", a: 1, b: 2, max: 2, min: 1},
		{name: "equal", a: 7, b: 7, max: 7, min: 7},
		{name: "wrap", a: 0xffffffff, b: 1, max: 1, min: 0xffffffff},
		{name: "wrap reversed", a: 1, b: 0xffffffff, max: 1, min: 0xffffffff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Max(tt.a, tt.b); got != tt.max {
				t.Errorf("Max(%#x, %#x) = %#x, want %#x", tt.a, tt.b, got, tt.max)
			}
			if got := Min(tt.a, tt.b); got != tt.min {
				t.Errorf("Min(%#x, %#x) = %#x, want %#x", tt.a, tt.b, got, tt.min)
			}
		})
	}
}
