package stack

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ustack/ustack/tcp"
)

// scaleConns returns how many connections a scale test holds: def, or the
// value of the environment variable env. CI runs the defaults; the issue's
// figures (100k in memory, 20k from the kernel) are runs with
// USTACK_SCALE_CONNS=100000 and USTACK_SCALE_KERNEL_CONNS=20000.
func scaleConns(t *testing.T, env string, def int) int {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number of connections", env, v)
	}
	return n
}

// connsPerPort is how many connections the scale tests open to one
// listening port: fewer than the 28232 ephemeral ports one (source,
// destination) pair has.
const connsPerPort = 25000

// TestScaleIdleConnections opens n connections between two stacks in
// memory, holds them idle, then has every one echo a byte, and reports the
// heap they cost. It checks that every connection was established and
// still works after being held; the heap figure is printed, not asserted
// (the idle-heap test and ustackbench bound it).
func TestScaleIdleConnections(t *testing.T) {
	n := scaleConns(t, "USTACK_SCALE_CONNS", 2000)
	a, b := pair(t, Options{}, nil)
	ports := (n + connsPerPort - 1) / connsPerPort

	clients := make([]*TCPConn, n)
	servers := make(map[[2]netip.AddrPort]*TCPConn, n) // by {client, server} address
	var mu sync.Mutex
	var accepting sync.WaitGroup
	accepted := make(chan struct{}, n)
	before := liveHeap()
	for p := range ports {
		l, err := b.ListenTCP(netip.AddrPortFrom(addrB.Addr(), uint16(7000+p)))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		accepting.Add(1)
		go func() {
			defer accepting.Done()
			for {
				c, err := l.AcceptTCP()
				if err != nil {
					return
				}
				mu.Lock()
				servers[[2]netip.AddrPort{addrPort(c.RemoteAddr()), addrPort(c.LocalAddr())}] = c
				mu.Unlock()
				accepted <- struct{}{}
			}
		}()
	}

	start := time.Now()
	const dialers = 8
	var dialing sync.WaitGroup
	errc := make(chan error, dialers)
	for w := range dialers {
		dialing.Add(1)
		go func() {
			defer dialing.Done()
			for i := w; i < n; i += dialers {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				c, err := a.DialTCP(ctx, netip.AddrPortFrom(addrB.Addr(), uint16(7000+i%ports)))
				cancel()
				if err != nil {
					errc <- fmt.Errorf("dial %d of %d: %w", i, n, err)
					return
				}
				clients[i] = c
			}
		}()
	}
	dialing.Wait()
	close(errc)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	for range n {
		select {
		case <-accepted:
		case <-time.After(20 * time.Second):
			t.Fatalf("accepted %d of %d connections", len(servers), n)
		}
	}
	opened := time.Since(start)
	held := liveHeap()
	t.Logf("%d connections opened in %v (%.0f/s); heap %d B per connection pair (both ends, user conns included)",
		n, opened.Round(time.Millisecond), float64(n)/opened.Seconds(), int64(held-before)/int64(n))

	// Every connection of both stacks is in its table and established.
	for _, s := range []*Stack{a, b} {
		est := 0
		for _, ci := range s.Connections() {
			if ci.State == tcp.StateEstablished {
				est++
			}
		}
		if est != n {
			t.Fatalf("%d established connections in a stack's table, want %d", est, n)
		}
	}

	// Held, every connection still echoes.
	start = time.Now()
	buf := make([]byte, 2)
	for i, c := range clients {
		s := servers[[2]netip.AddrPort{addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())}]
		if s == nil {
			t.Fatalf("connection %d: no accepted end for %v", i, c.LocalAddr())
		}
		msg := []byte{byte(i), byte(i >> 8)}
		deadline := time.Now().Add(10 * time.Second)
		c.SetDeadline(deadline)
		s.SetDeadline(deadline)
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("connection %d: write: %v", i, err)
		}
		if _, err := readFull(s, buf); err != nil {
			t.Fatalf("connection %d: server read: %v", i, err)
		}
		if _, err := s.Write(buf); err != nil {
			t.Fatalf("connection %d: server write: %v", i, err)
		}
		if _, err := readFull(c, buf); err != nil || buf[0] != msg[0] || buf[1] != msg[1] {
			t.Fatalf("connection %d: echoed %x (%v), want %x", i, buf, err, msg)
		}
	}
	echoed := time.Since(start)
	t.Logf("every connection echoed after being held, in %v; heap %d B per connection pair after the echo",
		echoed.Round(time.Millisecond), int64(liveHeap()-before)/int64(n))
	for i, c := range clients {
		c.Close()
		clients[i] = nil
	}
	for _, s := range servers {
		s.Close()
	}
}

// addrPort returns a *net.TCPAddr's address and port.
func addrPort(a net.Addr) netip.AddrPort { return a.(*net.TCPAddr).AddrPort() }

// readFull reads len(b) bytes from c.
func readFull(c *TCPConn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
