package tcp

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// pair is a "wire" between two Conns: a (local, active) and b (remote,
// created by a Listener). Segments queue per direction; deliver passes them
// on, optionally dropping or reordering them with a seeded generator.
// When nothing is in flight, virtual time jumps to the next deadline.
type pair struct {
	a, b    *Conn
	l       *Listener
	now     time.Time
	rng     *rand.Rand
	loss    float64 // probability a segment is dropped
	reorder float64 // probability the next two segments swap
	dup     float64 // probability a segment is delivered twice
	toA     [][]byte
	toB     [][]byte
	oa, ob  pairOut
	latency time.Duration
	drops   int
	// tap, if set, sees every segment as it is sent, toward b or a (the
	// pieces of a super-segment, once cut).
	tap func(toB bool, seg []byte)
	// drop, if set, decides that a segment is lost on its way.
	drop func(toB bool, seg []byte) bool
	// supers counts the super-segments sent (SendGSO) and superPieces
	// their pieces; gsoErr records the first malformed one.
	supers, superPieces int
	gsoErr              error
	// superRetrans counts the super-segments that were retransmissions
	// (below the highest super-segment end sent that way).
	superRetrans int
	sentEnd      [2]Value
	sentAny      [2]bool
	// gro coalesces consecutive in-order segments queued for one side
	// into one super-segment (InputSegments), as GRO does; merged counts
	// the segments so merged, wire counts every segment delivered.
	gro          bool
	merged, wire int
}

type pairOut struct {
	p   *pair
	toB bool
}

func (o *pairOut) Buffer(n int) ([]byte, int) { return make([]byte, 34+n), 34 }

func (o *pairOut) Send(t Tuple, buf []byte, off int) {
	if o.p.tap != nil {
		o.p.tap(o.toB, buf[off:])
	}
	if o.toB {
		o.p.toB = append(o.p.toB, buf[off:])
	} else {
		o.p.toA = append(o.p.toA, buf[off:])
	}
}

// SendGSO implements GSOOutput: the super-segment must be well formed,
// with its partial checksum; it is cut as a link would cut it and its
// pieces, each with its checksum, sent.
func (o *pairOut) SendGSO(t Tuple, buf []byte, off, mss int) {
	p := o.p
	if err := checkPartial(buf[off:], t); err != nil && p.gsoErr == nil {
		p.gsoErr = err
	}
	pieces := cutSuper(buf[off:], mss, t.Local.Addr(), t.Remote.Addr())
	p.supers++
	p.superPieces += len(pieces)
	d := 0
	if o.toB {
		d = 1
	}
	seg := Segment(buf[off:])
	if end := seg.Seq().Add(uint32(len(seg.Payload()))); !p.sentAny[d] || end.GreaterThan(p.sentEnd[d]) {
		p.sentEnd[d], p.sentAny[d] = end, true
	} else {
		p.superRetrans++
	}
	for _, b := range pieces {
		o.Send(t, b, 0)
	}
}

func (p *pair) aOut() Output { return &p.oa }
func (p *pair) bOut() Output { return &p.ob }

// newPair connects a to b through a listener with a clean handshake.
func newPair(t testing.TB, cfg Config, seed uint64) *pair {
	p := &pair{now: t0, rng: rand.New(rand.NewPCG(seed, 1)), latency: 100 * time.Microsecond}
	p.oa = pairOut{p: p, toB: true}
	p.ob = pairOut{p: p, toB: false}
	cfgA, cfgB := cfg, cfg
	p.l = NewListener(&cfgB, tuple.Remote, 16)
	p.a = Dial(&cfgA, tuple, 1000, 1460, p.now, p.aOut())
	syn := p.toB[0]
	p.toB = p.toB[1:]
	seg, err := ParseSegment(syn, tuple.Local.Addr(), tuple.Remote.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if p.l.Input(p.now, tuple.Reverse(), seg, 90000, 1460, p.bOut()) != nil {
		t.Fatal("listener made a connection of a SYN")
	}
	p.deliverAll(t)
	if p.b == nil {
		t.Fatal("the handshake made no connection")
	}
	if p.a.State() != StateEstablished || p.b.State() != StateEstablished {
		t.Fatalf("handshake: states %v %v", p.a.State(), p.b.State())
	}
	if p.l.Accept() != p.b {
		t.Fatal("b not accepted")
	}
	return p
}

// deliverOne passes one queued segment on; it reports false when none is
// queued.
func (p *pair) deliverOne(t testing.TB) bool {
	if len(p.toA) == 0 && len(p.toB) == 0 {
		return false
	}
	toB := len(p.toA) == 0 || (len(p.toB) > 0 && p.rng.IntN(2) == 0)
	q := &p.toA
	if toB {
		q = &p.toB
	}
	if len(*q) >= 2 && p.reorder > 0 && p.rng.Float64() < p.reorder {
		(*q)[0], (*q)[1] = (*q)[1], (*q)[0]
	}
	b := (*q)[0]
	*q = (*q)[1:]
	if p.dup > 0 && p.rng.Float64() < p.dup {
		*q = append([][]byte{b}, *q...)
	}
	p.now = p.now.Add(p.latency)
	if p.drop != nil && p.drop(toB, b) || p.loss > 0 && p.rng.Float64() < p.loss {
		p.drops++
		return true
	}
	segs := 1
	for p.gro && len(*q) > 0 && len(b)+len((*q)[0]) <= 0xffff {
		m, ok := groMerge(b, (*q)[0], segs, toB)
		if !ok {
			break
		}
		b = m
		*q = (*q)[1:]
		segs++
	}
	p.wire += segs
	if segs > 1 {
		p.merged += segs
	}
	if toB {
		seg, err := ParseSegment(b, tuple.Local.Addr(), tuple.Remote.Addr())
		if err != nil {
			t.Fatalf("a sent a bad segment: %v", err)
		}
		if p.b == nil || p.b.Done() {
			if c := p.l.Input(p.now, tuple.Reverse(), seg, 90000, 1460, p.bOut()); c != nil {
				p.b = c
			}
			return true
		}
		p.b.InputSegments(p.now, seg, segs, p.bOut())
		if p.b.Established() && !p.b.Accepted() {
			p.l.Promote(p.b)
		}
	} else {
		seg, err := ParseSegment(b, tuple.Remote.Addr(), tuple.Local.Addr())
		if err != nil {
			t.Fatalf("b sent a bad segment: %v", err)
		}
		p.a.InputSegments(p.now, seg, segs, p.aOut())
	}
	return true
}

// groMerge appends segment next to super-segment cur, which holds segs
// segments, when GRO would (Linux's tcp_gro_receive): next continues the
// sequence, its header equals cur's but for the sequence number, PSH and
// the checksum, no flag but ACK and PSH is set, cur has no PSH, and every
// piece but the last has the first's size. The result has a new checksum.
func groMerge(cur, next []byte, segs int, toB bool) ([]byte, bool) {
	hl := int(cur[offDataOffset]>>4) * 4
	if len(next) < HeaderLen || int(next[offDataOffset]>>4)*4 != hl {
		return nil, false
	}
	first := (len(cur) - hl) / segs
	pc, pn := cur[hl:], next[hl:]
	if first == 0 || len(pc) != first*segs || len(pn) == 0 || len(pn) > first {
		return nil, false
	}
	fc, fn := Flags(cur[offFlags]), Flags(next[offFlags])
	if fc&^FlagPSH != FlagACK || fn&^FlagPSH != FlagACK || fc&FlagPSH != 0 {
		return nil, false
	}
	if Segment(next).Seq() != Segment(cur).Seq().Add(uint32(len(pc))) {
		return nil, false
	}
	for i := 0; i < hl; i++ {
		switch {
		case i >= offSeq && i < offSeq+4, i == offFlags, i >= offChecksum && i < offChecksum+2:
			continue
		}
		if cur[i] != next[i] {
			return nil, false
		}
	}
	m := append(append([]byte(nil), cur...), pn...)
	m[offFlags] = byte(fc | fn)
	src, dst := tuple.Remote.Addr(), tuple.Local.Addr()
	if toB {
		src, dst = dst, src
	}
	SetChecksum(m, src, dst)
	return m, true
}

func (p *pair) deliverAll(t testing.TB) {
	for p.deliverOne(t) {
	}
}

// advance jumps to the earliest deadline of a and b and fires it. It
// reports false when no timer runs.
func (p *pair) advance() bool {
	d := p.a.NextDeadline()
	if p.b != nil {
		d = earliest(d, p.b.NextDeadline())
	}
	if p.l != nil {
		d = earliest(d, p.l.NextDeadline())
	}
	if d.IsZero() {
		return false
	}
	if d.After(p.now) {
		p.now = d
	}
	p.a.Tick(p.now, p.aOut())
	if p.b != nil {
		p.b.Tick(p.now, p.bOut())
	}
	if p.l != nil {
		p.l.Tick(p.now, p.bOut())
	}
	return true
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// endpoint is one side's application in a bulk transfer: it writes src and
// reads into a hash until EOF.
type endpoint struct {
	c       *Conn
	out     Output
	src     []byte
	sent    int
	closed  bool
	got     int
	eof     bool
	h       hashWriter
	readBuf []byte
	// readEvery makes a slow reader: it reads only on one pump call in
	// readEvery (0 or 1: every call).
	readEvery int
	calls     int
}

type hashWriter interface{ Write([]byte) (int, error) }

func (e *endpoint) pump(t testing.TB, now time.Time) {
	if e.sent < len(e.src) {
		n, err := e.c.Write(now, e.src[e.sent:], e.out)
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
		e.sent += n
	}
	if e.sent == len(e.src) && !e.closed {
		e.closed = true
		e.c.CloseWrite(now, e.out)
	}
	e.calls++
	if e.readEvery > 1 && e.calls%e.readEvery != 0 {
		return
	}
	for !e.eof {
		n, err := e.c.Read(now, e.readBuf, e.out)
		if err == io.EOF {
			e.eof = true
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if n == 0 {
			break
		}
		e.h.Write(e.readBuf[:n])
		e.got += n
	}
}

// transfer moves size bytes each way between a and b with the pair's
// loss and reordering, and checks SHA-256 of what arrived.
func transfer(t *testing.T, p *pair, size int) { transferSlow(t, p, size, 0) }

func transferSlow(t *testing.T, p *pair, size int, readEvery int) {
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	mk := func() []byte {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	ea := &endpoint{c: p.a, out: p.aOut(), src: mk(), h: sha256.New(), readBuf: make([]byte, 32<<10)}
	eb := &endpoint{c: p.b, out: p.bOut(), src: mk(), h: sha256.New(), readBuf: make([]byte, 32<<10)}
	ea.readEvery, eb.readEvery = readEvery, readEvery
	for i := 0; !(ea.eof && eb.eof); i++ {
		if i > 20_000_000 {
			t.Fatalf("no progress: a got %d, b got %d; states %v %v", ea.got, eb.got, p.a.State(), p.b.State())
		}
		ea.pump(t, p.now)
		eb.pump(t, p.now)
		if p.deliverOne(t) {
			continue
		}
		// Idle network: a slow reader reads now, before time moves on.
		if readEvery > 1 && (p.a.Readable() && !ea.eof || p.b.Readable() && !eb.eof) {
			ea.calls, eb.calls = -1, -1
			continue
		}
		if !p.advance() {
			if !(ea.eof && eb.eof) {
				t.Fatalf("stalled with no timer: a got %d/%d, b got %d/%d; states %v %v; a %+v b %+v\n%s\n%s", ea.got, size, eb.got, size, p.a.State(), p.b.State(), p.a.Info(), p.b.Info(), p.a.debugString(), p.b.debugString())
			}
		}
		if p.a.Err() != nil || p.b.Err() != nil {
			t.Fatalf("errors: %v %v", p.a.Err(), p.b.Err())
		}
	}
	sa, sb := sha256.Sum256(ea.src), sha256.Sum256(eb.src)
	if !bytes.Equal(eb.h.(interface{ Sum([]byte) []byte }).Sum(nil), sa[:]) {
		t.Fatalf("b received %d bytes with a different SHA-256", eb.got)
	}
	if !bytes.Equal(ea.h.(interface{ Sum([]byte) []byte }).Sum(nil), sb[:]) {
		t.Fatalf("a received %d bytes with a different SHA-256", ea.got)
	}
}

func TestTransferClean(t *testing.T) {
	cfg := DefaultConfig()
	p := newPair(t, cfg, 1)
	start := p.now
	transfer(t, p, 4<<20)
	t.Logf("clean: %v virtual, a %+v", p.now.Sub(start), p.a.Info())
}

func TestTransferLossReorder(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		cfg := DefaultConfig()
		p := newPair(t, cfg, seed)
		p.loss, p.reorder = 0.05, 0.05
		start := p.now
		transfer(t, p, 3<<20)
		ia := p.a.Info()
		t.Logf("seed %d: %v virtual, %d drops, a retransmits %d, b retransmits %d", seed, p.now.Sub(start), p.drops, ia.Retransmits, p.b.Info().Retransmits)
	}
}

func TestTransferNoOptionsSmallBuffers(t *testing.T) {
	cfg := testConfig()
	cfg.SendBufferSize, cfg.ReceiveBufferSize = 7000, 5000
	p := newPair(t, cfg, 9)
	p.loss, p.reorder = 0.05, 0.1
	transfer(t, p, 1<<20)
}

func TestTransferDuplicationNoDelaySmallMSS(t *testing.T) {
	for _, ts := range []bool{false, true} {
		cfg := DefaultConfig()
		cfg.Timestamps = ts
		cfg.NoDelay = true
		p := newPair(t, cfg, 4)
		p.loss, p.reorder, p.dup = 0.03, 0.05, 0.03
		transfer(t, p, 1<<20)
	}
}

// A slow reader with small buffers: the windows close and reopen (zero
// window probes, window updates) under loss and reordering.
func TestTransferSlowReader(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SendBufferSize, cfg.ReceiveBufferSize = 16<<10, 8<<10
	st := new(Stats)
	cfg.Stats = st
	p := newPair(t, cfg, 5)
	p.loss, p.reorder = 0.05, 0.05
	transferSlow(t, p, 1<<20, 400)
	t.Logf("%v virtual; window probes %d, timeouts %d, fast retransmits %d, drops %d", p.now.Sub(t0), st.WindowProbes.Load(), st.Timeouts.Load(), st.FastRetransmits.Load(), p.drops)
}
