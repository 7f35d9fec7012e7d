package stack

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
)

// checkPastDeadlines runs the same checks on a connected pair from the
// kernel (over loopback) and from ustack: a past read deadline is a
// timeout though data is buffered, a past write deadline writes nothing
// and returns 0 and a timeout (for an empty write too), a zero-length
// Read returns 0, nil before looking at the deadline, and once the
// deadlines are cleared the buffered byte and the next write go through.
func checkPastDeadlines(t *testing.T, c, peer net.Conn) {
	t.Helper()
	if _, err := peer.Write([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(c, one); err != nil || one[0] != 'a' {
		t.Fatalf("first byte %q, %v", one, err)
	}
	past := time.Now().Add(-time.Second)
	c.SetDeadline(past)
	timeout := func(what string, n int, err error) {
		t.Helper()
		var ne net.Error
		if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("%s with a past deadline = %d, %v; want 0 and a timeout", what, n, err)
		}
	}
	n, err := c.Read(one)
	timeout("Read (a byte buffered)", n, err)
	n, err = c.Write([]byte("x"))
	timeout("Write", n, err)
	n, err = c.Write(nil)
	timeout("empty Write", n, err)
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Errorf("empty Read with a past deadline = %d, %v; want 0, nil", n, err)
	}
	c.SetDeadline(time.Time{})
	if _, err := io.ReadFull(c, one); err != nil || one[0] != 'b' {
		t.Fatalf("buffered byte after clearing the deadline: %q, %v", one, err)
	}
	if _, err := c.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(peer, one); err != nil || one[0] != 'y' {
		t.Fatalf("peer got %q, %v; want the write after the deadline was cleared, and nothing before it", one, err)
	}
}

// TestPastDeadlinesKernel pins what package net does, on loopback.
func TestPastDeadlinesKernel(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback TCP: %v", err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	defer peer.Close()
	checkPastDeadlines(t, c, peer)
}

// TestPastDeadlines: ustack's TCPConn does the same.
func TestPastDeadlines(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	c, peer := connectedPair(t, a, b)
	checkPastDeadlines(t, c, peer)
}

// acceptListener is what checkPastAcceptDeadline needs of a listener.
type acceptListener interface {
	net.Listener
	SetDeadline(time.Time) error
}

// checkPastAcceptDeadline: with a connection queued, Accept after its
// deadline passed is a timeout; once cleared, Accept returns the
// connection.
func checkPastAcceptDeadline(t *testing.T, l acceptListener, dial func() (net.Conn, error)) {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l.SetDeadline(time.Now().Add(-time.Second))
	if s, err := l.Accept(); s != nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Accept with a past deadline and a connection queued = %v, %v; want a timeout", s, err)
	}
	l.SetDeadline(time.Time{})
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestPastAcceptDeadlineKernel(t *testing.T) {
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Skipf("no loopback TCP: %v", err)
	}
	defer l.Close()
	checkPastAcceptDeadline(t, l, func() (net.Conn, error) { return net.Dial("tcp", l.Addr().String()) })
}

func TestPastAcceptDeadline(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	l, err := b.ListenTCP(netip.AddrPortFrom(addrB.Addr(), 7))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkPastAcceptDeadline(t, l, func() (net.Conn, error) {
		c, err := a.DialTCP(context.Background(), netip.AddrPortFrom(addrB.Addr(), 7))
		if err != nil {
			return nil, err
		}
		// The dial returns at the SYN-ACK; wait for b to queue it.
		waitFor(t, "the accept queue", func() bool { _, n := l.Pending(); return n == 1 })
		return c, nil
	})
}

// TestDeadlineCheckAllocatesNothing: checking the deadlines before each
// Read and Write keeps a 1-byte exchange allocation-free, with and
// without a deadline set.
func TestDeadlineCheckAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	a, b := pair(t, Options{}, nil)
	c, s := connectedPair(t, a, b)
	c.SetNoDelay(true)
	buf := make([]byte, 1)
	exchange := func() {
		c.Write(buf)
		io.ReadFull(s, buf)
	}
	exchange() // the first wait makes the channels
	if n := testing.AllocsPerRun(500, exchange); n != 0 {
		t.Errorf("%v allocations per exchange without deadlines", n)
	}
	s.SetReadDeadline(time.Now().Add(time.Hour))
	c.SetWriteDeadline(time.Now().Add(time.Hour))
	exchange()
	if n := testing.AllocsPerRun(500, exchange); n != 0 {
		t.Errorf("%v allocations per exchange with deadlines set", n)
	}
}
