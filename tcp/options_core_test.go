package tcp

import (
	"testing"
	"time"
)

// optionsHarness dials with window scaling, timestamps and SACK-permitted
// advertised and a 1 MiB receive buffer (shift 5).
func optionsHarness(t *testing.T) (*harness, Options) {
	t.Helper()
	cfg := testConfig()
	cfg.WindowScale, cfg.Timestamps, cfg.SACKPermitted = true, true, true
	cfg.ReceiveBufferSize = 1 << 20
	h := newHarness(cfg)
	h.dial(t, 0)
	syn := h.expect(t, 0, sg{flags: SYN, seq: localISS, win: 65535,
		opts: &Options{MSS: localMSS, WindowScale: 5, SACKPermitted: true, Timestamp: true}})
	var o Options
	syn.Options(&o)
	return h, o
}

// RFC 7323 §2: both SYNs carry Window Scale, so later windows are scaled
// both ways; SYN windows are not.
func TestWindowScaling(t *testing.T) {
	h, syn := optionsHarness(t)
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 1000,
		opts: &Options{MSS: 1460, WindowScale: 3, Timestamp: true, TSVal: 7, TSEcr: syn.TSVal}})
	// Our ACK offers 1 MiB >> 5.
	h.expect(t, ms(10), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1, win: (1 << 20) >> 5})
	if got := h.c.Info().SendWindow; got != 1000 {
		t.Fatalf("SYN,ACK window scaled: %d", got)
	}
	h.send(t, ms(11), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 1000,
		opts: &Options{WindowScale: -1, Timestamp: true, TSVal: 8, TSEcr: syn.TSVal}})
	if got := h.c.Info().SendWindow; got != 8000 {
		t.Fatalf("SND.WND %d, want 1000<<3", got)
	}
	// Segments carry 1460-12 bytes (timestamps take 12, RFC 7323 §3.2).
	if got := h.c.Info().MSS; got != 1448 {
		t.Fatalf("MSS %d", got)
	}
}

// Without Window Scale on the peer's SYN neither side scales.
func TestWindowScalingNotNegotiated(t *testing.T) {
	h, _ := optionsHarness(t)
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 1000, opts: mssOpt(1460)})
	h.expect(t, ms(10), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1, win: 65535, noOpts: true})
	h.send(t, ms(11), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 1000})
	if got := h.c.Info().SendWindow; got != 1000 {
		t.Fatalf("SND.WND %d", got)
	}
	if got := h.c.Info().MSS; got != 1460 {
		t.Fatalf("MSS %d", got)
	}
}

// A passive open answers options only if the SYN carried them.
func TestPassiveOptionsEcho(t *testing.T) {
	cfg := testConfig()
	cfg.WindowScale, cfg.Timestamps, cfg.SACKPermitted = true, true, true
	h := newHarness(cfg)
	h.l = NewListener(&h.cfg, localAP, 4)
	h.send(t, 0, sg{flags: SYN, seq: remoteISS, win: 65535, opts: &Options{MSS: 1400, WindowScale: 2, Timestamp: true, TSVal: 99}})
	h.expect(t, 0, sg{flags: SYNACK, seq: localISS, ack: remoteISS + 1,
		opts: &Options{MSS: localMSS, WindowScale: 1, Timestamp: true, TSEcr: 99}}) // 64 KiB needs shift 1
	h2 := newHarness(cfg)
	h2.l = NewListener(&h2.cfg, localAP, 4)
	h2.send(t, 0, sg{flags: SYN, seq: remoteISS, win: 65535, opts: mssOpt(1400)})
	h2.expect(t, 0, sg{flags: SYNACK, seq: localISS, ack: remoteISS + 1, opts: mssOpt(localMSS)})
	// No MSS option: 536 (RFC 9293 §3.7.1).
	h3 := newHarness(cfg)
	h3.l = NewListener(&h3.cfg, localAP, 4)
	h3.send(t, 0, sg{flags: SYN, seq: remoteISS, win: 65535})
	h3.send(t, ms(1), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535})
	if got := h3.c.Info().MSS; got != 536 {
		t.Fatalf("MSS without option %d", got)
	}
}

// tsEstablished is ESTABLISHED with timestamps (peer TSval 100 on the
// SYN,ACK, 10 ms after our SYN).
func tsEstablished(t *testing.T) (*harness, uint32) {
	t.Helper()
	h, syn := optionsHarness(t)
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535,
		opts: &Options{MSS: 1460, WindowScale: 0, Timestamp: true, TSVal: 100, TSEcr: syn.TSVal}})
	ack := h.expect(t, ms(10), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1,
		opts: &Options{WindowScale: -1, Timestamp: true, TSEcr: 100}})
	var o Options
	ack.Options(&o)
	if o.TSVal != syn.TSVal+10 {
		t.Fatalf("TSval %d, want %d (1 ms clock)", o.TSVal, syn.TSVal+10)
	}
	return h, syn.TSVal
}

// RFC 7323 §4: the RTT comes from the echoed timestamp, for every ACK of
// new data, even after retransmissions.
func TestRTTFromTimestamps(t *testing.T) {
	h, ts0 := tsEstablished(t)
	if got := h.c.Info().SRTT; got != ms(10) {
		t.Fatalf("SRTT from the SYN,ACK %v", got)
	}
	h.c.Write(t0.Add(ms(20)), []byte("x"), &h.out)
	h.expect(t, ms(20), sg{flags: PSHACK, seq: localISS + 1, ack: remoteISS + 1, data: []byte("x")})
	h.expect(t, ms(220), sg{flags: PSHACK, seq: localISS + 1, ack: remoteISS + 1, data: []byte("x")})
	// The ACK echoes the retransmission's TSval (ts0+220): RTT 30 ms.
	h.send(t, ms(250), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 2, win: 65535,
		opts: &Options{WindowScale: -1, Timestamp: true, TSVal: 101, TSEcr: ts0 + 220}})
	// SRTT = 7/8*10 + 1/8*30 = 12.5 ms.
	if got := h.c.Info().SRTT; got != 12500*time.Microsecond {
		t.Fatalf("SRTT %v", got)
	}
}

// RFC 7323 §5: PAWS drops a segment whose TSval is older than TS.Recent,
// with an ACK in reply; RSTs are exempt.
func TestPAWS(t *testing.T) {
	h, ts0 := tsEstablished(t)
	ts := func(v uint32) *Options {
		return &Options{WindowScale: -1, Timestamp: true, TSVal: v, TSEcr: ts0}
	}
	h.send(t, ms(20), sg{flags: PSHACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535, opts: ts(200), data: []byte("new")})
	h.send(t, ms(21), sg{flags: PSHACK, seq: remoteISS + 4, ack: localISS + 1, win: 65535, opts: ts(150), data: []byte("old")})
	h.expect(t, ms(21), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 4, opts: &Options{WindowScale: -1, Timestamp: true, TSEcr: 200}})
	if got := h.cfg.Stats.DroppedPAWS.Load(); got != 1 {
		t.Fatalf("DroppedPAWS %d", got)
	}
	buf := make([]byte, 10)
	if n, _ := h.c.Read(t0.Add(ms(22)), buf, &h.out); string(buf[:n]) != "new" {
		t.Fatalf("read %q", buf[:n])
	}
	// TSval wraps: 2^31 newer is older.
	h.send(t, ms(23), sg{flags: PSHACK, seq: remoteISS + 4, ack: localISS + 1, win: 65535, opts: ts(200 + 1<<31 + 5), data: []byte("w")})
	h.expect(t, ms(23), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 4})
	h.send(t, ms(24), sg{flags: RST, seq: remoteISS + 4, opts: ts(1)})
	h.expectState(t, StateClosed)
}

// RFC 6191: with timestamps, TIME-WAIT accepts a SYN with a newer TSval
// even at an old sequence number, and refuses an older TSval.
func TestTimeWaitAcceptsSYNWithTimestamps(t *testing.T) {
	h2, ts2 := tsEstablished(t)
	ts := func(v uint32) *Options { return &Options{WindowScale: -1, Timestamp: true, TSVal: v, TSEcr: ts2} }
	h2.c.CloseWrite(t0.Add(ms(20)), &h2.out)
	h2.send(t, ms(30), sg{flags: FINACK, seq: remoteISS + 1, ack: localISS + 2, win: 65535, opts: ts(300)})
	h2.expectState(t, StateTimeWait)
	if h2.c.AcceptsSYN(sg{flags: SYN, seq: remoteISS, opts: ts(299)}.build()) {
		t.Fatal("accepted an older TSval")
	}
	if !h2.c.AcceptsSYN(sg{flags: SYN, seq: remoteISS, opts: ts(301)}.build()) {
		t.Fatal("refused a newer TSval")
	}
}

// RFC 2018 §4: with SACK negotiated, ACKs for out-of-order data carry SACK
// blocks, the block of the segment that triggered the ACK first.
func TestSACKBlocks(t *testing.T) {
	cfg := testConfig()
	cfg.SACKPermitted = true
	h := newHarness(cfg)
	h.dial(t, 0)
	h.expect(t, 0, sg{flags: SYN, seq: localISS, opts: &Options{MSS: localMSS, WindowScale: -1, SACKPermitted: true}})
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535, opts: &Options{MSS: 1460, WindowScale: -1, SACKPermitted: true}})
	h.expect(t, ms(10), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1, noOpts: true})
	base := remoteISS + 1
	h.send(t, ms(20), sg{flags: ACK, seq: base + 100, ack: localISS + 1, win: 65535, data: make([]byte, 10)})
	got := h.expect(t, ms(20), sg{flags: ACK, seq: localISS + 1, ack: base})
	var o Options
	got.Options(&o)
	if o.NumSACK != 1 || o.SACK[0] != (SACKBlock{base + 100, base + 110}) {
		t.Fatalf("SACK %v", o.SACK[:o.NumSACK])
	}
	h.send(t, ms(21), sg{flags: ACK, seq: base + 300, ack: localISS + 1, win: 65535, data: make([]byte, 10)})
	got = h.expect(t, ms(21), sg{flags: ACK, seq: localISS + 1, ack: base})
	got.Options(&o)
	if o.NumSACK != 2 || o.SACK[0] != (SACKBlock{base + 300, base + 310}) || o.SACK[1] != (SACKBlock{base + 100, base + 110}) {
		t.Fatalf("SACK %v", o.SACK[:o.NumSACK])
	}
	h.send(t, ms(22), sg{flags: ACK, seq: base + 110, ack: localISS + 1, win: 65535, data: make([]byte, 5)})
	got = h.expect(t, ms(22), sg{flags: ACK, seq: localISS + 1, ack: base})
	got.Options(&o)
	if o.NumSACK != 2 || o.SACK[0] != (SACKBlock{base + 100, base + 115}) {
		t.Fatalf("SACK %v", o.SACK[:o.NumSACK])
	}
	// Holes filled: no SACK blocks but the D-SACK of the first part
	// repeated (RFC 2883 §4: the lowest duplicate range).
	h.send(t, ms(23), sg{flags: ACK, seq: base, ack: localISS + 1, win: 65535, data: make([]byte, 400)})
	got = h.expect(t, ms(23), sg{flags: ACK, seq: localISS + 1, ack: base + 400})
	got.Options(&o)
	if o.NumSACK != 1 || o.SACK[0] != (SACKBlock{base + 100, base + 115}) {
		t.Fatalf("SACK %v", o.SACK[:o.NumSACK])
	}
	h.send(t, ms(24), sg{flags: ACK, seq: base + 400, ack: localISS + 1, win: 65535, data: make([]byte, 1)})
	h.expect(t, ms(64), sg{flags: ACK, seq: localISS + 1, ack: base + 401, noOpts: true})
}

// TSval never goes back, even when the caller passes an earlier now than
// before (RFC 7323 §5.2: PAWS at the peer would drop the segment).
func TestTSValMonotonic(t *testing.T) {
	h, syn := optionsHarness(t)
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 1000,
		opts: &Options{MSS: 1460, WindowScale: 3, Timestamp: true, TSVal: 7, TSEcr: syn.TSVal}})
	h.out.segs = nil
	h.c.Write(t0.Add(ms(100)), []byte("x"), &h.out)
	data, _ := h.out.pop()
	var o Options
	data.Options(&o)
	// An out-of-order segment processed with an earlier now draws an
	// immediate ACK.
	h.send(t, ms(50), sg{flags: ACK, seq: remoteISS + 100, ack: localISS + 1, win: 1000, data: []byte("y"),
		opts: &Options{WindowScale: -1, Timestamp: true, TSVal: 8, TSEcr: o.TSVal}})
	ack, ok := h.out.pop()
	if !ok {
		t.Fatal("no ACK")
	}
	var a Options
	ack.Options(&a)
	if int32(a.TSVal-o.TSVal) < 0 {
		t.Fatalf("TSval %d after %d", a.TSVal, o.TSVal)
	}
}
