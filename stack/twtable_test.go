package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/tcp"
)

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

// addTimeWait enters r in s's TIME-WAIT records, as enterTimeWait does
// (for a connection the table does not have).
func addTimeWait(s *Stack, r tcp.TimeWait) bool {
	return s.tcp.demux.EnterTimeWait(nil, r)
}

// twStack returns a stack on a manual clock whose TIME-WAIT table holds
// n records from twRecord, and the clock.
func twStack(t testing.TB, n int) (*Stack, *ManualClock) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := NewManualClock(t0)
	s := New(Options{Clock: clock})
	t.Cleanup(func() { s.Close() })
	for i := range n {
		addTimeWait(s, twRecord(t, &s.tcp.cfg, twTuple(i), t0))
	}
	return s, clock
}

// TestTimeWaitLookupAllocs: a segment for a record (hit) and one for no
// record (miss) allocate nothing in the table.
func TestTimeWaitLookupAllocs(t *testing.T) {
	s, _ := twStack(t, 1000)
	hit := twTuple(500)
	ack := twSegment(t, hit, tcp.Header{Seq: twPeerISS + 2, Ack: twISS + 2, Flags: tcp.FlagACK, Window: 100})
	miss := twTuple(5000)
	if !s.tcp.demux.TimeWaitInput(hit, ack) || s.tcp.demux.TimeWaitInput(miss, ack) {
		t.Fatal("hit missed or miss hit")
	}
	if a := testing.AllocsPerRun(1000, func() { s.tcp.demux.TimeWaitInput(hit, ack) }); a != 0 {
		t.Errorf("a hit allocates %.1f times", a)
	}
	if a := testing.AllocsPerRun(1000, func() { s.tcp.demux.TimeWaitInput(miss, ack) }); a != 0 {
		t.Errorf("a miss allocates %.1f times", a)
	}
	if a := testing.AllocsPerRun(1000, func() { s.tcp.demux.HoldsTimeWait(miss) }); a != 0 {
		t.Errorf("HoldsTimeWait allocates %.1f times", a)
	}
}

// BenchmarkTimeWaitLookup measures a segment's way through a table of
// 100,000 records: a hit (an ACK the record takes without answering) and
// a miss (as every segment for a listener pays).
func BenchmarkTimeWaitLookup(b *testing.B) {
	const n = 100000
	s, _ := twStack(b, n)
	b.Run("hit", func(b *testing.B) {
		segs := make([]tcp.Segment, 1024)
		tus := make([]tcp.Tuple, len(segs))
		for i := range segs {
			tus[i] = twTuple(i * (n / len(segs)))
			segs[i] = twSegment(b, tus[i], tcp.Header{Seq: twPeerISS + 2, Ack: twISS + 2, Flags: tcp.FlagACK, Window: 100})
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			k := i % len(segs)
			if !s.tcp.demux.TimeWaitInput(tus[k], segs[k]) {
				b.Fatal("miss")
			}
		}
	})
	b.Run("miss", func(b *testing.B) {
		tus := make([]tcp.Tuple, 1024)
		for i := range tus {
			tus[i] = twTuple(n + i)
		}
		seg := twSegment(b, tus[0], tcp.Header{Seq: 1, Flags: tcp.FlagSYN, Window: 100})
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if s.tcp.demux.TimeWaitInput(tus[i%len(tus)], seg) {
				b.Fatal("hit")
			}
		}
	})
}
