package stack

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ustack/ustack/tcp"
)

// kernelScaleChildEnv names the environment variable that turns the test
// binary into one of TestKernelScale's kernel clients: "ADDR:PORT N".
const kernelScaleChildEnv = "USTACK_TEST_SCALE_CHILD"

// connsPerChild bounds the kernel connections one client process holds:
// each is a file descriptor, and this machine's hard limit on them is
// 20000 per process.
const connsPerChild = 5000

// TestKernelScale has the kernel open n connections to ustack over TAP,
// holds them all, then has every one echo, and closes them. The kernel
// ends live in client processes (this test binary again, run inside the
// namespace) so that no process holds more than connsPerChild sockets.
func TestKernelScale(t *testing.T) {
	if arg := os.Getenv(kernelScaleChildEnv); arg != "" {
		kernelScaleChild(arg)
		return
	}
	n := scaleConns(t, "USTACK_SCALE_KERNEL_CONNS", 1000)
	k := newKernelNet(t)
	l, err := k.s.ListenTCPBacklog(netip.AddrPortFrom(netip.IPv4Unspecified(), 7), 4096)
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(l)
	defer wait()
	defer l.Close()

	children := max(2, (n+connsPerChild-1)/connsPerChild)
	timeout := time.Minute + time.Duration(n)*time.Millisecond
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		lines chan string
	}
	var kids []*child
	defer func() {
		for _, c := range kids {
			c.stdin.Close()
			c.cmd.Wait()
		}
	}()
	start := time.Now()
	for i := range children {
		m := n / children
		if i < n%children {
			m++
		}
		cmd := exec.Command("ip", "netns", "exec", k.ns.Name(), os.Args[0], "-test.run=^TestKernelScale$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%v:7 %d", kernelScaleChildEnv, stackAddr.Addr(), m))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
		kids = append(kids, c)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				c.lines <- sc.Text()
			}
			close(c.lines)
		}()
	}
	expect := func(c *child, word string) {
		t.Helper()
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("client %d exited before %q", c.cmd.Process.Pid, word)
			}
			if !strings.HasPrefix(line, word) {
				t.Fatalf("client %d: %s", c.cmd.Process.Pid, line)
			}
		case <-time.After(timeout):
			t.Fatalf("client %d did not say %q within %v", c.cmd.Process.Pid, word, timeout)
		}
	}
	for _, c := range kids {
		expect(c, "dialed")
	}
	opened := time.Since(start)
	// The kernel's connect returns when it has sent the handshake's last
	// ACK, which ustack may not have processed yet.
	est := 0
	waitFor(t, fmt.Sprintf("%d established connections in ustack's table", n), func() bool {
		est = 0
		for _, ci := range k.s.Connections() {
			if ci.State == tcp.StateEstablished && ci.Tuple.Local.Port() == 7 {
				est++
			}
		}
		return est == n
	})
	t.Logf("kernel opened %d connections to ustack over TAP in %v, all established", n, opened.Round(time.Millisecond))

	start = time.Now()
	for _, c := range kids {
		fmt.Fprintln(c.stdin, "echo")
	}
	for _, c := range kids {
		expect(c, "echoed")
	}
	t.Logf("every connection echoed after being held, in %v", time.Since(start).Round(time.Millisecond))
	st := k.s.Stats().TCP
	t.Logf("ustack: %d passive opens, %d listen overflows, %d retransmits", st.PassiveOpens, st.ListenOverflows, st.Retransmits)
}

// kernelScaleChild is a client process of TestKernelScale: it dials n
// connections to addr, says "dialed", waits for "echo" on its standard
// input, echoes two bytes on every connection, says "echoed", and exits
// when its standard input closes.
func kernelScaleChild(arg string) {
	fail := func(format string, a ...any) {
		fmt.Printf("error: "+format+"\n", a...)
		os.Exit(1)
	}
	addr, count, ok := strings.Cut(arg, " ")
	n, err := strconv.Atoi(count)
	if !ok || err != nil {
		fail("bad %s %q", kernelScaleChildEnv, arg)
	}
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 20 * time.Second}
			for i := w; i < n; i += 8 {
				c, err := d.Dial("tcp4", addr)
				if err != nil {
					errc <- fmt.Errorf("dial %d: %w", i, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		fail("%v", err)
	}
	fmt.Println("dialed", n)
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() || in.Text() != "echo" {
		fail("no echo command")
	}
	buf := make([]byte, 2)
	for i, c := range conns {
		msg := []byte{byte(i), byte(i >> 8)}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(msg); err != nil {
			fail("write on connection %d: %v", i, err)
		}
		if _, err := io.ReadFull(c, buf); err != nil || buf[0] != msg[0] || buf[1] != msg[1] {
			fail("connection %d echoed %x (%v), want %x", i, buf, err, msg)
		}
	}
	fmt.Println("echoed", n)
	for in.Scan() {
	}
	for _, c := range conns {
		c.Close()
	}
	os.Exit(0)
}
