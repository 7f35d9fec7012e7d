package tcp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// checkInvariants verifies what must hold for a Conn after any call.
func checkInvariants(c *Conn) error {
	if c.state > StateTimeWait {
		return fmt.Errorf("state %d", c.state)
	}
	if c.snd.NXT.LessThan(c.snd.UNA) || c.snd.MAX.LessThan(c.snd.NXT) {
		return fmt.Errorf("snd.UNA %d snd.NXT %d snd.MAX %d", c.snd.UNA, c.snd.NXT, c.snd.MAX)
	}
	if d := int32(c.sndHead - c.snd.UNA); d < -1 || d > 1 {
		return fmt.Errorf("sndHead %d snd.UNA %d", c.sndHead, c.snd.UNA)
	}
	if c.state != StateClosed && c.snd.MAX.Sub(c.snd.UNA) > uint32(c.sndBuf.Len())+2 {
		return fmt.Errorf("in flight %d > buffered %d + SYN + FIN", c.snd.MAX.Sub(c.snd.UNA), c.sndBuf.Len())
	}
	if c.sndBuf.Len() < 0 || c.sndBuf.Len() > c.sndBuf.Cap() || c.rcvBuf.Len() < 0 || c.rcvBuf.Len() > c.rcvBuf.Cap() {
		return fmt.Errorf("buffers %d/%d %d/%d", c.sndBuf.Len(), c.sndBuf.Cap(), c.rcvBuf.Len(), c.rcvBuf.Cap())
	}
	if c.rcv.WND > uint32(c.rcvBuf.Cap()) || c.rcv.WND > 0xffff<<c.rcv.shift {
		return fmt.Errorf("rcv.WND %d (buffer %d, shift %d)", c.rcv.WND, c.rcvBuf.Cap(), c.rcv.shift)
	}
	if c.state.synchronized() && c.rcv.WND > uint32(c.rcvBuf.Free()) {
		return fmt.Errorf("rcv.WND %d beyond free space %d", c.rcv.WND, c.rcvBuf.Free())
	}
	for i := 0; i < c.ooo().Len(); i++ {
		r := c.ooo().r[i]
		if !c.rcv.NXT.LessThan(r.start) || !r.start.LessThan(r.end) {
			return fmt.Errorf("ooo range %d-%d with rcv.NXT %d", r.start, r.end, c.rcv.NXT)
		}
		if r.end.Sub(c.rcv.NXT) > uint32(c.rcvBuf.Free()) {
			return fmt.Errorf("ooo range %d-%d beyond the buffer (rcv.NXT %d, free %d)", r.start, r.end, c.rcv.NXT, c.rcvBuf.Free())
		}
		if i > 0 && !c.ooo().r[i-1].end.LessThan(r.start) {
			return fmt.Errorf("ooo ranges overlap or touch")
		}
	}
	if c.state == StateClosed && !c.NextDeadline().IsZero() {
		return fmt.Errorf("CLOSED with a timer")
	}
	if !c.tuneOff && c.rcvBuf.Cap() > max(c.cfg.MaxReceiveBufferSize, c.cfg.ReceiveBufferSize) {
		return fmt.Errorf("auto-tuning grew the buffer to %d past its maximum %d", c.rcvBuf.Cap(), c.cfg.MaxReceiveBufferSize)
	}
	if c.rx != nil && (c.rx.sack.n < 0 || c.rx.sack.n > len(c.rx.sack.recent)) {
		return fmt.Errorf("SACK record of %d arrivals", c.rx.sack.n)
	}
	if c.cwnd() == 0 || c.sndMSS <= 0 {
		return fmt.Errorf("cwnd %d mss %d", c.cwnd(), c.sndMSS)
	}
	return nil
}

// fuzzFixtures put a Conn in each state; some with timestamps and window
// scaling negotiated.
var fuzzFixtures = []func(*testing.T) *harness{
	synSent, simultaneousSynReceived, established, establishedPassive,
	finWait1, finWait2, closeWait, closing, lastAck, timeWait, establishedOptions,
	establishedAutoTune,
}

// establishedAutoTune is ESTABLISHED with every option, SACK included, and
// a small receive buffer that auto-tuning may grow to 1 MiB.
func establishedAutoTune(t *testing.T) *harness {
	t.Helper()
	cfg := testConfig()
	cfg.WindowScale, cfg.Timestamps, cfg.SACKPermitted = true, true, true
	cfg.ReceiveBufferSize, cfg.MaxReceiveBufferSize = 8<<10, 1<<20
	h := newHarness(cfg)
	h.dial(t, 0)
	syn := h.expect(t, 0, sg{flags: SYN, seq: localISS})
	var o Options
	syn.Options(&o)
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535,
		opts: &Options{MSS: 1460, WindowScale: 7, SACKPermitted: true, Timestamp: true, TSVal: 100, TSEcr: o.TSVal}})
	h.expect(t, ms(10), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1})
	return h
}

// establishedOptions is ESTABLISHED with window scaling and timestamps.
func establishedOptions(t *testing.T) *harness {
	t.Helper()
	cfg := testConfig()
	cfg.WindowScale, cfg.Timestamps, cfg.SACKPermitted = true, true, true
	cfg.ReceiveBufferSize = 1 << 20
	h := newHarness(cfg)
	h.dial(t, 0)
	syn := h.expect(t, 0, sg{flags: SYN, seq: localISS})
	var o Options
	syn.Options(&o)
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535,
		opts: &Options{MSS: 1460, WindowScale: 7, Timestamp: true, TSVal: 100, TSEcr: o.TSVal}})
	h.expect(t, ms(10), sg{flags: ACK, seq: localISS + 1, ack: remoteISS + 1})
	return h
}

// FuzzConnInput puts a Conn in each state and feeds it random segments
// (with valid checksums), user calls and timer ticks at random times. No
// call may panic and the invariants must hold after each.
func FuzzConnInput(f *testing.F) {
	f.Add(uint8(3), []byte{0, 0x10, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 5, 0})
	f.Add(uint8(5), []byte{0, 0x19, 0, 0, 0, 0, 0, 0, 0, 2, 0xff, 0xff, 3, 1, 1, 10, 2, 0, 0, 0, 0})
	f.Add(uint8(11), []byte{0, 0x18, 0, 0, 0, 10, 0, 0, 0, 1, 0xff, 0xff, 100, 1, 0, 0, 0, 0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint8(0), []byte{0, 0x12, 0, 0, 0, 0, 0, 0, 3, 0xe9, 0x10, 0, 0, 0})
	f.Add(uint8(1), []byte{0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0xff, 0})
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		h := fuzzFixtures[int(which)%len(fuzzFixtures)](t)
		c := h.c
		now := t0.Add(ms(50))
		r := fuzzReader{b: data}
		payload := make([]byte, 3000)
		for i := range payload {
			payload[i] = byte(i)
		}
		buf := make([]byte, 4096)
		for ops := 0; r.more() && ops < 200; ops++ {
			op := r.u8()
			now = now.Add(time.Duration(r.u16()) * time.Millisecond / 4)
			switch op % 8 {
			case 0, 1, 2, 3: // a segment
				flags := Flags(r.u8())
				seq := c.rcv.NXT.Add(uint32(int32(int16(r.u16()))))
				if r.u8()&1 == 1 {
					seq = Value(r.u32())
				}
				ack := c.snd.UNA.Add(uint32(int32(int16(r.u16()))))
				win := r.u16()
				n := int(r.u16()) % len(payload)
				var opts *Options
				if k := r.u8(); k&1 == 1 {
					opts = &Options{WindowScale: -1, Timestamp: true, TSVal: c.tsRecent + uint32(int32(int8(k))), TSEcr: r.u32()}
					if k&2 == 2 {
						opts.MSS = uint16(k) * 8
						opts.WindowScale = int8(k % 16)
					}
				}
				seg := sg{flags: flags, seq: seq, ack: ack, win: win, opts: opts, data: payload[:n]}.build()
				// Some segments come as GRO super-segments of 2-4.
				c.InputSegments(now, seg, 1+max(0, int(op>>5)-4), &h.out)
			case 4:
				c.Tick(now, &h.out)
			case 5:
				c.Write(now, payload[:int(r.u16())%len(payload)], &h.out)
			case 6:
				c.Read(now, buf[:1+int(r.u16())%len(buf)], &h.out)
			case 7:
				switch r.u8() % 8 {
				case 0:
					c.CloseWrite(now, &h.out)
				case 1:
					c.Close(now, &h.out)
				case 2:
					c.Abort(now, &h.out)
				case 3:
					c.SetKeepAlive(true)
				case 4:
					c.SetNoDelay(true)
				case 5:
					if d := c.NextDeadline(); !d.IsZero() {
						now = d
						c.Tick(now, &h.out)
					}
				case 6:
					c.SetReceiveBufferSize(int(r.u16()) << (r.u8() % 8))
				case 7:
					c.SetGSOMaxSize(int(r.u16()))
				}
			}
			if len(h.out.errs) > 0 {
				t.Fatalf("op %d: malformed output: %v", ops, h.out.errs)
			}
			h.out.segs = h.out.segs[:0]
			if err := checkInvariants(c); err != nil {
				t.Fatalf("op %d (%d) in %v: %v", ops, op%8, c.State(), err)
			}
		}
	})
}

// fuzzReader reads fixed-size fields from fuzz bytes, zeros past the end.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) more() bool { return len(r.b) > 0 }

func (r *fuzzReader) take(n int) []byte {
	var z [4]byte
	if len(r.b) < n {
		copy(z[:], r.b)
		r.b = nil
		return z[:n]
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *fuzzReader) u8() uint8   { return r.take(1)[0] }
func (r *fuzzReader) u16() uint16 { return binary.BigEndian.Uint16(r.take(2)) }
func (r *fuzzReader) u32() uint32 { return binary.BigEndian.Uint32(r.take(4)) }

// FuzzListenerInput feeds a Listener random segments from a few remote
// ports and drives the connections it creates with further random
// segments and ticks. Segments often aim at a half-open entry or at the
// last SYN-ACK (a cookie, in the modes that send them) so that handshakes
// complete; the first byte picks the cookie mode. The SYN and accept
// queues must stay within the backlog and never go negative, and the
// stack-wide count of half-open entries must match the queue.
func FuzzListenerInput(f *testing.F) {
	f.Add([]byte{0x02, 1, 0, 0, 0, 0x10, 2, 0, 0, 0, 0x04, 1})
	f.Add([]byte{0x02, 1, 0x02, 2, 0x02, 3, 0x10, 1, 0x12, 2})
	f.Add([]byte{0x02, 0x02, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 1, 0, 10, 1, 0, 0, 0, 0})
	f.Add([]byte{0x01, 0x02, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 1, 0, 10, 1, 0, 0, 0, 0})
	f.Fuzz(listenerFuzz)
}

// listenerFuzz is FuzzListenerInput's body.
func listenerFuzz(t *testing.T, data []byte) {
	{
		cfg := testConfig()
		cfg.SendBufferSize, cfg.ReceiveBufferSize = 4096, 4096
		cfg.SYNCookieHash = NewISNGenerator([32]byte{7}).CookieHash
		cfg.InvalidRSTLimit = 5
		r := fuzzReader{b: data}
		cfg.SYNCookies = SYNCookieMode(r.u8() % 3)
		l := NewListener(&cfg, localAP, 2)
		var out recOutput
		conns := map[Tuple]*Conn{}
		synAcks := map[Tuple]Segment{} // the last SYN-ACK to each port
		now := t0
		for ops := 0; r.more() && ops < 300; ops++ {
			flags := Flags(r.u8())
			port := uint16(40000 + int(r.u8()%4))
			tp := Tuple{Local: localAP, Remote: netip.AddrPortFrom(remoteAP.Addr(), port)}
			now = now.Add(time.Duration(r.u16()) * time.Millisecond)
			c := conns[tp]
			var seq, ack Value
			if c != nil {
				seq = c.rcv.NXT.Add(uint32(int32(int8(r.u8()))))
				ack = c.snd.UNA.Add(uint32(int32(int8(r.u8()))))
			} else if sa := synAcks[tp]; sa != nil && r.u8()%4 != 0 {
				// Aim at the handshake: the SYN-ACK's numbers, a little off
				// now and then.
				d := Value(0)
				if r.u8()%4 == 0 {
					d = Value(int8(r.u8()))
				}
				seq, ack = sa.Ack()+d, sa.Seq()+1+d
			} else {
				seq, ack = Value(r.u32()), Value(r.u32())
			}
			h := Header{SrcPort: port, DstPort: localAP.Port(), Seq: seq, Ack: ack, Flags: flags, Window: r.u16()}
			b := make([]byte, 20+int(r.u8()%8))
			h.Encode(b)
			SetChecksum(b, tp.Remote.Addr(), tp.Local.Addr())
			seg, err := ParseSegment(b, tp.Remote.Addr(), tp.Local.Addr())
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case c != nil && c.AcceptsSYN(seg):
				delete(conns, tp)
			case c != nil:
				c.Input(now, seg, &out)
				if c.Established() && !c.Accepted() {
					l.Promote(c)
				}
				if c.Done() {
					delete(conns, tp)
				}
			default:
				if nc := l.Input(now, tp, seg, Value(r.u32()), 1460, &out); nc != nil {
					conns[tp] = nc
					if !nc.Accepted() {
						t.Fatal("a connection from the listener is not on the accept queue")
					}
				}
			}
			if r.u8()%8 == 0 {
				for tp, c := range conns {
					c.Tick(now, &out)
					if c.Done() {
						delete(conns, tp)
					}
				}
				l.Tick(now, &out)
			}
			for _, s := range out.segs {
				if s.Flags() == SYNACK {
					synAcks[Tuple{Local: localAP, Remote: netip.AddrPortFrom(remoteAP.Addr(), s.DestinationPort())}] = s
				}
			}
			if r.u8()%16 == 0 {
				if c := l.Accept(); c != nil && c.Done() {
					delete(conns, c.Tuple())
				}
			}
			syn, acc := l.Pending()
			if syn < 0 || acc < 0 || syn > 2 || acc > 2 {
				t.Fatalf("queues %d + %d with backlog 2", syn, acc)
			}
			if int64(syn) != cfg.Stats.HalfOpen.Load() {
				t.Fatalf("SYN queue %d, Stats.HalfOpen %d", syn, cfg.Stats.HalfOpen.Load())
			}
			if next := l.NextDeadline(); syn > 0 && next.IsZero() || syn == 0 && !next.IsZero() {
				t.Fatalf("%d entries, next deadline %v", syn, next)
			}
			if len(out.errs) > 0 {
				t.Fatal(out.errs)
			}
			out.segs = out.segs[:0]
			for _, c := range conns {
				if err := checkInvariants(c); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
