package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link/pcap"
	"github.com/ustack/ustack/tcp"
)

// writeTSGCapture writes a raw-IP capture of 10.0.0.2:80 sending three
// segments to 10.0.0.1:40000, the second one twice.
func writeTSGCapture(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf, pcap.LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	srv, cli := netip.MustParseAddrPort("10.0.0.2:80"), netip.MustParseAddrPort("10.0.0.1:40000")
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	id := uint16(0)
	put := func(at time.Duration, from, to netip.AddrPort, seq, ack uint32, n int) {
		h := tcp.Header{SrcPort: from.Port(), DstPort: to.Port(), Seq: tcp.Value(seq), Ack: tcp.Value(ack), Flags: tcp.FlagACK, Window: 1000}
		b := make([]byte, ipv4.HeaderLen+tcp.HeaderLen+n)
		id++
		ipv4.PutHeader(b, &ipv4.Fields{TotalLength: uint16(len(b)), ID: id, TTL: 64, Protocol: tcp.ProtocolNumber, Source: from.Addr(), Destination: to.Addr()})
		h.Encode(b[ipv4.HeaderLen:])
		tcp.SetChecksum(b[ipv4.HeaderLen:], from.Addr(), to.Addr())
		if err := w.WriteRecord(t0.Add(at), b); err != nil {
			t.Fatal(err)
		}
	}
	put(0, srv, cli, 1000, 1, 100)
	put(time.Millisecond, srv, cli, 1100, 1, 100)
	put(2*time.Millisecond, srv, cli, 1200, 1, 100)
	put(12*time.Millisecond, cli, srv, 1, 1100, 0)
	put(12*time.Millisecond+100*time.Microsecond, srv, cli, 1100, 1, 100)
	put(22*time.Millisecond, cli, srv, 1, 1300, 0)
	path := filepath.Join(t.TempDir(), "run.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTSGCommand(t *testing.T) {
	in := writeTSGCapture(t)
	var stdout, stderr bytes.Buffer
	// Flags after the file name, as the usage line shows them.
	if err := runTSG([]string{in, "-conn", "10.0.0.1:40000-10.0.0.2:80"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	svgPath := strings.TrimSuffix(in, ".pcap") + ".svg"
	if want := svgPath + ": 10.0.0.2:80 -> 10.0.0.1:40000: 4 segments, 1 retransmissions"; !strings.HasPrefix(stdout.String(), want) {
		t.Errorf("output %q, want it to begin %q", stdout.String(), want)
	}
	b, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", svgPath, err)
		}
	}
	if !bytes.Contains(b, []byte(`id="legend"`)) {
		t.Error("no legend")
	}

	stdout.Reset()
	if err := runTSG([]string{"-o", "-", in}, &stdout, &stderr); err != nil || !strings.HasPrefix(stdout.String(), "<?xml") {
		t.Errorf("-o -: %v, output begins %.20q", err, stdout.String())
	}
	stdout.Reset()
	if err := runTSG([]string{"-list", in}, &stdout, &stderr); err != nil ||
		!strings.Contains(stdout.String(), "10.0.0.2:80-10.0.0.1:40000\t6 segments\t400 bytes from 10.0.0.2:80\t0 bytes from 10.0.0.1:40000") {
		t.Errorf("-list: %v\n%s", err, stdout.String())
	}
}

func TestTSGCommandErrors(t *testing.T) {
	in := writeTSGCapture(t)
	pcapng := filepath.Join(t.TempDir(), "x.pcapng")
	if err := os.WriteFile(pcapng, []byte{0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0}, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no capture file"},
		{[]string{in, in}, "one capture file at a time"},
		{[]string{filepath.Join(t.TempDir(), "missing.pcap")}, "no such file"},
		{[]string{pcapng}, "pcapng"},
		{[]string{"-conn", "10.0.0.9:1-10.0.0.2:80", in}, "10.0.0.2:80-10.0.0.1:40000 (6 segments"},
		{[]string{"-conn", "nonsense", in}, `"nonsense"`},
		{[]string{"-width", "5", "-o", filepath.Join(t.TempDir(), "x.svg"), in}, "size 5x800"},
		{[]string{"-width", "0", in}, "-width 0"},
		{[]string{"-bogus", in}, "bogus"},
		{[]string{"-min-silence", "0s", in}, "-min-silence 0s"},
	} {
		var stdout, stderr bytes.Buffer
		err := runTSG(tc.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error()+stderr.String(), tc.want) {
			t.Errorf("tsg %q: %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}
