package tcp

import (
	"net/netip"
	"time"
)

// Output is how the core puts segments on the wire.
type Output interface {
	// Buffer returns a buffer buf and an offset off with len(buf) >= off+n.
	// The core writes a segment of n bytes (header with checksum, then
	// payload) at buf[off:off+n] and then calls Send. buf[:off] is headroom
	// for the lower layers' headers.
	Buffer(n int) (buf []byte, off int)
	// Send transmits the segment buf[off:]; buf is the (possibly resliced)
	// buffer from Buffer. The output owns buf again after this call.
	Send(t Tuple, buf []byte, off int)
}

// GSOOutput is an Output that can hand the link a super-segment: a TCP
// segment whose payload the link (the device's TSO, or software GSO just
// before it) cuts into segments of gsoSize payload bytes each, copying
// the header into each and giving each its own sequence number and
// checksum; PSH and FIN belong on the last piece only (Linux's
// tcp_gso_segment, wireguard-go's gsoSplit). buf[off:] is the whole
// super-segment, header included. Its checksum is left partial
// (SetPartialChecksum: the pseudo-header sum, for a virtio_net_hdr with
// NEEDS_CSUM, csum_start at the TCP header and csum_offset 16): a pass
// over 64 KiB that the device or the software GSO, which checksums each
// piece, would only redo. The core sends super-segments only to a
// GSOOutput, and only after Conn.SetGSOMaxSize; everything else,
// complete with its checksum, goes through Send.
type GSOOutput interface {
	Output
	// SendGSO is Send for a super-segment; gsoSize is Conn.SendMSS() at
	// the time of the call.
	SendGSO(t Tuple, buf []byte, off int, gsoSize int)
}

// MaxGSOSize is the largest payload a super-segment can carry: an IPv4
// datagram's 16-bit total length (RFC 791 §3.1) less a 20-byte IPv4 header
// and the largest TCP header (MaxHeaderLen); IPv6's payload length
// (RFC 8200 §3) leaves as much room.
const MaxGSOSize = 0xffff - 20 - MaxHeaderLen

// defaultMSS is the MSS assumed when the peer sends no MSS option:
// RFC 9293 §3.7.1 (MUST-15), 536 for IPv4.
const defaultMSS = 536

// tsOptionLen is the space a Timestamps option takes in every segment once
// negotiated (RFC 7323 §3.2: 10 bytes, padded to 12 with two NOPs).
const tsOptionLen = 12

// Conn is a transmission control block (RFC 9293 §3.3.1): the state of one
// connection. It is not safe for concurrent use; the caller serializes every
// call (the stack holds one mutex per Conn).
type Conn struct {
	cfg   *Config
	stats *Stats
	tuple Tuple

	listener    *Listener
	state       State
	passive     bool // created by a passive OPEN (from LISTEN)
	accepted    bool // promoted onto the listener's accept queue
	established bool // reached ESTABLISHED once
	userClosed  bool // Close or Abort was called: the connection is orphaned
	shutWrite   bool // CLOSE (CloseWrite or Close): a FIN follows the queued data
	// abortPending: the listener was closed before this connection was
	// promoted; the next Tick aborts it.
	abortPending bool
	// resendOnce: SetPathMTU lowered the MTU under data in flight; the
	// first frag-needed about it resends (fragNeeded).
	resendOnce bool
	err        error

	// Send sequence space (RFC 9293 §3.3.1, Figure 4):
	//
	//	     1         2          3          4
	//	----------|----------|----------|----------
	//	       SND.UNA    SND.NXT    SND.UNA
	//	                            +SND.WND
	iss Value
	snd struct {
		UNA, NXT Value
		WND      uint32 // bytes (SEG.WND << Snd.Wind.Shift)
		WL1, WL2 Value
		// MAX is one past the highest sequence number ever sent. SND.NXT
		// goes back to SND.UNA after a retransmission timeout, so ACKs up to
		// MAX stay acceptable.
		MAX    Value
		maxWND uint32 // MAX.SND.WND of RFC 5961 §5
		shift  uint8  // Snd.Wind.Shift (RFC 7323 §2.3)
	}
	// probeEnd is one past a zero-window probe's octet (or SND.MAX): the
	// highest acknowledgment number that is acceptable.
	probeEnd Value
	// Receive sequence space (RFC 9293 §3.3.1, Figure 5).
	irs Value
	rcv struct {
		NXT Value
		// WND is the window last offered: RCV.NXT+RCV.WND is the right edge
		// of the last advertisement. Segments are accepted up to the free
		// space of the receive ring, which is never less.
		WND   uint32
		shift uint8 // Rcv.Wind.Shift (RFC 7323 §2.3)
	}

	sndHead Value // sequence number of the oldest byte in sndBuf
	// oooCharge is what the connection holds of the stack-wide
	// out-of-order budget (oobudget.go).
	oooCharge uint32
	sndBuf    ring
	rcvBuf    ring
	// rx holds the receiver's SACK record, auto-tuning state and
	// out-of-order ranges, allocated with the first data (rxs): idle
	// connections stay small.
	rx *rxState

	finSent       bool  // our FIN has been sent (it sits at finSeq)
	finSeq        Value // sequence number of our FIN
	rcvFin        bool  // the peer's FIN was processed (RCV.NXT is past it)
	rcvFinPending bool  // the peer's FIN arrived beyond a hole
	rcvFinSeq     Value

	mss     uint16 // our MSS, advertised (route MTU - 40, - 60 over IPv6)
	peerMSS uint16 // the peer's MSS option, or defaultMSS
	sndMSS  int    // payload bytes per full-sized segment we send
	rcvMSS  int    // payload bytes of a full-sized segment we receive
	gsoMax  int    // most payload bytes per super-segment (SetGSOMaxSize), 0 for no GSO
	// pathMTU is the path MTU in use, 0 while it is the interface MTU
	// (the MSS we advertised + 40, + 60 over IPv6); sndMSS is derived from it.
	pathMTU int
	pmtu    *pmtuState // the PLPMTUD search, nil until it starts
	softErr uint8      // the last soft error an ICMP message reported (RFC 1122 §4.2.3.9), in softErrors

	wsOK, tsOK, sackOK bool
	wsShift            uint8  // the window scale we offer (initTune)
	tsRecent           uint32 // TS.Recent (RFC 7323 §4.3)
	lastAckSent        Value  // Last.ACK.sent (RFC 7323 §4.3)
	tsOffset           uint32
	tsLast             uint32 // the highest TSval sent
	tsSent             bool

	noDelay     bool
	tuneOff     bool  // no receive-buffer auto-tuning (autotune.go)
	sndFixed    bool  // no send-buffer growth (SetSendBufferSize)
	sndSmallEnd Value // end of the last sub-MSS segment sent (Minshall's Nagle variant)
	ackNow      bool  // an ACK is owed now
	keepAlive   bool  // keepalive probes are on (SetKeepAlive)

	// RFC 6298 state.
	srtt, rttvar, rto time.Duration
	hasRTT            bool
	rttTiming         bool // Karn's rule: one segment is timed when timestamps are off
	rttSeq            Value
	retries           int
	rttStart          time.Time

	// Loss recovery (congestion.go): the congestion controller and what
	// every ACK touches; the retransmission queue, RACK-TLP, PRR and undo
	// live in lossState, allocated when data or a FIN is first sent
	// (lossInit): an idle connection has none.
	*lossState
	cc        CongestionControl // nil until first needed (ctrl)
	ackFlight uint32            // FlightSize before the ACK being processed
	recovery  recoveryState
	frto      frtoState
	lossTimer lossTimerKind // what timer.loss runs
	// rttFromAck: the ACK being processed gave an RTT sample.
	rttFromAck bool

	// Acknowledgment state.
	unackedSegs  int // full-sized segments received since our last ACK
	unackedBytes int

	timer struct {
		// loss is RACK's reordering timer or the tail loss probe
		// (lossTimer says which); ending is the time-wait timer (2·MSL)
		// in TIME-WAIT and the FIN-WAIT-2 timeout of an orphaned
		// connection in FIN-WAIT-2 (the state says which: one slot for
		// two timers that never run together).
		rtx, loss, persist, delack, keepalive, ending time.Time
	}
	persistBackoff uint
	// probes counts zero-window probes sent since the peer last sent an
	// acceptable ACK (RFC 1122 §4.2.2.17).
	probes int

	kaIdle, kaIntvl  time.Duration
	kaCount, kaProbe int
	lastInput        time.Time

	chal *challengeLimit // RFC 5961 §7 rate limiting, from the first challenge ACK

	bytesIn, bytesOut, segsIn, segsOut, retrans uint64
}

// newConn returns a TCB in CLOSED state with its buffers allocated.
func newConn(cfg *Config, t Tuple, iss Value, mss uint16, now time.Time) *Conn {
	c := &Conn{
		cfg:     cfg,
		stats:   cfg.Stats,
		tuple:   t,
		iss:     iss,
		mss:     mss,
		peerMSS: defaultMSS,
		sndBuf:  newRing(cfg.SendBufferSize),
		rcvBuf:  newRing(cfg.ReceiveBufferSize),
		noDelay: cfg.NoDelay,
		rto:     cfg.InitialRTO,
		kaIdle:  cfg.KeepAliveIdle,
		kaIntvl: cfg.KeepAliveInterval,
		kaCount: cfg.KeepAliveCount,
	}
	if c.mss < 64 {
		c.mss = 64
	}
	c.snd.UNA, c.snd.NXT, c.snd.MAX = iss, iss, iss
	// Every sequence-space field starts in our own space, at ISS: zero is
	// not "before" anything in modulo-2^32 arithmetic (RFC 9293 §3.4), and
	// a zero probeEnd would count as after SND.MAX whenever ISS >= 2^31,
	// so that the fifth step's test "If the ACK acknowledges something not
	// yet sent (SEG.ACK > SND.NXT), then send an ACK, drop the segment,
	// and return" (RFC 9293 §3.10.7.4) would let ACKs of data never sent
	// through.
	c.probeEnd = iss
	// Likewise no small segment has been sent yet: sndSmallEnd =< SND.UNA
	// holds from the start, so that Nagle in Minshall's form (only one
	// small segment unacknowledged at a time; RFC 9293 §3.7.4 describes
	// the algorithm) lets the tail of a first write go whatever the ISS.
	c.sndSmallEnd = iss
	c.sndHead = iss.Add(1)
	// The timestamp clock runs in milliseconds from a fixed epoch, the
	// same for every connection, so that successive connections on one
	// 4-tuple send increasing TSvals (RFC 6191 §2, TIME-WAIT reuse); the
	// per-4-tuple offset hides the clock (RFC 7323 §5.4).
	if cfg.TimestampOffset != nil {
		c.tsOffset = cfg.TimestampOffset(t)
	}
	c.lastInput = now
	c.initTune()
	c.sndMSS = c.effectiveMSS()
	c.rcvMSS = int(c.mss)
	return c
}

// Dial performs an active OPEN (RFC 9293 §3.10.1): "A SYN segment of the
// form <SEQ=ISS><CTL=SYN> is sent. Set SND.UNA to ISS, SND.NXT to ISS+1,
// enter SYN-SENT state". mss is the local MSS derived from the route MTU
// (MTU - 40; MTU - 60 over IPv6, RFC 8200 §8.3).
func Dial(cfg *Config, t Tuple, iss Value, mss uint16, now time.Time, out Output) *Conn {
	c := newConn(cfg, t, iss, mss, now)
	if c.stats != nil {
		c.stats.ActiveOpens.Add(1)
	}
	c.state = StateSynSent
	c.sendSYN(now, out)
	return c
}

// ourShift returns the window scale we offer (RFC 7323 §2.3), chosen
// when the connection was created (initTune).
func (c *Conn) ourShift() uint8 { return c.wsShift }

// lossState is what only a connection that sends needs: the
// retransmission queue and the loss-recovery state of RACK-TLP, PRR,
// undo and F-RTO. A Conn gets one with its first data or FIN (lossInit)
// and keeps it: RACK's minimum RTT and reordering window outlive a flight.
type lossState struct {
	q            txQueue
	lastSend     time.Time // when data was last sent (RFC 5681 §4.1)
	dupAcks      int       // duplicate ACKs without SACK (RFC 5681 §3.2)
	recoverPoint Value     // RecoveryPoint (RFC 6675 §2): SND.NXT when recovery began
	renoSACKed   uint32    // bytes the duplicate ACKs stand for, without SACK
	rack         rackState
	tlp          tlpState
	prr          prrState
	undo         undoState
	frtoBudget   uint32 // new data F-RTO step 2.b may still send
	rtoTSval     uint32 // RetransmitTS of RFC 3522: our TSval at the timeout
	// ackTSEcr is the TSecr of the ACK being processed (zero for none),
	// for RACK's Step 2.
	ackTSEcr uint32
}

// lossInit gives c its lossState if it has none yet.
func (c *Conn) lossInit() {
	if c.lossState != nil {
		return
	}
	c.lossState = &lossState{
		// RFC 6582 §3.2 step 1: "recover" is initialized to the ISS;
		// sequence-space fields start at ISS (see probeEnd in newConn).
		recoverPoint: c.iss,
		rack:         rackState{fack: c.iss},
	}
}

// lostBytes is the bytes deemed lost and not yet retransmitted.
func (c *Conn) lostBytes() uint32 {
	if c.lossState == nil {
		return 0
	}
	return c.q.lost
}

// rxState is what only a connection that receives data needs: the SACK
// blocks to report (dsack.go) and receive-buffer auto-tuning
// (autotune.go).
type rxState struct {
	sack sackRecord
	tune rcvTune
	ooo  rangeSet // out-of-order data held in rcvBuf beyond RCV.NXT
}

// ooo returns the ranges of out-of-order data held in rcvBuf beyond
// RCV.NXT: nil, an empty set, before the first data (rxs).
func (c *Conn) ooo() *rangeSet {
	if c.rx == nil {
		return nil
	}
	return &c.rx.ooo
}

// negotiate records the options of the peer's SYN (RFC 9293 §3.7.1 MSS,
// RFC 7323 §2.2 and §3.2, RFC 2018 §2).
func (c *Conn) negotiate(o *Options) {
	c.peerMSS = defaultMSS
	if o.MSS != 0 {
		c.peerMSS = o.MSS
	}
	// RFC 7323 §2.2: window scaling is in effect only if both sides sent
	// the option on their SYNs. An active opener has sent it already if
	// configured; a passive one replies with it only in that case.
	if c.cfg.WindowScale && o.WindowScale >= 0 {
		c.wsOK = true
		c.snd.shift = uint8(o.WindowScale)
		c.rcv.shift = c.ourShift()
	} else {
		c.wsOK, c.snd.shift, c.rcv.shift = false, 0, 0
	}
	// RFC 7323 §3.2: timestamps are used only if both SYNs carry them.
	c.tsOK = c.cfg.Timestamps && o.Timestamp
	if c.tsOK {
		c.tsRecent = o.TSVal
	}
	c.sackOK = c.cfg.SACKPermitted && o.SACKPermitted
	c.sndMSS = c.effectiveMSS()
	// The size of a full-sized segment from the peer (RFC 5681 §4.2): the
	// smaller MSS, less option space, raised later to the largest segment
	// seen.
	c.rcvMSS = c.sndMSS
	if c.cc != nil { // chosen before the handshake: restart it with this MSS
		c.cc.Init(c.lastInput, c.sndMSS, initialWindow(c.sndMSS), MaxCongestionWindow)
	}
}

// ctrl returns the congestion controller, creating it on first use: a
// connection that never sends data never allocates one. It starts with
// the initial window (RFC 6928) and, RFC 5681 §3.1, "The initial value of
// ssthresh SHOULD be set arbitrarily high".
func (c *Conn) ctrl() CongestionControl {
	if c.cc == nil {
		cc, err := NewCongestionControl(c.cfg.CongestionControl)
		if err != nil {
			cc = new(Reno)
		}
		cc.Init(c.lastInput, c.sndMSS, initialWindow(c.sndMSS), MaxCongestionWindow)
		c.cc = cc
	}
	return c.cc
}

// effectiveMSS is the payload of a full-sized segment we send: the lesser
// of the peer's MSS and ours, less the options every segment carries
// (RFC 9293 §3.7.1, RFC 6691 §2).
func (c *Conn) effectiveMSS() int {
	m := c.pathMSS(int(min(c.peerMSS, c.mss)))
	if c.tsOK {
		m -= tsOptionLen
	}
	return max(m, 32)
}

// tsEpoch is the origin of every connection's timestamp clock.
var tsEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// tsNow is our TSval clock: milliseconds since tsEpoch plus the 4-tuple's
// offset (RFC 7323 §5.4). It never goes back: PAWS at the peer assumes the
// TSvals of a connection are monotonically non-decreasing (RFC 7323 §5.2)
// and drops a segment whose TSval is below TS.Recent, while the caller's
// now may be taken before it serializes on the connection, so that a
// later call can carry an earlier now.
func (c *Conn) tsNow(now time.Time) uint32 {
	v := uint32(now.Sub(tsEpoch)/time.Millisecond) + c.tsOffset
	if c.tsSent && int32(v-c.tsLast) < 0 {
		return c.tsLast
	}
	c.tsLast, c.tsSent = v, true
	return v
}

// tsAt is the TSval our clock showed at t (tsNow without its
// monotonicity guard): RACK compares it with an echoed TSecr.
func (c *Conn) tsAt(t time.Time) uint32 {
	return uint32(t.Sub(tsEpoch)/time.Millisecond) + c.tsOffset
}

// setState moves to s, doing the bookkeeping every transition needs.
func (c *Conn) setState(now time.Time, s State) {
	if c.state == s {
		return
	}
	c.state = s
	switch s {
	case StateCloseWait, StateClosing, StateLastAck, StateTimeWait, StateClosed:
		// No text is processed from here on (RFC 9293 §3.10.7.4, seventh
		// step): out-of-order data can never be delivered.
		c.oooRelease()
	}
	switch s {
	case StateClosed:
		c.timer.rtx, c.timer.persist, c.timer.delack, c.timer.loss = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		c.lossTimer = noLossTimer
		c.timer.keepalive, c.timer.ending = time.Time{}, time.Time{}
		c.ackNow = false
	case StateTimeWait:
		// RFC 9293 §3.10.7.4, eighth step: "Start the time-wait timer,
		// turn off the other timers."
		c.timer.rtx, c.timer.persist, c.timer.keepalive, c.timer.loss = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		c.timer.ending = now.Add(2 * c.cfg.MSL)
	case StateFinWait2:
		if c.userClosed {
			c.timer.ending = now.Add(c.cfg.FinWait2Timeout)
		}
	}
}

// fail ends the connection with err (nil for an ending the user need not
// hear about) and flushes its queues.
func (c *Conn) fail(now time.Time, err error) {
	if c.err == nil {
		c.err = err
	}
	c.sndBuf.Discard(c.sndBuf.Len())
	c.sndBuf.release()
	if err != nil {
		c.rcvBuf.Discard(c.rcvBuf.Len())
	}
	c.ooo().Reset()
	c.rcvBuf.release()
	if c.lossState != nil {
		c.q.reset()
	}
	c.setState(now, StateClosed)
}

// State returns the connection state.
func (c *Conn) State() State { return c.state }

// Tuple returns the connection's 4-tuple.
func (c *Conn) Tuple() Tuple { return c.tuple }

// Listener returns the listener that created c, or nil for an active open.
func (c *Conn) Listener() *Listener { return c.listener }

// Accepted reports whether c was moved onto its listener's accept queue.
func (c *Conn) Accepted() bool { return c.accepted }

// Established reports whether the handshake completed at some point.
func (c *Conn) Established() bool { return c.established }

// Err returns the error that ended the connection (ErrConnectionRefused,
// ErrConnectionReset, ErrTimeout, ErrConnectionAborted), or nil.
func (c *Conn) Err() error { return c.err }

// Done reports whether the connection is CLOSED: the stack may delete it.
func (c *Conn) Done() bool { return c.state == StateClosed }

// SetNoDelay turns the Nagle algorithm off (true) or on (false)
// (RFC 9293 §3.7.4, RFC 1122 §4.2.3.4).
func (c *Conn) SetNoDelay(noDelay bool) { c.noDelay = noDelay }

// SetGSOMaxSize lets the connection send super-segments of up to n
// payload bytes (generic segmentation offload, TSO on a device): where it
// would send several consecutive full-sized segments at once, as the
// congestion and send windows, the send buffer and the Nagle algorithm
// allow a run of segments, it sends them as one segment of k·SendMSS
// bytes (and a last, shorter piece when that one would go too), which the
// link cuts into segments of SendMSS bytes. Loss recovery keeps to the
// segments: SACK blocks split a super-segment's record on the
// retransmission queue, so that RACK and the RFC 6675 scoreboard see each
// piece with the instant it was sent, and a retransmission is never
// larger than the hole it repairs. Segment counters count the pieces.
//
// n is capped at MaxGSOSize; n below two SendMSS (0 or negative
// included: nothing to join) turns GSO off, and so does an Output that is
// not a GSOOutput: every segment then goes as it does without this call.
// The limit follows SendMSS when the path MTU changes.
func (c *Conn) SetGSOMaxSize(n int) {
	c.gsoMax = max(0, min(n, MaxGSOSize))
}

// SendMSS returns the effective send MSS: the payload of a full-sized
// segment as sent now, after the peer's MSS option, the path MTU and the
// options every segment carries (RFC 9293 §3.7.1, RFC 6691 §2). It is the
// gso_size of super-segments (GSOOutput).
func (c *Conn) SendMSS() int { return c.sndMSS }

// gsoLimit is the most payload one segment sent through out may carry:
// SendMSS, or with GSO on and out a GSOOutput the largest multiple of
// SendMSS within the GSO maximum.
func (c *Conn) gsoLimit(out Output) int {
	if c.gsoMax < 2*c.sndMSS {
		return c.sndMSS
	}
	if _, ok := out.(GSOOutput); !ok {
		return c.sndMSS
	}
	return min(c.gsoMax, c.tsoAutosize()) / c.sndMSS * c.sndMSS
}

// tsoAutosize is the most a super-segment carries on this path:
// Config.TSOBurst of the connection's rate, as Linux's tcp_tso_autosize
// sizes its TSO bursts (tcp_pacing_ss_ratio 200%, tcp_pacing_ca_ratio
// 120%), and at least two SendMSS.
func (c *Conn) tsoAutosize() int {
	burst := c.cfg.TSOBurst
	if burst == 0 {
		burst = time.Millisecond
	}
	if burst < 0 || !c.hasRTT || c.srtt <= burst {
		return MaxGSOSize
	}
	rate := uint64(c.cwnd()) * 12 / 10
	if c.cwnd() < c.ctrl().SlowStartThreshold() {
		rate = uint64(c.cwnd()) * 2
	}
	goal := rate * uint64(burst) / uint64(c.srtt)
	return int(max(goal, 2*uint64(c.sndMSS)))
}

// SetCongestionControl switches the connection's congestion controller
// (CongestionCubic or CongestionReno) at any time; the new one starts
// from the current window and threshold, as Linux's TCP_CONGESTION does.
func (c *Conn) SetCongestionControl(name string) error {
	cc, err := NewCongestionControl(name)
	if err != nil {
		return err
	}
	old := c.ctrl()
	if cc.Name() == old.Name() {
		return nil
	}
	cc.Init(c.lastInput, c.sndMSS, old.Window(), old.SlowStartThreshold())
	c.cc = cc
	return nil
}

// CongestionControl returns the name of the connection's congestion
// controller.
func (c *Conn) CongestionControl() string { return c.ctrl().Name() }

// SetKeepAlive turns keepalive probes on or off (RFC 1122 §4.2.3.6).
func (c *Conn) SetKeepAlive(enabled bool) {
	c.keepAlive = enabled
	c.timer.keepalive = time.Time{}
	c.kaProbe = 0
	if enabled && (c.state == StateEstablished || c.state == StateCloseWait) {
		c.timer.keepalive = c.lastInput.Add(c.kaIdle)
	}
}

// SetKeepAliveParams sets the idle time before the first probe, the
// interval between probes and the number of unanswered probes after which
// the connection fails with ErrTimeout. Zero or negative values keep the
// current setting.
func (c *Conn) SetKeepAliveParams(idle, interval time.Duration, count int) {
	if idle > 0 {
		c.kaIdle = idle
	}
	if interval > 0 {
		c.kaIntvl = interval
	}
	if count > 0 {
		c.kaCount = count
	}
	if c.keepAlive {
		c.SetKeepAlive(true)
	}
}

// AcceptsSYN reports whether c is in TIME-WAIT and seg is a new SYN that
// may reopen the 4-tuple (RFC 9293 §3.10.7.4 fourth step on TIME-WAIT and
// RFC 6191 §2: with timestamps, when SEG.TSval is newer than TS.Recent;
// without, when SEG.SEQ is beyond RCV.NXT). The stack then deletes c and
// hands seg to the listener.
func (c *Conn) AcceptsSYN(seg Segment) bool {
	if c.state != StateTimeWait || len(seg) < HeaderLen {
		return false
	}
	f := seg.Flags()
	if !f.Has(FlagSYN) || f&(FlagACK|FlagRST) != 0 {
		return false
	}
	var o Options
	seg.Options(&o)
	if c.tsOK && o.Timestamp {
		return int32(o.TSVal-c.tsRecent) > 0
	}
	return seg.Seq().GreaterThan(c.rcv.NXT)
}

// Info is a snapshot of a connection's state and counters.
type Info struct {
	Tuple                                Tuple
	State                                State
	BytesIn, BytesOut                    uint64 // payload bytes received in order / acknowledged by the peer
	SegmentsIn, SegmentsOut              uint64
	Retransmits                          uint64
	SRTT, RTTVar, RTO                    time.Duration
	CongestionWindow, SlowStartThreshold uint32 // bytes
	SendWindow, ReceiveWindow            uint32
	MSS                                  uint16
	// CongestionControl names the controller ("cubic", "reno").
	CongestionControl string
	// Recovery is the loss-recovery state: "open", "recovery" (fast
	// recovery) or "loss" (after a timeout).
	Recovery string
	// MinRTT is RACK's minimum RTT (RFC 8985 §6.1); ReorderingWindow its
	// current RACK.reo_wnd.
	MinRTT, ReorderingWindow time.Duration
	// ReceiveBufferSize is the size of the receive buffer: the configured
	// size or what auto-tuning grew it to.
	ReceiveBufferSize int
	// ReceiveRTT is the receiver's round-trip estimate that auto-tuning
	// uses (zero before the first sample or without auto-tuning).
	ReceiveRTT time.Duration
	// PathMTU is the path MTU the connection sends with (RFC 1191,
	// RFC 4821): the interface MTU unless ICMP or probing lowered it.
	PathMTU int
	// SoftError is the last soft error an ICMP message reported
	// (ErrHostUnreachable, ErrNetUnreachable, ...; RFC 1122 §4.2.3.9),
	// nil when none or when an ACK of new data has arrived since.
	SoftError error
	// SendWindowShift and ReceiveWindowShift are the window scales in
	// use (RFC 7323 §2), -1 without window scaling; SACK and Timestamps
	// say whether those options were negotiated (RFC 2018, RFC 7323).
	SendWindowShift, ReceiveWindowShift int8
	SACK, Timestamps                    bool
}

// Info returns a snapshot of the connection's state and counters.
func (c *Conn) Info() Info {
	info := Info{
		Tuple: c.tuple, State: c.state,
		BytesIn: c.bytesIn, BytesOut: c.bytesOut,
		SegmentsIn: c.segsIn, SegmentsOut: c.segsOut,
		Retransmits: c.retrans,
		SRTT:        c.srtt, RTTVar: c.rttvar, RTO: c.rto,
		CongestionWindow: c.cwnd(), SlowStartThreshold: c.ctrl().SlowStartThreshold(),
		SendWindow: c.snd.WND, ReceiveWindow: c.rcv.WND,
		MSS:               uint16(c.sndMSS),
		CongestionControl: c.ctrl().Name(),
		Recovery:          [...]string{"open", "recovery", "loss"}[c.recovery],
		ReceiveBufferSize: c.rcvBuf.Cap(),
		PathMTU:           c.PathMTU(), SoftError: softErrors[c.softErr],
	}
	if c.lossState != nil {
		info.MinRTT, info.ReorderingWindow = c.rack.minRTT, c.rackReoWnd()
	}
	if c.rx != nil {
		info.ReceiveRTT = c.rx.tune.rtt
	}
	info.SendWindowShift, info.ReceiveWindowShift = -1, -1
	if c.wsOK {
		info.SendWindowShift, info.ReceiveWindowShift = int8(c.snd.shift), int8(c.rcv.shift)
	}
	info.SACK, info.Timestamps = c.sackOK, c.tsOK
	return info
}

// local and remote addresses for checksums.
func (c *Conn) addrs() (netip.Addr, netip.Addr) { return c.tuple.Local.Addr(), c.tuple.Remote.Addr() }
