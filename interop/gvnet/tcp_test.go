package gvnet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/fault"
	ustack "github.com/ustack/ustack/stack"
	utcp "github.com/ustack/ustack/tcp"
)

// tcpNet is a ustack stack at 10.9.0.1 and a gVisor stack at 10.9.0.2
// joined by a Link, optionally dropping frames both ways through ustack's
// link/fault decorator.
type tcpNet struct {
	u    *ustack.Stack
	g    *Stack
	loss *fault.Endpoint
}

func newTCPNet(t *testing.T, drop float64, cfg *utcp.Config) *tcpNet {
	t.Helper()
	g, err := New(Options{Addr: netip.MustParsePrefix("10.9.0.2/24")})
	if err != nil {
		t.Fatal(err)
	}
	var ep link.Endpoint = NewLink(g)
	var loss *fault.Endpoint
	if drop > 0 {
		loss = fault.New(ep, fault.Config{
			Seed: 1,
			Tx:   fault.Impairment{Drop: drop},
			Rx:   fault.Impairment{Drop: drop},
		})
		ep = loss
	}
	u := ustack.New(ustack.Options{TCP: cfg})
	if _, err := u.AddNIC(ep, netip.MustParsePrefix("10.9.0.1/24")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		u.Close()
		g.Close()
	})
	return &tcpNet{u: u, g: g, loss: loss}
}

func (n *tcpNet) report(t *testing.T, start time.Time, bytes int64) {
	t.Helper()
	el := time.Since(start)
	st := n.u.Stats().TCP
	msg := ""
	if n.loss != nil {
		fs := n.loss.Stats()
		msg = fmt.Sprintf(", dropped tx/rx %d/%d", fs.Tx.Dropped, fs.Rx.Dropped)
	}
	t.Logf("%d MiB echoed in %v (%.0f MB/s each way); ustack retransmits %d, fast %d, timeouts %d%s",
		bytes>>20, el.Round(time.Millisecond), float64(bytes)/el.Seconds()/1e6,
		st.Retransmits, st.FastRetransmits, st.Timeouts, msg)
}

// echoBytes is echoed each way by the TCP interop tests: 64 MiB, or 8 MiB
// under -race so that the module's tests stay near a minute.
var echoBytes = func() int64 {
	if raceEnabled {
		return 8 << 20
	}
	return 64 << 20
}()

// lossBytes is echoed each way through the lossy link: recovery, not
// throughput, is under test, and it must stay a few seconds.
const lossBytes = 8 << 20

var lossCases = []struct {
	name string
	drop float64
	size int64
	cfg  func() *utcp.Config
}{
	{"clean", 0, echoBytes, func() *utcp.Config { return nil }},
	{"loss2%", 0.02, lossBytes, func() *utcp.Config { return nil }}, // 2% of frames dropped each way (issue 7)
}

func TestGVisorClientUstackServer(t *testing.T) {
	for _, tc := range lossCases {
		t.Run(tc.name, func(t *testing.T) {
			n := newTCPNet(t, tc.drop, tc.cfg())
			l, err := n.u.ListenTCP(netip.MustParseAddrPort("10.9.0.1:7"))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			echoServer(t, l)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := n.g.Dial(ctx, netip.MustParseAddrPort("10.9.0.1:7"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			echoCheck(t, c, tc.size)
			n.report(t, start, tc.size)
		})
	}
}

func TestUstackClientGVisorServer(t *testing.T) {
	for _, tc := range lossCases {
		t.Run(tc.name, func(t *testing.T) {
			n := newTCPNet(t, tc.drop, tc.cfg())
			l, err := n.g.Listen(7)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			echoServer(t, l)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := n.u.DialTCP(ctx, netip.MustParseAddrPort("10.9.0.2:7"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			var conn net.Conn = c
			echoCheck(t, conn, tc.size)
			n.report(t, start, tc.size)
		})
	}
}

// dropOne drops the nth full-sized frame that ustack reads (a data segment
// from gVisor) and nothing else.
type dropOne struct {
	link.Endpoint
	n       int
	seen    int
	dropped int
}

func (d *dropOne) ReadFrame(b []byte) (int, error) {
	for {
		n, err := d.Endpoint.ReadFrame(b)
		if err != nil || n < 1000 {
			return n, err
		}
		d.seen++
		if d.seen != d.n {
			return n, err
		}
		d.dropped++
	}
}

// TestGVisorFastRetransmitsToUstack drops one data segment of a gVisor →
// ustack transfer, well inside a large window, and expects gVisor to repair
// it by fast retransmit (RFC 5681 §3.2, RFC 6675) rather than wait for its
// retransmission timeout. It runs with ustack's default configuration.
func TestGVisorFastRetransmitsToUstack(t *testing.T) {
	g, err := New(Options{Addr: netip.MustParsePrefix("10.9.0.2/24")})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	d := &dropOne{Endpoint: NewLink(g), n: 300}
	u := ustack.New(ustack.Options{})
	defer u.Close()
	if _, err := u.AddNIC(d, netip.MustParsePrefix("10.9.0.1/24")); err != nil {
		t.Fatal(err)
	}
	l, err := u.ListenTCP(netip.MustParseAddrPort("10.9.0.1:7"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := g.Dial(ctx, netip.MustParseAddrPort("10.9.0.1:7"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	const n = 2 << 20
	go func() {
		c.Write(make([]byte, n))
		c.Close()
	}()
	m, err := io.Copy(io.Discard, sc)
	if err != nil || m != n {
		t.Fatalf("received %d bytes, %v; want %d", m, err, n)
	}
	if d.dropped != 1 {
		t.Fatalf("dropped %d segments, want 1", d.dropped)
	}
	st := g.Netstack().Stats().TCP
	fast, timeouts := st.FastRetransmit.Value(), st.Timeouts.Value()
	t.Logf("gVisor: fast retransmits %d, timeouts %d", fast, timeouts)
	if fast == 0 || timeouts != 0 {
		// ustack advertises SACK-permitted, so it must send SACK blocks
		// (RFC 2018 §4): gVisor counts only ACKs with new SACK information
		// as duplicates once SACK is negotiated (RFC 6675 §2).
		t.Errorf("gVisor repaired a single loss by RTO, not fast retransmit (fast %d, timeouts %d)", fast, timeouts)
	}
}
