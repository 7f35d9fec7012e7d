package tcp

import (
	"errors"
	"testing"
)

// RFC 9293 Figure 6: basic three-way handshake, from the active side.
func TestRFC9293Figure6ThreeWayHandshake(t *testing.T) {
	h := established(t)
	if !h.c.Established() || h.c.Err() != nil {
		t.Fatalf("Established=%v Err=%v", h.c.Established(), h.c.Err())
	}
	// Line 5: data on the established connection.
	if n, err := h.c.Write(t0.Add(ms(20)), []byte("hello"), &h.out); n != 5 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	h.expect(t, ms(20), sg{flags: PSHACK, seq: localISS + 1, ack: remoteISS + 1, data: []byte("hello")})
}

// RFC 9293 Figure 6 from the passive side, through a Listener.
func TestRFC9293Figure6ThreeWayHandshakePassive(t *testing.T) {
	h := establishedPassive(t)
	if !h.l.AcceptReady() || h.l.Accept() != h.c {
		t.Fatal("established connection not on the accept queue")
	}
	if syn, acc := h.l.Pending(); syn != 0 || acc != 0 {
		t.Fatalf("Pending = %d, %d", syn, acc)
	}
	h.send(t, ms(20), sg{flags: PSHACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535, data: []byte("hi")})
	buf := make([]byte, 10)
	n, err := h.c.Read(t0.Add(ms(20)), buf, &h.out)
	if n != 2 || err != nil || string(buf[:2]) != "hi" {
		t.Fatalf("Read = %d, %v, %q", n, err, buf[:n])
	}
	// The delayed ACK fires after DelayedAckTimeout.
	h.expectNothing(t, ms(59))
	h.expect(t, ms(60), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 3})
}

// RFC 9293 Figure 7: simultaneous connection synchronization.
func TestRFC9293Figure7SimultaneousOpen(t *testing.T) {
	h := synSent(t)
	// Line 3: the peer's SYN crosses ours; A enters SYN-RECEIVED and
	// sends <SEQ=100><ACK=301><CTL=SYN,ACK>.
	h.send(t, ms(10), sg{flags: SYN, seq: remoteISS, win: 65535, opts: mssOpt(1460)})
	h.expectState(t, StateSynReceived)
	h.expect(t, ms(10), sg{flags: SYNACK, seq: localISS, ack: remoteISS + 1, opts: mssOpt(localMSS)})
	// Line 6: the peer's SYN,ACK arrives: ESTABLISHED.
	h.send(t, ms(20), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535, opts: mssOpt(1460)})
	h.expectState(t, StateEstablished)
	h.expectNothing(t, ms(20))
	if h.c.Listener() != nil {
		t.Fatal("active conn has a listener")
	}
}

// RFC 9293 Figure 7 with both sides as Conns, one segment at a time.
func TestRFC9293Figure7SimultaneousOpenTwoConns(t *testing.T) {
	cfg := testConfig()
	var oa, ob recOutput
	a := Dial(&cfg, tuple, 100, 1460, t0, &oa)
	b := Dial(&cfg, tuple.Reverse(), 300, 1460, t0, &ob)
	sa, _ := oa.pop()
	sb, _ := ob.pop()
	a.Input(t0.Add(ms(1)), reparse(t, sb, tuple.Reverse()), &oa) // A gets B's SYN
	b.Input(t0.Add(ms(1)), reparse(t, sa, tuple), &ob)           // B gets A's SYN
	if a.State() != StateSynReceived || b.State() != StateSynReceived {
		t.Fatalf("states %v %v", a.State(), b.State())
	}
	sa, _ = oa.pop()
	sb, _ = ob.pop()
	a.Input(t0.Add(ms(2)), reparse(t, sb, tuple.Reverse()), &oa)
	b.Input(t0.Add(ms(2)), reparse(t, sa, tuple), &ob)
	if a.State() != StateEstablished || b.State() != StateEstablished {
		t.Fatalf("states %v %v", a.State(), b.State())
	}
}

// reparse checks s as a segment sent on from (from the sender's view).
func reparse(t *testing.T, s Segment, from Tuple) Segment {
	t.Helper()
	seg, err := ParseSegment(s, from.Local.Addr(), from.Remote.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return seg
}

// RFC 9293 Figure 8: recovery from an old duplicate SYN. The passive side
// (here local) gets an old SYN, answers it, gets a RST from the active side
// and returns to LISTEN; the real SYN then opens the connection.
func TestRFC9293Figure8OldDuplicateSYN(t *testing.T) {
	h := listening(t, 8)
	// Line 3: an old duplicate SYN <SEQ=90>.
	h.send(t, 0, sg{flags: SYN, seq: 90, win: 65535})
	h.expect(t, 0, sg{flags: SYNACK, seq: localISS, ack: 91})
	h.expectState(t, StateSynReceived)
	// Line 5: A answers the SYN,ACK of line 4 with <SEQ=91><CTL=RST>.
	h.send(t, ms(1), sg{flags: RST, seq: 91})
	h.expectState(t, StateListen)
	if h.c != nil || h.l.AcceptReady() {
		t.Fatal("the RST left a connection")
	}
	if syn, _ := h.l.Pending(); syn != 0 {
		t.Fatalf("SYN queue %d after RST", syn)
	}
	// Line 6: the real SYN.
	h.send(t, ms(2), sg{flags: SYN, seq: 100, win: 65535})
	h.expect(t, ms(2), sg{flags: SYNACK, seq: localISS, ack: 101})
	h.send(t, ms(3), sg{flags: ACK, seq: 101, ack: localISS + 1, win: 65535})
	h.expectState(t, StateEstablished)
}

// RFC 9293 Figure 8 from the active side: a SYN,ACK that acknowledges an
// old SYN gets <SEQ=SEG.ACK><CTL=RST> and the connection stays in SYN-SENT.
func TestRFC9293Figure8ActiveSideRejectsOldSynAck(t *testing.T) {
	h := synSent(t)
	h.send(t, ms(1), sg{flags: SYNACK, seq: 300, ack: 91, win: 65535})
	h.expect(t, ms(1), sg{flags: RST, seq: 91})
	h.expectState(t, StateSynSent)
	h.send(t, ms(2), sg{flags: SYNACK, seq: 400, ack: localISS + 1, win: 65535})
	h.expect(t, ms(2), sg{flags: ACK, seq: localISS + 1, ack: 401})
	h.expectState(t, StateEstablished)
}

// RFC 9293 Figure 9: half-open connection discovery. The local side is B,
// still ESTABLISHED; A crashed and sends a new SYN. B answers with a
// challenge ACK (RFC 5961 §4); A's RST with SEQ=RCV.NXT then resets B.
func TestRFC9293Figure9HalfOpenDiscovery(t *testing.T) {
	h := established(t)
	// Line 3: A's new SYN <SEQ=400>.
	h.send(t, ms(20), sg{flags: SYN, seq: 400, win: 65535})
	h.expect(t, ms(20), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1})
	h.expectState(t, StateEstablished)
	// Line 5: A in SYN-SENT finds the ACK unacceptable: <SEQ=SEG.ACK><CTL=RST>.
	h.send(t, ms(21), sg{flags: RST, seq: remoteISS + 1})
	h.expectState(t, StateClosed)
	if !errors.Is(h.c.Err(), ErrConnectionReset) {
		t.Fatalf("Err = %v", h.c.Err())
	}
}

// RFC 9293 Figure 9 from A's side: A in SYN-SENT gets B's ACK for the old
// connection and answers <SEQ=SEG.ACK><CTL=RST>.
func TestRFC9293Figure9HalfOpenDiscoveryActiveSide(t *testing.T) {
	h := synSent(t)
	h.send(t, ms(1), sg{flags: ACK, seq: 300, ack: 100, win: 65535})
	h.expect(t, ms(1), sg{flags: RST, seq: 100})
	h.expectState(t, StateSynSent)
}

// RFC 9293 Figure 10: the active side causes half-open discovery. The local
// side is A, sending data to B, which crashed: B's Reset answers
// <SEQ=SEG.ACK><CTL=RST> and A aborts.
func TestRFC9293Figure10ActiveSideCausesHalfOpenDiscovery(t *testing.T) {
	h := established(t)
	h.c.Write(t0.Add(ms(20)), []byte("abc"), &h.out)
	data := h.expect(t, ms(20), sg{flags: PSHACK, seq: localISS + 1, ack: remoteISS + 1, data: []byte("abc")})
	// B has no TCB: Reset forms the reply from A's segment.
	var bout recOutput
	Reset(tuple.Reverse(), reparse(t, data, tuple), &bout)
	rst, ok := bout.pop()
	if !ok || rst.Flags() != RST || rst.Seq() != remoteISS+1 {
		t.Fatalf("Reset sent %v", rst)
	}
	h.c.Input(t0.Add(ms(21)), reparse(t, rst, tuple.Reverse()), &h.out)
	h.expectState(t, StateClosed)
	if !errors.Is(h.c.Err(), ErrConnectionReset) {
		t.Fatalf("Err = %v", h.c.Err())
	}
	if _, err := h.c.Write(t0.Add(ms(22)), []byte("x"), &h.out); !errors.Is(err, ErrConnectionReset) {
		t.Fatalf("Write after reset: %v", err)
	}
}

// RFC 9293 Figure 11: old duplicate SYN initiates a reset on two passive
// sockets. Local B is listening; an old SYN arrives, B sends SYN,ACK, the
// "active" side has no TCB and its Reset answers; B returns to LISTEN.
func TestRFC9293Figure11OldDuplicateSYNResetsPassiveSocket(t *testing.T) {
	h := listening(t, 8)
	h.send(t, 0, sg{flags: SYN, seq: 200, win: 65535})
	synack := h.expect(t, 0, sg{flags: SYNACK, seq: localISS, ack: 201})
	var aout recOutput
	Reset(tuple.Reverse(), reparse(t, synack, tuple), &aout)
	rst, ok := aout.pop()
	if !ok || rst.Flags() != RST || rst.Seq() != 201 {
		t.Fatalf("Reset sent %v", rst)
	}
	h.l.Input(t0.Add(ms(1)), tuple, reparse(t, rst, tuple.Reverse()), localISS, localMSS, &h.out)
	h.expectState(t, StateListen)
	if syn, _ := h.l.Pending(); syn != 0 || h.l.AcceptReady() {
		t.Fatalf("SYN queue %d, AcceptReady=%v", syn, h.l.AcceptReady())
	}
}

// RFC 9293 §3.10.7.3: RST in SYN-SENT with an acceptable ACK is "connection
// refused"; without ACK, or with an unacceptable one, it is dropped.
func TestSynSentRST(t *testing.T) {
	h := synSent(t)
	h.send(t, ms(1), sg{flags: RST, seq: 0})
	h.expectState(t, StateSynSent)
	h.send(t, ms(1), sg{flags: RSTACK, seq: 0, ack: localISS + 5})
	h.expectState(t, StateSynSent)
	h.expectNothing(t, ms(1))
	h.send(t, ms(2), sg{flags: RSTACK, seq: 0, ack: localISS + 1})
	h.expectState(t, StateClosed)
	if !errors.Is(h.c.Err(), ErrConnectionRefused) {
		t.Fatalf("Err = %v", h.c.Err())
	}
}

// RFC 9293 §3.10.7.4 fifth step, SYN-RECEIVED: an unacceptable ACK gets
// <SEQ=SEG.ACK><CTL=RST>.
func TestSynReceivedBadAck(t *testing.T) {
	h := synReceived(t)
	h.send(t, ms(1), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 77, win: 65535})
	h.expect(t, ms(1), sg{flags: RST, seq: localISS + 77})
	h.expectState(t, StateSynReceived)
}

// A retransmitted SYN in SYN-RECEIVED gets the SYN,ACK again, unless it
// comes within 500 ms of the last one (a copy, not a retransmission).
func TestSynReceivedDuplicateSYN(t *testing.T) {
	h := synReceived(t)
	h.send(t, ms(100), sg{flags: SYN, seq: remoteISS, win: 65535, opts: mssOpt(1460)})
	h.expectNothing(t, ms(100))
	h.send(t, ms(600), sg{flags: SYN, seq: remoteISS, win: 65535, opts: mssOpt(1460)})
	h.expect(t, ms(600), sg{flags: SYNACK, seq: localISS, ack: remoteISS + 1})
	h.expectState(t, StateSynReceived)
}
