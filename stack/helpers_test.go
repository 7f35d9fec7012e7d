package stack

import (
	"bytes"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/link"
)

// reader reads frames from ep into a channel until ep is closed; the
// test's cleanup closes ep so the goroutine ends.
//
// IPv6 frames (the link-local address's DAD and MLD reports, which every
// Ethernet NIC sends when it comes up) are skipped: readerAll has them.
func reader(t *testing.T, ep link.Endpoint) <-chan []byte {
	return readFrames(t, ep, true)
}

// readerAll is reader without the filter.
func readerAll(t *testing.T, ep link.Endpoint) <-chan []byte {
	return readFrames(t, ep, false)
}

func readFrames(t *testing.T, ep link.Endpoint, skip6 bool) <-chan []byte {
	ch := make(chan []byte, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		for {
			buf := make([]byte, 70000)
			n, err := ep.ReadFrame(buf)
			if err != nil {
				return
			}
			if skip6 && n >= 14 && buf[12] == 0x86 && buf[13] == 0xdd {
				continue
			}
			ch <- buf[:n]
		}
	}()
	t.Cleanup(func() { ep.Close(); <-done })
	return ch
}

// nextFrame waits up to 10 s for the next frame.
func nextFrame(t *testing.T, ch <-chan []byte) link.Ethernet {
	t.Helper()
	select {
	case f, ok := <-ch:
		if !ok {
			t.Fatal("endpoint closed")
		}
		eth, err := link.ParseEthernet(f)
		if err != nil {
			t.Fatalf("bad frame: %v", err)
		}
		return eth
	case <-time.After(10 * time.Second):
		t.Fatal("no frame within 10 s")
	}
	return nil
}

// answerARP replies to an ARP request received on ep as the owner of the
// requested address.
func answerARP(t *testing.T, ep link.Endpoint, eth link.Ethernet) {
	t.Helper()
	p, err := arp.ParsePacket(eth.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if p.Op() != arp.OpRequest {
		return
	}
	f := make([]byte, link.EthernetHeaderLen+arp.PacketLen)
	link.PutEthernetHeader(f, p.SenderHardwareAddr(), ep.HardwareAddr(), link.EtherTypeARP)
	arp.PutPacket(f[link.EthernetHeaderLen:], arp.OpReply, ep.HardwareAddr(), p.TargetProtocolAddr(), p.SenderHardwareAddr(), p.SenderProtocolAddr())
	if err := ep.WriteFrame(f); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing the test after 10 s. It is
// for state that another goroutine changes with no event to wait on.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, 10*time.Second, what, cond)
}

// waitWithin is waitFor with a time limit of d.
func waitWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(d)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// echoedPair is the setup of the flood tests: two stacks joined by a
// link.Pipe (a at addrA, b at addrB), an echo server on b's port 7 and a
// connection c to it from a. A test injects its flood beside c and checks
// with echo that c still works.
type echoedPair struct {
	ea, eb *link.PipeEnd
	a, b   *Stack
	server netip.AddrPort
	c      *TCPConn
}

// newEchoedPair builds an echoedPair, torn down when the test ends.
func newEchoedPair(t *testing.T) *echoedPair {
	t.Helper()
	p := &echoedPair{server: netip.AddrPortFrom(addrB.Addr(), 7)}
	p.ea, p.eb = link.NewPipe(link.PipeOptions{QueueLen: 4096})
	p.a, p.b = New(Options{}), New(Options{})
	t.Cleanup(func() { p.a.Close(); p.b.Close() })
	if _, err := p.a.AddNIC(p.ea, addrA); err != nil {
		t.Fatal(err)
	}
	if _, err := p.b.AddNIC(p.eb, addrB); err != nil {
		t.Fatal(err)
	}
	l, err := p.b.ListenTCP(p.server)
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(l)
	t.Cleanup(func() { l.Close(); wait() })
	p.c = dial(t, p.a, p.server)
	t.Cleanup(func() { p.c.Close() })
	return p
}

// echo writes msg on c and fails the test unless the same bytes come
// back within 10 s.
func (p *echoedPair) echo(t *testing.T, round int, msg []byte) {
	t.Helper()
	p.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := p.c.Write(msg); err != nil {
		t.Fatalf("round %d: write: %v", round, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(p.c, got); err != nil {
		t.Fatalf("round %d: read: %v", round, err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("round %d: the echo differs", round)
	}
}
