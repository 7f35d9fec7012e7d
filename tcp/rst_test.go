package tcp

import (
	"errors"
	"testing"
)

// stateFixtures build a Conn in each state, with the remote's RCV.NXT view
// (the sequence number a RST must carry) and our SND.NXT.
var stateFixtures = []struct {
	name   string
	state  State
	build  func(*testing.T) *harness
	rcvNXT Value // our RCV.NXT
	sndNXT Value // our SND.NXT
	err    error // Err after an acceptable RST
}{
	{"SynReceivedActive", StateSynReceived, simultaneousSynReceived, remoteISS + 1, localISS + 1, ErrConnectionRefused},
	{"Established", StateEstablished, established, remoteISS + 1, localISS + 1, ErrConnectionReset},
	{"FinWait1", StateFinWait1, finWait1, remoteISS + 1, localISS + 2, ErrConnectionReset},
	{"FinWait2", StateFinWait2, finWait2, remoteISS + 1, localISS + 2, ErrConnectionReset},
	{"CloseWait", StateCloseWait, closeWait, remoteISS + 2, localISS + 1, ErrConnectionReset},
	{"Closing", StateClosing, closing, remoteISS + 2, localISS + 2, nil},
	{"LastAck", StateLastAck, lastAck, remoteISS + 2, localISS + 2, nil},
	{"TimeWait", StateTimeWait, timeWait, remoteISS + 2, localISS + 2, nil},
}

func simultaneousSynReceived(t *testing.T) *harness {
	t.Helper()
	h := synSent(t)
	h.send(t, ms(5), sg{flags: SYN, seq: remoteISS, win: 65535, opts: mssOpt(1460)})
	h.expect(t, ms(5), sg{flags: SYNACK, seq: localISS, ack: remoteISS + 1})
	h.expectState(t, StateSynReceived)
	return h
}

// RFC 9293 §3.10.7.4 second step with RFC 5961 §3.2, in every state: a RST
// at exactly RCV.NXT resets; one elsewhere in the window draws a challenge
// ACK; one outside the window is dropped silently.
func TestRSTInEveryState(t *testing.T) {
	for _, f := range stateFixtures {
		t.Run(f.name+"/Exact", func(t *testing.T) {
			h := f.build(t)
			h.expectState(t, f.state)
			h.send(t, ms(100), sg{flags: RST, seq: f.rcvNXT})
			h.expectState(t, StateClosed)
			if !errors.Is(h.c.Err(), f.err) || (f.err == nil && h.c.Err() != nil) {
				t.Fatalf("Err = %v, want %v", h.c.Err(), f.err)
			}
			h.expectNothing(t, ms(100))
			if !h.c.NextDeadline().IsZero() {
				t.Fatal("timers still running after reset")
			}
		})
		t.Run(f.name+"/InWindow", func(t *testing.T) {
			h := f.build(t)
			h.send(t, ms(100), sg{flags: RST, seq: f.rcvNXT + 1000})
			h.expectState(t, f.state)
			h.expect(t, ms(100), sg{flags: ACK, seq: f.sndNXT, ack: f.rcvNXT})
		})
		t.Run(f.name+"/OutOfWindow", func(t *testing.T) {
			h := f.build(t)
			h.send(t, ms(100), sg{flags: RST, seq: f.rcvNXT + 1<<20})
			h.send(t, ms(100), sg{flags: RST, seq: f.rcvNXT - 1})
			h.expectState(t, f.state)
			if len(h.out.segs) != 0 {
				t.Fatalf("answered an out-of-window RST: %v", describe(h.out.segs[0]))
			}
		})
	}
}

// RFC 5961 §4: a SYN in a synchronized state draws a challenge ACK,
// whatever its sequence number.
func TestChallengeAckSYN(t *testing.T) {
	for _, f := range stateFixtures[1:] {
		t.Run(f.name, func(t *testing.T) {
			h := f.build(t)
			h.send(t, ms(100), sg{flags: SYN, seq: f.rcvNXT + 5, win: 65535})
			h.expect(t, ms(100), sg{flags: ACK, seq: f.sndNXT, ack: f.rcvNXT})
			h.expectState(t, f.state)
		})
	}
}

// RFC 5961 §5: an ACK beyond SND.NXT, or before SND.UNA-MAX.SND.WND, is
// dropped with an ACK in reply; the data it carries is not accepted.
func TestChallengeAckBadACK(t *testing.T) {
	h := established(t)
	h.send(t, ms(20), sg{flags: PSHACK, seq: remoteISS + 1, ack: localISS + 100, win: 65535, data: []byte("x")})
	h.expect(t, ms(20), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1})
	h.send(t, ms(21), sg{flags: PSHACK, seq: remoteISS + 1, ack: localISS.Add(^uint32(69999)), win: 65535, data: []byte("x")})
	h.expect(t, ms(21), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1})
	if h.c.Readable() {
		t.Fatal("data of an unacceptable ACK was accepted")
	}
	// An old but acceptable ACK is fine.
	h.send(t, ms(22), sg{flags: PSHACK, seq: remoteISS + 1, ack: localISS, win: 65535, data: []byte("x")})
	if !h.c.Readable() {
		t.Fatal("data with an old acceptable ACK was dropped")
	}
}

// RFC 5961 §7: challenge ACKs are limited to ChallengeACKLimit a second.
func TestChallengeAckRateLimit(t *testing.T) {
	h := established(t)
	for i := 0; i < 15; i++ {
		h.send(t, ms(100+i), sg{flags: RST, seq: remoteISS + 100})
	}
	if got := len(h.out.segs); got != h.cfg.ChallengeACKLimit {
		t.Fatalf("%d challenge ACKs in one second, want %d", got, h.cfg.ChallengeACKLimit)
	}
	h.out.segs = nil
	h.send(t, ms(1100), sg{flags: RST, seq: remoteISS + 100})
	h.expect(t, ms(1100), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1})
	if got := h.cfg.Stats.ChallengeACKsLimited.Load(); got != 5 {
		t.Fatalf("ChallengeACKsLimited %d", got)
	}
}

// An unacceptable segment draws <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
// (RFC 9293 §3.10.7.4 first step).
func TestUnacceptableSegmentAcked(t *testing.T) {
	h := established(t)
	h.send(t, ms(20), sg{flags: PSHACK, seq: remoteISS - 100, ack: localISS + 1, win: 65535, data: []byte("old")})
	h.expect(t, ms(20), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1})
	h.send(t, ms(21), sg{flags: PSHACK, seq: remoteISS + 1 + 1<<20, ack: localISS + 1, win: 65535, data: []byte("far")})
	h.expect(t, ms(21), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1})
}

// Reset answers segments to closed ports (RFC 9293 §3.10.7.1), both cases,
// and never answers a RST.
func TestResetClosedPort(t *testing.T) {
	cases := []struct {
		name string
		in   sg
		want *sg
	}{
		{"SYN", sg{flags: SYN, seq: 777, win: 1000}, &sg{flags: RSTACK, seq: 0, ack: 778}},
		{"SYNWithData", sg{flags: SYN | FlagFIN, seq: 777, data: []byte("abc")}, &sg{flags: RSTACK, seq: 0, ack: 777 + 5}},
		{"NoFlags", sg{flags: 0, seq: 777, data: []byte("ab")}, &sg{flags: RSTACK, seq: 0, ack: 779}},
		{"ACK", sg{flags: ACK, seq: 777, ack: 4242}, &sg{flags: RST, seq: 4242}},
		{"DataACK", sg{flags: PSHACK, seq: 777, ack: 4242, data: []byte("abc")}, &sg{flags: RST, seq: 4242}},
		{"RST", sg{flags: RST, seq: 777}, nil},
		{"RSTACK", sg{flags: RSTACK, seq: 777, ack: 1}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out recOutput
			Reset(tuple, tc.in.build(), &out)
			if tc.want == nil {
				if len(out.segs) != 0 {
					t.Fatalf("answered a RST: %v", describe(out.segs[0]))
				}
				return
			}
			if len(out.segs) != 1 {
				t.Fatalf("%d segments", len(out.segs))
			}
			if err := match(out.segs[0], *tc.want); err != nil {
				t.Fatal(err)
			}
			if out.segs[0].SourcePort() != localAP.Port() || out.segs[0].DestinationPort() != remoteAP.Port() {
				t.Fatal("ports not swapped")
			}
		})
	}
}

// RFC 9293 §3.10.7.2: a listener ignores RST, answers ACK with
// <SEQ=SEG.ACK><CTL=RST> and drops segments with neither SYN nor ACK.
func TestListenerNonSYN(t *testing.T) {
	h := listening(t, 4)
	h.send(t, 0, sg{flags: RST, seq: 1})
	h.send(t, 0, sg{flags: FlagFIN, seq: 1})
	if len(h.out.segs) != 0 || h.c != nil {
		t.Fatal("listener answered RST or FIN")
	}
	h.send(t, 0, sg{flags: ACK, seq: 1, ack: 99})
	h.expect(t, 0, sg{flags: RST, seq: 99})
	h.send(t, 0, sg{flags: SYNACK, seq: 1, ack: 55})
	h.expect(t, 0, sg{flags: RST, seq: 55})
	if h.c != nil {
		t.Fatal("listener made a conn from a non-SYN")
	}
}

// Listener.Close aborts connections waiting on the accept queue and those
// promoted afterwards.
func TestListenerClose(t *testing.T) {
	h := establishedPassive(t)
	h.l.Close(t0.Add(ms(20)), &h.out)
	h.expect(t, ms(20), sg{flags: RST, seq: localISS + 1})
	h.expectState(t, StateClosed)
	if !errors.Is(h.c.Err(), ErrConnectionAborted) {
		t.Fatalf("Err = %v", h.c.Err())
	}
	h2 := synReceived(t)
	h2.l.Close(t0.Add(ms(1)), &h2.out)
	h2.send(t, ms(2), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535})
	h2.expect(t, ms(2), sg{flags: RST, seq: localISS + 1})
	h2.expectState(t, StateListen) // Close dropped the half-open entry
	if syn, _ := h2.l.Pending(); syn != 0 || h2.cfg.Stats.HalfOpen.Load() != 0 {
		t.Fatalf("SYN queue %d after Close", syn)
	}
}

// TIME-WAIT may be reused by a new SYN (RFC 9293 §3.10.7.4, RFC 6191).
func TestTimeWaitAcceptsSYN(t *testing.T) {
	h := timeWait(t)
	if h.c.AcceptsSYN(sg{flags: SYN, seq: remoteISS + 1}.build()) {
		t.Fatal("accepted a SYN at an old sequence number")
	}
	if h.c.AcceptsSYN(sg{flags: SYNACK, seq: remoteISS + 100000}.build()) {
		t.Fatal("accepted a SYN,ACK")
	}
	if !h.c.AcceptsSYN(sg{flags: SYN, seq: remoteISS + 100000}.build()) {
		t.Fatal("refused a SYN beyond RCV.NXT")
	}
	if established(t).c.AcceptsSYN(sg{flags: SYN, seq: remoteISS + 100000}.build()) {
		t.Fatal("ESTABLISHED accepted a SYN")
	}
}
