package link_test

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
)

// TestTAPOffloadsAndQueues opens a TAP device with two queues and the
// default offloads in a test namespace: the kernel agrees to checksum
// offload and TSO, ip(8) shows the device multi-queue with a vnet header,
// each queue is an endpoint of its own, and the kernel's ARP request for
// us comes out of one of them. With NoOffloads the device has neither.
func TestTAPOffloadsAndQueues(t *testing.T) {
	leakcheck.Check(t)
	ns := netns.NewT(t)
	var tap, plain *link.TAP
	var tun *link.TUN
	if err := ns.Do(func() (err error) {
		if tap, err = link.OpenTAP("ustap0", link.TAPOptions{Queues: 2}); err != nil {
			return err
		}
		if tun, err = link.OpenTUN("ustun0", link.TUNOptions{Queues: 2}); err != nil {
			return err
		}
		plain, err = link.OpenTAP("ustap1", link.TAPOptions{NoOffloads: true})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tap.Close(); tun.Close(); plain.Close() })

	o := tap.Offloads()
	if !o.TxChecksum || !o.RxChecksum || !o.TSO4 || !o.TSO6 || !o.GRO || o.MaxGSOSize != 65535 {
		t.Errorf("TAP offloads %+v: want checksum both ways, TSO4/6 and GRO up to 65535", o)
	}
	if o := tun.Offloads(); !o.TSO4 || !o.GRO {
		t.Errorf("TUN offloads %+v", o)
	}
	if o := plain.Offloads(); o != (link.Offloads{}) {
		t.Errorf("NoOffloads TAP reports %+v", o)
	}
	qs := tap.Queues()
	if len(qs) != 2 || qs[0] != tap || qs[1].HardwareAddr() != tap.HardwareAddr() || qs[1].Name() != "ustap0" {
		t.Fatalf("Queues() = %d queues", len(qs))
	}
	if n := len(tun.Queues()); n != 2 {
		t.Fatalf("TUN has %d queues, want 2", n)
	}
	out, err := ns.Run("ip", "-d", "link", "show", "ustap0")
	if err != nil {
		t.Fatal(err)
	}
	if s := string(out); !strings.Contains(s, "multi_queue") || !strings.Contains(s, "vnet_hdr on") {
		t.Errorf("ip -d link show ustap0: want multi_queue and vnet_hdr:\n%s", s)
	}
	if out, _ := ns.Run("ip", "-d", "link", "show", "ustap1"); !strings.Contains(string(out), "vnet_hdr off") {
		t.Errorf("NoOffloads device has a vnet header:\n%s", out)
	}

	for _, cmd := range [][]string{
		{"ip", "link", "set", "ustap0", "up"},
		{"ip", "addr", "add", "10.99.0.1/24", "dev", "ustap0"},
	} {
		if _, err := ns.Run(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	frames := make(chan []byte, 64)
	for _, q := range qs {
		go func() {
			buf := make([]byte, 1514)
			for {
				n, err := q.ReadFrame(buf)
				if err != nil {
					return // closed at Cleanup
				}
				select {
				case frames <- append([]byte(nil), buf[:n]...):
				default:
				}
			}
		}()
	}
	startPing(t, ns, "-c1", "-W2", ourIP.String())
	await(t, frames, "ARP request on either queue", func(f []byte) bool {
		e, err := link.ParseEthernet(f)
		return err == nil && e.Type() == link.EtherTypeARP && len(e.Payload()) >= 28 &&
			netip.AddrFrom4([4]byte(e.Payload()[24:28])) == ourIP
	})
}

// TestTAPReadFrames reads the kernel's frames in batches: the ARP
// requests and pings of a flood of pings to an address ustack never
// answers come out whole, several at a time when they queue up.
func TestTAPReadFrames(t *testing.T) {
	leakcheck.Check(t)
	tap, ns, _ := openTAP(t, "ustap0", "10.99.0.1/24")
	if _, err := ns.Run("ip", "neigh", "add", ourIP.String(), "lladdr", "02:00:00:00:00:99", "dev", "ustap0"); err != nil {
		t.Fatal(err)
	}
	startPing(t, ns, "-c50", "-i0.002", "-W1", ourIP.String())
	buf := make([]byte, 4*tap.MaxFrameLen())
	lens := make([]int, 64)
	ofl := make([]ip.Offload, 64)
	pings, batches := 0, 0
	for pings < 50 {
		n, err := tap.ReadFrames(buf, lens, ofl)
		if err != nil {
			t.Fatal(err)
		}
		batches++
		off := 0
		for i := range n {
			e, err := link.ParseEthernet(buf[off : off+lens[i]])
			off += lens[i]
			if err == nil && e.Type() == link.EtherTypeIPv4 && len(e.Payload()) >= 20 && e.Payload()[9] == 1 {
				pings++
			}
		}
	}
	t.Logf("50 echo requests in %d batches", batches)
}

// TestTAPReadFramesBatch has the kernel queue ten UDP datagrams on the
// device before ustack reads (a write on a socket hands its datagram to
// the device before it returns): they come out whole and in order, the
// first ReadFrames with more than one of them.
func TestTAPReadFramesBatch(t *testing.T) {
	leakcheck.Check(t)
	tap, ns, _ := openTAP(t, "ustap0", "10.99.0.1/24")
	if _, err := ns.Run("ip", "neigh", "add", ourIP.String(), "lladdr", "02:00:00:00:00:99", "dev", "ustap0"); err != nil {
		t.Fatal(err)
	}
	const count = 10
	err := ns.Do(func() error {
		c, err := net.Dial("udp4", net.JoinHostPort(ourIP.String(), "9"))
		if err != nil {
			return err
		}
		defer c.Close()
		for i := range count {
			if _, err := c.Write([]byte{'u', 's', byte(i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := time.AfterFunc(10*time.Second, func() { tap.Close() }) // unblocks a read that would wait forever
	defer stop.Stop()
	buf := make([]byte, 4*tap.MaxFrameLen())
	lens := make([]int, 64)
	ofl := make([]ip.Offload, 64)
	var got []byte
	first := -1 // datagrams in the first batch that had any
	for len(got) < count {
		n, err := tap.ReadFrames(buf, lens, ofl)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(got), err)
		}
		k := len(got)
		off := 0
		for i := range n {
			// What the kernel sends on its own (router and MLD
			// solicitations) may come in a batch too.
			e, err := link.ParseEthernet(buf[off : off+lens[i]])
			off += lens[i]
			if err != nil || e.Type() != link.EtherTypeIPv4 {
				continue
			}
			p := e.Payload()
			if len(p) == 20+8+3 && p[9] == ip.ProtocolUDP && string(p[28:30]) == "us" {
				got = append(got, p[30])
			}
		}
		if first < 0 && len(got) > k {
			first = len(got) - k
		}
	}
	if want := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}; string(got) != string(want) {
		t.Errorf("datagrams %v, want %v", got, want)
	}
	if first < 2 {
		t.Errorf("the first batch held %d of the %d datagrams queued, want several", first, count)
	}
}

// TestTAPCloseUnblocksReadFrames closes the device under a ReadFrames
// waiting for a frame: it returns net.ErrClosed.
func TestTAPCloseUnblocksReadFrames(t *testing.T) {
	leakcheck.Check(t)
	tap, _, _ := openTAP(t, "ustap1", "")
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 2*tap.MaxFrameLen())
		for {
			if _, err := tap.ReadFrames(buf, make([]int, 8), make([]ip.Offload, 8)); err != nil {
				errc <- err
				return
			}
		}
	}()
	link.WaitBlocked(t, 1, "[IO wait", "link.(*TAP).ReadFrames")
	if err := tap.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadFrames after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock ReadFrames")
	}
}
