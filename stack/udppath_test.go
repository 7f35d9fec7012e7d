package stack

import (
	"net/netip"
	"runtime"
	"strconv"
	"testing"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/link"
)

// TestUDPAllocsPerDatagram: in the steady state a datagram sent on a
// connected socket and read on a bound one of another stack over a pipe
// allocates nothing, end to end (both stacks, the pipe, the NIC reader),
// at 64 and 1400 bytes; nor does an echo exchange through
// ReadFromUDPAddrPort and WriteToUDPAddrPort.
func TestUDPAllocsPerDatagram(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	a, b := pair(t, Options{}, nil)
	srv := listenUDP(t, b, netip.AddrPortFrom(addrB.Addr(), 9))
	cl := dialUDP(t, a, netip.AddrPort{}, netip.AddrPortFrom(addrB.Addr(), 9))
	buf := make([]byte, 2000)
	for _, size := range []int{64, 1400} {
		out := udpPattern(size)
		send := func() {
			if _, err := cl.Write(out); err != nil {
				t.Fatal(err)
			}
			if n, err := srv.Read(buf); err != nil || n != size {
				t.Fatalf("read %d bytes, %v; want %d", n, err, size)
			}
		}
		send() // resolves ARP, grows the queue, makes the channels
		if n := testing.AllocsPerRun(1000, send); n != 0 {
			t.Errorf("%d bytes: %v allocations per datagram sent and read, want 0", size, n)
		}
	}
	// An echo server's round trip: ReadFromUDPAddrPort and
	// WriteToUDPAddrPort on the bound socket.
	out := udpPattern(64)
	rt := func() {
		cl.Write(out)
		n, from, err := srv.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.WriteToUDPAddrPort(buf[:n], from); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	rt()
	if n := testing.AllocsPerRun(1000, rt); n != 0 {
		t.Errorf("%v allocations per echo round trip, want 0", n)
	}
}

// BenchmarkUDPStream sends b.N datagrams of each size from a connected
// socket to a bound one on another stack over a pipe, read as they come,
// at most 64 in flight (so that none is dropped).
func BenchmarkUDPStream(b *testing.B) {
	for _, size := range []int{64, 1400} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			ea, eb := link.NewPipe(link.PipeOptions{})
			sa, sb := New(Options{}), New(Options{})
			defer sa.Close()
			defer sb.Close()
			if _, err := sa.AddNIC(ea, addrA); err != nil {
				b.Fatal(err)
			}
			if _, err := sb.AddNIC(eb, addrB); err != nil {
				b.Fatal(err)
			}
			srv, err := sb.ListenUDP(netip.AddrPortFrom(addrB.Addr(), 9))
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			cl, err := sa.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(addrB.Addr(), 9))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			credits := make(chan struct{}, 64)
			done := make(chan error, 1)
			n := b.N + 1 // and the first, which waits for ARP
			go func() {
				buf := make([]byte, size)
				for i := 0; i < n; i++ {
					if _, err := srv.Read(buf); err != nil {
						done <- err
						return
					}
					<-credits
				}
				done <- nil
			}()
			out := make([]byte, size)
			credits <- struct{}{}
			cl.Write(out)
			for len(credits) > 0 { // the first datagram, read
				runtime.Gosched()
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				credits <- struct{}{}
				if _, err := cl.Write(out); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// TestUDPTableBuckets: sockets whose ports share a bucket of the table
// (ports 256 apart) are told apart, each datagram goes to the most
// specific socket of its own port (connected, then bound, then bound to
// every address; broadcasts only to the last), and closing one leaves the
// others where they were.
func TestUDPTableBuckets(t *testing.T) {
	leakcheck.Check(t)
	a, _ := pair(t, Options{}, nil)
	me := addrA.Addr()
	peer := netip.AddrPortFrom(addrB.Addr(), 7)
	wild := listenUDP(t, a, netip.AddrPortFrom(netip.IPv4Unspecified(), 1000))
	bound := listenUDP(t, a, netip.AddrPortFrom(me, 1000+udpBuckets))
	conn := dialUDP(t, a, netip.AddrPortFrom(me, 1000+2*udpBuckets), peer)
	u := &a.udp
	for _, tc := range []struct {
		port   uint16
		remote netip.AddrPort
		bcast  bool
		want   *UDPConn
	}{
		{1000, peer, false, wild},
		{1000, peer, true, wild},
		{1000 + udpBuckets, peer, false, bound},
		{1000 + udpBuckets, peer, true, nil},
		{1000 + 2*udpBuckets, peer, false, conn},
		{1000 + 2*udpBuckets, netip.AddrPortFrom(addrB.Addr(), 8), false, nil},
		{1000 + 3*udpBuckets, peer, false, nil},
	} {
		if got := u.lookup(netip.AddrPortFrom(me, tc.port), tc.remote, tc.bcast); got != tc.want {
			t.Errorf("lookup(%d from %v, bcast %v) = %p, want %p", tc.port, tc.remote, tc.bcast, got, tc.want)
		}
	}
	if n := len(u.entries(1000)); n != 3 {
		t.Fatalf("bucket of port 1000 holds %d sockets, want 3", n)
	}
	bound.Close()
	if got := u.lookup(netip.AddrPortFrom(me, 1000+udpBuckets), peer, false); got != nil {
		t.Errorf("a closed socket is still found")
	}
	if u.lookup(netip.AddrPortFrom(me, 1000), peer, false) != wild || u.lookup(netip.AddrPortFrom(me, 1000+2*udpBuckets), peer, false) != conn {
		t.Errorf("closing one socket moved the others of its bucket")
	}
	if u.find(conn.key) != conn || u.find(bound.key) != nil {
		t.Errorf("find: the connected socket not found, or the closed one found")
	}
	// The port is free again.
	listenUDP(t, a, netip.AddrPortFrom(me, 1000+udpBuckets))
}

// TestUDPTableConcurrent binds and closes sockets while a datagram stream
// is delivered to one of the same bucket, so that the race detector sees
// the receive path read the table while binds replace it.
func TestUDPTableConcurrent(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	srv := listenUDP(t, b, netip.AddrPortFrom(addrB.Addr(), 2000))
	cl := dialUDP(t, a, netip.AddrPort{}, netip.AddrPortFrom(addrB.Addr(), 2000))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			c, err := b.ListenUDP(netip.AddrPortFrom(addrB.Addr(), uint16(2000+udpBuckets*(1+i%50))))
			if err != nil {
				t.Error(err)
				return
			}
			c.Close()
		}
	}()
	buf := make([]byte, 64)
	for range 200 {
		cl.Write([]byte("x"))
		readWithin(t, srv, buf)
	}
	<-done
}
