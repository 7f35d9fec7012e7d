package stack

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/filter"
)

// statefulRules is the notes' stateful firewall: default deny, replies of
// known connections let in, the /24 on port 80, port 81 refused with a
// reset.
const statefulRules = `*filter
:INPUT DROP [0:0]
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p tcp -s 10.1.0.0/24 -m tcp --dport 80 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 81 -j REJECT --reject-with tcp-reset
COMMIT
`

// statelessRules is the same service behind a stateless set (an AWS
// network ACL): no conntrack, so the replies to connections the stack
// opens itself are dropped.
const statelessRules = `*filter
:INPUT DROP [0:0]
-A INPUT -p tcp -s 10.1.0.0/24 -m tcp --dport 80 -j ACCEPT
COMMIT
`

func loadFilter(t *testing.T, rules string) *filter.Filter {
	t.Helper()
	f := filter.New(filter.Config{})
	if err := f.Load(strings.NewReader(rules)); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFilterInput: a stack behind SetFilter accepts port 80 from the
// prefix, refuses port 81 with a reset, drops the rest silently (another
// port, a source outside the prefix), and the counters add up; the same
// service behind stateless rules cannot open connections of its own,
// behind stateful ones it can.
func TestFilterInput(t *testing.T) {
	a, b := pair(t, Options{}, nil)
	f := loadFilter(t, statefulRules)
	b.SetFilter(f)
	if b.Filter() != f {
		t.Fatal("Filter does not return what SetFilter set")
	}
	echoPorts(t, b, addrB.Addr(), 80, 81, 82)
	c := dial(t, a, netip.AddrPortFrom(addrB.Addr(), 80))
	if err := exchange(c, 1<<20, 1); err != nil {
		t.Fatalf("port 80 from inside the prefix: %v", err)
	}
	c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.DialTCP(ctx, netip.AddrPortFrom(addrB.Addr(), 81)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("port 81: %v, want connection refused (REJECT tcp-reset)", err)
	}
	short := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 300*time.Millisecond)
	}
	ctx2, cancel2 := short()
	defer cancel2()
	if _, err := a.DialTCP(ctx2, netip.AddrPortFrom(addrB.Addr(), 82)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("port 82: %v, want a timeout (dropped silently)", err)
	}
	outside := netip.MustParsePrefix("10.2.0.1/24")
	if err := a.AddAddress(1, outside); err != nil {
		t.Fatal(err)
	}
	ctx3, cancel3 := short()
	defer cancel3()
	if _, err := a.DialTCPFrom(ctx3, netip.AddrPortFrom(outside.Addr(), 0), netip.AddrPortFrom(addrB.Addr(), 80)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("port 80 from outside the prefix: %v, want a timeout", err)
	}
	st := b.Stats().Filter
	if st.Rejected != 1 || st.Dropped < 2 {
		t.Errorf("filter stats %+v: want 1 rejected and at least 2 dropped SYNs", st)
	}
	list := f.List(filter.TableFilter)
	t.Logf("\n%s", list)
	if !strings.Contains(list, "reject-with tcp-reset") {
		t.Errorf("listing lacks the REJECT rule:\n%s", list)
	}

	// The stack's own connection out to a's port 9000: its replies are
	// ESTABLISHED for the stateful set and dropped by the stateless one.
	la, err := a.ListenTCP(netip.AddrPortFrom(addrA.Addr(), 9000))
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(la)
	t.Cleanup(func() { la.Close(); wait() })
	out := dial(t, b, netip.AddrPortFrom(addrA.Addr(), 9000))
	if err := exchange(out, 64<<10, 2); err != nil {
		t.Fatalf("outbound behind stateful rules: %v", err)
	}
	out.Close()
	b.SetFilter(loadFilter(t, statelessRules))
	ctx4, cancel4 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel4()
	if c, err := b.DialTCP(ctx4, netip.AddrPortFrom(addrA.Addr(), 9000)); err == nil {
		c.Close()
		t.Fatal("outbound behind stateless rules connected: the SYN-ACK should have been dropped")
	}
	b.SetFilter(nil)
	c = dial(t, b, netip.AddrPortFrom(addrA.Addr(), 9000))
	c.Close()
}

// TestFilterNICName: a NIC is named after its device, else nicN.
func TestFilterNICName(t *testing.T) {
	a, _ := pair(t, Options{}, nil)
	if got := a.NICName(1); got != "nic1" {
		t.Errorf("NICName(1) = %q", got)
	}
	if got := a.NICName(9); got != "" {
		t.Errorf("NICName(9) = %q", got)
	}
}

// TestSetNICName: a name set is the name -i matches; bad arguments are
// errors.
func TestSetNICName(t *testing.T) {
	a, b := pair(t, Options{}, nil)
	if err := b.SetNICName(1, "trunk0"); err != nil {
		t.Fatal(err)
	}
	if got := b.NICName(1); got != "trunk0" {
		t.Errorf("NICName = %q", got)
	}
	if err := b.SetNICName(1, ""); err == nil {
		t.Error("an empty name was taken")
	}
	if err := b.SetNICName(7, "x"); !errors.Is(err, ErrUnknownNIC) {
		t.Errorf("unknown NIC: %v", err)
	}
	// Only trunk0 may reach port 80: the rule names the NIC.
	b.SetFilter(loadFilter(t, "*filter\n:INPUT DROP [0:0]\n-A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT\n-A INPUT -i trunk0 -p tcp --dport 80 -j ACCEPT\nCOMMIT\n"))
	l, err := b.ListenTCP(netip.AddrPortFrom(addrB.Addr(), 80))
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(l)
	t.Cleanup(func() { l.Close(); wait() })
	dial(t, a, netip.AddrPortFrom(addrB.Addr(), 80)).Close()
	if err := b.SetNICName(1, "other0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if c, err := a.DialTCP(ctx, netip.AddrPortFrom(addrB.Addr(), 80)); err == nil {
		c.Close()
		t.Error("a rule for -i trunk0 let in a SYN from other0")
	}
}

// echoPorts runs an echo server on each of ports at addr of s until the
// test ends.
func echoPorts(t *testing.T, s *Stack, addr netip.Addr, ports ...uint16) {
	t.Helper()
	for _, port := range ports {
		l, err := s.ListenTCP(netip.AddrPortFrom(addr, port))
		if err != nil {
			t.Fatal(err)
		}
		wait := echoServer(l)
		t.Cleanup(func() { l.Close(); wait() })
	}
}
