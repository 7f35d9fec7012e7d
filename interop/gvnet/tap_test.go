package gvnet

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/internal/netns"
)

// TestTAPPingsKernel builds a gVisor stack on a TAP device in a throw-away
// namespace and pings both ways: ARP resolves in both directions and the
// fdbased endpoint moves Ethernet frames. Close must end the endpoint's
// goroutines and remove the device.
func TestTAPPingsKernel(t *testing.T) {
	leakcheck.Check(t)
	ns := netns.NewT(t)
	kernel := netip.MustParsePrefix("10.77.0.1/24")
	addr := netip.MustParsePrefix("10.77.0.2/24")
	var g *Stack
	if err := ns.Do(func() (err error) {
		g, err = NewTAP(TAPOptions{Name: "gvtap0", Addr: addr})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, c := range [][]string{
		{"ip", "link", "set", "gvtap0", "up"},
		{"ip", "addr", "add", kernel.String(), "dev", "gvtap0"},
	} {
		if _, err := ns.Run(c...); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := ns.Run("ping", "-c", "3", "-i", "0.01", "-W", "2", addr.Addr().String()); err != nil {
		t.Errorf("kernel ping: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := g.Ping(ctx, kernel.Addr(), 56); err != nil {
		t.Errorf("gVisor ping: %v", err)
	}
	g.Close()
	out, err := ns.Run("ip", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "gvtap0") {
		t.Errorf("gvtap0 still exists after Close:\n%s", out)
	}
}
