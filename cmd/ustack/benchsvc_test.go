package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/stack"
)

// benchServer runs discard on port 9 and chargen on port 19 on a stack at
// 10.9.0.2 and returns a client stack at 10.9.0.1 on the same in-memory
// link. Cleanup closes both stacks and waits for the services.
func benchServer(t *testing.T) (client, server *stack.Stack) {
	t.Helper()
	leakcheck.Check(t)
	ea, eb := link.NewPipe(link.PipeOptions{})
	client, server = stack.New(stack.Options{}), stack.New(stack.Options{})
	var sv services
	t.Cleanup(func() {
		client.Close()
		server.Close()
		sv.stop()
	})
	if _, err := client.AddNIC(ea, netip.MustParsePrefix("10.9.0.1/24")); err != nil {
		t.Fatal(err)
	}
	if _, err := server.AddNIC(eb, netip.MustParsePrefix("10.9.0.2/24")); err != nil {
		t.Fatal(err)
	}
	if err := sv.startDiscard(server, 9); err != nil {
		t.Fatal(err)
	}
	if err := sv.startChargen(server, 19); err != nil {
		t.Fatal(err)
	}
	return client, server
}

var benchAddr = netip.MustParseAddr("10.9.0.2")

// checkChargen checks that b continues the chargen stream at offset off.
func checkChargen(t *testing.T, b []byte, off int) {
	t.Helper()
	for i := 0; i < len(b); {
		k := (off + i) % len(chargenPattern)
		n := min(len(b)-i, len(chargenPattern)-k)
		if !bytes.Equal(b[i:i+n], chargenPattern[k:k+n]) {
			t.Fatalf("byte %d differs from the chargen stream", off+i)
		}
		i += n
	}
}

// The chargen pattern is RFC 864's: "On line N, put characters (0+N mod
// 95) through (71+N mod 95). End each line with carriage return and line
// feed", the 95 printing ASCII characters numbered from the space, in
// whole cycles (the stream is the pattern repeated).
func TestChargenPattern(t *testing.T) {
	p := chargenPattern
	if len(p)%(95*74) != 0 || len(p) < 32<<10 || len(p) > 64<<10 {
		t.Fatalf("pattern of %d bytes", len(p))
	}
	if got := string(p[:74]); got != ` !"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`+"`"+`abcdefg`+"\r\n" {
		t.Fatalf("first line %q", got)
	}
	if got := string(p[74 : 74+3]); got != `!"#` {
		t.Fatalf("second line starts %q", got)
	}
	// Line 94 starts with '~' and wraps to ' '.
	if got := string(p[94*74 : 94*74+3]); got != "~ !" {
		t.Fatalf("line 94 starts %q", got)
	}
}

// TCP chargen sends an endless stream (4 MiB read here) until the client
// closes, and throws away what the client sends; UDP chargen answers each
// datagram with 0 to 512 characters of the pattern.
func TestChargen(t *testing.T) {
	client, _ := benchServer(t)
	// UDP first: a datagram behind a queue full of a stream's segments
	// may be dropped, as on any link.
	u, err := client.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(benchAddr, 19))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(20 * time.Second))
	for i := 0; i < 5; i++ {
		if _, err := u.Write([]byte("any")); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 2048)
		n, err := u.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		if n > 512 {
			t.Fatalf("UDP chargen answered %d bytes, more than 512", n)
		}
		checkChargen(t, b[:n], 0)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.DialTCP(ctx, netip.AddrPortFrom(benchAddr, 19))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte("ignored")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4<<20)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	checkChargen(t, buf, 0)
	c.Close()
}

// TCP discard takes everything (8 MiB here) and closes when the client
// does: the client sees EOF only after the server read it all. UDP
// discard takes datagrams without answering: a chargen request sent after
// them is answered, and by then the server has received every one.
func TestDiscard(t *testing.T) {
	client, server := benchServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.DialTCP(ctx, netip.AddrPortFrom(benchAddr, 9))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	src := make([]byte, 8<<20)
	rand.Read(src)
	if n, err := c.Write(src); err != nil || n != len(src) {
		t.Fatalf("wrote %d: %v", n, err)
	}
	c.CloseWrite()
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read %d, %v; want EOF", n, err)
	}
	if info := c.Info(); info.BytesOut != uint64(len(src)) {
		t.Fatalf("%d bytes acknowledged, want %d", info.BytesOut, len(src))
	}

	u, err := client.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(benchAddr, 9))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for i := 0; i < 3; i++ {
		u.Write([]byte("thrown away"))
	}
	g, err := client.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(benchAddr, 19))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.SetDeadline(time.Now().Add(20 * time.Second))
	g.Write([]byte("x"))
	if _, err := g.Read(make([]byte, 2048)); err != nil {
		t.Fatal(err)
	}
	if n := server.Stats().UDP.DatagramsIn; n != 4 {
		t.Fatalf("server received %d datagrams, want 4", n)
	}
	u.SetReadDeadline(time.Now()) // nothing may have come back
	if n, err := u.Read(make([]byte, 2048)); err == nil {
		t.Fatalf("discard answered %d bytes", n)
	}
}
