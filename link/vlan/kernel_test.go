package vlan_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vlan"
	"github.com/ustack/ustack/stack"
)

var pingStats = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// ping runs the kernel's ping in ns and returns how many of its echo
// requests were answered.
func ping(t *testing.T, ns *netns.NS, dst string, args ...string) (sent, got int) {
	t.Helper()
	out, err := ns.Run(append(append([]string{"ping", "-q", "-W", "1"}, args...), dst)...)
	m := pingStats.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("ping %s: %v\n%s", dst, err, out)
	}
	fmt.Sscan(m[1], &sent)
	fmt.Sscan(m[2], &got)
	return sent, got
}

// echo serves TCP echo on l until it closes.
func echo(l net.Listener, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

// kernelVLANs is the kernel's side of a VLAN trunk in a namespace: a
// device per VLAN and one for untagged frames, and the endpoint ustack
// makes its trunk of.
type kernelVLANs struct {
	trunk     link.Endpoint
	dev       map[uint16]string // the kernel's device of each VLAN
	native    string            // the kernel's device of untagged frames
	viaSwitch bool
}

// newKernelVLANs builds the kernel's side of the trunk in ns: with the
// kernel's 802.1Q support (CONFIG_VLAN_8021Q), its VLAN devices on the
// TAP device ustack reads (ip link add link ustap0 name ustap0.10 type
// vlan id 10); without it, a device per VLAN (TAPs ustap10, ustap20 and
// ustapn) whose frames an 802.1Q switch in the test tags onto a Pipe, the
// trunk, and untags off it (access ports and a trunk port), so that the
// kernel's ping and TCP still talk to ustack through tagged frames.
func newKernelVLANs(t *testing.T, ns *netns.NS) *kernelVLANs {
	t.Helper()
	run := func(cmds ...[]string) {
		t.Helper()
		for _, c := range cmds {
			if out, err := ns.Run(c...); err != nil {
				t.Fatalf("%v: %v\n%s", c, err, out)
			}
		}
	}
	run([]string{"ip", "link", "set", "lo", "up"})
	var tap *link.TAP
	if err := ns.Do(func() (err error) {
		tap, err = link.OpenTAP("ustap0", link.TAPOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	k := &kernelVLANs{trunk: tap, native: "ustap0", dev: map[uint16]string{10: "ustap0.10", 20: "ustap0.20"}}
	run([]string{"ip", "link", "set", "ustap0", "up"})
	out, err := ns.Run("ip", "link", "add", "link", "ustap0", "name", "ustap0.10", "type", "vlan", "id", "10")
	if err != nil {
		if !strings.Contains(string(out), "Unknown device type") {
			tap.Close()
			t.Fatalf("ip link add ... type vlan: %v\n%s", err, out)
		}
		tap.Close()
		t.Logf("this kernel has no 802.1Q VLAN devices (%s): an 802.1Q switch in the test tags the frames of a TAP per VLAN", strings.TrimSpace(string(out)))
		k = &kernelVLANs{native: "ustapn", dev: map[uint16]string{10: "ustap10", 20: "ustap20"}, viaSwitch: true}
		k.trunk = startSwitch(t, ns, map[string]uint16{"ustap10": 10, "ustap20": 20, "ustapn": 0})
	} else {
		run([]string{"ip", "link", "add", "link", "ustap0", "name", "ustap0.20", "type", "vlan", "id", "20"})
	}
	run([]string{"ip", "addr", "add", "10.10.0.1/24", "dev", k.dev[10]},
		[]string{"ip", "addr", "add", "10.20.0.1/24", "dev", k.dev[20]},
		[]string{"ip", "addr", "add", "10.30.0.1/24", "dev", k.native},
		[]string{"ip", "link", "set", k.dev[10], "up"},
		[]string{"ip", "link", "set", k.dev[20], "up"},
		[]string{"ip", "link", "set", k.native, "up"})
	return k
}

// startSwitch opens a TAP device per access port in ns, each carrying the
// untagged frames of one VLAN (0: untagged on the trunk too), and a Pipe
// whose returned end is the trunk port: frames from an access port go
// out on the trunk with its VLAN's tag, tagged frames from the trunk to
// the access port of their VID without it. It stops when the test ends.
func startSwitch(t *testing.T, ns *netns.NS, ports map[string]uint16) link.Endpoint {
	t.Helper()
	sw, trunk := link.NewPipe(link.PipeOptions{})
	access := make(map[uint16]*link.TAP)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		sw.Close()
		for _, tap := range access {
			tap.Close()
		}
		wg.Wait()
	})
	for name, vid := range ports {
		var tap *link.TAP
		if err := ns.Do(func() (err error) {
			tap, err = link.OpenTAP(name, link.TAPOptions{MAC: trunk.HardwareAddr(), NoOffloads: true})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		access[vid] = tap
	}
	for vid, tap := range access {
		wg.Add(1)
		go func() { // access port to trunk: tag
			defer wg.Done()
			b := make([]byte, 1600)
			out := make([]byte, 1600+vlan.TagLen)
			for {
				n, err := tap.ReadFrame(b)
				if err != nil {
					return
				}
				if n < link.EthernetHeaderLen {
					continue
				}
				f := b[:n]
				if vid != 0 {
					copy(out, f[:12])
					vlan.PutHeader(out, link.MAC(f[0:6]), link.MAC(f[6:12]), vlan.Tag{VID: vid}, uint16(f[12])<<8|uint16(f[13]))
					f = out[:copy(out[vlan.HeaderLen:], f[link.EthernetHeaderLen:])+vlan.HeaderLen]
				}
				sw.WriteFrame(f)
			}
		}()
	}
	wg.Add(1)
	go func() { // trunk to access port: untag
		defer wg.Done()
		b := make([]byte, 1600+vlan.TagLen)
		for {
			n, err := sw.ReadFrame(b)
			if err != nil {
				return
			}
			f := b[:n]
			vid := uint16(0)
			if fr, err := vlan.ParseFrame(f); err == nil {
				vid = fr.Tag().VID
				copy(f[vlan.TagLen:], f[:12])
				f = f[vlan.TagLen:]
			}
			if tap := access[vid]; tap != nil {
				tap.WriteFrame(f)
			}
		}
	}()
	return trunk
}

// The kernel's VLAN devices on a TAP trunk (ip link add link ustap0 name
// ustap0.10 type vlan id 10, and 20) reach two ustack sub-NICs on two
// subnets, by ping and TCP echo; a datagram for VLAN 10's subnet sent on
// VLAN 20 is not answered, nor is an untagged one until the trunk has a
// native NIC; the counters show where each frame went.
func TestKernelVLANTrunk(t *testing.T) {
	leakcheck.Check(t)
	ns := netns.NewT(t)
	k := newKernelVLANs(t, ns)
	tr, err := vlan.NewTrunk(k.trunk)
	if err != nil {
		k.trunk.Close()
		t.Fatal(err)
	}
	s := stack.New(stack.Options{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		s.Close()
		tr.Close()
		wg.Wait()
	})
	for _, v := range []struct {
		vid  uint16
		addr string
		cfg  vlan.Config
	}{{10, "10.10.0.2/24", vlan.Config{}}, {20, "10.20.0.2/24", vlan.Config{MTU: k.trunk.MTU()}}} {
		sub, err := tr.Sub(v.vid, v.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddNIC(sub, netip.MustParsePrefix(v.addr)); err != nil {
			t.Fatal(err)
		}
	}
	l, err := s.ListenTCP(netip.AddrPortFrom(netip.IPv4Unspecified(), 7))
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go echo(l, &wg)
	t.Cleanup(func() { l.Close() })

	// Each VLAN answers pings, small and fragmented, and echoes TCP.
	for _, dst := range []string{"10.10.0.2", "10.20.0.2"} {
		if sent, got := ping(t, ns, dst, "-c", "5", "-i", "0.05"); got != sent {
			t.Errorf("ping %s: %d of %d answered", dst, got, sent)
		}
		if sent, got := ping(t, ns, dst, "-c", "2", "-i", "0.05", "-s", "4000"); got != sent {
			t.Errorf("ping -s 4000 %s: %d of %d answered", dst, got, sent)
		}
		data := bytes.Repeat([]byte("vlan trunk "+dst+" "), 20000)
		err := ns.Do(func() error {
			c, err := net.DialTimeout("tcp4", dst+":7", 5*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			errc := make(chan error, 1)
			go func() {
				_, err := c.Write(data)
				if err == nil {
					err = c.(*net.TCPConn).CloseWrite()
				}
				errc <- err
			}()
			got, err := io.ReadAll(c)
			if err != nil {
				return err
			}
			if err := <-errc; err != nil {
				return err
			}
			if !bytes.Equal(got, data) {
				return fmt.Errorf("echoed %d of %d bytes, equal %v", len(got), len(data), bytes.Equal(got, data))
			}
			return nil
		})
		if err != nil {
			t.Errorf("TCP echo to %s: %v", dst, err)
		}
	}
	st := tr.Stats()
	t.Logf("after pings and echoes: %+v", st)
	if st.VLANs[10].FramesIn == 0 || st.VLANs[20].FramesIn == 0 || st.VLANs[10].FramesOut == 0 || st.VLANs[20].FramesOut == 0 {
		t.Errorf("per-VLAN counters: %+v", st.VLANs)
	}

	// Isolation: the kernel sends datagrams for 10.10.0.2 (VLAN 10's
	// subnet) on VLAN 20, to ustack's MAC. The VLAN 20 NIC does not have
	// the address and drops them.
	mac := k.trunk.HardwareAddr().String()
	for _, c := range [][]string{
		{"ip", "neigh", "replace", "10.10.0.2", "lladdr", mac, "dev", k.dev[20], "nud", "permanent"},
		{"ip", "route", "add", "10.10.0.2/32", "dev", k.dev[20]},
	} {
		if out, err := ns.Run(c...); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	before, beforeIP := tr.Stats(), s.Stats()
	if sent, got := ping(t, ns, "10.10.0.2", "-c", "3", "-i", "0.1"); got != 0 || sent != 3 {
		t.Errorf("ping 10.10.0.2 through VLAN 20: %d of %d answered; want none", got, sent)
	}
	after, afterIP := tr.Stats(), s.Stats()
	if d := after.VLANs[20].FramesIn - before.VLANs[20].FramesIn; d < 3 {
		t.Errorf("VLAN 20 got %d frames, want the 3 requests", d)
	}
	// The VLAN 10 NIC may see its own traffic meanwhile (the kernel's
	// neighbour probes, the last echo's closing segments), but no echo
	// request reached ICMP: the VLAN 20 NIC dropped them, not for it.
	if d := afterIP.IPv4.DropNotForUs - beforeIP.IPv4.DropNotForUs; d < 3 {
		t.Errorf("DropNotForUs rose by %d, want >= 3", d)
	}
	if d := afterIP.ICMP.EchoRequestsIn - beforeIP.ICMP.EchoRequestsIn; d != 0 {
		t.Errorf("%d echo requests for 10.10.0.2 sent on VLAN 20 reached ICMP", d)
	}
	if _, err := ns.Run("ip", "route", "del", "10.10.0.2/32", "dev", k.dev[20]); err != nil {
		t.Fatal(err)
	}

	// Untagged frames: dropped (counted) without a native NIC, answered
	// with one.
	if _, err := ns.Run("ip", "neigh", "replace", "10.30.0.2", "lladdr", mac, "dev", k.native, "nud", "permanent"); err != nil {
		t.Fatal(err)
	}
	before = tr.Stats()
	if sent, got := ping(t, ns, "10.30.0.2", "-c", "3", "-i", "0.1"); got != 0 || sent != 3 {
		t.Errorf("untagged ping without a native NIC: %d of %d answered; want none", got, sent)
	}
	if d := tr.Stats().DropUntagged - before.DropUntagged; d < 3 {
		t.Errorf("DropUntagged rose by %d, want >= 3", d)
	}
	nat, err := tr.Native(vlan.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddNIC(nat, netip.MustParsePrefix("10.30.0.2/24")); err != nil {
		t.Fatal(err)
	}
	if sent, got := ping(t, ns, "10.30.0.2", "-c", "3", "-i", "0.05"); got != sent {
		t.Errorf("untagged ping with a native NIC: %d of %d answered", got, sent)
	}
	if c := tr.Stats().Native; c.FramesIn < 3 || c.FramesOut < 3 {
		t.Errorf("native counters %+v", c)
	}
}
