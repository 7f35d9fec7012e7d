package tcp

import "time"

// Path MTU discovery: from ICMP fragmentation-needed messages (RFC 1191)
// and, where ICMP is filtered, by packetization-layer probing (RFC 4821,
// which RFC 8899 §1 keeps as the method for TCP): black-hole detection
// after repeated timeouts and a search upwards with probe segments.

// MTUProbing selects packetization-layer path MTU discovery (RFC 4821).
type MTUProbing uint8

// Values of Config.MTUProbing, those of Linux's net.ipv4.tcp_mtu_probing.
const (
	// MTUProbingOff relies on ICMP alone (RFC 1191); Linux's 0.
	MTUProbingOff MTUProbing = iota
	// MTUProbingBlackHole starts probing when a black hole is detected:
	// consecutive timeouts of full-sized segments lower the MSS to
	// Config.MTUProbeBaseMSS, then probes search upwards; Linux's 1.
	MTUProbingBlackHole
	// MTUProbingAlways probes from the start of every connection, from
	// the interface MTU down to the base; Linux's 2.
	MTUProbingAlways
)

// ipv4TCPHeaderLen is the IPv4 and TCP headers without options that an
// MTU holds besides the payload: RFC 1191 §3.1, "The TCP MSS is defined to
// be the relevant IP datagram size minus 40" (RFC 879).
const ipv4TCPHeaderLen = 40

// ipv6TCPHeaderLen is the same for IPv6: RFC 8200 §8.3, "When using TCP
// over IPv6, the MSS must be computed as the maximum packet size minus 60
// octets, because the minimum-length IPv6 header (i.e., an IPv6 header
// with no extension headers) is 20 octets longer than a minimum-length
// IPv4 header."
const ipv6TCPHeaderLen = 60

// minIPv6MTU is the IPv6 minimum link MTU (RFC 8200 §5). RFC 8201 §4: "If
// a node receives a Packet Too Big message reporting a next-hop MTU that
// is less than the IPv6 minimum link MTU, it must discard it. A node must
// not reduce its estimate of the Path MTU below the IPv6 minimum link MTU
// on receipt of a Packet Too Big message."
const minIPv6MTU = 1280

// minIPv4MTU is RFC 791's minimum: "Every internet module must be able to
// forward a datagram of 68 octets without further fragmentation." A
// Next-Hop MTU below it is invalid: RFC 1191 §4, "This field will never
// contain a value less than 68", and §3, "A host MUST never reduce its
// estimate of the Path MTU below 68 octets".
const minIPv4MTU = 68

// pmtuFloor is the lowest path MTU ustack uses: 576, the datagram every
// host must accept (RFC 791; RFC 1122 §3.3.3 EMTU_R), whose MSS is TCP's
// default of 536 (RFC 9293 §3.7.1). A smaller Next-Hop MTU (from 68 up) is
// raised to it: RFC 5927 §7 describes forged frag-needed messages that
// shrink the MTU as a performance-degrading attack, and Linux likewise
// clamps to its min_pmtu (552).
const pmtuFloor = 576

// blackHoleTimeouts is the number of consecutive retransmission timeouts
// of a full-sized segment after which the path is taken for a black hole
// (RFC 4821 §7.7, RFC 8899 §4.3): Linux's tcp_retries1 of 3, after which
// its tcp_write_timeout calls tcp_mtu_probing.
const blackHoleTimeouts = 3

// probeThreshold ends the search when the range left is smaller (Linux's
// tcp_probe_threshold, 8 octets; RFC 4821 §7.3 leaves the choice open).
const probeThreshold = 8

// pmtuRaiseInterval is how long a finished search rests before it probes
// upwards again: RFC 8899 §5.1.1 PMTU_RAISE_TIMER, 600 s, and Linux's
// tcp_probe_interval. RFC 1191 §3: an attempt to detect an increase "MUST
// NOT be done less than 5 minutes after a Datagram Too Big message has
// been received ... We recommend setting these timers at twice their
// minimum values (10 minutes ...)".
const pmtuRaiseInterval = 10 * time.Minute

// defaultProbeBaseMSS is the MSS a black hole lowers to when
// Config.MTUProbeBaseMSS is unset: Linux's tcp_base_mss, after RFC 4821
// §7.2 ("search_low ... 1024 bytes" is likely to work nearly everywhere).
const defaultProbeBaseMSS = 1024

// pmtuState is a connection's PLPMTUD search, allocated when it starts
// (startProbing); the path MTU itself is Conn.pathMTU.
type pmtuState struct {
	// probing: the RFC 4821 search is on; low is the largest size known
	// to work (search_low) and high the largest worth trying
	// (search_high, §7.1).
	probing   bool
	low, high int
	// probeSize is the MTU of the probe in flight (0: none), which covers
	// [probeSeq, probeEnd).
	probeSize          int
	probeSeq, probeEnd Value
	// lastAck is the latest acknowledgment number seen while the probe
	// is in flight: an ACK that repeats it is a duplicate.
	lastAck Value
	// raiseAt: no probe before this time (after the search finished).
	raiseAt time.Time
	// repair: a probe was lost; no new probe until SND.UNA reaches
	// repairEnd, the end of its data.
	repair    bool
	repairEnd Value
}

// is6 reports whether the connection's packets are IPv6 (an IPv4-mapped
// address travels as IPv4, as the checksum's pseudo-header does).
func (c *Conn) is6() bool { return !c.tuple.Remote.Addr().Unmap().Is4() }

// ipTCPHeaderLen is what an MTU holds besides the payload: the IP and TCP
// headers without options, 40 octets over IPv4 and 60 over IPv6.
func (c *Conn) ipTCPHeaderLen() int {
	if c.is6() {
		return ipv6TCPHeaderLen
	}
	return ipv4TCPHeaderLen
}

// minPathMTU is the lowest path MTU the connection uses: pmtuFloor over
// IPv4, the minimum link MTU over IPv6 (RFC 8201 §4).
func (c *Conn) minPathMTU() int {
	if c.is6() {
		return minIPv6MTU
	}
	return pmtuFloor
}

// interfaceMTU is the largest MTU the connection may send: our MSS (from
// the route's MTU) plus the headers.
func (c *Conn) interfaceMTU() int { return int(c.mss) + c.ipTCPHeaderLen() }

// PathMTU returns the path MTU the connection sends with: the interface
// MTU until ICMP or probing lowered it.
func (c *Conn) PathMTU() int {
	if c.pathMTU > 0 {
		return c.pathMTU
	}
	return c.interfaceMTU()
}

// SetPathMTU lowers the path MTU to mtu: a stack calls it for a new
// connection to a destination whose lowered path MTU it remembers, and for
// the other connections to a destination when one of them learned a lower
// path MTU (RFC 1191 §6.2: "Any packetization layer instance (for example,
// a TCP connection) that is actively using the path must be notified if
// the PMTU estimate is decreased"). Values outside [576, PathMTU()) are
// ignored. Nothing is resent: "the notification of the packetization
// layer instances using the path about the change in the PMTU is distinct
// from the notification of a specific instance that a packet has been
// dropped" (§6.2); the frag-needed message about a segment of this
// connection sent at the old size will then resend (fragNeeded).
func (c *Conn) SetPathMTU(mtu int) {
	if mtu < c.minPathMTU() || mtu >= c.PathMTU() {
		return
	}
	c.pathMTU = mtu
	if p := c.pmtu; p != nil && p.probing {
		p.low, p.high = min(p.low, mtu), min(p.high, mtu)
	}
	old := c.sndMSS
	c.sndMSS = c.effectiveMSS()
	// Data in flight went at the old size: its own message (with an MTU
	// no longer lower) is still to come and must resend it once.
	c.resendOnce = c.sndMSS < old && c.snd.UNA != c.snd.MAX
}

// pathMSS caps m, an MSS from the options, by the path MTU.
func (c *Conn) pathMSS(m int) int {
	if c.pathMTU > 0 {
		m = min(m, c.pathMTU-c.ipTCPHeaderLen())
	}
	return m
}

// nextHopMTU returns the path MTU a too-big message names, and false for
// a message to ignore. Over IPv6 it is a Packet Too Big message, whose MTU
// field is always set (RFC 4443 §3.2) and below the minimum link MTU is
// discarded (RFC 8201 §4); over IPv4 a fragmentation-needed message.
func (c *Conn) nextHopMTU(e ICMPError) (int, bool) {
	if c.is6() {
		if e.MTU < minIPv6MTU {
			return 0, false
		}
		return e.MTU, true
	}
	mtu := e.MTU
	if mtu == 0 {
		// RFC 1191 §5, for routers derived from 4.2BSD that return the
		// Total Length plus the header length: "If the Total Length
		// field returned is not less than the current PMTU estimate, it
		// must be reduced by 4 times the value of the returned Header
		// Length field" (ustack sends no IP options: 20 octets).
		total := e.QuotedLength
		if total >= c.PathMTU() {
			total -= 20
		}
		mtu = plateauBelow(total)
	}
	if mtu < minIPv4MTU {
		return 0, false
	}
	return max(mtu, pmtuFloor), true
}

// plateaus is RFC 1191 §7's table of likely path MTUs (Table 7-1's
// plateau column), highest first.
var plateaus = [...]int{65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68}

// plateauBelow is RFC 1191 §5 for a router that sends a zero Next-Hop
// MTU: "use as the next PMTU estimate the greatest plateau value that is
// less than the returned Total Length field". It returns 0 when none is.
func plateauBelow(total int) int {
	for _, p := range plateaus {
		if p < total {
			return p
		}
	}
	return 0
}

// fragNeeded acts on a fragmentation-needed message whose quoted sequence
// number HandleICMP found in flight (RFC 1191 §3, §6.4). It reports
// whether the path MTU was lowered (or the dropped data resent at a path
// MTU SetPathMTU had lowered).
func (c *Conn) fragNeeded(now time.Time, e ICMPError, out Output) bool {
	mtu, ok := c.nextHopMTU(e)
	if !ok {
		return false
	}
	if c.inProbe(e.Seq) {
		// The probe was too big (RFC 4821 §7.6.2: a failed probe lowers
		// search_high); the router names the size that fits.
		c.probeFailed(now)
		c.pmtu.high = min(c.pmtu.high, mtu)
	}
	if mtu >= c.PathMTU() {
		// RFC 1191 §3: "A host MUST not increase its estimate of the
		// Path MTU in response to the contents of a Datagram Too Big
		// message", and §6.4: "One MUST not retransmit in response to
		// every Datagram Too Big message ... the TCP layer must be able
		// to recognize when a Datagram Too Big notification actually
		// decreases the PMTU that it has already used to send a datagram
		// on the given connection, and should ignore any other
		// notifications". The exception is the first message after
		// SetPathMTU lowered the estimate under data sent at the old
		// size.
		if c.resendOnce && mtu == c.PathMTU() && e.QuotedLength > mtu {
			c.resendOnce = false
			c.simpleRetransmit()
			return true
		}
		return false
	}
	// RFC 1191 §3: "When a host receives a Datagram Too Big message, it
	// MUST reduce its estimate of the PMTU for the relevant path, based
	// on the value of the Next-Hop MTU field".
	c.pathMTU = mtu
	c.resendOnce = false
	if p := c.pmtu; p != nil && p.probing {
		p.low, p.high = min(p.low, mtu), min(p.high, mtu)
	}
	old := c.sndMSS
	c.sndMSS = c.effectiveMSS()
	if c.sndMSS >= old || c.state == StateSynSent || c.state == StateSynReceived {
		return true
	}
	// RFC 1191 §6.4: "the retransmission could be done in immediate
	// response to a notification that the Path MTU has changed, but only
	// for the specific connection specified by the Datagram Too Big
	// message", and "a retransmission caused by a Datagram Too Big message
	// should not change the congestion window": cwnd and ssthresh stay.
	// Every segment in flight was sent at the old size and dropped, so
	// all of it goes again, as FreeBSD's tcp_mtudisc and Linux's
	// tcp_simple_retransmit do (rather than one segment until ACKs
	// arrive, the slow start §6.4 also suggests).
	c.simpleRetransmit()
	return true
}

// simpleRetransmit sends everything in flight again (in segments of the
// new MSS, as the windows allow when flush runs) without a congestion
// response: every segment not SACKed is marked lost, and the connection
// repairs them in the timeout-recovery state with its window unchanged,
// so that the duplicate ACKs the dropped segments cause start no fast
// recovery (RFC 6582 §3.2 step 2: "If the Cumulative Acknowledgment field
// didn't cover more than recover, there's no fast retransmit"; Linux's
// tcp_simple_retransmit enters its Loss state the same way).
func (c *Conn) simpleRetransmit() {
	c.markLostQuietly(c.snd.UNA, c.snd.NXT)
	c.rttTiming = false // Karn's rule (RFC 6298 §3)
}

// markLostQuietly marks the records of [start, end) lost, not as a
// congestion signal: the path MTU, not the network's load, dropped them.
// Outside recovery the connection enters the timeout-recovery state until
// what is outstanding now is acknowledged, without touching the
// controller, so that RACK and duplicate ACKs start no fast recovery for
// them.
func (c *Conn) markLostQuietly(start, end Value) {
	c.lossInit()
	for i := 0; i < c.q.n(); i++ {
		rec := c.q.at(i)
		if rec.end.LessThanEq(start) || rec.has(txSACKed) {
			continue
		}
		if !rec.start.LessThan(end) {
			break
		}
		c.q.mark(rec, txLost, txTLP)
	}
	if c.recovery == recoveryOpen {
		c.recovery = recoveryLoss
		c.recoverPoint = c.snd.NXT
		c.undo.active = false
		c.frto = frtoOff
		c.dupAcks, c.renoSACKed = 0, 0
	}
}

// baseMTU is the MTU a black hole lowers to (RFC 4821 §7.2 search_low).
func (c *Conn) baseMTU() int {
	m := c.cfg.MTUProbeBaseMSS
	if m <= 0 {
		m = defaultProbeBaseMSS
	}
	return max(m+c.ipTCPHeaderLen(), c.minPathMTU())
}

// startProbing turns the RFC 4821 search on between the base and the
// interface MTU.
func (c *Conn) startProbing(now time.Time) {
	if c.pmtu == nil {
		c.pmtu = new(pmtuState)
	}
	p := c.pmtu
	p.probing = true
	p.low = min(c.baseMTU(), c.PathMTU())
	p.high = c.PathMTU()
	p.raiseAt = now
	if c.cfg.MTUProbing == MTUProbingAlways && p.low < p.high {
		// Linux's tcp_mtu_probing=2: start at search_low, probe up.
		c.pathMTU = p.low
		c.sndMSS = c.effectiveMSS()
	}
}

// pmtuOnTimeout runs when the retransmission timer expires in a
// synchronized state, before the retransmission. A probe in flight is
// lost (RFC 4821 §7.6.2). After blackHoleTimeouts consecutive timeouts
// of a full-sized segment the path is a black hole (RFC 4821 §7.7: "a
// full-stop timeout ... a sign that the path MTU has been reduced";
// RFC 8899 §4.3): the MSS falls to the base and the search starts.
func (c *Conn) pmtuOnTimeout(now time.Time) {
	if p := c.pmtu; p != nil && p.probeSize != 0 {
		p.high = min(p.high, p.probeSize-1)
		p.probeSize = 0
		p.repair, p.repairEnd = true, p.probeEnd // RFC 4821 §7.4, as in probeFailed
		if c.stats != nil {
			c.stats.PMTUProbeFailures.Add(1)
		}
	}
	if c.cfg.MTUProbing == MTUProbingOff || c.retries < blackHoleTimeouts {
		return
	}
	dataEnd := c.sndHead.Add(uint32(c.sndBuf.Len()))
	if !c.snd.UNA.LessThan(dataEnd) || dataEnd.Sub(c.snd.UNA) < uint32(c.sndMSS) {
		return // the segment timing out is not full-sized
	}
	base := c.baseMTU()
	if c.PathMTU() <= base {
		return
	}
	high := c.PathMTU()
	c.startProbing(now)
	p := c.pmtu
	p.low, p.high = base, high
	c.pathMTU = base
	c.sndMSS = c.effectiveMSS()
	if c.stats != nil {
		c.stats.PMTUBlackHoles.Add(1)
	}
}

// maybeProbe sends a probe segment when the search is on and the
// connection can afford one (RFC 4821 §7.4, "Before sending a probe, the
// flow MUST meet at least the following conditions: It has no outstanding
// probes or losses. If the last probe failed or was inconclusive, then the
// probe timeout has expired ... The available window is greater than the
// probe size. For a protocol using in-band data for probing, enough data
// is available to send the probe."): new data of probe size (RFC 4821
// §7.3: halfway between search_low and search_high, a binary search as
// Linux's). The windows stay in bytes when the MSS changes (RFC 4821
// §7.6.1: the congestion state is rescaled "so as not to raise the window
// size in bytes").
func (c *Conn) maybeProbe(now time.Time, out Output) {
	if c.cfg.MTUProbing == MTUProbingAlways && (c.pmtu == nil || !c.pmtu.probing) && c.state == StateEstablished {
		c.startProbing(now)
	}
	p := c.pmtu
	if p == nil || !p.probing || p.probeSize != 0 || now.Before(p.raiseAt) || c.state != StateEstablished {
		return
	}
	if p.high-p.low < probeThreshold {
		// The search is done; RFC 4821 §7.7 and RFC 8899 §5.1.1 try
		// again for a larger MTU after PMTU_RAISE_TIMER.
		p.raiseAt = now.Add(pmtuRaiseInterval)
		p.high = c.interfaceMTU()
		return
	}
	if p.repair {
		if c.snd.UNA.LessThan(p.repairEnd) {
			return
		}
		p.repair = false
	}
	if c.recovery != recoveryOpen || (c.lossState != nil && (c.dupAcks > 0 || c.q.sacked > 0 || c.q.lost > 0)) {
		return
	}
	size := (p.low + p.high + 1) / 2
	if p.high-p.low <= 2*probeThreshold && p.high == c.interfaceMTU() {
		size = p.high // close to the top, which is likely the MTU: try it
	}
	n := c.pathMSSFor(size)
	if n <= c.sndMSS {
		return
	}
	dataEnd := c.sndHead.Add(uint32(c.sndBuf.Len()))
	if !c.snd.NXT.LessThan(dataEnd) {
		return
	}
	avail := dataEnd.Sub(c.snd.NXT)
	flight := c.snd.NXT.Sub(c.snd.UNA)
	if avail < uint32(n) || (c.shutWrite && avail == uint32(n)) ||
		c.snd.WND < flight+uint32(n) || c.ctrl().Window() < flight+uint32(n) {
		return
	}
	seq := c.snd.NXT
	// The probe is in flight from here on: sendSegment sends it as the
	// one segment it is, never cut by GSO.
	p.probeSize, p.probeSeq, p.probeEnd = size, seq, seq.Add(uint32(n))
	c.sendNew(now, out, n, false)
	p.lastAck = c.snd.UNA
	if c.stats != nil {
		c.stats.PMTUProbes.Add(1)
	}
}

// inProbe reports whether seq lies in the probe in flight. Loss detection
// that finds such a segment lost calls probeFailed instead of reacting to
// congestion (RFC 4821 §7.5, §7.6.2).
func (c *Conn) inProbe(seq Value) bool {
	p := c.pmtu
	return p != nil && p.probeSize != 0 && p.probeSeq.LessThanEq(seq) && seq.LessThan(p.probeEnd)
}

// pathMSSFor is the payload of a segment of MTU mtu.
func (c *Conn) pathMSSFor(mtu int) int {
	n := min(mtu-c.ipTCPHeaderLen(), int(c.peerMSS))
	if c.tsOK {
		n -= tsOptionLen
	}
	return n
}

// checkProbe looks at an ACK for the fate of the probe in flight
// (RFC 4821 §7.6). Acknowledged: success, the MTU rises to its size
// (§7.6.1). The probe's data still missing while data sent after it
// arrived (a duplicate ACK at the probe, or a SACK block above it): lost,
// a failure (§7.6.2).
func (c *Conn) checkProbe(now time.Time, seg *inSeg, out Output) {
	p := c.pmtu
	if p == nil || p.probeSize == 0 {
		return
	}
	if c.snd.UNA.GreaterThanEq(p.probeEnd) {
		p.low = p.probeSize
		c.pathMTU = p.probeSize
		p.probeSize = 0
		c.sndMSS = c.effectiveMSS()
		if c.stats != nil {
			c.stats.PMTUProbeSuccesses.Add(1)
		}
		return
	}
	if !seg.has(FlagACK) {
		return
	}
	dup := seg.ACK == p.lastAck && len(seg.payload) == 0
	p.lastAck = seg.ACK
	if !dup || c.snd.UNA != p.probeSeq || seg.ACK != p.probeSeq || !c.snd.MAX.GreaterThan(p.probeEnd) {
		return
	}
	above := seg.opts.NumSACK == 0 // a plain duplicate ACK: a later segment arrived
	for i := 0; i < seg.opts.NumSACK; i++ {
		if seg.opts.SACK[i].Right.GreaterThan(p.probeEnd) {
			above = true
		}
	}
	if above {
		c.probeFailed(now)
	}
}

// probeFailed ends a lost probe: search_high falls below its size
// (RFC 4821 §7.6.2) and its data goes again at the current MSS at once.
// RFC 4821 §7.5 and §7.6.2: the loss of a probe is not a congestion
// signal; recover moves past it so that the duplicate ACKs it causes
// start no fast recovery (see simpleRetransmit).
func (c *Conn) probeFailed(now time.Time) {
	p := c.pmtu // a probe is in flight (inProbe)
	start, end := p.probeSeq, p.probeEnd
	p.high = min(p.high, p.probeSize-1)
	p.probeSize = 0
	// RFC 4821 §7.4: "If the last probe failed or was inconclusive, then
	// the probe timeout has expired" before the next: here, once the lost
	// probe's data is acknowledged (no loss outstanding either).
	p.repair, p.repairEnd = true, end
	if c.stats != nil {
		c.stats.PMTUProbeFailures.Add(1)
	}
	if !c.snd.UNA.LessThan(end) {
		return
	}
	// The probe's data goes again at the current MSS (retransmitRecord
	// cuts the probe's record) when flush runs, without a congestion
	// response.
	c.markLostQuietly(Max(start, c.snd.UNA), end)
}

// pmtuOnInput runs after a segment was processed, una being SND.UNA
// before it. An ACK of new data clears the soft error ("something
// worked", as Linux's tcp_ack clears sk_err_soft); then the probe in
// flight is checked.
func (c *Conn) pmtuOnInput(now time.Time, seg *inSeg, una Value, out Output) {
	if c.snd.UNA != una {
		c.softErr = 0
	}
	if c.state != StateClosed {
		c.checkProbe(now, seg, out)
	}
}
