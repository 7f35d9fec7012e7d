package tcp

import "testing"

// TestRFC9293Figure5StateDiagram walks every transition of the state
// diagram of RFC 9293 §3.3.2 (Figure 5), each as a subtest named after its
// edge. The fixtures (harness_test.go) perform the event of the edge and
// check the segment it sends.
func TestRFC9293Figure5StateDiagram(t *testing.T) {
	edges := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"CLOSED->LISTEN passive OPEN", func(t *testing.T) {
			h := listening(t, 1)
			if h.l.Closed() || h.l.AcceptReady() {
				t.Fatal("new listener not listening")
			}
		}},
		{"LISTEN->CLOSED CLOSE", func(t *testing.T) {
			h := listening(t, 1)
			h.l.Close(t0, &h.out)
			h.send(t, 0, sg{flags: SYN, seq: remoteISS, win: 1000})
			if h.c != nil {
				t.Fatal("closed listener accepted a SYN")
			}
		}},
		{"CLOSED->SYN-SENT active OPEN/snd SYN", func(t *testing.T) { synSent(t) }},
		{"LISTEN->SYN-RCVD rcv SYN/snd SYN,ACK", func(t *testing.T) { synReceived(t) }},
		{"SYN-SENT->SYN-RCVD rcv SYN/snd SYN,ACK", func(t *testing.T) { simultaneousSynReceived(t) }},
		{"SYN-SENT->ESTAB rcv SYN,ACK/snd ACK", func(t *testing.T) { established(t) }},
		{"SYN-SENT->CLOSED CLOSE", func(t *testing.T) {
			h := synSent(t)
			h.c.Close(t0.Add(ms(1)), &h.out)
			h.expectState(t, StateClosed)
		}},
		{"SYN-RCVD->ESTAB rcv ACK of SYN", func(t *testing.T) { establishedPassive(t) }},
		{"SYN-RCVD->ESTAB rcv SYN,ACK (simultaneous open)", func(t *testing.T) {
			h := simultaneousSynReceived(t)
			h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535})
			h.expectState(t, StateEstablished)
		}},
		{"SYN-RCVD->LISTEN rcv RST", func(t *testing.T) {
			h := synReceived(t)
			h.send(t, ms(1), sg{flags: RST, seq: remoteISS + 1})
			h.expectState(t, StateListen) // the half-open entry is gone
			h.send(t, ms(2), sg{flags: SYN, seq: remoteISS + 7, win: 1000})
			h.expectState(t, StateSynReceived)
		}},
		{"SYN-RCVD->FIN-WAIT-1 CLOSE/snd FIN", func(t *testing.T) {
			h := simultaneousSynReceived(t)
			h.c.Close(t0.Add(ms(6)), &h.out)
			h.send(t, ms(10), sg{flags: ACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535})
			h.expectState(t, StateFinWait1)
			h.expect(t, ms(10), sg{flags: FINACK, seq: localISS + 1, ack: remoteISS + 1})
		}},
		{"ESTAB->FIN-WAIT-1 CLOSE/snd FIN", func(t *testing.T) { finWait1(t) }},
		{"ESTAB->CLOSE-WAIT rcv FIN/snd ACK", func(t *testing.T) { closeWait(t) }},
		{"FIN-WAIT-1->FIN-WAIT-2 rcv ACK of FIN", func(t *testing.T) { finWait2(t) }},
		{"FIN-WAIT-1->CLOSING rcv FIN/snd ACK", func(t *testing.T) { closing(t) }},
		{"FIN-WAIT-2->TIME-WAIT rcv FIN/snd ACK", func(t *testing.T) { timeWait(t) }},
		{"CLOSING->TIME-WAIT rcv ACK of FIN", func(t *testing.T) {
			h := closing(t)
			h.send(t, ms(50), sg{flags: ACK, seq: remoteISS + 2, ack: localISS + 2, win: 65535})
			h.expectState(t, StateTimeWait)
		}},
		{"CLOSE-WAIT->LAST-ACK CLOSE/snd FIN", func(t *testing.T) { lastAck(t) }},
		{"LAST-ACK->CLOSED rcv ACK of FIN", func(t *testing.T) {
			h := lastAck(t)
			h.send(t, ms(40), sg{flags: ACK, seq: remoteISS + 2, ack: localISS + 2, win: 65535})
			h.expectState(t, StateClosed)
		}},
		{"TIME-WAIT->CLOSED timeout=2MSL", func(t *testing.T) {
			h := timeWait(t)
			h.expectNothing(t, ms(40)+2*h.cfg.MSL)
			h.expectState(t, StateClosed)
		}},
	}
	for _, e := range edges {
		t.Run(e.name, e.run)
	}
}

func TestStateString(t *testing.T) {
	want := []string{"CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1",
		"FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT"}
	for i, w := range want {
		if got := State(i).String(); got != w {
			t.Errorf("State(%d) = %q, want %q", i, got, w)
		}
	}
	if got := State(42).String(); got != "State(42)" {
		t.Errorf("State(42) = %q", got)
	}
}
