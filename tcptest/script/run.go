package script

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ustack/ustack/tcp"
	"github.com/ustack/ustack/tcptest"
)

// DefaultTolerance is packetdrill's default timing tolerance
// (--tolerance_usecs=4000).
const DefaultTolerance = 4 * time.Millisecond

// maxWait bounds how far the runner moves virtual time on its own to find
// an outbound packet written "*" or to let a call without "..." return:
// a stack that keeps a timer running forever (a zero-window probe, say)
// would otherwise never let the run end.
const maxWait = 24 * time.Hour

// waitGrace is how long past the end of its window the runner keeps
// looking for an outbound packet, so that a late packet is reported with
// its time rather than as missing (packetdrill sniffs 2 s past it too).
const waitGrace = 2 * time.Second

// Options tune a run.
type Options struct {
	// Tolerance is how far an event may happen from its scripted time
	// (packetdrill's --tolerance_usecs); 0 means DefaultTolerance.
	Tolerance time.Duration
	// TolerancePercent widens the tolerance to this percentage of the
	// time since the previous event (packetdrill's --tolerance_percent,
	// 12.5 there to absorb Linux's timer slack; 0 here because virtual
	// time has none).
	TolerancePercent float64
	// LenientOptions compares the stack's TCP options by the presence of
	// each kind rather than by exact values and layout.
	LenientOptions bool
	// IgnorePush does not compare the PSH flag (see
	// tcptest.MatchOptions.IgnorePush).
	IgnorePush bool
	// Config is the TCP configuration of the stack under test; when nil,
	// tcp.DefaultConfig with receive-buffer auto-tuning off, so that the
	// window scale (3, for the 256 KiB buffer) and the windows offered are
	// those the script was written for.
	Config *tcp.Config
	// Trace, when not nil, receives a line per event as it runs.
	Trace io.Writer
	// IPVersion is packetdrill's --ip_version on the command line: it
	// overrides the script's --ip_version line, as packetdrill's command
	// line does. IPVersionDefault runs what the script asks for, IPv4
	// when it asks nothing. IPv6 runs the exchange over IPv6 (the stack
	// at tcptest.LocalAddr6, the peer at tcptest.RemoteAddr6, ICMPv6
	// errors); ipv4-mapped-ipv6 keeps IPv4 on the wire under AF_INET6
	// sockets whose addresses are IPv4-mapped.
	IPVersion IPVersion
	// MTU is the MTU of the stack's link (packetdrill's --mtu; the MSS
	// the stack advertises is the MTU less 40, or 60 over IPv6). It
	// overrides the script's --mtu line; 0 takes the script's, else
	// tcptest.DefaultMTU. Linux's selftests run their IPv6 pass with
	// --mtu=1520, so that a script's MSS of 1460 holds in both families.
	MTU int
}

// Result is the outcome of one script.
type Result struct {
	Name string
	// Err is nil when the script passed; a *Failure when an expectation
	// failed; another error when the script could not be read or parsed.
	Err error
	// Notes lists what the runner skipped (shell commands, code blocks,
	// options without meaning for ustack).
	Notes []string
	// Packets is every segment of the exchange, both directions.
	Packets []tcptest.Packet
	// Elapsed is the virtual time the script took.
	Elapsed time.Duration
}

// Passed reports whether the script passed.
func (r *Result) Passed() bool { return r.Err == nil }

// Failure describes a failed expectation.
type Failure struct {
	Script   string
	Line     int
	Msg      string
	Expected string   // the scripted packet or result, when there is one
	Actual   string   // what happened
	Recent   []string // the last packets of the exchange
}

// Error returns "script.pkt:12: msg".
func (f *Failure) Error() string { return fmt.Sprintf("%s:%d: %s", f.Script, f.Line, f.Msg) }

// Detail returns the failure with the expected and actual values and the
// last packets seen, one item a line.
func (f *Failure) Detail() string {
	var b strings.Builder
	b.WriteString(f.Error())
	if f.Expected != "" {
		b.WriteString("\n  expected: " + f.Expected)
	}
	if f.Actual != "" {
		b.WriteString("\n  actual:   " + f.Actual)
	}
	if len(f.Recent) > 0 {
		b.WriteString("\n  last packets seen:")
		for _, r := range f.Recent {
			b.WriteString("\n    " + r)
		}
	}
	return b.String()
}

// RunFile reads, parses and runs the script at path.
func RunFile(path string, opts Options) *Result {
	src, err := os.ReadFile(path)
	if err != nil {
		return &Result{Name: path, Err: err}
	}
	s, err := Parse(path, src)
	if err != nil {
		return &Result{Name: path, Err: err}
	}
	return s.Run(opts)
}

// runner executes one script.
type runner struct {
	sc   *Script
	o    Options
	st   *tcptest.Stack
	mo   tcptest.MatchOptions
	tol  time.Duration
	pct  float64
	res  *Result
	fail *Failure

	tsEcrScaled bool
	noAggregate bool
	ver         IPVersion

	sockets
	flows      []*tcptest.Flow
	byTuple    map[tcp.Tuple]*tcptest.Flow
	cur        *tcptest.Flow
	listening  bool
	listenPort uint16
	bindPort   uint16
	remotePort uint16

	ev        *event
	lastEvent time.Duration // resolved start time of the previous event
	blocked   *pendingCall
	inHook    bool
}

// Run runs the script against a fresh stack in virtual time.
func (s *Script) Run(opts Options) *Result {
	cfg := tcp.DefaultConfig()
	cfg.MaxReceiveBufferSize = 0
	if opts.Config != nil {
		cfg = *opts.Config
	}
	ver := opts.IPVersion
	if ver == IPVersionDefault {
		ver = s.IPVersion()
	}
	if ver == IPVersionDefault {
		ver = IPv4
	}
	r := &runner{
		sc:         s,
		o:          opts,
		ver:        ver,
		st:         tcptest.NewStackFamily(cfg, ver.wire()),
		tol:        opts.Tolerance,
		pct:        opts.TolerancePercent,
		res:        &Result{Name: s.Name},
		byTuple:    make(map[tcp.Tuple]*tcptest.Flow),
		bindPort:   8080,
		remotePort: 40000,
	}
	if r.tol == 0 {
		r.tol = DefaultTolerance
	}
	r.mo = tcptest.MatchOptions{LenientOptions: opts.LenientOptions, CheckTSEcr: !opts.LenientOptions, IgnorePush: opts.IgnorePush}
	r.sockets.init()
	r.res.Notes = append(r.res.Notes, s.notes...)
	for _, c := range s.setup {
		if !r.sysctl(c.text) {
			r.notef("line %d: %s skipped (it configures or inspects Linux)", c.line, c.desc)
		}
	}
	if err := r.applyOptions(); err != nil {
		r.res.Err = err
		return r.res
	}
	if opts.MTU != 0 {
		if err := r.st.SetMTU(opts.MTU); err != nil {
			r.res.Err = fmt.Errorf("%s: %v", s.Name, err)
			return r.res
		}
	}
	r.mo.TSTolerance = r.tol
	r.st.OnChange(r.hook)
	r.run()
	r.res.Packets = r.st.Log()
	r.res.Elapsed = r.st.Elapsed()
	if r.fail != nil {
		r.fail.Script = s.Name
		r.fail.Recent = r.recent(8)
		r.res.Err = r.fail
	}
	return r.res
}

func (r *runner) notef(format string, args ...any) {
	r.res.Notes = append(r.res.Notes, fmt.Sprintf(format, args...))
}

func (r *runner) tracef(format string, args ...any) {
	if r.o.Trace != nil {
		fmt.Fprintf(r.o.Trace, "%9.6f ", r.st.Elapsed().Seconds())
		fmt.Fprintf(r.o.Trace, format, args...)
		fmt.Fprintln(r.o.Trace)
	}
}

// applyOptions handles the script's --options.
func (r *runner) applyOptions() error {
	for _, o := range r.sc.options {
		bad := func() error {
			return fmt.Errorf("%s:%d: bad value %q for --%s", r.sc.Name, o.line, o.value, o.name)
		}
		switch o.name {
		case "tolerance_usecs":
			v, err := strconv.ParseInt(o.value, 10, 64)
			if err != nil || v < 0 {
				return bad()
			}
			r.tol = time.Duration(v) * time.Microsecond
		case "tolerance_percent":
			v, err := strconv.ParseFloat(o.value, 64)
			if err != nil || v < 0 {
				return bad()
			}
			r.pct = v
		case "tcp_ts_tick_usecs":
			v, err := strconv.ParseInt(o.value, 10, 64)
			if err != nil || v < 0 {
				return bad()
			}
			r.mo.TSTick = time.Duration(v) * time.Microsecond
		case "tcp_ts_ecr_scaled":
			r.tsEcrScaled = true
		case "strict_segments":
			r.noAggregate = true
		case "bind_port", "connect_port":
			v, err := strconv.ParseUint(o.value, 10, 16)
			if err != nil || v == 0 {
				return bad()
			}
			if o.name == "bind_port" {
				r.bindPort = uint16(v)
			} else {
				r.connectPort = uint16(v)
			}
		case "mtu":
			v, err := strconv.ParseUint(o.value, 10, 16)
			if err != nil {
				return bad()
			}
			if r.o.MTU != 0 {
				break // the command line's wins, as in packetdrill
			}
			if err := r.st.SetMTU(int(v)); err != nil {
				return fmt.Errorf("%s:%d: --mtu=%s: %v", r.sc.Name, o.line, o.value, err)
			}
		case "ip_version":
			if _, err := ParseIPVersion(o.value); err != nil {
				return fmt.Errorf("%s:%d: --ip_version: %v", r.sc.Name, o.line, err)
			}
		case "local_ip", "remote_ip", "gateway_ip", "netmask_ip", "mss", "speed", "verbose", "debug", "non_fatal", "dry_run":
			r.notef("line %d: --%s ignored (the addresses are fixed: %v and %v)", o.line, o.name, r.st.LocalAddr(), r.st.RemoteAddr())
		default:
			return fmt.Errorf("%s:%d: unknown or unsupported option --%s", r.sc.Name, o.line, o.name)
		}
	}
	return nil
}

func (r *runner) failf(line int, expected, actual, format string, args ...any) {
	if r.fail != nil {
		return
	}
	r.fail = &Failure{Line: line, Msg: fmt.Sprintf(format, args...), Expected: expected, Actual: actual}
}

// now returns the virtual time since the start of the script.
func (r *runner) now() time.Duration { return r.st.Elapsed() }

// advance moves virtual time to t, firing the timers due before t: the
// event at t comes before a timer due at t (see Stack.AdvanceBefore).
func (r *runner) advance(t time.Duration) {
	r.st.AdvanceBefore(tcptest.Epoch.Add(t))
	r.checkStack()
}

func (r *runner) checkStack() {
	if err := r.st.Err(); err != nil && r.ev != nil {
		r.failf(r.ev.line, "", "", "%v", err)
	}
}

// tolerance returns the tolerance for something expected at script time
// t, the previous event being at prev.
func (r *runner) tolerance(t, prev time.Duration) time.Duration {
	tol := r.tol
	if r.pct > 0 && t > prev {
		if d := time.Duration(float64(t-prev) * r.pct / 100); d > tol {
			tol = d
		}
	}
	return tol
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 6, 64) }

func (r *runner) run() {
	for i, e := range r.sc.events {
		r.ev = e
		// Resolve the event's time (packetdrill's
		// adjust_relative_event_times): relative times count from now, the
		// time the previous event finished.
		base := r.now()
		var t, tEnd time.Duration
		switch e.tkind {
		case timeAbs, timeAbsRange:
			t, tEnd = e.t, e.tEnd
		case timeRel, timeRelRange:
			t, tEnd = base+e.t, base+e.tEnd
		case timeAny:
			t = base
		}
		if i == 0 && ((e.tkind != timeAbs && e.tkind != timeRel) || e.t != 0) {
			r.failf(e.line, "", "", "first event should be at time 0")
			return
		}
		if i > 0 && (e.tkind == timeAbs || e.tkind == timeAbsRange) && t < r.lastEvent {
			prev := r.sc.events[i-1]
			if prev.tkind == timeAbs || prev.tkind == timeAbsRange {
				r.failf(e.line, "", "", "time goes backward in script from %s sec to %s sec", secs(r.lastEvent), secs(t))
				return
			}
		}
		switch e.kind {
		case evPacket:
			if e.dir == tcptest.In {
				r.advance(t)
				if r.fail == nil {
					r.inbound(e)
				}
			} else {
				r.outbound(e, t, tEnd)
			}
		case evSyscall:
			r.advance(t)
			if r.fail == nil {
				r.syscall(e, t, base)
			}
		case evCommand, evCode:
			r.advance(t)
			if e.kind == evCommand && r.sysctl(e.cmd) {
				break
			}
			r.notef("line %d: %s skipped (it configures or inspects Linux)", e.line, e.text)
		}
		r.checkStack()
		if r.fail != nil {
			return
		}
		r.lastEvent = t
	}
	r.ev = nil
	last := r.sc.events[len(r.sc.events)-1].line
	if b := r.blocked; b != nil && b.timing {
		// Like packetdrill, let a call blocked at the end of the script
		// return (by its scripted end time, within the tolerance).
		limit := b.end + r.tolerance(b.end, b.start)
		for r.blocked != nil && r.fail == nil {
			d := r.st.NextDeadline()
			if d.IsZero() || d.Sub(tcptest.Epoch) > limit || r.st.Err() != nil {
				break
			}
			r.st.AdvanceTo(d)
			r.checkStack()
		}
		if r.fail != nil {
			return
		}
	}
	if b := r.blocked; b != nil {
		r.failf(b.e.line, b.c.name+"(...)", "still blocked at the end of the script", "blocking system call %s did not return", b.c.name)
		return
	}
	if p, ok := r.st.Peek(); ok {
		r.failf(last, "no more packets", r.fmtPacket(p), "unexpected outbound packet after the last line of the script")
	}
}

// flowFor returns the flow of 4-tuple t, creating it.
func (r *runner) flowFor(t tcp.Tuple) *tcptest.Flow {
	if f := r.byTuple[t]; f != nil {
		return f
	}
	f := r.st.FlowFor(t)
	f.TSEcrScaled = r.tsEcrScaled
	r.byTuple[t] = f
	r.flows = append(r.flows, f)
	return f
}

// newInboundFlow is packetdrill's handle_listen_for_script_packet: a
// packet for a listening (or no) socket under test starts a new flow from
// a new remote port.
func (r *runner) newInboundFlow() *tcptest.Flow {
	port := r.bindPort
	if r.listening {
		port = r.listenPort
	}
	for {
		t := r.tuple(port, r.remotePort)
		r.remotePort++
		if r.byTuple[t] == nil {
			f := r.flowFor(t)
			r.cur, r.listening = f, false
			return f
		}
	}
}

// packetFlow picks the flow a packet line belongs to.
func (r *runner) packetFlow(e *event) *tcptest.Flow {
	if e.ports {
		local, remote := e.dst, e.src
		if e.dir == tcptest.Out {
			local, remote = e.src, e.dst
		}
		t := r.tuple(local, remote)
		if f := r.byTuple[t]; f != nil {
			return f
		}
		f := r.flowFor(t)
		if e.dir == tcptest.In && (r.cur == nil || r.listening) {
			r.cur, r.listening = f, false
		}
		return f
	}
	if e.dir == tcptest.In && (r.cur == nil || r.listening) {
		return r.newInboundFlow()
	}
	return r.cur
}

func (r *runner) inbound(e *event) {
	if e.icmp != nil {
		r.inboundICMP(e)
		return
	}
	f := r.packetFlow(e)
	r.tracef("%s", "< "+e.spec.String())
	if err := f.Send(e.spec); err != nil {
		r.failf(e.line, "", "", "error handling packet: %v", err)
	}
}

// nextOutbound returns the next segment the stack sends, moving time
// forward up to limit (without limit for "*") to find it.
func (r *runner) nextOutbound(limit time.Duration, anyTime bool) (tcptest.Packet, bool) {
	if p, ok := r.st.Next(); ok {
		return p, true
	}
	if anyTime {
		start := r.now()
		for {
			d := r.st.NextDeadline()
			if d.IsZero() || r.st.Err() != nil || d.Sub(tcptest.Epoch) > start+maxWait {
				return tcptest.Packet{}, false
			}
			if r.st.AdvanceUntilSent(d) {
				return r.st.Next()
			}
		}
	}
	r.st.AdvanceUntilSent(tcptest.Epoch.Add(limit))
	return r.st.Next()
}

// peekOutbound is nextOutbound without taking the segment.
func (r *runner) peekOutbound(limit time.Duration, anyTime bool) (tcptest.Packet, bool) {
	if p, ok := r.st.Peek(); ok {
		return p, true
	}
	if anyTime {
		return tcptest.Packet{}, false
	}
	r.st.AdvanceUntilSent(tcptest.Epoch.Add(limit))
	return r.st.Peek()
}

// continues reports whether q carries on where p's payload ends, on the
// same connection (a candidate for aggregation).
func continues(p, q tcptest.Packet) bool {
	if p.Tuple != q.Tuple || len(p.Data) < tcp.HeaderLen || len(q.Data) < tcp.HeaderLen || payloadLen(q) == 0 {
		return false
	}
	seqP := binary.BigEndian.Uint32(p.Data[4:])
	seqQ := binary.BigEndian.Uint32(q.Data[4:])
	return seqQ == seqP+uint32(payloadLen(p))
}

func (r *runner) outbound(e *event, t, tEnd time.Duration) {
	f := r.packetFlow(e)
	scriptPkt := fmt.Sprintf("%s > %s", secs(t), e.spec)
	if f == nil {
		r.failf(e.line, scriptPkt, "", "no socket for the outbound packet (no connect, listen or inbound packet yet)")
		return
	}
	if tEnd < t {
		tEnd = t
	}
	tol := r.tolerance(t, r.lastEvent)
	lo, hi := t-tol, tEnd+tol
	anyTime := e.tkind == timeAny
	want := e.spec.PayloadLen()
	var frags []tcptest.Packet
	got := 0
	for {
		if len(frags) > 0 {
			// Aggregate only segments that continue the run; anything
			// else stays queued for the next line.
			p, ok := r.peekOutbound(hi+waitGrace, anyTime)
			if !ok || !continues(frags[len(frags)-1], p) {
				break
			}
		}
		p, ok := r.nextOutbound(hi+waitGrace, anyTime)
		r.checkStack()
		if r.fail != nil {
			return
		}
		if !ok {
			r.failf(e.line, scriptPkt, "", "expected outbound packet, but the stack sent none (waited until %s sec)", secs(r.now()))
			return
		}
		frags = append(frags, p)
		n := payloadLen(p)
		got += n
		if got >= want || r.noAggregate || n == 0 {
			break
		}
	}
	agg, err := tcptest.Aggregate(frags)
	if err != nil {
		var acts []string
		for _, p := range frags {
			acts = append(acts, r.fmtPacket(p))
		}
		r.failf(e.line, scriptPkt, strings.Join(acts, "; "), "segments do not add up to the scripted packet: %v", err)
		return
	}
	err = f.Match(e.spec, agg, r.mo)
	actual := fmt.Sprintf("%s %s", secs(agg.Elapsed()), f.Format(agg))
	if err != nil {
		r.failf(e.line, scriptPkt, actual, "error handling packet: %v", err)
		return
	}
	if len(frags) > 1 {
		actual += fmt.Sprintf(" (%d segments)", len(frags))
	}
	if !anyTime {
		for _, p := range []tcptest.Packet{frags[0], frags[len(frags)-1]} {
			at := p.Elapsed()
			if at < lo || at > hi {
				if e.tkind == timeAbsRange || e.tkind == timeRelRange {
					r.failf(e.line, scriptPkt, actual, "timing error: expected outbound packet in time range %s~%s sec but happened at %s sec; tolerance %s sec",
						secs(t), secs(tEnd), secs(at), secs(tol))
				} else {
					r.failf(e.line, scriptPkt, actual, "timing error: expected outbound packet at %s sec but happened at %s sec; tolerance %s sec",
						secs(t), secs(at), secs(tol))
				}
				return
			}
		}
	}
	r.tracef("%s", "> "+e.spec.String()+" matched "+actual)
}

func payloadLen(p tcptest.Packet) int {
	if len(p.Data) < tcp.HeaderLen {
		return 0
	}
	hl := int(p.Data[12]>>4) * 4
	if hl > len(p.Data) {
		return 0
	}
	return len(p.Data) - hl
}

// fmtPacket formats p in script space when it belongs to a known flow.
func (r *runner) fmtPacket(p tcptest.Packet) string {
	if f := r.byTuple[p.Tuple]; f != nil {
		return fmt.Sprintf("%s %s", secs(p.Elapsed()), f.Format(p))
	}
	return p.String()
}

func (r *runner) recent(n int) []string {
	log := r.st.Log()
	if len(log) > n {
		log = log[len(log)-n:]
	}
	var out []string
	for _, p := range log {
		out = append(out, r.fmtPacket(p))
	}
	return out
}

// WritePcap writes the exchange of the run as a pcap capture.
func (r *Result) WritePcap(w io.Writer) error { return tcptest.WritePcap(w, r.Packets) }
