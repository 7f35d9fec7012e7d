package tcp

import (
	"testing"
	"time"
)

// sendSegs delivers s to the local Conn as a super-segment of segs wire
// segments (GRO).
func (h *harness) sendSegs(t *testing.T, at time.Duration, s sg, segs int) {
	t.Helper()
	h.c.InputSegments(t0.Add(at), s.build(), segs, &h.out)
	h.checkErrs(t)
}

// remoteData is the peer's data [off, off+n) of its stream as one segment.
func remoteData(off, n int) sg {
	return sg{flags: ACK, seq: remoteISS + 1 + Value(off), ack: localISS + 1, win: 65535, data: make([]byte, n)}
}

// The ACK policy counts the segments a super-segment holds, not calls
// (RFC 5681 §4.2: "an ACK SHOULD be generated for at least every second
// full-sized segment"): two full segments coalesced are acknowledged at
// once, one segment with a small one after it waits for the delayed-ACK
// timer as the two would, and the counters count wire segments.
func TestGROAckPolicyCountsSegments(t *testing.T) {
	h := established(t)
	in0 := h.cfg.Stats.SegmentsIn.Load()
	h.sendSegs(t, ms(20), remoteData(0, 2*localMSS), 2)
	h.expect(t, ms(20), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1 + 2*localMSS})
	h.expectNothing(t, ms(20))
	h.sendSegs(t, ms(30), remoteData(2*localMSS, localMSS+100), 2)
	h.expectNothing(t, ms(69))
	h.expect(t, ms(70), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1 + 3*localMSS + 100})
	// Forty segments, one ACK.
	h.sendSegs(t, ms(80), remoteData(3*localMSS+100, 40*localMSS), 40)
	h.expect(t, ms(80), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1 + 43*localMSS + 100})
	h.expectNothing(t, ms(200))
	if got := h.cfg.Stats.SegmentsIn.Load() - in0; got != 44 {
		t.Errorf("Stats.SegmentsIn grew by %d, want 44", got)
	}
	if got := h.c.Info().SegmentsIn; got != 1+44 { // the SYN-ACK
		t.Errorf("Info.SegmentsIn %d, want 45", got)
	}
}

// A super-segment teaches the receiver the size of the segments it
// holds, not its own: the peer's pieces of 1000 bytes (its MSS) stay
// full-sized after a coalesced 10000, so the next two single segments are
// acknowledged at once. (Taking the super-segment's size, capped at our
// MSS, would have made 1460 the full size and delayed that ACK.)
func TestGROLearnsPieceSize(t *testing.T) {
	h := synSent(t)
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535, opts: mssOpt(1000)})
	h.expect(t, ms(10), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1})
	h.sendSegs(t, ms(20), remoteData(0, 10000), 10)
	h.expect(t, ms(20), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1 + 10000})
	h.send(t, ms(21), remoteData(10000, 1000))
	h.expectNothing(t, ms(21))
	h.send(t, ms(22), remoteData(11000, 1000))
	h.expect(t, ms(22), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1 + 12000})
}

// Out-of-range segment counts are taken as what the segment can hold:
// below one as one, more than its payload bytes as one per byte.
func TestGROSegmentCountBounds(t *testing.T) {
	for _, tc := range []struct {
		name       string
		n, segs    int
		wantCount  uint64
		wantAckNow bool
	}{
		{"zero", 100, 0, 1, false},
		{"negative", 100, -5, 1, false},
		{"more than bytes", 3, 10, 3, false},
		{"bare ACK", 0, 7, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := established(t)
			in0 := h.cfg.Stats.SegmentsIn.Load()
			h.sendSegs(t, ms(20), remoteData(0, tc.n), tc.segs)
			if got := h.cfg.Stats.SegmentsIn.Load() - in0; got != tc.wantCount {
				t.Errorf("counted %d segments, want %d", got, tc.wantCount)
			}
			if _, sent := h.out.pop(); sent != tc.wantAckNow && tc.n > 0 {
				t.Errorf("ACK sent at once: %v, want %v", sent, tc.wantAckNow)
			}
		})
	}
}

// Bulk transfers both ways with GSO at the senders and GRO at the
// receivers, the path of a TAP device with offloads: super-segments cut
// into MSS pieces on the "wire" and coalesced again before the receiving
// core, clean and with loss and reordering. The data arrives intact (the
// SHA-256 check of transfer), every wire segment is counted once, and the
// receive buffers auto-tune.
func TestGROTransfer(t *testing.T) {
	for _, tc := range []struct {
		name          string
		loss, reorder float64
		seed          uint64
	}{
		{"clean", 0, 0, 1},
		{"lossy", 0.02, 0.02, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			p := newPair(t, cfg, tc.seed)
			p.loss, p.reorder = tc.loss, tc.reorder
			p.gro = true
			p.a.SetGSOMaxSize(65535)
			p.b.SetGSOMaxSize(65535)
			in0 := p.a.Info().SegmentsIn + p.b.Info().SegmentsIn
			wire0 := p.wire
			transfer(t, p, 2<<20)
			if p.gsoErr != nil {
				t.Fatal(p.gsoErr)
			}
			if p.merged == 0 {
				t.Fatal("no segments coalesced")
			}
			in := p.a.Info().SegmentsIn + p.b.Info().SegmentsIn - in0
			if want := uint64(p.wire - wire0); in != want {
				t.Errorf("the cores counted %d segments in, %d were delivered", in, want)
			}
			// Receive-buffer auto-tuning still sees the flow's needs
			// (the bytes read per round trip, autotune.go).
			if tc.loss == 0 {
				for _, c := range []*Conn{p.a, p.b} {
					if got := c.Info().ReceiveBufferSize; got <= cfg.ReceiveBufferSize {
						t.Errorf("receive buffer %d, not grown from %d", got, cfg.ReceiveBufferSize)
					}
				}
			}
			t.Logf("%d wire segments, %d of them coalesced; %d super-segments sent; a %+v", p.wire, p.merged, p.supers, p.a.Info())
		})
	}
}
