package tcp

import (
	"fmt"
	"time"
)

// SYNCookieMode says when a listener answers a SYN with a SYN cookie
// (RFC 4987 §3.6) rather than with a SYN-queue entry.
type SYNCookieMode uint8

// The SYN cookie modes. The zero value is SYNCookiesWhenFull, Linux's
// default (net.ipv4.tcp_syncookies=1).
const (
	// SYNCookiesWhenFull sends cookies only while the SYN queue (the
	// listener's or the stack's) is full; otherwise SYNs get an entry.
	SYNCookiesWhenFull SYNCookieMode = iota
	// SYNCookiesNever never sends cookies: a full SYN queue evicts its
	// oldest entry for the new SYN.
	SYNCookiesNever
	// SYNCookiesAlways answers every SYN with a cookie and keeps no state.
	SYNCookiesAlways
)

// String returns "when-full", "never" or "always".
func (m SYNCookieMode) String() string {
	switch m {
	case SYNCookiesWhenFull:
		return "when-full"
	case SYNCookiesNever:
		return "never"
	case SYNCookiesAlways:
		return "always"
	}
	return fmt.Sprintf("SYNCookieMode(%d)", uint8(m))
}

// ParseSYNCookieMode parses "when-full", "never" or "always".
func ParseSYNCookieMode(s string) (SYNCookieMode, error) {
	for _, m := range [...]SYNCookieMode{SYNCookiesWhenFull, SYNCookiesNever, SYNCookiesAlways} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("tcp: unknown SYN cookie mode %q (want when-full, never or always)", s)
}

// cookiePeriod is how often the cookie counter t advances: RFC 4987 §3.6,
// "t is a slowly incrementing timer (e.g., incremented every 64 seconds)".
const cookiePeriod = 64 * time.Second

// cookieMaxAge is the oldest counter a returning cookie may carry, in
// periods: a cookie sent in period c is good in c, c+1 and c+2 (so for at
// least two periods, 128 s, which covers the SYN-ACK's retransmissions
// by the client's ACK and its own retries).
const cookieMaxAge = 2

// cookieMSS is the table of MSS values a cookie can encode in its 3 bits
// (RFC 4987 §3.6: "the next 3 bits are an encoding of an MSS selected by
// the server in response to the client's MSS"): common path MSS values,
// ascending. A SYN's MSS is rounded down to the largest entry not above
// it.
var cookieMSS = [8]uint16{536, 1200, 1360, 1400, 1440, 1452, 1460, 8960}

// cookieMSSIndex returns the index of the largest cookieMSS entry not
// above mss (0 for anything below the first).
func cookieMSSIndex(mss uint16) uint32 {
	i := len(cookieMSS) - 1
	for i > 0 && cookieMSS[i] > mss {
		i--
	}
	return uint32(i)
}

// cookieCounter is t of RFC 4987 §3.6 at now: 64-second periods since the
// Unix epoch.
func cookieCounter(now time.Time) uint32 {
	return uint32(now.Unix() / int64(cookiePeriod/time.Second))
}

// makeCookie returns our ISN for a SYN from t with ISN peerISN and MSS
// option mss, in RFC 4987 §3.6's layout: "the top 5 bits are t mod 32 ...,
// the next 3 bits are an encoding of an MSS ..., and the final 24 bits
// are s", s a keyed hash of the 4-tuple and t (and here the peer's ISN).
func makeCookie(hash func(Tuple, uint32, Value) uint32, t Tuple, now time.Time, peerISN Value, mss uint16) Value {
	count := cookieCounter(now)
	idx := cookieMSSIndex(mss)
	return Value((count%32)<<27 | idx<<24 | hash(t, cookieStamp(count, idx), peerISN)&0xffffff)
}

// cookieStamp is what the hash covers besides the 4-tuple and the peer's
// ISN: the full counter and the MSS index, so that neither can be changed
// in a cookie without breaking its hash (RFC 4987 §3.6 hashes t; Linux
// also puts the MSS index under its second hash).
func cookieStamp(count, idx uint32) uint32 { return count<<3 | idx }

// checkCookie validates cookie, our ISN as the peer's ACK returns it
// (SEG.ACK-1), for a connection from t whose ISN was peerISN (SEG.SEQ-1):
// RFC 4987 §3.6, the server "checks the ... t value against the current
// time to see if the connection is expired" and "recomputes s ... to
// determine if this is actually a valid SYN cookie". It returns the
// encoded MSS and whether the cookie is valid.
func checkCookie(hash func(Tuple, uint32, Value) uint32, t Tuple, now time.Time, peerISN, cookie Value) (uint16, bool) {
	v := uint32(cookie)
	cur := cookieCounter(now)
	age := (cur - v>>27) % 32
	if age > cookieMaxAge {
		return 0, false
	}
	count := cur - age
	idx := v >> 24 & 7
	if hash(t, cookieStamp(count, idx), peerISN)&0xffffff != v&0xffffff {
		return 0, false
	}
	return cookieMSS[idx], true
}

// The low bits of the TSval of a cookie SYN-ACK carry the SYN's other
// options, so that a cookie connection keeps them when the ACK echoes the
// TSval in its TSecr (as Linux's cookie_init_timestamp does): 4 bits of
// window scale (cookieNoWS when the SYN had none) and 1 bit of
// SACK-permitted.
const (
	cookieTSBits = 5
	cookieTSMask = 1<<cookieTSBits - 1
	cookieNoWS   = 0xf
	cookieSACK   = 1 << 4
)

// cookieTSval returns the TSval of a cookie SYN-ACK at clock value now
// (our TSval clock) carrying ws (-1 for none) and sack. It is never above
// now: RFC 7323 §5.4 wants TSvals that do not run ahead of the clock.
func cookieTSval(now uint32, ws int8, sack bool) uint32 {
	bits := uint32(cookieNoWS)
	if ws >= 0 {
		bits = uint32(min(ws, 14))
	}
	if sack {
		bits |= cookieSACK
	}
	ts := now&^cookieTSMask | bits
	if int32(ts-now) > 0 {
		ts -= 1 << cookieTSBits
	}
	return ts
}

// cookieTSOptions decodes what cookieTSval put in an echoed TSecr.
func cookieTSOptions(ecr uint32) (ws int8, sack bool) {
	ws = int8(ecr & cookieNoWS)
	if ws > 14 {
		ws = -1
	}
	return ws, ecr&cookieSACK != 0
}
