package fault

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/link"
)

// bridged returns the outer ends of two pipes joined by a Bridge: frames
// written to x come out of y through the bridge, and back.
func bridged(t *testing.T, cfg BridgeConfig, mtuX, mtuY, n int) (x, y *link.PipeEnd, br *Bridge) {
	t.Helper()
	x, xb := link.NewPipe(link.PipeOptions{MTU: mtuX, QueueLen: n})
	yb, y := link.NewPipe(link.PipeOptions{MTU: mtuY, QueueLen: n})
	br, err := NewBridge(xb, yb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		br.Close()
		x.Close()
		y.Close()
	})
	return x, y, br
}

// through writes n numbered frames to from and reads from to until want
// frames have arrived.
func through(t *testing.T, from, to link.Endpoint, n, want int) []uint32 {
	t.Helper()
	for i := range n {
		if err := from.WriteFrame(numbered(uint32(i))); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint32
	for range want {
		got = append(got, seqOf(receive(t, to)))
	}
	return got
}

// waitFrames waits until the bridge has read n frames in each direction.
func waitFrames(t *testing.T, br *Bridge, n uint64) BridgeStats { return waitEach(t, br, n, n) }

// waitEach waits until the bridge has read ab frames A→B and ba B→A.
func waitEach(t *testing.T, br *Bridge, ab, ba uint64) BridgeStats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := br.Stats()
		if s.AToB.Frames >= ab && s.BToA.Frames >= ba {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge read %d and %d frames, want %d and %d", s.AToB.Frames, s.BToA.Frames, ab, ba)
		}
		time.Sleep(time.Millisecond) // polling counters of other goroutines
	}
}

func TestBridgeForwardsBothWays(t *testing.T) {
	leakcheck.Check(t)
	x, y, br := bridged(t, BridgeConfig{}, 100, 100, 100)
	want := make([]uint32, 50)
	for i := range want {
		want[i] = uint32(i)
	}
	if got := through(t, x, y, 50, 50); !slices.Equal(got, want) {
		t.Errorf("x→y %v", got)
	}
	if got := through(t, y, x, 50, 50); !slices.Equal(got, want) {
		t.Errorf("y→x %v", got)
	}
	s := waitFrames(t, br, 50)
	if s.AToB.Frames != 50 || s.BToA.Frames != 50 || s.AToB.Errors+s.BToA.Errors != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestBridgeImpairsEachDirection drops frames one way and duplicates them
// the other, and checks that what arrives matches the counters.
func TestBridgeImpairsEachDirection(t *testing.T) {
	leakcheck.Check(t)
	const n = 500
	x, y, br := bridged(t, BridgeConfig{Seed: 7, AToB: Impairment{Drop: 0.1}, BToA: Impairment{Duplicate: 0.1}}, 100, 100, 2*n)
	for i := range n {
		x.WriteFrame(numbered(uint32(i)))
		y.WriteFrame(numbered(uint32(i)))
	}
	s := waitFrames(t, br, n)
	if s.AToB.Dropped == 0 || s.AToB.Duplicated != 0 || s.BToA.Duplicated == 0 || s.BToA.Dropped != 0 {
		t.Fatalf("stats %+v: want drops only A→B and duplicates only B→A", s)
	}
	if got := through(t, x, y, 0, n-int(s.AToB.Dropped)); len(got) != n-int(s.AToB.Dropped) {
		t.Errorf("A→B delivered %d frames", len(got))
	}
	if got := through(t, y, x, 0, n+int(s.BToA.Duplicated)); len(got) != n+int(s.BToA.Duplicated) {
		t.Errorf("B→A delivered %d frames", len(got))
	}
}

// TestBridgeReproducible: the same seed makes the same decisions.
func TestBridgeReproducible(t *testing.T) {
	cfg := BridgeConfig{Seed: 11, AToB: Impairment{Drop: 0.2, Reorder: 0.2}, BToA: Impairment{Drop: 0.2}}
	var runs [2][]uint32
	for i := range runs {
		x, y, br := bridged(t, cfg, 100, 100, 400)
		for j := range 200 {
			x.WriteFrame(numbered(uint32(j)))
		}
		s := waitEach(t, br, 200, 0)
		runs[i] = through(t, x, y, 0, 200-int(s.AToB.Dropped)-boolInt(s.AToB.Reordered > 0))
	}
	if !slices.Equal(runs[0], runs[1]) {
		t.Errorf("same seed, different traffic:\n%v\n%v", runs[0], runs[1])
	}
}

func boolInt(b bool) int {
	if b {
		return 1 // at most one frame can still be held back at the end
	}
	return 0
}

// TestBridgeCountsOversizedFrames forwards frames larger than the far
// side's MTU as errors.
func TestBridgeCountsOversizedFrames(t *testing.T) {
	leakcheck.Check(t)
	x, _, br := bridged(t, BridgeConfig{}, 200, 50, 10)
	big := make([]byte, 150)
	for range 3 {
		x.WriteFrame(big)
	}
	deadline := time.Now().Add(5 * time.Second)
	for br.Stats().AToB.Errors < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want 3 errors A→B", br.Stats())
		}
		time.Sleep(time.Millisecond) // polling counters of other goroutines
	}
}

// TestBridgeCloseEndsGoroutines closes a bridge with frames held in a
// delay queue.
func TestBridgeCloseEndsGoroutines(t *testing.T) {
	leakcheck.Check(t)
	x, xb := link.NewPipe(link.PipeOptions{MTU: 100})
	yb, y := link.NewPipe(link.PipeOptions{MTU: 100})
	defer x.Close()
	defer y.Close()
	br, err := NewBridge(xb, yb, BridgeConfig{AToB: Impairment{Delay: time.Hour}, BToA: Impairment{Delay: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	x.WriteFrame(numbered(1))
	y.WriteFrame(numbered(2))
	waitFrames(t, br, 1)
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	if err := br.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// BenchmarkBridge measures a 1514-byte frame's trip through a bridge
// without impairments, between two pipes: the bridge's cost per frame.
func BenchmarkBridge(b *testing.B) {
	x, xb := link.NewPipe(link.PipeOptions{QueueLen: 4096})
	yb, y := link.NewPipe(link.PipeOptions{QueueLen: 4096})
	br, err := NewBridge(xb, yb, BridgeConfig{Seed: 1, AToB: Impairment{Drop: 1e-12}})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { br.Close(); x.Close(); y.Close() }()
	frame := make([]byte, 1514)
	buf := make([]byte, 1514)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		x.WriteFrame(frame)
		y.ReadFrame(buf)
	}
}

func TestNewBridgeRejectsBadArguments(t *testing.T) {
	x, y := link.NewPipe(link.PipeOptions{})
	defer x.Close()
	for _, tc := range []struct {
		a, b link.Endpoint
		cfg  BridgeConfig
		want string
	}{
		{nil, y, BridgeConfig{}, "nil endpoint"},
		{x, x, BridgeConfig{}, "same endpoint"},
		{x, y, BridgeConfig{AToB: Impairment{Drop: 1.5}}, "AToB: fault: Drop"},
		{x, y, BridgeConfig{BToA: Impairment{Corrupt: math.NaN()}}, "BToA: fault: Corrupt"},
		{x, y, BridgeConfig{AToB: Impairment{Reorder: -0.1}}, "Reorder"},
		{x, y, BridgeConfig{BToA: Impairment{Delay: -time.Second}}, "Delay"},
		{x, y, BridgeConfig{AToB: Impairment{ReorderDelay: -1}}, "ReorderDelay"},
		{x, y, BridgeConfig{AToB: Impairment{RateBytesPerSec: -1}}, "RateBytesPerSec"},
	} {
		br, err := NewBridge(tc.a, tc.b, tc.cfg)
		if err == nil {
			br.Close()
			t.Errorf("NewBridge(%+v) succeeded", tc.cfg)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewBridge(%+v) = %v, want it to name %q", tc.cfg, err, tc.want)
		}
	}
}
