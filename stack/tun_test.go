package stack

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/link"
)

// TestKernelOverTUN attaches a stack to a TUN device: bare IPv4 packets,
// no Ethernet and no ARP. The kernel pings ustack and ustack pings back,
// and a kernel TCP client uses ustack's echo service.
func TestKernelOverTUN(t *testing.T) {
	leakcheck.Check(t)
	ns := netns.NewT(t)
	var tun *link.TUN
	if err := ns.Do(func() (err error) { tun, err = link.OpenTUN("ustun0", link.TUNOptions{}); return err }); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{{"ip", "link", "set", "ustun0", "up"}, {"ip", "addr", "add", "10.6.0.1/24", "dev", "ustun0"}} {
		if _, err := ns.Run(c...); err != nil {
			tun.Close()
			t.Fatal(err)
		}
	}
	s := New(Options{})
	defer s.Close()
	if _, err := s.AddNIC(tun, netip.MustParsePrefix("10.6.0.2/24")); err != nil {
		t.Fatal(err)
	}
	k := &kernelNet{ns: ns, s: s}
	out, err := ns.Run("ping", "-q", "-c", "5", "-i", "0.01", "-W", "2", "-s", "3000", "10.6.0.2")
	if err != nil {
		t.Fatalf("kernel ping over TUN: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.Ping(ctx, netip.MustParseAddr("10.6.0.1"), 56); err != nil {
		t.Fatalf("ustack ping over TUN: %v", err)
	}
	l, err := s.ListenTCP(netip.MustParseAddrPort("10.6.0.2:7"))
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(l)
	defer func() { l.Close(); wait() }()
	c, err := k.kernelDial(t, netip.MustParseAddrPort("10.6.0.2:7"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := exchange(c, 4<<20, 9); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.ARP.RequestsOut+st.ARP.GratuitousOut != 0 {
		t.Errorf("ARP on a TUN device: %+v", st.ARP)
	}
}
