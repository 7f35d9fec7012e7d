// Package netapi runs golang.org/x/net/nettest's conformance tests on the
// connections of ustack's package net API (Stack.DialContext, Listen,
// ListenPacket), between two stacks joined by an in-memory link.
package netapi

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/stack"
)

// twoStacks joins two new stacks, a at 10.9.0.1 and b at 10.9.0.2, by a
// link.Pipe. stop closes both.
func twoStacks() (a, b *stack.Stack, stop func(), err error) {
	ea, eb := link.NewPipe(link.PipeOptions{})
	a, b = stack.New(stack.Options{}), stack.New(stack.Options{})
	stop = func() { a.Close(); b.Close() }
	if _, err = a.AddNIC(ea, netip.MustParsePrefix("10.9.0.1/24")); err == nil {
		_, err = b.AddNIC(eb, netip.MustParsePrefix("10.9.0.2/24"))
	}
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	return a, b, stop, nil
}

// tcpPipe is a TCP connection from a's DialContext to b's Listen.
func tcpPipe() (c1, c2 net.Conn, stop func(), err error) {
	a, b, stopStacks, err := twoStacks()
	if err != nil {
		return nil, nil, nil, err
	}
	l, err := b.Listen("tcp", ":80")
	if err != nil {
		stopStacks()
		return nil, nil, nil, err
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c1, err = a.DialContext(ctx, "tcp", "10.9.0.2:80")
	if err != nil {
		l.Close()
		<-accepted
		stopStacks()
		return nil, nil, nil, err
	}
	c2 = <-accepted
	return c1, c2, func() { c1.Close(); c2.Close(); stopStacks() }, nil
}

// udpPipe is a pair of connected UDP sockets: a's from
// DialContext("udp") and b's, from DialUDP, connected back to it.
func udpPipe() (c1, c2 net.Conn, stop func(), err error) {
	a, b, stopStacks, err := twoStacks()
	if err != nil {
		return nil, nil, nil, err
	}
	c1, err = a.DialContext(context.Background(), "udp", "10.9.0.2:9")
	if err == nil {
		c2, err = b.DialUDP(netip.MustParseAddrPort("10.9.0.2:9"), c1.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	if err != nil {
		if c1 != nil {
			c1.Close()
		}
		stopStacks()
		return nil, nil, nil, err
	}
	return c1, c2, func() { c1.Close(); c2.Close(); stopStacks() }, nil
}

// TestNettestTCP: every subtest of nettest.TestConn on a TCP connection.
func TestNettestTCP(t *testing.T) {
	nettest.TestConn(t, tcpPipe)
}

// udpSubtests are the subtests of nettest.TestConn that a datagram
// socket can pass. The others assume what UDP does not give:
//   - BasicIO copies 1 MiB and then expects io.EOF from c1.Close, and
//     PingPong's last reader waits for io.EOF after the other side's
//     Close; a UDP peer is never told of a Close, so both wait until
//     nettest's one-minute timer closes the pipe. (The kernel's UDP
//     sockets on loopback fail both the same way.)
//   - FutureTimeout lets c1 write 1,024-byte datagrams for 100 ms while
//     nobody reads c2, then starts an echo on c2, sends one 0xff
//     datagram and waits for its echo forever. Writes do not block on a
//     datagram socket: in one run 66,935 datagrams left c1, c2's receive
//     queue took 208 and dropped 14,298 (Stats().UDP.DropReceiveBuffer),
//     the full link queue the rest. The 0xff finds c2's queue still full
//     unless the echo has read from it first, a race the test leaves to
//     the scheduler, and a dropped datagram is not resent (RFC 768). The
//     kernel's loopback, which delivers within sendmsg, wins the race.
var udpSubtests = "^(RacyRead|RacyWrite|ReadTimeout|WriteTimeout|PastTimeout|PresentTimeout|CloseTimeout|ConcurrentMethods)$"

// TestNettestConnectedUDP: nettest.TestConn on connected UDP sockets,
// the subtests of udpSubtests. TestConn has no way to choose its
// subtests, so the test runs its own binary again with -test.run naming
// them, and fails if that run does.
func TestNettestConnectedUDP(t *testing.T) {
	if os.Getenv("USTACK_NETTEST_UDP_CHILD") == "1" {
		nettest.TestConn(t, udpPipe)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNettestConnectedUDP$/"+udpSubtests, "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "USTACK_NETTEST_UDP_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestNettestConnectedUDP/ConcurrentMethods") {
		t.Fatalf("nettest.TestConn on connected UDP: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "--- ") {
			t.Log(strings.TrimSpace(line))
		}
	}
}
