package main

import (
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/netns"
)

// TestServeCommand runs `ustack serve` as a process inside a test
// namespace on a TAP device created there, uses its echo, HTTP, discard
// and chargen services (TCP and UDP) from the kernel, asks for the connection table with SIGUSR1 and stops it
// with SIGINT, which must print the counters and exit 0.
func TestServeCommand(t *testing.T) {
	childServe("USTACK_TEST_SERVE_ARGS")
	ns := netns.NewT(t)
	for _, c := range [][]string{
		{"ip", "tuntap", "add", "dev", "ustap0", "mode", "tap"},
		{"ip", "link", "set", "ustap0", "up"},
		{"ip", "addr", "add", "10.5.0.1/24", "dev", "ustap0"},
		{"ip", "-6", "addr", "add", "fd05::1/64", "dev", "ustap0", "nodad"},
	} {
		if _, err := ns.Run(c...); err != nil {
			t.Fatal(err)
		}
	}
	pcapFile := t.TempDir() + "/serve.pcap"
	sc := startServe(t, ns, "TestServeCommand", "USTACK_TEST_SERVE_ARGS", "serve -tap ustap0 -addr 10.5.0.2/24 -addr fd05::2/64 -echo 7 -http 80 -discard 9 -chargen 19 -syncookies always -pcap "+pcapFile)
	cmd, lines := sc.cmd, sc.lines
	waitLine := func(substr string) string {
		t.Helper()
		return sc.waitLine(t, substr)
	}
	waitLine("discard on TCP and UDP port 9")
	waitLine("chargen on TCP and UDP port 19")
	waitLine("ustack serving 10.5.0.2/24")

	out, err := ns.Run("curl", "-sS", "--max-time", "10", "http://10.5.0.2/bytes/1000")
	if err != nil || len(out) != 1000 {
		t.Fatalf("curl: %v, %d bytes", err, len(out))
	}
	// The same service over IPv6 (the address is assigned once duplicate
	// address detection passed; the kernel's solicitations retry until
	// then).
	out, err = ns.Run("curl", "-g", "-6", "-sS", "--max-time", "10", "http://[fd05::2]/bytes/1000")
	if err != nil || len(out) != 1000 {
		t.Fatalf("curl -6: %v, %d bytes", err, len(out))
	}
	// Hold an echo connection open while asking for the table.
	var echo io.ReadWriteCloser
	if err := ns.Do(func() (err error) {
		echo, err = dialTCP("10.5.0.2:7")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	echo.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(echo, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q %v", buf, err)
	}
	// And the echo over UDP.
	var uc net.Conn
	if err := ns.Do(func() (err error) {
		uc, err = net.Dial("udp4", "10.5.0.2:7")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.Write([]byte("datagram"))
	uc.SetReadDeadline(time.Now().Add(10 * time.Second))
	ubuf := make([]byte, 64)
	if n, err := uc.Read(ubuf); err != nil || string(ubuf[:n]) != "datagram" {
		t.Fatalf("UDP echo: %q %v", ubuf[:n], err)
	}
	// The benchmark services, from the kernel: 4 MiB of chargen, and
	// 4 MiB into discard, which closes once it has read them all.
	var gen, sink io.ReadWriteCloser
	if err := ns.Do(func() (err error) {
		if gen, err = dialTCP("10.5.0.2:19"); err != nil {
			return err
		}
		sink, err = dialTCP("10.5.0.2:9")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer gen.Close()
	defer sink.Close()
	gen.(net.Conn).SetDeadline(time.Now().Add(20 * time.Second))
	got := make([]byte, 4<<20)
	if _, err := io.ReadFull(gen, got); err != nil {
		t.Fatalf("chargen: %v", err)
	}
	checkChargen(t, got, 0)
	gen.Close()
	sink.(net.Conn).SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := sink.Write(got); err != nil {
		t.Fatalf("discard: %v", err)
	}
	sink.(*net.TCPConn).CloseWrite()
	if n, err := sink.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("discard answered %d bytes, %v; want EOF", n, err)
	}
	cmd.Process.Signal(syscall.SIGUSR1)
	waitLine("LOCAL")
	waitLine("10.5.0.2:7")
	waitLine("listener [::]:7: SYNs")

	cmd.Process.Signal(syscall.SIGINT)
	waitLine("counters (non-zero):")
	waitLine("TCP.PassiveOpens")
	waitLine("TCP.SYNCookiesAccepted")
	waitLine("UDP.DatagramsIn 1")
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve exited with %v", err)
	}
	if fi, err := os.Stat(pcapFile); err != nil || fi.Size() < 1000 {
		t.Errorf("capture %s: %v", pcapFile, err)
	}
}

// A bad -syncookies value is an error that names the flag.
func TestServeBadSYNCookies(t *testing.T) {
	err := serve([]string{"-tap", "x", "-addr", "10.0.0.2/24", "-syncookies", "sometimes"})
	if err == nil || !strings.Contains(err.Error(), "-syncookies") {
		t.Fatalf("err = %v", err)
	}
}

// A -queues value out of range, or one that a capture or plain frames
// cannot serve, is an error that names the flag.
func TestServeBadQueues(t *testing.T) {
	for _, args := range [][]string{
		{"-queues", "0"},
		{"-queues", "257"},
		{"-queues", "2", "-offloads=false"},
		{"-queues", "2", "-pcap", "x.pcap"},
	} {
		err := serve(append([]string{"-tap", "x", "-addr", "10.0.0.2/24"}, args...))
		if err == nil || !strings.Contains(err.Error(), "-queues") {
			t.Errorf("%v: err = %v", args, err)
		}
	}
}

// TestServeQueues runs `ustack serve -queues 2` on a multi-queue TAP
// device made beforehand in a test namespace: several HTTP downloads by
// the kernel (several flows, spread over the queues) arrive whole, and
// SIGINT stops it with exit status 0.
func TestServeQueues(t *testing.T) {
	childServe("USTACK_TEST_SERVE_QUEUES_ARGS")
	ns := netns.NewT(t)
	for _, c := range [][]string{
		{"ip", "tuntap", "add", "dev", "ustap0", "mode", "tap", "multi_queue"},
		{"ip", "link", "set", "ustap0", "up"},
		{"ip", "addr", "add", "10.5.0.1/24", "dev", "ustap0"},
	} {
		if _, err := ns.Run(c...); err != nil {
			t.Fatal(err)
		}
	}
	sc := startServe(t, ns, "TestServeQueues", "USTACK_TEST_SERVE_QUEUES_ARGS", "serve -tap ustap0 -addr 10.5.0.2/24 -http 80 -queues 2")
	cmd, lines := sc.cmd, sc.lines
	waitLine := func(substr string) string {
		t.Helper()
		return sc.waitLine(t, substr)
	}
	waitLine("ustack serving 10.5.0.2/24")
	for i := range 6 {
		out, err := ns.Run("curl", "-sS", "--max-time", "10", "http://10.5.0.2/bytes/1000000")
		if err != nil || len(out) != 1000000 {
			t.Fatalf("download %d: %v, %d bytes", i, err, len(out))
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	waitLine("counters (non-zero):")
	waitLine("TCP.PassiveOpens 6")
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve exited with %v", err)
	}
}
