package stack

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
)

// captureEndpoint is a link endpoint that keeps every frame the stack
// writes, for a test to read synchronously, and delivers nothing: frames
// reach the stack through nic.deliver.
type captureEndpoint struct {
	mac    link.MAC
	mu     sync.Mutex
	frames [][]byte
	closed chan struct{}
	once   sync.Once
}

func newCaptureEndpoint() *captureEndpoint {
	return &captureEndpoint{mac: link.MAC{2, 0, 0, 0, 0, 1}, closed: make(chan struct{})}
}

func (e *captureEndpoint) ReadFrame(b []byte) (int, error) {
	<-e.closed
	return 0, net.ErrClosed
}

func (e *captureEndpoint) WriteFrame(b []byte) error {
	e.mu.Lock()
	e.frames = append(e.frames, append([]byte(nil), b...))
	e.mu.Unlock()
	return nil
}

func (e *captureEndpoint) MTU() int               { return 1500 }
func (e *captureEndpoint) HardwareAddr() link.MAC { return e.mac }
func (e *captureEndpoint) Close() error {
	e.once.Do(func() { close(e.closed) })
	return nil
}

// take returns and forgets the frames written so far.
func (e *captureEndpoint) take() [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := e.frames
	e.frames = nil
	return f
}

// demuxPeer is the fuzzer's model of one remote end: what it has sent and
// what it has seen of the stack's sequence space, so that it can build
// segments the stack accepts (handshake completions, in-window data), not
// only ones it drops.
type demuxPeer struct {
	addr      netip.AddrPort
	port      uint16 // the stack's port it talks to
	iss       tcp.Value
	nxt       tcp.Value // our next sequence number
	stackNxt  tcp.Value // the stack's highest sequence number seen, plus its length
	stackSeen bool
	tsEcr     uint32 // the stack's last TSval
	opts      tcp.Options
}

// demuxPeers, demuxPorts: the fuzzer's 4-tuples are every pair of peer
// address/port and listening port.
const (
	demuxAddrs = 2
	demuxPorts = 4
)

var (
	demuxMAC = link.MAC{2, 0, 0, 0, 0, 2}
	// Listening ports: 7 with a tiny backlog (the SYN queue fills, and
	// cookies answer), 8 with the default one, 10 always answering with a
	// cookie, 11 never (a full queue drops its oldest entry); 9 has no
	// listener.
	demuxListen = []uint16{7, 8, 9, 10, 11}
)

// FuzzStackDemux drives one stack's whole TCP demultiplexer (listeners,
// their SYN queues, many connections, TIME-WAIT) from an arbitrary stream
// of operations decoded from the input: SYNs from many peers, handshake
// completions built from the SYN-ACKs the stack sent, data in and out of
// the window, RSTs and FINs, garbage, accepts and closes, the clock
// moving, and segments arriving while a user call owns an accepted
// connection (its socket backlog, processed when the call lets go).
// Whatever the stream, the stack must not panic, its tables must
// stay consistent (every connection in the table is in a live state), and
// the listeners' queues must stay within their bounds.
func FuzzStackDemux(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 2, 0, 5, 40, 3, 0})
	f.Add([]byte{0, 1, 0, 5, 0, 9, 0, 13, 1, 1, 1, 5, 2, 5, 200, 5, 255, 4, 5})
	f.Add([]byte{0, 2, 1, 2, 2, 2, 60, 7, 2, 3, 2, 5, 100, 5, 100, 5, 100})
	f.Add([]byte{0, 0, 1, 0, 8, 0, 8, 0x80, 2, 0, 8, 0x80, 4, 0, 8, 1, 8, 0x80, 4, 0, 5, 255})
	f.Fuzz(func(t *testing.T, data []byte) { runDemux(t, data) })
}

// runDemux runs one operation stream of FuzzStackDemux against a fresh
// stack and returns its counters at the end.
func runDemux(t *testing.T, data []byte) Stats {
	{
		clock := NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		ep := newCaptureEndpoint()
		s := New(Options{Clock: clock})
		defer s.Close()
		if _, err := s.AddNIC(ep, addrA); err != nil {
			t.Fatal(err)
		}
		n := s.nicByID(1)
		l7, err := s.ListenTCPBacklog(netip.AddrPortFrom(addrA.Addr(), 7), 2)
		if err != nil {
			t.Fatal(err)
		}
		l8, err := s.ListenTCP(netip.AddrPortFrom(netip.IPv4Unspecified(), 8))
		if err != nil {
			t.Fatal(err)
		}
		l10, err := s.ListenTCPBacklog(netip.AddrPortFrom(addrA.Addr(), 10), 4)
		if err != nil {
			t.Fatal(err)
		}
		l11, err := s.ListenTCPBacklog(netip.AddrPortFrom(addrA.Addr(), 11), 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := l10.SetSYNCookies(tcp.SYNCookiesAlways); err != nil {
			t.Fatal(err)
		}
		if err := l11.SetSYNCookies(tcp.SYNCookiesNever); err != nil {
			t.Fatal(err)
		}
		listeners := []*TCPListener{l7, l8, l10, l11}
		backlogs := []int{2, DefaultBacklog, 4, 2}
		var accepted []*TCPConn

		peers := make([]*demuxPeer, 0, demuxAddrs*demuxPorts*len(demuxListen))
		for a := range demuxAddrs {
			ip := netip.AddrFrom4([4]byte{10, 1, 0, byte(10 + a)})
			// An ARP request from each peer puts it in the neighbour cache
			// (RFC 826's merge), so that replies go out at once.
			req := make([]byte, arp.PacketLen)
			arp.PutPacket(req, arp.OpRequest, demuxMAC, ip, link.MAC{}, addrA.Addr())
			n.deliver(demuxFrame(ep.mac, link.EtherTypeARP, req))
			for p := range demuxPorts {
				for _, lp := range demuxListen {
					peers = append(peers, &demuxPeer{
						addr: netip.AddrPortFrom(ip, uint16(40000+p)),
						port: lp,
						iss:  tcp.Value(uint32(a)<<24 | uint32(p)<<16 | uint32(lp)),
					})
				}
			}
		}
		for _, p := range peers {
			p.nxt = p.iss
		}

		// owned is an accepted connection a user call owns during one
		// operation (op 8 with arg's top bit): the segments of that
		// operation wait on its backlog until it lets go.
		var owned *TCPConn
		for len(data) >= 2 {
			op, arg := data[0], data[1]
			data = data[2:]
			p := peers[int(arg&0x3f)%len(peers)] // the high bits choose options
			if owned != nil && (op%10 == 5 || op%10 == 8) {
				// Timers and user calls would wait for the owner: this
				// goroutine.
				op = 1
			}
			switch op % 10 {
			case 0: // a SYN, with options chosen by arg's high bits
				p.nxt = p.iss
				p.stackSeen = false
				p.opts = tcp.Options{MSS: 536 + uint16(arg>>4)*64, WindowScale: -1,
					SACKPermitted: arg&0x40 != 0, Timestamp: arg&0x80 != 0}
				if arg&0x20 != 0 {
					p.opts.WindowScale = int8(arg>>5) + 3
				}
				if p.opts.Timestamp {
					p.opts.TSVal = uint32(clock.Now().UnixMilli())
				}
				demuxSend(n, ep, p, tcp.FlagSYN, nil)
				p.nxt = p.iss.Add(1)
			case 1: // the ACK completing a handshake (or a cookie's answer)
				demuxSend(n, ep, p, tcp.FlagACK, nil)
			case 2, 3: // data: in order, or a hole ahead of it
				size := 1 + int(arg)%1400
				if len(data) > 0 {
					size = 1 + int(data[0])*8
					data = data[1:]
				}
				if op%10 == 3 {
					p.nxt = p.nxt.Add(uint32(size))
				}
				demuxSend(n, ep, p, tcp.FlagACK|tcp.FlagPSH, make([]byte, size))
			case 4: // FIN
				demuxSend(n, ep, p, tcp.FlagACK|tcp.FlagFIN, nil)
			case 5: // the clock moves: retransmissions, cookie ages, TIME-WAIT
				clock.Advance(time.Duration(arg) * 20 * time.Millisecond)
				s.runTimers(clock.Now())
			case 6: // RST, in window or not
				if arg&1 != 0 {
					p.nxt = p.nxt.Add(uint32(arg) << 12)
				}
				demuxSend(n, ep, p, tcp.FlagRST, nil)
			case 7: // any flags, a random acknowledgment
				h := tcp.Header{SrcPort: p.addr.Port(), DstPort: p.port, Seq: p.nxt,
					Ack: tcp.Value(uint32(arg) * 0x01010101), Flags: tcp.Flags(arg), Window: 1024}
				demuxSendHeader(n, ep, p, h, nil)
			case 8: // accept, and use or close what was accepted, or own it
				if arg&0x80 != 0 {
					if len(accepted) > 0 {
						owned = accepted[int(arg&0x7f)%len(accepted)]
						owned.ep.lock()
					}
					continue // the next operation runs while it is owned
				}
				for _, l := range listeners {
					if c := tryAccept(l); c != nil {
						accepted = append(accepted, c)
					}
				}
				if len(accepted) > 0 {
					c := accepted[int(arg)%len(accepted)]
					switch arg % 3 {
					case 0:
						tryWrite(c, []byte("reply")) // writes what fits, never blocks
					case 1:
						c.Close()
					case 2:
						c.CloseWrite()
					}
				}
			case 9: // a raw frame of the input's bytes
				k := min(int(arg), len(data))
				n.deliver(data[:k])
				data = data[k:]
			}
			if owned != nil {
				owned.ep.release()
				owned = nil
			}
			demuxObserve(ep, peers)
			demuxCheck(t, s, listeners, backlogs)
		}
		if owned != nil {
			owned.ep.release()
		}
		st := s.Stats()
		for _, c := range accepted {
			c.Close()
		}
		return st
	}
}

// tryAccept returns the next connection queued on l, or nil: Accept
// without waiting. (A past deadline would not do: like package net's,
// Accept then times out whatever is queued.)
func tryAccept(l *TCPListener) *TCPConn {
	for {
		l.mu.Lock()
		c := l.l.Accept()
		l.mu.Unlock()
		if c == nil {
			return nil
		}
		ep, _ := l.s.tcp.demux.Lookup(c.Tuple())
		if ep != nil && ep.c == c {
			return newTCPConn(ep)
		}
	}
}

// tryWrite queues what of b fits in c's send buffer: Write without
// waiting. (A past write deadline would not do: like package net's,
// Write then writes nothing.)
func tryWrite(c *TCPConn, b []byte) {
	ep := c.ep
	ep.lock()
	ep.c.Write(ep.s.clock.Now(), b, &ep.out)
	ep.afterLocked()
	ep.release()
}

// TestStackDemuxModel checks that the fuzzer's peers get past the
// listener: a SYN, the ACK built from the SYN-ACK the stack sent, and data
// make an established connection that received the data, on the listener
// with the default backlog (port 8, peer 1) and on the one with backlog 2
// (port 7, peer 0); a SYN to port 9 is refused; the listener on port 10
// answers with a cookie, whose ACK makes a connection (peer 3).
func TestStackDemuxModel(t *testing.T) {
	st := runDemux(t, []byte{
		0, 0, 1, 0, 2, 0, 0, 8, 0, // port 7: SYN, ACK, 1 byte of data, accept
		0, 1 | 0x80 | 0x40, 1, 1 | 0x80 | 0x40, 2, 1 | 0x80 | 0x40, 0, 8, 1, // port 8, with timestamps and SACK
		0, 2, // port 9: refused
		0, 3 | 0x80, 1, 3 | 0x80, 2, 3 | 0x80, 0, // port 10, with timestamps: a cookie
	})
	if st.TCP.SYNCookiesSent != 1 || st.TCP.SYNCookiesAccepted != 1 {
		t.Fatalf("cookies sent %d, accepted %d: want the one of port 10", st.TCP.SYNCookiesSent, st.TCP.SYNCookiesAccepted)
	}
	if st.TCP.PassiveOpens != 3 || st.TCP.SegmentsIn != 9 {
		t.Fatalf("passive opens %d, segments in %d: the peers did not complete their handshakes", st.TCP.PassiveOpens, st.TCP.SegmentsIn)
	}
	if st.TCP.DropNoConnection != 1 || st.TCP.ResetsSent != 1 || st.TCP.DroppedOutOfWindow != 0 {
		t.Fatalf("%d segments for no connection (want the one SYN to port 9), %d resets (want the one answering it), %d out of window (want none)",
			st.TCP.DropNoConnection, st.TCP.ResetsSent, st.TCP.DroppedOutOfWindow)
	}
}

// demuxFrame wraps payload in an Ethernet header from the fuzzer's peer to
// the stack.
func demuxFrame(dst link.MAC, typ uint16, payload []byte) []byte {
	f := make([]byte, link.EthernetHeaderLen+len(payload))
	link.PutEthernetHeader(f, dst, demuxMAC, typ)
	copy(f[link.EthernetHeaderLen:], payload)
	return f
}

// demuxSend sends a segment with flags from p at its current sequence
// number, acknowledging what it has seen of the stack.
func demuxSend(n *nic, ep *captureEndpoint, p *demuxPeer, flags tcp.Flags, payload []byte) {
	h := tcp.Header{SrcPort: p.addr.Port(), DstPort: p.port, Seq: p.nxt, Flags: flags, Window: 65535}
	if flags.Has(tcp.FlagACK) {
		h.Ack = p.stackNxt
	}
	demuxSendHeader(n, ep, p, h, payload)
	p.nxt = p.nxt.Add(uint32(len(payload)))
	if flags.Has(tcp.FlagFIN) {
		p.nxt = p.nxt.Add(1)
	}
}

// demuxSendHeader builds and delivers one segment from p.
func demuxSendHeader(n *nic, ep *captureEndpoint, p *demuxPeer, h tcp.Header, payload []byte) {
	o := p.opts
	o.NumSACK = 0
	if !h.Flags.Has(tcp.FlagSYN) {
		o.MSS, o.WindowScale, o.SACKPermitted = 0, -1, false
	}
	if o.Timestamp {
		o.TSEcr = p.tsEcr
		h.Options = &o
	} else if h.Flags.Has(tcp.FlagSYN) {
		h.Options = &o
	}
	seg := make([]byte, h.Len()+len(payload))
	h.Encode(seg)
	copy(seg[h.Len():], payload)
	tcp.SetChecksum(seg, p.addr.Addr(), addrA.Addr())
	pkt := make([]byte, ipv4.HeaderLen+len(seg))
	ipv4.PutHeader(pkt, &ipv4.Fields{TotalLength: uint16(len(pkt)), ID: 1, TTL: 64, Protocol: ipv4.ProtocolTCP,
		Source: p.addr.Addr(), Destination: addrA.Addr()})
	copy(pkt[ipv4.HeaderLen:], seg)
	n.deliver(demuxFrame(ep.mac, link.EtherTypeIPv4, pkt))
}

var demuxDebug func(string)

// demuxObserve reads what the stack sent and updates each peer's view of
// the stack's sequence space; a RST from the stack ends the peer's
// connection.
func demuxObserve(ep *captureEndpoint, peers []*demuxPeer) {
	for _, fr := range ep.take() {
		eth, err := link.ParseEthernet(fr)
		if err != nil || eth.Type() != link.EtherTypeIPv4 {
			continue
		}
		h, err := ipv4.ParseHeader(eth.Payload())
		if err != nil || h.Protocol() != ipv4.ProtocolTCP {
			continue
		}
		seg, err := tcp.ParseSegment(h.Payload(), h.Source(), h.Destination())
		if err != nil {
			continue
		}
		if demuxDebug != nil {
			demuxDebug(fmt.Sprintf("out: %v %v %v seq %d ack %d", h.Destination(), seg.DestinationPort(), seg.Flags(), seg.Seq(), seg.Ack()))
		}
		for _, p := range peers {
			if p.addr != netip.AddrPortFrom(h.Destination(), seg.DestinationPort()) || p.port != seg.SourcePort() {
				continue
			}
			f := seg.Flags()
			if f.Has(tcp.FlagRST) {
				p.stackSeen = false
				break
			}
			end := seg.Seq().Add(uint32(len(seg.Payload())))
			if f.Has(tcp.FlagSYN) || f.Has(tcp.FlagFIN) {
				end = end.Add(1)
			}
			if !p.stackSeen || f.Has(tcp.FlagSYN) || end.GreaterThan(p.stackNxt) {
				p.stackNxt, p.stackSeen = end, true
			}
			var o tcp.Options
			seg.Options(&o)
			if o.Timestamp {
				p.tsEcr = o.TSVal
			}
			break
		}
	}
}

// demuxCheck asserts the invariants of the stack's tables: every
// connection listed is live, no 4-tuple is listed twice, and each
// listener's queues are within its backlog.
func demuxCheck(t *testing.T, s *Stack, listeners []*TCPListener, backlogs []int) {
	seen := make(map[tcp.Tuple]bool)
	for _, ci := range s.Connections() {
		if ci.State == tcp.StateClosed {
			t.Fatalf("a CLOSED connection is still in the table: %v", ci.Tuple)
		}
		if seen[ci.Tuple] {
			t.Fatalf("4-tuple %v listed twice", ci.Tuple)
		}
		seen[ci.Tuple] = true
	}
	halfOpen := 0
	for i, l := range listeners {
		syn, acc := l.Pending()
		if acc > backlogs[i] || syn > backlogs[i] {
			t.Fatalf("listener %v: %d half-open and %d accept-queue entries with a backlog of %d", l.local, syn, acc, backlogs[i])
		}
		if l.l.SYNCookies() == tcp.SYNCookiesAlways && syn != 0 {
			t.Fatalf("listener %v sends only cookies, yet holds %d half-open entries", l.local, syn)
		}
		halfOpen += syn
	}
	if got := s.Stats().TCP.HalfOpen; got != uint64(halfOpen) {
		t.Fatalf("Stats().TCP.HalfOpen is %d, the listeners hold %d", got, halfOpen)
	}
}

// TestStackDemuxOwned checks that the fuzzer's owning operation makes
// segments wait on the backlog: a peer completes its handshake, is
// accepted, sends data and then its FIN while a user call owns the
// connection, and both are processed when it lets go.
func TestStackDemuxOwned(t *testing.T) {
	st := runDemux(t, []byte{
		0, 0, 1, 0, 8, 0, // port 7: SYN, ACK, accept (and a write)
		8, 0x80, 2, 0, 0, // own it while 1 byte of data arrives
		8, 0x80, 4, 0, // own it while the FIN arrives
	})
	if st.TCP.Backlogged != 2 || st.TCP.DropBacklogFull != 0 {
		t.Fatalf("Backlogged %d, DropBacklogFull %d; want 2, 0", st.TCP.Backlogged, st.TCP.DropBacklogFull)
	}
	if st.TCP.DroppedOutOfWindow != 0 || st.TCP.DropNoConnection != 0 {
		t.Fatalf("%d out of window, %d for no connection: the backlog lost the segments' order or connection", st.TCP.DroppedOutOfWindow, st.TCP.DropNoConnection)
	}
}
