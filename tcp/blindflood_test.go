package tcp

import (
	"math/rand/v2"
	"testing"
)

// TestBlindFloodChallengeACKs floods an established connection, at one
// instant and then a second later, with blind segments (RFC 5961 §3-§5):
// RSTs, SYNs and bare ACKs with random sequence numbers, data with random
// sequence and acknowledgment numbers, and RSTs inside the window. The connection survives, it
// answers with at most ChallengeACKLimit challenge ACKs a second (the rest
// counted as limited), and data in order still arrives after the flood.
func TestBlindFloodChallengeACKs(t *testing.T) {
	h := established(t)
	st := h.cfg.Stats
	rng := rand.New(rand.NewPCG(5961, 1))
	limit := h.cfg.ChallengeACKLimit
	const perSecond = 10000
	payload := make([]byte, 100)
	for sec := 0; sec < 2; sec++ {
		at := ms(100 + 1000*sec)
		h.out.segs = h.out.segs[:0]
		for i := 0; i < perSecond; i++ {
			seq, ack := Value(rng.Uint32()), Value(rng.Uint32())
			switch i % 5 {
			case 0:
				h.send(t, at, sg{flags: RST, seq: seq})
			case 1:
				h.send(t, at, sg{flags: SYN, seq: seq, win: 65535})
			case 2:
				h.send(t, at, sg{flags: ACK, seq: seq, ack: ack, win: 65535})
			case 3:
				h.send(t, at, sg{flags: PSHACK, seq: seq, ack: ack, win: 65535, data: payload})
			case 4:
				// An attacker who knows the window roughly: a RST inside
				// it, but not at RCV.NXT (RFC 5961 §3.2).
				h.send(t, at, sg{flags: RST, seq: remoteISS + 2 + Value(rng.IntN(60000))})
			}
			if h.c.State() != StateEstablished {
				t.Fatalf("second %d, segment %d: state %v", sec, i, h.c.State())
			}
		}
		// Every answer is a bare ACK of where the connection really is;
		// the data segments out of the window are each acknowledged
		// (RFC 9293 §3.10.7.4, first step), the rest within the limit.
		for _, s := range h.out.segs {
			if s.Flags() != ACK || s.Seq() != localISS+1 || s.Ack() != remoteISS+1 || len(s.Payload()) != 0 {
				t.Fatalf("answer %v", describe(s))
			}
		}
		sent, limited := st.ChallengeACKs.Load(), st.ChallengeACKsLimited.Load()
		challenges := int(sent)
		t.Logf("second %d: %d segments in, %d answers, %d challenge ACKs, %d limited, %d out of window",
			sec, perSecond, len(h.out.segs), sent, limited, st.DroppedOutOfWindow.Load())
		if challenges != limit*(sec+1) {
			t.Fatalf("second %d: %d challenge ACKs in all, want %d (ChallengeACKLimit a second)", sec, challenges, limit*(sec+1))
		}
		// RSTs outside the window are dropped silently (RFC 5961 §3.2);
		// the SYNs, bare ACKs and RSTs in the window draw the limited
		// challenges.
		if want := uint64(perSecond*(sec+1)*3/5) - sent; limited < want-uint64(perSecond/100) {
			t.Fatalf("second %d: %d challenge ACKs limited, want about %d", sec, limited, want)
		}
		if len(h.out.segs) > perSecond/5+limit {
			t.Fatalf("second %d: %d answers, want at most one per data segment and %d challenges", sec, len(h.out.segs), limit)
		}
	}
	if st.ResetsReceived.Load() != 0 || h.c.Err() != nil {
		t.Fatalf("the blind RSTs reset the connection: %v", h.c.Err())
	}
	// In-order data still flows.
	h.out.segs = h.out.segs[:0]
	h.send(t, ms(2200), sg{flags: PSHACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535, data: []byte("genuine")})
	buf := make([]byte, 100)
	n, err := h.c.Read(t0.Add(ms(2200)), buf, &h.out)
	if err != nil || string(buf[:n]) != "genuine" {
		t.Fatalf("read %q, %v; want the genuine data", buf[:n], err)
	}
}
