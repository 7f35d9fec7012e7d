package gvnet

import (
	"context"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	ustack "github.com/ustack/ustack/stack"
)

// TestCloseEndsGoroutines checks that closing a Pair, and a ustack stack on
// a Link with its gVisor stack, ends every goroutine they started, after
// connections were opened and left open.
func TestCloseEndsGoroutines(t *testing.T) {
	t.Run("Pair", func(t *testing.T) {
		leakcheck.Check(t)
		p, err := NewPair(PairOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		l, err := p.B.Listen(9)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := p.A.Dial(ctx, netip.AddrPortFrom(p.B.Addr(), 9))
		if err != nil {
			t.Fatal(err)
		}
		sc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		io.ReadFull(sc, make([]byte, 1))
	})
	t.Run("Link", func(t *testing.T) {
		leakcheck.Check(t)
		g, err := New(Options{Addr: netip.MustParsePrefix("10.9.0.2/24")})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		u := ustack.New(ustack.Options{})
		defer u.Close()
		if _, err := u.AddNIC(NewLink(g), netip.MustParsePrefix("10.9.0.1/24")); err != nil {
			t.Fatal(err)
		}
		l, err := g.Listen(9)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := u.DialTCP(ctx, netip.MustParseAddrPort("10.9.0.2:9"))
		if err != nil {
			t.Fatal(err)
		}
		sc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		io.ReadFull(sc, make([]byte, 1))
	})
}
