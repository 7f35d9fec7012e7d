package stack

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
)

// closePairs closes every pair, first closes first (its side ends in
// TIME-WAIT), the other side once it has read the EOF.
func closePairs(t *testing.T, first, second []*TCPConn) {
	t.Helper()
	buf := make([]byte, 1)
	for i := range first {
		if err := first[i].Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := second[i].Read(buf); err != io.EOF {
			t.Fatalf("pair %d: read %v, want EOF", i, err)
		}
		if err := second[i].Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// timeWaitCount returns s's TIME-WAIT records.
func timeWaitCount(s *Stack) int { return int(s.Stats().TCP.TimeWait) }

// TestTimeWaitTable: connections closed first by their users go into the
// TIME-WAIT table (counted in Stats, listed by Connections, their 4-tuples
// unusable for a new active open) and leave it at exactly 2*MSL, a
// retransmitted FIN restarting the timeout of one.
func TestTimeWaitTable(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := NewManualClock(t0)
	// While mute, frames are dropped: the ACK a record sends would draw a
	// RST from b, which has closed, and the RST (at RCV.NXT) would delete
	// the record.
	var mute atomic.Bool
	a, b := pair(t, Options{Clock: clock}, func(ep link.Endpoint) link.Endpoint { return muteEndpoint{ep, &mute} })
	const n = 5
	client, server := idlePairs(t, a, b, 7, n)
	closePairs(t, client, server)
	waitFor(t, "5 records in TIME-WAIT", func() bool { return timeWaitCount(a) == n })
	waitFor(t, "the server side closed", func() bool { return len(b.Connections()) == 0 })
	infos := a.Connections()
	if len(infos) != n {
		t.Fatalf("Connections lists %d, want %d", len(infos), n)
	}
	for _, in := range infos {
		if in.State != tcp.StateTimeWait {
			t.Fatalf("%v in %v, want TIME-WAIT", in.Tuple, in.State)
		}
	}
	live := len(a.tcp.demux.Conns())
	if live != 0 {
		t.Fatalf("%d Conns left in the connection table", live)
	}
	// The 4-tuple of a record cannot be opened again from here.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.DialTCPFrom(ctx, infos[0].Tuple.Local, infos[0].Tuple.Remote); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("dial on a 4-tuple in TIME-WAIT: %v, want EADDRINUSE", err)
	}
	// A FIN outside the window (as a retransmitted one is) is answered and
	// restarts the 2*MSL timeout of that record only.
	mute.Store(true)
	msl2 := 2 * a.tcp.cfg.MSL
	restarted := infos[1].Tuple
	fin := finSegment(t, restarted)
	clock.Advance(10 * time.Second)
	if !a.tcp.demux.TimeWaitInput(restarted, fin) {
		t.Fatal("the record did not take the FIN")
	}
	end := t0.Add(msl2)
	if next := a.tcp.demux.ExpireTimeWait(end.Add(-time.Nanosecond)); !next.Equal(end) || timeWaitCount(a) != n {
		t.Fatalf("just before 2*MSL: next deadline %v, %d records; want %v, %d", next.Sub(t0), timeWaitCount(a), msl2, n)
	}
	if next := a.tcp.demux.ExpireTimeWait(end); !next.Equal(end.Add(10*time.Second)) || timeWaitCount(a) != 1 {
		t.Fatalf("at 2*MSL: next deadline %v, %d records; want %v, 1", next.Sub(t0), timeWaitCount(a), msl2+10*time.Second)
	}
	if a.Connections()[0].Tuple != restarted {
		t.Fatalf("the record left is %v, want the restarted %v", a.Connections()[0].Tuple, restarted)
	}
	if next := a.tcp.demux.ExpireTimeWait(end.Add(10 * time.Second)); !next.IsZero() || timeWaitCount(a) != 0 {
		t.Fatalf("after the restarted timeout: next %v, %d records", next, timeWaitCount(a))
	}
	// The 4-tuple is free again.
	mute.Store(false)
	c, err := a.DialTCPFrom(ctx, infos[0].Tuple.Local, infos[0].Tuple.Remote)
	if err == nil {
		c.Close()
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after TIME-WAIT: %v", err)
	}
}

// muteEndpoint drops the frames written while mute is set.
type muteEndpoint struct {
	link.Endpoint
	mute *atomic.Bool
}

func (e muteEndpoint) WriteFrame(b []byte) error {
	if e.mute.Load() {
		return nil
	}
	return e.Endpoint.WriteFrame(b)
}

// finSegment returns a FIN,ACK from t's remote end far outside any window.
func finSegment(t *testing.T, tu tcp.Tuple) tcp.Segment {
	t.Helper()
	h := tcp.Header{SrcPort: tu.Remote.Port(), DstPort: tu.Local.Port(), Seq: 7, Ack: 7, Flags: tcp.FlagFIN | tcp.FlagACK, Window: 100}
	b := make([]byte, h.Len())
	h.Encode(b)
	tcp.SetChecksum(b, tu.Remote.Addr(), tu.Local.Addr())
	seg, err := tcp.ParseSegment(b, tu.Remote.Addr(), tu.Local.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return seg
}

// TestTimeWaitOverflow: past Options.MaxTimeWait records, a closing
// connection skips TIME-WAIT, counted.
func TestTimeWaitOverflow(t *testing.T) {
	a, b := pair(t, Options{MaxTimeWait: 2}, nil)
	client, server := idlePairs(t, a, b, 7, 3)
	closePairs(t, client, server)
	waitFor(t, "the third connection gone", func() bool {
		st := a.Stats().TCP
		return st.TimeWait == 2 && st.TimeWaitOverflows == 1 && len(a.Connections()) == 2
	})
}

// TestTimeWaitReuse: a new SYN for a 4-tuple in TIME-WAIT with a newer
// timestamp reopens it through the listener (RFC 6191).
func TestTimeWaitReuse(t *testing.T) {
	clock := NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	a, b := pair(t, Options{Clock: clock}, nil)
	l, err := b.ListenTCP(netip.AddrPortFrom(addrB.Addr(), 8))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := a.DialTCP(ctx, netip.AddrPortFrom(addrB.Addr(), 8))
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	local := c.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort()
	closePairs(t, []*TCPConn{s}, []*TCPConn{c}) // the server closes first
	waitFor(t, "the server's record", func() bool { return timeWaitCount(b) == 1 })
	waitFor(t, "the client's connection gone", func() bool { return len(a.Connections()) == 0 })
	clock.Advance(time.Second) // a newer TSval on the new SYN
	c2, err := a.DialTCPFrom(ctx, local, netip.AddrPortFrom(addrB.Addr(), 8))
	if err != nil {
		t.Fatalf("dial on the 4-tuple the server holds in TIME-WAIT: %v", err)
	}
	defer c2.Close()
	s2, err := l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if timeWaitCount(b) != 0 {
		t.Fatalf("%d records left after the reuse", timeWaitCount(b))
	}
	if _, err := c2.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := s2.Read(buf); err != nil || buf[0] != 'x' {
		t.Fatalf("read %q, %v", buf, err)
	}
}

// TestChurnHeap opens and closes 20000 connections in memory, one after
// the other: each ends in TIME-WAIT on the side that closed first, and
// the heap they leave behind is their records' (a Conn kept in TIME-WAIT
// held ~2 KB and its buffers).
func TestChurnHeap(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation sizes")
	}
	const n = 20000
	const maxPerRecord = 150 // bytes of heap per connection in TIME-WAIT
	a, b := pair(t, Options{}, nil)
	l, err := b.ListenTCP(netip.AddrPortFrom(addrB.Addr(), 7))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	buf := make([]byte, 1)
	churn := func(k int) {
		for range k {
			c, err := a.DialTCP(ctx, netip.AddrPortFrom(addrB.Addr(), 7))
			if err != nil {
				t.Fatal(err)
			}
			s, err := l.AcceptTCP()
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte{1})
			s.Read(buf)
			closePairs(t, []*TCPConn{c}, []*TCPConn{s})
		}
	}
	churn(100) // warm up
	waitFor(t, "the warm-up records", func() bool { return timeWaitCount(a) == 100 })
	before := liveHeap()
	churn(n)
	// A FIN the pipe dropped under load comes again after its RTO, backed
	// off: allow for a few.
	waitWithin(t, time.Minute, "every record", func() bool { return timeWaitCount(a) == n+100 && len(b.Connections()) == 0 })
	per := float64(liveHeap()-before) / n
	t.Logf("%d connections closed into TIME-WAIT: %.0f B of heap each", n, per)
	if per > maxPerRecord {
		t.Errorf("%.0f B of heap per connection in TIME-WAIT, want at most %d", per, maxPerRecord)
	}
	if st := a.Stats().TCP; st.TimeWaitOverflows != 0 {
		t.Errorf("%d overflows", st.TimeWaitOverflows)
	}
	runtime.KeepAlive(l)
}

// TestTimeWaitLateRecord: a record entered after records with later
// deadlines (its user closed it after the peer's FIN) waits behind them
// in the ring, but a segment after its own deadline finds no record, as
// it would have found no Conn.
func TestTimeWaitLateRecord(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := NewManualClock(t0)
	s := New(Options{Clock: clock})
	defer s.Close()
	msl2 := 2 * s.tcp.cfg.MSL
	early, late := twTuple(1), twTuple(2)
	addTimeWait(s, twRecord(t, &s.tcp.cfg, early, t0))
	addTimeWait(s, twRecord(t, &s.tcp.cfg, late, t0.Add(-10*time.Second)))
	ack := twSegment(t, late, tcp.Header{Seq: twPeerISS + 2, Ack: twISS + 2, Flags: tcp.FlagACK, Window: 100})
	clock.Advance(msl2 - 10*time.Second - time.Nanosecond)
	if !s.tcp.demux.TimeWaitInput(late, ack) {
		t.Fatal("the late record did not take a segment before its deadline")
	}
	clock.Advance(time.Nanosecond)
	if next := s.tcp.demux.ExpireTimeWait(clock.Now()); !next.Equal(t0.Add(msl2)) || timeWaitCount(s) != 2 {
		t.Fatalf("next deadline %v, %d records; want %v, 2", next.Sub(t0), timeWaitCount(s), msl2)
	}
	if s.tcp.demux.TimeWaitInput(late, ack) || s.tcp.demux.HoldsTimeWait(late) || timeWaitCount(s) != 1 {
		t.Fatalf("a record past its deadline took a segment (%d records)", timeWaitCount(s))
	}
	if !s.tcp.demux.HoldsTimeWait(early) {
		t.Fatal("the other record went too")
	}
}
