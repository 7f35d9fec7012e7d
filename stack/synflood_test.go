package stack

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
)

// spoofedSYN returns an Ethernet frame carrying a SYN from src to dst,
// from the MAC from to the MAC to.
func spoofedSYN(from, to link.MAC, src, dst netip.AddrPort, isn uint32) []byte {
	f := make([]byte, link.EthernetHeaderLen+ipv4.HeaderLen+tcp.HeaderLen+4)
	link.PutEthernetHeader(f, to, from, link.EtherTypeIPv4)
	ip := f[link.EthernetHeaderLen:]
	ipv4.PutHeader(ip, &ipv4.Fields{TotalLength: uint16(len(ip)), ID: uint16(isn), TTL: 64, Protocol: ipv4.ProtocolTCP,
		Source: src.Addr(), Destination: dst.Addr()})
	seg := ip[ipv4.HeaderLen:]
	h := tcp.Header{SrcPort: src.Port(), DstPort: dst.Port(), Seq: tcp.Value(isn), Flags: tcp.FlagSYN, Window: 65535,
		Options: &tcp.Options{MSS: 1460, WindowScale: -1}}
	h.Encode(seg)
	tcp.SetChecksum(seg, src.Addr(), dst.Addr())
	return f
}

// A spoofed SYN flood from 198.18.0.0/16 does not keep legitimate dials
// out. Routed: the server has a route for the prefix, into the client's
// stack, which drops the SYN-ACKs (it does not forward); the flood keeps
// the SYN queue full, yet every legitimate dial meanwhile connects and
// echoes through SYN cookies, and the half-open entries never exceed the
// backlog. Unroutable: no route leads back to the sources, so the server
// drops every spoofed SYN before keeping anything (DropSYNNoRoute), and
// the dials connect as on an idle server.
func TestSYNFloodLegitimateDialsSucceed(t *testing.T) {
	t.Run("routed", func(t *testing.T) { testSYNFlood(t, true) })
	t.Run("unroutable", func(t *testing.T) { testSYNFlood(t, false) })
}

func testSYNFlood(t *testing.T, routed bool) {
	leakcheck.Check(t)
	const (
		backlog = 64
		flood   = 5000
		dials   = 20
	)
	ea, eb := link.NewPipe(link.PipeOptions{QueueLen: 4096})
	a, b := New(Options{}), New(Options{})
	defer func() { a.Close(); b.Close() }()
	if _, err := a.AddNIC(ea, addrA); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddNIC(eb, addrB); err != nil {
		t.Fatal(err)
	}
	floodPrefix := netip.MustParsePrefix("198.18.0.0/16")
	if routed {
		if err := b.AddRoute(ip.Route{Destination: floodPrefix, Gateway: addrA.Addr()}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := b.ListenTCPBacklog(netip.AddrPortFrom(addrB.Addr(), 7), backlog)
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(l)
	defer func() { l.Close(); wait() }()

	server := netip.AddrPortFrom(addrB.Addr(), 7)
	sent := 0
	maxHalfOpen := 0
	// burst writes n spoofed SYNs into the wire on a's side, then waits
	// until b has taken all but a few, so that the pipe never drops a
	// legitimate frame.
	burst := func(n int) error {
		for i := 0; i < n; i++ {
			src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(sent >> 8), byte(sent)}), uint16(1024+sent%60000))
			if err := ea.WriteFrame(spoofedSYN(ea.HardwareAddr(), eb.HardwareAddr(), src, server, uint32(sent)*7919)); err != nil {
				return err
			}
			sent++
		}
		deadline := time.Now().Add(10 * time.Second)
		taken := func() uint64 { st := b.Stats().TCP; return st.SYNsReceived + st.DropSYNNoRoute }
		for taken()+64 < uint64(sent) {
			if time.Now().After(deadline) {
				return fmt.Errorf("the server took %d of %d SYNs", taken(), sent)
			}
			time.Sleep(time.Millisecond) // polling the counter: there is no event to wait on
		}
		if syn, _ := l.Pending(); syn > maxHalfOpen {
			maxHalfOpen = syn
		}
		return nil
	}
	// Fill the SYN queue first, if the flood can.
	if err := burst(2 * backlog); err != nil {
		t.Fatal(err)
	}
	if routed {
		waitFor(t, "a full SYN queue", func() bool { syn, _ := l.Pending(); return syn == backlog })
	}

	floodDone := make(chan error, 1)
	go func() {
		for sent < flood {
			if err := burst(100); err != nil {
				floodDone <- err
				return
			}
		}
		floodDone <- nil
	}()
	var wg sync.WaitGroup
	errs := make(chan error, dials)
	for i := 0; i < dials; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := a.DialTCP(ctx, server)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			msg := fmt.Sprintf("dial %d through the flood", i)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write([]byte(msg)); err != nil {
				errs <- err
				return
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
				errs <- fmt.Errorf("echo %q, %v", got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := <-floodDone; err != nil {
		t.Fatal(err)
	}
	// Every spoofed SYN the pipe delivered (it drops what its queue cannot
	// take) is counted once the server has read it, and the dials' SYNs
	// on top.
	arrived := uint64(sent) - ea.Stats().Drops
	waitFor(t, "the server to read every SYN that arrived", func() bool {
		st := b.Stats().TCP
		return st.SYNsReceived+st.DropSYNNoRoute >= arrived+dials
	})
	st := b.Stats().TCP
	ls := l.Stats()
	t.Logf("%d spoofed SYNs; server: %d SYNs, %d dropped for no route back, %d cookies sent, %d accepted, %d half-open at most",
		sent, st.SYNsReceived, st.DropSYNNoRoute, st.SYNCookiesSent, st.SYNCookiesAccepted, maxHalfOpen)
	if maxHalfOpen > backlog || ls.HalfOpen > backlog || st.HalfOpen > backlog {
		t.Errorf("half-open entries %d (now %d) above the backlog %d", maxHalfOpen, ls.HalfOpen, backlog)
	}
	if !routed {
		if st.DropSYNNoRoute != arrived || st.SYNsReceived != dials || st.SYNCookiesSent != 0 || maxHalfOpen > dials {
			t.Errorf("unroutable flood: %d of %d SYNs that arrived dropped for no route, %d reached the listener (want the %d dials), %d cookies, %d half-open at most",
				st.DropSYNNoRoute, arrived, st.SYNsReceived, dials, st.SYNCookiesSent, maxHalfOpen)
		}
		return
	}
	if st.SYNCookiesSent < flood/2 || st.SYNCookiesAccepted < dials || ls.SYNCookiesAccepted != st.SYNCookiesAccepted {
		t.Errorf("cookies sent %d, accepted %d (listener %d)", st.SYNCookiesSent, st.SYNCookiesAccepted, ls.SYNCookiesAccepted)
	}
	if st.SYNsReceived < arrived {
		t.Errorf("SYNsReceived %d, want the %d that arrived", st.SYNsReceived, arrived)
	}
	// Close forgets the half-open entries.
	l.Close()
	if got := b.Stats().TCP.HalfOpen; got != 0 {
		t.Errorf("%d half-open entries after Close", got)
	}
}

// Every counter of tcp.Stats has its mirror in TCPStats, so that Stats
// (and `ustack serve`) shows it; DroppedNoConnection is the one exception,
// since the stack counts its own DropNoConnection.
func TestTCPStatsMirrorsCore(t *testing.T) {
	var src tcp.Stats
	v := reflect.ValueOf(&src).Elem()
	dst := reflect.TypeOf(TCPStats{})
	for i := 0; i < v.NumField(); i++ {
		name := v.Type().Field(i).Name
		if _, ok := dst.FieldByName(name); !ok && name != "DroppedNoConnection" {
			t.Errorf("TCPStats lacks %s", name)
		}
		switch a := v.Field(i).Addr().Interface().(type) {
		case *atomic.Uint64:
			a.Store(uint64(i + 1))
		case *atomic.Int64:
			a.Store(int64(i + 1))
		}
	}
	var got TCPStats
	copyTCPStats(&got, &src)
	g := reflect.ValueOf(got)
	for i := 0; i < v.NumField(); i++ {
		name := v.Type().Field(i).Name
		if f := g.FieldByName(name); f.IsValid() && f.Uint() != uint64(i+1) {
			t.Errorf("%s copied as %d, want %d", name, f.Uint(), i+1)
		}
	}
}
