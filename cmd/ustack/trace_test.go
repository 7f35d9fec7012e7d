package main

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/pcap"
	"github.com/ustack/ustack/link/vlan"
	"github.com/ustack/ustack/tcp"
)

// writeTraceCapture writes an Ethernet capture of an ARP request and a
// TCP SYN tagged for VLAN 10, the second cut by the snap length.
func writeTraceCapture(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf, pcap.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	a, b := link.MAC{2, 0, 0, 0, 0, 1}, link.MAC{2, 0, 0, 0, 0, 2}
	src, dst := netip.MustParseAddr("10.10.0.1"), netip.MustParseAddr("10.10.0.2")
	f := make([]byte, link.EthernetHeaderLen+arp.PacketLen)
	link.PutEthernetHeader(f, link.Broadcast, a, link.EtherTypeARP)
	arp.PutPacket(f[link.EthernetHeaderLen:], arp.OpRequest, a, src, link.MAC{}, dst)
	t0 := time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)
	if err := w.WriteRecord(t0, f); err != nil {
		t.Fatal(err)
	}
	syn := make([]byte, vlan.HeaderLen+ipv4.HeaderLen+tcp.HeaderLen)
	vlan.PutHeader(syn, b, a, vlan.Tag{VID: 10}, link.EtherTypeIPv4)
	ipv4.PutHeader(syn[vlan.HeaderLen:], &ipv4.Fields{TotalLength: 40, TTL: 64, Protocol: tcp.ProtocolNumber, Source: src, Destination: dst})
	h := tcp.Header{SrcPort: 40000, DstPort: 7, Seq: 1, Flags: tcp.FlagSYN, Window: 1000}
	h.Encode(syn[vlan.HeaderLen+ipv4.HeaderLen:])
	tcp.SetChecksum(syn[vlan.HeaderLen+ipv4.HeaderLen:], src, dst)
	if err := w.WriteRecord(t0.Add(time.Millisecond), syn); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vlan.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTraceCommand(t *testing.T) {
	in := writeTraceCapture(t)
	var stdout, stderr bytes.Buffer
	if err := runTrace([]string{in}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	want := `13:00:00.000000 cap vlan.pcap 42 bytes
  L2 02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ARP
    L3 ARP who-has 10.10.0.2 tell 10.10.0.1 (02:00:00:00:00:01)
13:00:00.001000 cap vlan.pcap 58 bytes
  L2 02:00:00:00:00:01 > 02:00:00:00:00:02, vlan 10 pcp 0, IPv4
    L3 IPv4 10.10.0.1 > 10.10.0.2 ttl 64 id 0 len 40 TCP
      L4 TCP 10.10.0.1:40000 > 10.10.0.2:7 [S] seq 1 win 1000 len 0
`
	if stdout.String() != want {
		t.Errorf("ustack trace printed:\n%s\nwant:\n%s", stdout.String(), want)
	}
	stdout.Reset()
	if err := runTrace([]string{"-c", "1", "-notime", in}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stdout.String(), "cap vlan.pcap 42 bytes\n") || strings.Count(stdout.String(), "\n") != 3 {
		t.Errorf("-c 1 -notime printed:\n%s", stdout.String())
	}
	for _, args := range [][]string{nil, {"a", "b"}, {"-c", "-1", in}, {filepath.Join(t.TempDir(), "none.pcap")}} {
		if err := runTrace(args, io.Discard, io.Discard); err == nil {
			t.Errorf("trace %q: no error", args)
		}
	}
	notPcap := filepath.Join(t.TempDir(), "x.pcap")
	os.WriteFile(notPcap, []byte("not a capture at all, no"), 0o644)
	if err := runTrace([]string{notPcap}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Errorf("a file that is no capture: %v", err)
	}
}

// TestServeTrace runs `ustack serve -trace` with a VLAN (and an untagged
// NIC) on a TAP device in a test namespace: the kernel's ping and a TCP
// echo of the untagged NIC appear layer by layer, with the connection's
// opening; a tagged ARP request for the VLAN's address is answered on the
// VLAN, the tags in the trace; the trunk's counters come at exit.
func TestServeTrace(t *testing.T) {
	childServe("USTACK_TEST_SERVE_TRACE_ARGS")
	ns := netns.NewT(t)
	for _, c := range [][]string{
		{"ip", "tuntap", "add", "dev", "ustap0", "mode", "tap"},
		{"ip", "link", "set", "ustap0", "up"},
		{"ip", "addr", "add", "10.5.0.1/24", "dev", "ustap0"},
	} {
		if _, err := ns.Run(c...); err != nil {
			t.Fatal(err)
		}
	}
	sc := startServe(t, ns, "TestServeTrace", "USTACK_TEST_SERVE_TRACE_ARGS", "serve -tap ustap0 -addr 10.5.0.2/24 -vlan 10 -addr 10.15.0.2/24 -echo 7 -trace")
	cmd, lines := sc.cmd, sc.lines
	waitLine := func(substr string) string {
		t.Helper()
		return sc.waitLine(t, substr)
	}
	waitLine("ustack serving 10.5.0.2/24, VLAN 10 10.15.0.2/24 on TAP ustap0")
	if out, err := ns.Run("ping", "-c", "1", "-W", "2", "10.5.0.2"); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	waitLine("in ustap0 98 bytes")
	waitLine("    L3 IPv4 10.5.0.1 > 10.5.0.2 ttl 64")
	waitLine("      L4 ICMP echo request id")
	waitLine("out ustap0 98 bytes")
	waitLine("      L4 ICMP echo reply id")
	var echo io.ReadWriteCloser
	if err := ns.Do(func() (err error) {
		echo, err = dialTCP("10.5.0.2:7")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	echo.Write([]byte("traced"))
	buf := make([]byte, 6)
	if _, err := io.ReadFull(echo, buf); err != nil || string(buf) != "traced" {
		t.Fatalf("echo: %q %v", buf, err)
	}
	echo.Close()
	waitLine("> 10.5.0.2:7 [S] seq")
	waitLine("TCP 10.5.0.2:7 - 10.5.0.1:")
	waitLine("len 6")
	// A tagged ARP request for the VLAN's address, from a packet socket
	// on the kernel's side (this kernel may have no VLAN devices): serve
	// answers on VLAN 10, and the trace shows the tags both ways.
	req := make([]byte, vlan.HeaderLen+arp.PacketLen)
	asker := link.MAC{0x02, 0, 0, 0, 0, 0x99}
	vlan.PutHeader(req, link.Broadcast, asker, vlan.Tag{VID: 10}, link.EtherTypeARP)
	arp.PutPacket(req[vlan.HeaderLen:], arp.OpRequest, asker, netip.MustParseAddr("10.15.0.1"), link.MAC{}, netip.MustParseAddr("10.15.0.2"))
	if err := ns.Do(func() error { return sendRaw("ustap0", req) }); err != nil {
		t.Fatal(err)
	}
	waitLine("  L2 02:00:00:00:00:99 > ff:ff:ff:ff:ff:ff, vlan 10 pcp 0, ARP")
	waitLine("    L3 ARP who-has 10.15.0.2 tell 10.15.0.1 (02:00:00:00:00:99)")
	waitLine("> 02:00:00:00:00:99, vlan 10 pcp 0, ARP")
	waitLine("    L3 ARP reply 10.15.0.2 is-at ")
	cmd.Process.Signal(syscall.SIGINT)
	waitLine("VLAN trunk (non-zero):")
	waitLine("  VLAN 10: in 1 frames (42 bytes), out ") // out: the announcement at start, the reply, and IPv6 DAD and MLD reports
	waitLine("  untagged: in ")
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve exited with %v", err)
	}
}

// sendRaw writes the Ethernet frame f on the interface dev through an
// AF_PACKET socket, in the calling thread's namespace.
func sendRaw(dev string, f []byte) error {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Sendto(fd, f, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index})
}
