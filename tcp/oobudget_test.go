package tcp

import (
	"bytes"
	"net/netip"
	"testing"
)

// budgetConn is one connection of the out-of-order flood, established
// with the remote ISS remoteISS and a 64 KiB window.
type budgetConn struct {
	c   *Conn
	out recOutput
}

func dialShared(t *testing.T, cfg *Config, port uint16) *budgetConn {
	t.Helper()
	b := &budgetConn{}
	tp := Tuple{Local: localAP, Remote: netip.AddrPortFrom(remoteAP.Addr(), port)}
	b.c = Dial(cfg, tp, localISS, localMSS, t0, &b.out)
	b.input(t, sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535, opts: mssOpt(1460)}, port)
	if b.c.State() != StateEstablished {
		t.Fatalf("conn %d: state %v", port, b.c.State())
	}
	return b
}

func (b *budgetConn) input(t *testing.T, s sg, port uint16) {
	t.Helper()
	h := Header{SrcPort: port, DstPort: localAP.Port(), Seq: s.seq, Ack: s.ack, Flags: s.flags, Window: s.win, Options: s.opts}
	buf := make([]byte, h.Len()+len(s.data))
	n := h.Encode(buf)
	copy(buf[n:], s.data)
	SetChecksum(buf, remoteAP.Addr(), localAP.Addr())
	seg, err := ParseSegment(buf, remoteAP.Addr(), localAP.Addr())
	if err != nil {
		t.Fatal(err)
	}
	b.c.Input(t0.Add(ms(10)), seg, &b.out)
	b.out.segs = b.out.segs[:0]
}

// TestOutOfOrderBudget floods 40 connections, each with a window (64 KiB)
// of data beyond a one-segment hole, against a 1 MiB stack-wide budget:
// the out-of-order level never exceeds the budget, the excess is dropped
// and counted, in-order data is still taken while the budget is spent,
// and filling the holes gives the whole budget back.
func TestOutOfOrderBudget(t *testing.T) {
	cfg := testConfig()
	const limit = 1 << 20
	cfg.MaxOutOfOrderBytes = limit
	st := cfg.Stats
	const conns, seg = 40, 1460
	window := cfg.ReceiveBufferSize
	payload := func(i, off, n int) []byte {
		p := make([]byte, n)
		for k := range p {
			p[k] = byte(i*7 + off + k)
		}
		return p
	}
	cs := make([]*budgetConn, conns)
	for i := range cs {
		cs[i] = dialShared(t, &cfg, uint16(40000+i))
	}
	// Every connection is sent its window beyond the hole [0, seg).
	for i, b := range cs {
		for off := seg; off+seg <= window; off += seg {
			b.input(t, sg{flags: PSHACK, seq: remoteISS + 1 + Value(off), ack: localISS + 1, win: 65535, data: payload(i, off, seg)}, uint16(40000+i))
			if used := st.OutOfOrderBytes.Load(); used > limit {
				t.Fatalf("conn %d offset %d: %d out-of-order bytes held, over the %d budget", i, off, used, limit)
			}
		}
	}
	used, dropped := st.OutOfOrderBytes.Load(), st.DroppedOutOfOrderMemory.Load()
	wanted := conns * (window/seg - 1)
	t.Logf("%d connections, %d out-of-order segments: %d bytes held (budget %d), %d segments dropped",
		conns, wanted, used, limit, dropped)
	if used < limit-uint64(window) || dropped == 0 {
		t.Fatalf("held %d, dropped %d: the budget should be spent and the excess dropped", used, dropped)
	}
	var sum uint64
	for _, b := range cs {
		sum += uint64(b.c.oooCharge)
	}
	if sum != used {
		t.Fatalf("charges add up to %d, the level says %d", sum, used)
	}

	// In-order data flows while the budget is spent: every connection
	// takes its hole, and those that held their window deliver it all.
	for i, b := range cs {
		before := b.c.oooCharge
		b.input(t, sg{flags: PSHACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535, data: payload(i, 0, seg)}, uint16(40000+i))
		got := make([]byte, window)
		n, err := b.c.Read(t0.Add(ms(20)), got, &b.out)
		if err != nil {
			t.Fatal(err)
		}
		// The charge ran from RCV.NXT, over the hole, to the end of the
		// data held.
		want := max(seg, int(before))
		if n != want || !bytes.Equal(got[:seg], payload(i, 0, seg)) {
			t.Fatalf("conn %d: read %d bytes, want %d (the hole and what was held)", i, n, want)
		}
		for off := seg; off < n; off += seg {
			if !bytes.Equal(got[off:off+seg], payload(i, off, seg)) {
				t.Fatalf("conn %d: bytes at %d differ", i, off)
			}
		}
	}
	if used := st.OutOfOrderBytes.Load(); used != 0 {
		t.Fatalf("holes filled, %d out-of-order bytes still charged", used)
	}
}

// TestOutOfOrderBudgetReleased checks that a connection gives its charge
// back when it ends with data still held beyond a hole.
func TestOutOfOrderBudgetReleased(t *testing.T) {
	for _, end := range []string{"reset", "abort", "fin"} {
		t.Run(end, func(t *testing.T) {
			cfg := testConfig()
			st := cfg.Stats
			b := dialShared(t, &cfg, 40000)
			b.input(t, sg{flags: PSHACK, seq: remoteISS + 1001, ack: localISS + 1, win: 65535, data: make([]byte, 500)}, 40000)
			if got := st.OutOfOrderBytes.Load(); got != 1500 {
				t.Fatalf("held %d out-of-order bytes, want 1500 (from RCV.NXT to the end of the range)", got)
			}
			switch end {
			case "reset":
				b.input(t, sg{flags: RST, seq: remoteISS + 1}, 40000)
			case "abort":
				b.c.Abort(t0.Add(ms(20)), &b.out)
			case "fin":
				// A FIN in order, ahead of the data held: the data beyond
				// it can never be delivered.
				b.input(t, sg{flags: FINACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535}, 40000)
				if s := b.c.State(); s != StateCloseWait {
					t.Fatalf("state %v, want CLOSE-WAIT", s)
				}
			}
			if got := st.OutOfOrderBytes.Load(); got != 0 {
				t.Fatalf("after %s: %d out-of-order bytes still charged", end, got)
			}
		})
	}
}

// TestOutOfOrderBudgetNoReneging: with SACK, a connection whose
// out-of-order data was refused for want of budget never reports it in a
// SACK block, and what it reported before the budget ran out stays
// reported and is delivered: nothing SACKed is discarded (RFC 2018 §8).
func TestOutOfOrderBudgetNoReneging(t *testing.T) {
	cfg := testConfig()
	cfg.SACKPermitted = true
	cfg.MaxOutOfOrderBytes = 8000
	st := cfg.Stats
	synack := sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535,
		opts: &Options{MSS: 1460, WindowScale: -1, SACKPermitted: true}}
	dial := func(port uint16) *budgetConn {
		b := &budgetConn{}
		b.c = Dial(&cfg, Tuple{Local: localAP, Remote: netip.AddrPortFrom(remoteAP.Addr(), port)}, localISS, localMSS, t0, &b.out)
		b.input(t, synack, port)
		return b
	}
	a, other := dial(40000), dial(40001)
	if !a.c.sackOK {
		t.Fatal("SACK not negotiated")
	}
	data := make([]byte, 1000)
	// a holds [2000, 3000) beyond a hole: it SACKs it.
	lastSACK := func(b *budgetConn, port uint16, s sg) (blocks []SACKBlock) {
		t.Helper()
		h := Header{SrcPort: port, DstPort: localAP.Port(), Seq: s.seq, Ack: s.ack, Flags: s.flags, Window: s.win}
		buf := make([]byte, h.Len()+len(s.data))
		n := h.Encode(buf)
		copy(buf[n:], s.data)
		SetChecksum(buf, remoteAP.Addr(), localAP.Addr())
		seg, _ := ParseSegment(buf, remoteAP.Addr(), localAP.Addr())
		b.out.segs = b.out.segs[:0]
		b.c.Input(t0.Add(ms(10)), seg, &b.out)
		for _, r := range b.out.segs {
			var o Options
			r.Options(&o)
			blocks = append(blocks[:0], o.SACK[:o.NumSACK]...)
		}
		return blocks
	}
	got := lastSACK(a, 40000, sg{flags: PSHACK, seq: remoteISS + 2001, ack: localISS + 1, win: 65535, data: data})
	if len(got) != 1 || got[0] != (SACKBlock{Left: remoteISS + 2001, Right: remoteISS + 3001}) {
		t.Fatalf("SACK blocks %v, want [2000, 3000)", got)
	}
	// other spends the rest of the budget (3000 of a's 8000 are used).
	lastSACK(other, 40001, sg{flags: PSHACK, seq: remoteISS + 4001, ack: localISS + 1, win: 65535, data: data})
	if used := st.OutOfOrderBytes.Load(); used != 3000+5000 {
		t.Fatalf("%d bytes charged, want 8000", used)
	}
	// a's next out-of-order segment does not fit: refused, not SACKed,
	// and the block reported before is still there.
	got = lastSACK(a, 40000, sg{flags: PSHACK, seq: remoteISS + 5001, ack: localISS + 1, win: 65535, data: data})
	if st.DroppedOutOfOrderMemory.Load() != 1 {
		t.Fatalf("DroppedOutOfOrderMemory %d, want 1", st.DroppedOutOfOrderMemory.Load())
	}
	if len(got) != 1 || got[0] != (SACKBlock{Left: remoteISS + 2001, Right: remoteISS + 3001}) {
		t.Fatalf("SACK blocks %v, want only the one held, [2000, 3000)", got)
	}
	// Filling the hole delivers everything that was SACKed.
	lastSACK(a, 40000, sg{flags: PSHACK, seq: remoteISS + 1, ack: localISS + 1, win: 65535, data: make([]byte, 2000)})
	buf := make([]byte, 10000)
	if n, _ := a.c.Read(t0.Add(ms(20)), buf, &a.out); n != 3000 {
		t.Fatalf("read %d bytes, want 3000 (the hole and the SACKed block)", n)
	}
}
