package tcp

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/checksum"
)

// cutSuper cuts a super-segment into wire segments of mss payload bytes
// as a link's GSO does (Linux's tcp_gso_segment, wireguard-go's
// gsoSplit): each piece carries the header with its own sequence number,
// PSH and FIN only on the last piece, CWR only on the first, and its own
// checksum.
func cutSuper(seg []byte, mss int, src, dst netip.Addr) [][]byte {
	hl := int(seg[offDataOffset]>>4) * 4
	payload := seg[hl:]
	seq := binary.BigEndian.Uint32(seg[offSeq:])
	flags := Flags(seg[offFlags])
	var out [][]byte
	for off := 0; off < len(payload) || off == 0; off += mss {
		n := min(mss, len(payload)-off)
		b := make([]byte, hl+n)
		copy(b, seg[:hl])
		copy(b[hl:], payload[off:off+n])
		binary.BigEndian.PutUint32(b[offSeq:], seq+uint32(off))
		f := flags
		if off+n < len(payload) {
			f &^= FlagPSH | FlagFIN
		}
		if off > 0 {
			f &^= FlagCWR
		}
		b[offFlags] = byte(f)
		SetChecksum(b, src, dst)
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return out
}

// A bulk exchange with GSO on at both ends sends super-segments, and
// what the link makes of them, cut into SendMSS pieces, is the very
// stream the core sends without GSO, segment for segment and byte for
// byte, in the seeded exchanges of TestGoldenStream: clean and lossy, with
// and without SACK and timestamps. So the receiver reassembles the same
// bytes, and every counter (cwnd, RTT, retransmissions) moves as without
// GSO.
func TestGSOCutStreamEqualsPlain(t *testing.T) {
	for i, tc := range goldenStreamCases {
		t.Run(tc.name, func(t *testing.T) {
			var p *pair
			plain := streamHash(t, i, nil)
			gso := streamHash(t, i, func(q *pair) {
				p = q
				q.a.SetGSOMaxSize(65535)
				q.b.SetGSOMaxSize(65535)
			})
			if p.gsoErr != nil {
				t.Fatal(p.gsoErr)
			}
			if p.supers == 0 {
				t.Fatal("no super-segment sent")
			}
			t.Logf("%d super-segments, %.1f pieces each, %d retransmissions", p.supers, float64(p.superPieces)/float64(p.supers), p.superRetrans)
			if gso != plain {
				t.Fatalf("stream with GSO, cut, differs from the stream without")
			}
		})
	}
}

// expectSuper checks that the next segment sent is a super-segment (or,
// with gso 0, a single segment) matching want, cut at gso bytes.
func (h *harness) expectSuper(t *testing.T, at time.Duration, want sg, gso int) {
	t.Helper()
	got := h.expect(t, at, want)
	if g := h.out.gsoSize(got); g != gso {
		t.Fatalf("at %v: gso_size %d, want %d (payload %d)", at, g, gso, len(got.Payload()))
	}
}

// superSeg is segments [from, to) of src as one super-segment.
func superSeg(src []byte, from, to int, flags Flags) sg {
	return sg{flags: flags, seq: segN(from), ack: remoteISS + 1, data: src[from*localMSS : to*localMSS]}
}

// Bulk data with GSO goes in super-segments of k·SendMSS, as large as the
// congestion window allows: the initial window (RFC 6928, ten segments)
// as one, then, each ACK growing cwnd by one SMSS in slow start (RFC 5681
// §3.1), one more segment each round; PSH on the last, with the FIN.
func TestGSOSuperSegmentsFollowCwnd(t *testing.T) {
	h := established(t)
	wholeWindowGSO(h)
	if got := h.c.SendMSS(); got != localMSS {
		t.Fatalf("SendMSS %d, want %d", got, localMSS)
	}
	src := pattern(40*localMSS + 100)
	if n, _ := h.c.Write(t0.Add(ms(20)), src, &h.out); n != len(src) {
		t.Fatalf("wrote %d", n)
	}
	h.c.CloseWrite(t0.Add(ms(20)), &h.out)
	h.expectSuper(t, ms(20), superSeg(src, 0, 10, ACK), localMSS)
	h.expectNothing(t, ms(20))
	at, next := ms(30), 10
	for k := 11; next < 40; k++ {
		h.send(t, at, sg{flags: ACK, seq: remoteISS + 1, ack: segN(next), win: 65535})
		if cw := h.c.Info().CongestionWindow; cw != uint32(k*localMSS) {
			t.Fatalf("cwnd %d, want %d", cw, k*localMSS)
		}
		end := min(next+k, 40)
		want := superSeg(src, next, end, ACK)
		if end == 40 {
			// The last piece: the 100 bytes and the FIN go too.
			want.data = src[next*localMSS:]
			want.flags = FlagPSH | FlagFIN | FlagACK
		}
		h.expectSuper(t, at, want, localMSS)
		h.expectNothing(t, at)
		next = end
		at += ms(10)
	}
	if got, want := h.c.Info().SegmentsOut, uint64(1+41+1); got != want { // ACK of the SYN, data pieces, FIN included
		t.Errorf("SegmentsOut %d, want %d", got, want)
	}
}

// One MSS lost inside a super-segment is repaired by retransmitting that
// MSS only: the SACK blocks split the super-segment's record, RACK (RFC
// 8985 §6.2) deems the one piece lost, and it goes alone.
func TestGSOLossOfOneMSS(t *testing.T) {
	h, src := tenMSSSuperSegment(t)
	// Pieces 0-2 arrive, 3 is lost, 4-9 arrive. Six segments SACKed
	// (DupThresh, RFC 8985 §6.2 Step 4): the reordering window is zero.
	h.send(t, ms(30), sackAt(segN(3), segN(4), segN(10)))
	h.expectSuper(t, ms(30), dataSeg(src, 3, ACK), 0)
	h.expectNothing(t, ms(30))
	if n := h.c.Info().Retransmits; n != 1 {
		t.Fatalf("%d retransmissions, want 1", n)
	}
	h.send(t, ms(40), sackAt(segN(10)))
	h.expectNothing(t, ms(40))
	if i := h.c.Info(); i.Retransmits != 1 || h.c.snd.UNA != segN(10) {
		t.Fatalf("%d retransmissions, SND.UNA %d", i.Retransmits, h.c.snd.UNA)
	}
}

// A lost run of five MSS inside a super-segment goes again as one
// super-segment of five MSS, as large as the hole and no larger.
func TestGSOLossOfFiveMSS(t *testing.T) {
	h, src := tenMSSSuperSegment(t)
	// Pieces 0-1 arrive, 2-6 are lost, 7-9 arrive. PRR (RFC 6937) lets
	// ssthresh - pipe = 5 MSS go at once (pipe is zero).
	h.send(t, ms(30), sackAt(segN(2), segN(7), segN(10)))
	h.expectSuper(t, ms(30), superSeg(src, 2, 7, ACK), localMSS)
	h.expectNothing(t, ms(30))
	if n := h.c.Info().Retransmits; n != 5 {
		t.Fatalf("%d retransmissions, want 5 (pieces)", n)
	}
	h.send(t, ms(40), sackAt(segN(10)))
	h.expectNothing(t, ms(40))
}

// tenMSSSuperSegment is the set-up of the super-segment tests: an
// established SACK connection with whole-window GSO that writes ten MSS at
// 20 ms and sends them as one super-segment.
func tenMSSSuperSegment(t *testing.T) (*harness, []byte) {
	t.Helper()
	h := establishedSACK(t)
	wholeWindowGSO(h)
	src := pattern(10 * localMSS)
	h.c.Write(t0.Add(ms(20)), src, &h.out)
	h.expectSuper(t, ms(20), superSeg(src, 0, 10, PSHACK), localMSS)
	return h, src
}

// wholeWindowGSO turns GSO on with super-segments as large as the window
// allows (Config.TSOBurst negative): the tests of the super-segments'
// mechanics run on the harness's 10 ms path, where TSO autosizing would
// cut the window into bursts of two segments (TestGSOAutosize).
func wholeWindowGSO(h *harness) {
	h.cfg.TSOBurst = -1
	h.c.SetGSOMaxSize(65535)
}

// TSO autosizing (Config.TSOBurst, Linux's tcp_tso_autosize): on a 10 ms
// path, a millisecond of the slow-start rate 2*cwnd/SRTT is two segments
// of the initial window of ten, so the window goes as five super-segments
// of two; with a longer burst (5 ms: the whole window) as one.
func TestGSOAutosize(t *testing.T) {
	for _, tc := range []struct {
		burst time.Duration
		sizes []int // segments per super-segment
	}{
		{0, []int{2, 2, 2, 2, 2}},
		{5 * time.Millisecond, []int{10}},
		{-1, []int{10}},
	} {
		t.Run(tc.burst.String(), func(t *testing.T) {
			h := establishedSACK(t)
			h.cfg.TSOBurst = tc.burst
			h.c.SetGSOMaxSize(65535)
			// The handshake's sample: SRTT 10 ms.
			if h.c.srtt != ms(10) {
				t.Fatalf("SRTT %v, want 10ms", h.c.srtt)
			}
			src := pattern(10 * localMSS)
			h.c.Write(t0.Add(ms(20)), src, &h.out)
			k := 0
			for i, n := range tc.sizes {
				flags := ACK
				if i == len(tc.sizes)-1 {
					flags = PSHACK
				}
				h.expectSuper(t, ms(20), superSeg(src, k, k+n, flags), localMSS)
				k += n
			}
			h.expectNothing(t, ms(20))
		})
	}
}

// A super-segment's retransmission that was spurious (its five pieces
// were only delayed) comes back as one D-SACK block covering all five, as
// a receiver reports a duplicate it took whole (GRO): it counts for five
// retransmissions and undoes the reduction (RFC 3708 §3, RFC 4015 §3.2),
// as Linux counts undo_retrans down by the segments a D-SACK covers.
func TestGSODSACKOfSuperSegmentUndoes(t *testing.T) {
	h, src := tenMSSSuperSegment(t)
	h.send(t, ms(30), sackAt(segN(2), segN(7), segN(10)))
	h.expectSuper(t, ms(30), superSeg(src, 2, 7, ACK), localMSS)
	if h.c.ctrl().SlowStartThreshold() == MaxCongestionWindow {
		t.Fatal("no reduction")
	}
	// The originals arrive late; then the retransmission, a duplicate.
	h.send(t, ms(31), sackAt(segN(10)))
	h.send(t, ms(32), sackAt(segN(10), segN(2), segN(7)))
	if got := h.cfg.Stats.SpuriousRetransmits.Load(); got != 5 {
		t.Errorf("SpuriousRetransmits %d, want 5", got)
	}
	if got := h.cfg.Stats.Undos.Load(); got != 1 {
		t.Fatalf("Undos %d, want 1", got)
	}
	if h.c.recovery != recoveryOpen || h.c.ctrl().SlowStartThreshold() != MaxCongestionWindow {
		t.Fatalf("after undo: recovery %v ssthresh %d", h.c.recovery, h.c.ctrl().SlowStartThreshold())
	}
}

// After a retransmission timeout the first segment goes again alone
// (RFC 6298 (5.4), one SMSS of cwnd, RFC 5681 §3.1), not the whole
// super-segment it was part of; the next ACK lets two go, as one.
func TestGSORetransmitTimeout(t *testing.T) {
	h := established(t)
	wholeWindowGSO(h)
	src := pattern(10 * localMSS)
	h.c.Write(t0.Add(ms(20)), src, &h.out)
	h.expectSuper(t, ms(20), superSeg(src, 0, 10, PSHACK), localMSS)
	rto := h.c.NextDeadline().Sub(t0)
	h.expectSuper(t, rto, dataSeg(src, 0, ACK), 0)
	h.expectNothing(t, rto)
	h.send(t, rto+ms(10), sg{flags: ACK, seq: remoteISS + 1, ack: segN(1), win: 65535})
	h.expectSuper(t, rto+ms(10), superSeg(src, 1, 3, ACK), localMSS)
	h.expectNothing(t, rto+ms(10))
}

// Without SACK the third duplicate ACK retransmits the first
// unacknowledged segment (RFC 5681 §3.2, RFC 6582 §3.2), one MSS of the
// super-segment.
func TestGSOFastRetransmitReno(t *testing.T) {
	h := established(t)
	wholeWindowGSO(h)
	src := pattern(10 * localMSS)
	h.c.Write(t0.Add(ms(20)), src, &h.out)
	h.expectSuper(t, ms(20), superSeg(src, 0, 10, PSHACK), localMSS)
	h.send(t, ms(30), sg{flags: ACK, seq: remoteISS + 1, ack: segN(1), win: 65535})
	h.expectNothing(t, ms(30))
	for k := 0; k < 3; k++ {
		h.send(t, ms(31+k), sg{flags: ACK, seq: remoteISS + 1, ack: segN(1), win: 65535})
	}
	h.expectSuper(t, ms(33), dataSeg(src, 1, ACK), 0)
	h.expectNothing(t, ms(33))
}

// A tail loss probe (RFC 8985 §7.3) retransmits the last segment sent:
// the last MSS of the super-segment.
func TestGSOTailLossProbe(t *testing.T) {
	h, src := tenMSSSuperSegment(t)
	if h.c.lossTimer != tlpTimer {
		t.Fatal("no probe timer")
	}
	pto := h.c.NextDeadline().Sub(t0)
	h.expectSuper(t, pto, dataSeg(src, 9, PSHACK), 0)
	h.expectNothing(t, pto)
}

// With GSO set but an Output that cannot take super-segments, or a
// maximum below two segments, every segment goes alone.
func TestGSOOffOutputs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		max   int
		plain bool
	}{
		{"plain output", 65535, true},
		{"max one MSS", localMSS, false},
		{"max below two MSS", 2*localMSS - 1, false},
		{"negative", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := established(t)
			h.cfg.TSOBurst = -1
			h.c.SetGSOMaxSize(tc.max)
			src := pattern(10 * localMSS)
			var out Output = &h.out
			if tc.plain {
				out = plainOutput{&h.out}
			}
			h.c.Write(t0.Add(ms(20)), src, out)
			for k := 0; k < 10; k++ {
				f := ACK
				if k == 9 {
					f = PSHACK
				}
				h.expectSuper(t, ms(20), dataSeg(src, k, f), 0)
			}
		})
	}
}

// plainOutput hides recOutput's SendGSO.
type plainOutput struct{ o *recOutput }

func (p plainOutput) Buffer(n int) ([]byte, int)        { return p.o.Buffer(n) }
func (p plainOutput) Send(t Tuple, buf []byte, off int) { p.o.Send(t, buf, off) }

// A path MTU probe (RFC 4821) is one segment larger than SendMSS: with
// GSO on it goes as it is, never cut, and the search climbs to the
// interface MTU over a clean path as without GSO, or finds a black hole
// and the MTU below it, while the data goes in super-segments.
func TestGSOPathMTUProbes(t *testing.T) {
	t.Run("probe not cut", func(t *testing.T) {
		cfg := testConfig()
		cfg.MTUProbing = MTUProbingAlways
		h := newHarness(cfg)
		h.dial(t, 0)
		h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535, opts: mssOpt(1460)})
		h.out.segs = nil
		wholeWindowGSO(h)
		h.c.Write(t0.Add(ms(20)), pattern(40000), &h.out)
		probe, ok := h.out.pop()
		if !ok || len(probe.Payload()) <= h.c.SendMSS() || h.out.gsoSize(probe) != 0 {
			t.Fatalf("first segment %v (gso_size %d), want a probe above SendMSS %d, uncut", describe(probe), h.out.gsoSize(probe), h.c.SendMSS())
		}
		next, ok := h.out.pop()
		if !ok || h.out.gsoSize(next) != h.c.SendMSS() {
			t.Fatalf("after the probe %v, want a super-segment", describe(next))
		}
	})
	t.Run("climbs", func(t *testing.T) {
		cfg := testConfig()
		cfg.MTUProbing = MTUProbingAlways
		h := newHarness(cfg)
		h.dial(t, 0)
		h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535, opts: mssOpt(1460)})
		h.out.segs = nil
		wholeWindowGSO(h)
		p := &pathSim{mtu: 1500}
		pathTransfer(t, h, p, 400<<10, ms(5))
		if in := h.c.Info(); in.PathMTU != 1500 || in.MSS != 1460 || p.dropped != 0 || p.supers == 0 {
			t.Fatalf("path MTU %d MSS %d, %d drops, %d super-segments", in.PathMTU, in.MSS, p.dropped, p.supers)
		}
	})
	t.Run("black hole", func(t *testing.T) {
		h := established(t)
		wholeWindowGSO(h)
		p := &pathSim{mtu: 1200}
		pathTransfer(t, h, p, 400<<10, ms(5))
		st := h.cfg.Stats
		in := h.c.Info()
		if st.PMTUBlackHoles.Load() != 1 || in.PathMTU > 1200 || in.PathMTU < 1200-probeThreshold || p.supers == 0 {
			t.Fatalf("black holes %d, path MTU %d, %d super-segments", st.PMTUBlackHoles.Load(), in.PathMTU, p.supers)
		}
		t.Logf("path MTU %d, %d super-segments, sizes %v", in.PathMTU, p.supers, p.sizes)
	})
}

// A partial checksum completes to the full one: summing the segment with
// the pseudo-header sum in its checksum field, and complementing, gives
// what SetChecksum stores (the device's work under NEEDS_CSUM), for IPv4
// and IPv6, even and odd lengths.
func TestSetPartialChecksum(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src, dst netip.Addr
		n        int
	}{
		{"v4 even", localAP.Addr(), remoteAP.Addr(), 1000},
		{"v4 odd", localAP.Addr(), remoteAP.Addr(), 60001},
		{"v6", netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2"), 4097},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := Header{SrcPort: 1, DstPort: 2, Seq: 3, Ack: 4, Flags: FlagACK, Window: 5}
			seg := make([]byte, HeaderLen+tc.n)
			h.Encode(seg)
			copy(seg[HeaderLen:], pattern(tc.n))
			SetChecksum(seg, tc.src, tc.dst)
			full := binary.BigEndian.Uint16(seg[offChecksum:])
			SetPartialChecksum(seg, tc.src, tc.dst)
			if _, err := ParseSegment(seg, tc.src, tc.dst); err == nil {
				t.Fatal("a partial checksum verified as complete")
			}
			if _, err := ParseSegmentVerified(seg, tc.src, tc.dst); err != nil {
				t.Fatalf("ParseSegmentVerified: %v", err)
			}
			if got := ^checksum.Sum(seg, 0); got != full {
				t.Fatalf("completed %#04x, want %#04x", got, full)
			}
		})
	}
}

// ParseSegmentVerified makes every check ParseSegment makes but the
// checksum's.
func TestParseSegmentVerifiedRejects(t *testing.T) {
	good := sg{flags: ACK, seq: 1, ack: 2, win: 3, data: []byte("x")}.build()
	bad := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"truncated", good[:19], ErrTruncated},
		{"data offset", bad(func(b []byte) []byte { b[offDataOffset] = 4 << 4; return b }), ErrDataOffset},
		{"zero port", bad(func(b []byte) []byte { b[0], b[1] = 0, 0; return b }), ErrPort},
		{"bad checksum", bad(func(b []byte) []byte { b[offChecksum]++; return b }), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseSegmentVerified(tc.b, remoteAP.Addr(), localAP.Addr()); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}
