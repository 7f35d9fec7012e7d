// Package tcp implements the Transmission Control Protocol of RFC 9293 as a
// pure core: segments and the current time go in, segments come out through
// an Output. The core never reads the clock and never starts goroutines; its
// timers are deadlines that the caller polls with NextDeadline and fires
// with Tick.
//
// The wire format (Segment, Header, Options, sequence numbers, ISNs) is
// described in segment.go, options.go, seqnum.go and isn.go. The rest is the
// protocol:
//
//   - Conn is a transmission control block. Dial performs an active open;
//     a Listener performs a passive open: it answers each SYN from a small
//     half-open entry of its SYN queue (synqueue.go, passive.go) or, when
//     the queue is full or cookies are forced, with a SYN cookie and no
//     state (RFC 4987 §3.6, syncookie.go), and creates a Conn only when
//     the final ACK of the handshake arrives.
//     Conn.Input processes one arriving segment in the order of RFC 9293
//     §3.10.7 (input.go), Conn.Tick fires due timers (timers.go), and Read,
//     Write, CloseWrite, Close and Abort are the user calls of §3.10
//     (user.go).
//   - Data lives in two rings per connection (buffer.go): the send ring
//     holds unacknowledged and unsent data and segments are copied from it
//     straight into the Output's buffer (output.go); the receive ring holds
//     in-order data and, beyond it, out-of-order data at its offset, with a
//     small list of the ranges received. Nothing is allocated per segment.
//   - Retransmission follows RFC 6298, congestion control RFC 5681 with
//     Limited Transmit (RFC 3042) and NewReno recovery (RFC 6582)
//     (congestion.go); options are window scaling, timestamps with PAWS
//     (RFC 7323) and SACK blocks for out-of-order data (RFC 2018); blind
//     attacks are mitigated as RFC 5961 describes.
//   - Segmentation offloads: after Conn.SetGSOMaxSize, with an Output
//     that is a GSOOutput, a run of full-sized segments goes out as one
//     super-segment of up to 64 KiB that the link cuts into SendMSS pieces
//     (TSO, or GSO in software), its checksum left partial; the
//     retransmission queue still sees each piece where SACK blocks split
//     it (txqueue.go). Conn.InputSegments takes a super-segment coalesced
//     on input (GRO) whole and counts the segments it holds.
//   - Reset answers segments for which no connection exists.
//
// A Conn or Listener is not safe for concurrent use: the caller (package
// stack) serializes the calls on each with a mutex. Conn methods never
// touch their Listener; Listener.Input (which creates a Conn and feeds it
// the final ACK), Listener.Promote and Listener.Close do touch the Conns
// they handle, so the caller holds those Conns' locks as well (a new
// Conn is nobody else's yet).
package tcp
