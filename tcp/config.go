package tcp

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Config holds the tunables of connections and listeners. A Config is
// shared, read-only, by every connection created with it.
//
// The core uses the fields as they are: start from DefaultConfig, or pass
// a Config through WithDefaults, which gives every numeric field left at
// zero DefaultConfig's value (the stack does this with Options.TCP), and
// Validate, which rejects negative and out-of-range values naming the
// field. The booleans cannot tell "unset" from false and are taken as
// given: a Config built from scratch has WindowScale, Timestamps and
// SACKPermitted off unless it sets them.
type Config struct {
	// SendBufferSize and ReceiveBufferSize are the sizes in bytes of the
	// send and receive rings, allocated when a connection starts.
	SendBufferSize, ReceiveBufferSize int
	// MaxReceiveBufferSize is the most receive-buffer auto-tuning grows a
	// connection's receive buffer to, from ReceiveBufferSize, as the
	// bytes the application reads per round trip show the flow needs
	// (autotune.go); the window scale offered on SYNs allows it. A value
	// not above ReceiveBufferSize turns auto-tuning off (set it to
	// ReceiveBufferSize for that: WithDefaults turns zero into the default). The memory is
	// not allocated up front: the ring grows with the data it holds.
	// Conn.SetReceiveBufferSize turns it off for one connection.
	MaxReceiveBufferSize int
	// MaxSendBufferSize is the most the send buffer grows to, from
	// SendBufferSize, so that it can hold two congestion windows (one in
	// flight, one ready), as Linux's tcp_sndbuf_expand does up to
	// tcp_wmem's maximum: a fixed buffer would cap a long path's rate at
	// SendBufferSize per round trip whatever cwnd allows. A value not
	// above SendBufferSize keeps the buffer fixed (set it to
	// SendBufferSize for that: WithDefaults turns zero into the default); Conn.SetSendBufferSize
	// fixes it for one connection. Memory grows with the data held.
	MaxSendBufferSize int
	// MinRTO, MaxRTO and InitialRTO bound and start the retransmission
	// timeout: RFC 6298 (2.1) initial RTO of 1 s, (2.4) a minimum (200 ms
	// here, configurable), (2.5) a maximum of at least 60 s.
	MinRTO, MaxRTO, InitialRTO time.Duration
	// MaxRetries is the number of retransmissions of a data segment after
	// which the connection fails with ErrTimeout (RFC 9293 §3.8.3 R2;
	// Linux's tcp_retries2 is 15).
	MaxRetries int
	// SynRetries is the same limit for SYN and SYN-ACK segments.
	SynRetries int
	// MSL is the maximum segment lifetime; TIME-WAIT lasts 2*MSL
	// (RFC 9293 §3.3.2).
	MSL time.Duration
	// DelayedAckTimeout bounds how long an ACK may be delayed; RFC 9293
	// §3.8.6.3 (MUST-40) requires less than 0.5 s. A negative value
	// disables delayed ACKs, and so does zero unless WithDefaults turned
	// it into the default.
	DelayedAckTimeout time.Duration
	// TSOBurst is how much of the connection's rate one super-segment
	// carries (GSO, Conn.SetGSOMaxSize): the rate being cwnd/SRTT, twice
	// that in slow start, 1.2 times in congestion avoidance, and a
	// super-segment at least two SendMSS, as Linux's tcp_tso_autosize
	// (1 ms there, sk_pacing_shift 10). A path shorter than it sends its
	// window in one super-segment; a longer one in several, so that one
	// drop loses less and one lost ACK does not leave the whole flight
	// unacknowledged. Zero means the default (1 ms) after WithDefaults; a
	// negative value lets a super-segment take the whole window.
	TSOBurst time.Duration
	// FinWait2Timeout ends an orphaned connection (Close was called) that
	// waits in FIN-WAIT-2 for the peer's FIN.
	FinWait2Timeout time.Duration
	// KeepAliveIdle, KeepAliveInterval and KeepAliveCount drive keepalive
	// probes when enabled with SetKeepAlive (RFC 1122 §4.2.3.6: idle at
	// least two hours by default).
	KeepAliveIdle, KeepAliveInterval time.Duration
	KeepAliveCount                   int
	// NoDelay turns the Nagle algorithm off for new connections
	// (RFC 9293 §3.7.4, RFC 1122 §4.2.3.4).
	NoDelay bool
	// WindowScale, Timestamps and SACKPermitted choose the options
	// advertised on SYNs (RFC 7323 §2, §3; RFC 2018 §2). With SACK
	// negotiated, bare ACKs report out-of-order data in SACK blocks, most
	// recently changed first (RFC 2018 §4), and data received twice in a
	// D-SACK block (RFC 2883 §4); the sender recovers with NewReno (RFC 6582) and uses
	// the SACK blocks it receives only to detect a lost fast
	// retransmission (RFC 8985's principle) and send it again.
	WindowScale, Timestamps, SACKPermitted bool
	// CongestionControl names the congestion controller of new
	// connections: CongestionCubic (the default, also for "") or
	// CongestionReno (see NewCongestionControl).
	CongestionControl string
	// DisableTLP turns tail loss probes off (RFC 8985 §7; Linux's
	// tcp_early_retrans=0); RACK's loss detection stays.
	DisableTLP bool
	// DisableFRTO turns off the detection of spurious retransmission
	// timeouts (F-RTO, RFC 5682, and Eifel detection, RFC 3522; Linux's
	// tcp_frto=0).
	DisableFRTO bool
	// ChallengeACKLimit is the number of challenge ACKs a connection may
	// send per second (RFC 5961 §7).
	ChallengeACKLimit int
	// TimestampOffset, when not nil, gives the offset of the timestamp
	// clock for a 4-tuple (RFC 7323 §5.4); the stack sets it to its
	// ISNGenerator's TimestampOffset.
	TimestampOffset func(Tuple) uint32
	// MTUProbing selects packetization-layer path MTU discovery
	// (RFC 4821, RFC 8899 for TCP) for paths that drop ICMP: off, on
	// black hole (the default: consecutive timeouts of full-sized
	// segments lower the MSS to MTUProbeBaseMSS, then probe segments
	// search upwards), or always (start at the base and probe up). The
	// values are Linux's net.ipv4.tcp_mtu_probing 0, 1 and 2.
	MTUProbing MTUProbing
	// MTUProbeBaseMSS is the MSS a detected black hole lowers to, and
	// where MTUProbingAlways starts (Linux's tcp_base_mss, 1024; RFC 4821
	// §7.2). Zero means 1024.
	MTUProbeBaseMSS int
	// MaxOutOfOrderBytes bounds the receive-ring memory that out-of-order
	// data pins across every connection sharing Stats (a stack's): new
	// out-of-order data that would take Stats.OutOfOrderBytes over it is
	// dropped and counted in Stats.DroppedOutOfOrderMemory (oobudget.go).
	// A negative value (or zero without WithDefaults), or a nil Stats,
	// means no bound but each connection's window.
	MaxOutOfOrderBytes int
	// SYNCookies chooses when listeners answer a SYN with a SYN cookie
	// (RFC 4987 §3.6) instead of a SYN-queue entry: when the SYN queue is
	// full (the default, the zero value), never, or always.
	SYNCookies SYNCookieMode
	// SYNCookieHash, when not nil, is the keyed hash SYN cookies carry
	// (RFC 4987 §3.6, keyed as RFC 6528 §3 keys ISNs); the stack sets it
	// to its ISNGenerator's CookieHash. Without it no cookies are sent.
	SYNCookieHash func(t Tuple, stamp uint32, peerISN Value) uint32
	// MaxHalfOpen bounds the half-open (SYN-RECEIVED) entries of every
	// listener sharing this Config's Stats, on top of each listener's own
	// SYN-queue limit (Linux's tcp_max_syn_backlog); a negative value
	// (or zero without WithDefaults) means no bound.
	MaxHalfOpen int
	// SynAckRetries is the number of SYN-ACK retransmissions of a
	// half-open entry before it is dropped (Linux's tcp_synack_retries).
	SynAckRetries int
	// InvalidRSTLimit is the number of RSTs per second a listener sends
	// for ACKs that match no half-open entry and no cookie (RFC 5961 §7's
	// spirit, Linux's tcp_invalid_ratelimit); a negative value (or zero
	// without WithDefaults) means no limit.
	InvalidRSTLimit int
	// Stats, when not nil, receives the counters of every connection and
	// listener that uses this Config.
	Stats *Stats
}

// DefaultConfig returns the default tunables.
func DefaultConfig() Config {
	return Config{
		SendBufferSize:    256 << 10,
		ReceiveBufferSize: 256 << 10,
		// Linux's tcp_rmem maximum.
		MaxReceiveBufferSize: 6 << 20,
		// Linux's tcp_wmem maximum.
		MaxSendBufferSize: 4 << 20,
		MinRTO:            200 * time.Millisecond,
		MaxRTO:            120 * time.Second,
		InitialRTO:        time.Second,
		MaxRetries:        15,
		SynRetries:        6,
		MSL:               30 * time.Second,
		DelayedAckTimeout: 40 * time.Millisecond,
		TSOBurst:          time.Millisecond,
		FinWait2Timeout:   60 * time.Second,
		KeepAliveIdle:     2 * time.Hour,
		KeepAliveInterval: 75 * time.Second,
		KeepAliveCount:    9,
		WindowScale:       true,
		Timestamps:        true,
		SACKPermitted:     true,
		ChallengeACKLimit: 10,
		MTUProbing:        MTUProbingBlackHole,
		MTUProbeBaseMSS:   defaultProbeBaseMSS,
		// 64 MiB: ten receive windows at the auto-tuning maximum.
		MaxOutOfOrderBytes: 64 << 20,
		MaxHalfOpen:        65536,
		SynAckRetries:      5,
		InvalidRSTLimit:    100,
	}
}

// WithDefaults returns c with every numeric field that is zero set to
// DefaultConfig's value, so that a Config that sets only what it cares
// about (say the buffer sizes) works as the defaults do for the rest.
// Zero is never a useful value for these: a zero RTO or retry count would
// end every connection at once. The fields where a negative value means
// "off" (DelayedAckTimeout, MaxOutOfOrderBytes, MaxHalfOpen,
// InvalidRSTLimit) keep it; the booleans, the enumerations
// (MTUProbing, SYNCookies), CongestionControl ("" is CUBIC), the
// functions and Stats are left as they are.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.SendBufferSize, d.SendBufferSize)
	def(&c.ReceiveBufferSize, d.ReceiveBufferSize)
	def(&c.MaxReceiveBufferSize, d.MaxReceiveBufferSize)
	def(&c.MaxSendBufferSize, d.MaxSendBufferSize)
	defDur(&c.MinRTO, d.MinRTO)
	defDur(&c.MaxRTO, d.MaxRTO)
	defDur(&c.InitialRTO, d.InitialRTO)
	def(&c.MaxRetries, d.MaxRetries)
	def(&c.SynRetries, d.SynRetries)
	defDur(&c.MSL, d.MSL)
	defDur(&c.DelayedAckTimeout, d.DelayedAckTimeout)
	defDur(&c.TSOBurst, d.TSOBurst)
	defDur(&c.FinWait2Timeout, d.FinWait2Timeout)
	defDur(&c.KeepAliveIdle, d.KeepAliveIdle)
	defDur(&c.KeepAliveInterval, d.KeepAliveInterval)
	def(&c.KeepAliveCount, d.KeepAliveCount)
	def(&c.ChallengeACKLimit, d.ChallengeACKLimit)
	def(&c.MTUProbeBaseMSS, d.MTUProbeBaseMSS)
	def(&c.MaxOutOfOrderBytes, d.MaxOutOfOrderBytes)
	def(&c.MaxHalfOpen, d.MaxHalfOpen)
	def(&c.SynAckRetries, d.SynAckRetries)
	def(&c.InvalidRSTLimit, d.InvalidRSTLimit)
	return c
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid tcp.Config")

// maxSegmentSize is the largest MSS an IPv4 datagram can carry: 65535
// less the IPv4 and TCP headers (RFC 9293 §3.7.1).
const maxSegmentSize = 65535 - 20 - HeaderLen

// minSegmentSize is the smallest MSS MTUProbeBaseMSS may be: RFC 9293
// §3.7.1 (MUST-15) has a host accept datagrams of 576 octets, so a TCP
// segment of 536 octets always fits; Linux clamps tcp_base_mss to at
// least 48, and ustack asks for no less than the RFC's default MSS of
// 536 less the 40 octets of options a segment may carry.
const minSegmentSize = 536 - 40

// Validate reports the first field of c whose value the core cannot use,
// naming it: a negative size, duration or count (other than the fields
// where negative means "off", see WithDefaults), a zero one where zero
// would end every connection at once (call WithDefaults first to fill
// them), MinRTO above MaxRTO, a DelayedAckTimeout of 0.5 s or more
// (RFC 9293 §3.8.6.3, MUST-40), an MTUProbeBaseMSS outside 496-65475, an
// unknown MTUProbing, SYNCookies or CongestionControl. The error wraps
// ErrInvalidConfig.
func (c *Config) Validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: %s %v %s", ErrInvalidConfig, field, v, why)
	}
	positive := []struct {
		name string
		v    int
	}{
		{"SendBufferSize", c.SendBufferSize},
		{"ReceiveBufferSize", c.ReceiveBufferSize},
		{"MaxRetries", c.MaxRetries},
		{"SynRetries", c.SynRetries},
		{"KeepAliveCount", c.KeepAliveCount},
		{"ChallengeACKLimit", c.ChallengeACKLimit},
		{"SynAckRetries", c.SynAckRetries},
	}
	for _, f := range positive {
		if f.v <= 0 {
			return bad(f.name, f.v, "is not positive")
		}
	}
	if c.MaxReceiveBufferSize < 0 {
		return bad("MaxReceiveBufferSize", c.MaxReceiveBufferSize, "is negative")
	}
	if c.MaxSendBufferSize < 0 {
		return bad("MaxSendBufferSize", c.MaxSendBufferSize, "is negative")
	}
	durations := []struct {
		name string
		v    time.Duration
	}{
		{"MinRTO", c.MinRTO},
		{"MaxRTO", c.MaxRTO},
		{"InitialRTO", c.InitialRTO},
		{"MSL", c.MSL},
		{"FinWait2Timeout", c.FinWait2Timeout},
		{"KeepAliveIdle", c.KeepAliveIdle},
		{"KeepAliveInterval", c.KeepAliveInterval},
	}
	for _, f := range durations {
		if f.v <= 0 {
			return bad(f.name, f.v, "is not positive")
		}
	}
	if c.MinRTO > c.MaxRTO {
		return bad("MinRTO", c.MinRTO, fmt.Sprintf("is above MaxRTO %v", c.MaxRTO))
	}
	// RFC 9293 §3.8.6.3: "an ACK SHOULD be generated ... and in any case,
	// the delay MUST be less than 0.5 seconds" (MUST-40).
	if c.DelayedAckTimeout >= 500*time.Millisecond {
		return bad("DelayedAckTimeout", c.DelayedAckTimeout, "is not below 0.5 s (RFC 9293 MUST-40)")
	}
	if c.MTUProbeBaseMSS != 0 && (c.MTUProbeBaseMSS < minSegmentSize || c.MTUProbeBaseMSS > maxSegmentSize) {
		return bad("MTUProbeBaseMSS", c.MTUProbeBaseMSS, fmt.Sprintf("is outside %d-%d", minSegmentSize, maxSegmentSize))
	}
	if c.MTUProbing > MTUProbingAlways {
		return bad("MTUProbing", c.MTUProbing, "is unknown")
	}
	if c.SYNCookies > SYNCookiesAlways {
		return bad("SYNCookies", c.SYNCookies, "is unknown")
	}
	if _, err := NewCongestionControl(c.CongestionControl); err != nil {
		return bad("CongestionControl", fmt.Sprintf("%q", c.CongestionControl), "is unknown")
	}
	return nil
}

// Stats are TCP counters shared by every connection of a stack. Every field
// is updated atomically by the core and may be read at any time.
type Stats struct {
	SegmentsIn           atomic.Uint64 // segments handed to Conn.Input or Listener.Input
	SegmentsOut          atomic.Uint64 // segments sent, retransmissions included
	Retransmits          atomic.Uint64 // segments retransmitted (timeout or fast retransmit)
	FastRetransmits      atomic.Uint64 // retransmissions on three duplicate ACKs (RFC 5681 §3.2)
	Timeouts             atomic.Uint64 // retransmission timer expiries (each backs off the RTO)
	ResetsSent           atomic.Uint64 // RST segments sent by connections and listeners
	ResetsReceived       atomic.Uint64 // acceptable RSTs that closed a connection
	ChallengeACKs        atomic.Uint64 // challenge ACKs sent (RFC 5961)
	ChallengeACKsLimited atomic.Uint64 // challenge ACKs suppressed by ChallengeACKLimit
	DroppedBadOptions    atomic.Uint64 // segments dropped for malformed options (counted by the stack when ParseSegment fails)
	DroppedOutOfWindow   atomic.Uint64 // unacceptable segments (RFC 9293 §3.10.7.4, first step)
	DroppedPAWS          atomic.Uint64 // segments dropped by PAWS (RFC 7323 §5)
	DroppedNoConnection  atomic.Uint64 // segments for no connection (counted by Reset's caller)
	DroppedOutOfOrder    atomic.Uint64 // out-of-order data dropped because the range list was full
	ListenOverflows      atomic.Uint64 // SYNs and final ACKs dropped because the accept queue (the backlog) was full
	ActiveOpens          atomic.Uint64 // Dial calls
	PassiveOpens         atomic.Uint64 // connections created by listeners
	EstablishedResets    atomic.Uint64 // connections reset by the peer in ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2 or CLOSE-WAIT
	ConnectionTimeouts   atomic.Uint64 // connections given up: retransmissions, window or keepalive probes unanswered (ErrTimeout, or the last soft ICMP error)
	KeepAliveProbes      atomic.Uint64 // keepalive probes sent
	WindowProbes         atomic.Uint64 // zero-window probes sent (RFC 9293 §3.8.6.1)
	// Loss recovery (RFC 8985, RFC 2883, RFC 3522, RFC 5682).
	TLPProbes           atomic.Uint64 // tail loss probes sent (RFC 8985 §7)
	RACKLosses          atomic.Uint64 // segments RACK marked lost by time (RFC 8985 §6.2)
	DSACKsSent          atomic.Uint64 // ACKs sent with a D-SACK block (RFC 2883 §4)
	DSACKsReceived      atomic.Uint64 // D-SACK blocks received (RFC 2883 §4)
	SpuriousRetransmits atomic.Uint64 // retransmissions a D-SACK or timestamp showed needless (RFC 3708)
	SpuriousRTOs        atomic.Uint64 // retransmission timeouts F-RTO found spurious (RFC 5682)
	Undos               atomic.Uint64 // congestion-window reductions undone (RFC 3522, RFC 4015)
	// ICMP errors and path MTU discovery (RFC 1191, RFC 1122 §4.2.3.9,
	// RFC 5927, RFC 4821).
	ICMPIgnored        atomic.Uint64 // ICMP errors ignored: quoted sequence number not in flight, MTU invalid or not lower, state (RFC 5927)
	ICMPSoftErrors     atomic.Uint64 // soft errors recorded (RFC 1122 §4.2.3.9)
	ICMPAborts         atomic.Uint64 // connections in SYN-SENT or SYN-RECEIVED aborted by a hard ICMP error
	PMTUDecreases      atomic.Uint64 // path MTU lowered by fragmentation-needed (RFC 1191)
	PMTUBlackHoles     atomic.Uint64 // MSS lowered after consecutive timeouts of full-sized segments (RFC 4821 §7.7)
	PMTUProbes         atomic.Uint64 // PLPMTUD probe segments sent (RFC 4821 §7.5)
	PMTUProbeSuccesses atomic.Uint64 // probes acknowledged: the path MTU rose (RFC 4821 §7.6.1)
	PMTUProbeFailures  atomic.Uint64 // probes lost (RFC 4821 §7.6.2)
	// The stack-wide out-of-order budget (oobudget.go): segments dropped
	// because holding them would take OutOfOrderBytes over
	// MaxOutOfOrderBytes, and OutOfOrderBytes itself, a level rather than
	// a total: the receive-ring octets out-of-order data pins now.
	DroppedOutOfOrderMemory atomic.Uint64
	OutOfOrderBytes         atomic.Uint64
	// Listeners: the SYN queue, SYN cookies (RFC 4987 §3.6) and floods.
	SYNsReceived          atomic.Uint64 // SYNs that reached a listener (retransmissions included)
	SYNQueueDrops         atomic.Uint64 // SYNs dropped: SYN queue full, no cookies and nothing to evict
	SYNQueueOldestDropped atomic.Uint64 // half-open entries evicted for a newer SYN
	SYNQueueTimeouts      atomic.Uint64 // half-open entries dropped after their last SYN-ACK
	SYNACKRetransmits     atomic.Uint64 // SYN-ACKs sent again, by timer or for a retransmitted SYN
	SYNCookiesSent        atomic.Uint64 // SYN-ACKs carrying a cookie
	SYNCookiesAccepted    atomic.Uint64 // ACKs whose cookie validated: connections created
	SYNCookiesRejected    atomic.Uint64 // ACKs checked as a cookie that failed (stale or forged)
	ResetsRateLimited     atomic.Uint64 // RSTs for stray ACKs at a listener suppressed by InvalidRSTLimit
	// HalfOpen is the number of half-open entries held now by the
	// listeners sharing these Stats; MaxHalfOpen bounds it.
	HalfOpen atomic.Int64
}
