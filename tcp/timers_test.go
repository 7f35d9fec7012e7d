package tcp

import (
	"errors"
	"testing"
	"time"
)

// RFC 6298: the first retransmission comes at exactly the RTO, and each
// further one after twice the previous timeout (5.5), resending the
// earliest unacknowledged segment (5.4).
func TestRetransmitAtRTOWithBackoff(t *testing.T) {
	h := established(t)
	// The SYN,ACK came 10 ms after the SYN: SRTT 10 ms, RTO rounds up to
	// MinRTO (RFC 6298 (2.4)).
	if got := h.c.Info().RTO; got != h.cfg.MinRTO {
		t.Fatalf("RTO %v, want %v", got, h.cfg.MinRTO)
	}
	h.c.Write(t0.Add(ms(20)), []byte("abc"), &h.out)
	data := sg{flags: PSHACK, seq: localISS + 1, ack: remoteISS + 1, data: []byte("abc")}
	h.expect(t, ms(20), data)
	h.expectNothing(t, ms(220)-time.Nanosecond)
	h.expect(t, ms(220), data)
	h.expectNothing(t, ms(620)-time.Nanosecond)
	h.expect(t, ms(620), data)
	h.expectNothing(t, ms(1420)-time.Nanosecond)
	h.expect(t, ms(1420), data)
	if got := h.c.Info().Retransmits; got != 3 {
		t.Fatalf("Retransmits %d", got)
	}
	// An ACK stops the timer (RFC 6298 (5.2)).
	h.send(t, ms(1500), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 4, win: 65535})
	h.expectNothing(t, ms(10000))
	if !h.c.NextDeadline().IsZero() {
		t.Fatalf("timer still set: %v", h.c.NextDeadline())
	}
}

// After MaxRetries retransmissions the connection fails with ErrTimeout.
func TestRetransmitTimeout(t *testing.T) {
	h := newHarness(testConfig())
	h.cfg.MaxRetries = 3
	h.dial(t, 0)
	h.expect(t, 0, sg{flags: SYN, seq: localISS})
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535})
	h.expect(t, ms(10), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1})
	h.c.Write(t0.Add(ms(20)), []byte("x"), &h.out)
	data := sg{flags: PSHACK, seq: localISS + 1, ack: remoteISS + 1, data: []byte("x")}
	h.expect(t, ms(20), data)
	h.expect(t, ms(220), data)
	h.expect(t, ms(620), data)
	h.expect(t, ms(1420), data)
	h.expectNothing(t, ms(3020)-time.Nanosecond)
	h.expectState(t, StateEstablished)
	h.expectNothing(t, ms(3020))
	h.expectState(t, StateClosed)
	if !errors.Is(h.c.Err(), ErrTimeout) {
		t.Fatalf("Err = %v", h.c.Err())
	}
	var te interface{ Timeout() bool }
	if !errors.As(h.c.Err(), &te) || !te.Timeout() {
		t.Fatal("ErrTimeout has no Timeout() true")
	}
	if _, err := h.c.Read(t0.Add(ms(3021)), make([]byte, 1), &h.out); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Read: %v", err)
	}
}

// SYN retransmission: InitialRTO 1 s, doubling, SynRetries times, then
// ErrTimeout (RFC 6298 (2.1), (5.5)).
func TestSynRetransmitAndTimeout(t *testing.T) {
	h := synSent(t)
	at := time.Duration(0)
	rto := h.cfg.InitialRTO
	for i := 0; i < h.cfg.SynRetries; i++ {
		at += rto
		h.expectNothing(t, at-time.Nanosecond)
		h.expect(t, at, sg{flags: SYN, seq: localISS, opts: mssOpt(localMSS)})
		rto *= 2
	}
	h.expectNothing(t, at+rto-time.Nanosecond)
	h.expectState(t, StateSynSent)
	h.expectNothing(t, at+rto)
	h.expectState(t, StateClosed)
	if !errors.Is(h.c.Err(), ErrTimeout) {
		t.Fatalf("Err = %v", h.c.Err())
	}
}

// A half-open entry retransmits its SYN,ACK on the RFC 6298 schedule
// (1 s, doubling) SynAckRetries times, then leaves the SYN queue one
// timeout after the last.
func TestSynAckRetransmit(t *testing.T) {
	h := synReceived(t)
	at := 0
	for i := 0; i < h.cfg.SynAckRetries; i++ {
		at += 1000 << i
		h.expectNothing(t, ms(at-1))
		h.expect(t, ms(at), sg{flags: SYNACK, seq: localISS, ack: remoteISS + 1, opts: mssOpt(localMSS)})
		h.expectState(t, StateSynReceived)
	}
	at += 1000 << h.cfg.SynAckRetries
	h.expectNothing(t, ms(at-1))
	h.expectState(t, StateSynReceived)
	h.expectNothing(t, ms(at))
	h.expectState(t, StateListen)
	if syn, _ := h.l.Pending(); syn != 0 {
		t.Fatalf("SYN queue %d", syn)
	}
	st := h.l.Stats()
	if st.SYNACKRetransmits != uint64(h.cfg.SynAckRetries) || st.SYNQueueTimeouts != 1 || h.cfg.Stats.HalfOpen.Load() != 0 {
		t.Fatalf("stats %+v, HalfOpen %d", st, h.cfg.Stats.HalfOpen.Load())
	}
}

// RFC 9293 §3.8.6.1: a zero window is probed on the persist timer with one
// octet of new data, with exponential backoff, and data flows once the
// window opens.
func TestZeroWindowProbe(t *testing.T) {
	h := established(t)
	h.send(t, ms(20), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 0, winZero: true})
	h.c.Write(t0.Add(ms(30)), []byte("hello"), &h.out)
	h.expectNothing(t, ms(30))
	// Persist timer: RTO (200 ms) after the data was queued.
	h.expectNothing(t, ms(230)-time.Nanosecond)
	probe := sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1, data: []byte("h")}
	h.expect(t, ms(230), probe)
	// The peer still offers no window: backoff doubles.
	h.send(t, ms(231), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 0, winZero: true})
	h.expectNothing(t, ms(630)-time.Nanosecond)
	h.expect(t, ms(630), probe)
	h.send(t, ms(631), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 0, winZero: true})
	h.expectNothing(t, ms(1430)-time.Nanosecond)
	h.expect(t, ms(1430), probe)
	if h.c.State() != StateEstablished {
		t.Fatal("probing must not time out the connection")
	}
	// The window opens: the data goes.
	h.send(t, ms(1431), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 1000})
	h.expect(t, ms(1431), sg{flags: PSHACK, seq: localISS + 1, ack: remoteISS + 1, data: []byte("hello")})
	if got := h.cfg.Stats.WindowProbes.Load(); got != 3 {
		t.Fatalf("WindowProbes %d", got)
	}
}

// A probe the peer accepts moves SND.UNA past it.
func TestZeroWindowProbeAccepted(t *testing.T) {
	h := established(t)
	h.send(t, ms(20), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 0, winZero: true})
	h.c.Write(t0.Add(ms(30)), []byte("hello"), &h.out)
	h.expect(t, ms(230), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1, data: []byte("h")})
	h.send(t, ms(231), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 2, win: 100})
	h.expect(t, ms(231), sg{flags: PSHACK, seq: localISS + 2, ack: remoteISS + 1, data: []byte("ello")})
}

// The local receive window closes when the reader does not read, a zero
// window probe is answered with an ACK of RCV.NXT and window 0, and
// reading opens the window with an update (RFC 9293 §3.8.6.2.2).
func TestReceiveWindowClosesAndReopens(t *testing.T) {
	h := newHarness(testConfig())
	h.cfg.ReceiveBufferSize = 4000
	h.dial(t, 0)
	h.expect(t, 0, sg{flags: SYN, seq: localISS, win: 4000})
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535, opts: mssOpt(1000)})
	h.expect(t, ms(10), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1, win: 4000})
	seq := remoteISS + 1
	for i := 0; i < 4; i++ {
		h.send(t, ms(20), sg{flags: ACK, seq: seq, ack: localISS + 1, win: 65535, data: make([]byte, 1000)})
		seq += 1000
	}
	h.expect(t, ms(20), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 2001, win: 2000})
	h.expect(t, ms(20), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 4001, winZero: true})
	// A window probe: not accepted, answered with the same ACK.
	h.send(t, ms(30), sg{flags: ACK, seq: seq, ack: localISS + 1, win: 65535, data: []byte("p")})
	h.expect(t, ms(30), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 4001, winZero: true})
	// Reading 100 bytes is not worth an update; reading 2000 is.
	buf := make([]byte, 2000)
	h.c.Read(t0.Add(ms(40)), buf[:100], &h.out)
	h.expectNothing(t, ms(40))
	h.c.Read(t0.Add(ms(41)), buf[:1900], &h.out)
	h.expect(t, ms(41), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 4001, win: 2000})
}

// Delayed ACK: one full segment waits DelayedAckTimeout, a second full
// segment is acknowledged at once (RFC 5681 §4.2), and out-of-order data
// at once.
func TestDelayedAck(t *testing.T) {
	h := established(t)
	full := make([]byte, localMSS)
	h.send(t, ms(20), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535, data: full})
	h.expectNothing(t, ms(20))
	h.send(t, ms(21), sg{flags: ACK, seq: remoteISS + 1 + localMSS, ack: localISS + 1, win: 65535, data: full})
	h.expect(t, ms(21), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1 + 2*localMSS})
	h.send(t, ms(22), sg{flags: ACK, seq: remoteISS + 1 + 2*localMSS, ack: localISS + 1, win: 65535, data: []byte("a")})
	h.expectNothing(t, ms(61))
	h.expect(t, ms(62), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 2 + 2*localMSS})
	// Out of order: immediate duplicate ACK.
	h.send(t, ms(70), sg{flags: ACK, seq: remoteISS + 100 + 2*localMSS, ack: localISS + 1, win: 65535, data: []byte("z")})
	h.expect(t, ms(70), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 2 + 2*localMSS})
}

// Keepalive (RFC 1122 §4.2.3.6): after the idle time, probes
// <SEQ=SND.UNA-1>; unanswered probes end the connection with ErrTimeout.
func TestKeepAlive(t *testing.T) {
	h := established(t)
	h.c.SetKeepAliveParams(10*time.Second, time.Second, 2)
	h.c.SetKeepAlive(true)
	probe := sg{flags: ACK, seq: localISS, ack: remoteISS + 1}
	h.expectNothing(t, ms(10)+10*time.Second-time.Nanosecond)
	h.expect(t, ms(10)+10*time.Second, probe)
	// An answer resets the idle timer.
	h.send(t, ms(10)+10*time.Second+ms(1), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535})
	base := ms(11) + 10*time.Second
	h.expectNothing(t, base+10*time.Second-time.Nanosecond)
	h.expect(t, base+10*time.Second, probe)
	h.expect(t, base+11*time.Second, probe)
	h.expectNothing(t, base+12*time.Second)
	h.expectState(t, StateClosed)
	if !errors.Is(h.c.Err(), ErrTimeout) {
		t.Fatalf("Err = %v", h.c.Err())
	}
}

// A peer that closes its window with data in flight is probed, not timed
// out: after the retransmission timeout finds the window shut, the persist
// timer takes over for as long as the peer answers.
func TestWindowShrinksToZeroWithDataInFlight(t *testing.T) {
	h := established(t)
	h.cfg.MaxRetries = 3
	data := pattern(2000)
	h.c.Write(t0.Add(ms(20)), data, &h.out)
	h.out.segs = nil
	h.send(t, ms(30), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 0, winZero: true})
	now := ms(30)
	for i := 0; i < 20; i++ {
		d := h.c.NextDeadline()
		if d.IsZero() {
			t.Fatal("no timer")
		}
		now = d.Sub(t0)
		h.tick(t, now)
		for len(h.out.segs) > 0 {
			s, _ := h.out.pop()
			if len(s.Payload()) > 1 {
				t.Fatalf("sent %d bytes into a zero window", len(s.Payload()))
			}
		}
		h.send(t, now+ms(1), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 0, winZero: true})
	}
	h.expectState(t, StateEstablished)
	h.send(t, now+ms(2), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535})
	h.expect(t, now+ms(2), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1, data: data[:localMSS]})
}

// After a timeout SND.NXT goes back to SND.UNA, but bare ACKs keep
// carrying the highest sequence number sent: a lower one would be below
// the peer's RCV.NXT, unacceptable there, and its ACK field lost (two
// peers both retransmitting could then never acknowledge each other).
func TestBareAckAfterTimeoutUsesHighestSequence(t *testing.T) {
	h := established(t)
	data := pattern(3000)
	h.c.Write(t0.Add(ms(20)), data, &h.out)
	h.out.segs = nil
	h.expect(t, ms(220), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1, data: data[:localMSS]})
	h.send(t, ms(230), sg{flags: ACK, seq: remoteISS + 101, ack: localISS + 1, win: 65535, data: []byte("ooo")})
	h.expect(t, ms(230), sg{flags: ACK, seq: localISS + 3001, ack: remoteISS + 1})
	h.c.Abort(t0.Add(ms(231)), &h.out)
	h.expect(t, ms(231), sg{flags: RST, seq: localISS + 3001})
}

// An orphaned connection stops probing a shut window after MaxRetries
// probes and resets.
func TestOrphanZeroWindowGivesUp(t *testing.T) {
	h := established(t)
	h.cfg.MaxRetries = 3
	h.send(t, ms(20), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 0, winZero: true})
	h.c.Write(t0.Add(ms(30)), []byte("data"), &h.out)
	h.c.Close(t0.Add(ms(31)), &h.out)
	h.expectState(t, StateFinWait1)
	for i := 0; i < 10 && !h.c.Done(); i++ {
		d := h.c.NextDeadline()
		h.tick(t, d.Sub(t0))
		if !h.c.Done() {
			h.send(t, d.Sub(t0)+ms(1), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 0, winZero: true})
		}
	}
	h.expectState(t, StateClosed)
	probes, rsts := 0, 0
	for _, s := range h.out.segs {
		switch {
		case s.Flags().Has(FlagRST):
			rsts++
		case len(s.Payload()) == 1:
			probes++
		}
	}
	if probes != 3 || rsts != 1 {
		t.Fatalf("%d probes, %d RSTs", probes, rsts)
	}
}

// A peer that shuts its window and stops answering probes is gone: after
// MaxRetries unanswered probes the connection fails with ErrTimeout
// (RFC 1122 §4.2.3.5 R2), without a reset. An answer, even one that keeps
// the window shut, starts the count again (RFC 1122 §4.2.2.17).
func TestZeroWindowSilentPeerGivesUp(t *testing.T) {
	h := established(t)
	h.cfg.MaxRetries = 3
	h.send(t, ms(20), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 0, winZero: true})
	h.c.Write(t0.Add(ms(30)), []byte("data"), &h.out)
	probes := 0
	fire := func() {
		t.Helper()
		d := h.c.NextDeadline()
		if d.IsZero() {
			t.Fatal("no timer")
		}
		h.tick(t, d.Sub(t0))
		for len(h.out.segs) > 0 {
			s, _ := h.out.pop()
			if len(s.Payload()) != 1 || s.Flags().Has(FlagRST) {
				t.Fatalf("sent %s, want a probe", describe(s))
			}
			probes++
		}
	}
	fire()
	fire()
	// The second probe is answered, window still shut.
	at := h.c.NextDeadline().Sub(t0) - ms(1)
	h.send(t, at, sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 0, winZero: true})
	h.out.segs = nil
	for range 3 {
		fire()
	}
	h.expectState(t, StateEstablished)
	fire() // the fourth unanswered firing gives up
	h.expectState(t, StateClosed)
	if probes != 5 {
		t.Fatalf("%d probes, want 5", probes)
	}
	if !errors.Is(h.c.Err(), ErrTimeout) {
		t.Fatalf("Err = %v, want ErrTimeout", h.c.Err())
	}
}
