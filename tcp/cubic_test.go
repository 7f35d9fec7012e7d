package tcp

import (
	"math"
	"strings"
	"testing"
	"time"
)

// cubicSender drives a Cubic the way a connection at a constant RTT with
// a full window would: every round trip, the whole window comes back in
// one-segment ACKs spread over the round.
type cubicSender struct {
	c        *Cubic
	now      time.Time
	mss      int
	rtt      time.Duration
	una, nxt Value
}

func newCubicSender(mss int, cwnd, ssthresh uint32, rtt time.Duration) *cubicSender {
	s := &cubicSender{c: new(Cubic), now: t0, mss: mss, rtt: rtt, una: 1000}
	s.c.Init(s.now, mss, cwnd, ssthresh)
	return s
}

// ack delivers one ACK of n bytes with the given RTT sample.
func (s *cubicSender) ack(n uint32, rtt time.Duration, appLimited bool) {
	s.una = s.una.Add(n)
	if s.nxt.LessThan(s.una) {
		s.nxt = s.una
	}
	s.c.OnAck(AckSample{Now: s.now, Acked: n, Flight: s.c.Window(), AppLimited: appLimited,
		RTT: rtt, MinRTT: s.rtt, SRTT: s.rtt, UNA: s.una, NXT: s.nxt, MSS: s.mss})
}

// round acknowledges one window's worth of segments over one RTT.
func (s *cubicSender) round() {
	n := int(s.c.Window()) / s.mss
	start := s.now
	for i := 0; i < n; i++ {
		s.now = start.Add(s.rtt * time.Duration(i) / time.Duration(n))
		s.ack(uint32(s.mss), s.rtt, false)
	}
	s.now = start.Add(s.rtt)
}

// lossAt puts the sender into congestion avoidance after a loss at a
// window of w segments: cwnd = β·w, W_max = w.
func (s *cubicSender) lossAt(w int) {
	s.c.Init(s.now, s.mss, uint32(w*s.mss), MaxCongestionWindow)
	s.c.OnCongestionEvent(s.now, uint32(w*s.mss), s.mss)
	s.c.OnRecoveryExit(s.now, s.mss)
}

func TestNewCongestionControl(t *testing.T) {
	for _, tc := range []struct {
		name, want string
	}{{"", CongestionCubic}, {"cubic", CongestionCubic}, {"reno", CongestionReno}} {
		cc, err := NewCongestionControl(tc.name)
		if err != nil || cc.Name() != tc.want {
			t.Errorf("NewCongestionControl(%q) = %v, %v, want %s", tc.name, cc, err, tc.want)
		}
	}
	a, _ := NewCongestionControl("cubic")
	b, _ := NewCongestionControl("cubic")
	if a == b {
		t.Error("NewCongestionControl returned the same controller twice")
	}
	_, err := NewCongestionControl("bbr")
	if err == nil || !strings.Contains(err.Error(), `"bbr"`) || !strings.Contains(err.Error(), `"cubic"`) || !strings.Contains(err.Error(), `"reno"`) {
		t.Errorf("NewCongestionControl(bbr) error %v, want one naming bbr, cubic and reno", err)
	}
}

// RFC 9438 §4.6: on a congestion event ssthresh = β_cubic·cwnd and, at
// the end of recovery, cwnd = max(ssthresh, 2 segments); after a timeout
// cwnd is one segment with the same ssthresh (§4.8).
func TestCubicWindowAfterLoss(t *testing.T) {
	for _, tc := range []struct {
		mss  int
		cwnd uint32
		want uint32
	}{
		{1460, 100 * 1460, 70 * 1460},
		{1460, 10 * 1460, 7 * 1460},
		{1000, 12345, 8641},
		{1460, 2 * 1460, 2 * 1460}, // floor of 2 segments
		{1, 3, 2},
		{65535, MaxCongestionWindow, 751619276}, // 0.7·2³⁰ rounded down
	} {
		c := new(Cubic)
		c.Init(t0, tc.mss, tc.cwnd, MaxCongestionWindow)
		c.OnCongestionEvent(t0, tc.cwnd, tc.mss)
		if c.SlowStartThreshold() != tc.want {
			t.Errorf("mss %d cwnd %d: ssthresh %d, want %d", tc.mss, tc.cwnd, c.SlowStartThreshold(), tc.want)
		}
		c.OnRecoveryExit(t0, tc.mss)
		if c.Window() != tc.want {
			t.Errorf("mss %d cwnd %d: cwnd after recovery %d, want %d", tc.mss, tc.cwnd, c.Window(), tc.want)
		}
		c.Init(t0, tc.mss, tc.cwnd, MaxCongestionWindow)
		c.OnRTO(t0, tc.cwnd, tc.mss)
		if c.Window() != uint32(tc.mss) || c.SlowStartThreshold() != tc.want {
			t.Errorf("mss %d cwnd %d: after RTO cwnd %d ssthresh %d, want %d %d", tc.mss, tc.cwnd, c.Window(), c.SlowStartThreshold(), tc.mss, tc.want)
		}
	}
}

// wCubicSegments is RFC 9438 Figure 1 in segments, written out
// independently of the implementation.
func wCubicSegments(t, wMax, cwndEpoch float64) float64 {
	k := math.Cbrt((wMax - cwndEpoch) / 0.4)
	return 0.4*math.Pow(t-k, 3) + wMax
}

// RFC 9438 §4.2, §4.4, §4.5: after a loss at W_max = 1000 segments the
// window follows W_cubic(t): below W_max and concave before K, at W_max
// near K, above it and convex after. The RTT is long enough (100 ms) for
// W_est to stay below the curve.
func TestCubicFollowsCurve(t *testing.T) {
	const mss, wMax = 1000, 1000
	s := newCubicSender(mss, 0, 0, 100*time.Millisecond)
	s.lossAt(wMax)
	epoch := s.now
	k := math.Cbrt((wMax - 0.7*wMax) / 0.4) // 9.09 s
	checks := []struct {
		at     float64 // seconds after the epoch
		region string
	}{{k / 2, "concave"}, {k - 1, "concave"}, {k, "plateau"}, {k + 3, "convex"}, {k + 5, "convex"}}
	rtt := s.rtt.Seconds()
	var prev float64
	for _, ck := range checks {
		for s.now.Sub(epoch).Seconds() < ck.at {
			s.round()
		}
		tt := s.now.Sub(epoch).Seconds()
		got := float64(s.c.Window()) / mss
		lo := wCubicSegments(tt-2*rtt, wMax, 0.7*wMax) - 1
		hi := wCubicSegments(tt+rtt, wMax, 0.7*wMax) + 1
		if got < lo || got > hi {
			t.Errorf("%s at t=%.2fs: cwnd %.1f segments, want W_cubic in [%.1f, %.1f]", ck.region, tt, got, lo, hi)
		}
		switch ck.region {
		case "concave":
			if got >= wMax {
				t.Errorf("t=%.2fs: cwnd %.1f not below W_max in the concave region", tt, got)
			}
		case "plateau":
			if math.Abs(got-wMax) > 0.01*wMax {
				t.Errorf("t=K=%.2fs: cwnd %.1f, want W_max %d within 1%%", tt, got, wMax)
			}
		case "convex":
			if got <= wMax {
				t.Errorf("t=%.2fs: cwnd %.1f not above W_max in the convex region", tt, got)
			}
		}
		if got < prev {
			t.Errorf("t=%.2fs: cwnd fell from %.1f to %.1f without a loss", tt, prev, got)
		}
		prev = got
	}
}

// The first ACK of an epoch grows cwnd by (target − cwnd)/cwnd segments
// per segment acknowledged, target = W_cubic(t + RTT) capped at 1.5·cwnd
// (RFC 9438 §4.2 Figure 3, §4.4).
func TestCubicFirstIncrement(t *testing.T) {
	const mss = 1000
	for _, tc := range []struct {
		rtt  time.Duration
		wMax int
	}{{100 * time.Millisecond, 1000}, {2 * time.Second, 1000}, {30 * time.Second, 100}, {time.Hour, 100}} {
		s := newCubicSender(mss, 0, 0, tc.rtt)
		s.lossAt(tc.wMax)
		cw := 0.7 * float64(tc.wMax)
		s.ack(mss, tc.rtt, false)
		target := math.Min(math.Max(wCubicSegments(tc.rtt.Seconds(), float64(tc.wMax), cw), cw), 1.5*cw)
		want := cw + (target-cw)/cw
		// W_est grows by α_cubic/cwnd and is below it here.
		if got := float64(s.c.Window()) / mss; math.Abs(got-want) > 1.0/mss {
			t.Errorf("rtt %v W_max %d: cwnd %.4f segments, want %.4f", tc.rtt, tc.wMax, got, want)
		}
	}
}

// RFC 9438 §4.3: with a tiny RTT, Reno's window (W_est, growing by
// α_cubic segments per RTT until it reaches cwnd_prior, then by 1) is
// above W_cubic, and cwnd follows W_est.
func TestCubicRenoFriendly(t *testing.T) {
	const mss, wMax, rounds = 1000, 100, 1000
	s := newCubicSender(mss, 0, 0, time.Millisecond)
	s.lossAt(wMax)
	want := 0.7 * wMax
	for i := 0; i < rounds; i++ {
		s.round()
		if want < wMax {
			want += 3 * 0.3 / 1.7
		} else {
			want++
		}
	}
	got := float64(s.c.Window()) / mss
	curve := wCubicSegments(s.now.Sub(t0).Seconds(), wMax, 0.7*wMax)
	if math.Abs(got-want) > 0.03*want {
		t.Errorf("after %d rounds of 1 ms: cwnd %.1f segments, want W_est %.1f within 3%%", rounds, got, want)
	}
	if got < 5*curve {
		t.Errorf("cwnd %.1f segments is not Reno-friendly (W_cubic %.1f)", got, curve)
	}
}

// RFC 9438 §4.7: a loss below the previous W_max lowers W_max to
// cwnd·(1+β)/2, which shortens the way back (a smaller K).
func TestCubicFastConvergence(t *testing.T) {
	const mss = 1000
	c := new(Cubic)
	c.Init(t0, mss, 100*mss, MaxCongestionWindow)
	c.OnCongestionEvent(t0, 100*mss, mss)
	c.OnRecoveryExit(t0, mss)
	if c.curve.wMax != 100*mss {
		t.Fatalf("W_max %.0f after the first loss, want %d", c.curve.wMax, 100*mss)
	}
	c.OnCongestionEvent(t0, 70*mss, mss) // at cwnd 70 < W_max 100
	c.OnRecoveryExit(t0, mss)
	if want := 70 * mss * 1.7 / 2; math.Abs(c.curve.wMax-want) > 1e-6 {
		t.Errorf("W_max %.1f after a loss below W_max, want %.1f", c.curve.wMax, want)
	}
	if c.Window() != 49*mss {
		t.Errorf("cwnd %d, want %d", c.Window(), 49*mss)
	}
	// The epoch starting now has K = cubic_root((59.5 − 49)/0.4).
	c.OnAck(AckSample{Now: t0, Acked: mss, SRTT: 100 * time.Millisecond, MSS: mss})
	if want := math.Cbrt((59.5 - 49) / 0.4); math.Abs(c.curve.k-want) > 1e-9 {
		t.Errorf("K %.4f, want %.4f", c.curve.k, want)
	}
	// A loss above W_max sets it to cwnd.
	c.Init(t0, mss, 100*mss, MaxCongestionWindow)
	c.curve.wMax = 80 * mss
	c.OnCongestionEvent(t0, 100*mss, mss)
	if c.curve.wMax != 100*mss {
		t.Errorf("W_max %.0f after a loss above W_max, want %d", c.curve.wMax, 100*mss)
	}
}

// RFC 9438 §4.9: undo after a spurious congestion event or timeout
// restores cwnd, ssthresh, W_max, K and the epoch from before it; a
// second undo changes nothing.
func TestCubicUndo(t *testing.T) {
	const mss = 1000
	for _, cut := range []string{"congestion event", "timeout"} {
		s := newCubicSender(mss, 0, 0, 50*time.Millisecond)
		s.lossAt(100)
		for i := 0; i < 20; i++ {
			s.round()
		}
		before := *s.c
		if !before.curve.inEpoch {
			t.Fatal("no epoch after 20 rounds of congestion avoidance")
		}
		if cut == "timeout" {
			s.c.OnRTO(s.now, s.c.Window(), mss)
		} else {
			s.c.OnCongestionEvent(s.now, s.c.Window(), mss)
			s.c.OnRecoveryExit(s.now, mss)
		}
		if s.c.Window() >= before.cwnd || s.c.curve.wMax == before.curve.wMax {
			t.Fatalf("%s: no reduction (cwnd %d, W_max %.0f)", cut, s.c.Window(), s.c.curve.wMax)
		}
		s.c.Undo(s.now, mss)
		if s.c.cwnd != before.cwnd || s.c.ssthresh != before.ssthresh || s.c.curve != before.curve {
			t.Errorf("%s: after undo cwnd %d ssthresh %d curve %+v, want %d %d %+v", cut,
				s.c.cwnd, s.c.ssthresh, s.c.curve, before.cwnd, before.ssthresh, before.curve)
		}
		s.round()
		grown := s.c.Window()
		s.c.Undo(s.now, mss)
		if s.c.Window() != grown {
			t.Errorf("%s: a second undo moved cwnd from %d to %d", cut, grown, s.c.Window())
		}
	}
}

// RFC 9438 §4.8: after a timeout, slow start runs up to ssthresh and the
// first congestion avoidance stage has K = 0 and W_max = W_est = the
// window at its start.
func TestCubicAfterTimeout(t *testing.T) {
	const mss = 1000
	s := newCubicSender(mss, 0, 0, 10*time.Millisecond)
	s.lossAt(100)
	for i := 0; i < 5; i++ {
		s.round()
	}
	s.c.OnRTO(s.now, s.c.Window(), mss)
	ssthresh := s.c.SlowStartThreshold()
	for s.c.Window() < ssthresh {
		s.ack(mss, s.rtt, false)
	}
	if s.c.Window() != ssthresh {
		t.Fatalf("slow start overshot ssthresh %d: cwnd %d", ssthresh, s.c.Window())
	}
	s.ack(mss, s.rtt, false)
	if cv := s.c.curve; !cv.inEpoch || cv.k != 0 || cv.wMax != float64(ssthresh) || cv.wEst < float64(ssthresh) || cv.wEst > float64(ssthresh+mss) {
		t.Errorf("first stage after a timeout: epoch %v K %v W_max %.0f W_est %.0f, want K 0, W_max = W_est = %d",
			cv.inEpoch, cv.k, cv.wMax, cv.wEst, ssthresh)
	}
}

// RFC 9438 §5.8 and RFC 7661: application-limited ACKs neither grow the
// window nor count as elapsed time on the curve.
func TestCubicAppLimited(t *testing.T) {
	const mss = 1000
	a := newCubicSender(mss, 0, 0, 100*time.Millisecond)
	b := newCubicSender(mss, 0, 0, 100*time.Millisecond)
	a.lossAt(100)
	b.lossAt(100)
	a.ack(mss, a.rtt, false)
	b.ack(mss, b.rtt, false)
	w := a.c.Window()
	for i := 0; i < 100; i++ { // 10 s application-limited
		a.now = a.now.Add(100 * time.Millisecond)
		a.ack(mss, a.rtt, true)
	}
	if a.c.Window() != w {
		t.Fatalf("application-limited ACKs grew cwnd from %d to %d", w, a.c.Window())
	}
	for i := 0; i < 30; i++ {
		a.round()
		b.round()
	}
	if a.c.Window() != b.c.Window() {
		t.Errorf("after an application-limited pause cwnd %d, without it %d", a.c.Window(), b.c.Window())
	}
	// And in slow start.
	s := newCubicSender(mss, 10*mss, MaxCongestionWindow, 10*time.Millisecond)
	s.ack(mss, s.rtt, true)
	if s.c.Window() != 10*mss {
		t.Errorf("application-limited ACK in slow start: cwnd %d", s.c.Window())
	}
}

// Restart after idle (RFC 5681 §4.1) lowers cwnd to the restart window
// and ends the epoch.
func TestCubicRestart(t *testing.T) {
	const mss = 1000
	s := newCubicSender(mss, 0, 0, 10*time.Millisecond)
	s.lossAt(100)
	s.round()
	s.c.Restart(s.now.Add(time.Minute), 10*mss, mss)
	if s.c.Window() != 10*mss || s.c.curve.inEpoch {
		t.Errorf("after restart cwnd %d, in epoch %v; want %d, false", s.c.Window(), s.c.curve.inEpoch, 10*mss)
	}
	s.c.Restart(s.now, 100*mss, mss)
	if s.c.Window() != 10*mss {
		t.Errorf("restart raised cwnd to %d", s.c.Window())
	}
}

// The invariants hold at the extremes: a week, a year and two centuries
// without loss; an hour-long and a zero RTT; MSS 1 and 65535; time going
// backwards.
func TestCubicExtremes(t *testing.T) {
	for _, tc := range []struct {
		name string
		mss  int
		rtt  time.Duration
		step time.Duration
	}{
		{"week", 1460, 10 * time.Millisecond, time.Hour},
		{"year, MSS 1", 1, 0, 24 * time.Hour},
		{"centuries, MSS 65535", 65535, time.Hour, 50 * 365 * 24 * time.Hour},
		{"backwards", 1460, 10 * time.Millisecond, -time.Hour},
		{"maximum duration", 536, time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)},
	} {
		c := new(Cubic)
		c.Init(t0, tc.mss, 10*uint32(tc.mss), 20*uint32(tc.mss))
		now := t0
		prev := c.Window()
		for i := 0; i < 200; i++ {
			now = now.Add(tc.step)
			c.OnAck(AckSample{Now: now, Acked: 65535, RTT: tc.rtt, SRTT: tc.rtt, MinRTT: tc.rtt, MSS: tc.mss})
			w := c.Window()
			if w < uint32(tc.mss) || w > MaxCongestionWindow || w < prev {
				t.Fatalf("%s: ACK %d: cwnd %d (before %d)", tc.name, i, w, prev)
			}
			prev = w
		}
		c.OnCongestionEvent(now, c.Window(), tc.mss)
		c.OnRecoveryExit(now, tc.mss)
		if w := c.Window(); w < 2*uint32(tc.mss) || w > MaxCongestionWindow {
			t.Errorf("%s: cwnd %d after a loss", tc.name, w)
		}
	}
}

// hystartRound delivers one round of ACKs, one per RTT sample, to s; the
// round's windowEnd lies just beyond its last ACK, so the next round
// starts with the next ACK (RFC 9406 §4.2).
func (s *cubicSender) hystartRound(rtts ...time.Duration) {
	s.nxt = s.una.Add(uint32(len(rtts)*s.mss) + 1)
	for _, rtt := range rtts {
		s.now = s.now.Add(time.Millisecond)
		s.ack(uint32(s.mss), rtt, false)
	}
}

func rtts(n int, rtt time.Duration) []time.Duration {
	r := make([]time.Duration, n)
	for i := range r {
		r[i] = rtt
	}
	return r
}

// RFC 9406 §4.2: a rise of the round's minimum RTT by at least
// clamp(lastRoundMinRTT/8, 4 ms, 16 ms) after 8 samples enters CSS,
// where the window grows by a quarter; a fall below the baseline resumes
// slow start; CSS_ROUNDS rounds of CSS end slow start with ssthresh =
// cwnd.
func TestHyStart(t *testing.T) {
	const mss = 1000
	ms := func(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }
	for _, tc := range []struct {
		name    string
		base    time.Duration
		rise    time.Duration
		samples int
		css     bool
	}{
		{"rise above 4 ms floor", ms(20), ms(4), 8, true},
		{"rise below 4 ms floor", ms(20), ms(3.9), 8, false},
		{"rise above base/8", ms(80), ms(10), 8, true},
		{"rise below base/8", ms(80), ms(9.9), 8, false},
		{"rise above 16 ms cap", ms(400), ms(16), 8, true},
		{"rise below 16 ms cap", ms(400), ms(15.9), 30, false},
		{"only 7 samples", ms(20), ms(30), 7, false},
	} {
		s := newCubicSender(mss, 10*mss, MaxCongestionWindow, tc.base)
		s.hystartRound(rtts(8, tc.base)...)
		s.hystartRound(rtts(tc.samples, tc.base+tc.rise)...)
		if s.c.hs.css != tc.css {
			t.Errorf("%s: in CSS %v, want %v", tc.name, s.c.hs.css, tc.css)
		}
		if s.c.SlowStartThreshold() != MaxCongestionWindow {
			t.Errorf("%s: slow start ended (ssthresh %d)", tc.name, s.c.SlowStartThreshold())
		}
	}

	// Slow start grows by min(N, L·SMSS), L = 8, per ACK that N stands
	// for (one per two segments, slowStartIncrease): an ACK of 20
	// segments, a GRO receiver's answer to a super-segment, grows cwnd by
	// 20, not 8. CSS grows by a quarter of it.
	s := newCubicSender(mss, 10*mss, MaxCongestionWindow, ms(20))
	w := s.c.Window()
	s.ack(20*mss, ms(20), false)
	if s.c.Window()-w != 20*mss {
		t.Errorf("slow start grew by %d for an ACK of 20 segments, want all %d", s.c.Window()-w, 20*mss)
	}
	s = newCubicSender(mss, 10*mss, MaxCongestionWindow, ms(20))
	s.hystartRound(rtts(8, ms(20))...)
	s.hystartRound(rtts(8, ms(30))...)
	// The next round: ACKs of 4 segments grow cwnd by one; the RTT falls
	// below the baseline of 30 ms, which takes 8 samples to count.
	s.nxt = s.una.Add(8*4*mss + 1)
	for i := 0; i < 8; i++ {
		w = s.c.Window()
		s.ack(4*mss, ms(25), false)
		if i < 7 && (!s.c.hs.css || s.c.Window()-w != mss) {
			t.Fatalf("CSS ACK %d: in CSS %v, grew by %d for an ACK of 4 segments, want %d", i, s.c.hs.css, s.c.Window()-w, mss)
		}
	}
	if s.c.hs.css {
		t.Error("still in CSS after 8 samples below the baseline")
	}
	w = s.c.Window()
	s.ack(4*mss, ms(25), false)
	if s.c.Window()-w != 4*mss {
		t.Errorf("back in slow start: grew by %d for an ACK of 4 segments", s.c.Window()-w)
	}

	// CSS_ROUNDS rounds of CSS (the one it began in counts) end slow
	// start: ssthresh = cwnd, then congestion avoidance.
	s = newCubicSender(mss, 10*mss, MaxCongestionWindow, ms(20))
	s.hystartRound(rtts(8, ms(20))...)
	s.hystartRound(rtts(8, ms(30))...)
	for i := 0; i < 4; i++ {
		s.hystartRound(rtts(8, ms(30))...)
		if s.c.SlowStartThreshold() != MaxCongestionWindow || !s.c.hs.css {
			t.Fatalf("CSS round %d: ssthresh %d, CSS %v", i+2, s.c.SlowStartThreshold(), s.c.hs.css)
		}
	}
	w = s.c.Window()
	s.hystartRound(ms(30))
	if s.c.SlowStartThreshold() != w || s.c.Window() != w || s.c.hs.active {
		t.Fatalf("after %d CSS rounds: ssthresh %d cwnd %d (was %d), HyStart++ active %v", hystartCSSRounds, s.c.SlowStartThreshold(), s.c.Window(), w, s.c.hs.active)
	}
	// RFC 9438 §4.10: the first stage after it has W_max = cwnd, K = 0.
	s.ack(mss, ms(30), false)
	if !s.c.curve.inEpoch || s.c.curve.wMax != float64(w) || s.c.curve.k != 0 || s.c.curve.cwndPrior != float64(w) {
		t.Errorf("after HyStart++: epoch %v W_max %.0f K %v cwnd_prior %.0f, want W_max = cwnd_prior = %d, K = 0",
			s.c.curve.inEpoch, s.c.curve.wMax, s.c.curve.k, s.c.curve.cwndPrior, w)
	}

	// The ACK that acknowledges windowEnd (SND.NXT at the round's start)
	// ends the round: it begins the next one.
	s = newCubicSender(mss, 10*mss, MaxCongestionWindow, ms(20))
	s.nxt = s.una.Add(8 * mss)
	for i := 0; i < 8; i++ {
		s.ack(mss, ms(20+float64(i)), false)
	}
	if h := s.c.hs; h.rttSampleCount != 1 || h.lastRoundMinRTT != ms(20) || h.currentRoundMinRTT != ms(27) {
		t.Errorf("after the ACK of windowEnd: %d samples, last round min %v, this round min %v; want 1, 20ms, 27ms",
			h.rttSampleCount, h.lastRoundMinRTT, h.currentRoundMinRTT)
	}

	// Only the initial slow start uses HyStart++ (RFC 9406 §4.3).
	s = newCubicSender(mss, 10*mss, 1000*mss, ms(20))
	s.hystartRound(rtts(8, ms(20))...)
	s.hystartRound(rtts(8, ms(100))...)
	if s.c.hs.css || s.c.hs.active {
		t.Error("HyStart++ ran in a slow start with a finite ssthresh")
	}
	// A loss ends it.
	s = newCubicSender(mss, 10*mss, MaxCongestionWindow, ms(20))
	s.c.OnRTO(s.now, 10*mss, mss)
	if s.c.hs.active {
		t.Error("HyStart++ still active after a timeout")
	}
}

func TestCubicOnAckAllocs(t *testing.T) {
	s := newCubicSender(1460, 0, 0, 20*time.Millisecond)
	s.lossAt(100)
	if n := testing.AllocsPerRun(1000, func() {
		s.now = s.now.Add(time.Millisecond)
		s.ack(1460, s.rtt, false)
	}); n != 0 {
		t.Errorf("OnAck allocates %.1f times per call", n)
	}
}

func BenchmarkCubicOnAck(b *testing.B) {
	c := new(Cubic)
	c.Init(t0, 1460, 100*1460, MaxCongestionWindow)
	c.OnCongestionEvent(t0, 100*1460, 1460)
	c.OnRecoveryExit(t0, 1460)
	s := AckSample{Now: t0, Acked: 1460, RTT: 20 * time.Millisecond, SRTT: 20 * time.Millisecond, MinRTT: 20 * time.Millisecond, MSS: 1460}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Now = s.Now.Add(10 * time.Microsecond)
		s.UNA = s.UNA.Add(1460)
		s.NXT = s.UNA.Add(100 * 1460)
		c.OnAck(s)
		if i%100000 == 0 { // stay in the interesting part of the curve
			c.OnCongestionEvent(s.Now, c.Window(), 1460)
			c.OnRecoveryExit(s.Now, 1460)
		}
	}
}
