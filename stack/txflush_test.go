package stack

import (
	"bytes"
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
)

// lockProbe is a link endpoint that, as each TCP frame is written, checks
// whether the connection ep's lock is held.
type lockProbe struct {
	link.Endpoint
	ep           atomic.Pointer[tcpEndpoint]
	free, locked atomic.Int64
}

func (p *lockProbe) WriteFrame(b []byte) error {
	if ep := p.ep.Load(); ep != nil {
		if h, err := ipv4.ParseHeader(b[link.EthernetHeaderLen:]); err == nil && h.Protocol() == ipv4.ProtocolTCP {
			if ep.mu.TryLock() {
				ep.mu.Unlock()
				p.free.Add(1)
			} else {
				p.locked.Add(1)
			}
		}
	}
	return p.Endpoint.WriteFrame(b)
}

// TestFramesWrittenAfterUnlock: the segments a Write makes under the
// connection's lock reach the link once the lock is released, in order.
// The peer is played by hand and sends nothing meanwhile, so nothing but
// the writer could hold the lock.
func TestFramesWrittenAfterUnlock(t *testing.T) {
	leakcheck.Check(t)
	clock := NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ea, eb := link.NewPipe(link.PipeOptions{})
	probe := &lockProbe{Endpoint: ea}
	s := New(Options{Clock: clock})
	defer s.Close()
	frames := reader(t, eb)
	if _, err := s.AddNIC(probe, addrA); err != nil {
		t.Fatal(err)
	}
	p := &handPeer{t: t, ep: eb, frames: frames, us: ea.HardwareAddr(), remote: netip.AddrPortFrom(addrB.Addr(), 80), seq: 7000}
	p.next() // the gratuitous ARP
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dialed := make(chan *TCPConn, 1)
	go func() {
		c, err := s.DialTCP(ctx, p.remote)
		if err != nil {
			t.Error(err)
		}
		dialed <- c
	}()
	p.arpRequest(addrB.Addr())
	p.arpReply(eb.HardwareAddr(), addrB.Addr())
	syn := p.segment(eb.HardwareAddr())
	p.local = netip.AddrPortFrom(addrA.Addr(), syn.SourcePort())
	p.ack = syn.Seq() + 1
	p.send(tcp.FlagSYN|tcp.FlagACK, &tcp.Options{MSS: 1000, WindowScale: -1})
	p.seq++
	p.segment(eb.HardwareAddr()) // the handshake's ACK
	c := <-dialed
	if c == nil {
		t.FailNow()
	}
	defer c.Close()
	probe.ep.Store(c.ep)

	// Eight segments, within the initial window (RFC 6928: 10), made by
	// one call into the core.
	msg := bytes.Repeat([]byte("0123456789abcdef"), 500)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for len(got) < len(msg) {
		got = append(got, p.segment(eb.HardwareAddr()).Payload()...)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("the segments do not carry the bytes written, in order")
	}
	if free, locked := probe.free.Load(), probe.locked.Load(); locked != 0 || free != 8 {
		t.Errorf("%d segments written with the connection's lock free, %d with it held; want 8 and 0", free, locked)
	}
}
