package tcptest

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/tcp"
)

// PcapDirEnv names an environment variable: when set, failing tests write
// their capture there instead of into t.TempDir (which the testing package
// deletes when the test ends).
const PcapDirEnv = "TCPTEST_PCAP_DIR"

// Harness is a Stack bound to a test: its methods fail the test with a
// message that names the differing field and lists the last packets of
// the exchange, and a failing test leaves a pcap of the exchange in
// t.TempDir() (or in $TCPTEST_PCAP_DIR) and logs its path.
type Harness struct {
	*Stack
	tb    testing.TB
	peers []*Peer
	// Match tunes how Expect compares segments; by default option lists
	// compare exactly and TSecr is checked.
	Match MatchOptions
}

// New returns a harness around a fresh IPv4 stack using cfg
// (tcp.DefaultConfig when nil), its clock at Epoch.
func New(tb testing.TB, cfg *tcp.Config) *Harness {
	tb.Helper()
	return NewFamily(tb, IPv4, cfg)
}

// NewFamily is New for a stack of family f (see NewStackFamily): with
// IPv6 the stack is LocalAddr6, the peer RemoteAddr6, the MSS 1440.
func NewFamily(tb testing.TB, f Family, cfg *tcp.Config) *Harness {
	tb.Helper()
	c := tcp.DefaultConfig()
	if cfg != nil {
		c = *cfg
	}
	h := &Harness{Stack: NewStackFamily(c, f), tb: tb, Match: MatchOptions{CheckTSEcr: true}}
	dir := os.Getenv(PcapDirEnv)
	if dir == "" {
		dir = tb.TempDir() // registered first, so removed after the capture is written
	}
	tb.Cleanup(func() {
		if !tb.Failed() {
			return
		}
		name := strings.NewReplacer("/", "_", " ", "_").Replace(tb.Name()) + ".pcap"
		path := filepath.Join(dir, name)
		if err := h.WritePcapFile(path); err != nil {
			tb.Logf("tcptest: writing the capture: %v", err)
			return
		}
		tb.Logf("tcptest: capture of the exchange (%d segments): %s", len(h.Log()), path)
	})
	return h
}

// Fatalf fails the test with the message and the last packets of the
// exchange.
func (h *Harness) Fatalf(format string, args ...any) {
	h.tb.Helper()
	h.tb.Fatalf("at %v: %s\n%s", h.Elapsed(), fmt.Sprintf(format, args...), h.Recent(10))
}

// Recent formats the last n packets of the exchange, in script space for
// the flows of the harness's peers.
func (h *Harness) Recent(n int) string {
	log := h.Log()
	if len(log) > n {
		log = log[len(log)-n:]
	}
	var b strings.Builder
	b.WriteString("last packets:")
	if len(log) == 0 {
		b.WriteString(" none")
	}
	for _, p := range log {
		b.WriteString("\n  ")
		b.WriteString(h.format(p))
	}
	return b.String()
}

func (h *Harness) format(p Packet) string {
	for _, pe := range h.peers {
		if pe.f.t == p.Tuple {
			return fmt.Sprintf("%9.6f %s", p.Elapsed().Seconds(), pe.f.Format(p))
		}
	}
	return p.String()
}

func (h *Harness) check() {
	h.tb.Helper()
	if err := h.Err(); err != nil {
		h.Fatalf("%v", err)
	}
}

// Listen opens a listener on port with the given backlog.
func (h *Harness) Listen(port uint16, backlog int) *Listener {
	h.tb.Helper()
	l, err := h.Stack.Listen(port, backlog, nil, 0)
	if err != nil {
		h.Fatalf("listen on %d: %v", port, err)
	}
	return l
}

// Dial opens a connection from an ephemeral port to the peer's remotePort
// (the SYN is queued at once) and returns it with the peer's side of it.
func (h *Harness) Dial(remotePort uint16) (*Conn, *Peer) {
	h.tb.Helper()
	c, err := h.Stack.Dial(0, netip.AddrPortFrom(h.RemoteAddr(), remotePort), nil, 0)
	if err != nil {
		h.Fatalf("dial %d: %v", remotePort, err)
	}
	return c, h.peer(h.FlowFor(c.Tuple()))
}

// Peer returns the scripted peer (at the stack's RemoteAddr) and its
// remotePort talking to the stack's localPort.
func (h *Harness) Peer(remotePort, localPort uint16) *Peer {
	return h.peer(h.Flow(remotePort, localPort))
}

func (h *Harness) peer(f *Flow) *Peer {
	p := &Peer{h: h, f: f}
	h.peers = append(h.peers, p)
	return p
}

// Advance moves the virtual clock forward by d, firing timers on the way.
func (h *Harness) Advance(d time.Duration) {
	h.tb.Helper()
	h.Stack.Advance(d)
	h.check()
}

// ExpectNothing fails the test if the stack has sent a segment that no
// Expect took.
func (h *Harness) ExpectNothing() {
	h.tb.Helper()
	if p, ok := h.Peek(); ok {
		h.Fatalf("unexpected segment %s", h.format(p))
	}
}

// Peer is the scripted remote end of one connection: it sends segments
// described by Specs and checks the stack's replies against Specs, with
// packetdrill's remapping of sequence numbers and timestamps (see Flow).
type Peer struct {
	h *Harness
	f *Flow
}

// Flow returns the peer's flow (its number mapping).
func (p *Peer) Flow() *Flow { return p.f }

// Send delivers sp to the stack at the current virtual time.
func (p *Peer) Send(sp *Spec) {
	p.h.tb.Helper()
	if err := p.f.Send(sp); err != nil {
		p.h.Fatalf("send %s: %v", sp, err)
	}
	p.h.check()
}

// Expect takes the oldest segment the stack sent and not yet taken, and
// fails the test unless it belongs to this peer's connection and matches
// sp (fields sp leaves unset are not compared). It does not move the
// clock.
func (p *Peer) Expect(sp *Spec) Packet {
	p.h.tb.Helper()
	pkt, ok := p.h.Next()
	if !ok {
		p.h.Fatalf("expected %s, but the stack sent nothing", sp)
	}
	if err := p.f.Match(sp, pkt, p.h.Match); err != nil {
		p.h.Fatalf("expected %s\n     got %s at %v\n%v", sp, p.f.Format(pkt), pkt.Elapsed(), err)
	}
	return pkt
}

// ExpectAfter moves the clock forward by at most d and expects the stack
// to send nothing before d has passed and a segment matching sp exactly
// then: a retransmission at the RTO, a delayed ACK at its timeout.
func (p *Peer) ExpectAfter(d time.Duration, sp *Spec) Packet {
	p.h.tb.Helper()
	p.h.ExpectNothing()
	at := p.h.Now().Add(d)
	p.h.AdvanceUntilSent(at)
	p.h.check()
	pkt, ok := p.h.Peek()
	if !ok {
		p.h.Fatalf("expected %s after %v, but the stack sent nothing", sp, d)
	}
	if !pkt.Time.Equal(at) {
		p.h.Fatalf("expected %s at %v, but %s came at %v", sp, at.Sub(Epoch), p.h.format(pkt), pkt.Elapsed())
	}
	return p.Expect(sp)
}
