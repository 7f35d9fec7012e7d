// Package udp implements the wire view of the User Datagram Protocol of
// RFC 768, with the host requirements of RFC 1122 §4.1, and the receive
// queue a UDP socket keeps. Like the other protocol cores it is pure: it
// never reads the clock and never starts goroutines.
//
// A Datagram is a view over a byte slice (datagram.go). Parse validates a
// datagram received from src to dst once — the 8-byte header is present,
// the Length field is at least 8 and within the bytes received (bytes
// past it are the IP layer's padding and are trimmed), and the checksum
// verifies over the pseudo-header of the datagram's family — after which
// no accessor can panic. Each reason to refuse a datagram has its own
// sentinel error, so that a stack can count every drop:
//
//   - RFC 768 makes the checksum optional on IPv4: "An all zero
//     transmitted checksum value means that the transmitter generated no
//     checksum", so Parse accepts it unverified. RFC 1122 §4.1.3.4: "If a
//     UDP datagram is received with a checksum that is non-zero and
//     invalid, UDP MUST silently discard the datagram" (ErrChecksum).
//   - RFC 8200 §8.1 makes it mandatory on IPv6: "IPv6 receivers must
//     discard UDP packets containing a zero checksum" (ErrZeroChecksum).
//
// Building writes into a caller-owned buffer: PutHeader writes the header
// for a payload that follows it, and SetChecksum computes the checksum
// over the pseudo-header (IPv4's of RFC 768 or IPv6's of RFC 8200 §8.1),
// header and payload, sending a computed zero as 0xFFFF (RFC 768: "If the
// computed checksum is zero, it is transmitted as all ones").
//
// A Queue (queue.go) is a socket's receive queue: a FIFO of datagrams
// bounded by count and by bytes that counts the datagrams it refuses when
// full (Linux's UDP RcvbufErrors), copies each datagram into memory it
// reuses, and pops into a caller's buffer, reporting a datagram longer
// than the buffer as recvmsg does with MSG_TRUNC.
//
// Parse, PutHeader, SetChecksum and a Queue's Push and Pop (once the queue
// has grown to its working size) allocate nothing.
package udp
