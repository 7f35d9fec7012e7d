package link_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/link"
)

// openTAP creates a TAP device named name inside a fresh test namespace,
// brings it up with addr, and returns it with the namespace and the MAC of
// the kernel's side. Everything is removed at Cleanup.
func openTAP(t *testing.T, name, addr string) (*link.TAP, *netns.NS, link.MAC) {
	t.Helper()
	ns := netns.NewT(t)
	var tap *link.TAP
	var kernelMAC link.MAC
	err := ns.Do(func() (err error) {
		if tap, err = link.OpenTAP(name, link.TAPOptions{}); err != nil {
			return err
		}
		ni, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		kernelMAC = link.MAC(ni.HardwareAddr)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tap.Close() })
	if _, err := ns.Run("ip", "link", "set", name, "up"); err != nil {
		t.Fatal(err)
	}
	if addr != "" {
		if _, err := ns.Run("ip", "addr", "add", addr, "dev", name); err != nil {
			t.Fatal(err)
		}
	}
	return tap, ns, kernelMAC
}

// startPing runs ping inside ns in the background; the process is killed
// and reaped at Cleanup.
func startPing(t *testing.T, ns *netns.NS, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("ping"); err != nil {
		t.Skip("ping (iputils-ping) is not installed")
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name(), "ping"}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
}

// reader copies every frame ep reads to a channel until ReadFrame fails.
func reader(ep link.Endpoint, size int) (<-chan []byte, <-chan error) {
	frames := make(chan []byte, 64)
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, size)
		for {
			n, err := ep.ReadFrame(buf)
			if err != nil {
				errc <- err
				return
			}
			select {
			case frames <- bytes.Clone(buf[:n]):
			default: // the test stopped listening
			}
		}
	}()
	return frames, errc
}

// await returns the first frame from frames that match accepts, failing
// the test after a timeout.
func await(t *testing.T, frames <-chan []byte, what string, match func([]byte) bool) []byte {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f := <-frames:
			if match(f) {
				return f
			}
		case <-timeout:
			t.Fatalf("no %s within 10 s", what)
			return nil
		}
	}
}

var (
	kernelIP = netip.MustParseAddr("10.99.0.1")
	ourIP    = netip.MustParseAddr("10.99.0.2")
)

func TestTAPExchangesWithKernel(t *testing.T) {
	leakcheck.Check(t)
	tap, ns, kernelMAC := openTAP(t, "ustap0", "10.99.0.1/24")
	ours := tap.HardwareAddr()
	if ours == kernelMAC || ours[0] != 0x02 || ours.IsZero() {
		t.Errorf("TAP MAC %v must be 02:.. and differ from the kernel's %v", ours, kernelMAC)
	}
	if tap.Name() != "ustap0" || tap.MTU() != 1500 {
		t.Errorf("Name, MTU = %q, %d; want ustap0, 1500", tap.Name(), tap.MTU())
	}
	frames, _ := reader(tap, 1514)

	// The kernel resolves 10.99.0.2 with an ARP request (RFC 826).
	startPing(t, ns, "-c1", "-W2", ourIP.String())
	req := await(t, frames, "ARP request for "+ourIP.String(), func(f []byte) bool {
		e, err := link.ParseEthernet(f)
		return err == nil && e.Type() == link.EtherTypeARP && len(e.Payload()) >= 28 &&
			netip.AddrFrom4([4]byte(e.Payload()[24:28])) == ourIP
	})
	e, _ := link.ParseEthernet(req)
	if e.Destination() != link.Broadcast || e.Source() != kernelMAC {
		t.Errorf("ARP request %v > %v, want %v > broadcast", e.Source(), e.Destination(), kernelMAC)
	}

	// Answer it; the kernel then sends the echo request to our MAC.
	reply := make([]byte, link.EthernetHeaderLen+28)
	link.PutEthernetHeader(reply, kernelMAC, ours, link.EtherTypeARP)
	a := reply[link.EthernetHeaderLen:]
	binary.BigEndian.PutUint16(a[0:], 1)      // hrd: Ethernet
	binary.BigEndian.PutUint16(a[2:], 0x0800) // pro: IPv4
	a[4], a[5] = 6, 4                         // hln, pln
	binary.BigEndian.PutUint16(a[6:], 2)      // op: reply
	copy(a[8:], ours[:])
	copy(a[14:], ourIP.AsSlice())
	copy(a[18:], kernelMAC[:])
	copy(a[24:], kernelIP.AsSlice())
	if err := tap.WriteFrame(reply); err != nil {
		t.Fatalf("WriteFrame(ARP reply): %v", err)
	}
	await(t, frames, "ICMP echo request to our MAC", func(f []byte) bool {
		e, err := link.ParseEthernet(f)
		return err == nil && e.Type() == link.EtherTypeIPv4 && e.Destination() == ours &&
			len(e.Payload()) >= 20 && e.Payload()[9] == 1 // protocol ICMP
	})

	if err := tap.WriteFrame(make([]byte, 1515)); !errors.Is(err, link.ErrFrameTooLarge) {
		t.Errorf("WriteFrame(1515 bytes) = %v, want ErrFrameTooLarge", err)
	}
}

func TestTAPCloseUnblocksRead(t *testing.T) {
	leakcheck.Check(t)
	tap, _, _ := openTAP(t, "ustap1", "")
	_, errc := reader(tap, 1514)
	link.WaitBlocked(t, 1, "[IO wait", "link.(*TAP).ReadFrame")
	if err := tap.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadFrame after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock ReadFrame")
	}
	if err := tap.WriteFrame(make([]byte, 60)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteFrame after Close = %v, want net.ErrClosed", err)
	}
	if err := tap.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestTAPRejectsKernelMAC(t *testing.T) {
	ns := netns.NewT(t)
	err := ns.Do(func() error {
		tap, err := link.OpenTAP("ustap2", link.TAPOptions{})
		if err != nil {
			return err
		}
		defer tap.Close()
		ni, err := net.InterfaceByName("ustap2")
		if err != nil {
			return err
		}
		// A persistent device whose kernel side already has the MAC
		// we then ask OpenTAP to use.
		if _, err := ns.Run("ip", "tuntap", "add", "ustap3", "mode", "tap"); err != nil {
			return err
		}
		if _, err := ns.Run("ip", "link", "set", "ustap3", "address", ni.HardwareAddr.String()); err != nil {
			return err
		}
		_, err = link.OpenTAP("ustap3", link.TAPOptions{MAC: link.MAC(ni.HardwareAddr)})
		if !errors.Is(err, link.ErrSameMAC) {
			t.Errorf("OpenTAP with the kernel's MAC = %v, want ErrSameMAC", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTUN(t *testing.T) {
	leakcheck.Check(t)
	ns := netns.NewT(t)
	var tun *link.TUN
	if err := ns.Do(func() (err error) {
		tun, err = link.OpenTUN("ustun0", link.TUNOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tun.Close() })
	if !tun.HardwareAddr().IsZero() || tun.Name() != "ustun0" || tun.MTU() != 1500 {
		t.Errorf("TUN: MAC %v, name %q, MTU %d", tun.HardwareAddr(), tun.Name(), tun.MTU())
	}
	for _, cmd := range [][]string{
		{"ip", "link", "set", "ustun0", "up"},
		{"ip", "addr", "add", "10.98.0.1/24", "dev", "ustun0"},
	} {
		if _, err := ns.Run(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	startPing(t, ns, "-c3", "-i0.2", "-W1", "10.98.0.2")

	// The first packet is read into a short buffer: truncated and reported.
	small := make([]byte, 20)
	n, err := tun.ReadFrame(small)
	if n != 20 || !errors.Is(err, link.ErrTruncated) {
		t.Errorf("short ReadFrame = %d, %v; want 20, ErrTruncated", n, err)
	}
	frames, errc := reader(tun, 1500)
	await(t, frames, "ICMP echo request as a bare IPv4 packet", func(p []byte) bool {
		return len(p) >= 20 && p[0]>>4 == 4 && p[9] == 1 &&
			netip.AddrFrom4([4]byte(p[16:20])) == netip.MustParseAddr("10.98.0.2")
	})
	link.WaitBlocked(t, 1, "[IO wait", "link.(*TUN).ReadFrame")
	tun.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadFrame after Close = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock ReadFrame")
	}
}
