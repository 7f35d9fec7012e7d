package gvnet

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

// udpPattern returns n bytes that differ with n and position.
func udpPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + n)
	}
	return b
}

// echoDatagrams answers every datagram on c with its payload until c is
// closed.
func echoDatagrams(c net.PacketConn) {
	buf := make([]byte, 65535)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		c.WriteTo(buf[:n], from)
	}
}

// exchangeDatagrams sends datagrams of every interesting size on the
// connected c (unfragmented, fragmented, the largest IPv4 carries) and
// checks that each comes back whole.
func exchangeDatagrams(t *testing.T, c net.Conn) {
	t.Helper()
	buf := make([]byte, 65535)
	for _, size := range []int{0, 1, 1472, 1473, 8000, 65507} {
		msg := udpPattern(size)
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("write of %d bytes: %v", size, err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read of the %d-byte echo: %v", size, err)
		}
		if !bytes.Equal(buf[:n], msg) {
			t.Fatalf("echo of %d bytes: %d bytes back, differing", size, n)
		}
	}
}

// TestUDPUstackClientGVisorServer: ustack's connected socket echoes
// datagrams through a gVisor UDP echo server.
func TestUDPUstackClientGVisorServer(t *testing.T) {
	u, g := ustackOnGVisor(t)
	srv, err := g.ListenUDP(7)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go echoDatagrams(srv)
	c, err := u.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(g.Addr(), 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchangeDatagrams(t, c)
}

// TestUDPGVisorClientUstackServer: gVisor's connected socket echoes
// datagrams through ustack's UDP echo socket.
func TestUDPGVisorClientUstackServer(t *testing.T) {
	u, g := ustackOnGVisor(t)
	srv, err := u.ListenUDP(netip.MustParseAddrPort("0.0.0.0:7"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go echoDatagrams(srv)
	c, err := g.DialUDP(netip.MustParseAddrPort("10.9.0.1:7"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchangeDatagrams(t, c)
	if st := u.Stats().UDP; st.DatagramsIn != 6 || st.DropBadChecksum != 0 {
		t.Errorf("ustack's UDP counters %+v", st)
	}
}
