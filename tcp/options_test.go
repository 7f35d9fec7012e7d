package tcp

import (
	"bytes"
	"errors"
	"testing"
)

// noOptions is the parsed form of an empty option list.
var noOptions = Options{WindowScale: -1}

// Option lists both ways: Encode(opts) == wire and ParseOptions(wire) == opts.
var optionGoldens = []struct {
	name string
	opts Options
	wire []byte
}{
	{name: "none", opts: noOptions, wire: []byte{}},
	{
		// Linux's SYN: mss 1460,sackOK,TS val 3922634 ecr 0,nop,wscale 7.
		name: "linux SYN",
		opts: Options{MSS: 1460, SACKPermitted: true, Timestamp: true, TSVal: 3922634, TSEcr: 0, WindowScale: 7},
		wire: []byte{
			2, 4, 0x05, 0xb4,
			4, 2, 8, 10, 0x00, 0x3b, 0xda, 0xca, 0, 0, 0, 0,
			1, 3, 3, 7,
		},
	},
	{
		name: "timestamps only",
		opts: Options{WindowScale: -1, Timestamp: true, TSVal: 0x7a0b1c2d, TSEcr: 0x003b9aca},
		wire: []byte{1, 1, 8, 10, 0x7a, 0x0b, 0x1c, 0x2d, 0x00, 0x3b, 0x9a, 0xca},
	},
	{
		name: "MSS only",
		opts: Options{MSS: 536, WindowScale: -1},
		wire: []byte{2, 4, 0x02, 0x18},
	},
	{
		name: "MSS and window scale",
		opts: Options{MSS: 1460, WindowScale: 0},
		wire: []byte{2, 4, 0x05, 0xb4, 1, 3, 3, 0},
	},
	{
		name: "SACK-permitted only",
		opts: Options{WindowScale: -1, SACKPermitted: true},
		wire: []byte{1, 1, 4, 2},
	},
	{
		name: "MSS, SACK-permitted, window scale",
		opts: Options{MSS: 1460, SACKPermitted: true, WindowScale: 14},
		wire: []byte{2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 14},
	},
	{
		name: "timestamps and one SACK block",
		opts: Options{
			WindowScale: -1, Timestamp: true, TSVal: 1, TSEcr: 2,
			SACK: [4]SACKBlock{{Left: 0x10000, Right: 0x10100}}, NumSACK: 1,
		},
		wire: []byte{
			1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2,
			1, 1, 5, 10, 0, 1, 0, 0, 0, 1, 1, 0,
		},
	},
	{
		name: "four SACK blocks",
		opts: Options{
			WindowScale: -1,
			SACK:        [4]SACKBlock{{1, 2}, {3, 4}, {5, 6}, {0xfffffff0, 0x10}},
			NumSACK:     4,
		},
		wire: []byte{
			1, 1, 5, 34,
			0, 0, 0, 1, 0, 0, 0, 2,
			0, 0, 0, 3, 0, 0, 0, 4,
			0, 0, 0, 5, 0, 0, 0, 6,
			0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0x10,
		},
	},
}

func TestOptionsGolden(t *testing.T) {
	for _, tt := range optionGoldens {
		t.Run(tt.name, func(t *testing.T) {
			if n := tt.opts.EncodedLen(); n != len(tt.wire) || n%4 != 0 {
				t.Errorf("EncodedLen() = %d, want %d", n, len(tt.wire))
			}
			buf := bytes.Repeat([]byte{0xee}, 64)
			n := tt.opts.Encode(buf)
			if !bytes.Equal(buf[:n], tt.wire) {
				t.Errorf("Encode() = % x\nwant       % x", buf[:n], tt.wire)
			}
			if buf[n] != 0xee {
				t.Errorf("Encode wrote past its length %d", n)
			}
			o := Options{MSS: 9, WindowScale: 3, NumSACK: 2, Timestamp: true, TSVal: 5} // must be reset
			if err := ParseOptions(tt.wire, &o); err != nil {
				t.Fatalf("ParseOptions: %v", err)
			}
			if o != tt.opts {
				t.Errorf("ParseOptions() = %+v\nwant             %+v", o, tt.opts)
			}
		})
	}
}

func TestLinuxSYNOptionsLen(t *testing.T) {
	o := Options{MSS: 1460, SACKPermitted: true, Timestamp: true, WindowScale: 7}
	if n := o.EncodedLen(); n != 20 {
		t.Errorf("SYN options take %d bytes, want Linux's 20", n)
	}
	o = Options{WindowScale: -1, Timestamp: true}
	if n := o.EncodedLen(); n != 12 {
		t.Errorf("timestamp-only options take %d bytes, want 12", n)
	}
}

func TestOptionsEncodeClamps(t *testing.T) {
	blocks := [4]SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}
	tests := []struct {
		name     string
		opts     Options
		wantLen  int
		wantSACK int
		wantWS   int8
	}{
		{name: "window scale above 14", opts: Options{WindowScale: 100}, wantLen: 4, wantWS: 14},
		{name: "TS leaves room for 3 blocks", opts: Options{WindowScale: -1, Timestamp: true, SACK: blocks, NumSACK: 4}, wantLen: 40, wantSACK: 3, wantWS: -1},
		{name: "SYN options leave room for 2 blocks", opts: Options{MSS: 1, SACKPermitted: true, Timestamp: true, WindowScale: 1, SACK: blocks, NumSACK: 4}, wantLen: 40, wantSACK: 2, wantWS: 1},
		{name: "NumSACK above 4", opts: Options{WindowScale: -1, SACK: blocks, NumSACK: 9}, wantLen: 36, wantSACK: 4, wantWS: -1},
		{name: "negative NumSACK", opts: Options{WindowScale: -1, SACK: blocks, NumSACK: -1}, wantLen: 0, wantWS: -1},
		{name: "negative window scale is absent", opts: Options{WindowScale: -5}, wantLen: 0, wantWS: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := tt.opts.EncodedLen(); n != tt.wantLen {
				t.Errorf("EncodedLen() = %d, want %d", n, tt.wantLen)
			}
			var buf [MaxOptionsLen]byte
			n := tt.opts.Encode(buf[:])
			if n != tt.wantLen {
				t.Fatalf("Encode() = %d, want %d", n, tt.wantLen)
			}
			var o Options
			if err := ParseOptions(buf[:n], &o); err != nil {
				t.Fatalf("ParseOptions: %v", err)
			}
			if o.NumSACK != tt.wantSACK || o.WindowScale != tt.wantWS {
				t.Errorf("parsed NumSACK=%d WindowScale=%d, want %d, %d", o.NumSACK, o.WindowScale, tt.wantSACK, tt.wantWS)
			}
			for i := range o.NumSACK {
				if o.SACK[i] != blocks[i] {
					t.Errorf("SACK[%d] = %v, want %v", i, o.SACK[i], blocks[i])
				}
			}
		})
	}
}

func TestParseOptionsAccepted(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		want Options
	}{
		{name: "NOPs only", wire: []byte{1, 1, 1, 1}, want: noOptions},
		{name: "EOL only", wire: []byte{0, 0, 0, 0}, want: noOptions},
		{name: "unknown kind skipped", wire: []byte{30, 4, 0xff, 0xff, 2, 4, 1, 0}, want: Options{MSS: 256, WindowScale: -1}},
		{name: "unknown kind length 2", wire: []byte{254, 2, 4, 2}, want: Options{WindowScale: -1, SACKPermitted: true}},
		{name: "EOL then garbage", wire: []byte{2, 4, 5, 0xb4, 0, 2, 0, 0xff, 1}, want: Options{MSS: 1460, WindowScale: -1}},
		{name: "EOL then truncated option", wire: []byte{0, 2}, want: noOptions},
		{name: "window scale 15 used as 14", wire: []byte{3, 3, 15, 0}, want: Options{WindowScale: 14}},
		{name: "window scale 255 used as 14", wire: []byte{3, 3, 255, 1}, want: Options{WindowScale: 14}},
		{name: "unaligned timestamp", wire: []byte{8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0}, want: Options{WindowScale: -1, Timestamp: true, TSVal: 1, TSEcr: 2}},
		{name: "duplicate MSS last wins", wire: []byte{2, 4, 0, 1, 2, 4, 0, 2}, want: Options{MSS: 2, WindowScale: -1}},
		{
			name: "five SACK blocks keep four",
			wire: append([]byte{5, 42}, make([]byte, 40)...),
			want: Options{WindowScale: -1, NumSACK: 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o Options
			if err := ParseOptions(tt.wire, &o); err != nil {
				t.Fatalf("ParseOptions(% x): %v", tt.wire, err)
			}
			if o != tt.want {
				t.Errorf("ParseOptions(% x) = %+v\nwant %+v", tt.wire, o, tt.want)
			}
		})
	}
}

func TestParseOptionsMalformed(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
	}{
		{name: "length 0", wire: []byte{30, 0, 0, 0}},
		{name: "length 1", wire: []byte{30, 1, 0, 0}},
		{name: "known kind length 0", wire: []byte{2, 0, 0, 0}},
		{name: "missing length octet", wire: []byte{1, 1, 1, 2}},
		{name: "unknown option overrun", wire: []byte{30, 6, 0, 0}},
		{name: "MSS overrun", wire: []byte{1, 1, 2, 4, 5}},
		{name: "MSS length 3", wire: []byte{2, 3, 5, 0}},
		{name: "MSS length 5", wire: []byte{2, 5, 5, 0xb4, 0}},
		{name: "WS length 4", wire: []byte{3, 4, 7, 0}},
		{name: "WS length 2", wire: []byte{3, 2, 1, 1}},
		{name: "SACK-permitted length 3", wire: []byte{4, 3, 0, 0}},
		{name: "TS length 9", wire: []byte{8, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{name: "TS length 11", wire: []byte{8, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{name: "TS overrun", wire: []byte{1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0}},
		{name: "SACK length 2", wire: []byte{5, 2, 1, 1}},
		{name: "SACK length 9", wire: []byte{5, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{name: "SACK length 11", wire: []byte{5, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{name: "SACK length 18 overrun", wire: []byte{5, 18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{name: "bad option after good", wire: []byte{2, 4, 5, 0xb4, 3, 4, 7, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o Options
			if err := ParseOptions(tt.wire, &o); !errors.Is(err, ErrOptions) {
				t.Errorf("ParseOptions(% x) = %v, want ErrOptions", tt.wire, err)
			}
		})
	}
}

func TestOptionsAllocs(t *testing.T) {
	wire := optionGoldens[1].wire
	var o Options
	var buf [MaxOptionsLen]byte
	if n := testing.AllocsPerRun(100, func() { _ = ParseOptions(wire, &o) }); n != 0 {
		t.Errorf("ParseOptions allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { o.Encode(buf[:]) }); n != 0 {
		t.Errorf("Options.Encode allocates %v times", n)
	}
}

// keptOptions returns what survives Encode then ParseOptions of o: the SACK
// blocks that do not fit in 40 octets after the other options are dropped
// (computed here from the layout, independently of Encode).
func keptOptions(o Options) Options {
	fixed := 0
	if o.MSS != 0 {
		fixed += 4
	}
	if o.Timestamp {
		fixed += 12
	} else if o.SACKPermitted {
		fixed += 4
	}
	if o.WindowScale >= 0 {
		fixed += 4
	}
	fit := max((MaxOptionsLen-fixed-4)/8, 0)
	if o.NumSACK > fit {
		for i := fit; i < o.NumSACK; i++ {
			o.SACK[i] = SACKBlock{}
		}
		o.NumSACK = fit
	}
	return o
}

// checkOptionsRoundTrip checks that o, as parsed, encodes to at most 40
// octets, a multiple of 4, and parses back to the same options (less the
// SACK blocks that do not fit).
func checkOptionsRoundTrip(t *testing.T, o Options) {
	t.Helper()
	n := o.EncodedLen()
	if n > MaxOptionsLen || n%4 != 0 {
		t.Fatalf("EncodedLen() = %d for %+v", n, o)
	}
	var buf [MaxOptionsLen]byte
	if m := o.Encode(buf[:]); m != n {
		t.Fatalf("Encode() = %d, EncodedLen() = %d", m, n)
	}
	var back Options
	if err := ParseOptions(buf[:n], &back); err != nil {
		t.Fatalf("ParseOptions(Encode(%+v)) = %v; bytes % x", o, err, buf[:n])
	}
	if want := keptOptions(o); back != want {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, want)
	}
}

func FuzzParseOptions(f *testing.F) {
	for _, g := range optionGoldens {
		f.Add(g.wire)
	}
	f.Add([]byte{30, 4, 0xff, 0xff, 0, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		var o Options
		if err := ParseOptions(b, &o); err != nil {
			if !errors.Is(err, ErrOptions) {
				t.Fatalf("ParseOptions error %v is not ErrOptions", err)
			}
			return
		}
		if o.WindowScale < -1 || o.WindowScale > MaxWindowScale || o.NumSACK < 0 || o.NumSACK > MaxSACKBlocks {
			t.Fatalf("out of range: %+v", o)
		}
		checkOptionsRoundTrip(t, o)
	})
}
