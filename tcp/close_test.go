package tcp

import (
	"errors"
	"io"
	"testing"
	"time"
)

// RFC 9293 Figure 12: normal close sequence, from the side that closes
// first (A): FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT, CLOSED after exactly 2*MSL.
func TestRFC9293Figure12NormalClose(t *testing.T) {
	h := timeWait(t) // lines 2-5; TIME-WAIT entered at 40 ms
	expiry := ms(40) + 2*h.cfg.MSL
	if got := h.c.NextDeadline(); !got.Equal(t0.Add(expiry)) {
		t.Fatalf("NextDeadline %v, want %v", got.Sub(t0), expiry)
	}
	h.expectNothing(t, expiry-time.Nanosecond)
	h.expectState(t, StateTimeWait)
	h.expectNothing(t, expiry)
	h.expectState(t, StateClosed)
	if h.c.Err() != nil || !h.c.Done() {
		t.Fatalf("Err=%v Done=%v", h.c.Err(), h.c.Done())
	}
}

// RFC 9293 Figure 12 from the side that closes second (B): CLOSE-WAIT,
// LAST-ACK, CLOSED.
func TestRFC9293Figure12NormalClosePassiveSide(t *testing.T) {
	h := lastAck(t)
	buf := make([]byte, 4)
	if n, err := h.c.Read(t0.Add(ms(31)), buf, &h.out); n != 0 || err != io.EOF {
		t.Fatalf("Read = %d, %v; want EOF", n, err)
	}
	h.send(t, ms(40), sg{flags: ACK, seq: remoteISS + 2, ack: localISS + 2, win: 65535})
	h.expectState(t, StateClosed)
	h.expectNothing(t, ms(40))
	if h.c.Err() != nil {
		t.Fatal(h.c.Err())
	}
}

// RFC 9293 Figure 13: simultaneous close sequence.
func TestRFC9293Figure13SimultaneousClose(t *testing.T) {
	h := closing(t) // both FINs crossed: CLOSING
	// Line 4: the ACK of our FIN: TIME-WAIT.
	h.send(t, ms(50), sg{flags: ACK, seq: remoteISS + 2, ack: localISS + 2, win: 65535})
	h.expectState(t, StateTimeWait)
	h.expectNothing(t, ms(50))
	h.expectNothing(t, ms(50)+2*h.cfg.MSL)
	h.expectState(t, StateClosed)
}

// RFC 9293 Figure 13 with two Conns closing at once.
func TestRFC9293Figure13SimultaneousCloseTwoConns(t *testing.T) {
	p := newPair(t, testConfig(), 0)
	p.a.CloseWrite(p.now, p.aOut())
	p.b.CloseWrite(p.now, p.bOut())
	if p.a.State() != StateFinWait1 || p.b.State() != StateFinWait1 {
		t.Fatalf("states %v %v", p.a.State(), p.b.State())
	}
	p.deliverAll(t) // FINs cross; each side enters CLOSING, then TIME-WAIT
	if p.a.State() != StateTimeWait || p.b.State() != StateTimeWait {
		t.Fatalf("states %v %v", p.a.State(), p.b.State())
	}
}

// FIN-WAIT-1 straight to TIME-WAIT when the FIN also acknowledges ours
// (RFC 9293 §3.10.7.4 eighth step).
func TestFinWait1ToTimeWait(t *testing.T) {
	h := finWait1(t)
	h.send(t, ms(30), sg{flags: FINACK, seq: remoteISS + 1, ack: localISS + 2, win: 65535})
	h.expect(t, ms(30), sg{flags: ACK, seq: localISS + 2, ack: remoteISS + 2})
	h.expectState(t, StateTimeWait)
}

// A retransmitted FIN in TIME-WAIT is acknowledged and restarts 2*MSL.
func TestTimeWaitRetransmittedFIN(t *testing.T) {
	h := timeWait(t)
	h.send(t, ms(1000), sg{flags: FINACK, seq: remoteISS + 1, ack: localISS + 2, win: 65535})
	h.expect(t, ms(1000), sg{flags: ACK, seq: localISS + 2, ack: remoteISS + 2})
	h.expectNothing(t, ms(40)+2*h.cfg.MSL)
	h.expectState(t, StateTimeWait)
	h.expectNothing(t, ms(1000)+2*h.cfg.MSL)
	h.expectState(t, StateClosed)
}

// CLOSE in SYN-SENT deletes the TCB (RFC 9293 §3.10.4).
func TestCloseInSynSent(t *testing.T) {
	h := synSent(t)
	h.c.Close(t0.Add(ms(1)), &h.out)
	h.expectState(t, StateClosed)
	h.expectNothing(t, ms(5000))
}

// Close with unread data aborts with a RST (RFC 9293 §3.6, RFC 1122
// §4.2.2.13).
func TestCloseWithUnreadDataSendsRST(t *testing.T) {
	h := established(t)
	h.send(t, ms(20), sg{flags: PSHACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535, data: []byte("unread")})
	h.c.Close(t0.Add(ms(21)), &h.out)
	h.expect(t, ms(21), sg{flags: RST, seq: localISS + 1})
	h.expectState(t, StateClosed)
}

// Abort sends <SEQ=SND.NXT><CTL=RST> (RFC 9293 §3.10.5).
func TestAbort(t *testing.T) {
	h := established(t)
	h.c.Write(t0.Add(ms(20)), []byte("data"), &h.out)
	h.expect(t, ms(20), sg{flags: PSHACK, seq: localISS + 1, ack: remoteISS + 1, data: []byte("data")})
	h.c.Abort(t0.Add(ms(21)), &h.out)
	h.expect(t, ms(21), sg{flags: RST, seq: localISS + 5})
	h.expectState(t, StateClosed)
	h.expectNothing(t, ms(5000))
}

// An orphaned FIN-WAIT-2 ends after FinWait2Timeout.
func TestFinWait2Timeout(t *testing.T) {
	h := finWait2(t)
	h.c.Close(t0.Add(ms(31)), &h.out)
	h.expectNothing(t, ms(31)+h.cfg.FinWait2Timeout-time.Nanosecond)
	h.expectState(t, StateFinWait2)
	h.expectNothing(t, ms(31)+h.cfg.FinWait2Timeout)
	h.expectState(t, StateClosed)
}

// Half close: after CloseWrite the local side still reads.
func TestHalfCloseStillReads(t *testing.T) {
	h := finWait2(t)
	h.send(t, ms(40), sg{flags: PSHACK, seq: remoteISS + 1, ack: localISS + 2, win: 65535, data: []byte("more")})
	buf := make([]byte, 8)
	n, err := h.c.Read(t0.Add(ms(41)), buf, &h.out)
	if n != 4 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if _, err := h.c.Write(t0.Add(ms(41)), []byte("x"), &h.out); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after CloseWrite: %v", err)
	}
}

// Data arriving after Close on an orphaned connection is answered with
// a RST.
func TestOrphanDataGetsRST(t *testing.T) {
	h := finWait2(t)
	h.c.Close(t0.Add(ms(31)), &h.out)
	h.send(t, ms(40), sg{flags: PSHACK, seq: remoteISS + 1, ack: localISS + 2, win: 65535, data: []byte("late")})
	h.expect(t, ms(40), sg{flags: RST, seq: localISS + 2})
	h.expectState(t, StateClosed)
}
