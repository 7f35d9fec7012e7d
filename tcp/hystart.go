package tcp

import (
	"math"
	"time"
)

// HyStart++'s constants, RFC 9406 §4.3.
const (
	hystartMinRTTThresh     = 4 * time.Millisecond  // MIN_RTT_THRESH
	hystartMaxRTTThresh     = 16 * time.Millisecond // MAX_RTT_THRESH
	hystartMinRTTDivisor    = 8                     // MIN_RTT_DIVISOR
	hystartNRTTSample       = 8                     // N_RTT_SAMPLE
	hystartCSSGrowthDivisor = 4                     // CSS_GROWTH_DIVISOR
	hystartCSSRounds        = 5                     // CSS_ROUNDS
	// hystartL is L, the per-ACK increase limit in segments: "L = 8 if
	// non-paced" (ustack does not pace).
	hystartL = 8
	// hystartNoRTT stands for the RFC's "infinity".
	hystartNoRTT = time.Duration(math.MaxInt64)
)

// hystart is HyStart++ (RFC 9406): slow start that leaves early, into
// Conservative Slow Start (CSS), when the minimum RTT of a round rises by
// more than a threshold over the previous round's, and into congestion
// avoidance after CSS_ROUNDS rounds of CSS.
type hystart struct {
	active bool // in the initial slow start (§4.3), not left yet
	css    bool // in Conservative Slow Start
	// A round ends when SND.UNA reaches windowEnd, the SND.NXT of its
	// start (§4.2); started is false before the first round.
	started   bool
	windowEnd Value
	// lastRoundMinRTT and currentRoundMinRTT are the minimum RTT of the
	// previous and of this round, rttSampleCount this round's samples.
	lastRoundMinRTT, currentRoundMinRTT time.Duration
	cssBaselineMinRTT                   time.Duration
	rttSampleCount                      int32
	cssRounds                           int32 // rounds spent in CSS, counting the one it began in
}

// reset starts HyStart++ (active) or leaves it off, RFC 9406 §4.2's
// initialization: "lastRoundMinRTT = infinity, currentRoundMinRTT =
// infinity, cssBaselineMinRtt = infinity, rttSampleCount = 0".
func (h *hystart) reset(active bool) {
	*h = hystart{
		active:             active,
		lastRoundMinRTT:    hystartNoRTT,
		currentRoundMinRTT: hystartNoRTT,
		cssBaselineMinRTT:  hystartNoRTT,
	}
}

// onAck handles one ACK of new data in the initial slow start. It returns
// the increase of cwnd for this ACK, in bytes, and whether slow start
// ends (the caller then sets ssthresh = cwnd, §4.2).
func (h *hystart) onAck(s *AckSample, mss uint32) (inc uint32, exit bool) {
	// §4.2: "At the start of each round during standard slow start and
	// CSS, initialize the variables used to compute the last round's and
	// current round's minimum RTT: lastRoundMinRTT = currentRoundMinRTT,
	// currentRoundMinRTT = infinity, rttSampleCount = 0", a round ending
	// when windowEnd (SND.NXT at its start) is acknowledged.
	if !h.started || s.UNA.GreaterThanEq(h.windowEnd) {
		if h.started && h.css {
			// "If CSS_ROUNDS rounds are complete, enter congestion
			// avoidance by setting the ssthresh to the current cwnd."
			h.cssRounds++
			if h.cssRounds >= hystartCSSRounds {
				return 0, true
			}
		}
		h.started = true
		h.windowEnd = s.NXT
		h.lastRoundMinRTT = h.currentRoundMinRTT
		h.currentRoundMinRTT = hystartNoRTT
		h.rttSampleCount = 0
	}
	// "Keep track of the minimum observed RTT: currentRoundMinRTT =
	// min(currentRoundMinRTT, currRTT); rttSampleCount += 1".
	if s.RTT > 0 {
		h.currentRoundMinRTT = min(h.currentRoundMinRTT, s.RTT)
		h.rttSampleCount++
	}
	// "cwnd = cwnd + min(N, L * SMSS)" in slow start; in CSS
	// "cwnd = cwnd + (min(N, L * SMSS) / CSS_GROWTH_DIVISOR)".
	// N counted per ACK it stands for (slowStartIncrease).
	inc = slowStartIncrease(s.Acked, mss, hystartL)
	if h.css {
		inc /= hystartCSSGrowthDivisor
		// "For CSS rounds where at least N_RTT_SAMPLE RTT samples have
		// been obtained, check to see if the current round's minRTT drops
		// below baseline (cssBaselineMinRtt) indicating that slow start
		// exit was spurious: if (currentRoundMinRTT < cssBaselineMinRtt)
		// cssBaselineMinRtt = infinity; resume slow start including
		// HyStart++".
		if h.rttSampleCount >= hystartNRTTSample && h.currentRoundMinRTT < h.cssBaselineMinRTT {
			h.cssBaselineMinRTT = hystartNoRTT
			h.css = false
		}
		return inc, false
	}
	// "For rounds where at least N_RTT_SAMPLE RTT samples have been
	// obtained and currentRoundMinRTT and lastRoundMinRTT are valid,
	// check to see if delay increase triggers slow start exit:
	// RttThresh = max(MIN_RTT_THRESH, min(lastRoundMinRTT /
	// MIN_RTT_DIVISOR, MAX_RTT_THRESH)); if (currentRoundMinRTT >=
	// (lastRoundMinRTT + RttThresh)) { cssBaselineMinRtt =
	// currentRoundMinRTT; exit slow start and enter CSS }". The sum is
	// written as a difference so that absurd RTTs cannot overflow it.
	if h.rttSampleCount >= hystartNRTTSample && h.currentRoundMinRTT != hystartNoRTT && h.lastRoundMinRTT != hystartNoRTT {
		thresh := max(hystartMinRTTThresh, min(h.lastRoundMinRTT/hystartMinRTTDivisor, hystartMaxRTTThresh))
		if h.currentRoundMinRTT > h.lastRoundMinRTT && h.currentRoundMinRTT-h.lastRoundMinRTT >= thresh {
			h.cssBaselineMinRTT = h.currentRoundMinRTT
			h.css = true
			h.cssRounds = 0
		}
	}
	return inc, false
}
