package tcp

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"time"
)

// isnTicksPerSecond is the rate of M, the "4 microsecond timer" of
// RFC 6528 §3 and RFC 9293 §3.4.1.
const isnTicksPerSecond = 250_000

// ISNGenerator chooses initial sequence numbers as RFC 6528 §3 specifies:
//
//	ISN = M + F(localip, localport, remoteip, remoteport, secretkey)
//
// where M is the 4 microsecond timer and F a pseudorandom function of the
// connection's 4-tuple and a secret key, which "MUST NOT be computable
// from the outside" (RFC 9293 §3.4.1, MUST-9). Here F is HMAC-SHA256 keyed
// with the generator's secret over the 4-tuple, truncated to its first 32
// bits. Each stack owns its generator (and key). A generator holds no
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
// of now (one per 4 µs), the "clock" RFC 9293 §3.4.1 requires (MUST-8) so
// that a new incarnation of a connection does not reuse sequence numbers
// of an earlier one; different tuples and different keys give unrelated
// ISNs.
//
// ISN does not allocate.
func (g *ISNGenerator) ISN(t Tuple, now time.Time) Value {
	// M: 4 µs ticks since the Unix epoch, modulo 2^32 (it wraps every
	// 2^32 / 250,000 s, about 4.77 hours; RFC 9293 §3.4.1: "it cycles
	// approximately every 4.55 hours").
	m := uint32(now.Unix())*isnTicksPerSecond + uint32(now.Nanosecond()/4000)
	h := g.prf(t)
	return Value(m + binary.BigEndian.Uint32(h[0:4]))
}

// TimestampOffset returns the offset added to the timestamp clock of
// connections with 4-tuple t: RFC 7323 §5.4 recommends a random offset per
// connection, "e.g., a hash of the four-tuple and a secret", so that TSval
// reveals nothing about the host's uptime. Because it depends only on the
// 4-tuple, a new connection on the same 4-tuple continues the old one's
// timestamps, which lets TIME-WAIT accept its SYN (RFC 6191 §2). It takes
// different output bits of the same PRF as ISN.
func (g *ISNGenerator) TimestampOffset(t Tuple) uint32 {
	h := g.prf(t)
	return binary.BigEndian.Uint32(h[4:8])
}

// PortHashes returns two keyed hashes of a connection's local address and
// remote address and port, for choosing its ephemeral port with RFC 6056
// §3.3.4 (Algorithm 4, double-hash port selection): offset is F(local IP,
// remote IP, remote port, secret1) and index selects the counter
// G(local IP, remote IP, remote port, secret2). They take output bits of
// the same PRF as ISN, over the 4-tuple with the local port zero.
func (g *ISNGenerator) PortHashes(local netip.Addr, remote netip.AddrPort) (offset, index uint32) {
	h := g.prf(Tuple{Local: netip.AddrPortFrom(local, 0), Remote: remote})
	return binary.BigEndian.Uint32(h[8:12]), binary.BigEndian.Uint32(h[12:16])
}

// CookieHash is the keyed hash of a SYN cookie (RFC 4987 §3.6: "a
// cryptographic hash of the server IP address and port number, the client
// IP address and port number, and t"), here also over the client's ISN,
// so that each SYN gets its own cookie; stamp is t with the cookie's
// other data (the listener packs its MSS index in). It is HMAC-SHA256 under the same
// secret as ISN (RFC 6528 §3), over a message that no ISN message can
// equal (it is longer), truncated to 32 bits. It does not allocate.
func (g *ISNGenerator) CookieHash(t Tuple, stamp uint32, peerISN Value) uint32 {
	var msg [44]byte
	tupleBytes(msg[:36], t)
	binary.BigEndian.PutUint32(msg[36:40], stamp)
	binary.BigEndian.PutUint32(msg[40:44], uint32(peerISN))
	h := g.hmac(msg[:])
	return binary.BigEndian.Uint32(h[0:4])
}

// tupleBytes writes the connection-id of RFC 6528 §3 into b (36 octets):
// local address, local port, remote address, remote port, the addresses
// in their 16-octet form (IPv4 as IPv4-mapped), so that the message has
// one length for IPv4 and IPv6.
func tupleBytes(b []byte, t Tuple) {
	la, ra := t.Local.Addr().As16(), t.Remote.Addr().As16()
	copy(b[0:16], la[:])
	binary.BigEndian.PutUint16(b[16:18], t.Local.Port())
	copy(b[18:34], ra[:])
	binary.BigEndian.PutUint16(b[34:36], t.Remote.Port())
}

// prf is the PRF F of RFC 6528 §3 over the connection-id.
func (g *ISNGenerator) prf(t Tuple) [sha256.Size]byte {
	var msg [36]byte
	tupleBytes(msg[:], t)
	return g.hmac(msg[:])
}

// hmacMaxMsg is the longest message hmac takes.
const hmacMaxMsg = 64

// hmac computes HMAC-SHA256 of msg (at most hmacMaxMsg octets) under the
// generator's key (RFC 2104 §2: H(K XOR opad, H(K XOR ipad, text)) with
// the 32-octet key zero-padded to SHA-256's 64-octet block) on stack
// buffers, so that it does not allocate; TestISNIsHMAC checks it against
// crypto/hmac.
func (g *ISNGenerator) hmac(msg []byte) [sha256.Size]byte {
	const (
		block = 64 // SHA-256 block size (RFC 2104 §2: B)
		ipad  = 0x36
		opad  = 0x5c
	)
	var inner [block + hmacMaxMsg]byte
	for i, k := range g.key {
		inner[i] = k ^ ipad
	}
	for i := len(g.key); i < block; i++ {
		inner[i] = ipad
	}
	n := copy(inner[block:], msg)
	ih := sha256.Sum256(inner[:block+n])

	var outer [block + sha256.Size]byte
	for i, k := range g.key {
		outer[i] = k ^ opad
	}
	for i := len(g.key); i < block; i++ {
		outer[i] = opad
	}
	copy(outer[block:], ih[:])
	return sha256.Sum256(outer[:])
}
