package tcp

import (
	"fmt"
	"time"
)

// CongestionControl decides the congestion window of one connection
// (RFC 5681 §3): how many bytes may be in flight. The connection calls it
// on events and asks it for the window; loss detection (RACK-TLP,
// RFC 8985) and the sending pattern during recovery (PRR, RFC 6937) belong
// to the connection, so that a controller only answers "how much" and
// never "what". A controller is not safe for concurrent use: the
// connection serializes every call. Windows are in bytes; the sender's
// MSS is passed with every event because path MTU discovery can change it.
//
// Invariants every implementation keeps (FuzzCongestionControl checks
// them): Window() >= one MSS and <= MaxCongestionWindow, and no
// arithmetic overflows whatever the sequence of events.
type CongestionControl interface {
	// Name is the name Config.CongestionControl and SetCongestionControl
	// take ("cubic", "reno").
	Name() string
	// Init starts the controller with a window and a slow-start
	// threshold, at connection start (the initial window, RFC 6928, and
	// an "arbitrarily high" ssthresh, RFC 5681 §3.1) or when the
	// connection switches controllers (the old controller's values).
	Init(now time.Time, mss int, cwnd, ssthresh uint32)
	// Window returns cwnd, in bytes.
	Window() uint32
	// SlowStartThreshold returns ssthresh, in bytes.
	SlowStartThreshold() uint32
	// OnAck is called for every ACK that delivers new data (cumulatively
	// or by SACK) outside loss recovery.
	OnAck(s AckSample)
	// OnCongestionEvent is called once per loss episode, when recovery
	// starts (RFC 5681 §3.2 step 2, RFC 6675 §5 step 4.2). flight is
	// FlightSize when the loss was detected. The controller sets
	// ssthresh; PRR walks the sending rate down to it and OnRecoveryExit
	// ends there.
	OnCongestionEvent(now time.Time, flight uint32, mss int)
	// OnRecoveryExit is called when the recovery point is acknowledged:
	// RFC 6937 §3.1 "cwnd = ssthresh".
	OnRecoveryExit(now time.Time, mss int)
	// OnRTO is called when the retransmission timer expires
	// (RFC 5681 §3.1 (4): ssthresh from FlightSize, cwnd = LW = 1 MSS).
	// It is called once per timeout series: later backoffs of the same
	// series leave the window at one segment.
	OnRTO(now time.Time, flight uint32, mss int)
	// Undo restores the window and threshold from before the last
	// reduction, which a D-SACK (RFC 3708), a timestamp (RFC 3522) or
	// F-RTO (RFC 5682) showed spurious (RFC 4015 §3.2 restores the
	// "pre-reduction" state).
	Undo(now time.Time, mss int)
	// Restart is the restart window after an idle period: RFC 5681 §4.1,
	// "cwnd to no more than RW before beginning transmission".
	Restart(now time.Time, rw uint32, mss int)
}

// AckSample describes an ACK for CongestionControl.OnAck.
type AckSample struct {
	Now time.Time
	// Acked is the number of bytes the ACK newly delivered (cumulatively
	// acknowledged or SACKed).
	Acked uint32
	// Flight is FlightSize before the ACK: bytes sent and not yet
	// acknowledged or SACKed.
	Flight uint32
	// AppLimited is set when the sender has not been filling its window,
	// so the ACK says nothing about the path's capacity (RFC 7661 §4.2
	// restricts growth to a validated window).
	AppLimited bool
	// RTT is the round-trip sample this ACK gave (zero for none); MinRTT
	// and SRTT the connection's estimates (RFC 6298).
	RTT, MinRTT, SRTT time.Duration
	// UNA and NXT are SND.UNA after the ACK and SND.NXT: they let a
	// controller count round trips (HyStart++, RFC 9406 §4.2, ends a
	// round when SND.UNA passes the SND.NXT of its start).
	UNA, NXT Value
	// MSS is the sender's MSS (RFC 5681's SMSS).
	MSS int
}

// slowStartIncrease is the slow-start growth of cwnd for an ACK that
// newly delivered acked bytes, at most l segments per ACK (RFC 5681 §3.1's
// SMSS, RFC 3465 §2.2's and RFC 9406's L): counted per ACK that a
// receiver acknowledging every second full-sized segment (RFC 9293
// §3.8.6.3, RFC 5681 §4.2) would have sent for those bytes. A receiver
// with GRO (Linux, ustack) answers a whole super-segment, up to 45
// segments, with one ACK; counted as one, slow start grew by 8 segments
// per ACK (HyStart++'s L), 1.2× a round trip instead of 2× (a 16 MiB echo
// over a 2 ms path left slow start at 300 KB). The limit still does what
// RFC 3465 meant it for, an ACK that covers a hole's worth of segments at
// once after a loss, whose growth is that of the ACKs it replaces, not
// more; with CUBIC's l of 2 or 8 that is every byte acknowledged, as
// Linux counts it (tcp_slow_start, no limit since it dropped ABC). Reno
// keeps RFC 5681's one SMSS per ACK, the standard.
func slowStartIncrease(acked, mss, l uint32) uint32 {
	if mss == 0 {
		return 0
	}
	acks := max(1, (acked+2*mss-1)/(2*mss))
	return uint32(min(uint64(acked), uint64(l)*uint64(mss)*uint64(acks)))
}

// MaxCongestionWindow bounds every controller's window, so that
// arithmetic on windows and on FlightSize cannot overflow 32 bits
// (google/gvisor#11632 is a CUBIC overflow of this kind).
const MaxCongestionWindow = 1 << 30

// Congestion control names accepted by Config.CongestionControl.
const (
	CongestionCubic = "cubic" // RFC 9438 with HyStart++ (RFC 9406), the default as on Linux
	CongestionReno  = "reno"  // NewReno (RFC 5681, RFC 6582)
)

// NewCongestionControl returns a new controller by name: CongestionCubic
// (also for "", the default as on Linux) or CongestionReno.
func NewCongestionControl(name string) (CongestionControl, error) {
	switch name {
	case "", CongestionCubic:
		return new(Cubic), nil
	case CongestionReno:
		return new(Reno), nil
	}
	return nil, fmt.Errorf("tcp: unknown congestion control %q (want %q or %q)", name, CongestionCubic, CongestionReno)
}

// clampWindow keeps a window within [mss, MaxCongestionWindow].
func clampWindow(w uint32, mss int) uint32 {
	return min(max(w, uint32(max(mss, 1))), MaxCongestionWindow)
}

// Reno is the standard's congestion control: slow start and congestion
// avoidance with byte counting (RFC 5681 §3.1, RFC 3465 §2.1), halving on
// a congestion event (RFC 5681 §3.2 (2), RFC 6582 §3.2 step 3). Its zero
// value is ready for Init.
type Reno struct {
	cwnd, ssthresh uint32
	bytesAcked     uint32 // congestion avoidance byte counter (RFC 3465 §2.1)
	// The state before the last reduction, for Undo.
	priorCwnd, priorSsthresh uint32
}

// Name implements CongestionControl.
func (r *Reno) Name() string { return CongestionReno }

// Init implements CongestionControl.
func (r *Reno) Init(now time.Time, mss int, cwnd, ssthresh uint32) {
	*r = Reno{cwnd: clampWindow(cwnd, mss), ssthresh: max(ssthresh, 2*uint32(mss))}
	r.priorCwnd, r.priorSsthresh = r.cwnd, r.ssthresh
}

// Window implements CongestionControl.
func (r *Reno) Window() uint32 { return r.cwnd }

// SlowStartThreshold implements CongestionControl.
func (r *Reno) SlowStartThreshold() uint32 { return r.ssthresh }

// OnAck implements CongestionControl.
func (r *Reno) OnAck(s AckSample) {
	if s.AppLimited {
		r.cwnd = clampWindow(r.cwnd, s.MSS)
		return
	}
	mss := uint32(s.MSS)
	if r.cwnd < r.ssthresh {
		// Slow start, RFC 5681 §3.1: "cwnd += min (N, SMSS)" per ACK of
		// new data: the standard, stretch ACKs and all (CUBIC's slow
		// start counts them as the ACKs they stand for,
		// slowStartIncrease; script slow-start-per-ack-increase).
		r.cwnd += min(s.Acked, mss)
	} else {
		// Congestion avoidance, RFC 5681 §3.1: "increment cwnd by SMSS
		// bytes every time ... bytes acknowledged reaches cwnd".
		r.bytesAcked += min(s.Acked, r.cwnd)
		if r.bytesAcked >= r.cwnd {
			r.bytesAcked -= r.cwnd
			r.cwnd += mss
		}
	}
	r.cwnd = clampWindow(r.cwnd, s.MSS)
}

// OnCongestionEvent implements CongestionControl: RFC 5681 §3.2 (2)
// "ssthresh = max (FlightSize / 2, 2*SMSS)".
func (r *Reno) OnCongestionEvent(now time.Time, flight uint32, mss int) {
	r.priorCwnd, r.priorSsthresh = r.cwnd, r.ssthresh
	r.ssthresh = max(flight/2, 2*uint32(mss))
	r.bytesAcked = 0
	r.cwnd = clampWindow(r.cwnd, mss)
}

// OnRecoveryExit implements CongestionControl.
func (r *Reno) OnRecoveryExit(now time.Time, mss int) {
	r.cwnd = clampWindow(r.ssthresh, mss)
}

// OnRTO implements CongestionControl: RFC 5681 §3.1 (4).
func (r *Reno) OnRTO(now time.Time, flight uint32, mss int) {
	r.priorCwnd, r.priorSsthresh = r.cwnd, r.ssthresh
	r.ssthresh = max(flight/2, 2*uint32(mss))
	r.cwnd = clampWindow(uint32(mss), mss)
	r.bytesAcked = 0
}

// Undo implements CongestionControl (RFC 4015 §3.2: restore cwnd and
// ssthresh to their values before the spurious reduction).
func (r *Reno) Undo(now time.Time, mss int) {
	r.cwnd = clampWindow(max(r.cwnd, r.priorCwnd), mss)
	r.ssthresh = max(r.ssthresh, r.priorSsthresh)
}

// Restart implements CongestionControl.
func (r *Reno) Restart(now time.Time, rw uint32, mss int) {
	r.cwnd = clampWindow(min(r.cwnd, rw), mss)
}
