package tcp

import (
	"math"
	"time"
)

// CUBIC's constants, RFC 9438 §4.1.1.
const (
	// cubicBeta is β_cubic, the multiplicative decrease factor (§4.6).
	cubicBeta = 0.7
	// cubicC is C, in segments per second cubed (§4.1.1, §5).
	cubicC = 0.4
	// cubicAlpha is α_cubic = 3·(1−β_cubic)/(1+β_cubic), the additive
	// increase of the Reno-friendly estimate (§4.3).
	cubicAlpha = 3 * (1 - cubicBeta) / (1 + cubicBeta)
	// cubicMaxTargetRatio caps the target at 1.5·cwnd (§4.2 Figure 3).
	cubicMaxTargetRatio = 1.5
	// standardSlowStartL is the per-ACK slow-start limit, in segments,
	// outside HyStart++: RFC 3465 §2.2 "L=2*SMSS bytes".
	standardSlowStartL = 2
)

// Cubic is CUBIC congestion control (RFC 9438) with HyStart++ (RFC 9406)
// in the initial slow start. The window grows as
// W_cubic(t) = C·(t−K)³ + W_max after a congestion event (§4.2), never
// slower than the Reno estimate W_est (§4.3), and shrinks by β_cubic = 0.7
// on a congestion event (§4.6).
//
// Windows are bytes, as everywhere in the connection; the curve's
// quantities (W_max, W_est, cwnd_prior) are float64 bytes, so that a
// change of MSS does not rescale them, and the segment-based formulas
// of the RFC multiply by the MSS of the ACK. Every result is clamped to
// [MSS, MaxCongestionWindow] and no intermediate value can overflow or
// become NaN whatever the times, RTTs and sizes passed in (time going
// backwards counts as no time passing). Its zero value is ready for
// Init; no method allocates.
type Cubic struct {
	cwnd, ssthresh uint32
	curve          cubicCurve
	hs             hystart
	// lastAck is the time of the previous ACK, to leave out of the
	// curve's elapsed time the periods when the sender was
	// application-limited (RFC 9438 §5.8).
	lastAck     time.Time
	haveLastAck bool
	canUndo     bool // prior holds the state before the last reduction
	// The state saved before the last reduction, for Undo (§4.9).
	prior cubicPrior
}

// cubicCurve is the state of RFC 9438 §4.1.2 that shapes the growth in
// congestion avoidance.
type cubicCurve struct {
	wMax      float64 // W_max, bytes: the window before the last reduction
	k         float64 // K, seconds: when W_cubic reaches W_max (§4.2 Figure 2)
	cwndPrior float64 // cwnd_prior, bytes: cwnd when ssthresh was last set (§4.3)
	wEst      float64 // W_est, bytes: the Reno-friendly estimate (§4.3)
	// epochStart is t_epoch, the start of the current congestion
	// avoidance stage, moved forward by application-limited time; valid
	// when inEpoch.
	epochStart time.Time
	inEpoch    bool
	// restartAtEpoch says that W_max is undefined (the first congestion
	// avoidance stage, after HyStart++ left slow start without a loss or
	// after a timeout): the stage starts with W_max = cwnd and K = 0
	// (§4.8, §4.10).
	restartAtEpoch bool
	frac           float64 // growth below one byte not yet in cwnd
}

// cubicPrior is what Undo restores (RFC 9438 §4.9).
type cubicPrior struct {
	cwnd, ssthresh uint32
	curve          cubicCurve
	hs             hystart
}

// Name implements CongestionControl.
func (c *Cubic) Name() string { return CongestionCubic }

// Init implements CongestionControl. HyStart++ runs only in the initial
// slow start, "when the ssthresh is at its initial value of arbitrarily
// high" (RFC 9406 §4.3), which for this stack is MaxCongestionWindow or
// more.
func (c *Cubic) Init(now time.Time, mss int, cwnd, ssthresh uint32) {
	*c = Cubic{
		cwnd:     clampWindow(cwnd, mss),
		ssthresh: max(ssthresh, 2*uint32(max(mss, 1))),
	}
	c.curve.restartAtEpoch = true
	c.hs.reset(ssthresh >= MaxCongestionWindow)
}

// Window implements CongestionControl.
func (c *Cubic) Window() uint32 { return c.cwnd }

// SlowStartThreshold implements CongestionControl.
func (c *Cubic) SlowStartThreshold() uint32 { return c.ssthresh }

// OnAck implements CongestionControl.
func (c *Cubic) OnAck(s AckSample) {
	mss := max(s.MSS, 1)
	var since time.Duration
	if c.haveLastAck {
		since = max(s.Now.Sub(c.lastAck), 0)
	}
	c.lastAck, c.haveLastAck = s.Now, true
	if s.AppLimited {
		// RFC 9438 §5.8: CUBIC "does not increase its congestion window
		// size if a flow is currently limited by the application", and
		// the elapsed time t "MUST NOT include periods during which cwnd
		// has not been updated due to application-limited behavior"
		// (§4.2): the epoch moves forward by the time since the last ACK.
		if c.curve.inEpoch {
			c.curve.epochStart = c.curve.epochStart.Add(since)
		}
		c.cwnd = clampWindow(c.cwnd, mss)
		return
	}
	c.cwnd = clampWindow(c.cwnd, mss) // a zero-value or shrunken-MSS window
	if s.Acked > 0 {
		if c.cwnd < c.ssthresh {
			c.slowStart(&s, mss)
		} else {
			c.congestionAvoidance(&s, mss)
		}
	}
	c.cwnd = clampWindow(c.cwnd, mss)
}

// slowStart grows the window below ssthresh (RFC 9438 §4.10: "CUBIC
// MUST employ a slow-start algorithm"; HyStart++ in the initial one).
func (c *Cubic) slowStart(s *AckSample, mss int) {
	m := uint32(mss)
	var inc uint32
	if c.hs.active {
		var exit bool
		inc, exit = c.hs.onAck(s, m)
		if exit {
			// RFC 9406 §4.2: "enter congestion avoidance by setting the
			// ssthresh to the current cwnd"; RFC 9438 §4.10: W_max is
			// undefined, so "CUBIC sets cwnd_prior = cwnd", and the first
			// stage uses K = 0 and W_max = cwnd at its start.
			c.hs.active = false
			c.ssthresh = max(c.cwnd, 2*m)
			c.curve.cwndPrior = float64(c.cwnd)
			c.curve.restartAtEpoch = true
			c.curve.inEpoch = false
			return
		}
	} else {
		// RFC 5681 §3.1 with RFC 3465 §2.2's L = 2·SMSS, per ACK that
		// the bytes stand for.
		inc = slowStartIncrease(s.Acked, m, standardSlowStartL)
	}
	// Slow start stops at ssthresh; congestion avoidance takes the next
	// ACK (RFC 5681 §3.1 allows either at cwnd = ssthresh).
	c.cwnd = min(c.cwnd+inc, max(c.ssthresh, c.cwnd))
}

// congestionAvoidance grows the window above ssthresh along W_cubic or
// W_est, whichever is larger (RFC 9438 §4.2–§4.5).
func (c *Cubic) congestionAvoidance(s *AckSample, mss int) {
	cv := &c.curve
	cw := float64(c.cwnd)
	m := float64(mss)
	if !cv.inEpoch {
		// The start of a congestion avoidance stage: t_epoch = now and
		// cwnd_epoch = cwnd; K = cubic_root((W_max − cwnd_epoch)/C)
		// (§4.2 Figure 2, in segments); W_est = cwnd_epoch (§4.3).
		cv.inEpoch = true
		cv.epochStart = s.Now
		if cv.restartAtEpoch {
			cv.wMax, cv.k = cw, 0
			cv.restartAtEpoch = false
		} else {
			cv.k = math.Cbrt((cv.wMax - cw) / m / cubicC)
		}
		cv.wEst = cw
		cv.frac = 0
	}
	// §4.2: target is W_cubic(t + RTT) bounded to [cwnd, 1.5·cwnd]
	// (Figure 3), with RTT the smoothed round-trip time.
	t := secondsSince(s.Now, cv.epochStart) + ackRTT(s).Seconds()
	target := cv.wCubic(t, m)
	if !(target > cw) { // also catches NaN
		target = cw
	} else if target > cubicMaxTargetRatio*cw {
		target = cubicMaxTargetRatio * cw
	}
	acked := float64(s.Acked)
	// §4.4 and §4.5 (concave and convex regions alike): "cwnd MUST be
	// incremented by (target − cwnd)/cwnd" for each ACK of one segment,
	// which for acked bytes is (target − cwnd)·acked/cwnd bytes.
	next := cw + cv.frac + (target-cw)*acked/cw
	// §4.3, Figure 4: W_est = W_est + α_cubic·segments_acked/cwnd, with
	// α_cubic = 1 once W_est >= cwnd_prior; "If W_est > cwnd, cwnd
	// SHOULD be set to W_est".
	alpha := cubicAlpha
	if cv.wEst >= cv.cwndPrior {
		alpha = 1
	}
	cv.wEst = min(cv.wEst+alpha*m*acked/cw, MaxCongestionWindow)
	next = min(max(next, cv.wEst), MaxCongestionWindow)
	whole := math.Floor(next)
	c.cwnd = uint32(whole)
	cv.frac = next - whole
}

// wCubic is W_cubic(t) = C·(t−K)³ + W_max (RFC 9438 §4.2 Figure 1), in
// bytes for segments of m bytes. t is at most about 9.2e9 seconds
// (time.Duration's range) and K at most about 1400, so the cube stays far
// inside float64's range.
func (cv *cubicCurve) wCubic(t, m float64) float64 {
	d := t - cv.k
	return cubicC*d*d*d*m + cv.wMax
}

// secondsSince is now − then in seconds, zero when time went backwards.
func secondsSince(now, then time.Time) float64 {
	return max(now.Sub(then), 0).Seconds()
}

// ackRTT is the RTT of RFC 9438 §4.2's W_cubic(t + RTT): the smoothed RTT,
// or the sample, or the minimum when the connection has no estimate yet;
// never negative.
func ackRTT(s *AckSample) time.Duration {
	rtt := s.SRTT
	if rtt <= 0 {
		rtt = s.RTT
	}
	if rtt <= 0 {
		rtt = s.MinRTT
	}
	return max(rtt, 0)
}

// save records the state before a reduction for Undo (RFC 9438 §4.9).
func (c *Cubic) save() {
	c.prior = cubicPrior{cwnd: c.cwnd, ssthresh: c.ssthresh, curve: c.curve, hs: c.hs}
	c.canUndo = true
}

// reduce is the multiplicative decrease shared by a congestion event and
// a timeout: fast convergence (§4.7), cwnd_prior (§4.3, §4.6) and
// ssthresh = β_cubic·cwnd (§4.6 Figure 5). The threshold comes from cwnd,
// not from the flight size passed in: §4.6 lets an implementation "use
// cwnd instead of flight_size" provided it uses "other measures to
// prevent cwnd from growing when the volume of bytes in flight is smaller
// than cwnd", which OnAck does through AckSample.AppLimited (§5.8,
// RFC 7661). Loss or a timeout also ends HyStart++ for good (RFC 9406
// §4.2, §4.3).
func (c *Cubic) reduce(mss int) {
	c.save()
	cw := float64(c.cwnd)
	cv := &c.curve
	// §4.7: "if cwnd < W_max and fast convergence enabled, further
	// reduce W_max: W_max = cwnd·(1+β_cubic)/2; otherwise W_max = cwnd".
	if cw < cv.wMax {
		cv.wMax = cw * (1 + cubicBeta) / 2
	} else {
		cv.wMax = cw
	}
	cv.cwndPrior = cw
	cv.inEpoch = false
	cv.restartAtEpoch = false
	c.ssthresh = max(uint32(cw*cubicBeta), 2*uint32(mss))
	c.hs.active = false
}

// OnCongestionEvent implements CongestionControl (RFC 9438 §4.6, §4.7).
// cwnd itself comes down at OnRecoveryExit, PRR (RFC 6937) pacing the
// reduction meanwhile.
func (c *Cubic) OnCongestionEvent(now time.Time, flight uint32, mss int) {
	mss = max(mss, 1)
	c.reduce(mss)
	c.cwnd = clampWindow(c.cwnd, mss)
}

// OnRecoveryExit implements CongestionControl: cwnd = max(ssthresh, 2)
// segments (RFC 9438 §4.6 Figure 5, RFC 6937 §3.1 "cwnd = ssthresh"). The
// next congestion avoidance ACK starts the epoch with cwnd_epoch = cwnd.
func (c *Cubic) OnRecoveryExit(now time.Time, mss int) {
	mss = max(mss, 1)
	c.cwnd = clampWindow(max(c.ssthresh, 2*uint32(mss)), mss)
	c.curve.inEpoch = false
}

// OnRTO implements CongestionControl: RFC 9438 §4.8, "CUBIC follows Reno
// to reduce cwnd [RFC5681] but sets ssthresh using β_cubic (same as in
// Section 4.6)"; the first congestion avoidance stage after it uses
// K = 0 and W_max = W_est = the window at the stage's start.
func (c *Cubic) OnRTO(now time.Time, flight uint32, mss int) {
	mss = max(mss, 1)
	c.reduce(mss)
	c.curve.restartAtEpoch = true
	c.cwnd = clampWindow(uint32(mss), mss)
}

// Undo implements CongestionControl: RFC 9438 §4.9 restores the state
// saved before the spurious reduction (cwnd, ssthresh, W_max, K, t_epoch,
// W_est, cwnd_prior; here also HyStart++'s). cwnd never goes down: it
// becomes max(cwnd, prior cwnd), as in RFC 4015 §3.2. A second Undo
// without a reduction in between changes nothing.
func (c *Cubic) Undo(now time.Time, mss int) {
	mss = max(mss, 1)
	if c.canUndo {
		c.canUndo = false
		c.cwnd = max(c.cwnd, c.prior.cwnd)
		c.ssthresh = max(c.ssthresh, c.prior.ssthresh)
		c.curve = c.prior.curve
		c.hs = c.prior.hs
	}
	c.cwnd = clampWindow(c.cwnd, mss)
}

// Restart implements CongestionControl: RFC 5681 §4.1 limits cwnd to the
// restart window after idle, and the epoch ends, so that the growth curve
// starts again from the restarted window rather than counting the idle
// time (RFC 9438 §5.8).
func (c *Cubic) Restart(now time.Time, rw uint32, mss int) {
	c.cwnd = clampWindow(min(c.cwnd, rw), mss)
	c.curve.inEpoch = false
}
