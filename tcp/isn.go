package tcp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// isnTicksPerSecond is the rate of M, the RFC 6528 §3 "4 microsecond
// timer" (the 250 kHz clock of RFC 9293 §3.4.1).
const isnTicksPerSecond = 250_000

// ISNGenerator chooses initial sequence numbers as RFC 6528 §3 specifies:
//
//	ISN = M + F(localip, localport, remoteip, remoteport, secretkey)
//
// where M is a 4-microsecond timer and F a keyed pseudorandom function of
// the connection's 4-tuple that "MUST NOT be computable from the outside".
// F is HMAC-SHA256 keyed with the generator's secret, truncated to its
// first 32 bits. Each stack owns its generator (and key); it holds no
// mutable state, so it is safe for concurrent use.
type ISNGenerator struct {
	key [32]byte
}

// NewISNGenerator returns a generator keyed with key, which should come
// from a cryptographic random source (RFC 6528 §3: the result of F "is no
// more secure than the secret key").
func NewISNGenerator(key [32]byte) *ISNGenerator {
	return &ISNGenerator{key: key}
}

// ISN returns the initial sequence number for a connection with 4-tuple t
// opened at time now. For one tuple the ISN advances by 250,000 per second
// of now (one per 4 µs), so that a new incarnation of the connection
// starts above the old one's sequence numbers (RFC 9293 §3.4.1); different
// tuples and different keys give unrelated ISNs.
//
// ISN allocates (it runs once per connection, not per segment).
func (g *ISNGenerator) ISN(t Tuple, now time.Time) Value {
	// M: 4 µs ticks since the Unix epoch, modulo 2**32 (it wraps every
	// 2**32 / 250,000 s, about 4.77 hours, as RFC 9293 §3.4.1 describes).
	m := uint32(now.Unix())*isnTicksPerSecond + uint32(now.Nanosecond()/4000)
	return Value(m + g.f(t))
}

// f is the PRF F of RFC 6528 §3 over the connection-id: local address,
// local port, remote address, remote port. Addresses are written in
// their 16-octet form so that IPv4 and IPv6 tuples cannot collide.
func (g *ISNGenerator) f(t Tuple) uint32 {
	var msg [36]byte
	la, ra := t.Local.Addr().As16(), t.Remote.Addr().As16()
	copy(msg[0:16], la[:])
	binary.BigEndian.PutUint16(msg[16:18], t.Local.Port())
	copy(msg[18:34], ra[:])
	binary.BigEndian.PutUint16(msg[34:36], t.Remote.Port())
	mac := hmac.New(sha256.New, g.key[:])
	mac.Write(msg[:])
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint32(mac.Sum(sum[:0]))
}
