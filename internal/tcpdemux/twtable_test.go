package tcpdemux

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/ustack/ustack/tcp"
)

// liveHeap returns the bytes of live heap objects after full collections.
func liveHeap() uint64 {
	var m runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// discardOutput is a tcp.Output that drops every segment.
type discardOutput struct{ buf [2048]byte }

func (o *discardOutput) Buffer(n int) ([]byte, int)  { return o.buf[:n], 0 }
func (o *discardOutput) Send(tcp.Tuple, []byte, int) {}

// twSegment builds a segment from tu's remote end.
func twSegment(t testing.TB, tu tcp.Tuple, h tcp.Header) tcp.Segment {
	t.Helper()
	h.SrcPort, h.DstPort = tu.Remote.Port(), tu.Local.Port()
	b := make([]byte, h.Len())
	h.Encode(b)
	tcp.SetChecksum(b, tu.Remote.Addr(), tu.Local.Addr())
	seg, err := tcp.ParseSegment(b, tu.Remote.Addr(), tu.Local.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return seg
}

// Sequence numbers of the connections twRecord closes: the peer's data
// starts at twPeerISS+1 and its FIN takes twPeerISS+1, so RCV.NXT ends at
// twPeerISS+2.
const (
	twISS     tcp.Value = 5000
	twPeerISS tcp.Value = 9000
)

// twRecord drives a Conn on tu through an active open and close at now,
// to TIME-WAIT, and returns its record (deadline now + 2*MSL).
func twRecord(t testing.TB, cfg *tcp.Config, tu tcp.Tuple, now time.Time) tcp.TimeWait {
	t.Helper()
	var out discardOutput
	c := tcp.Dial(cfg, tu, twISS, 1460, now, &out)
	c.Input(now, twSegment(t, tu, tcp.Header{Seq: twPeerISS, Ack: twISS + 1, Flags: tcp.FlagSYN | tcp.FlagACK, Window: 65535}), &out)
	c.Close(now, &out)
	c.Input(now, twSegment(t, tu, tcp.Header{Seq: twPeerISS + 1, Ack: twISS + 2, Flags: tcp.FlagFIN | tcp.FlagACK, Window: 65535}), &out)
	r, ok := c.TimeWait()
	if !ok {
		t.Fatalf("%v: no TIME-WAIT record (state %v)", tu, c.State())
	}
	return r
}

// twTuple returns the i-th of distinct 4-tuples to one server port.
func twTuple(i int) tcp.Tuple {
	return tcp.Tuple{
		Local:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, 2}), 80),
		Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 16), byte(i >> 8)}), uint16(1024+i%256)),
	}
}

// checkTable verifies the table against the 4-tuples it should hold:
// each is found, at a slot holding its record; the index has one entry
// per record and the ring as many records.
func checkTable(t *testing.T, tw *timeWaitTable, want map[tcp.Tuple]bool) {
	t.Helper()
	if tw.live != len(want) {
		t.Fatalf("%d records, want %d", tw.live, len(want))
	}
	for tu := range want {
		_, pos, ok := tw.lookup(tu)
		if !ok || !tw.slot(pos).Is(tu) {
			t.Fatalf("%v not found (ok %v)", tu, ok)
		}
	}
	entries := 0
	for _, e := range tw.index {
		if e != 0 {
			entries++
		}
	}
	records := 0
	for p := tw.head; p != tw.tail; p++ {
		if !tw.slot(p).IsZero() {
			records++
		}
	}
	if entries != len(want) || records != len(want) {
		t.Fatalf("index has %d entries, ring %d records; want %d", entries, records, len(want))
	}
	if len(tw.index) > 0 && 4*tw.live > 3*len(tw.index) {
		t.Fatalf("index of %d holds %d", len(tw.index), tw.live)
	}
	if dead := int(tw.tail-tw.head) - tw.live; dead > tw.live && dead >= twCompactMin {
		t.Fatalf("%d dead slots beside %d records", dead, tw.live)
	}
	if n := len(tw.chunks) * twChunkLen; int(tw.tail-tw.base) > n || tw.head-tw.base >= twChunkLen {
		t.Fatalf("positions [%d, %d) from base %d in %d chunks", tw.head, tw.tail, tw.base, len(tw.chunks))
	}
}

// TestTimeWaitTableOps drives the table with random additions,
// deletions, moves to the tail and expiries (growing, shrinking and
// compacting it) and checks it against a map after every step.
func TestTimeWaitTableOps(t *testing.T) {
	cfg := tcp.DefaultConfig()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const pool = 3000
	recs := make([]tcp.TimeWait, pool)
	for i := range recs {
		recs[i] = twRecord(t, &cfg, twTuple(i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	var tw timeWaitTable
	tw.init(2500)
	// The positions start near the end of uint32, so that they wrap.
	tw.base, tw.head, tw.tail = 1<<32-3*twChunkLen, 1<<32-3*twChunkLen, 1<<32-3*twChunkLen
	want := make(map[tcp.Tuple]bool)
	rng := rand.New(rand.NewPCG(1, 2))
	next := 0  // the next record of the pool to add
	clock := 0 // the expiry clock, in pool indices
	pick := func() tcp.Tuple {
		for tu := range want {
			return tu
		}
		return tcp.Tuple{}
	}
	maxIndex, compactions := 0, 0
	for step := 0; step < 30000; step++ {
		dead := int(tw.tail-tw.head) - tw.live
		expiry := false
		switch op := rng.IntN(100); {
		case op < 50 && next < pool:
			r := recs[next]
			next++
			if !tw.add(r) {
				if len(want) < tw.max {
					t.Fatalf("step %d: add refused at %d records", step, len(want))
				}
				continue
			}
			want[r.Tuple()] = true
		case op < 70 && len(want) > 0:
			tu := pick()
			i, pos, ok := tw.lookup(tu)
			if !ok {
				t.Fatalf("step %d: %v lost", step, tu)
			}
			tw.remove(i, pos)
			delete(want, tu)
			if _, _, ok := tw.lookup(tu); ok {
				t.Fatalf("step %d: %v found after its removal", step, tu)
			}
		case op < 90 && len(want) > 0:
			i, pos, _ := tw.lookup(pick())
			tw.moveToTail(i, pos)
		default:
			expiry = true
			clock += rng.IntN(6)
			now := t0.Add(time.Duration(clock)*time.Millisecond + 2*cfg.MSL)
			tw.expire(now)
			if tw.head != tw.tail && tw.slot(tw.head).Expired(now) {
				t.Fatalf("step %d: the head expired at %v and stayed", step, now)
			}
			for p := tw.head; p != tw.tail; p++ {
				if r := tw.slot(p); !r.IsZero() && !want[r.Tuple()] {
					t.Fatalf("step %d: stray record %v", step, r.Tuple())
				}
			}
			for tu := range want {
				if _, _, ok := tw.lookup(tu); !ok {
					delete(want, tu) // expired
				}
			}
		}
		if !expiry && int(tw.tail-tw.head)-tw.live < dead {
			compactions++
		}
		if next == pool && len(want) == 0 {
			next = 0
		}
		maxIndex = max(maxIndex, len(tw.index))
		if step%8 == 0 {
			checkTable(t, &tw, want)
		}
	}
	t.Logf("index grew to %d, %d compactions", maxIndex, compactions)
	if maxIndex < 4*twMinIndex || compactions == 0 {
		t.Fatalf("the run never grew the index past %d or compacted (%d)", maxIndex, compactions)
	}
	tw.expire(t0.Add(time.Hour))
	checkTable(t, &tw, nil)
	if len(tw.index) != twMinIndex || len(tw.chunks) > 1 {
		t.Fatalf("empty table kept an index of %d and %d chunks", len(tw.index), len(tw.chunks))
	}
}

// TestTimeWaitHeap100k puts 100,000 records in a table and bounds the
// live heap they take, everything included (records, index, arena): at
// most 128 bytes each, against ~400 for a map of pointers to records
// with a queue beside it.
func TestTimeWaitHeap100k(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation sizes")
	}
	const n = 100000
	const maxPerRecord = 128
	cfg := tcp.DefaultConfig()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tw := new(timeWaitTable)
	tw.init(0)
	before := liveHeap()
	for i := range n {
		if !tw.add(twRecord(t, &cfg, twTuple(i), t0)) {
			t.Fatalf("record %d refused", i)
		}
	}
	per := float64(liveHeap()-before) / n
	t.Logf("%d records: %.1f B of heap each (index %d entries, %d chunks)", n, per, len(tw.index), len(tw.chunks))
	if per > maxPerRecord {
		t.Errorf("%.1f B of heap per TIME-WAIT record, want at most %d", per, maxPerRecord)
	}
	if tw.live != n {
		t.Fatalf("%d records, want %d", tw.live, n)
	}
}
