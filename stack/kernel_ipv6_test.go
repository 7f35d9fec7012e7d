package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/internal/netns"
)

var (
	kernelAddr6 = netip.MustParsePrefix("fd00:7::1/64")
	stackAddr6  = netip.MustParsePrefix("fd00:7::2/64")
)

// newKernelNet6 is newKernelNetWith with IPv6 on both sides: the kernel
// has kernelAddr6 (without DAD), ustack stackAddr6, assigned when this
// returns.
func newKernelNet6(t *testing.T, opts Options) *kernelNet {
	t.Helper()
	k := newKernelNetWith(t, opts)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ustack's counters: %v", k.s.Stats().Lines())
			out, _ := k.ns.Run("ip", "-s", "-s", "link", "show", "ustap0")
			out2, _ := k.ns.Run("sh", "-c", "cat /proc/net/snmp6 | grep -v ' 0$'; ip -6 neigh; nstat -az 2>/dev/null | grep -v ' 0 ' ")
			t.Logf("kernel: %s\n%s", out, out2)
		}
	})
	k.addIPv6(t)
	return k
}

// addIPv6 gives the kernel kernelAddr6 (without DAD) and ustack
// stackAddr6, and waits until ustack's DAD assigned it.
func (k *kernelNet) addIPv6(t *testing.T) {
	t.Helper()
	if _, err := k.ns.Run("ip", "-6", "addr", "add", kernelAddr6.String(), "dev", "ustap0", "nodad"); err != nil {
		t.Fatal(err)
	}
	if err := k.s.AddAddress(1, stackAddr6); err != nil {
		t.Fatal(err)
	}
	waitWithin(t, 10*time.Second, "DAD of ustack's addresses", func() bool {
		return k.s.isLocalAddr(stackAddr6.Addr()) && k.s.LinkLocalAddress(1).IsValid()
	})
}

// ping6 runs the kernel's ping -6 to dst in the namespace and returns
// how many requests were sent and answered.
func (k *kernelNet) ping6(t *testing.T, dst string, args ...string) (sent, got int) {
	t.Helper()
	out, err := k.ns.Run(append([]string{"ping", "-6", "-q", "-W", "2"}, append(args, dst)...)...)
	m := pingStats.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("ping -6 %s: %v\n%s", dst, err, out)
	}
	fmt.Sscan(m[1], &sent)
	fmt.Sscan(m[2], &got)
	return sent, got
}

// kernelDialNet is kernelDial over network ("tcp6", "udp6").
func (k *kernelNet) kernelDialNet(network string, addr netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := k.ns.Do(func() (err error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err = d.Dial(network, addr.String())
		return err
	})
	return c, err
}

// ipv6TransferSize is the size of the TCP echoes: 8 MiB in CI,
// USTACK_IPV6_MIB mebibytes when set (64 to measure by hand).
func ipv6TransferSize() int {
	var mib int
	if _, err := fmt.Sscan(os.Getenv("USTACK_IPV6_MIB"), &mib); err == nil && mib > 0 {
		return mib << 20
	}
	return 8 << 20
}

func TestKernelIPv6(t *testing.T) {
	leakcheck.Check(t)
	k := newKernelNet6(t, Options{})
	ll := k.s.LinkLocalAddress(1)

	t.Run("KernelPings", func(t *testing.T) {
		if sent, got := k.ping6(t, stackAddr6.Addr().String(), "-c", "20", "-i", "0.01"); sent != 20 || got != 20 {
			t.Errorf("ping -6 %v: %d sent, %d received", stackAddr6.Addr(), sent, got)
		}
		out, err := k.ns.Run("ip", "-6", "neigh", "show", stackAddr6.Addr().String(), "dev", "ustap0")
		if err != nil || !strings.Contains(string(out), "lladdr "+k.tap.HardwareAddr().String()) {
			t.Errorf("kernel's neighbour table lacks ustack's MAC %v (NDP): %q %v", k.tap.HardwareAddr(), out, err)
		}
		if sent, got := k.ping6(t, ll.String()+"%ustap0", "-c", "5", "-i", "0.01"); sent != 5 || got != 5 {
			t.Errorf("ping -6 %v: %d sent, %d received", ll, sent, got)
		}
		// 4000 bytes exceed the MTU: the kernel fragments the request,
		// ustack reassembles it and fragments the reply.
		before := k.s.Stats().IPv6
		if sent, got := k.ping6(t, stackAddr6.Addr().String(), "-c", "3", "-i", "0.05", "-s", "4000"); sent != 3 || got != 3 {
			t.Errorf("ping -6 -s 4000: %d sent, %d received", sent, got)
		}
		st := k.s.Stats().IPv6
		if st.Reassembled-before.Reassembled < 3 || st.FragmentsOut-before.FragmentsOut < 9 {
			t.Errorf("reassembled %d, fragments out %d; want >= 3 and >= 9", st.Reassembled-before.Reassembled, st.FragmentsOut-before.FragmentsOut)
		}
	})

	t.Run("UstackPings", func(t *testing.T) {
		for _, size := range []int{56, 4000} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := k.s.Ping(ctx, kernelAddr6.Addr(), size)
			cancel()
			if err != nil {
				t.Errorf("ustack ping %v -s %d: %v", kernelAddr6.Addr(), size, err)
			}
		}
	})

	l, err := k.s.ListenTCP(netip.AddrPortFrom(netip.IPv6Unspecified(), 7))
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(l)
	t.Cleanup(func() { l.Close(); wait() })
	size := ipv6TransferSize()

	t.Run("KernelClientToUstackEcho", func(t *testing.T) {
		c, err := k.kernelDialNet("tcp6", netip.AddrPortFrom(stackAddr6.Addr(), 7))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(15 * time.Second))
		start := time.Now()
		if err := exchange(c, size, 1); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d MiB echoed in %v", size>>20, time.Since(start))
	})

	t.Run("UstackClientToKernelServer", func(t *testing.T) {
		var kl net.Listener
		if err := k.ns.Do(func() (err error) {
			kl, err = net.Listen("tcp6", netip.AddrPortFrom(kernelAddr6.Addr(), 9100).String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		wait := echoServer(kl)
		defer func() { kl.Close(); wait() }()
		c := dial(t, k.s, netip.AddrPortFrom(kernelAddr6.Addr(), 9100))
		defer c.Close()
		c.SetDeadline(time.Now().Add(15 * time.Second))
		start := time.Now()
		if err := exchange(c, size, 2); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d MiB echoed in %v", size>>20, time.Since(start))
	})

	t.Run("Curl", func(t *testing.T) {
		curl(t, k, stackAddr6.Addr())
	})

	t.Run("UDPEcho", func(t *testing.T) {
		u := listenUDP(t, k.s, netip.AddrPortFrom(netip.IPv6Unspecified(), 7))
		go func() {
			buf := make([]byte, 65536)
			for {
				n, from, err := u.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				u.WriteToUDPAddrPort(buf[:n], from)
			}
		}()
		c, err := k.kernelDialNet("udp6", netip.AddrPortFrom(stackAddr6.Addr(), 7))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, n := range []int{1, 1000, 3000} {
			msg := []byte(strings.Repeat("u", n))
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4000)
			m, err := c.Read(buf)
			if err != nil || string(buf[:m]) != string(msg) {
				t.Fatalf("UDP echo of %d bytes: %d bytes back, %v", n, m, err)
			}
		}
	})

	t.Run("ClosedPortsRefused", func(t *testing.T) {
		if _, err := k.kernelDialNet("tcp6", netip.AddrPortFrom(stackAddr6.Addr(), 81)); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("kernel dial to a closed TCP port: %v, want ECONNREFUSED (a RST)", err)
		}
		c, err := k.kernelDialNet("udp6", netip.AddrPortFrom(stackAddr6.Addr(), 81))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// The kernel reports the ICMPv6 port unreachable on the connected
		// socket's next read.
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("x"))
		if _, err := c.Read(make([]byte, 10)); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("kernel UDP to a closed port: %v, want ECONNREFUSED (ICMPv6 port unreachable)", err)
		}
	})

	t.Run("IPv4Unaffected", func(t *testing.T) {
		if sent, got := k.kernelPing(t, "-c", "5", "-i", "0.01"); sent != 5 || got != 5 {
			t.Errorf("kernel ping over IPv4: %d sent, %d received", sent, got)
		}
		c, err := k.kernelDial(t, netip.AddrPortFrom(stackAddr.Addr(), 7))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := exchange(c, 1<<20, 3); err != nil {
			t.Fatal(err)
		}
	})
}

// curl serves HTTP on [::]:80 of k's stack and fetches it with the
// kernel's curl at a.
func curl(t *testing.T, k *kernelNet, a netip.Addr) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv(netns.RequireEnv) == "1" {
			t.Fatal("curl not installed")
		}
		t.Skip("curl not installed")
	}
	l, err := k.s.Listen("tcp6", "[::]:80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello over IPv6 from "+r.RemoteAddr+"\n")
	})}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	defer func() { srv.Close(); <-done }()
	out, err := k.ns.Run("curl", "-g", "-6", "-sS", "--max-time", "10", "http://["+a.String()+"]/")
	if err != nil || !strings.Contains(string(out), "hello over IPv6") {
		t.Fatalf("curl: %v\n%s", err, out)
	}
}

// TestKernelIPv6SLAAC runs radvd in the namespace, advertising a prefix;
// ustack, with Options.SLAAC, forms an address in it and serves on it.
func TestKernelIPv6SLAAC(t *testing.T) {
	leakcheck.Check(t)
	bin, err := exec.LookPath("radvd")
	if err != nil {
		bin, err = exec.LookPath("/usr/sbin/radvd")
	}
	if err != nil {
		if os.Getenv(netns.RequireEnv) == "1" {
			t.Fatal("radvd not installed")
		}
		t.Skip("radvd not installed")
	}
	k := newKernelNetWith(t, Options{SLAAC: true})
	// radvd refuses to advertise unless the namespace forwards IPv6.
	if _, err := k.ns.Run("sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"); err != nil {
		t.Fatal(err)
	}
	// The router's own address in the prefix it advertises.
	if _, err := k.ns.Run("ip", "-6", "addr", "add", "fd00:77::1/64", "dev", "ustap0", "nodad"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "radvd.conf")
	if err := os.WriteFile(conf, []byte(`interface ustap0 {
	AdvSendAdvert on;
	MinRtrAdvInterval 3;
	MaxRtrAdvInterval 4;
	AdvLinkMTU 1400;
	prefix fd00:77::/64 { AdvOnLink on; AdvAutonomous on; };
};
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", k.ns.Name(), bin, "-n", "-m", "stderr", "-C", conf, "-p", filepath.Join(dir, "radvd.pid"))
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill() // ip netns exec execs radvd: this is radvd's PID
		cmd.Wait()
		if t.Failed() {
			t.Logf("radvd's log:\n%s", log.String())
		}
	})
	var slaac netip.Addr
	waitWithin(t, 20*time.Second, "a SLAAC address from radvd's prefix", func() bool {
		for _, p := range k.s.Addresses(1) {
			if netip.MustParsePrefix("fd00:77::/64").Contains(p.Addr()) {
				slaac = p.Addr()
				return true
			}
		}
		return false
	})
	st := k.s.Stats().NDP
	if st.RouterAdvertisementsIn == 0 || st.AddressesAutoconfigured != 1 {
		t.Errorf("NDP counters %+v", st)
	}
	var router bool
	for _, r := range k.s.Routes() {
		if r.Destination.Bits() == 0 && r.Destination.Addr().Is6() && r.Gateway.IsLinkLocalUnicast() {
			router = true
		}
	}
	if !router {
		t.Errorf("no IPv6 default route via the advertising router: %v", k.s.Routes())
	}
	if m := k.s.nicByID(1).mtuFor(slaac); m != 1400 {
		t.Errorf("link MTU %d after an RA with MTU 1400", m)
	}
	if sent, got := k.ping6(t, slaac.String(), "-c", "3", "-i", "0.05"); sent != 3 || got != 3 {
		t.Errorf("ping -6 %v: %d sent, %d received", slaac, sent, got)
	}
	curl(t, k, slaac)
}
