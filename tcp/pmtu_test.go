package tcp

import (
	"errors"
	"testing"
	"time"
)

// inFlight writes n full-sized segments on an established harness and
// returns them as sent.
func inFlight(t *testing.T, h *harness, at time.Duration, n int) []Segment {
	t.Helper()
	if _, err := h.c.Write(t0.Add(at), pattern(n*localMSS), &h.out); err != nil {
		t.Fatal(err)
	}
	h.checkErrs(t)
	segs := h.out.segs
	h.out.segs = nil
	if len(segs) != n {
		t.Fatalf("sent %d segments, want %d", len(segs), n)
	}
	return segs
}

// checkResent checks that segs cover [from, from+n) in order with
// payloads of at most mss.
func checkResent(t *testing.T, segs []Segment, from Value, n, mss int) {
	t.Helper()
	seq := from
	for _, s := range segs {
		if s.Seq() != seq {
			t.Fatalf("segment at %d, want %d", s.Seq(), seq)
		}
		if l := len(s.Payload()); l > mss || l == 0 {
			t.Fatalf("segment at %d carries %d bytes, MSS is %d", s.Seq(), l, mss)
		}
		seq = seq.Add(uint32(len(s.Payload())))
	}
	if seq != from.Add(uint32(n)) {
		t.Fatalf("resent up to %d, want %d", seq, from.Add(uint32(n)))
	}
}

// RFC 1191 §6.1-6.3: a fragmentation-needed message whose quoted segment
// is in flight lowers the MSS to Next-Hop MTU - 40 and everything in
// flight goes again at once at the new size, without a congestion
// response.
func TestFragNeededLowersMSSAndResends(t *testing.T) {
	h := established(t)
	inFlight(t, h, ms(20), 4)
	cwnd, ssthresh := h.c.ctrl().Window(), h.c.ctrl().SlowStartThreshold()
	r := h.c.HandleICMP(t0.Add(ms(25)), ICMPError{Kind: ICMPFragmentationNeeded, MTU: 1200, Seq: localISS + 1}, &h.out)
	if r != ICMPMTULowered {
		t.Fatalf("result %v, want ICMPMTULowered", r)
	}
	in := h.c.Info()
	if in.MSS != 1160 || in.PathMTU != 1200 {
		t.Fatalf("MSS %d, path MTU %d; want 1160, 1200", in.MSS, in.PathMTU)
	}
	checkResent(t, h.out.segs, localISS+1, 4*localMSS, 1160)
	h.out.segs = nil
	if h.c.ctrl().Window() != cwnd || h.c.ctrl().SlowStartThreshold() != ssthresh {
		t.Fatalf("cwnd %d ssthresh %d after frag-needed, want %d %d (no congestion response)", h.c.ctrl().Window(), h.c.ctrl().SlowStartThreshold(), cwnd, ssthresh)
	}
	if got := h.cfg.Stats.PMTUDecreases.Load(); got != 1 {
		t.Fatalf("PMTUDecreases %d, want 1", got)
	}
	// The duplicate ACKs the dropped originals would cause start no fast
	// retransmit; the ACK of everything ends it.
	for i := 0; i < 3; i++ {
		h.send(t, ms(30+i), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535})
	}
	if h.c.recovery == recoveryFast || h.cfg.Stats.FastRetransmits.Load() != 0 {
		t.Fatal("duplicate ACKs after frag-needed started fast recovery")
	}
	h.send(t, ms(40), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1 + 4*localMSS, win: 65535})
	if h.c.snd.UNA != h.c.snd.MAX {
		t.Fatalf("SND.UNA %d, SND.MAX %d after the final ACK", h.c.snd.UNA, h.c.snd.MAX)
	}
	// New data goes at the new size.
	h.out.segs = nil
	h.c.Write(t0.Add(ms(50)), pattern(2000), &h.out)
	if s, ok := h.out.pop(); !ok || len(s.Payload()) != 1160 {
		t.Fatalf("new data after frag-needed: %v", s)
	}
}

// Forged or stale messages change nothing and are counted (RFC 5927
// §4.1, §7.2; RFC 1191 §3, §6.3; RFC 791's minimum MTU of 68).
func TestFragNeededIgnored(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    ICMPError
	}{
		{"seq acknowledged", ICMPError{Kind: ICMPFragmentationNeeded, MTU: 1200, Seq: localISS}},
		{"seq not sent yet", ICMPError{Kind: ICMPFragmentationNeeded, MTU: 1200, Seq: localISS + 1 + 4*localMSS}},
		{"seq far away", ICMPError{Kind: ICMPFragmentationNeeded, MTU: 1200, Seq: localISS + 1<<30}},
		{"MTU below 68", ICMPError{Kind: ICMPFragmentationNeeded, MTU: 67, Seq: localISS + 1}},
		{"MTU not lower", ICMPError{Kind: ICMPFragmentationNeeded, MTU: 1500, Seq: localISS + 1}},
		{"MTU higher", ICMPError{Kind: ICMPFragmentationNeeded, MTU: 9000, Seq: localISS + 1}},
		{"zero MTU, nothing quoted", ICMPError{Kind: ICMPFragmentationNeeded, Seq: localISS + 1}},
		{"unknown kind", ICMPError{Kind: 200, Seq: localISS + 1}},
		{"soft error out of window", ICMPError{Kind: ICMPHostUnreachable, Seq: localISS - 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := established(t)
			inFlight(t, h, ms(20), 4)
			if r := h.c.HandleICMP(t0.Add(ms(25)), tc.e, &h.out); r != ICMPIgnored {
				t.Fatalf("result %v, want ICMPIgnored", r)
			}
			if in := h.c.Info(); in.MSS != localMSS || in.PathMTU != 1500 || in.SoftError != nil {
				t.Fatalf("MSS %d, path MTU %d, soft error %v: changed", in.MSS, in.PathMTU, in.SoftError)
			}
			if len(h.out.segs) != 0 {
				t.Fatalf("sent %d segments", len(h.out.segs))
			}
			if got := h.cfg.Stats.ICMPIgnored.Load(); got != 1 {
				t.Fatalf("ICMPIgnored %d, want 1", got)
			}
		})
	}
}

// Next-Hop MTUs between 68 and 576 are raised to the floor of 576; a zero
// Next-Hop MTU uses RFC 1191 §5 and §7's plateau below the quoted
// datagram's length.
func TestFragNeededFloorAndPlateau(t *testing.T) {
	for _, tc := range []struct {
		name    string
		e       ICMPError
		wantMTU int
	}{
		{"68 raised to 576", ICMPError{MTU: 68}, 576},
		{"300 raised to 576", ICMPError{MTU: 300}, 576},
		{"576", ICMPError{MTU: 576}, 576},
		{"zero: plateau below 1496", ICMPError{QuotedLength: 1496}, 1492},
		{"zero: plateau below 1492", ICMPError{QuotedLength: 1492}, 1006},
		// RFC 1191 §5: a Total Length not below the estimate may come from
		// a 4.2BSD router that added the header length: 1500-20 = 1480.
		{"zero: 4.2BSD length corrected", ICMPError{QuotedLength: 1500}, 1006},
		{"zero: plateau 296 raised", ICMPError{QuotedLength: 400}, 576},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := established(t)
			inFlight(t, h, ms(20), 2)
			tc.e.Kind, tc.e.Seq = ICMPFragmentationNeeded, localISS+1+localMSS
			if r := h.c.HandleICMP(t0.Add(ms(25)), tc.e, &h.out); r != ICMPMTULowered {
				t.Fatalf("result %v", r)
			}
			if in := h.c.Info(); in.PathMTU != tc.wantMTU || int(in.MSS) != tc.wantMTU-40 {
				t.Fatalf("path MTU %d MSS %d, want %d %d", in.PathMTU, in.MSS, tc.wantMTU, tc.wantMTU-40)
			}
			checkResent(t, h.out.segs, localISS+1, 2*localMSS, tc.wantMTU-40)
		})
	}
}

// With timestamps the MSS leaves room for the option (RFC 6691 §2), and a
// later message for a larger MTU than the current estimate is ignored.
func TestFragNeededTimestampsAndSecond(t *testing.T) {
	cfg := testConfig()
	cfg.Timestamps = true
	h := newHarness(cfg)
	h.dial(t, 0)
	h.out.segs = nil
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535, opts: &Options{MSS: 1460, WindowScale: -1, Timestamp: true, TSVal: 1}})
	h.out.segs = nil
	h.c.Write(t0.Add(ms(20)), pattern(3*1448), &h.out)
	h.out.segs = nil
	if r := h.c.HandleICMP(t0.Add(ms(21)), ICMPError{Kind: ICMPFragmentationNeeded, MTU: 1280, Seq: localISS + 1}, &h.out); r != ICMPMTULowered {
		t.Fatalf("result %v", r)
	}
	if in := h.c.Info(); in.MSS != 1280-40-12 {
		t.Fatalf("MSS %d, want %d", in.MSS, 1280-40-12)
	}
	checkResent(t, h.out.segs, localISS+1, 3*1448, 1280-40-12)
	h.out.segs = nil
	if r := h.c.HandleICMP(t0.Add(ms(22)), ICMPError{Kind: ICMPFragmentationNeeded, MTU: 1400, Seq: localISS + 1}, &h.out); r != ICMPIgnored {
		t.Fatalf("second message for a larger MTU: %v", r)
	}
}

// RFC 1122 §4.2.3.9: host unreachable is a soft error. It does not abort
// the connection; Info shows it; when the connection then times out the
// error is the soft error, not ErrTimeout.
func TestSoftErrorReportedOnTimeout(t *testing.T) {
	h := established(t)
	h.cfg.MaxRetries = 3
	inFlight(t, h, ms(20), 1)
	if r := h.c.HandleICMP(t0.Add(ms(30)), ICMPError{Kind: ICMPHostUnreachable, Seq: localISS + 1}, &h.out); r != ICMPSoftError {
		t.Fatalf("result %v, want ICMPSoftError", r)
	}
	h.expectState(t, StateEstablished)
	if in := h.c.Info(); !errors.Is(in.SoftError, ErrHostUnreachable) {
		t.Fatalf("Info.SoftError %v", in.SoftError)
	}
	at := ms(20)
	for i := 0; i < 10 && !h.c.Done(); i++ {
		at = h.c.NextDeadline().Sub(t0)
		h.tick(t, at)
	}
	if !h.c.Done() || !errors.Is(h.c.Err(), ErrHostUnreachable) {
		t.Fatalf("done %v, err %v; want ErrHostUnreachable", h.c.Done(), h.c.Err())
	}
	if got := h.cfg.Stats.ICMPSoftErrors.Load(); got != 1 {
		t.Fatalf("ICMPSoftErrors %d", got)
	}
}

// An ACK of new data clears the soft error: "something worked".
func TestSoftErrorClearedByAck(t *testing.T) {
	h := established(t)
	inFlight(t, h, ms(20), 2)
	h.c.HandleICMP(t0.Add(ms(30)), ICMPError{Kind: ICMPTimeExceeded, Seq: localISS + 1}, &h.out)
	if h.c.Info().SoftError == nil {
		t.Fatal("no soft error recorded")
	}
	h.send(t, ms(40), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1 + localMSS, win: 65535})
	if err := h.c.Info().SoftError; err != nil {
		t.Fatalf("soft error %v after an ACK of new data", err)
	}
}

// Each kind maps to its error; the hard ones abort only before the
// connection is synchronized (RFC 1122 §4.2.3.9, RFC 5927 §5.2).
func TestICMPKinds(t *testing.T) {
	for _, tc := range []struct {
		kind    ICMPKind
		synSent bool
		want    ICMPResult
		err     error
	}{
		{ICMPNetUnreachable, false, ICMPSoftError, ErrNetUnreachable},
		{ICMPHostUnreachable, false, ICMPSoftError, ErrHostUnreachable},
		{ICMPSourceRouteFailed, false, ICMPSoftError, ErrSourceRouteFailed},
		{ICMPTimeExceeded, false, ICMPSoftError, ErrHostUnreachable},
		{ICMPParameterProblem, false, ICMPSoftError, ErrProtocolError},
		{ICMPPortUnreachable, false, ICMPSoftError, ErrConnectionRefused},
		{ICMPProtocolUnreachable, false, ICMPSoftError, ErrProtocolUnreachable},
		{ICMPNetUnreachable, true, ICMPSoftError, ErrNetUnreachable},
		{ICMPHostUnreachable, true, ICMPSoftError, ErrHostUnreachable},
		{ICMPPortUnreachable, true, ICMPAborted, ErrConnectionRefused},
		{ICMPProtocolUnreachable, true, ICMPAborted, ErrProtocolUnreachable},
	} {
		var h *harness
		seq := localISS
		if tc.synSent {
			h = synSent(t)
		} else {
			h = established(t)
			inFlight(t, h, ms(20), 1)
			seq = localISS + 1
		}
		r := h.c.HandleICMP(t0.Add(ms(30)), ICMPError{Kind: tc.kind, Seq: seq}, &h.out)
		if r != tc.want {
			t.Errorf("kind %d synSent %v: result %v, want %v", tc.kind, tc.synSent, r, tc.want)
			continue
		}
		if r == ICMPAborted {
			if !h.c.Done() || !errors.Is(h.c.Err(), tc.err) {
				t.Errorf("kind %d: done %v err %v", tc.kind, h.c.Done(), h.c.Err())
			}
			if len(h.out.segs) != 0 {
				t.Errorf("kind %d: abort sent %d segments", tc.kind, len(h.out.segs))
			}
			continue
		}
		if h.c.Done() || !errors.Is(h.c.Info().SoftError, tc.err) {
			t.Errorf("kind %d synSent %v: done %v soft error %v, want %v", tc.kind, tc.synSent, h.c.Done(), h.c.Info().SoftError, tc.err)
		}
	}
}

// A SYN that only draws host unreachable fails, after its retries, with
// that error (Linux reports EHOSTUNREACH to connect).
func TestSoftErrorInSynSent(t *testing.T) {
	h := synSent(t)
	h.cfg.SynRetries = 2
	h.c.HandleICMP(t0.Add(ms(5)), ICMPError{Kind: ICMPHostUnreachable, Seq: localISS}, &h.out)
	for i := 0; i < 10 && !h.c.Done(); i++ {
		h.tick(t, h.c.NextDeadline().Sub(t0))
	}
	if !errors.Is(h.c.Err(), ErrHostUnreachable) {
		t.Fatalf("err %v, want ErrHostUnreachable", h.c.Err())
	}
}

func TestICMPKindOf(t *testing.T) {
	for _, tc := range []struct {
		typ, code uint8
		want      ICMPKind
		ok        bool
	}{
		{3, 0, ICMPNetUnreachable, true}, {3, 1, ICMPHostUnreachable, true},
		{3, 2, ICMPProtocolUnreachable, true}, {3, 3, ICMPPortUnreachable, true},
		{3, 4, ICMPFragmentationNeeded, true}, {3, 5, ICMPSourceRouteFailed, true},
		{3, 13, ICMPHostUnreachable, true}, {3, 6, ICMPNetUnreachable, true},
		{3, 16, 0, false}, {11, 0, ICMPTimeExceeded, true}, {11, 1, ICMPTimeExceeded, true},
		{12, 0, ICMPParameterProblem, true}, {4, 0, 0, false}, {5, 1, 0, false}, {0, 0, 0, false},
	} {
		if k, ok := ICMPKindOf(tc.typ, tc.code); k != tc.want || ok != tc.ok {
			t.Errorf("ICMPKindOf(%d, %d) = %v %v, want %v %v", tc.typ, tc.code, k, ok, tc.want, tc.ok)
		}
	}
}

// SetPathMTU (another connection to the destination learned a lower path
// MTU) lowers the MSS without resending; the first frag-needed about data
// sent at the old size then resends it once, and later ones do not
// (RFC 1191 §6.2, §6.4).
func TestSetPathMTUThenResendOnce(t *testing.T) {
	h := established(t)
	inFlight(t, h, ms(20), 3)
	h.c.SetPathMTU(1280)
	if in := h.c.Info(); in.PathMTU != 1280 || in.MSS != 1240 || len(h.out.segs) != 0 {
		t.Fatalf("path MTU %d MSS %d, %d segments sent", in.PathMTU, in.MSS, len(h.out.segs))
	}
	e := ICMPError{Kind: ICMPFragmentationNeeded, MTU: 1280, Seq: localISS + 1, QuotedLength: 1500}
	if r := h.c.HandleICMP(t0.Add(ms(25)), e, &h.out); r != ICMPMTULowered {
		t.Fatalf("first message: %v", r)
	}
	checkResent(t, h.out.segs, localISS+1, 3*localMSS, 1240)
	h.out.segs = nil
	e.Seq = localISS + 1 + localMSS
	if r := h.c.HandleICMP(t0.Add(ms(25)), e, &h.out); r != ICMPIgnored || len(h.out.segs) != 0 {
		t.Fatalf("second message: %v, %d segments", r, len(h.out.segs))
	}
	// Below the floor, or not lower: ignored.
	h.c.SetPathMTU(500)
	h.c.SetPathMTU(1400)
	if in := h.c.Info(); in.PathMTU != 1280 {
		t.Fatalf("path MTU %d", in.PathMTU)
	}
}

// FuzzHandleICMP feeds a connection with data in flight a series of ICMP
// errors of any kind, MTU, quoted sequence number and length, mixed with
// timer ticks: no panic, the MSS stays within [576-40-options, interface
// MSS], the path MTU never rises from a message and never falls below the
// floor.
func FuzzHandleICMP(f *testing.F) {
	f.Add([]byte{4, 0x04, 0xb0, 0, 0, 0, 0, 0x05, 0xdc})
	f.Add([]byte{4, 0, 0, 0, 0, 0, 0, 0x05, 0xdc, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{2, 0, 0, 0, 0, 0, 1, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h := established(t)
		inFlight(t, h, ms(20), 3)
		at := ms(21)
		last := h.c.PathMTU()
		for len(b) >= 9 {
			e := ICMPError{
				Kind:         ICMPKind(b[0] % 10),
				MTU:          int(b[1])<<8 | int(b[2]),
				Seq:          localISS + 1 + Value(int32(int8(b[3])))*100 + Value(b[4]),
				QuotedLength: int(b[7])<<8 | int(b[8]),
			}
			if b[5]&1 != 0 {
				h.c.Tick(t0.Add(at), &h.out)
			}
			h.c.HandleICMP(t0.Add(at), e, &h.out)
			h.checkErrs(t)
			if h.c.Done() {
				return
			}
			mtu := h.c.PathMTU()
			if mtu > last || mtu < pmtuFloor {
				t.Fatalf("path MTU %d after %d (message %+v)", mtu, last, e)
			}
			if ms := h.c.Info().MSS; int(ms) > mtu-40 || ms < pmtuFloor-40-tsOptionLen {
				t.Fatalf("MSS %d with path MTU %d", ms, mtu)
			}
			for _, s := range h.out.segs {
				if len(s.Payload()) > int(h.c.Info().MSS) && len(s.Payload()) > mtu-40 {
					t.Fatalf("segment of %d bytes with path MTU %d", len(s.Payload()), mtu)
				}
			}
			h.out.segs = nil
			last = mtu
			at += ms(int(b[6]))
			b = b[9:]
		}
	})
}
