package tcp

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"
	"time"
	"unsafe"
)

// twConn drives a Conn from dial to TIME-WAIT, its user having called
// Close: data is sent and acknowledged both ways (so that the loss state
// and buffers exist), our FIN is acknowledged, then the peer's FIN at 40
// ms. With rich, window scaling, timestamps and SACK are negotiated.
// Every step is deterministic, so that two calls build identical Conns.
func twConn(t *testing.T, rich bool) *harness {
	t.Helper()
	cfg := testConfig()
	if rich {
		cfg.WindowScale, cfg.Timestamps, cfg.SACKPermitted = true, true, true
	}
	h := newHarness(cfg)
	h.dial(t, 0)
	syn, _ := h.out.pop()
	var so Options
	syn.Options(&so)
	opts := func(tsval uint32) *Options {
		if !rich {
			return nil
		}
		o := &Options{WindowScale: -1, Timestamp: true, TSVal: tsval, TSEcr: h.lastTSVal(t)}
		return o
	}
	synack := &Options{MSS: 1460, WindowScale: -1}
	if rich {
		synack = &Options{MSS: 1460, WindowScale: 7, SACKPermitted: true, Timestamp: true, TSVal: 100, TSEcr: so.TSVal}
	}
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535, opts: synack})
	h.out.pop() // the ACK
	if _, err := h.c.Write(t0.Add(ms(12)), []byte("hello"), &h.out); err != nil {
		t.Fatal(err)
	}
	h.out.pop() // the data
	h.send(t, ms(15), sg{flags: PSHACK, seq: remoteISS + 1, ack: localISS + 6, win: 512, opts: opts(110), data: []byte("world")})
	h.c.Read(t0.Add(ms(16)), make([]byte, 16), &h.out)
	h.c.Close(t0.Add(ms(20)), &h.out)
	h.out.segs = nil // ACK and FIN
	h.send(t, ms(30), sg{flags: ACK, seq: remoteISS + 6, ack: localISS + 7, win: 512, opts: opts(120)})
	h.send(t, ms(40), sg{flags: FINACK, seq: remoteISS + 6, ack: localISS + 7, win: 512, opts: opts(130)})
	h.out.segs = nil // the ACK of the FIN
	h.expectState(t, StateTimeWait)
	return h
}

// lastTSVal returns the TSval our side last sent (zero before any).
func (h *harness) lastTSVal(t *testing.T) uint32 { return h.c.tsLast }

// twInputs are segments that may reach a connection in TIME-WAIT, at
// times after it entered TIME-WAIT at 40 ms. tsval, when set, is carried
// in a Timestamps option (rich connections only).
var twInputs = []struct {
	name  string
	at    time.Duration
	s     sg
	tsval uint32 // 0: no Timestamps option
}{
	{"retransmitted FIN", ms(1000), sg{flags: FINACK, seq: remoteISS + 6, ack: localISS + 7, win: 512}, 200},
	{"FIN again", ms(1500), sg{flags: FINACK, seq: remoteISS + 6, ack: localISS + 7, win: 512}, 250},
	{"old data (D-SACK)", ms(1600), sg{flags: PSHACK, seq: remoteISS + 1, ack: localISS + 7, win: 512, data: []byte("world")}, 260},
	{"PAWS: old TSval", ms(1700), sg{flags: FINACK, seq: remoteISS + 6, ack: localISS + 7, win: 512}, 50},
	{"pure ACK in window", ms(1800), sg{flags: ACK, seq: remoteISS + 7, ack: localISS + 7, win: 512}, 270},
	{"data in window is ignored", ms(1810), sg{flags: PSHACK, seq: remoteISS + 7, ack: localISS + 7, win: 512, data: []byte("late")}, 271},
	{"ACK of data never sent", ms(1820), sg{flags: ACK, seq: remoteISS + 7, ack: localISS + 500, win: 512}, 272},
	{"no ACK bit", ms(1830), sg{flags: 0, seq: remoteISS + 7, win: 512}, 273},
	{"SYN in window", ms(1840), sg{flags: SYN, seq: remoteISS + 8, win: 512}, 274},
	{"out-of-window segment", ms(1850), sg{flags: ACK, seq: remoteISS + 900000, ack: localISS + 7, win: 512}, 275},
	{"RST out of window", ms(1860), sg{flags: RST, seq: remoteISS + 900000}, 0},
	{"RST in window, not at RCV.NXT", ms(1870), sg{flags: RST, seq: remoteISS + 9}, 0},
	{"challenge ACK rate limit", ms(1871), sg{flags: RST, seq: remoteISS + 9}, 0},
	{"FIN restarts again", ms(3000), sg{flags: FINACK, seq: remoteISS + 6, ack: localISS + 7, win: 512}, 300},
	{"RST at RCV.NXT", ms(3100), sg{flags: RST, seq: remoteISS + 7}, 0},
	{"after the RST", ms(3200), sg{flags: FINACK, seq: remoteISS + 6, ack: localISS + 7, win: 512}, 310},
}

// TestTimeWaitMatchesConn feeds the same segments to a Conn in TIME-WAIT
// and to the TimeWait record made from an identical Conn, and compares
// every reply byte for byte, the state and the 2 MSL deadline.
func TestTimeWaitMatchesConn(t *testing.T) {
	for _, rich := range []bool{false, true} {
		name := "plain"
		if rich {
			name = "timestamps+SACK+window scale"
		}
		t.Run(name, func(t *testing.T) {
			full := twConn(t, rich)
			comp := twConn(t, rich)
			comp.cfg.ChallengeACKLimit = full.cfg.ChallengeACKLimit
			tw, ok := comp.c.TimeWait()
			if !ok {
				t.Fatal("no TimeWait record from a closed connection in TIME-WAIT")
			}
			if tw.Tuple() != tuple || !tw.Deadline().Equal(full.c.NextDeadline()) {
				t.Fatalf("record %v deadline %v, want %v %v", tw.Tuple(), tw.Deadline(), tuple, full.c.NextDeadline())
			}
			if ts, sack := tw.flags&twTimestamps != 0, tw.flags&twSACK != 0; ts != rich || sack != rich {
				t.Fatalf("record has timestamps %v, SACK %v; want %v", ts, sack, rich)
			}
			var twOut recOutput
			replies := 0
			for _, in := range twInputs {
				s := in.s
				if rich && in.tsval != 0 {
					s.opts = &Options{WindowScale: -1, Timestamp: true, TSVal: in.tsval, TSEcr: 1}
				}
				seg := s.build()
				now := t0.Add(in.at)
				if !full.c.Done() {
					full.c.Input(now, seg, &full.out)
				}
				tw.Input(&comp.cfg, now, seg, &twOut)
				if full.c.Done() != tw.Done() {
					t.Fatalf("%s: Conn done %v, record done %v", in.name, full.c.Done(), tw.Done())
				}
				if len(full.out.segs) != len(twOut.segs) {
					t.Fatalf("%s: Conn sent %d segments, record %d", in.name, len(full.out.segs), len(twOut.segs))
				}
				for i := range full.out.segs {
					if !bytes.Equal(full.out.segs[i], twOut.segs[i]) {
						t.Fatalf("%s: reply %d differs:\n Conn   %v %x\n record %v %x", in.name, i,
							describe(full.out.segs[i]), []byte(full.out.segs[i]), describe(twOut.segs[i]), []byte(twOut.segs[i]))
					}
				}
				if !full.c.Done() && !tw.Deadline().Equal(full.c.NextDeadline()) {
					t.Fatalf("%s: record deadline %v, Conn %v", in.name, tw.Deadline().Sub(t0), full.c.NextDeadline().Sub(t0))
				}
				replies += len(twOut.segs)
				full.out.segs, twOut.segs = nil, nil
			}
			// Retransmitted FINs, old data, PAWS, the bad ACK, the SYN,
			// the out-of-window segment, one challenge ACK.
			if replies < 8 {
				t.Fatalf("only %d replies to %d segments", replies, len(twInputs))
			}
			if !tw.Done() {
				t.Fatal("the RST at RCV.NXT did not close the record")
			}
		})
	}
}

// TestTimeWaitExpiresAt2MSL: the record's deadline is exactly 2*MSL after
// the last FIN, as the Conn's.
func TestTimeWaitExpiresAt2MSL(t *testing.T) {
	h := twConn(t, false)
	tw, ok := h.c.TimeWait()
	if !ok {
		t.Fatal("no record")
	}
	end := t0.Add(ms(40) + 2*h.cfg.MSL)
	if tw.Expired(end.Add(-time.Nanosecond)) || !tw.Expired(end) {
		t.Fatalf("deadline %v, want %v", tw.Deadline().Sub(t0), end.Sub(t0))
	}
	var out recOutput
	tw.Input(&h.cfg, t0.Add(ms(5000)), sg{flags: FINACK, seq: remoteISS + 6, ack: localISS + 7, win: 512}.build(), &out)
	if len(out.segs) != 1 {
		t.Fatalf("retransmitted FIN answered with %d segments", len(out.segs))
	}
	if want := t0.Add(ms(5000) + 2*h.cfg.MSL); !tw.Deadline().Equal(want) {
		t.Fatalf("FIN restarted the timeout to %v, want %v", tw.Deadline().Sub(t0), want.Sub(t0))
	}
}

// TestTimeWaitRecordAcceptsSYN: RFC 6191 reuse answers as Conn.AcceptsSYN does.
func TestTimeWaitRecordAcceptsSYN(t *testing.T) {
	for _, rich := range []bool{false, true} {
		h := twConn(t, rich)
		tw, _ := h.c.TimeWait()
		for _, s := range []sg{
			{flags: SYN, seq: remoteISS + 100},
			{flags: SYN, seq: remoteISS + 2},
			{flags: SYN, seq: remoteISS + 100, opts: &Options{WindowScale: -1, Timestamp: true, TSVal: 5000}},
			{flags: SYN, seq: remoteISS + 100, opts: &Options{WindowScale: -1, Timestamp: true, TSVal: 1}},
			{flags: SYNACK, seq: remoteISS + 100},
		} {
			seg := s.build()
			if got, want := tw.AcceptsSYN(seg), h.c.AcceptsSYN(seg); got != want {
				t.Errorf("rich=%v %v: record AcceptsSYN %v, Conn %v", rich, s, got, want)
			}
		}
	}
}

// TestNoTimeWaitRecordWhileReadable: a connection whose user only shut
// writing down (CloseWrite), or that owes an ACK, is not compacted.
func TestNoTimeWaitRecordWhileReadable(t *testing.T) {
	h := timeWait(t) // CloseWrite, not Close
	if _, ok := h.c.TimeWait(); ok {
		t.Fatal("a connection the user may still read was compacted")
	}
	h = established(t)
	if _, ok := h.c.TimeWait(); ok {
		t.Fatal("an ESTABLISHED connection was compacted")
	}
}

// FuzzTimeWaitMatchesConn drives a Conn in TIME-WAIT and its record with
// arbitrary segments (flags, sequence and acknowledgment offsets, a
// payload, a TSval) and requires the same replies and state.
func FuzzTimeWaitMatchesConn(f *testing.F) {
	f.Add(true, uint8(FINACK), int32(5), int32(7), uint16(0), uint32(200), uint16(1000))
	f.Add(true, uint8(RST), int32(7), int32(0), uint16(0), uint32(0), uint16(10))
	f.Add(false, uint8(SYN), int32(9), int32(0), uint16(3), uint32(0), uint16(10))
	f.Add(true, uint8(PSHACK), int32(1), int32(7), uint16(5), uint32(1), uint16(10))
	f.Fuzz(func(t *testing.T, rich bool, flags uint8, seqOff, ackOff int32, n uint16, tsval uint32, after uint16) {
		full, comp := twConn(t, rich), twConn(t, rich)
		tw, ok := comp.c.TimeWait()
		if !ok {
			t.Fatal("no record")
		}
		var twOut recOutput
		now := t0.Add(ms(40) + time.Duration(after)*time.Millisecond)
		for i := 0; i < 3; i++ { // the same segment thrice: restarts and rate limits
			s := sg{flags: Flags(flags), seq: remoteISS.Add(uint32(seqOff)), ack: localISS.Add(uint32(ackOff)), win: 512, data: make([]byte, n%2000)}
			if rich && tsval != 0 {
				s.opts = &Options{WindowScale: -1, Timestamp: true, TSVal: tsval}
			}
			seg := s.build()
			if !full.c.Done() {
				full.c.Input(now, seg, &full.out)
			}
			tw.Input(&comp.cfg, now, seg, &twOut)
			if full.c.Done() != tw.Done() {
				t.Fatalf("Conn done %v, record done %v", full.c.Done(), tw.Done())
			}
			if len(full.out.segs) != len(twOut.segs) {
				t.Fatalf("Conn sent %d segments, record %d", len(full.out.segs), len(twOut.segs))
			}
			for j := range full.out.segs {
				if !bytes.Equal(full.out.segs[j], twOut.segs[j]) {
					t.Fatalf("reply differs: Conn %v, record %v", describe(full.out.segs[j]), describe(twOut.segs[j]))
				}
			}
			if !full.c.Done() && !tw.Deadline().Equal(full.c.NextDeadline()) {
				t.Fatalf("record deadline %v, Conn %v", tw.Deadline(), full.c.NextDeadline())
			}
			full.out.segs, twOut.segs = nil, nil
		}
	})
}

// TestTimeWaitLayout: a record is at most 96 bytes and holds no pointer,
// so that a table of them is one allocation the collector does not scan.
func TestTimeWaitLayout(t *testing.T) {
	if n := unsafe.Sizeof(TimeWait{}); n > 96 {
		t.Errorf("TimeWait is %d bytes, want at most 96", n)
	}
	var walk func(reflect.Type) bool
	walk = func(ty reflect.Type) bool {
		switch ty.Kind() {
		case reflect.Struct:
			for i := range ty.NumField() {
				if !walk(ty.Field(i).Type) {
					t.Errorf("field %s.%s holds a pointer", ty.Name(), ty.Field(i).Name)
					return false
				}
			}
			return true
		case reflect.Array:
			return walk(ty.Elem())
		case reflect.Bool, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int,
			reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
			return true
		}
		return false
	}
	walk(reflect.TypeOf(TimeWait{}))
}

// TestTimeWaitTupleForm: the record's fixed binary 4-tuple gives back the
// Conn's, and tells IPv4 from IPv6 (IPv4-mapped included) and a zoned
// address from one without.
func TestTimeWaitTupleForm(t *testing.T) {
	h := twConn(t, false)
	tw, _ := h.c.TimeWait()
	if tw.Tuple() != tuple || !tw.Is(tuple) {
		t.Fatalf("record tuple %v (Is %v), want %v", tw.Tuple(), tw.Is(tuple), tuple)
	}
	if tw.IsZero() {
		t.Fatal("a record made from a Conn is zero")
	}
	mapped := Tuple{
		Local:  netip.AddrPortFrom(netip.AddrFrom16(tuple.Local.Addr().As16()), tuple.Local.Port()),
		Remote: netip.AddrPortFrom(netip.AddrFrom16(tuple.Remote.Addr().As16()), tuple.Remote.Port()),
	}
	if tw.Is(mapped) || tw.Is(tuple.Reverse()) {
		t.Fatal("the IPv4 record matches its IPv4-mapped IPv6 form or its reverse")
	}
	v6 := Tuple{
		Local:  netip.MustParseAddrPort("[2001:db8::2]:80"),
		Remote: netip.MustParseAddrPort("[2001:db8::1]:41234"),
	}
	r := TimeWait{local: v6.Local.Addr().As16(), remote: v6.Remote.Addr().As16(),
		localPort: 80, remotePort: 41234, flags: twIPv6}
	if r.Tuple() != v6 || !r.Is(v6) {
		t.Fatalf("IPv6 record tuple %v, want %v", r.Tuple(), v6)
	}
	zoned := Tuple{Local: netip.AddrPortFrom(v6.Local.Addr().WithZone("eth0"), 80), Remote: v6.Remote}
	if r.Is(zoned) {
		t.Fatal("a zoned tuple matches a record without zone")
	}
}

// TestTimeWaitCarriesChallengeLimit: a Conn that already sent challenge
// ACKs in TIME-WAIT hands its RFC 5961 §7 rate-limit window to its
// record, which goes on limiting exactly as the Conn does.
func TestTimeWaitCarriesChallengeLimit(t *testing.T) {
	full, comp := twConn(t, true), twConn(t, true)
	full.cfg.ChallengeACKLimit, comp.cfg.ChallengeACKLimit = 3, 3
	rst := sg{flags: RST, seq: remoteISS + 9}.build() // in the window, not at RCV.NXT
	for _, h := range []*harness{full, comp} {
		h.c.Input(t0.Add(ms(1000)), rst, &h.out)
		h.c.Input(t0.Add(ms(1100)), rst, &h.out)
		if len(h.out.segs) != 2 {
			t.Fatalf("%d challenge ACKs, want 2", len(h.out.segs))
		}
		h.out.segs = nil
	}
	tw, ok := comp.c.TimeWait()
	if !ok {
		t.Fatal("no record")
	}
	if tw.chalCount != 2 || tw.chalStart != t0.Add(ms(1000)).UnixNano() {
		t.Fatalf("record's limiter: %d since %d", tw.chalCount, tw.chalStart)
	}
	var twOut recOutput
	for _, at := range []time.Duration{ms(1200), ms(1300), ms(1999), ms(2000), ms(2001), ms(2002)} {
		full.c.Input(t0.Add(at), rst, &full.out)
		tw.Input(&comp.cfg, t0.Add(at), rst, &twOut)
		if len(full.out.segs) != len(twOut.segs) {
			t.Fatalf("at %v: Conn sent %d, record %d", at, len(full.out.segs), len(twOut.segs))
		}
		for i := range full.out.segs {
			if !bytes.Equal(full.out.segs[i], twOut.segs[i]) {
				t.Fatalf("at %v: reply differs: Conn %v, record %v", at, describe(full.out.segs[i]), describe(twOut.segs[i]))
			}
		}
	}
	// 1200 ms: the third of the window; 1300 and 1999 limited; 2000 a new
	// window: three more.
	if got := len(full.out.segs); got != 4 {
		t.Fatalf("%d challenge ACKs after the hand-over, want 4", got)
	}
}
