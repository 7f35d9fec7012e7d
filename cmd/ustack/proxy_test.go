package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/netns"
)

// proxyChildEnv names the environment variable that makes the test binary
// run `ustack proxy` with the arguments it holds, as TestKernelProxy's
// child process.
const proxyChildEnv = "USTACK_TEST_PROXY_CHILD"

// TestKernelProxy has a kernel client in namespace A reach a kernel server
// in namespace B through `ustack proxy`: A's route to B's subnet points
// into a TUN device that the proxy, a child process in namespace P, opened
// there before the device moved to A; the proxy's own sockets live in P,
// which a veth joins to B, so they cannot loop back into the TUN. TCP: 100
// concurrent connections carry 64 MiB, half of them up to the server and
// half down to the client, each checked by SHA-256, with the client's
// half-close passed through to the server and the server's back (see
// proxyTestServe); UDP: datagrams of 0 to 8,000 bytes echoed.
func TestKernelProxy(t *testing.T) {
	if arg, ok := os.LookupEnv(proxyChildEnv); ok {
		if err := proxy(strings.Fields(arg)); err != nil {
			fmt.Fprintln(os.Stderr, "proxy:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	a, p, b := netns.NewT(t), netns.NewT(t), netns.NewT(t)
	run := func(ns *netns.NS, cmd ...string) {
		t.Helper()
		if _, err := ns.Run(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	run(p, "ip", "link", "add", "vp0", "type", "veth", "peer", "name", "vb0", "netns", b.Name())
	run(p, "ip", "addr", "add", "10.20.0.1/24", "dev", "vp0")
	run(p, "ip", "link", "set", "vp0", "up")
	run(b, "ip", "addr", "add", "10.20.0.2/24", "dev", "vb0")
	run(b, "ip", "link", "set", "vb0", "up")

	cmd := exec.Command("ip", "netns", "exec", p.Name(), os.Args[0], "-test.run=^TestKernelProxy$")
	cmd.Env = append(os.Environ(), proxyChildEnv+"=-tun ustun0 -addr 10.9.0.2/24")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	exited := false
	t.Cleanup(func() {
		if !exited {
			cmd.Process.Kill() // the child we started, by its PID
			cmd.Wait()
		}
	})
	select {
	case l, ok := <-lines:
		if !ok || !strings.Contains(l, "ustack proxy ready") {
			t.Fatalf("proxy said %q, want its ready line", l)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the proxy did not get ready within 20 s")
	}
	// The device moves to A; the proxy's descriptor keeps working.
	run(p, "ip", "link", "set", "ustun0", "netns", a.Name())
	run(a, "ip", "addr", "add", "10.9.0.1/24", "dev", "ustun0")
	run(a, "ip", "link", "set", "ustun0", "up")
	run(a, "ip", "route", "add", "10.20.0.0/24", "dev", "ustun0")

	// The servers, in B.
	var ln net.Listener
	var uc net.PacketConn
	if err := b.Do(func() (err error) {
		if ln, err = net.Listen("tcp4", "10.20.0.2:9000"); err != nil {
			return err
		}
		uc, err = net.ListenPacket("udp4", "10.20.0.2:9001")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	defer uc.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go proxyTestServe(c.(*net.TCPConn))
		}
	}()
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := uc.ReadFrom(buf)
			if err != nil {
				return
			}
			uc.WriteTo(buf[:n], from)
		}
	}()

	// 100 concurrent connections from A, 64 MiB in all.
	const conns, total = 100, 64 << 20
	per := total / conns
	cs := make([]net.Conn, 0, conns)
	if err := a.Do(func() error {
		for range conns {
			c, err := net.DialTimeout("tcp4", "10.20.0.2:9000", 10*time.Second)
			if err != nil {
				return err
			}
			cs = append(cs, c)
		}
		return nil
	}); err != nil {
		for _, c := range cs {
			c.Close()
		}
		t.Fatalf("dial through the proxy: %v", err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			if err := proxyTestClient(c.(*net.TCPConn), i%2 == 0, uint32(i), per); err != nil {
				errs <- fmt.Errorf("connection %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d connections carried %d MiB through the proxy in %v", conns, total>>20, time.Since(start).Round(time.Millisecond))

	// A port nobody listens on: the proxy's dial is refused, and so is
	// the client's connection, with a RST.
	if err := a.Do(func() error {
		c, err := net.DialTimeout("tcp4", "10.20.0.2:9", 10*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial of a closed port through the proxy: %v, want ECONNREFUSED", err)
	}

	// UDP echo from A.
	var u net.Conn
	if err := a.Do(func() (err error) { u, err = net.Dial("udp4", "10.20.0.2:9001"); return err }); err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	buf := make([]byte, 65535)
	for _, size := range []int{0, 1, 512, 1400, 4000, 8000} {
		msg := bytes.Repeat([]byte{byte(size)}, size)
		ok := false
		for try := 0; try < 3 && !ok; try++ { // UDP may lose a datagram
			if _, err := u.Write(msg); err != nil {
				t.Fatal(err)
			}
			u.SetReadDeadline(time.Now().Add(3 * time.Second))
			n, err := u.Read(buf)
			ok = err == nil && bytes.Equal(buf[:n], msg)
		}
		if !ok {
			t.Errorf("UDP echo of %d bytes through the proxy failed", size)
		}
	}

	// The proxy's counters, printed when it stops.
	cmd.Process.Signal(syscall.SIGTERM)
	var rest strings.Builder
	for l := range lines {
		rest.WriteString(l + "\n")
	}
	err = cmd.Wait()
	exited = true
	if err != nil {
		t.Errorf("proxy exited: %v\n%s", err, rest.String())
	}
	for _, want := range []string{fmt.Sprintf("Forward.TCPAccepted %d\n", conns), "Forward.TCPRefused 1\n", "Forward.UDPFlows 1\n"} {
		if !strings.Contains(rest.String(), want) {
			t.Errorf("proxy's counters lack %q:\n%s", strings.TrimSpace(want), rest.String())
		}
	}
}

// proxyTestData returns size bytes drawn from seed.
func proxyTestData(seed uint32, size int) []byte {
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(uint64(seed), 9))
	for j := range data {
		data[j] = byte(rng.Uint32())
	}
	return data
}

// proxyTestServe is TestKernelProxy's server. The client sends 'U' and
// data up to its FIN, and the server answers with the data's SHA-256; or
// 'D', a seed and a size, and its FIN, after which the server sends that
// many bytes drawn from the seed. Either way the server answers only once
// the client's half-close reached it, and ends with its own FIN.
func proxyTestServe(c *net.TCPConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	var req [9]byte
	if _, err := io.ReadFull(c, req[:1]); err != nil {
		return
	}
	var answer []byte
	switch req[0] {
	case 'U':
		h := sha256.New()
		io.Copy(h, c)
		answer = h.Sum(nil)
	case 'D':
		if _, err := io.ReadFull(c, req[1:]); err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, c); err != nil {
			return
		}
		answer = proxyTestData(binary.BigEndian.Uint32(req[1:]), int(binary.BigEndian.Uint32(req[5:])))
	default:
		return
	}
	c.Write(answer)
	c.CloseWrite()
}

// proxyTestClient runs one connection of TestKernelProxy: up (or down)
// size bytes drawn from seed, checked by SHA-256 at the other end.
func proxyTestClient(c *net.TCPConn, up bool, seed uint32, size int) error {
	data := proxyTestData(seed, size)
	want := sha256.Sum256(data)
	var req []byte
	if up {
		req = append([]byte{'U'}, data...)
	} else {
		req = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32([]byte{'D'}, seed), uint32(size))
	}
	if _, err := c.Write(req); err != nil {
		return err
	}
	if err := c.CloseWrite(); err != nil {
		return err
	}
	got, err := io.ReadAll(c) // until the server's FIN, passed back
	if err != nil {
		return err
	}
	if up {
		if !bytes.Equal(got, want[:]) {
			return fmt.Errorf("the server's SHA-256 of the %d bytes sent up is %x, want %x", size, got, want)
		}
	} else if h := sha256.Sum256(got); len(got) != size || h != want {
		return fmt.Errorf("%d of %d bytes came down, SHA-256 match %v", len(got), size, h == want)
	}
	return nil
}
