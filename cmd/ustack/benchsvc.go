package main

import (
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"

	"github.com/ustack/ustack/stack"
)

// The benchmark services: discard (RFC 863) takes everything a client
// sends, chargen (RFC 864) sends an endless stream, so that any client
// measures either direction on its own.

// chargenLine is the length of a chargen line without its CR LF, and
// chargenChars the ring of characters it slides over: RFC 864's "popular
// pattern is 72 chraracter lines of the ASCII printing characters. There
// are 95 printing characters ... On line N, put characters (0+N mod 95)
// through (71+N mod 95). End each line with carriage return and line
// feed."
const (
	chargenLine  = 72
	chargenChars = 95 // ' ' (32) to '~' (126)
)

// chargenPattern is whole cycles of the chargen pattern (95 lines of 72
// characters and CR LF, after which it repeats), as many as fit 64 KiB:
// the TCP service writes it again and again, in large writes, and the
// stream is the RFC's.
var chargenPattern = func() []byte {
	const cycle = chargenChars * (chargenLine + 2)
	b := make([]byte, 0, (64<<10)/cycle*cycle)
	for len(b) < cap(b) {
		for line := 0; line < chargenChars; line++ {
			for i := 0; i < chargenLine; i++ {
				b = append(b, byte(' '+(line+i)%chargenChars))
			}
			b = append(b, '\r', '\n')
		}
	}
	return b
}()

// startDiscard serves discard (RFC 863) on port: over TCP "Any data
// received is thrown away. No response is sent. This continues until the
// calling user terminates the connection", and over UDP "any received
// datagram is thrown away".
func (sv *services) startDiscard(s *stack.Stack, port int) error {
	return sv.startTCPUDP(s, port, func(c net.Conn) {
		io.Copy(io.Discard, c)
	}, func(*stack.UDPConn, []byte, netip.AddrPort) {})
}

// startChargen serves character generator (RFC 864) on port: over TCP
// "Once a connection is established a stream of data is sent out the
// connection (and any data received is thrown away). This continues until
// the calling user terminates the connection"; over UDP "When a datagram
// is received, an answering datagram is sent containing a random number
// (between 0 and 512) of characters (the data in the received datagram is
// ignored)".
func (sv *services) startChargen(s *stack.Stack, port int) error {
	return sv.startTCPUDP(s, port, func(c net.Conn) {
		var reader sync.WaitGroup
		reader.Add(1)
		go func() {
			defer reader.Done()
			io.Copy(io.Discard, c)
		}()
		for {
			if _, err := c.Write(chargenPattern); err != nil {
				break
			}
		}
		c.Close() // ends the reader
		reader.Wait()
	}, func(c *stack.UDPConn, _ []byte, from netip.AddrPort) {
		c.WriteToUDPAddrPort(chargenPattern[:rand.IntN(513)], from)
	})
}

// startTCPUDP listens on port over TCP and UDP, runs handle on every
// accepted connection (then closes it) and datagram on every datagram
// received.
func (sv *services) startTCPUDP(s *stack.Stack, port int, handle func(net.Conn), datagram func(c *stack.UDPConn, b []byte, from netip.AddrPort)) error {
	// [::] takes IPv4 connections too (dual-stack, TCPListener.SetIPv6Only).
	l, err := s.ListenTCP(netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(port)))
	if err != nil {
		return err
	}
	sv.listeners = append(sv.listeners, l)
	u, err := s.ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port)))
	if err != nil {
		return err
	}
	sv.packet = append(sv.packet, u)
	sv.wg.Add(2)
	go func() {
		defer sv.wg.Done()
		var conns sync.WaitGroup
		defer conns.Wait()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	go func() {
		defer sv.wg.Done()
		buf := make([]byte, 65535)
		for {
			n, from, err := u.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			datagram(u, buf[:n], from)
		}
	}()
	return nil
}
