package tcp

import (
	"errors"
	"time"
)

// Receive-buffer auto-tuning (dynamic right-sizing, as Linux's
// tcp_rcv_space_adjust and gVisor's moderated receive buffer do it): once
// per round trip the receiver counts the bytes the application read in
// that round trip, less what it left unread; when that beats the best
// round trip so far, the buffer, and so the window it offers, grows to
// about twice the amount (four times while the amount doubles per round
// trip), so that the sender, whose window doubles per round trip in slow
// start, is not held back by the receiver. The buffer never grows past
// Config.MaxReceiveBufferSize, nor past what the window field can say; it
// never shrinks (the right edge of the window never moves left, RFC 9293
// §3.8.6.2.2 and §3.10.7.4), and the ring's memory still follows the data
// held (buffer.go): an idle connection or a slow reader keeps its small
// ring.
//
// The round-trip time comes from timestamps when they are in use: a data
// segment's TSecr echoes one of our TSvals (RFC 7323 §4.3), so the time
// since we sent it is a round trip, as Linux's tcp_rcv_rtt_measure_ts
// reads it. Without timestamps it is measured once per window, as Linux's
// tcp_rcv_rtt_measure does: the time RCV.NXT takes to pass the right edge
// of the window offered when the measure began, about a round trip when
// the sender keeps the window full and more when it does not; the least
// measure is kept.

// rcvTune is a connection's auto-tuning state (in rxState: a connection
// that never receives data does not pay for it).
type rcvTune struct {
	// space is the most bytes read in one measured round trip (the
	// "space" of Linux's rcvq_space); the buffer grows when a round trip
	// beats it.
	space int
	read  uint64    // bytes the application read so far
	mark  uint64    // read at the start of the current round trip
	inAt  uint64    // bytes received in order at the start of the round trip
	inq   int       // bytes waiting to be read at the start of the round trip
	start time.Time // start of the current round trip (zero: none yet)

	rtt       time.Duration // the receiver's round-trip estimate, when haveRTT
	haveRTT   bool
	lastTSecr uint32 // TSecr of the last timestamp sample
	haveTSecr bool
	winEnd    Value     // right edge of the window when the window measure began
	winStart  time.Time // zero: no window measure running
}

// initTune decides, for a new connection, whether auto-tuning applies and
// the window scale to offer: the smallest shift that lets the receive
// buffer, at the most auto-tuning may grow it to, be advertised in 16
// bits, at most 14 (RFC 7323 §2.3).
func (c *Conn) initTune() {
	limit := c.rcvBuf.Cap()
	c.tuneOff = c.cfg.MaxReceiveBufferSize <= limit
	if !c.tuneOff {
		limit = c.cfg.MaxReceiveBufferSize
	}
	c.wsShift = 0
	for c.wsShift < 14 && limit>>c.wsShift > 0xffff {
		c.wsShift++
	}
}

// rxs returns the receiver's state, allocating it with the first data.
func (c *Conn) rxs() *rxState {
	if c.rx == nil {
		// The first round trip to beat: about an initial window of data
		// (RFC 6928's ten segments), as Linux starts its rcvq_space.
		c.rx = &rxState{tune: rcvTune{space: 10 * int(c.mss)}}
	}
	return c.rx
}

// rcvRTTSample takes the receiver's round-trip samples from an arriving
// in-order data segment of n bytes.
func (c *Conn) rcvRTTSample(now time.Time, seg *inSeg, n int) {
	if c.tuneOff {
		return
	}
	t := &c.rxs().tune
	if c.tsOK {
		// Each TSecr once, from full-sized segments only: a small
		// segment may have waited for the application or Nagle.
		if !seg.hasTS || seg.tsEcr == 0 || n < c.rcvMSS || t.haveTSecr && seg.tsEcr == t.lastTSecr {
			return
		}
		t.lastTSecr, t.haveTSecr = seg.tsEcr, true
		cur := uint32(now.Sub(tsEpoch)/time.Millisecond) + c.tsOffset
		d := int32(cur - seg.tsEcr)
		if d < 0 || int32(c.tsLast-seg.tsEcr) < 0 {
			return // not a TSval of ours
		}
		// The clock ticks in milliseconds: a round trip of a fraction f
		// of a tick reads 1 with probability f and 0 otherwise, so the
		// average of the samples, zeros included, is the round trip. A
		// zero estimate is an estimate (a path too short to need
		// tuning), not the absence of one.
		m := time.Duration(d) * time.Millisecond
		if m > c.cfg.MaxRTO {
			return // an echo of a TSval from long ago: no round trip
		}
		if !t.haveRTT {
			t.rtt, t.haveRTT = m, true
		} else {
			t.rtt += (m - t.rtt) / 8
		}
		return
	}
	if t.winStart.IsZero() {
		t.winEnd, t.winStart = c.rcv.NXT.Add(c.rcv.WND), now
		return
	}
	if c.rcv.NXT.LessThan(t.winEnd) {
		return
	}
	// A window took m to arrive: about a round trip, more when the
	// sender did not fill it; keep the least.
	if m := now.Sub(t.winStart); m > 0 && (!t.haveRTT || m < t.rtt) {
		t.rtt, t.haveRTT = m, true
	}
	t.winEnd, t.winStart = c.rcv.NXT.Add(c.rcv.WND), now
}

// tuneReceiveBuffer runs after the application read n bytes: once per
// round trip it grows the receive buffer to what the bytes read in that
// round trip show the flow needs.
func (c *Conn) tuneReceiveBuffer(now time.Time, n int) {
	if c.tuneOff || c.rx == nil {
		return
	}
	t := &c.rx.tune
	t.read += uint64(n)
	if !t.haveRTT {
		return
	}
	inq := c.rcvBuf.Len()
	if t.start.IsZero() {
		t.start, t.mark, t.inAt, t.inq = now, t.read-uint64(n), c.bytesIn, inq
		return
	}
	elapsed := now.Sub(t.start)
	if elapsed < t.rtt || elapsed <= 0 {
		return
	}
	// What the application read in the round trip, less what the queue
	// of bytes waiting to be read grew by: a reader that does not keep
	// up shows no need for a larger buffer however much it finds to read.
	// Linux subtracts the whole queue (its commit "tcp: add receive queue
	// awareness in tcp_rcv_space_adjust()"); only the growth counts here,
	// because a measure ends at a read, and a reader that keeps up but
	// takes a window that arrived at once in pieces (an echo server
	// reading 32 KiB, then writing it back; GRO delivers the sender's
	// burst whole) ends every measure at its first piece, with the rest
	// of the window queued: the same queue each round trip, no sign of
	// falling behind, and subtracted whole it held the buffer at its
	// initial size for good (TestAutoTuneWindowBurstReadInPieces). Reads
	// come when the application makes them: a backlog read in a burst
	// counts only as much as arrived in the measure, and a measure longer
	// than a round trip is scaled to one.
	copied := int64(t.read-t.mark) - int64(max(0, inq-t.inq))
	copied = min(copied, int64(c.bytesIn-t.inAt))
	copied = int64(float64(copied) * float64(t.rtt) / float64(elapsed))
	t.start, t.mark, t.inAt, t.inq = now, t.read, c.bytesIn, inq
	if copied <= int64(t.space) {
		return
	}
	// Twice what a round trip delivered, and twice that again while the
	// rate doubles per round trip (a sender in slow start): the window
	// must hold the next round trip's data with room to spare.
	grow := min(copied-int64(t.space), int64(t.space))
	want := 2 * (copied + copied*grow/int64(t.space))
	t.space = int(copied)
	want = min(want, int64(c.cfg.MaxReceiveBufferSize), int64(0xffff)<<c.rcv.shift)
	if int(want) > c.rcvBuf.Cap() {
		c.rcvBuf.SetSize(int(want))
	}
}

// ErrBufferSize is returned by SetReceiveBufferSize for a size that is
// not positive.
var ErrBufferSize = errors.New("tcp: receive buffer size must be positive")

// SetReceiveBufferSize sets the size of the receive buffer to n bytes and
// turns auto-tuning off for the connection, as SO_RCVBUF does on Linux.
// The buffer does not shrink below the data it holds and the window
// already offered (RFC 9293 §3.10.7.4: "The total of RCV.NXT and RCV.WND
// should not be reduced"); it takes effect on the window the next segment
// offers. The window scale was fixed by the handshake: a size beyond what
// it can advertise is held but not offered.
func (c *Conn) SetReceiveBufferSize(n int) error {
	if n <= 0 {
		return ErrBufferSize
	}
	c.tuneOff = true
	floor := c.rcvBuf.Len() + int(c.rcv.WND)
	for _, r := range c.ooo().ranges() {
		floor = max(floor, c.rcvBuf.Len()+int(r.end.Sub(c.rcv.NXT)))
	}
	c.rcvBuf.SetSize(max(n, floor))
	return nil
}

// ReceiveBufferSize returns the size of the receive buffer: the
// configured size, or what auto-tuning grew it to.
func (c *Conn) ReceiveBufferSize() int { return c.rcvBuf.Cap() }
