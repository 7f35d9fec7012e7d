package stack

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/tcp"
)

// With SYN cookies forced on, the kernel's connections to ustack keep
// MSS, window scale, SACK and timestamps (carried in the cookie and its
// TSval, RFC 4987 §3.6), as ustack's connection and the kernel's `ss -ti`
// show, and carry a few MiB intact.
func TestKernelTCPSYNCookies(t *testing.T) {
	leakcheck.Check(t)
	k := newKernelNet(t)
	l, err := k.s.ListenTCP(netip.AddrPortFrom(netip.IPv4Unspecified(), 7))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetSYNCookies(tcp.SYNCookiesAlways); err != nil {
		t.Fatal(err)
	}
	if err := l.SetSYNCookies(tcp.SYNCookieMode(9)); err == nil || !strings.Contains(err.Error(), "SYNCookieMode(9)") {
		t.Fatalf("a bad mode: %v", err)
	}
	accepted := make(chan *TCPConn, 1)
	go func() {
		c, err := l.AcceptTCP()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	t.Cleanup(func() { l.Close() })

	c, err := k.kernelDial(t, netip.AddrPortFrom(stackAddr.Addr(), 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := <-accepted
	if sc == nil {
		t.Fatal("accept failed")
	}
	done := make(chan error, 1)
	go func() {
		defer sc.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := sc.Read(buf)
			if n > 0 {
				if _, werr := sc.Write(buf[:n]); werr != nil {
					done <- werr
					return
				}
			}
			if err != nil {
				sc.CloseWrite()
				done <- nil
				return
			}
		}
	}()
	info := sc.Info()
	out, err := k.ns.Run("ss", "-tin", "state", "established")
	if err != nil {
		t.Fatal(err)
	}
	ss := string(out)
	t.Logf("ustack: MSS %d, window shifts %d/%d, SACK %v, timestamps %v; kernel: %s",
		info.MSS, info.SendWindowShift, info.ReceiveWindowShift, info.SACK, info.Timestamps, strings.Join(strings.Fields(ss), " "))
	// The TAP's MTU is 1500: the kernel's MSS 1460 is in the cookie's
	// table; 12 octets go to timestamps.
	if info.MSS != 1460-12 || info.SendWindowShift < 1 || info.ReceiveWindowShift < 1 || !info.SACK || !info.Timestamps {
		t.Errorf("ustack's connection lost options: %+v", info)
	}
	// This kernel's ss prints no "ts" or "sack" even for connections
	// that use them (the capture shows both), so the kernel's side is
	// checked by its window scale and by its MSS, which is 1460 less the
	// 12 octets of timestamps.
	for _, want := range []string{"wscale:7,", "mss:1448"} {
		if !strings.Contains(" "+strings.Join(strings.Fields(ss), " ")+" ", want) {
			t.Errorf("kernel's ss lacks %q: %s", want, ss)
		}
	}
	if err := exchange(c, 4<<20, 3); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	if st.SYNCookiesSent == 0 || st.SYNCookiesAccepted != 1 || st.HalfOpen != 0 {
		t.Fatalf("listener stats %+v", st)
	}
}
