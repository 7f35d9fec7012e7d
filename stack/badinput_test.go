package stack

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
)

// TestZeroStack: every method of a Stack not made with New (a zero
// Stack{} or a nil *Stack) reports ErrNotInitialized or returns nothing,
// and none panics.
func TestZeroStack(t *testing.T) {
	ea, _ := link.NewPipe(link.PipeOptions{})
	defer ea.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for name, s := range map[string]*Stack{"zero": {}, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			is := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, ErrNotInitialized) {
					t.Errorf("%s: %v, want ErrNotInitialized", what, err)
				}
			}
			_, err := s.AddNIC(ea, addrA)
			is("AddNIC", err)
			is("AddRoute", s.AddRoute(ip.Route{Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.1.0.254")}))
			_, err = s.ListenTCP(netip.AddrPortFrom(netip.IPv4Unspecified(), 80))
			is("ListenTCP", err)
			var op *net.OpError
			if !errors.As(err, &op) || op.Op != "listen" {
				t.Errorf("ListenTCP: %T %v, want a *net.OpError", err, err)
			}
			_, err = s.DialTCP(ctx, netip.AddrPortFrom(addrB.Addr(), 80))
			is("DialTCP", err)
			_, err = s.Ping(ctx, addrB.Addr(), 8)
			is("Ping", err)
			_, err = s.ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), 53))
			is("ListenUDP", err)
			_, err = s.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(addrB.Addr(), 53))
			is("DialUDP", err)
			is("Close", s.Close())
			if st := s.Stats(); st != (Stats{}) {
				t.Errorf("Stats() = %+v", st)
			}
			if s.Routes() != nil || s.Neighbors() != nil || s.Connections() != nil {
				t.Error("Routes, Neighbors or Connections not empty")
			}
			if _, ok := s.PathMTU(addrB.Addr()); ok {
				t.Error("PathMTU found an MTU")
			}
			if s.Clock() == nil {
				t.Error("Clock() is nil")
			}
		})
	}
}

// TestInvalidOptions: NewStack names the field out of range; New returns
// a Stack that started nothing and fails every call with the same error.
func TestInvalidOptions(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		opts  Options
		field string
	}{
		{Options{TCP: &tcp.Config{MinRTO: -time.Second}}, "MinRTO"},
		{Options{TCP: &tcp.Config{SendBufferSize: -1}}, "SendBufferSize"},
		{Options{TCP: &tcp.Config{MinRTO: time.Minute, MaxRTO: time.Second}}, "MinRTO"},
		{Options{TCP: &tcp.Config{CongestionControl: "vegas"}}, "CongestionControl"},
		{Options{TCP: &tcp.Config{DelayedAckTimeout: time.Second}}, "DelayedAckTimeout"},
		{Options{ICMPErrorRate: -1}, "ICMPErrorRate"},
		{Options{ICMPEchoBurst: -1}, "ICMPEchoBurst"},
	} {
		s, err := NewStack(tc.opts)
		if err == nil || s != nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("NewStack(%s out of range) = %v, %v; want an error naming it", tc.field, s, err)
			continue
		}
		s = New(tc.opts)
		ea, _ := link.NewPipe(link.PipeOptions{})
		if _, err2 := s.AddNIC(ea, addrA); err2 == nil || err2.Error() != err.Error() {
			t.Errorf("New(%s out of range).AddNIC = %v, want %v", tc.field, err2, err)
		}
		if _, err2 := s.ListenTCP(netip.AddrPortFrom(addrA.Addr(), 80)); err2 == nil || !strings.Contains(err2.Error(), tc.field) {
			t.Errorf("New(%s out of range).ListenTCP = %v", tc.field, err2)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		ea.Close()
	}
	if s, err := NewStack(Options{}); err != nil {
		t.Fatalf("NewStack(Options{}): %v", err)
	} else {
		s.Close()
	}
}

// TestTCPConfigOnlyBuffers: a tcp.Config that sets only the buffer sizes
// takes the defaults for the rest: a dial completes and data flows (it
// used to time out at once, with a zero RTO and zero retries).
func TestTCPConfigOnlyBuffers(t *testing.T) {
	leakcheck.Check(t)
	cfg := &tcp.Config{SendBufferSize: 64 << 10, ReceiveBufferSize: 64 << 10}
	a, b := pair(t, Options{TCP: cfg}, nil)
	l, err := b.ListenTCP(netip.AddrPortFrom(addrB.Addr(), 7))
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(l)
	defer func() { l.Close(); wait() }()
	c := dial(t, a, netip.AddrPortFrom(addrB.Addr(), 7))
	defer c.Close()
	msg := []byte("defaults fill the rest")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
		t.Fatalf("echo %q, %v", got, err)
	}
	if info := c.Info(); info.RTO < tcp.DefaultConfig().MinRTO {
		t.Errorf("RTO %v below the default minimum", info.RTO)
	}
}

// TestAddNICRejects: a nil endpoint, addresses no host may have, a
// duplicate address and overlapping subnets are errors naming the
// problem; nothing is attached.
func TestAddNICRejects(t *testing.T) {
	leakcheck.Check(t)
	s := New(Options{})
	defer s.Close()
	if _, err := s.AddNIC(nil, addrA); !errors.Is(err, ErrNilEndpoint) {
		t.Errorf("AddNIC(nil) = %v, want ErrNilEndpoint", err)
	}
	var tap *link.TAP // OpenTAP failed and the error was ignored
	if _, err := s.AddNIC(tap, addrA); !errors.Is(err, ErrNilEndpoint) {
		t.Errorf("AddNIC((*link.TAP)(nil)) = %v, want ErrNilEndpoint", err)
	}
	tiny, tinyPeer := link.NewPipe(link.PipeOptions{MTU: 40})
	if _, err := s.AddNIC(tiny, addrA); err == nil || !strings.Contains(err.Error(), "MTU 40") {
		t.Errorf("AddNIC(MTU 40) = %v, want an error naming the MTU", err)
	}
	tiny.Close()
	tinyPeer.Close()
	ea, eb := link.NewPipe(link.PipeOptions{})
	defer eb.Close()
	if _, err := s.AddNIC(ea, addrA); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ addr, why string }{
		{"0.0.0.0/0", "unspecified"},
		{"0.0.0.0/24", "unspecified"},
		{"10.2.0.1/0", "/0"},
		{"0.1.2.3/8", "this network"},
		{"127.0.0.2/8", "loopback"},
		{"224.0.0.9/24", "multicast"},
		{"255.255.255.255/32", "broadcast"},
		{"240.0.0.1/8", "reserved"},
		{"10.2.0.255/24", "broadcast"},
		{"10.2.0.0/24", "broadcast"},
		{"10.1.0.1/32", "has this address"},
		{"10.1.0.9/24", "overlaps"},
		{"10.0.0.1/8", "overlaps"},
		{"10.1.0.130/25", "overlaps"},
	} {
		ec, ed := link.NewPipe(link.PipeOptions{})
		_, err := s.AddNIC(ec, netip.MustParsePrefix(tc.addr))
		if !errors.Is(err, ErrInvalidAddress) || !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), tc.addr) {
			t.Errorf("AddNIC(%s) = %v; want ErrInvalidAddress saying %q", tc.addr, err, tc.why)
		}
		ec.Close()
		ed.Close()
	}
	// /31 (RFC 3021) and a disjoint subnet are fine.
	for _, p := range []string{"10.3.0.0/31", "10.4.0.1/24"} {
		ec, ed := link.NewPipe(link.PipeOptions{})
		defer ed.Close()
		if _, err := s.AddNIC(ec, netip.MustParsePrefix(p)); err != nil {
			t.Errorf("AddNIC(%s): %v", p, err)
		}
	}
	if n := len(s.Routes()); n != 3 {
		t.Errorf("%d routes, want 3 (one per NIC): %v", n, s.Routes())
	}
}

// TestListenBacklogArgument: a negative backlog is EINVAL naming it;
// zero means DefaultBacklog.
func TestListenBacklogArgument(t *testing.T) {
	leakcheck.Check(t)
	_, b := pair(t, Options{}, nil)
	_, err := b.ListenTCPBacklog(netip.AddrPortFrom(addrB.Addr(), 7), -1)
	var op *net.OpError
	if !errors.As(err, &op) || !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "backlog -1") {
		t.Fatalf("ListenTCPBacklog(-1) = %v, want a *net.OpError with EINVAL naming the backlog", err)
	}
	l, err := b.ListenTCPBacklog(netip.AddrPortFrom(addrB.Addr(), 7), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.mu.Lock()
	got := l.l.Backlog()
	l.mu.Unlock()
	if got != DefaultBacklog {
		t.Errorf("backlog 0 gave %d, want DefaultBacklog %d", got, DefaultBacklog)
	}
}

// TestDialFromForeignAddress: DialTCPFrom with a local address the stack
// does not own fails at once with EADDRNOTAVAIL, as connect(2) after a
// bind(2) to it would, and sends no SYN with that spoofed source.
func TestDialFromForeignAddress(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	l, err := b.ListenTCP(netip.AddrPortFrom(addrB.Addr(), 7))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, from := range []string{"10.1.0.99:0", "192.0.2.1:4000"} {
		_, err := a.DialTCPFrom(ctx, netip.MustParseAddrPort(from), netip.AddrPortFrom(addrB.Addr(), 7))
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" || !errors.Is(err, syscall.EADDRNOTAVAIL) {
			t.Errorf("DialTCPFrom(%s) = %v, want a dial *net.OpError with EADDRNOTAVAIL", from, err)
		}
	}
	if st := a.Stats().TCP; st.SegmentsOut != 0 || st.ActiveOpens != 0 {
		t.Errorf("%d segments sent, %d active opens; want none", st.SegmentsOut, st.ActiveOpens)
	}
	// TCP is unicast: broadcast, multicast and unspecified destinations
	// are ENETUNREACH at once.
	if err := a.AddRoute(ip.Route{Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: addrB.Addr()}); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{"10.1.0.255:7", "10.1.0.0:7", "255.255.255.255:7", "224.0.0.1:7", "0.0.0.0:7"} {
		_, err := a.DialTCP(ctx, netip.MustParseAddrPort(to))
		if !errors.Is(err, syscall.ENETUNREACH) {
			t.Errorf("DialTCP(%s) = %v, want ENETUNREACH", to, err)
		}
	}
	if st := a.Stats().TCP; st.SegmentsOut != 0 || st.ActiveOpens != 0 {
		t.Errorf("%d segments sent, %d active opens; want none", st.SegmentsOut, st.ActiveOpens)
	}
	// The stack's own address still works.
	c, err := a.DialTCPFrom(ctx, netip.AddrPortFrom(addrA.Addr(), 0), netip.AddrPortFrom(addrB.Addr(), 7))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestZeroConnAndListener: the methods of a zero or nil TCPConn and
// TCPListener return syscall.EINVAL (or zeros), as package net's do, and
// never panic.
func TestZeroConnAndListener(t *testing.T) {
	for name, c := range map[string]*TCPConn{"zero": {}, "nil": nil} {
		einval := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, syscall.EINVAL) {
				t.Errorf("%s TCPConn.%s = %v, want EINVAL", name, what, err)
			}
		}
		_, err := c.Read(make([]byte, 1))
		einval("Read", err)
		_, err = c.Write([]byte("x"))
		einval("Write", err)
		einval("CloseWrite", c.CloseWrite())
		einval("CloseRead", c.CloseRead())
		einval("SetDeadline", c.SetDeadline(time.Now()))
		einval("SetReadDeadline", c.SetReadDeadline(time.Now()))
		einval("SetWriteDeadline", c.SetWriteDeadline(time.Now()))
		einval("SetNoDelay", c.SetNoDelay(true))
		einval("SetCongestionControl", c.SetCongestionControl("reno"))
		einval("SetReadBuffer", c.SetReadBuffer(1000))
		einval("SetWriteBuffer", c.SetWriteBuffer(1000))
		einval("SetLinger", c.SetLinger(0))
		einval("SetKeepAlive", c.SetKeepAlive(true))
		einval("SetKeepAlivePeriod", c.SetKeepAlivePeriod(time.Second))
		einval("Close", c.Close())
		if c.LocalAddr() != nil || c.RemoteAddr() != nil || c.Info() != (TCPInfo{}) {
			t.Errorf("%s TCPConn: addresses or Info not empty", name)
		}
	}
	for name, l := range map[string]*TCPListener{"zero": {}, "nil": nil} {
		einval := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, syscall.EINVAL) {
				t.Errorf("%s TCPListener.%s = %v, want EINVAL", name, what, err)
			}
		}
		_, err := l.Accept()
		einval("Accept", err)
		einval("SetDeadline", l.SetDeadline(time.Now()))
		einval("SetSYNCookies", l.SetSYNCookies(tcp.SYNCookiesAlways))
		einval("Close", l.Close())
		if syn, acc := l.Pending(); syn != 0 || acc != 0 || l.Stats() != (tcp.ListenerStats{}) || l.Addr() != nil {
			t.Errorf("%s TCPListener: Pending, Stats or Addr not empty", name)
		}
	}
}

// TestKeepAlivePeriodArgument: as in package net, a negative period
// leaves the period as it was (here a short one, whose probes go on) and
// returns nil.
func TestKeepAlivePeriodArgument(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	c, _ := connectedPair(t, a, b)
	if err := c.SetKeepAlive(true); err != nil {
		t.Fatal(err)
	}
	if err := c.SetKeepAlivePeriod(20 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := c.SetKeepAlivePeriod(-1); err != nil {
		t.Fatalf("SetKeepAlivePeriod(-1) = %v, want nil as package net", err)
	}
	before := a.Stats().TCP.KeepAliveProbes
	waitFor(t, "keepalive probes at the period set before -1", func() bool {
		return a.Stats().TCP.KeepAliveProbes >= before+2
	})
}

// TestPingArguments: a size out of range or a destination that is not
// IPv4 is an error naming it, before anything is sent.
func TestPingArguments(t *testing.T) {
	leakcheck.Check(t)
	a, _ := pair(t, Options{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		dst  netip.Addr
		size int
		want string
	}{
		{addrB.Addr(), -1, "size -1"},
		{addrB.Addr(), 70000, "size 70000"},
		{netip.Addr{}, 8, "invalid IP"},
		{netip.MustParseAddr("2001:db8::1"), 8, "2001:db8::1"},
	} {
		if _, err := a.Ping(ctx, tc.dst, tc.size); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Ping(%v, %d) = %v, want an error naming %q", tc.dst, tc.size, err, tc.want)
		}
	}
	if st := a.Stats().ICMP; st.EchoRequestsOut != 0 {
		t.Errorf("%d echo requests sent", st.EchoRequestsOut)
	}
}
