package link_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/stack"
)

// TestTAPOffloadsRefused: a device whose kernel refused the offloads
// (RefuseKernelOffloads, as an older kernel or ethtool -K off leaves it)
// reports them off and hands over plain frames only, and a stack on it
// still echoes 4 MiB to a kernel client intact, its own super-segments
// (which the kernel takes whatever TUNSETOFFLOAD said) included.
func TestTAPOffloadsRefused(t *testing.T) {
	leakcheck.Check(t)
	tap, ns, _ := openTAP(t, "ustap0", "10.99.0.1/24")
	if err := link.RefuseKernelOffloads(tap); err != nil {
		t.Fatal(err)
	}
	if o := tap.Offloads(); o.GRO || o.RxChecksum || !o.TSO4 {
		t.Fatalf("offloads after refusal: %+v", o)
	}
	s := stack.New(stack.Options{})
	t.Cleanup(func() { s.Close() })
	if _, err := s.AddNIC(tap, netip.MustParsePrefix(ourIP.String()+"/24")); err != nil {
		t.Fatal(err)
	}
	l, err := s.ListenTCP(netip.AddrPortFrom(ourIP, 7))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	t.Cleanup(func() { l.Close(); <-done })
	var c net.Conn
	if err := ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp4", netip.AddrPortFrom(ourIP, 7).String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	msg := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{7}).Read(msg)
	go func() {
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echoed %d of %d bytes (%v), equal %v", len(got), len(msg), err, bytes.Equal(got, msg))
	}
	st := s.Stats().Link
	if st.SuperSegmentsIn != 0 || st.DropBadOffload != 0 || tap.Drops() != 0 {
		t.Errorf("super-segments in %d, bad offload %d, drops %d: want plain frames only", st.SuperSegmentsIn, st.DropBadOffload, tap.Drops())
	}
	if st.SuperSegmentsOut == 0 {
		t.Error("no super-segment left ustack")
	}
}
