package stack

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/pcap"
)

// kernelNet is a namespace with a TAP device whose kernel side has
// kernelAddr and whose other side is a ustack stack at stackAddr.
type kernelNet struct {
	ns      *netns.NS
	s       *Stack
	tap     *link.TAP
	capture string
}

var (
	kernelAddr = netip.MustParsePrefix("10.7.0.1/24")
	stackAddr  = netip.MustParsePrefix("10.7.0.2/24")
)

// newKernelNet builds the namespace, TAP and stack, with a capture of every
// frame in the test's temporary directory. Everything is removed when the
// test ends, even if it fails.
func newKernelNet(t *testing.T) *kernelNet {
	t.Helper()
	return newKernelNetWith(t, Options{})
}

// newKernelNetWith is newKernelNet with the stack's options.
func newKernelNetWith(t *testing.T, opts Options) *kernelNet {
	t.Helper()
	ns := netns.NewT(t)
	k := &kernelNet{ns: ns}
	err := ns.Do(func() (err error) {
		k.tap, err = link.OpenTAP("ustap0", link.TAPOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("open TAP in %s: %v", ns.Name(), err)
	}
	for _, c := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "set", "ustap0", "up"},
		{"ip", "addr", "add", kernelAddr.String(), "dev", "ustap0"},
	} {
		if _, err := ns.Run(c...); err != nil {
			k.tap.Close()
			t.Fatal(err)
		}
	}
	k.capture = filepath.Join(t.TempDir(), "ustack.pcap")
	f, err := os.Create(k.capture)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := pcap.New(k.tap, f, pcap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k.s = New(opts)
	t.Cleanup(func() {
		k.s.Close()
		f.Close()
		if t.Failed() {
			// t.TempDir is removed when the test ends: keep the capture.
			if kept, err := keepFile(k.capture, t.Name()); err == nil {
				t.Logf("capture of the failed test: %s (tcpdump -nn -e -r it)", kept)
			}
		}
	})
	if _, err := k.s.AddNIC(ep, stackAddr); err != nil {
		t.Fatal(err)
	}
	return k
}

// keepFile copies path into a new file in the system's temporary
// directory, which outlives the test, and returns its name.
func keepFile(path, testName string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp("", strings.ReplaceAll(testName, "/", "_")+"-*.pcap")
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = f.Write(data)
	return f.Name(), err
}

var pingStats = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// kernelPing runs the kernel's ping in the namespace and returns how many
// echo requests were sent and answered.
func (k *kernelNet) kernelPing(t *testing.T, args ...string) (sent, got int) {
	t.Helper()
	out, err := k.ns.Run(append([]string{"ping", "-q", "-W", "2"}, append(args, stackAddr.Addr().String())...)...)
	m := pingStats.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	fmt.Sscan(m[1], &sent)
	fmt.Sscan(m[2], &got)
	return sent, got
}

func TestKernelPingsUstack(t *testing.T) {
	leakcheck.Check(t)
	k := newKernelNet(t)

	if sent, got := k.kernelPing(t, "-c", "100", "-i", "0.005"); sent != 100 || got != 100 {
		t.Errorf("kernel ping: %d sent, %d received; want 100/100", sent, got)
	}
	out, err := k.ns.Run("ip", "neigh", "show", stackAddr.Addr().String(), "dev", "ustap0")
	if err != nil || !strings.Contains(string(out), "lladdr "+k.tap.HardwareAddr().String()) {
		t.Errorf("kernel's neighbour table lacks ustack's MAC %v: %q %v", k.tap.HardwareAddr(), out, err)
	}
	// 4000 bytes exceed the 1500-byte MTU: the kernel fragments the
	// request and ustack reassembles it, then fragments the reply.
	if sent, got := k.kernelPing(t, "-c", "3", "-i", "0.05", "-s", "4000"); sent != 3 || got != 3 {
		t.Errorf("kernel ping -s 4000: %d sent, %d received", sent, got)
	}
	st := k.s.Stats()
	if st.IPv4.Reassembled < 3 || st.IPv4.FragmentsOut < 9 {
		t.Errorf("reassembled %d, fragments out %d; want >= 3 and >= 9", st.IPv4.Reassembled, st.IPv4.FragmentsOut)
	}

	// And the other way: ustack pings the kernel.
	for _, size := range []int{56, 4000} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := k.s.Ping(ctx, kernelAddr.Addr(), size)
		cancel()
		if err != nil {
			t.Errorf("ustack ping %v -s %d: %v", kernelAddr.Addr(), size, err)
		}
	}

	// The capture must read cleanly with tcpdump.
	k.s.Close()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		if os.Getenv(netns.RequireEnv) == "1" {
			t.Fatal("tcpdump not installed")
		}
		t.Skip("tcpdump not installed; skipping the capture check")
	}
	dump, err := exec.Command("tcpdump", "-nn", "-r", k.capture).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, dump)
	}
	if n := strings.Count(string(dump), "ICMP echo request"); n < 100 {
		t.Errorf("tcpdump shows %d echo requests, want >= 100", n)
	}
	if strings.Contains(string(dump), "truncated") || strings.Contains(string(dump), "bad") {
		t.Errorf("tcpdump complains:\n%s", dump)
	}
}
