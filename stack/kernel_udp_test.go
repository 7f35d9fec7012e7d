package stack

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
)

// kernelUDP opens a kernel UDP socket in the namespace: connected to
// raddr when it is valid, else bound to laddr. It is closed when the
// test ends.
func (k *kernelNet) kernelUDP(t *testing.T, laddr, raddr netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := k.ns.Do(func() (err error) {
		var la *net.UDPAddr
		if laddr.IsValid() {
			la = net.UDPAddrFromAddrPort(laddr)
		}
		if raddr.IsValid() {
			c, err = net.DialUDP("udp4", la, net.UDPAddrFromAddrPort(raddr))
		} else {
			c, err = net.ListenUDP("udp4", la)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestKernelUDPEcho: a kernel UDP client sends datagrams of 0 to 8,000
// bytes (fragmented above 1,472 at the TAP's MTU of 1,500) to ustack's
// echo socket and gets each back whole, from the port it sent to.
func TestKernelUDPEcho(t *testing.T) {
	leakcheck.Check(t)
	k := newKernelNet(t)
	srv, err := k.s.ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), 7))
	if err != nil {
		t.Fatal(err)
	}
	wait := udpEcho(srv)
	defer func() { srv.Close(); wait() }()
	server := netip.AddrPortFrom(stackAddr.Addr(), 7)
	kc := k.kernelUDP(t, netip.AddrPort{}, server)
	buf := make([]byte, 9000)
	sizes := []int{0, 1, 2, 7, 8, 9, 100, 1000, 1471, 1472, 1473, 1480, 1481, 2000, 2952, 2953, 4000, 6000, 7999, 8000}
	for _, size := range sizes {
		msg := udpPattern(size)
		if _, err := kc.Write(msg); err != nil {
			t.Fatalf("kernel write of %d bytes: %v", size, err)
		}
		kc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, from, err := kc.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("kernel read of the %d-byte echo: %v", size, err)
		}
		if from != server || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("echo of %d bytes: %d bytes from %v", size, n, from)
		}
	}
	// The echo can reach the kernel a moment before ustack has counted it.
	waitFor(t, "the last echo counted", func() bool { return k.s.Stats().UDP.DatagramsOut == uint64(len(sizes)) })
	st := k.s.Stats()
	if st.UDP.DatagramsIn != uint64(len(sizes)) || st.UDP.DatagramsOut != uint64(len(sizes)) || st.UDP.DropBadChecksum != 0 {
		t.Errorf("UDP counters %+v", st.UDP)
	}
	if st.IPv4.Reassembled == 0 || st.IPv4.FragmentsOut == 0 {
		t.Errorf("no fragments both ways: %+v", st.IPv4)
	}
}

// TestKernelUDPPortUnreachable: a kernel client connected to a ustack
// port nobody has gets ECONNREFUSED from ustack's ICMP port unreachable.
func TestKernelUDPPortUnreachable(t *testing.T) {
	leakcheck.Check(t)
	k := newKernelNet(t)
	kc := k.kernelUDP(t, netip.AddrPort{}, netip.AddrPortFrom(stackAddr.Addr(), 9))
	if _, err := kc.Write([]byte("anyone?")); err != nil {
		t.Fatal(err)
	}
	kc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := kc.Read(make([]byte, 10)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("kernel read: %v, want ECONNREFUSED", err)
	}
	// ustack counts the error sent once it has left, which can be after
	// the kernel has read it.
	waitFor(t, "the error counted", func() bool { return k.s.Stats().ICMP.ErrorsOut >= 1 })
	if st := k.s.Stats(); st.UDP.NoPort != 1 || st.ICMP.ErrorsOut != 1 {
		t.Errorf("NoPort %d, ICMP errors out %d; want 1 and 1", st.UDP.NoPort, st.ICMP.ErrorsOut)
	}
}

// TestKernelUDPRefusedByKernel: ustack's connected socket gets
// ECONNREFUSED from the kernel's port unreachable for a port it has no
// socket on.
func TestKernelUDPRefusedByKernel(t *testing.T) {
	leakcheck.Check(t)
	k := newKernelNet(t)
	c, err := k.s.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(kernelAddr.Addr(), 9))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("anyone?")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("read: %v, want ECONNREFUSED", err)
	}
	if st := k.s.Stats(); st.UDP.ICMPErrorsReported != 1 {
		t.Errorf("ICMPErrorsReported %d, want 1", st.UDP.ICMPErrorsReported)
	}
}

// TestKernelUDPBroadcast: a kernel datagram to the subnet broadcast
// reaches ustack's socket bound to every address, and ustack's broadcast,
// once SetBroadcast allows it, reaches a kernel socket.
func TestKernelUDPBroadcast(t *testing.T) {
	leakcheck.Check(t)
	k := newKernelNet(t)
	bcast := netip.MustParseAddr("10.7.0.255")
	us, err := k.s.ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), 6767))
	if err != nil {
		t.Fatal(err)
	}
	defer us.Close()
	// Go's net sets SO_BROADCAST on every IPv4 datagram socket.
	kc := k.kernelUDP(t, netip.AddrPortFrom(netip.IPv4Unspecified(), 6868), netip.AddrPort{})
	if _, err := kc.WriteToUDPAddrPort([]byte("to all"), netip.AddrPortFrom(bcast, 6767)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, from := readWithin(t, us, buf)
	if string(buf[:n]) != "to all" || from != netip.AddrPortFrom(kernelAddr.Addr(), 6868) {
		t.Fatalf("ustack read %q from %v", buf[:n], from)
	}
	if _, err := us.WriteToUDPAddrPort([]byte("back"), netip.AddrPortFrom(bcast, 6868)); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("broadcast without SetBroadcast: %v, want EACCES", err)
	}
	us.SetBroadcast(true)
	if _, err := us.WriteToUDPAddrPort([]byte("back"), netip.AddrPortFrom(bcast, 6868)); err != nil {
		t.Fatal(err)
	}
	kc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err = kc.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "back" || from != netip.AddrPortFrom(stackAddr.Addr(), 6767) {
		t.Fatalf("kernel read %q from %v: %v", buf[:n], from, err)
	}
}
