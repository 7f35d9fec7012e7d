package stack

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/udp"
)

// listenUDP opens a UDP socket on s, closed when the test ends.
func listenUDP(t *testing.T, s *Stack, laddr netip.AddrPort) *UDPConn {
	t.Helper()
	c, err := s.ListenUDP(laddr)
	if err != nil {
		t.Fatalf("ListenUDP %v: %v", laddr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialUDP opens a connected UDP socket on s, closed when the test ends.
func dialUDP(t *testing.T, s *Stack, laddr, raddr netip.AddrPort) *UDPConn {
	t.Helper()
	c, err := s.DialUDP(laddr, raddr)
	if err != nil {
		t.Fatalf("DialUDP %v > %v: %v", laddr, raddr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// udpEcho answers every datagram on c with its payload (RFC 862) until c
// is closed; wait returns when it has ended.
func udpEcho(c *UDPConn) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, udp.MaxPayload)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return wg.Wait
}

// pattern returns n bytes that differ with n and position.
func udpPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + n)
	}
	return b
}

// readWithin reads one datagram with a 10-second read deadline.
func readWithin(t *testing.T, c *UDPConn, b []byte) (int, netip.AddrPort) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	n, from, err := c.ReadFromUDPAddrPort(b)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return n, from
}

// TestUDPEcho echoes datagrams of every interesting size between two
// stacks: empty, one byte, the largest unfragmented at MTU 1500 (1472),
// the smallest fragmented (1473), several fragments and the largest
// datagram IPv4 carries (65,507), through both a connected socket and
// ReadFrom/WriteTo.
func TestUDPEcho(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	srv := listenUDP(t, b, netip.AddrPortFrom(netip.IPv4Unspecified(), 7))
	wait := udpEcho(srv)
	defer func() { srv.Close(); wait() }()
	if got := srv.LocalAddr().(*net.UDPAddr).AddrPort(); got != netip.MustParseAddrPort("0.0.0.0:7") {
		t.Errorf("server LocalAddr %v", got)
	}
	server := netip.AddrPortFrom(addrB.Addr(), 7)
	cc := dialUDP(t, a, netip.AddrPort{}, server)
	lc := listenUDP(t, a, netip.AddrPort{})
	local := cc.LocalAddr().(*net.UDPAddr).AddrPort()
	if local.Addr() != addrA.Addr() || local.Port() < ephemeralFirst || local.Port() > ephemeralLast {
		t.Errorf("connected socket's LocalAddr %v: want %v and an ephemeral port", local, addrA.Addr())
	}
	if got := cc.RemoteAddr().(*net.UDPAddr).AddrPort(); got != server {
		t.Errorf("RemoteAddr %v, want %v", got, server)
	}
	if lc.RemoteAddr() != nil {
		t.Errorf("unconnected RemoteAddr %v, want nil", lc.RemoteAddr())
	}
	buf := make([]byte, udp.MaxPayload)
	for _, size := range []int{0, 1, 1472, 1473, 8000, udp.MaxPayloadIPv4} {
		msg := udpPattern(size)
		if n, err := cc.Write(msg); n != size || err != nil {
			t.Fatalf("Write %d bytes: %d, %v", size, n, err)
		}
		n, from := readWithin(t, cc, buf)
		if from != server || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("connected echo of %d bytes: %d bytes from %v", size, n, from)
		}
		if n, err := lc.WriteTo(msg, net.UDPAddrFromAddrPort(server)); n != size || err != nil {
			t.Fatalf("WriteTo %d bytes: %d, %v", size, n, err)
		}
		lc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, addr, err := lc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if ua, ok := addr.(*net.UDPAddr); !ok || ua.AddrPort() != server || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("ReadFrom echo of %d bytes: %d bytes from %v", size, n, addr)
		}
	}
	// An echo can reach a moment before b has counted it sent.
	waitFor(t, "the last echo counted", func() bool { return b.Stats().UDP.DatagramsOut == 12 })
	sa, sb := a.Stats(), b.Stats()
	if sa.UDP.DatagramsOut != 12 || sa.UDP.DatagramsIn != 12 || sb.UDP.DatagramsIn != 12 || sb.UDP.DatagramsOut != 12 {
		t.Errorf("UDP counters: a %+v, b %+v", sa.UDP, sb.UDP)
	}
	if sa.IPv4.FragmentsOut == 0 || sb.IPv4.Reassembled == 0 {
		t.Errorf("no fragmentation seen: %+v", sa.IPv4)
	}
}

// TestUDPTruncation reads a datagram into a short buffer: the read
// returns the buffer's length, the rest is discarded, and the next read
// gets the next datagram whole (package net's behaviour).
func TestUDPTruncation(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	srv := listenUDP(t, b, netip.AddrPortFrom(addrB.Addr(), 9))
	cc := dialUDP(t, a, netip.AddrPort{}, netip.AddrPortFrom(addrB.Addr(), 9))
	long, short := udpPattern(3000), []byte("next")
	for _, m := range [][]byte{long, short} {
		if _, err := cc.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both datagrams", func() bool { return b.Stats().UDP.DatagramsIn == 2 })
	// An empty Read returns at once and leaves the datagram queued, as
	// package net's does.
	if n, err := srv.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty Read: %d, %v", n, err)
	}
	buf := make([]byte, 100)
	if n, _ := readWithin(t, srv, buf); n != 100 || !bytes.Equal(buf[:n], long[:100]) {
		t.Fatalf("truncated read: %d bytes", n)
	}
	if n, from := readWithin(t, srv, buf); string(buf[:n]) != "next" || from != cc.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("next read: %q from %v", buf[:n], from)
	}
}

// TestUDPQueueOverflow fills a socket's receive queue, made small with
// SetReadBuffer, without reading: the datagrams past it are dropped and
// counted, and the ones queued are read in order.
func TestUDPQueueOverflow(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	srv := listenUDP(t, b, netip.AddrPortFrom(addrB.Addr(), 9))
	if err := srv.SetReadBuffer(0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("SetReadBuffer(0): %v, want EINVAL", err)
	}
	if err := srv.SetReadBuffer(1000); err != nil {
		t.Fatal(err)
	}
	cc := dialUDP(t, a, netip.AddrPort{}, netip.AddrPortFrom(addrB.Addr(), 9))
	// One datagram first, so that the burst does not wait for ARP (whose
	// queue would drop some of it).
	if _, err := cc.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if n, _ := readWithin(t, srv, make([]byte, 10)); n != 5 {
		t.Fatalf("first datagram: %d bytes", n)
	}
	const sent = 30
	for i := range sent {
		if _, err := cc.Write(bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every datagram queued or dropped", func() bool {
		st := b.Stats().UDP
		return st.DatagramsIn+st.DropReceiveBuffer == 1+sent
	})
	if st := b.Stats().UDP; st.DatagramsIn != 1+10 || st.DropReceiveBuffer != sent-10 {
		t.Fatalf("queued %d, dropped %d; want 10 and %d", st.DatagramsIn, st.DropReceiveBuffer, sent-10)
	}
	buf := make([]byte, 200)
	for i := range 10 {
		if n, _ := readWithin(t, srv, buf); n != 100 || buf[0] != byte(i) {
			t.Fatalf("datagram %d: %d bytes of %d", i, n, buf[0])
		}
	}
}

// TestUDPDeadlines: a read deadline that passes wakes a blocked reader
// with a timeout; a passed deadline fails reads even with a datagram
// queued, and writes, as package net's do; clearing it reads the datagram.
func TestUDPDeadlines(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	srv := listenUDP(t, b, netip.AddrPortFrom(addrB.Addr(), 9))
	srv.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, _, err := srv.ReadFrom(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" || oe.Net != "udp" {
		t.Fatalf("error %#v is not a read *net.OpError", err)
	}
	cc := dialUDP(t, a, netip.AddrPort{}, netip.AddrPortFrom(addrB.Addr(), 9))
	if _, err := cc.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the datagram", func() bool { return b.Stats().UDP.DatagramsIn == 1 })
	if _, _, err := srv.ReadFrom(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with a passed deadline and a datagram queued: %v, want a timeout", err)
	}
	cc.SetWriteDeadline(time.Now().Add(-time.Second))
	if n, err := cc.Write([]byte("y")); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write with a passed deadline: %d, %v", n, err)
	}
	srv.SetDeadline(time.Time{})
	if n, _ := readWithin(t, srv, make([]byte, 10)); n != 1 {
		t.Fatalf("read after clearing the deadline: %d bytes", n)
	}
}

// TestUDPCloseUnblocks: Close wakes a blocked reader with net.ErrClosed,
// frees the port, and a second Close is an error.
func TestUDPCloseUnblocks(t *testing.T) {
	leakcheck.Check(t)
	_, b := pair(t, Options{}, nil)
	laddr := netip.AddrPortFrom(addrB.Addr(), 9)
	c, err := b.ListenUDP(laddr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := c.ReadFrom(make([]byte, 10))
		done <- err
	}()
	// Close may come before the reader blocks: either way it must end.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("blocked read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not unblock the reader")
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if _, err := c.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(addrA.Addr(), 9)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after Close: %v", err)
	}
	listenUDP(t, b, laddr) // the port is free again
}

// TestUDPStackCloseUnblocks: closing the stack closes its sockets.
func TestUDPStackCloseUnblocks(t *testing.T) {
	leakcheck.Check(t)
	_, b := pair(t, Options{}, nil)
	c := listenUDP(t, b, netip.AddrPort{})
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		done <- err
	}()
	b.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after the stack closed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closing the stack did not unblock the reader")
	}
	if _, err := b.ListenUDP(netip.AddrPort{}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ListenUDP on a closed stack: %v", err)
	}
}

// TestUDPPortUnreachable: a datagram to a port nobody has is answered
// with an ICMP port unreachable (RFC 1122 §4.1.3.1), which a connected
// socket reports as ECONNREFUSED on its next Read and, once more, on a
// Write; an unconnected socket ignores it.
func TestUDPPortUnreachable(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	closed := netip.AddrPortFrom(addrB.Addr(), 9)
	cc := dialUDP(t, a, netip.AddrPort{}, closed)
	if _, err := cc.Write([]byte("anyone?")); err != nil {
		t.Fatal(err)
	}
	cc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := cc.Read(make([]byte, 10))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("read after the port unreachable: %v, want ECONNREFUSED", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("%v is not a read *net.OpError", err)
	}
	// The error is reported once; the next one comes from the next
	// datagram's answer, which a Write then reports without sending.
	if _, err := cc.Write([]byte("again")); err != nil {
		t.Fatalf("write after the error was read: %v", err)
	}
	waitFor(t, "the second port unreachable", func() bool { return a.Stats().UDP.ICMPErrorsReported == 2 })
	if _, err := cc.Write([]byte("and again")); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("write after the second port unreachable: %v, want ECONNREFUSED", err)
	}
	lc := listenUDP(t, a, netip.AddrPort{})
	if _, err := lc.WriteToUDPAddrPort([]byte("x"), closed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unconnected socket's port unreachable", func() bool { return a.Stats().UDP.ICMPErrorsIn == 3 })
	lc.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := lc.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("unconnected socket's read: %v, want only a timeout", err)
	}
	// b counts an ICMP error sent once it has left, which can be after a
	// has read it.
	waitFor(t, "b's errors counted", func() bool { return b.Stats().ICMP.ErrorsOut == 3 })
	sa, sb := a.Stats(), b.Stats()
	if sb.UDP.NoPort != 3 || sb.ICMP.ErrorsOut != 3 {
		t.Errorf("b: NoPort %d, ICMP errors out %d; want 3 and 3", sb.UDP.NoPort, sb.ICMP.ErrorsOut)
	}
	if sa.UDP.ICMPErrorsReported != 2 || sa.ICMP.ErrorsNoConnection != 1 || sa.UDP.DatagramsOut != 3 {
		t.Errorf("a: reported %d, no connection %d, sent %d; want 2, 1 and 3", sa.UDP.ICMPErrorsReported, sa.ICMP.ErrorsNoConnection, sa.UDP.DatagramsOut)
	}
}

// TestUDPBroadcast: sending to the subnet broadcast or to 255.255.255.255
// needs SetBroadcast (EACCES without, as Linux); a broadcast reaches the
// socket bound to every address, not one bound to a unicast address, and
// a broadcast to a port nobody has draws no ICMP error (RFC 1122 §3.2.2).
func TestUDPBroadcast(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	wild := listenUDP(t, b, netip.AddrPortFrom(netip.IPv4Unspecified(), 67))
	bound := listenUDP(t, b, netip.AddrPortFrom(addrB.Addr(), 68))
	bcast := netip.AddrPortFrom(netip.MustParseAddr("10.1.0.255"), 67)
	c := listenUDP(t, a, netip.AddrPortFrom(addrA.Addr(), 0))
	for _, to := range []netip.AddrPort{bcast, netip.AddrPortFrom(ipv4Broadcast, 67)} {
		if _, err := c.WriteToUDPAddrPort([]byte("x"), to); !errors.Is(err, syscall.EACCES) {
			t.Fatalf("broadcast to %v without SetBroadcast: %v, want EACCES", to, err)
		}
	}
	c.SetBroadcast(true)
	for i, to := range []netip.AddrPort{bcast, netip.AddrPortFrom(ipv4Broadcast, 67)} {
		if _, err := c.WriteToUDPAddrPort([]byte{byte(i)}, to); err != nil {
			t.Fatalf("broadcast to %v: %v", to, err)
		}
		buf := make([]byte, 10)
		if n, from := readWithin(t, wild, buf); n != 1 || buf[0] != byte(i) || from != c.LocalAddr().(*net.UDPAddr).AddrPort() {
			t.Fatalf("broadcast to %v: read %d bytes from %v", to, n, from)
		}
	}
	// To the bound socket's port and to a port nobody has: both are
	// ignored, without an ICMP error.
	for _, port := range []uint16{68, 69} {
		if _, err := c.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(bcast.Addr(), port)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the ignored broadcasts", func() bool { return b.Stats().UDP.IgnoredBroadcast == 2 })
	bound.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := bound.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("socket bound to a unicast address read %v", err)
	}
	if st := b.Stats(); st.UDP.NoPort != 0 || st.ICMP.ErrorsOut != 0 {
		t.Errorf("broadcasts answered: NoPort %d, ICMP errors out %d", st.UDP.NoPort, st.ICMP.ErrorsOut)
	}
}

// TestUDPBindAndArguments: the errors of ListenUDP, DialUDP and the
// writes name their cause as package net's do.
func TestUDPBindAndArguments(t *testing.T) {
	leakcheck.Check(t)
	a, _ := pair(t, Options{}, nil)
	listenUDP(t, a, netip.AddrPortFrom(addrA.Addr(), 53))
	for _, tc := range []struct {
		name  string
		laddr netip.AddrPort
		err   error
	}{
		{"address not ours", netip.MustParseAddrPort("10.1.0.9:53"), syscall.EADDRNOTAVAIL},
		{"same address and port", netip.AddrPortFrom(addrA.Addr(), 53), syscall.EADDRINUSE},
		{"wildcard over a bound port", netip.MustParseAddrPort("0.0.0.0:53"), syscall.EADDRINUSE},
	} {
		_, err := a.ListenUDP(tc.laddr)
		var oe *net.OpError
		if !errors.Is(err, tc.err) || !errors.As(err, &oe) || oe.Op != "listen" || oe.Net != "udp" {
			t.Errorf("%s: ListenUDP(%v) = %v, want a listen *net.OpError with %v", tc.name, tc.laddr, err, tc.err)
		}
	}
	listenUDP(t, a, netip.MustParseAddrPort("0.0.0.0:54"))
	if _, err := a.ListenUDP(netip.AddrPortFrom(addrA.Addr(), 54)); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("a unicast bind over a wildcard one: %v, want EADDRINUSE", err)
	}
	if _, err := a.DialUDP(netip.AddrPortFrom(addrA.Addr(), 53), netip.AddrPortFrom(addrB.Addr(), 7)); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("dial from a bound port: %v, want EADDRINUSE", err)
	}
	if _, err := a.DialUDP(netip.AddrPort{}, netip.MustParseAddrPort("192.0.2.1:7")); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("dial without a route: %v, want ENETUNREACH", err)
	}
	for _, raddr := range []string{"10.1.0.2:0", "0.0.0.0:7", "224.0.0.1:7", "[2001:db8::1]:7"} {
		if _, err := a.DialUDP(netip.AddrPort{}, netip.MustParseAddrPort(raddr)); err == nil {
			t.Errorf("DialUDP to %s succeeded", raddr)
		}
	}
	cc := dialUDP(t, a, netip.AddrPort{}, netip.AddrPortFrom(addrB.Addr(), 7))
	if _, err := cc.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(addrB.Addr(), 8)); !errors.Is(err, net.ErrWriteToConnected) {
		t.Errorf("WriteTo on a connected socket: %v", err)
	}
	if _, err := cc.Write(make([]byte, udp.MaxPayloadIPv4+1)); !errors.Is(err, syscall.EMSGSIZE) {
		t.Errorf("65,508 bytes: %v, want EMSGSIZE", err)
	}
	lc := listenUDP(t, a, netip.AddrPort{})
	if _, err := lc.Write([]byte("x")); !errors.Is(err, syscall.EDESTADDRREQ) {
		t.Errorf("Write on an unconnected socket: %v, want EDESTADDRREQ", err)
	}
	if _, err := lc.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(addrB.Addr(), 0)); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("write to port 0: %v, want EINVAL", err)
	}
	if _, err := lc.WriteTo([]byte("x"), &net.TCPAddr{IP: net.IPv4(10, 1, 0, 2), Port: 7}); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("WriteTo a *net.TCPAddr: %v, want EINVAL", err)
	}
}
