package stack

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/ip"
)

// TestKernelRouterFragNeeded puts a kernel router between ustack and a
// kernel server: ustack's namespace (the TAP's kernel side at 10.7.0.1)
// forwards over a veth of MTU 1280 to a second namespace (10.8.0.2) whose
// own MTU is 1500, so that the server offers MSS 1460 and the router must
// answer ustack's full-sized segments, sent with DF, with ICMP
// fragmentation needed (RFC 1191 §4). A 1 MiB upload completes with the
// MSS lowered to fit 1280.
func TestKernelRouterFragNeeded(t *testing.T) {
	leakcheck.Check(t)
	k := newKernelNet(t)
	srv := netns.NewT(t)
	routerSide := netip.MustParsePrefix("10.8.0.1/24")
	serverAddr := netip.MustParsePrefix("10.8.0.2/24")
	for _, c := range []struct {
		ns  *netns.NS
		cmd []string
	}{
		{k.ns, []string{"ip", "link", "add", "vpmtu0", "mtu", "1280", "type", "veth", "peer", "name", "vpmtu1", "netns", srv.Name()}},
		{k.ns, []string{"ip", "addr", "add", routerSide.String(), "dev", "vpmtu0"}},
		{k.ns, []string{"ip", "link", "set", "vpmtu0", "up"}},
		{k.ns, []string{"sysctl", "-q", "-w", "net.ipv4.ip_forward=1"}},
		{srv, []string{"ip", "link", "set", "vpmtu1", "mtu", "1500"}},
		{srv, []string{"ip", "addr", "add", serverAddr.String(), "dev", "vpmtu1"}},
		{srv, []string{"ip", "link", "set", "vpmtu1", "up"}},
		{srv, []string{"ip", "route", "add", "10.7.0.0/24", "via", routerSide.Addr().String()}},
	} {
		if _, err := c.ns.Run(c.cmd...); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.s.AddRoute(ip.Route{Destination: netip.MustParsePrefix("10.8.0.0/24"), Gateway: kernelAddr.Addr()}); err != nil {
		t.Fatal(err)
	}
	var l net.Listener
	if err := srv.Do(func() (err error) {
		l, err = net.Listen("tcp4", netip.AddrPortFrom(serverAddr.Addr(), 9200).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const size = 1 << 20
	type result struct {
		n   int64
		sum [32]byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		h := sha256.New()
		n, err := io.Copy(h, c)
		got <- result{n, [32]byte(h.Sum(nil)), err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := k.s.DialTCP(ctx, netip.AddrPortFrom(serverAddr.Addr(), 9200))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src := func() io.Reader { return io.LimitReader(rand.NewChaCha8([32]byte{7}), size) }
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(c, src()); err != nil {
		t.Fatalf("write: %v (%v)", err, c.Info())
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-got:
	case <-time.After(20 * time.Second):
		t.Fatalf("the server did not finish reading (%v)", c.Info())
	}
	w := sha256.New()
	io.Copy(w, src())
	if r.err != nil || r.n != size || r.sum != [32]byte(w.Sum(nil)) {
		t.Fatalf("server read %d bytes, err %v, sums equal %v", r.n, r.err, r.sum == [32]byte(w.Sum(nil)))
	}
	in := c.Info()
	st := k.s.Stats()
	t.Logf("path MTU %d, MSS %d, retransmits %d; %d frag-needed in, %d accepted, %d ignored",
		in.PathMTU, in.MSS, in.Retransmits, st.ICMP.ErrorsIn, st.TCP.PMTUDecreases, st.TCP.ICMPIgnored)
	if in.PathMTU != 1280 || st.TCP.PMTUDecreases == 0 {
		t.Fatalf("path MTU %d, %d decreases: the router's frag-needed did not lower it", in.PathMTU, st.TCP.PMTUDecreases)
	}
	if mtu, ok := k.s.PathMTU(serverAddr.Addr()); !ok || mtu != 1280 {
		t.Fatalf("remembered path MTU %d %v", mtu, ok)
	}
}
