package tcpdemux

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/tcp"
)

// testConn is an Endpoint that records what it gets and answers for its
// 4-tuple while answer is set.
type testConn struct {
	answer bool
	got    []tcp.Segment
}

func (c *testConn) Deliver(t tcp.Tuple, seg tcp.Segment) bool {
	c.got = append(c.got, seg)
	return c.answer
}

// testListener is a Listener that records the 4-tuples it gets.
type testListener struct{ got []tcp.Tuple }

func (l *testListener) Deliver(t tcp.Tuple, seg tcp.Segment) { l.got = append(l.got, t) }

// recordOutput is a tcp.Output that keeps a copy of every segment sent.
type recordOutput struct{ sent []tcp.Segment }

func (o *recordOutput) Buffer(n int) ([]byte, int) { return make([]byte, n), 0 }
func (o *recordOutput) Send(t tcp.Tuple, b []byte, off int) {
	o.sent = append(o.sent, tcp.Segment(append([]byte(nil), b[off:]...)))
}

// testDemux is a Demux on a clock the test moves, with its output and
// counters.
type testDemux struct {
	*Demux[*testConn, *testListener]
	cfg tcp.Config
	st  tcp.Stats
	out recordOutput
	now time.Time
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newTestDemux() *testDemux {
	d := &testDemux{Demux: new(Demux[*testConn, *testListener]), cfg: tcp.DefaultConfig(), now: t0}
	d.cfg.Stats = &d.st
	d.Init(Config{TCP: &d.cfg, Now: func() time.Time { return d.now }, Output: &d.out})
	return d
}

// takeSent returns and forgets what the demultiplexer sent.
func (d *testDemux) takeSent() []tcp.Segment {
	s := d.out.sent
	d.out.sent = nil
	return s
}

var (
	local  = netip.AddrFrom4([4]byte{10, 0, 0, 2})
	local2 = netip.AddrFrom4([4]byte{10, 0, 1, 2})
)

// TestDemuxBranches takes a segment through each branch of Deliver, in
// the order the package documentation gives.
func TestDemuxBranches(t *testing.T) {
	tu := twTuple(1) // 10.0.0.2:80 from a peer
	ack := twSegment(t, tu, tcp.Header{Seq: twPeerISS + 2, Ack: twISS + 2, Flags: tcp.FlagACK, Window: 100})
	syn := twSegment(t, tu, tcp.Header{Seq: twPeerISS + 100000, Flags: tcp.FlagSYN, Window: 100})
	rst := twSegment(t, tu, tcp.Header{Seq: 1, Flags: tcp.FlagRST})

	t.Run("connection", func(t *testing.T) {
		d := newTestDemux()
		c := &testConn{answer: true}
		l := &testListener{}
		d.Add(tu, c)
		d.Listen(tu.Local, 0, 0, func(netip.AddrPort) *testListener { return l })
		d.Deliver(tu, ack)
		if len(c.got) != 1 || len(l.got) != 0 || len(d.takeSent()) != 0 {
			t.Fatalf("connection got %d, listener %d: want the connection only", len(c.got), len(l.got))
		}
	})
	t.Run("connection gives it back", func(t *testing.T) {
		// A connection that no longer answers for its 4-tuple (it was
		// replaced by a record, or a SYN reopens its TIME-WAIT): the
		// segment goes on to the listener.
		d := newTestDemux()
		c := &testConn{answer: false}
		l := &testListener{}
		d.Add(tu, c)
		d.Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 80), 0, 0, func(netip.AddrPort) *testListener { return l })
		d.Deliver(tu, syn)
		if len(c.got) != 1 || len(l.got) != 1 {
			t.Fatalf("connection got %d, listener %d: want both", len(c.got), len(l.got))
		}
	})
	t.Run("record", func(t *testing.T) {
		// A record answers an out-of-window FIN and keeps the segment
		// from the listener.
		d := newTestDemux()
		l := &testListener{}
		d.Listen(tu.Local, 0, 0, func(netip.AddrPort) *testListener { return l })
		if !d.EnterTimeWait(nil, twRecord(t, &d.cfg, tu, t0)) {
			t.Fatal("no room for a record")
		}
		d.Deliver(tu, twSegment(t, tu, tcp.Header{Seq: 7, Ack: 7, Flags: tcp.FlagFIN | tcp.FlagACK, Window: 100}))
		sent := d.takeSent()
		if len(l.got) != 0 || len(sent) != 1 || sent[0].Flags() != tcp.FlagACK || sent[0].Ack() != twPeerISS+2 {
			t.Fatalf("listener got %d, sent %d: want the record's ACK of RCV.NXT only", len(l.got), len(sent))
		}
		if d.TimeWaitLen() != 1 || d.st.DroppedNoConnection.Load() != 0 {
			t.Fatalf("%d records, %d dropped", d.TimeWaitLen(), d.st.DroppedNoConnection.Load())
		}
	})
	t.Run("record reopened by a SYN", func(t *testing.T) {
		// RFC 6191 §2 without timestamps: a SYN beyond RCV.NXT deletes
		// the record and reaches the listener.
		d := newTestDemux()
		l := &testListener{}
		d.Listen(tu.Local, 0, 0, func(netip.AddrPort) *testListener { return l })
		d.EnterTimeWait(nil, twRecord(t, &d.cfg, tu, t0))
		d.Deliver(tu, syn)
		if len(l.got) != 1 || d.TimeWaitLen() != 0 || len(d.takeSent()) != 0 {
			t.Fatalf("listener got %d, %d records left", len(l.got), d.TimeWaitLen())
		}
	})
	t.Run("record expired", func(t *testing.T) {
		// Past 2*MSL the record is gone even before ExpireTimeWait runs:
		// the segment finds no record and, with no listener, a reset.
		d := newTestDemux()
		d.EnterTimeWait(nil, twRecord(t, &d.cfg, tu, t0))
		d.now = t0.Add(2 * d.cfg.MSL)
		d.Deliver(tu, ack)
		sent := d.takeSent()
		if d.TimeWaitLen() != 0 || len(sent) != 1 || !sent[0].Flags().Has(tcp.FlagRST) || d.st.DroppedNoConnection.Load() != 1 {
			t.Fatalf("%d records, sent %d, dropped %d: want the record gone and a counted reset", d.TimeWaitLen(), len(sent), d.st.DroppedNoConnection.Load())
		}
	})
	t.Run("listener by address or wildcard", func(t *testing.T) {
		// 10.0.0.2:80 takes only its address; 0.0.0.0:81 any IPv4
		// address on port 81, and [::]:81 any IPv6 one.
		d := newTestDemux()
		exact, any4, any6 := &testListener{}, &testListener{}, &testListener{}
		d.Listen(tu.Local, 0, 0, func(netip.AddrPort) *testListener { return exact })
		d.Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 81), 0, 0, func(netip.AddrPort) *testListener { return any4 })
		d.Listen(netip.AddrPortFrom(netip.IPv6Unspecified(), 81), 0, 0, func(netip.AddrPort) *testListener { return any6 })
		send := func(local, remote string) tcp.Tuple {
			tu := tcp.Tuple{Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote)}
			d.Deliver(tu, twSegment(t, tu, tcp.Header{Seq: 1, Flags: tcp.FlagSYN, Window: 100}))
			return tu
		}
		e := send("10.0.0.2:80", "10.1.0.1:4000")
		send("10.0.1.2:80", "10.1.0.1:4000") // no listener: a reset
		w1 := send("10.0.0.2:81", "10.1.0.1:4000")
		w2 := send("10.0.1.2:81", "10.1.0.1:4000")
		w6 := send("[2001:db8::2]:81", "[2001:db8::1]:4000")
		if len(exact.got) != 1 || exact.got[0] != e || len(any4.got) != 2 || any4.got[0] != w1 || any4.got[1] != w2 || len(any6.got) != 1 || any6.got[0] != w6 {
			t.Fatalf("10.0.0.2:80 got %v, 0.0.0.0:81 %v, [::]:81 %v", exact.got, any4.got, any6.got)
		}
		if sent := d.takeSent(); len(sent) != 1 || d.st.DroppedNoConnection.Load() != 1 {
			t.Fatalf("%d sent, %d dropped: want the one reset", len(sent), d.st.DroppedNoConnection.Load())
		}
	})
	t.Run("no connection", func(t *testing.T) {
		// RFC 9293 §3.10.7.1: a reset for anything but a RST, each
		// counted.
		d := newTestDemux()
		d.Deliver(tu, ack)
		d.Deliver(tu, rst)
		sent := d.takeSent()
		if len(sent) != 1 || sent[0].Flags() != tcp.FlagRST || sent[0].Seq() != twISS+2 || d.st.DroppedNoConnection.Load() != 2 {
			t.Fatalf("sent %d, dropped %d: want one <SEQ=SEG.ACK><CTL=RST> and two counted", len(sent), d.st.DroppedNoConnection.Load())
		}
	})
}

// TestDemuxTables checks the table operations: Add refuses a 4-tuple a
// connection or a record holds, Remove and EnterTimeWait only delete
// their own connection, Free sees all three tables, Listen refuses a
// covered address and picks the first free port for port 0.
func TestDemuxTables(t *testing.T) {
	d := newTestDemux()
	a, b := twTuple(1), twTuple(2)
	ca, cb := &testConn{}, &testConn{}
	if !d.Add(a, ca) || d.Add(a, cb) {
		t.Fatal("Add: the first must succeed, the second fail")
	}
	d.Remove(a, cb)
	if e, ok := d.Lookup(a); !ok || e != ca {
		t.Fatal("Remove deleted another's connection")
	}
	if !d.EnterTimeWait(ca, twRecord(t, &d.cfg, a, t0)) {
		t.Fatal("no room")
	}
	if _, ok := d.Lookup(a); ok || !d.HoldsTimeWait(a) || d.Add(a, cb) || d.Free(a) {
		t.Fatal("a 4-tuple in TIME-WAIT is free")
	}
	if !d.Free(b) {
		t.Fatal("an unused 4-tuple is not free")
	}
	l := &testListener{}
	if _, ok := d.Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 80), 0, 0, func(netip.AddrPort) *testListener { return l }); !ok {
		t.Fatal("Listen on 0.0.0.0:80 failed")
	}
	if d.Free(b) {
		t.Fatal("a 4-tuple on a listened port is free")
	}
	if _, ok := d.Listen(b.Local, 0, 0, func(netip.AddrPort) *testListener { t.Fatal("made a listener for a covered address"); return nil }); ok {
		t.Fatal("Listen on 10.0.0.2:80 under 0.0.0.0:80 succeeded")
	}
	if _, ok := d.Listen(netip.AddrPortFrom(local, 5000), 0, 0, func(netip.AddrPort) *testListener { return &testListener{} }); !ok {
		t.Fatal("Listen on 10.0.0.2:5000 failed")
	}
	got, ok := d.Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 0), 4999, 5001, func(p netip.AddrPort) *testListener {
		if p.Port() != 4999 {
			t.Errorf("made for %v", p)
		}
		return &testListener{}
	})
	if !ok || got == nil {
		t.Fatal("port 0 found no free port")
	}
	if _, ok := d.Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 0), 5000, 5000, func(netip.AddrPort) *testListener { return nil }); ok {
		t.Fatal("port 0 took a port that 10.0.0.2:5000 covers")
	}
	d.Unlisten(netip.AddrPortFrom(netip.IPv4Unspecified(), 80), &testListener{})
	if _, ok := d.Listener(b.Local); !ok {
		t.Fatal("Unlisten deleted another's listener")
	}
	d.Unlisten(netip.AddrPortFrom(netip.IPv4Unspecified(), 80), l)
	if _, ok := d.Listener(b.Local); ok || !d.Free(b) {
		t.Fatal("Unlisten left the listener")
	}
}

// TestInputReopensTimeWait: Input gives a SYN that may reopen a Conn's
// TIME-WAIT back (RFC 6191) and hands the Conn everything else.
func TestInputReopensTimeWait(t *testing.T) {
	cfg := tcp.DefaultConfig()
	tu := twTuple(3)
	var out discardOutput
	c := tcp.Dial(&cfg, tu, twISS, 1460, t0, &out)
	c.Input(t0, twSegment(t, tu, tcp.Header{Seq: twPeerISS, Ack: twISS + 1, Flags: tcp.FlagSYN | tcp.FlagACK, Window: 65535}), &out)
	c.CloseWrite(t0, &out)
	c.Input(t0, twSegment(t, tu, tcp.Header{Seq: twPeerISS + 1, Ack: twISS + 2, Flags: tcp.FlagFIN | tcp.FlagACK, Window: 65535}), &out)
	if c.State() != tcp.StateTimeWait {
		t.Fatalf("state %v", c.State())
	}
	in := c.Info().SegmentsIn
	if !Input(c, t0, twSegment(t, tu, tcp.Header{Seq: twPeerISS + 2, Ack: twISS + 2, Flags: tcp.FlagACK, Window: 100}), &out) || c.Info().SegmentsIn != in+1 {
		t.Fatal("an ACK did not reach the Conn")
	}
	if Input(c, t0, twSegment(t, tu, tcp.Header{Seq: twPeerISS + 100000, Flags: tcp.FlagSYN, Window: 100}), &out) || c.Info().SegmentsIn != in+1 {
		t.Fatal("a SYN reopening TIME-WAIT reached the Conn")
	}
}

// TestEstablishedSkipsTimeWait: a segment for a connection never takes
// the records' lock (TIME-WAIT is looked at only when the table has no
// connection that answers): with it held, delivery still completes.
func TestEstablishedSkipsTimeWait(t *testing.T) {
	d := newTestDemux()
	tu := twTuple(1)
	c := &testConn{answer: true}
	d.Add(tu, c)
	ack := twSegment(t, tu, tcp.Header{Seq: 1, Ack: 1, Flags: tcp.FlagACK, Window: 100})
	d.twMu.Lock()
	d.Deliver(tu, ack)
	d.twMu.Unlock()
	if len(c.got) != 1 {
		t.Fatal("the connection did not get the segment")
	}
}

// TestTimeWaitFINFloodBounded: FINs restarting one record's 2*MSL timeout
// over and over move it to the tail each time; the dead slots they leave
// are compacted, so the arena stays within twice the records.
func TestTimeWaitFINFloodBounded(t *testing.T) {
	d := newTestDemux()
	const n = 100
	for i := range n {
		d.EnterTimeWait(nil, twRecord(t, &d.cfg, twTuple(i), t0))
	}
	target := twTuple(7)
	fin := twSegment(t, target, tcp.Header{Seq: 7, Ack: 7, Flags: tcp.FlagFIN | tcp.FlagACK, Window: 100})
	tw := &d.tw
	for i := range 20000 {
		d.now = d.now.Add(time.Millisecond)
		if !d.TimeWaitInput(target, fin) {
			t.Fatalf("FIN %d not taken", i)
		}
		if slots, chunks := int(tw.tail-tw.head), len(tw.chunks); slots > 2*n+twCompactMin || chunks > 2 {
			t.Fatalf("after %d FINs: %d slots, %d chunks for %d records", i+1, slots, chunks, n)
		}
	}
	// The restarted record outlives the others, and leaves at its own
	// deadline.
	end := d.now.Add(2 * d.cfg.MSL)
	if next := d.ExpireTimeWait(end.Add(-time.Nanosecond)); !next.Equal(end) || d.TimeWaitLen() != 1 {
		t.Fatalf("next deadline %v, %d records; want %v, 1", next, d.TimeWaitLen(), end)
	}
	if next := d.ExpireTimeWait(end); !next.IsZero() || d.TimeWaitLen() != 0 {
		t.Fatalf("after its deadline: next %v, %d records", next, d.TimeWaitLen())
	}
}

// TestDeliverAllocs: delivering to a connection, to a record and to a
// listener allocates nothing in the demultiplexer.
func TestDeliverAllocs(t *testing.T) {
	d := newTestDemux()
	conn, rec, lis := twTuple(1), twTuple(2), twTuple(3)
	c := &testConn{answer: true, got: make([]tcp.Segment, 0, 10000)}
	d.Add(conn, c)
	d.EnterTimeWait(nil, twRecord(t, &d.cfg, rec, t0))
	l := &testListener{got: make([]tcp.Tuple, 0, 10000)}
	d.Listen(lis.Local, 0, 0, func(netip.AddrPort) *testListener { return l })
	ack := twSegment(t, conn, tcp.Header{Seq: twPeerISS + 2, Ack: twISS + 2, Flags: tcp.FlagACK, Window: 100})
	for _, tu := range []tcp.Tuple{conn, rec, lis} {
		if a := testing.AllocsPerRun(1000, func() { d.Deliver(tu, ack) }); a != 0 {
			t.Errorf("delivery to %v allocates %.1f times", tu, a)
		}
	}
}
