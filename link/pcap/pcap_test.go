package pcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/link"
)

type record struct {
	ts       time.Time
	orig     int
	captured []byte
}

// parseCapture reads a little-endian libpcap file back.
func parseCapture(t *testing.T, b []byte) (linkType uint32, recs []record) {
	t.Helper()
	if len(b) < globalHdrLen {
		t.Fatalf("capture of %d bytes has no global header", len(b))
	}
	le := binary.LittleEndian
	if le.Uint32(b) != Magic || le.Uint16(b[4:]) != 2 || le.Uint16(b[6:]) != 4 || le.Uint32(b[16:]) != 65535 {
		t.Fatalf("bad global header % x", b[:globalHdrLen])
	}
	linkType = le.Uint32(b[20:])
	b = b[globalHdrLen:]
	for len(b) > 0 {
		if len(b) < recordHdrLen {
			t.Fatalf("trailing %d bytes", len(b))
		}
		incl := int(le.Uint32(b[8:]))
		if len(b) < recordHdrLen+incl {
			t.Fatalf("record of %d bytes truncated", incl)
		}
		recs = append(recs, record{
			ts:       time.Unix(int64(le.Uint32(b)), int64(le.Uint32(b[4:]))*1000),
			orig:     int(le.Uint32(b[12:])),
			captured: b[recordHdrLen : recordHdrLen+incl],
		})
		b = b[recordHdrLen+incl:]
	}
	return linkType, recs
}

// etherTypeExperimental is IEEE 802 Local Experimental EtherType 1, which
// tcpdump prints as an unknown EtherType without parsing the payload.
const etherTypeExperimental = 0x88b5

func testFrame(n int, seq byte) []byte {
	b := make([]byte, n)
	link.PutEthernetHeader(b, link.MAC{2, 0, 0, 0, 0, 2}, link.MAC{2, 0, 0, 0, 0, 1}, etherTypeExperimental)
	for i := link.EthernetHeaderLen; i < n; i++ {
		b[i] = seq
	}
	return b
}

// fakeClock returns 2026-01-02 03:04:05.000006 plus one second per call.
func fakeClock() func() time.Time {
	t := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	return func() time.Time {
		t = t.Add(time.Second)
		return t
	}
}

func TestCaptureThroughPipe(t *testing.T) {
	a, b := link.NewPipe(link.PipeOptions{})
	defer a.Close()
	var buf bytes.Buffer
	ep, err := New(a, &buf, Options{Now: fakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for i := range 3 {
		f := testFrame(60+i*100, byte(i))
		if err := ep.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
		want = append(want, f)
	}
	rbuf := make([]byte, 1514)
	for i := range 3 {
		if _, err := b.ReadFrame(rbuf); err != nil {
			t.Fatal(err)
		}
		f := testFrame(1514-i, byte(10+i))
		if err := b.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
		n, err := ep.ReadFrame(rbuf)
		if err != nil || !bytes.Equal(rbuf[:n], f) {
			t.Fatalf("read through capture: %d, %v", n, err)
		}
		want = append(want, f)
	}
	if s := ep.Stats(); s != (Stats{Records: 6}) {
		t.Errorf("Stats = %+v, want 6 records", s)
	}
	if ep.MTU() != 1500 || ep.HardwareAddr() != a.HardwareAddr() {
		t.Errorf("MTU/HardwareAddr not passed through")
	}

	lt, recs := parseCapture(t, buf.Bytes())
	if lt != LinkTypeEthernet {
		t.Errorf("link type %d, want %d", lt, LinkTypeEthernet)
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i, r := range recs {
		if !bytes.Equal(r.captured, want[i]) || r.orig != len(want[i]) {
			t.Errorf("record %d differs", i)
		}
		wantTS := time.Date(2026, 1, 2, 3, 4, 5+i+1, 6000, time.UTC)
		if !r.ts.Equal(wantTS) {
			t.Errorf("record %d ts %v, want %v", i, r.ts.UTC(), wantTS)
		}
	}

	path := filepath.Join(t.TempDir(), "pipe.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Log("tcpdump not installed; skipping the tcpdump read-back")
		return
	}
	cmd := exec.Command(tcpdump, "-r", path, "-nn", "-e")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s%s", err, out, stderr.Bytes())
	}
	if s := stderr.String(); !strings.Contains(s, "EN10MB") || strings.Contains(s, "truncated") {
		t.Errorf("tcpdump stderr: %s", s)
	}
	var lines int
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "\t0x") {
			continue // hex dump of the unknown payload
		}
		lines++
		if !strings.Contains(l, "02:00:00:00:00:01 > 02:00:00:00:00:02, ethertype Unknown (0x88b5)") {
			t.Errorf("unexpected tcpdump line: %s", l)
		}
	}
	t.Logf("tcpdump -r -nn:\n%s", out)
	if lines != len(want) {
		t.Errorf("tcpdump lists %d packets, want %d:\n%s", lines, len(want), out)
	}
}

// rawEndpoint is a TUN-like endpoint: no hardware address.
type rawEndpoint struct{ link.Endpoint }

func (rawEndpoint) HardwareAddr() link.MAC { return link.MAC{} }

func TestLinkTypeRaw(t *testing.T) {
	a, _ := link.NewPipe(link.PipeOptions{})
	defer a.Close()
	var buf bytes.Buffer
	if _, err := New(rawEndpoint{a}, &buf, Options{}); err != nil {
		t.Fatal(err)
	}
	lt, recs := parseCapture(t, buf.Bytes())
	if lt != LinkTypeRaw || len(recs) != 0 {
		t.Errorf("link type %d with %d records, want %d and none", lt, len(recs), LinkTypeRaw)
	}
}

type failingWriter struct{ n int }

func (w *failingWriter) Write(b []byte) (int, error) {
	if w.n == 0 {
		return 0, errors.New("disk full")
	}
	w.n--
	return len(b), nil
}

func TestWriteErrorsAreCounted(t *testing.T) {
	a, b := link.NewPipe(link.PipeOptions{})
	defer a.Close()
	if _, err := New(a, &failingWriter{}, Options{}); err == nil {
		t.Errorf("New with a failing writer succeeded")
	}
	ep, err := New(a, &failingWriter{n: 2}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := ep.WriteFrame(testFrame(60, 1)); err != nil {
			t.Fatalf("WriteFrame failed because of the capture: %v", err)
		}
	}
	if s := ep.Stats(); s != (Stats{Records: 1, WriteErrors: 2}) {
		t.Errorf("Stats = %+v, want 1 record and 2 errors", s)
	}
	if b.Stats().RxFrames != 0 || a.Stats().TxFrames != 3 {
		t.Errorf("frames not all passed through: %+v", a.Stats())
	}
}

func TestSnapLen(t *testing.T) {
	a, _ := link.NewPipe(link.PipeOptions{MTU: 70000})
	defer a.Close()
	var buf bytes.Buffer
	ep, _ := New(a, &buf, Options{})
	if err := ep.WriteFrame(make([]byte, 70000)); err != nil {
		t.Fatal(err)
	}
	_, recs := parseCapture(t, buf.Bytes())
	if len(recs) != 1 || len(recs[0].captured) != SnapLen || recs[0].orig != 70000 {
		t.Errorf("oversized frame recorded as %d/%d bytes", len(recs[0].captured), recs[0].orig)
	}
}

func TestNoAllocs(t *testing.T) {
	a, b := link.NewPipe(link.PipeOptions{})
	defer a.Close()
	ep, _ := New(a, discard{}, Options{})
	f := testFrame(1514, 1)
	rbuf := make([]byte, 1514)
	allocs := testing.AllocsPerRun(1000, func() {
		ep.WriteFrame(f)
		b.ReadFrame(rbuf)
	})
	if allocs != 0 {
		t.Errorf("capture allocates %v per frame", allocs)
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkCapture measures write+read of a 1514-byte frame over a Pipe
// with the writing end captured to io.Discard-like writer.
func BenchmarkCapture(b *testing.B) {
	x, y := link.NewPipe(link.PipeOptions{})
	ep, _ := New(x, discard{}, Options{})
	defer ep.Close()
	frame := testFrame(1514, 1)
	buf := make([]byte, 1514)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		ep.WriteFrame(frame)
		y.ReadFrame(buf)
	}
}
