package ip

import (
	"math"
	"time"
)

// RateLimiter is a token bucket bounding the rate of ICMP and ICMPv6 error
// messages, one mechanism for both families (RFC 1122 §3.2.2; RFC 4443
// §2.4(f) for ICMPv6;: hosts "SHOULD" limit it; RFC 1812 §4.3.2.8, "Rate
// Limiting", suggests a token bucket). It never reads the clock: Allow is
// given the time. It is not safe for concurrent use.
type RateLimiter struct {
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

// NewRateLimiter returns a limiter allowing rate messages per second on
// average and bursts of up to burst messages; it starts full.
func NewRateLimiter(rate float64, burst int) *RateLimiter {
	if rate < 0 || math.IsNaN(rate) {
		rate = 0
	}
	b := float64(max(burst, 0))
	return &RateLimiter{rate: rate, burst: b, tokens: b}
}

// Allow reports whether a message may be sent at now, and if so takes a
// token. A time earlier than the previous call adds no tokens.
func (l *RateLimiter) Allow(now time.Time) bool {
	if l.last.IsZero() {
		l.last = now
	} else if now.After(l.last) {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
		l.last = now
	}
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
