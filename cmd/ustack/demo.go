package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/stack"
)

// The demo's private network: the kernel's side of the TAP device and
// ustack's address. Both live only inside the namespace the demo creates.
var (
	demoKernel = netip.MustParsePrefix("10.0.0.1/24")
	demoUstack = netip.MustParsePrefix("10.0.0.2/24")
	// The same over IPv6, in a unique local prefix (RFC 4193).
	demoKernel6 = netip.MustParsePrefix("fd00::1/64")
	demoUstack6 = netip.MustParsePrefix("fd00::2/64")
)

const (
	demoTAP      = "ustap0"
	demoEchoPort = 7
)

// demoStep records one check of the demo.
type demoStep struct {
	name string
	err  error
}

func demo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ustack demo [-pcap FILE] [-offloads=false]\n\n"+
			"Creates a private network namespace with a TAP device, runs ustack on it at %v,\n"+
			"pings it from the kernel (%v), has a kernel TCP client use ustack's echo\n"+
			"service, prints what happened and removes everything.\n"+
			"Needs root and /dev/net/tun.\n\n", demoUstack, demoKernel)
		fs.PrintDefaults()
	}
	pcapFile := fs.String("pcap", "", "write every frame ustack sees to this libpcap file")
	offloads := fs.Bool("offloads", true, "open the TAP device with a virtio_net_hdr, checksum offload and TSO")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := netns.Available(); err != nil {
		return fmt.Errorf("the demo needs root, /dev/net/tun and iproute2: %v", err)
	}
	if _, err := exec.LookPath("ping"); err != nil {
		return errors.New("the demo needs the ping command (apt-get install iputils-ping)")
	}

	ns, err := netns.New("demo")
	if err != nil {
		return err
	}
	defer func() {
		if err := ns.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "removing namespace %s: %v\n", ns.Name(), err)
		} else {
			fmt.Printf("removed namespace %s\n", ns.Name())
		}
	}()
	fmt.Printf("created network namespace %s\n", ns.Name())

	// The TAP device is created inside the namespace; its file descriptor
	// keeps working from this process after the thread leaves it.
	var ep link.Endpoint
	err = ns.Do(func() error {
		tap, err := link.OpenTAP(demoTAP, link.TAPOptions{NoOffloads: !*offloads})
		ep = tap
		return err
	})
	if err != nil {
		return fmt.Errorf("opening TAP %s in %s: %v", demoTAP, ns.Name(), err)
	}
	for _, c := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "set", demoTAP, "up"},
		{"ip", "addr", "add", demoKernel.String(), "dev", demoTAP},
		{"ip", "-6", "addr", "add", demoKernel6.String(), "dev", demoTAP, "nodad"},
	} {
		if out, err := ns.Run(c...); err != nil {
			ep.Close()
			return fmt.Errorf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	cfg := nicConfig{addr: demoUstack, pcapFile: *pcapFile}
	ep, closeCapture, err := wrapCapture(ep, cfg)
	if err != nil {
		return err
	}
	defer closeCapture()
	s := stack.New(stack.Options{})
	defer s.Close()
	id, err := s.AddNIC(ep, demoUstack)
	if err != nil {
		ep.Close()
		return err
	}
	if err := s.AddAddress(id, demoUstack6); err != nil {
		return err
	}
	// Duplicate address detection (RFC 4862 §5.4) takes a second.
	for deadline := time.Now().Add(5 * time.Second); !slices.Contains(s.Addresses(id), demoUstack6) || !s.LinkLocalAddress(id).IsValid(); {
		if time.Now().After(deadline) {
			return fmt.Errorf("ustack's IPv6 address %v was not assigned (duplicate address detection)", demoUstack6)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Printf("ustack is at %v, %v and %v (MAC %v) on TAP %s; the kernel is at %v and %v\n\n",
		demoUstack.Addr(), demoUstack6.Addr(), s.LinkLocalAddress(id), ep.HardwareAddr(), demoTAP, demoKernel.Addr(), demoKernel6.Addr())

	var steps []demoStep
	step := func(name string, err error) {
		steps = append(steps, demoStep{name, err})
		if err != nil {
			fmt.Printf("FAIL %s: %v\n\n", name, err)
		} else {
			fmt.Printf("ok   %s\n\n", name)
		}
	}

	target := demoUstack.Addr().String()
	step("kernel pings ustack (10 x 56 bytes)", demoPing(ns, target, "56", "10"))
	step("kernel's neighbour table holds ustack's MAC", demoNeighbour(ns, target, ep.HardwareAddr()))
	step("kernel pings ustack with 4000 bytes (fragmented both ways)", demoPing(ns, target, "4000", "3"))
	step("ustack pings the kernel (56 and 4000 bytes)", stackPing(s, demoKernel.Addr()))
	target6 := demoUstack6.Addr().String()
	step("kernel pings ustack over IPv6 (5 x 56 bytes; the kernel finds ustack's MAC by NDP)", demoPing(ns, target6, "56", "5"))
	step("kernel's IPv6 neighbour table holds ustack's MAC", demoNeighbour(ns, target6, ep.HardwareAddr()))
	step("kernel pings ustack over IPv6 with 4000 bytes (fragmented both ways)", demoPing(ns, target6, "4000", "3"))
	step("ustack pings the kernel over IPv6 (56 and 4000 bytes)", stackPing(s, demoKernel6.Addr()))

	var sv services
	if err := sv.startEcho(s, demoEchoPort); err != nil {
		return err
	}
	defer sv.stop()
	step(fmt.Sprintf("a kernel TCP client echoes 1 MiB through ustack's echo service on port %d", demoEchoPort),
		demoEcho(ns, s, netip.AddrPortFrom(demoUstack.Addr(), demoEchoPort)))
	step(fmt.Sprintf("a kernel TCP client echoes 1 MiB over IPv6 through the same service on port %d", demoEchoPort),
		demoEcho(ns, s, netip.AddrPortFrom(demoUstack6.Addr(), demoEchoPort)))
	sv.stop()

	if err := s.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "closing the stack: %v\n", err)
	}
	printStats(os.Stdout, s.Stats())
	var failed []string
	for _, st := range steps {
		if st.err != nil {
			failed = append(failed, st.name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d checks failed: %s", len(failed), len(steps), strings.Join(failed, "; "))
	}
	fmt.Printf("all %d checks passed\n", len(steps))
	return nil
}

// stackPing has ustack ping the kernel with a small and a fragmented
// request.
func stackPing(s *stack.Stack, dst netip.Addr) error {
	for _, size := range []int{56, 4000} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		rtt, err := s.Ping(ctx, dst, size)
		cancel()
		if err != nil {
			return fmt.Errorf("%d bytes: %v", size, err)
		}
		fmt.Printf("    %d bytes from %v: time=%v\n", size, dst, rtt)
	}
	return nil
}

// demoEcho connects from the kernel's side of the namespace to ustack's
// echo service, sends 1 MiB, checks that the same bytes come back, and
// prints ustack's connection table while the connection is open.
func demoEcho(ns *netns.NS, s *stack.Stack, addr netip.AddrPort) error {
	var c net.Conn
	err := ns.Do(func() (err error) {
		network := "tcp4"
		if addr.Addr().Is6() {
			network = "tcp6"
		}
		c, err = net.DialTimeout(network, addr.String(), 5*time.Second)
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	want := make([]byte, 1<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		errc <- err
	}()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("reading the echo: %v", err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("writing: %v", err)
	}
	if !bytes.Equal(got, want) {
		return errors.New("the echoed bytes differ")
	}
	fmt.Printf("    %d bytes sent from %v and echoed back by ustack\n", len(got), c.LocalAddr())
	fmt.Println("    ustack's connection table:")
	var tb strings.Builder
	printConnections(&tb, s.Connections())
	fmt.Print(indent(tb.String()))
	return nil
}

var pingLoss = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// demoPing runs the kernel's ping against ustack and requires every reply.
func demoPing(ns *netns.NS, target, size, count string) error {
	out, err := ns.Run("ping", "-c", count, "-i", "0.05", "-W", "2", "-s", size, target)
	fmt.Print(indent(string(out)))
	if err != nil {
		return fmt.Errorf("ping: %v", err)
	}
	m := pingLoss.FindStringSubmatch(string(out))
	if m == nil {
		return errors.New("ping printed no statistics")
	}
	if m[1] != m[2] {
		return fmt.Errorf("%s of %s replies received", m[2], m[1])
	}
	return nil
}

// demoNeighbour checks that the kernel learned ustack's MAC through ARP
// (or NDP, for an IPv6 target).
func demoNeighbour(ns *netns.NS, target string, mac link.MAC) error {
	out, err := ns.Run("ip", "neigh", "show", target, "dev", demoTAP)
	fmt.Print(indent(string(out)))
	if err != nil {
		return err
	}
	if !strings.Contains(string(out), "lladdr "+mac.String()) {
		return fmt.Errorf("no entry with lladdr %v", mac)
	}
	return nil
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}
