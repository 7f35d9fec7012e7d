package tcp

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// The harness drives one Conn (the local side) with segments from a
// scripted remote side, in the spirit of smoltcp's socket tests: send a
// segment at a virtual time, expect the reply at a virtual time, expect
// nothing at a virtual time.

var (
	localAP  = netip.MustParseAddrPort("10.0.0.1:80")
	remoteAP = netip.MustParseAddrPort("10.0.0.2:49152")
	tuple    = Tuple{Local: localAP, Remote: remoteAP}
	t0       = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

const (
	localISS  Value = 1000
	remoteISS Value = 5000
	localMSS        = 1460
)

// ms is a virtual time offset from t0 in milliseconds.
func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// sg is a compact description of a segment: flags, sequence and
// acknowledgment numbers, window, options and payload. In expectations a
// zero win is not checked unless winZero is set, and nil opts are not
// checked unless noOpts is set.
type sg struct {
	flags    Flags
	seq, ack Value
	win      uint16
	winZero  bool
	opts     *Options
	noOpts   bool
	data     []byte
}

func (s sg) String() string {
	return fmt.Sprintf("[%v seq=%d ack=%d win=%d len=%d]", s.flags, s.seq, s.ack, s.win, len(s.data))
}

// build encodes s as a segment from the remote side.
func (s sg) build() Segment {
	h := Header{
		SrcPort: remoteAP.Port(), DstPort: localAP.Port(),
		Seq: s.seq, Ack: s.ack, Flags: s.flags, Window: s.win, Options: s.opts,
	}
	b := make([]byte, h.Len()+len(s.data))
	n := h.Encode(b)
	copy(b[n:], s.data)
	SetChecksum(b, remoteAP.Addr(), localAP.Addr())
	seg, err := ParseSegment(b, remoteAP.Addr(), localAP.Addr())
	if err != nil {
		panic(err)
	}
	return seg
}

// recOutput is an Output that records every segment, parsed back with
// ParseSegment.
type recOutput struct {
	segs []Segment
	errs []error
	// gsoSizes holds the gso_size of each super-segment, by its first
	// byte.
	gsoSizes map[*byte]int
}

func (o *recOutput) Buffer(n int) ([]byte, int) { return make([]byte, 34+n), 34 }

func (o *recOutput) Send(t Tuple, buf []byte, off int) {
	seg, err := ParseSegment(buf[off:], t.Local.Addr(), t.Remote.Addr())
	if err != nil {
		o.errs = append(o.errs, err)
		return
	}
	o.segs = append(o.segs, seg)
}

// SendGSO implements GSOOutput: the super-segment must carry its
// partial checksum, which is completed (as a device would) before it is
// recorded whole, with its gso_size for gsoSize.
func (o *recOutput) SendGSO(t Tuple, buf []byte, off, mss int) {
	if err := checkPartial(buf[off:], t); err != nil {
		o.errs = append(o.errs, err)
		return
	}
	SetChecksum(buf[off:], t.Local.Addr(), t.Remote.Addr())
	if o.gsoSizes == nil {
		o.gsoSizes = map[*byte]int{}
	}
	o.gsoSizes[&buf[off]] = mss
	o.Send(t, buf, off)
}

// checkPartial checks that super-segment seg, sent on t, is well formed
// and carries the partial checksum SetPartialChecksum stores.
func checkPartial(seg []byte, t Tuple) error {
	if _, err := ParseSegmentVerified(seg, t.Local.Addr(), t.Remote.Addr()); err != nil {
		return fmt.Errorf("super-segment: %w", err)
	}
	want := append([]byte(nil), seg[offChecksum:offChecksum+2]...)
	SetPartialChecksum(seg, t.Local.Addr(), t.Remote.Addr())
	if got := seg[offChecksum : offChecksum+2]; !bytes.Equal(got, want) {
		return fmt.Errorf("super-segment checksum %x, want the partial %x", want, got)
	}
	return nil
}

// gsoSize returns the gso_size s was sent with, 0 if it went as one
// segment.
func (o *recOutput) gsoSize(s Segment) int { return o.gsoSizes[&s[0]] }

func (o *recOutput) pop() (Segment, bool) {
	if len(o.segs) == 0 {
		return nil, false
	}
	s := o.segs[0]
	o.segs = o.segs[1:]
	return s, true
}

type harness struct {
	cfg Config
	c   *Conn
	l   *Listener
	out recOutput
}

// testConfig is the harness default: no window scaling, timestamps or
// SACK (so exchanges read like the RFC figures), 64 KiB buffers of fixed
// size (no auto-tuning).
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.SendBufferSize = 64 << 10
	cfg.ReceiveBufferSize = 64 << 10
	cfg.MaxReceiveBufferSize = 0
	cfg.WindowScale, cfg.Timestamps, cfg.SACKPermitted = false, false, false
	cfg.CongestionControl = CongestionReno
	cfg.Stats = new(Stats)
	return cfg
}

func newHarness(cfg Config) *harness { return &harness{cfg: cfg} }

// dial makes the local side perform an active OPEN at time at.
func (h *harness) dial(t *testing.T, at time.Duration) {
	t.Helper()
	h.c = Dial(&h.cfg, tuple, localISS, localMSS, t0.Add(at), &h.out)
	h.checkErrs(t)
}

// send delivers s to the local Conn (or to the Listener when there is no
// Conn) at time at.
func (h *harness) send(t *testing.T, at time.Duration, s sg) {
	t.Helper()
	seg := s.build()
	if h.c == nil || h.c.Done() && h.l != nil || h.halfOpen() {
		if h.l == nil {
			t.Fatalf("send %v: no conn and no listener", s)
		}
		if c := h.l.Input(t0.Add(at), tuple, seg, localISS, localMSS, &h.out); c != nil {
			h.c = c
		}
	} else {
		h.c.Input(t0.Add(at), seg, &h.out)
		if h.l != nil && h.c.Established() && h.c.Listener() == h.l && !h.c.Accepted() {
			h.l.Promote(h.c)
		}
	}
	h.checkErrs(t)
}

func (h *harness) checkErrs(t *testing.T) {
	t.Helper()
	if len(h.out.errs) > 0 {
		t.Fatalf("core sent malformed segments: %v", h.out.errs)
	}
}

// tick fires the timers due at time at.
func (h *harness) tick(t *testing.T, at time.Duration) {
	t.Helper()
	if h.c != nil {
		h.c.Tick(t0.Add(at), &h.out)
	}
	if h.l != nil {
		h.l.Tick(t0.Add(at), &h.out)
	}
	h.checkErrs(t)
}

// halfOpen reports whether the listener holds a half-open entry for the
// harness's tuple (a passive open in SYN-RECEIVED without a Conn yet).
func (h *harness) halfOpen() bool { return h.l != nil && h.l.q.find(tuple) != nil }

// expect fires the timers due at time at and checks that the next segment
// sent matches want.
func (h *harness) expect(t *testing.T, at time.Duration, want sg) Segment {
	t.Helper()
	if len(h.out.segs) == 0 {
		h.tick(t, at)
	}
	got, ok := h.out.pop()
	if !ok {
		t.Fatalf("at %v: want %v, got nothing (state %v)", at, want, h.state())
	}
	if err := match(got, want); err != nil {
		t.Fatalf("at %v: %v\n got  %v\n want %v", at, err, describe(got), want)
	}
	return got
}

// expectNothing fires the timers due at time at and checks that nothing
// was sent.
func (h *harness) expectNothing(t *testing.T, at time.Duration) {
	t.Helper()
	h.tick(t, at)
	if got, ok := h.out.pop(); ok {
		t.Fatalf("at %v: want nothing, got %v", at, describe(got))
	}
}

// expectState checks the connection state.
func (h *harness) expectState(t *testing.T, want State) {
	t.Helper()
	if got := h.state(); got != want {
		t.Fatalf("state %v, want %v", got, want)
	}
}

func (h *harness) state() State {
	if h.halfOpen() {
		return StateSynReceived
	}
	if h.c == nil {
		return StateListen
	}
	return h.c.State()
}

func describe(s Segment) string {
	var o Options
	s.Options(&o)
	return fmt.Sprintf("[%v seq=%d ack=%d win=%d len=%d opts=%+v]", s.Flags(), s.Seq(), s.Ack(), s.Window(), len(s.Payload()), o)
}

func match(got Segment, want sg) error {
	if got.Flags() != want.flags {
		return fmt.Errorf("flags %v, want %v", got.Flags(), want.flags)
	}
	if got.Seq() != want.seq {
		return fmt.Errorf("seq %d, want %d", got.Seq(), want.seq)
	}
	if want.flags.Has(FlagACK) && got.Ack() != want.ack {
		return fmt.Errorf("ack %d, want %d", got.Ack(), want.ack)
	}
	if (want.win != 0 || want.winZero) && got.Window() != want.win {
		return fmt.Errorf("window %d, want %d", got.Window(), want.win)
	}
	if !bytes.Equal(got.Payload(), want.data) {
		return fmt.Errorf("payload %q, want %q", trunc(got.Payload()), trunc(want.data))
	}
	var o Options
	got.Options(&o)
	if want.noOpts && len(got.OptionBytes()) != 0 {
		return fmt.Errorf("options %+v, want none", o)
	}
	if w := want.opts; w != nil {
		if o.MSS != w.MSS || o.WindowScale != w.WindowScale || o.SACKPermitted != w.SACKPermitted || o.Timestamp != w.Timestamp {
			return fmt.Errorf("options %+v, want %+v", o, *w)
		}
		if w.TSVal != 0 && o.TSVal != w.TSVal || w.TSEcr != 0 && o.TSEcr != w.TSEcr {
			return fmt.Errorf("timestamps %d/%d, want %d/%d", o.TSVal, o.TSEcr, w.TSVal, w.TSEcr)
		}
	}
	return nil
}

func trunc(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}

// Segment flag shorthands.
const (
	SYN    = FlagSYN
	SYNACK = FlagSYN | FlagACK
	ACK    = FlagACK
	PSHACK = FlagPSH | FlagACK
	FINACK = FlagFIN | FlagACK
	RST    = FlagRST
	RSTACK = FlagRST | FlagACK
)

// mssOpt is the option list of the harness's SYNs.
func mssOpt(mss uint16) *Options { return &Options{MSS: mss, WindowScale: -1} }

// Fixtures, each leaving the local Conn in a state with the segments so
// far consumed. Local ISS is 1000 (SND.NXT 1001 once the SYN is sent);
// the remote ISS is 5000 (RCV.NXT 5001).

func synSent(t *testing.T) *harness {
	t.Helper()
	h := newHarness(testConfig())
	h.dial(t, 0)
	h.expect(t, 0, sg{flags: SYN, seq: localISS, opts: mssOpt(localMSS), win: 65535})
	h.expectState(t, StateSynSent)
	return h
}

func established(t *testing.T) *harness {
	t.Helper()
	h := synSent(t)
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535, opts: mssOpt(1460)})
	h.expect(t, ms(10), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1})
	h.expectState(t, StateEstablished)
	return h
}

func listening(t *testing.T, backlog int) *harness {
	t.Helper()
	h := newHarness(testConfig())
	h.l = NewListener(&h.cfg, localAP, backlog)
	return h
}

func synReceived(t *testing.T) *harness {
	t.Helper()
	h := listening(t, 8)
	h.send(t, 0, sg{flags: SYN, seq: remoteISS, win: 65535, opts: mssOpt(1460)})
	h.expect(t, 0, sg{flags: SYNACK, seq: localISS, ack: remoteISS + 1, opts: mssOpt(localMSS)})
	h.expectState(t, StateSynReceived)
	return h
}

func establishedPassive(t *testing.T) *harness {
	t.Helper()
	h := synReceived(t)
	h.send(t, ms(10), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535})
	h.expectNothing(t, ms(10))
	h.expectState(t, StateEstablished)
	return h
}

func finWait1(t *testing.T) *harness {
	t.Helper()
	h := established(t)
	h.c.CloseWrite(t0.Add(ms(20)), &h.out)
	h.expect(t, ms(20), sg{flags: FINACK, seq: localISS + 1, ack: remoteISS + 1})
	h.expectState(t, StateFinWait1)
	return h
}

func finWait2(t *testing.T) *harness {
	t.Helper()
	h := finWait1(t)
	h.send(t, ms(30), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 2, win: 65535})
	h.expectNothing(t, ms(30))
	h.expectState(t, StateFinWait2)
	return h
}

func closeWait(t *testing.T) *harness {
	t.Helper()
	h := established(t)
	h.send(t, ms(20), sg{flags: FINACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535})
	h.expect(t, ms(20), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 2})
	h.expectState(t, StateCloseWait)
	return h
}

func lastAck(t *testing.T) *harness {
	t.Helper()
	h := closeWait(t)
	h.c.CloseWrite(t0.Add(ms(30)), &h.out)
	h.expect(t, ms(30), sg{flags: FINACK, seq: localISS + 1, ack: remoteISS + 2})
	h.expectState(t, StateLastAck)
	return h
}

func closing(t *testing.T) *harness {
	t.Helper()
	h := finWait1(t)
	h.send(t, ms(30), sg{flags: FINACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535})
	h.expect(t, ms(30), sg{flags: ACK, seq: localISS + 2, ack: remoteISS + 2})
	h.expectState(t, StateClosing)
	return h
}

func timeWait(t *testing.T) *harness {
	t.Helper()
	h := finWait2(t)
	h.send(t, ms(40), sg{flags: FINACK, seq: remoteISS + 1, ack: localISS + 2, win: 65535})
	h.expect(t, ms(40), sg{flags: ACK, seq: localISS + 2, ack: remoteISS + 2})
	h.expectState(t, StateTimeWait)
	return h
}
