package tsg

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/fault"
	"github.com/ustack/ustack/link/pcap"
	"github.com/ustack/ustack/stack"
)

// TestUstackThroughLoss captures, at the sender, a ustack-to-ustack
// transfer through a link that drops and reorders frames, and checks that
// the graph counts exactly the retransmissions ustack says it sent. How
// many of them were timeouts depends on scheduling, so that is logged, not
// asserted.
func TestUstackThroughLoss(t *testing.T) {
	leakcheck.Check(t)
	ea, eb := link.NewPipe(link.PipeOptions{})
	imp := fault.Impairment{Drop: 0.03, Reorder: 0.03, Delay: time.Millisecond}
	capture := &syncWriter{w: new(bytes.Buffer)}
	pa, err := pcap.New(fault.New(ea, fault.Config{Seed: 3, Tx: imp}), capture, pcap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := stack.New(stack.Options{}), stack.New(stack.Options{})
	defer a.Close()
	defer b.Close()
	if _, err := a.AddNIC(pa, netip.MustParsePrefix("10.1.0.1/24")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddNIC(fault.New(eb, fault.Config{Seed: 4, Tx: imp}), netip.MustParsePrefix("10.1.0.2/24")); err != nil {
		t.Fatal(err)
	}
	ln, err := b.ListenTCP(netip.MustParseAddrPort("10.1.0.2:80"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 512 << 10
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		m, _ := io.Copy(io.Discard, c)
		c.Close()
		got <- m
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := a.DialTCP(ctx, netip.MustParseAddrPort("10.1.0.2:80"))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != n {
		t.Fatalf("received %d bytes, want %d", m, n)
	}
	st := a.Stats().TCP
	cp, err := ReadPcap(bytes.NewReader(capture.bytes()))
	if err != nil {
		t.Fatal(err)
	}
	g, err := cp.Analyze(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if g.Sender.Addr() != netip.MustParseAddr("10.1.0.1") || g.Bytes < n+1 {
		t.Errorf("sender %v, %d bytes", g.Sender, g.Bytes)
	}
	if g.Retransmissions != int(st.Retransmits) || st.Retransmits == 0 {
		t.Errorf("graph counts %d retransmissions, ustack sent %d", g.Retransmissions, st.Retransmits)
	}
	t.Logf("%d segments; retransmissions: graph %d, ustack %d; RTO-like %d, ustack's timeouts %d; TLP-like %d, ustack's probes %d; SACK blocks %d",
		g.DataSegments, g.Retransmissions, st.Retransmits, g.RTOs, st.Timeouts, g.TLPs, st.TLPProbes, g.SACKBlocks)
}

// syncWriter lets the test read the capture while the stack may still be
// writing to it.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func (s *syncWriter) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.w.Bytes())
}
