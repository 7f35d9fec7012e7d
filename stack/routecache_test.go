package stack

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
)

// handPeer plays, on the raw end of a pipe, the routers in front of a far
// TCP peer: it answers ARP as the test says and completes a handshake.
type handPeer struct {
	t      *testing.T
	ep     *link.PipeEnd
	frames <-chan []byte
	us     link.MAC // the stack's MAC
	local  netip.AddrPort
	remote netip.AddrPort // the far peer
	seq    tcp.Value      // the peer's next sequence number
	ack    tcp.Value      // what the peer has received
}

// next returns the next frame the stack sent.
func (p *handPeer) next() link.Ethernet { p.t.Helper(); return nextFrame(p.t, p.frames) }

// arpRequest expects an ARP request for target and returns it.
func (p *handPeer) arpRequest(target netip.Addr) {
	p.t.Helper()
	eth := p.next()
	a, err := arp.ParsePacket(eth.Payload())
	if err != nil || a.Op() != arp.OpRequest || a.TargetProtocolAddr() != target {
		p.t.Fatalf("want an ARP request for %v, got a frame of type %#x (%v)", target, eth.Type(), err)
	}
}

// arpReply answers, as the owner of ip with the MAC mac.
func (p *handPeer) arpReply(mac link.MAC, from netip.Addr) {
	p.t.Helper()
	if err := p.ep.WriteFrame(arpFrame(p.us, arp.OpReply, mac, from, p.us, addrA.Addr())); err != nil {
		p.t.Fatal(err)
	}
}

// segment expects a TCP segment to the MAC mac and returns it.
func (p *handPeer) segment(mac link.MAC) tcp.Segment {
	p.t.Helper()
	eth := p.next()
	h, err := ipv4.ParseHeader(eth.Payload())
	if err != nil || h.Protocol() != ipv4.ProtocolTCP {
		p.t.Fatalf("want a TCP segment, got a frame of type %#x (%v)", eth.Type(), err)
	}
	if eth.Destination() != mac {
		p.t.Fatalf("segment sent to %v, want %v", eth.Destination(), mac)
	}
	seg, err := tcp.ParseSegment(h.Payload(), h.Source(), h.Destination())
	if err != nil {
		p.t.Fatal(err)
	}
	return seg
}

// send sends the peer's segment with flags, acknowledging what it got.
func (p *handPeer) send(flags tcp.Flags, opts *tcp.Options) {
	p.t.Helper()
	h := tcp.Header{SrcPort: p.remote.Port(), DstPort: p.local.Port(), Seq: p.seq, Ack: p.ack, Flags: flags, Window: 65535, Options: opts}
	seg := make([]byte, h.Len())
	h.Encode(seg)
	tcp.SetChecksum(seg, p.remote.Addr(), p.local.Addr())
	f := ipFrame(p.us, p.ep.HardwareAddr(), ipv4.Fields{Protocol: ipv4.ProtocolTCP, Source: p.remote.Addr(), Destination: p.local.Addr()}, seg)
	if err := p.ep.WriteFrame(f); err != nil {
		p.t.Fatal(err)
	}
}

// data writes msg on c, expects it in one segment to mac and
// acknowledges it.
func (p *handPeer) data(c *TCPConn, msg string, mac link.MAC) {
	p.t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		p.t.Fatal(err)
	}
	p.expectData(msg, mac)
}

// expectData expects msg in one segment to mac and acknowledges it.
func (p *handPeer) expectData(msg string, mac link.MAC) {
	p.t.Helper()
	seg := p.segment(mac)
	if string(seg.Payload()) != msg {
		p.t.Fatalf("segment carries %q, want %q", seg.Payload(), msg)
	}
	p.ack = seg.Seq() + tcp.Value(len(msg))
	p.send(tcp.FlagACK, nil)
}

// TestCachedRouteFollowsChanges: a connection's cached route is used
// while nothing changes, and the next segment after a change follows it:
// a more specific route through another gateway, a new MAC address for
// the gateway (RFC 826's merge), and the gateway's ARP entry expiring.
func TestCachedRouteFollowsChanges(t *testing.T) {
	leakcheck.Check(t)
	clock := NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ea, eb := link.NewPipe(link.PipeOptions{})
	s := New(Options{Clock: clock})
	defer s.Close()
	frames := reader(t, eb)
	if _, err := s.AddNIC(ea, addrA); err != nil {
		t.Fatal(err)
	}
	gw1, gw2 := netip.MustParseAddr("10.1.0.254"), netip.MustParseAddr("10.1.0.253")
	mac1, mac2, mac3 := eb.HardwareAddr(), link.MAC{2, 0, 0, 0, 0, 2}, link.MAC{2, 0, 0, 0, 0, 3}
	if err := s.AddRoute(ip.Route{Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: gw1}); err != nil {
		t.Fatal(err)
	}
	p := &handPeer{t: t, ep: eb, frames: frames, us: ea.HardwareAddr(), remote: netip.MustParseAddrPort("192.0.2.7:80"), seq: 5000}
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
	p.arpRequest(gw1)
	p.arpReply(mac1, gw1)
	syn := p.segment(mac1)
	p.local = netip.AddrPortFrom(addrA.Addr(), syn.SourcePort())
	p.ack = syn.Seq() + 1
	p.send(tcp.FlagSYN|tcp.FlagACK, &tcp.Options{MSS: 1460, WindowScale: -1})
	p.seq++
	p.segment(mac1) // the handshake's ACK
	c := <-dialed
	if c == nil {
		t.FailNow()
	}
	defer c.Close()
	p.data(c, "via gw1", mac1)
	p.data(c, "cached", mac1)
	// The route and the MAC address are the connection's own now.
	ep, _ := s.tcp.demux.Lookup(ip.Tuple{Local: p.local, Remote: p.remote})
	ep.lock()
	rt := ep.out.rt
	ep.release()
	if !rt.macOK || rt.mac != mac1 || rt.gen != s.routeGen.Load() || rt.hop != gw1 || rt.src != addrA.Addr() {
		t.Errorf("cached route %+v, want gw1 at %v in the current generation %d", rt, mac1, s.routeGen.Load())
	}

	// A more specific route through gw2: the next segment resolves gw2.
	if err := s.AddRoute(ip.Route{Destination: netip.MustParsePrefix("192.0.2.0/24"), Gateway: gw2}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("via gw2")); err != nil {
		t.Fatal(err)
	}
	p.arpRequest(gw2)
	p.arpReply(mac2, gw2)
	p.expectData("via gw2", mac2)
	p.data(c, "gw2 cached", mac2)

	// gw2 announces a new MAC: once the stack has taken it (it answers
	// the request that carries it), the next segment goes there.
	if err := eb.WriteFrame(arpFrame(link.Broadcast, arp.OpRequest, mac3, gw2, link.MAC{}, addrA.Addr())); err != nil {
		t.Fatal(err)
	}
	if eth := p.next(); eth.Type() != link.EtherTypeARP || eth.Destination() != mac3 {
		t.Fatalf("want the ARP reply to %v, got type %#x to %v", mac3, eth.Type(), eth.Destination())
	}
	p.data(c, "new MAC", mac3)

	// gw2's request left its entry STALE and the send made it DELAY
	// (NUD); its reply confirms it. Then the entry expires (REACHABLE for
	// at most 1.5 × the base reachable time, then STALE and unused for
	// StaleTime): the next segment asks ARP again. (Every byte is
	// acknowledged first, so that no retransmission races the test.)
	p.arpReply(mac3, gw2)
	waitFor(t, "gw2's entry confirmed", func() bool {
		for _, nb := range s.Neighbors() {
			if nb.IP == gw2 {
				return nb.State == arp.StateReachable
			}
		}
		return false
	})
	sent := uint64(len("via gw1cachedvia gw2gw2 cachednew MAC"))
	waitFor(t, "every byte acknowledged", func() bool {
		cs := s.Connections()
		return len(cs) == 1 && cs[0].BytesOut == sent
	})
	clock.Advance(arp.DefaultReachableTime*3/2 + arp.DefaultStaleTime)
	waitFor(t, "gw2's ARP entry to expire", func() bool {
		for _, nb := range s.Neighbors() {
			if nb.IP == gw2 {
				return false
			}
		}
		return true
	})
	if _, err := c.Write([]byte("after expiry")); err != nil {
		t.Fatal(err)
	}
	p.arpRequest(gw2)
	p.arpReply(mac2, gw2)
	p.expectData("after expiry", mac2)
}

// TestConnectedUDPRouteFollowsChanges: a connected UDP socket keeps its
// route too, and its next datagram follows a route change.
func TestConnectedUDPRouteFollowsChanges(t *testing.T) {
	leakcheck.Check(t)
	ea, eb := link.NewPipe(link.PipeOptions{})
	s := New(Options{})
	defer s.Close()
	frames := reader(t, eb)
	if _, err := s.AddNIC(ea, addrA); err != nil {
		t.Fatal(err)
	}
	gw1, gw2 := netip.MustParseAddr("10.1.0.254"), netip.MustParseAddr("10.1.0.253")
	mac2 := link.MAC{2, 0, 0, 0, 0, 2}
	if err := s.AddRoute(ip.Route{Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: gw1}); err != nil {
		t.Fatal(err)
	}
	p := &handPeer{t: t, ep: eb, frames: frames, us: ea.HardwareAddr()}
	p.next() // the gratuitous ARP
	c := dialUDP(t, s, netip.AddrPort{}, netip.MustParseAddrPort("192.0.2.7:53"))
	datagram := func(msg string, mac link.MAC) {
		t.Helper()
		eth := p.next()
		h, err := ipv4.ParseHeader(eth.Payload())
		if err != nil || h.Protocol() != ipv4.ProtocolUDP || eth.Destination() != mac || string(h.Payload()[8:]) != msg {
			t.Fatalf("want %q in a datagram to %v, got a frame of type %#x to %v (%v)", msg, mac, eth.Type(), eth.Destination(), err)
		}
	}
	c.Write([]byte("one"))
	p.arpRequest(gw1)
	p.arpReply(eb.HardwareAddr(), gw1)
	datagram("one", eb.HardwareAddr())
	c.Write([]byte("two"))
	datagram("two", eb.HardwareAddr())
	if err := s.AddRoute(ip.Route{Destination: netip.MustParsePrefix("192.0.2.0/24"), Gateway: gw2}); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("three"))
	p.arpRequest(gw2)
	p.arpReply(mac2, gw2)
	datagram("three", mac2) // released by the ARP reply
	c.Write([]byte("four"))
	datagram("four", mac2) // resolved from the ARP cache, and kept
	c.rtMu.Lock()
	rt := c.rt
	c.rtMu.Unlock()
	if !rt.macOK || rt.mac != mac2 || rt.gen != s.routeGen.Load() {
		t.Errorf("cached route %+v, want gw2 at %v", rt, mac2)
	}
}
