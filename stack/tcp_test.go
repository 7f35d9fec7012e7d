package stack

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
)

func dial(t *testing.T, s *Stack, to netip.AddrPort) *TCPConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := s.DialTCP(ctx, to)
	if err != nil {
		t.Fatalf("dial %v: %v", to, err)
	}
	return c
}

// serveEach accepts connections on l and runs handle on each in its own
// goroutine, closing it afterwards; wait returns when l is closed and every
// handler ended.
func serveEach(l net.Listener, handle func(net.Conn)) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return wg.Wait
}

// echoServer echoes every connection on l until EOF.
func echoServer(l net.Listener) (wait func()) {
	return serveEach(l, func(c net.Conn) { io.Copy(c, c) })
}

// connectedPair returns both ends of a fresh connection from a to b's
// port 7.
func connectedPair(t *testing.T, a, b *Stack) (client, server *TCPConn) {
	t.Helper()
	l, err := b.ListenTCP(netip.AddrPortFrom(addrB.Addr(), 7))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *TCPConn, 1)
	go func() {
		c, err := l.AcceptTCP()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	client = dial(t, a, netip.AddrPortFrom(addrB.Addr(), 7))
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestTCPEcho(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	l, err := b.ListenTCP(netip.AddrPortFrom(netip.IPv4Unspecified(), 7))
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(l)
	defer func() { l.Close(); wait() }()

	c := dial(t, a, netip.AddrPortFrom(addrB.Addr(), 7))
	defer c.Close()
	msg := []byte("hello, ustack")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(msg) {
		t.Fatalf("echo = %q", got)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(got); n != 0 || err != io.EOF {
		t.Fatalf("after half-close: %d, %v; want EOF", n, err)
	}
	infos := a.Connections()
	if len(infos) != 1 || infos[0].Tuple.Remote != netip.AddrPortFrom(addrB.Addr(), 7) {
		t.Errorf("Connections() = %+v", infos)
	}
}

// transfer sends size random bytes each way over one connection and
// compares SHA-256 sums.
func transfer(t *testing.T, a, b *Stack, size int) {
	t.Helper()
	l, err := b.ListenTCP(netip.AddrPortFrom(addrB.Addr(), 9000))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	src := func(seed uint64) io.Reader {
		return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed)}), int64(size))
	}
	want := func(seed uint64) [32]byte {
		h := sha256.New()
		io.Copy(h, src(seed))
		return [32]byte(h.Sum(nil))
	}
	serverGot := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			serverGot <- result{err: err}
			return
		}
		defer c.Close()
		sent := make(chan error, 1)
		go func() {
			_, err := io.Copy(c, src(2))
			c.(*TCPConn).CloseWrite()
			sent <- err
		}()
		h := sha256.New()
		n, err := io.Copy(h, c)
		if err == nil {
			err = <-sent
		}
		serverGot <- result{[32]byte(h.Sum(nil)), n, err}
	}()
	c := dial(t, a, netip.AddrPortFrom(addrB.Addr(), 9000))
	defer c.Close()
	sent := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, src(1))
		c.CloseWrite()
		sent <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		t.Fatalf("client read: %v after %d bytes", err, n)
	}
	if err := <-sent; err != nil {
		t.Fatalf("client write: %v", err)
	}
	r := <-serverGot
	if r.err != nil {
		t.Fatalf("server: %v after %d bytes", r.err, r.n)
	}
	if n != int64(size) || [32]byte(h.Sum(nil)) != want(2) {
		t.Errorf("client received %d bytes, sum mismatch=%v", n, [32]byte(h.Sum(nil)) != want(2))
	}
	if r.n != int64(size) || r.sum != want(1) {
		t.Errorf("server received %d bytes, sum mismatch=%v", r.n, r.sum != want(1))
	}
	// Both sides closed after the exchange: the connection must end, in
	// TIME-WAIT on one side and gone on the other.
	c.Close()
	closedCleanly := func(s *Stack) bool {
		for _, ci := range s.Connections() {
			if ci.State != tcp.StateTimeWait {
				return false
			}
		}
		return true
	}
	waitFor(t, "both ends to close", func() bool { return closedCleanly(a) && closedCleanly(b) })
}

func TestTCPTransfer(t *testing.T) {
	leakcheck.Check(t)
	var ends []*link.PipeEnd
	a, b := pair(t, Options{}, func(ep link.Endpoint) link.Endpoint {
		ends = append(ends, ep.(*link.PipeEnd))
		return ep
	})
	transfer(t, a, b, 64<<20)
	// On a clean link nothing may end in a reset. A frame the pipe dropped
	// (its queue full, on a loaded machine) makes the link lossy: then a
	// retransmission can meet a 4-tuple already closed and rightly draw
	// one, as through duplication.
	drops := ends[0].Stats().Drops + ends[1].Stats().Drops
	if ra, rb := a.Stats().TCP.ResetsSent, b.Stats().TCP.ResetsSent; ra+rb != 0 {
		if drops == 0 {
			t.Errorf("resets sent: %d and %d on a link that dropped nothing, want none", ra, rb)
		} else {
			t.Logf("resets sent: %d and %d, after the pipe dropped %d frames", ra, rb, drops)
		}
	}
}

func TestTCPRefused(t *testing.T) {
	leakcheck.Check(t)
	a, _ := pair(t, Options{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := a.DialTCP(ctx, netip.AddrPortFrom(addrB.Addr(), 81))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial closed port: %v, want ECONNREFUSED", err)
	}
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Fatalf("%T is not *net.OpError", err)
	}
}

func TestTCPDeadlineAndCloseUnblockRead(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	l, _ := b.ListenTCP(netip.AddrPortFrom(addrB.Addr(), 7))
	wait := echoServer(l)
	defer func() { l.Close(); wait() }()
	c := dial(t, a, netip.AddrPortFrom(addrB.Addr(), 7))
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := c.Read(make([]byte, 10))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past deadline: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 10)); done <- err }()
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
}

var _ = link.Broadcast

// tcpFaultTransferSize is how much TestTCPTransferThroughFaults moves each
// way.
const tcpFaultTransferSize = 64 << 20

// TestTCPShortConnectionsReuseNoTuple opens many short connections in a
// row. The server closes first and keeps each 4-tuple in TIME-WAIT; the
// client's ports (RFC 6056 Algorithm 4) must walk the range instead of
// meeting those tuples, so no SYN is ever refused.
func TestTCPShortConnectionsReuseNoTuple(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	l, err := b.ListenTCP(netip.AddrPortFrom(addrB.Addr(), 7))
	if err != nil {
		t.Fatal(err)
	}
	wait := serveEach(l, func(c net.Conn) {
		buf := make([]byte, 1)
		io.ReadFull(c, buf)
		c.Write(buf)
	})
	defer func() { l.Close(); wait() }()
	ports := make(map[uint16]bool)
	for i := 0; i < 2000; i++ {
		c := dial(t, a, netip.AddrPortFrom(addrB.Addr(), 7))
		ports[c.LocalAddr().(*net.TCPAddr).AddrPort().Port()] = true
		c.Write([]byte{byte(i)})
		buf := make([]byte, 1)
		if _, err := io.ReadFull(c, buf); err != nil || buf[0] != byte(i) {
			t.Fatalf("connection %d: %v %v", i, buf, err)
		}
		c.Close()
	}
	if len(ports) != 2000 {
		t.Errorf("2000 connections used %d distinct ports", len(ports))
	}
	// (Retransmissions are not counted against it: under the race detector
	// a slow goroutine can let a timer expire.)
	if st := a.Stats().TCP; st.ResetsSent != 0 {
		t.Errorf("client sent %d resets", st.ResetsSent)
	}
	if st := b.Stats().TCP; st.ChallengeACKs != 0 || st.DroppedPAWS != 0 {
		t.Errorf("server sent %d challenge ACKs, dropped %d on PAWS", st.ChallengeACKs, st.DroppedPAWS)
	}
}
