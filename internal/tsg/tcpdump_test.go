package tsg

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/link/pcap"
)

// TestTcpdumpCaptures draws captures that tcpdump writes of a kernel TCP
// transfer on the loopback device of a namespace the test creates: on lo
// (Ethernet link type), on "any" (Linux cooked), with nanosecond
// timestamps. Loopback hands segments over with partial checksums
// (transmit checksum offload), so this also exercises keeping them.
func TestTcpdumpCaptures(t *testing.T) {
	ns := netns.NewT(t)
	if _, err := exec.LookPath("tcpdump"); err != nil {
		if os.Getenv(netns.RequireEnv) == "1" {
			t.Fatal("tcpdump is not installed (.ci/run installs it)")
		}
		t.Skip("tcpdump is not installed")
	}
	for _, tc := range []struct {
		name string
		args []string
		link []uint32
		nano bool
	}{
		{"lo", []string{"-i", "lo"}, []uint32{pcap.LinkTypeEthernet}, false},
		{"any", []string{"-i", "any"}, []uint32{pcap.LinkTypeLinuxSLL, pcap.LinkTypeLinuxSLL2}, false},
		{"lo, nanoseconds", []string{"-i", "lo", "--time-stamp-precision=nano"}, []uint32{pcap.LinkTypeEthernet}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 300000
			var ln net.Listener
			if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp4", "127.0.0.1:0"); return err }); err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			port := ln.Addr().(*net.TCPAddr).Port
			path := filepath.Join(t.TempDir(), "lo.pcap")
			// -Z root: tcpdump would otherwise write as user tcpdump, which
			// cannot enter the test's temporary directory; --immediate-mode
			// and -U put each packet in the file as it comes. Loopback's
			// 64 KB segments overflow tcpdump's ring on a busy machine:
			// take the headers only (which also covers records cut by the
			// snap length) into a larger buffer.
			args := append([]string{"netns", "exec", ns.Name(), "tcpdump", "-Z", "root", "--immediate-mode", "-U",
				"-s", "200", "-B", "8192", "-w", path}, tc.args...)
			args = append(args, "tcp", "port", strconv.Itoa(port))
			dump := exec.Command("ip", args...)
			stderr, err := dump.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := dump.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if dump.ProcessState == nil {
					dump.Process.Kill()
					dump.Wait()
				}
			}()
			// tcpdump says "listening on" once its capture is open.
			ready := make(chan error, 1)
			var msgs bytes.Buffer
			var msgsMu sync.Mutex
			said := func() string {
				msgsMu.Lock()
				defer msgsMu.Unlock()
				return msgs.String()
			}
			go func() {
				sc := bufio.NewScanner(stderr)
				sent := false
				for sc.Scan() {
					msgsMu.Lock()
					msgs.WriteString(sc.Text() + "\n")
					msgsMu.Unlock()
					if !sent && strings.Contains(sc.Text(), "listening on") {
						ready <- nil
						sent = true
					}
				}
				if !sent {
					ready <- io.ErrUnexpectedEOF
				}
			}()
			select {
			case err := <-ready:
				if err != nil {
					t.Fatalf("tcpdump did not start: %s", said())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("tcpdump did not start within 10 s")
			}

			served := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					served <- err
					return
				}
				_, err = c.Write(make([]byte, n))
				c.Close()
				served <- err
			}()
			var got int64
			if err := ns.Do(func() error {
				c, err := net.Dial("tcp4", ln.Addr().String())
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				got, err = io.Copy(io.Discard, c)
				return err
			}); err != nil || got != n {
				t.Fatalf("transfer: %d bytes, %v", got, err)
			}
			if err := <-served; err != nil {
				t.Fatal(err)
			}
			// Wait for the ACK of the server's FIN to be in the file, then
			// stop tcpdump, the process this test started, by its PID.
			deadline := time.Now().Add(10 * time.Second)
			for !finAcked(path, n+2) {
				if time.Now().After(deadline) {
					dump.Process.Signal(syscall.SIGINT)
					dump.Wait()
					t.Fatalf("the capture lacks the ACK of the FIN after 10 s; tcpdump says:\n%s", said())
				}
				time.Sleep(20 * time.Millisecond)
			}
			dump.Process.Signal(syscall.SIGINT)
			if err := dump.Wait(); err != nil {
				t.Fatalf("tcpdump: %v", err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, err := pcap.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			if r.Nanosecond() != tc.nano || !contains(tc.link, r.LinkType()) {
				t.Errorf("link type %d, nanoseconds %v; want one of %v, %v", r.LinkType(), r.Nanosecond(), tc.link, tc.nano)
			}
			f.Seek(0, io.SeekStart)
			c, err := ReadPcap(f)
			if err != nil {
				t.Fatal(err)
			}
			conns := c.Conns()
			if len(conns) != 1 || conns[0].B.Port() != uint16(port) || conns[0].Bytes[1] < n {
				t.Fatalf("connections %+v (stats %+v)", conns, c.Stats)
			}
			g, err := c.Analyze(Options{})
			if err != nil {
				t.Fatal(err)
			}
			// The server's SYN-ACK is sequence 0; n bytes and the FIN follow.
			if g.Sender.Port() != uint16(port) || !g.SYN || g.Bytes != n+2 || g.BadChecksums != 0 || !g.WindowScaleKnown {
				t.Errorf("sender %v, SYN %v, %d bytes, %d bad checksums, scale known %v", g.Sender, g.SYN, g.Bytes, g.BadChecksums, g.WindowScaleKnown)
			}
			last := g.Acks[len(g.Acks)-1]
			if last.Ack != n+2 {
				t.Errorf("last ACK %d, want %d", last.Ack, n+2)
			}
			var svg bytes.Buffer
			if err := g.WriteSVG(&svg, DrawOptions{}); err != nil {
				t.Fatal(err)
			}
			wellFormed(t, svg.Bytes())
			t.Logf("%d packets, link type %d: %d data segments, %d ACKs, RTT %v", c.Stats.Packets, r.LinkType(), g.DataSegments, g.AckSegments, g.RTT)
		})
	}
}

// finAcked reports whether the capture at path holds an ACK of relative
// sequence number end in its main connection.
func finAcked(path string, end int64) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	c, _ := ReadPcap(bytes.NewReader(b)) // a record being written is cut short
	if c == nil {
		return false
	}
	g, err := c.Analyze(Options{})
	return err == nil && len(g.Acks) > 0 && g.Acks[len(g.Acks)-1].Ack == end
}

func contains(l []uint32, v uint32) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}
