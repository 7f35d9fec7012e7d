package tcp

import (
	"testing"
	"time"
)

// cookieHandshake sends peer n's SYN with opts to l at at and returns the
// SYN-ACK.
func cookieSynAck(t *testing.T, l *Listener, at time.Time, n int, opts *Options) Segment {
	t.Helper()
	var out recOutput
	if c := l.Input(at, peerN(n), synFrom(n, opts), localISS, localMSS, &out); c != nil {
		t.Fatal("a SYN made a connection")
	}
	if len(out.segs) != 1 || out.segs[0].Flags() != SYNACK {
		t.Fatalf("%d segments for a SYN", len(out.segs))
	}
	return out.segs[0]
}

// echoAck is the ACK of synack, echoing its TSval when ts.
func echoAck(n int, synack Segment, ts bool) Segment {
	var o *Options
	if ts {
		var so Options
		synack.Options(&so)
		o = &Options{WindowScale: -1, Timestamp: true, TSVal: 5000, TSEcr: so.TSVal}
	}
	return ackFrom(n, synack.Seq(), o)
}

// A cookie keeps the SYN's MSS (rounded down to its table), window scale
// and SACK-permitted through the handshake, for every table value and
// option combination, with nothing kept in the SYN queue.
func TestCookieRoundTrip(t *testing.T) {
	cfg := cookieConfig()
	cfg.SYNCookies = SYNCookiesAlways
	cfg.WindowScale, cfg.SACKPermitted, cfg.Timestamps = true, true, true
	l := NewListener(&cfg, localAP, 1024)
	n := 0
	for _, mss := range cookieMSS {
		for _, ws := range []int8{-1, 0, 3, 14} {
			for _, sack := range []bool{false, true} {
				n++
				now := t0.Add(time.Duration(n) * 7 * time.Second)
				synack := cookieSynAck(t, l, now, n, &Options{MSS: mss + 3, WindowScale: ws, SACKPermitted: sack, Timestamp: true, TSVal: 1})
				if l.q.len() != 0 {
					t.Fatal("a cookie SYN-ACK left an entry")
				}
				var so Options
				synack.Options(&so)
				if got := (so.WindowScale >= 0); got != (ws >= 0) || so.SACKPermitted != sack || !so.Timestamp {
					t.Fatalf("SYN-ACK options %+v for ws %d sack %v", so, ws, sack)
				}
				var out recOutput
				c := l.Input(now.Add(ms(20)), peerN(n), echoAck(n, synack, true), 0, localMSS, &out)
				if c == nil || c.State() != StateEstablished || !c.Accepted() {
					t.Fatalf("mss %d ws %d sack %v: no connection", mss, ws, sack)
				}
				if c.peerMSS != mss || c.wsOK != (ws >= 0) || c.sackOK != sack || !c.tsOK || c.tsRecent != 5000 {
					t.Fatalf("mss %d ws %d sack %v: got mss %d ws %v sack %v ts %v", mss, ws, sack, c.peerMSS, c.wsOK, c.sackOK, c.tsOK)
				}
				if ws >= 0 && (c.snd.shift != uint8(ws) || c.rcv.shift != uint8(so.WindowScale)) {
					t.Fatalf("shifts %d/%d, want %d/%d", c.snd.shift, c.rcv.shift, ws, so.WindowScale)
				}
				if c.snd.WND != 1000<<c.snd.shift {
					t.Fatalf("SND.WND %d", c.snd.WND)
				}
				// The TSval was rounded down by up to 31 ms (cookieTSval).
				if srtt := c.Info().SRTT; srtt < ms(20) || srtt > ms(20+31) {
					t.Fatalf("SRTT %v from the echoed timestamp", srtt)
				}
				l.Accept()
			}
		}
	}
	st := l.Stats()
	if st.SYNCookiesSent != uint64(n) || st.SYNCookiesAccepted != uint64(n) || st.SYNCookiesRejected != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// The cookie's MSS is the largest table value not above the SYN's.
func TestCookieMSSIndex(t *testing.T) {
	for _, tc := range []struct{ mss, want uint16 }{{0, 536}, {100, 536}, {536, 536}, {1459, 1452}, {1460, 1460}, {9000, 8960}, {65535, 8960}} {
		if got := cookieMSS[cookieMSSIndex(tc.mss)]; got != tc.want {
			t.Errorf("mss %d: %d, want %d", tc.mss, got, tc.want)
		}
	}
}

// Without timestamps a cookie connection has no window scale and no
// SACK, as on Linux: there is nowhere to keep them.
func TestCookieWithoutTimestamps(t *testing.T) {
	cfg := cookieConfig()
	cfg.SYNCookies = SYNCookiesAlways
	cfg.WindowScale, cfg.SACKPermitted = true, true
	l := NewListener(&cfg, localAP, 4)
	synack := cookieSynAck(t, l, t0, 1, &Options{MSS: 1460, WindowScale: 7, SACKPermitted: true})
	var out recOutput
	c := l.Input(t0.Add(ms(5)), peerN(1), echoAck(1, synack, false), 0, localMSS, &out)
	if c == nil {
		t.Fatal("no connection")
	}
	if c.wsOK || c.sackOK || c.tsOK || c.peerMSS != 1460 || c.snd.WND != 1000 {
		t.Fatalf("ws %v sack %v ts %v mss %d wnd %d", c.wsOK, c.sackOK, c.tsOK, c.peerMSS, c.snd.WND)
	}
}

// A cookie is good for two counter periods after its own; one three
// periods old is rejected and answered with a RST.
func TestCookieAge(t *testing.T) {
	cfg := cookieConfig()
	cfg.SYNCookies = SYNCookiesAlways
	l := NewListener(&cfg, localAP, 4)
	start := time.Unix(int64(cookieCounter(t0))*64, 0) // a period's start
	synack := cookieSynAck(t, l, start, 1, nil)
	var out recOutput
	if c := l.Input(start.Add(3*cookiePeriod), peerN(1), echoAck(1, synack, false), 0, localMSS, &out); c != nil {
		t.Fatal("accepted a cookie 3 periods old")
	}
	if len(out.segs) != 1 || out.segs[0].Flags() != RST || out.segs[0].Seq() != synack.Seq()+1 {
		t.Fatal("stale cookie not answered with a RST")
	}
	if c := l.Input(start.Add(3*cookiePeriod-time.Second), peerN(1), echoAck(1, synack, false), 0, localMSS, &out); c == nil {
		t.Fatal("rejected a cookie at the end of its second period")
	}
	if st := l.Stats(); st.SYNCookiesRejected != 1 || st.SYNCookiesAccepted != 1 {
		t.Fatalf("stats %+v", st)
	}
	// 32 periods later the 5-bit counter is the same: still stale.
	synack = cookieSynAck(t, l, start, 2, nil)
	if c := l.Input(start.Add(32*cookiePeriod), peerN(2), echoAck(2, synack, false), 0, localMSS, &out); c != nil {
		t.Fatal("accepted a cookie 32 periods old")
	}
}

// A forged cookie fails the hash: any other acknowledgment number, peer
// ISN or 4-tuple.
func TestCookieForged(t *testing.T) {
	cfg := cookieConfig()
	cfg.SYNCookies = SYNCookiesAlways
	l := NewListener(&cfg, localAP, 64)
	synack := cookieSynAck(t, l, t0, 1, nil)
	cookie := synack.Seq()
	var out recOutput
	for bit := 0; bit < 32; bit++ {
		forged := cookie ^ Value(1)<<bit
		seg := segFrom(peerN(1), Header{Seq: remoteISS + 1, Ack: forged + 1, Flags: FlagACK, Window: 1000})
		if c := l.Input(t0.Add(ms(1)), peerN(1), seg, 0, localMSS, &out); c != nil {
			t.Fatalf("accepted a cookie with bit %d flipped", bit)
		}
	}
	seg := segFrom(peerN(1), Header{Seq: remoteISS + 2, Ack: cookie + 1, Flags: FlagACK, Window: 1000})
	if c := l.Input(t0.Add(ms(1)), peerN(1), seg, 0, localMSS, &out); c != nil {
		t.Fatal("accepted a cookie for another peer ISN")
	}
	if c := l.Input(t0.Add(ms(1)), peerN(2), ackFrom(2, cookie, nil), 0, localMSS, &out); c != nil {
		t.Fatal("accepted a cookie from another port")
	}
	other := NewISNGenerator([32]byte{9}).CookieHash
	if _, ok := checkCookie(other, peerN(1), t0, remoteISS, cookie); ok {
		t.Fatal("a cookie validated under another key")
	}
	if got := l.Stats().SYNCookiesRejected; got != 34 {
		t.Fatalf("SYNCookiesRejected %d", got)
	}
	if c := l.Input(t0.Add(ms(2)), peerN(1), ackFrom(1, cookie, nil), 0, localMSS, &out); c == nil {
		t.Fatal("the true cookie failed after the forgeries")
	}
}

// In the default mode cookies go out only while the SYN queue is full,
// and an ACK is checked as a cookie only after some went out.
func TestCookiesWhenFull(t *testing.T) {
	cfg := cookieConfig()
	l := NewListener(&cfg, localAP, 2)
	a := cookieSynAck(t, l, t0, 1, nil)
	b := cookieSynAck(t, l, t0, 2, nil)
	if a.Seq() != localISS || b.Seq() != localISS || l.q.len() != 2 {
		t.Fatal("cookies sent before the queue was full")
	}
	// What would be a valid cookie, before any was sent: a RST.
	guess := makeCookie(cfg.SYNCookieHash, peerN(5), t0, remoteISS, 536)
	var out recOutput
	if c := l.Input(t0.Add(ms(1)), peerN(5), ackFrom(5, guess, nil), 0, localMSS, &out); c != nil || len(out.segs) != 1 || out.segs[0].Flags() != RST {
		t.Fatal("a cookie was accepted before any was sent")
	}
	if st := l.Stats(); st.SYNCookiesRejected != 0 {
		t.Fatalf("stats %+v", st)
	}
	c := cookieSynAck(t, l, t0.Add(ms(2)), 3, nil)
	if c.Seq() == localISS || l.q.len() != 2 {
		t.Fatal("no cookie with the queue full")
	}
	if conn := l.Input(t0.Add(ms(3)), peerN(3), echoAck(3, c, false), 0, localMSS, &out); conn == nil {
		t.Fatal("cookie ACK refused")
	}
	// Entries complete as before.
	if conn := l.Input(t0.Add(ms(4)), peerN(1), echoAck(1, a, false), 0, localMSS, &out); conn == nil {
		t.Fatal("entry ACK refused")
	}
	if st := l.Stats(); st.SYNCookiesSent != 1 || st.SYNCookiesAccepted != 1 || st.HalfOpen != 1 || st.AcceptQueue != 2 {
		t.Fatalf("stats %+v", st)
	}
	if cfg.Stats.SYNCookiesSent.Load() != 1 || cfg.Stats.HalfOpen.Load() != 1 {
		t.Fatal("Stats")
	}
}

// The TSval of a cookie SYN-ACK never runs ahead of the clock and brings
// back what it carries.
func TestCookieTSval(t *testing.T) {
	for _, now := range []uint32{0, 31, 32, 1000, 0xffffffff} {
		for _, ws := range []int8{-1, 0, 9, 14} {
			for _, sack := range []bool{false, true} {
				ts := cookieTSval(now, ws, sack)
				if int32(ts-now) > 0 || int32(now-ts) >= 2*(1<<cookieTSBits) {
					t.Fatalf("TSval %d at %d", ts, now)
				}
				gws, gsack := cookieTSOptions(ts)
				if gws != ws || gsack != sack {
					t.Fatalf("%d %v came back %d %v", ws, sack, gws, gsack)
				}
			}
		}
	}
}

// ParseSYNCookieMode reads what String writes and names a bad value.
func TestParseSYNCookieMode(t *testing.T) {
	for _, m := range []SYNCookieMode{SYNCookiesWhenFull, SYNCookiesNever, SYNCookiesAlways} {
		if got, err := ParseSYNCookieMode(m.String()); err != nil || got != m {
			t.Fatalf("%v: %v %v", m, got, err)
		}
	}
	if _, err := ParseSYNCookieMode("sometimes"); err == nil {
		t.Fatal("no error for a bad mode")
	}
}
