package tcp

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
	"unsafe"
)

// peerN is the n-th remote port's tuple, from the listener's side.
func peerN(n int) Tuple {
	return Tuple{Local: localAP, Remote: netip.AddrPortFrom(remoteAP.Addr(), uint16(40000+n))}
}

// segFrom builds a segment that t.Remote sends to t.Local.
func segFrom(t Tuple, h Header) Segment {
	h.SrcPort, h.DstPort = t.Remote.Port(), t.Local.Port()
	b := make([]byte, h.Len())
	h.Encode(b)
	SetChecksum(b, t.Remote.Addr(), t.Local.Addr())
	seg, err := ParseSegment(b, t.Remote.Addr(), t.Local.Addr())
	if err != nil {
		panic(err)
	}
	return seg
}

// synFrom is a SYN from peer n with ISN remoteISS and the given options.
func synFrom(n int, o *Options) Segment {
	return segFrom(peerN(n), Header{Seq: remoteISS, Flags: FlagSYN, Window: 65535, Options: o})
}

// ackFrom is the final ACK of peer n's handshake with ISS iss.
func ackFrom(n int, iss Value, o *Options) Segment {
	return segFrom(peerN(n), Header{Seq: remoteISS + 1, Ack: iss + 1, Flags: FlagACK, Window: 1000, Options: o})
}

// cookieConfig is testConfig with a cookie key.
func cookieConfig() Config {
	cfg := testConfig()
	cfg.SYNCookieHash = NewISNGenerator([32]byte{1, 2, 3}).CookieHash
	return cfg
}

// A half-open entry is a few hundred bytes at most: no buffers, no Conn.
func TestHalfOpenEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(halfOpen{}); n > 256 {
		t.Fatalf("halfOpen is %d bytes", n)
	}
	if n := unsafe.Sizeof(Conn{}); n < 3*unsafe.Sizeof(halfOpen{}) {
		t.Fatalf("Conn (%d bytes) is not much larger than an entry", n)
	}
}

// An entry retransmits its SYN-ACK SynAckRetries times, but only twice
// while the SYN queue is more than half full (of 16 here): of 16 entries
// created together the first 8 to time out get 2, the other 8 all 5.
func TestSynAckRetriesUnderPressure(t *testing.T) {
	for _, tc := range []struct {
		entries, want int
	}{{1, 5}, {8, 8 * 5}, {9, 2 + 8*5}, {16, 8*2 + 8*5}} {
		cfg := testConfig()
		l := NewListener(&cfg, localAP, 16)
		var out recOutput
		for i := 0; i < tc.entries; i++ {
			l.Input(t0, peerN(i), synFrom(i, nil), localISS, localMSS, &out)
		}
		out.segs = nil
		for at := time.Duration(0); at < 200*time.Second; at += 100 * time.Millisecond {
			l.Tick(t0.Add(at), &out)
		}
		if n := len(out.segs); n != tc.want {
			t.Errorf("%d entries: %d retransmissions, want %d", tc.entries, n, tc.want)
		}
		if syn, _ := l.Pending(); syn != 0 || cfg.Stats.HalfOpen.Load() != 0 {
			t.Errorf("%d entries: %d left", tc.entries, syn)
		}
		if st := l.Stats(); st.SYNACKRetransmits != uint64(tc.want) || st.SYNQueueTimeouts != uint64(tc.entries) {
			t.Errorf("%d entries: stats %+v", tc.entries, st)
		}
	}
}

// With cookies off, a full SYN queue drops its oldest entry for the new
// SYN; the stack-wide MaxHalfOpen, reached by another listener, drops
// the SYN itself.
func TestSYNQueueDropsOldest(t *testing.T) {
	cfg := cookieConfig()
	cfg.SYNCookies = SYNCookiesNever
	l := NewListener(&cfg, localAP, 3)
	var out recOutput
	for i := 0; i < 5; i++ {
		l.Input(t0.Add(ms(i)), peerN(i), synFrom(i, nil), localISS, localMSS, &out)
	}
	if syn, _ := l.Pending(); syn != 3 {
		t.Fatalf("SYN queue %d", syn)
	}
	for i := 0; i < 5; i++ {
		if got, want := l.q.find(peerN(i)) != nil, i >= 2; got != want {
			t.Fatalf("entry %d present %v", i, got)
		}
	}
	if st := l.Stats(); st.SYNQueueOldestDropped != 2 || st.SYNCookiesSent != 0 || st.SYNsReceived != 5 {
		t.Fatalf("stats %+v", st)
	}
	// The evicted peer's ACK is answered with a RST.
	out.segs = nil
	if c := l.Input(t0.Add(ms(10)), peerN(0), ackFrom(0, localISS, nil), 0, localMSS, &out); c != nil || len(out.segs) != 1 || out.segs[0].Flags() != RST {
		t.Fatalf("evicted entry's ACK: %v, %d segments", c, len(out.segs))
	}

	cfg.MaxHalfOpen = 4
	l2 := NewListener(&cfg, netip.AddrPortFrom(localAP.Addr(), 81), 3)
	t2 := Tuple{Local: l2.Addr(), Remote: peerN(9).Remote}
	syn := func(seq Value) Segment {
		return segFrom(t2, Header{Seq: seq, Flags: FlagSYN, Window: 1000})
	}
	l2.Input(t0, t2, syn(1), localISS, localMSS, &out) // the 4th entry of the stack
	t3 := Tuple{Local: l2.Addr(), Remote: peerN(10).Remote}
	l2.Input(t0, t3, segFrom(t3, Header{Seq: 1, Flags: FlagSYN, Window: 1000}), localISS, localMSS, &out)
	if syn, _ := l2.Pending(); syn != 1 || cfg.Stats.HalfOpen.Load() != 4 {
		t.Fatalf("second listener: %d entries, stack %d", syn, cfg.Stats.HalfOpen.Load())
	}
	// l2 evicts its own oldest when at the stack's bound; l, with
	// entries of its own, does too.
	if got := l2.Stats().SYNQueueOldestDropped; got != 1 {
		t.Fatalf("l2 evicted %d", got)
	}
	l3 := NewListener(&cfg, netip.AddrPortFrom(localAP.Addr(), 82), 3)
	t4 := Tuple{Local: l3.Addr(), Remote: peerN(11).Remote}
	l3.Input(t0, t4, segFrom(t4, Header{Seq: 1, Flags: FlagSYN, Window: 1000}), localISS, localMSS, &out)
	if st := l3.Stats(); st.SYNQueueDrops != 1 || st.HalfOpen != 0 {
		t.Fatalf("l3 at the stack's bound: %+v", st)
	}
	if got := cfg.Stats.SYNQueueDrops.Load(); got != 1 {
		t.Fatalf("Stats.SYNQueueDrops %d", got)
	}
}

// A full accept queue drops the final ACK (counted) and keeps the entry,
// whose SYN-ACK retransmission draws the ACK again once Accept made room.
func TestAcceptQueueFullDropsACK(t *testing.T) {
	cfg := testConfig()
	l := NewListener(&cfg, localAP, 2)
	var out recOutput
	l.Input(t0, peerN(0), synFrom(0, nil), localISS, localMSS, &out)
	l.Input(t0, peerN(1), synFrom(1, nil), localISS+100, localMSS, &out)
	a := l.Input(t0.Add(ms(10)), peerN(0), ackFrom(0, localISS, nil), 0, localMSS, &out)
	if a == nil || !a.Established() || !a.Accepted() {
		t.Fatal("first handshake did not complete")
	}
	l.Input(t0.Add(ms(10)), peerN(2), synFrom(2, nil), localISS+200, localMSS, &out)
	if c := l.Input(t0.Add(ms(10)), peerN(2), ackFrom(2, localISS+200, nil), 0, localMSS, &out); c == nil {
		t.Fatal("second handshake did not complete")
	}
	out.segs = nil
	if c := l.Input(t0.Add(ms(11)), peerN(1), ackFrom(1, localISS+100, nil), 0, localMSS, &out); c != nil {
		t.Fatal("completed a handshake beyond the backlog")
	}
	if len(out.segs) != 0 {
		t.Fatalf("answered the dropped ACK: %v", describe(out.segs[0]))
	}
	if st := l.Stats(); st.ListenOverflows != 1 || st.HalfOpen != 1 || st.AcceptQueue != 2 {
		t.Fatalf("stats %+v", st)
	}
	l.Tick(t0.Add(time.Second), &out)
	if len(out.segs) != 1 || out.segs[0].Flags() != SYNACK || out.segs[0].Seq() != localISS+100 {
		t.Fatalf("no SYN-ACK retransmission: %d segments", len(out.segs))
	}
	// A SYN is dropped too while the accept queue is full.
	l.Input(t0.Add(time.Second), peerN(3), synFrom(3, nil), localISS+300, localMSS, &out)
	if st := l.Stats(); st.ListenOverflows != 2 || st.HalfOpen != 1 {
		t.Fatalf("stats %+v", st)
	}
	if l.Accept() != a {
		t.Fatal("Accept")
	}
	b := l.Input(t0.Add(time.Second+ms(10)), peerN(1), ackFrom(1, localISS+100, nil), 0, localMSS, &out)
	if b == nil || !b.Accepted() {
		t.Fatal("the retried ACK did not complete the handshake")
	}
	// The retransmission means no RTT sample from the handshake (Karn).
	if b.Info().SRTT != 0 {
		t.Fatalf("SRTT %v after a retransmitted SYN-ACK", b.Info().SRTT)
	}
	if a.Info().SRTT != ms(10) {
		t.Fatalf("SRTT %v from the handshake", a.Info().SRTT)
	}
}

// RFC 5961 §3.2 for a half-open entry: a RST at RCV.NXT removes it, one
// elsewhere in the window draws a challenge ACK, one outside is ignored.
func TestHalfOpenRST(t *testing.T) {
	cfg := testConfig()
	l := NewListener(&cfg, localAP, 4)
	var out recOutput
	l.Input(t0, peerN(0), synFrom(0, nil), localISS, localMSS, &out)
	out.segs = nil
	rst := func(seq Value) Segment { return segFrom(peerN(0), Header{Seq: seq, Flags: FlagRST}) }
	l.Input(t0.Add(ms(1)), peerN(0), rst(remoteISS+1+1<<20), 0, localMSS, &out)
	if len(out.segs) != 0 || l.q.len() != 1 {
		t.Fatal("out-of-window RST answered or acted on")
	}
	l.Input(t0.Add(ms(2)), peerN(0), rst(remoteISS+100), 0, localMSS, &out)
	if len(out.segs) != 1 || match(out.segs[0], sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1}) != nil || l.q.len() != 1 {
		t.Fatalf("in-window RST: %d segments, %d entries", len(out.segs), l.q.len())
	}
	l.Input(t0.Add(ms(3)), peerN(0), rst(remoteISS+1), 0, localMSS, &out)
	if l.q.len() != 0 || cfg.Stats.HalfOpen.Load() != 0 || !l.NextDeadline().IsZero() {
		t.Fatal("exact RST left the entry")
	}
}

// A retransmitted SYN gets the same SYN-ACK again; a SYN with another ISN
// starts over.
func TestHalfOpenRetransmittedSYN(t *testing.T) {
	cfg := testConfig()
	cfg.WindowScale, cfg.SACKPermitted = true, true
	l := NewListener(&cfg, localAP, 4)
	var out recOutput
	opts := &Options{MSS: 1400, WindowScale: 5, SACKPermitted: true}
	l.Input(t0, peerN(0), synFrom(0, opts), localISS, localMSS, &out)
	l.Input(t0.Add(ms(500)), peerN(0), synFrom(0, opts), localISS+7, localMSS, &out)
	if len(out.segs) != 2 || !bytes.Equal(out.segs[0], out.segs[1]) {
		t.Fatalf("%d segments, or a different SYN-ACK", len(out.segs))
	}
	// Copies within 500 ms of the last SYN-ACK are not answered.
	for i := 1; i < 50; i++ {
		l.Input(t0.Add(ms(500+i)), peerN(0), synFrom(0, opts), localISS+7, localMSS, &out)
	}
	if len(out.segs) != 2 {
		t.Fatalf("a flood of SYN copies drew %d SYN-ACKs", len(out.segs)-2)
	}
	if got := l.Stats().SYNACKRetransmits; got != 1 {
		t.Fatalf("SYNACKRetransmits %d", got)
	}
	other := segFrom(peerN(0), Header{Seq: remoteISS + 5000, Flags: FlagSYN, Window: 1000})
	l.Input(t0.Add(ms(600)), peerN(0), other, localISS+9, localMSS, &out)
	if e := l.q.find(peerN(0)); e == nil || e.irs != remoteISS+5000 || e.iss != localISS+9 || l.q.len() != 1 {
		t.Fatal("a SYN with a new ISN did not start over")
	}
}

// The Conn made from an entry is the Conn a passive open always made:
// the options of the SYN, our window scale, TS.Recent, SND.WND from the
// ACK, the RTT of the handshake.
func TestHalfOpenConnParameters(t *testing.T) {
	cfg := testConfig()
	cfg.WindowScale, cfg.SACKPermitted, cfg.Timestamps = true, true, true
	l := NewListener(&cfg, localAP, 4)
	var out recOutput
	l.Input(t0, peerN(0), synFrom(0, &Options{MSS: 1400, WindowScale: 5, SACKPermitted: true, Timestamp: true, TSVal: 777}), localISS, localMSS, &out)
	var so Options
	out.segs[0].Options(&so)
	if so.TSEcr != 777 || so.WindowScale != 1 || !so.SACKPermitted || so.MSS != localMSS {
		t.Fatalf("SYN-ACK options %+v", so)
	}
	c := l.Input(t0.Add(ms(30)), peerN(0), ackFrom(0, localISS, &Options{WindowScale: -1, Timestamp: true, TSVal: 780, TSEcr: so.TSVal}), 0, localMSS, &out)
	if c == nil {
		t.Fatal("no connection")
	}
	in := c.Info()
	if in.MSS != 1400-12 || !c.wsOK || c.snd.shift != 5 || c.rcv.shift != 1 || !c.sackOK || !c.tsOK {
		t.Fatalf("MSS %d ws %v %d/%d sack %v ts %v", in.MSS, c.wsOK, c.snd.shift, c.rcv.shift, c.sackOK, c.tsOK)
	}
	if c.tsRecent != 780 || c.snd.WND != 1000<<5 || in.SRTT != ms(30) || c.State() != StateEstablished {
		t.Fatalf("TS.Recent %d SND.WND %d SRTT %v state %v", c.tsRecent, c.snd.WND, in.SRTT, c.State())
	}
	if cfg.Stats.PassiveOpens.Load() != 1 || l.q.len() != 0 || cfg.Stats.HalfOpen.Load() != 0 {
		t.Fatal("counters")
	}
}

// Data and FIN on the final ACK are processed by the new Conn.
func TestHalfOpenDataOnFinalACK(t *testing.T) {
	cfg := testConfig()
	l := NewListener(&cfg, localAP, 4)
	var out recOutput
	l.Input(t0, peerN(0), synFrom(0, nil), localISS, localMSS, &out)
	h := Header{Seq: remoteISS + 1, Ack: localISS + 1, Flags: FlagACK | FlagPSH | FlagFIN, Window: 1000}
	b := make([]byte, HeaderLen+5)
	h.SrcPort, h.DstPort = 40000, localAP.Port()
	h.Encode(b)
	copy(b[HeaderLen:], "hello")
	SetChecksum(b, remoteAP.Addr(), localAP.Addr())
	seg, _ := ParseSegment(b, remoteAP.Addr(), localAP.Addr())
	c := l.Input(t0.Add(ms(5)), peerN(0), seg, 0, localMSS, &out)
	if c == nil || c.State() != StateCloseWait {
		t.Fatalf("state %v", c.State())
	}
	buf := make([]byte, 16)
	if n, _ := c.Read(t0.Add(ms(6)), buf, &out); string(buf[:n]) != "hello" {
		t.Fatalf("read %q", buf[:n])
	}
}

// A flood of random ACKs at a listener costs no allocation and draws at
// most InvalidRSTLimit RSTs a second (plus the first second's burst).
func TestACKFloodRateLimited(t *testing.T) {
	cfg := cookieConfig()
	cfg.SYNCookies = SYNCookiesAlways
	cfg.InvalidRSTLimit = 50
	l := NewListener(&cfg, localAP, 16)
	out := newLoopOut(4)
	segs := make([]Segment, 256)
	for i := range segs {
		v := Value(i*2654435761 + 12345)
		segs[i] = segFrom(peerN(i%50), Header{Seq: v, Ack: v * 7, Flags: FlagACK, Window: 1000})
	}
	now := t0
	i := 0
	allocs := testing.AllocsPerRun(20000, func() {
		now = now.Add(100 * time.Microsecond) // 10,000 ACKs a second
		l.Input(now, peerN(i%50), segs[i%len(segs)], 0, localMSS, out)
		out.free = append(out.free, out.bufs...)
		out.q, out.bufs = out.q[:0], out.bufs[:0]
		i++
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per ACK", allocs)
	}
	st := l.Stats()
	secs := now.Sub(t0).Seconds()
	if max := uint64(50 * (secs + 1)); st.ResetsSent > max || st.ResetsSent < 50 {
		t.Fatalf("%d RSTs in %.1f s (limit 50/s)", st.ResetsSent, secs)
	}
	if st.SYNCookiesRejected != st.ResetsSent+st.ResetsRateLimited || st.SYNCookiesAccepted != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// tokenBucket allows n a second after its burst of n.
func TestTokenBucket(t *testing.T) {
	var b tokenBucket
	n := 0
	for at := time.Duration(0); at < 10*time.Second; at += time.Millisecond {
		if b.allow(t0.Add(at), 100) {
			n++
		}
	}
	if n < 1000 || n > 1100 {
		t.Fatalf("%d in 10 s at 100/s", n)
	}
	if !b.allow(t0, 0) {
		t.Fatal("no limit refused")
	}
}

// A SYN flood costs no allocation in the steady state, answered with
// cookies or, with cookies off, by recycling the oldest entry.
func TestSYNFloodAllocationFree(t *testing.T) {
	for _, mode := range []SYNCookieMode{SYNCookiesAlways, SYNCookiesNever} {
		cfg := cookieConfig()
		cfg.SYNCookies = mode
		l := NewListener(&cfg, localAP, 64)
		out := newLoopOut(4)
		segs := make([]Segment, 512)
		for i := range segs {
			segs[i] = segFrom(peerN(i), Header{Seq: Value(i * 7919), Flags: FlagSYN, Window: 1000, Options: &Options{MSS: 1460, WindowScale: 7, SACKPermitted: true, Timestamp: true, TSVal: 5}})
		}
		now := t0
		i := 0
		flood := func() {
			now = now.Add(50 * time.Microsecond)
			l.Input(now, peerN(i%len(segs)), segs[i%len(segs)], Value(i), localMSS, out)
			l.Tick(now, out)
			out.free = append(out.free, out.bufs...)
			out.q, out.bufs = out.q[:0], out.bufs[:0]
			i++
		}
		for j := 0; j < 2*len(segs); j++ {
			flood() // warm up: the queue, its map and free list at full size
		}
		if allocs := testing.AllocsPerRun(5000, flood); allocs != 0 {
			t.Errorf("cookies %v: %v allocations per SYN", mode, allocs)
		}
		if syn, _ := l.Pending(); syn > 64 {
			t.Errorf("cookies %v: %d entries", mode, syn)
		}
	}
}

// BenchmarkListenerSYN measures a listener answering a spoofed SYN flood:
// with a cookie each, or (cookies off) by recycling its oldest entry.
func BenchmarkListenerSYN(b *testing.B) {
	for _, mode := range []SYNCookieMode{SYNCookiesAlways, SYNCookiesNever} {
		b.Run(mode.String(), func(b *testing.B) {
			cfg := cookieConfig()
			cfg.SYNCookies = mode
			cfg.TimestampOffset = NewISNGenerator([32]byte{4}).TimestampOffset
			l := NewListener(&cfg, localAP, 4096)
			out := newLoopOut(4)
			segs := make([]Segment, 8192)
			for i := range segs {
				segs[i] = segFrom(peerN(i), Header{Seq: Value(i * 7919), Flags: FlagSYN, Window: 1000, Options: &Options{MSS: 1460, WindowScale: 7, SACKPermitted: true, Timestamp: true, TSVal: 5}})
			}
			now := t0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				now = now.Add(time.Microsecond)
				l.Input(now, peerN(i%len(segs)), segs[i%len(segs)], Value(i), localMSS, out)
				out.free = append(out.free, out.bufs...)
				out.q, out.bufs = out.q[:0], out.bufs[:0]
			}
		})
	}
}

// BenchmarkListenerStrayACK measures an ACK flood at a listener: one
// cookie check and a rate-limited RST each.
func BenchmarkListenerStrayACK(b *testing.B) {
	cfg := cookieConfig()
	cfg.SYNCookies = SYNCookiesAlways
	l := NewListener(&cfg, localAP, 16)
	out := newLoopOut(4)
	segs := make([]Segment, 256)
	for i := range segs {
		v := Value(i*2654435761 + 12345)
		segs[i] = segFrom(peerN(i), Header{Seq: v, Ack: v * 7, Flags: FlagACK, Window: 1000})
	}
	now := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now = now.Add(time.Microsecond)
		l.Input(now, peerN(i%len(segs)), segs[i%len(segs)], 0, localMSS, out)
		out.free = append(out.free, out.bufs...)
		out.q, out.bufs = out.q[:0], out.bufs[:0]
	}
}

// A port unreachable quoting the SYN-ACK drops the half-open entry; one
// quoting another sequence number, or a soft error, changes nothing.
func TestHalfOpenICMP(t *testing.T) {
	cfg := testConfig()
	l := NewListener(&cfg, localAP, 4)
	var out recOutput
	l.Input(t0, peerN(0), synFrom(0, nil), localISS, localMSS, &out)
	for _, e := range []ICMPError{
		{Kind: ICMPPortUnreachable, Seq: localISS + 1},
		{Kind: ICMPHostUnreachable, Seq: localISS},
		{Kind: ICMPFragmentationNeeded, Seq: localISS, MTU: 1000},
	} {
		if r, ok := l.HandleICMP(peerN(0), e); r != ICMPIgnored || !ok || l.q.len() != 1 {
			t.Fatalf("%+v: %v %v, %d entries", e, r, ok, l.q.len())
		}
	}
	if _, ok := l.HandleICMP(peerN(1), ICMPError{Kind: ICMPPortUnreachable, Seq: localISS}); ok {
		t.Fatal("an entry for a tuple without one")
	}
	if r, _ := l.HandleICMP(peerN(0), ICMPError{Kind: ICMPPortUnreachable, Seq: localISS}); r != ICMPAborted || l.q.len() != 0 || cfg.Stats.HalfOpen.Load() != 0 {
		t.Fatalf("%v, %d entries", r, l.q.len())
	}
	if cfg.Stats.ICMPAborts.Load() != 1 || cfg.Stats.ICMPIgnored.Load() != 3 {
		t.Fatalf("ICMPAborts %d ICMPIgnored %d", cfg.Stats.ICMPAborts.Load(), cfg.Stats.ICMPIgnored.Load())
	}
}
