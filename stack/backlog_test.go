package stack

import (
	"bytes"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
)

// backlogConn is an accepted connection of a stack on a captureEndpoint
// whose peer the test plays (demuxPeer): the test's goroutine is the NIC
// reader (nic.deliver), so it decides when a segment arrives relative to
// who owns the connection.
type backlogConn struct {
	s  *Stack
	n  *nic
	ce *captureEndpoint
	p  *demuxPeer
	c  *TCPConn
	// clock is the stack's clock, which only the test moves.
	clock *ManualClock
	// owned is set while the test owns the connection (own, letGo).
	owned bool
}

// own takes the connection as a user call would.
func (b *backlogConn) own() { b.c.ep.lock(); b.owned = true }

// letGo gives the connection up.
func (b *backlogConn) letGo() { b.owned = false; b.c.ep.release() }

func newBacklogConn(t *testing.T, sack bool) *backlogConn {
	t.Helper()
	b := &backlogConn{ce: newCaptureEndpoint(), clock: NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}
	b.s = New(Options{Clock: b.clock})
	t.Cleanup(func() { b.s.Close() })
	t.Cleanup(func() {
		if b.owned { // a failed test still owns it; Close would wait
			b.letGo()
		}
	})
	if _, err := b.s.AddNIC(b.ce, addrA); err != nil {
		t.Fatal(err)
	}
	b.n = b.s.nicByID(1)
	l, err := b.s.ListenTCP(netip.AddrPortFrom(addrA.Addr(), 8))
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.AddrFrom4([4]byte{10, 1, 0, 10})
	req := make([]byte, arp.PacketLen)
	arp.PutPacket(req, arp.OpRequest, demuxMAC, ip, link.MAC{}, addrA.Addr())
	b.n.deliver(demuxFrame(b.ce.mac, link.EtherTypeARP, req))
	b.p = &demuxPeer{addr: netip.AddrPortFrom(ip, 40000), port: 8, iss: 1000,
		opts: tcp.Options{MSS: 1460, WindowScale: -1, SACKPermitted: sack}}
	b.p.nxt = b.p.iss
	demuxSend(b.n, b.ce, b.p, tcp.FlagSYN, nil)
	b.p.nxt = b.p.iss.Add(1)
	b.observe()
	demuxSend(b.n, b.ce, b.p, tcp.FlagACK, nil)
	if b.c = tryAccept(l); b.c == nil {
		t.Fatal("the handshake made no connection")
	}
	b.observe()
	return b
}

// observe reads what the stack sent into the peer's model and returns
// the TCP segments among it.
func (b *backlogConn) observe() []tcp.Segment {
	frames := b.ce.take()
	var segs []tcp.Segment
	for _, fr := range frames {
		eth, err := link.ParseEthernet(fr)
		if err != nil || eth.Type() != link.EtherTypeIPv4 {
			continue
		}
		h, err := ipv4.ParseHeader(eth.Payload())
		if err != nil || h.Protocol() != ipv4.ProtocolTCP {
			continue
		}
		if seg, err := tcp.ParseSegment(h.Payload(), h.Source(), h.Destination()); err == nil {
			segs = append(segs, seg)
		}
	}
	// Put them back for the peer's model to read.
	b.ce.mu.Lock()
	b.ce.frames = append(frames, b.ce.frames...)
	b.ce.mu.Unlock()
	demuxObserve(b.ce, []*demuxPeer{b.p})
	return segs
}

// TestBacklogProcessedAtRelease: a segment that arrives while a user
// call owns the connection does not wait for the lock (deliver returns
// at once), goes on the backlog untouched by the core, and is processed
// when the owner gives the connection up.
func TestBacklogProcessedAtRelease(t *testing.T) {
	b := newBacklogConn(t, false)
	ep := b.c.ep
	b.own() // as a Read or Write inside the core
	demuxSend(b.n, b.ce, b.p, tcp.FlagACK|tcp.FlagPSH, []byte("hello"))
	if n := ep.bl.n.Load(); n != 1 || ep.c.Readable() || ep.c.Info().BytesIn != 0 {
		t.Fatalf("while owned: %d queued, readable %v, %d bytes in; want 1, false, 0", n, ep.c.Readable(), ep.c.Info().BytesIn)
	}
	if st := b.s.Stats().TCP; st.Backlogged != 1 || st.DropBacklogFull != 0 {
		t.Fatalf("Backlogged %d, DropBacklogFull %d; want 1, 0", st.Backlogged, st.DropBacklogFull)
	}
	b.letGo()
	if n := ep.bl.n.Load(); n != 0 {
		t.Fatalf("%d segments left on the backlog after release", n)
	}
	if in := b.c.Info().BytesIn; in != 5 {
		t.Fatalf("%d bytes in after release, want 5", in)
	}
	b.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 16)
	if n, err := b.c.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}

// TestBacklogNoLostWakeup: a reader whose TryLock failed queues its
// segment only after the owner has looked at the backlog and unlocked;
// queue's second try takes the connection and processes it, so it is not
// stranded.
func TestBacklogNoLostWakeup(t *testing.T) {
	b := newBacklogConn(t, false)
	ep := b.c.ep
	b.own()
	seg := b.dataSegment(t, []byte("late"))
	if ep.mu.TryLock() {
		t.Fatal("TryLock succeeded on an owned connection")
	}
	b.letGo() // the owner finds the backlog empty and goes
	ep.queue(b.c.tuple(), seg, 1)
	if n := ep.bl.n.Load(); n != 0 {
		t.Fatalf("%d segments stranded on the backlog", n)
	}
	if in := b.c.Info().BytesIn; in != 4 {
		t.Fatalf("%d bytes in, want 4", in)
	}
}

// dataSegment builds the peer's next data segment (as demuxSend would
// send it) and advances the peer past it.
func (b *backlogConn) dataSegment(t *testing.T, payload []byte) tcp.Segment {
	t.Helper()
	p := b.p
	h := tcp.Header{SrcPort: p.addr.Port(), DstPort: p.port, Seq: p.nxt, Ack: p.stackNxt, Flags: tcp.FlagACK | tcp.FlagPSH, Window: 65535}
	raw := make([]byte, h.Len()+len(payload))
	h.Encode(raw)
	copy(raw[h.Len():], payload)
	tcp.SetChecksum(raw, p.addr.Addr(), addrA.Addr())
	seg, err := tcp.ParseSegment(raw, p.addr.Addr(), addrA.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p.nxt = p.nxt.Add(uint32(len(payload)))
	return seg
}

// TestBacklogOrder: segments queued while the connection is owned are
// processed in arrival order. Three full-sized in-order segments,
// processed in order, draw only cumulative ACKs (one for the first two,
// RFC 9293 §3.8.6.3, and a delayed one for the third); processed in any
// other order, the first out of order would draw an immediate ACK with a
// SACK block (RFC 5681 §4.2, RFC 2018 §4).
func TestBacklogOrder(t *testing.T) {
	b := newBacklogConn(t, true)
	ep := b.c.ep
	var want []byte
	b.own()
	for i := range 3 {
		payload := bytes.Repeat([]byte{byte('a' + i)}, int(mssFor(b.n, netip.IPv4Unspecified())))
		want = append(want, payload...)
		demuxSend(b.n, b.ce, b.p, tcp.FlagACK|tcp.FlagPSH, payload)
	}
	if n := ep.bl.n.Load(); n != 3 {
		t.Fatalf("%d queued, want 3", n)
	}
	b.letGo()
	b.clock.Advance(time.Second) // the delayed ACK
	b.s.runTimers(b.clock.Now())
	// The stack's own timer goroutine, woken by Advance, may be the one
	// that sends the delayed ACK, a moment later.
	waitFor(t, "the delayed ACK", func() bool {
		b.ce.mu.Lock()
		defer b.ce.mu.Unlock()
		n := 0
		for _, fr := range b.ce.frames {
			if eth, err := link.ParseEthernet(fr); err == nil && eth.Type() == link.EtherTypeIPv4 {
				n++
			}
		}
		return n >= 2
	})
	acks := b.observe()
	if len(acks) != 2 || acks[1].Ack() != b.p.nxt {
		for _, a := range acks {
			t.Logf("ack %d", a.Ack())
		}
		t.Fatalf("%d ACKs; want 2, the last of everything (%d)", len(acks), b.p.nxt)
	}
	var last tcp.Value
	for i, a := range acks {
		var o tcp.Options
		a.Options(&o)
		if o.NumSACK != 0 || (i > 0 && !a.Ack().GreaterThan(last)) {
			t.Fatalf("ACK %d: ack %d after %d, %d SACK blocks: the backlog was processed out of order", i, a.Ack(), last, o.NumSACK)
		}
		last = a.Ack()
	}
	b.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(b.c, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %q, %v; want %q", got, err, want)
	}
}

// TestBacklogFull: the backlog holds at most its bound in buffer bytes;
// a segment beyond is dropped and counted, and the ones queued are still
// processed.
func TestBacklogFull(t *testing.T) {
	b := newBacklogConn(t, false)
	ep := b.c.ep
	b.own()
	ep.bl.setLimit(2 * segBufSizes[0]) // two small segments
	for range 3 {
		demuxSend(b.n, b.ce, b.p, tcp.FlagACK|tcp.FlagPSH, []byte("x"))
	}
	queued := ep.bl.n.Load()
	b.letGo()
	if st := b.s.Stats().TCP; queued != 2 || st.Backlogged != 2 || st.DropBacklogFull != 1 {
		t.Fatalf("%d queued, Backlogged %d, DropBacklogFull %d; want 2, 2, 1", queued, st.Backlogged, st.DropBacklogFull)
	}
	if in := b.c.Info().BytesIn; in != 2 {
		t.Fatalf("%d bytes in, want the 2 queued", in)
	}
}

// TestBacklogAllocs: queueing a segment on the backlog and processing it
// at release allocate nothing once the pools are warm.
func TestBacklogAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	b := newBacklogConn(t, false)
	ep := b.c.ep
	ack := b.dataSegment(t, nil)
	tu := b.c.tuple()
	run := func() {
		ep.lock()
		ep.Deliver(tu, ack)
		ep.release()
	}
	run()
	if a := testing.AllocsPerRun(1000, run); a != 0 {
		t.Errorf("a backlogged ACK allocates %.1f times", a)
	}
	if st := b.s.Stats().TCP; st.Backlogged < 1000 {
		t.Fatalf("Backlogged %d: the ACKs did not go through the backlog", st.Backlogged)
	}
}

// TestBacklogRace hammers both ends of an echo connection with user calls
// (reads, writes, Info, SetNoDelay from several goroutines) while their
// NIC readers deliver segments, so that readers find connections owned and
// use the backlog; every byte must come back in order. Run it with -race.
func TestBacklogRace(t *testing.T) {
	p := newEchoedPair(t)
	const total = 4 << 20
	msg := make([]byte, total)
	for i := range msg {
		msg[i] = byte(i * 7 / 5)
	}
	deadline := time.Now().Add(30 * time.Second)
	p.c.SetDeadline(deadline)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				p.c.Info()
				p.c.SetNoDelay(true)
			}
		}()
	}
	errc := make(chan error, 1)
	go func() {
		for off := 0; off < total; off += 16 << 10 {
			if _, err := p.c.Write(msg[off : off+16<<10]); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	got := make([]byte, total)
	_, rerr := io.ReadFull(p.c, got)
	close(done)
	wg.Wait()
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if rerr != nil {
		t.Fatalf("read: %v", rerr)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("the echo differs")
	}
	qa, qb := p.a.Stats().TCP.Backlogged, p.b.Stats().TCP.Backlogged
	t.Logf("segments backlogged: %d at the client, %d at the server", qa, qb)
	if qa+qb == 0 {
		// Every reader found every connection free: nothing exercised the
		// backlog. Keep echoing (each round is another chance) for a while.
		for round := 0; qa+qb == 0 && time.Now().Before(deadline); round++ {
			p.echo(t, round, msg[:256<<10])
			qa, qb = p.a.Stats().TCP.Backlogged, p.b.Stats().TCP.Backlogged
		}
		if qa+qb == 0 {
			t.Fatal("no segment ever went through a backlog")
		}
	}
}

// TestBacklogAfterTimeWait: a segment queued behind one that takes the
// connection into TIME-WAIT (and, its user having closed it, out of the
// table for a record) is demultiplexed again when processed, and reaches
// the record: a retransmitted FIN is acknowledged by it (RFC 9293
// §3.10.7.4), not reset.
func TestBacklogAfterTimeWait(t *testing.T) {
	b := newBacklogConn(t, false)
	ep := b.c.ep
	b.c.Close()
	if segs := b.observe(); len(segs) != 1 || !segs[0].Flags().Has(tcp.FlagFIN) {
		t.Fatalf("Close sent %d segments, want our FIN", len(segs))
	}
	b.own()
	demuxSend(b.n, b.ce, b.p, tcp.FlagACK|tcp.FlagFIN, nil) // acknowledges our FIN: TIME-WAIT
	b.p.nxt = b.p.nxt.Add(^uint32(0))
	demuxSend(b.n, b.ce, b.p, tcp.FlagACK|tcp.FlagFIN, nil) // its retransmission
	if n := ep.bl.n.Load(); n != 2 {
		t.Fatalf("%d queued, want 2", n)
	}
	b.letGo()
	st := b.s.Stats().TCP
	if st.TimeWait != 1 || len(b.s.tcp.demux.Conns()) != 0 || st.DropNoConnection != 0 || st.ResetsSent != 0 {
		t.Fatalf("%d records, %d connections, %d for no connection, %d resets; want 1, 0, 0, 0", st.TimeWait, len(b.s.tcp.demux.Conns()), st.DropNoConnection, st.ResetsSent)
	}
	acks := b.observe()
	if len(acks) != 2 || acks[0].Ack() != b.p.nxt || acks[1].Ack() != b.p.nxt || acks[1].Flags() != tcp.FlagACK {
		t.Fatalf("%d segments sent; want the Conn's ACK of the FIN and the record's of its retransmission", len(acks))
	}
}
