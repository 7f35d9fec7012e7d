package tsg

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link/pcap"
	"github.com/ustack/ustack/tcp"
)

// wellFormed decodes the whole document and returns the text of its
// elements, failing the test on any XML error.
func wellFormed(t *testing.T, svg []byte) (texts []string, elements map[string]int) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	elements = map[string]int{}
	var inText bool
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return texts, elements
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			elements[tok.Name.Local]++
			inText = tok.Name.Local == "text" || tok.Name.Local == "title"
			for _, a := range tok.Attr {
				if a.Name.Local == "href" || tok.Name.Local == "script" {
					t.Errorf("SVG refers outside itself: <%s %s=%q>", tok.Name.Local, a.Name.Local, a.Value)
				}
			}
		case xml.CharData:
			if inText {
				texts = append(texts, string(tok))
			}
		case xml.EndElement:
			inText = false
		}
	}
}

func tlpExchange(t *testing.T) *exchange {
	e := newExchange(t, pcap.LinkTypeRaw)
	e.handshake(rtt)
	for i := 1; i <= 4; i++ {
		e.data(rtt+time.Duration(i)*100*time.Microsecond, i)
	}
	e.ack(2*rtt, 2, [2]int{4, 4})
	e.ack(2*rtt+100*time.Microsecond, 2, [2]int{4, 4})
	e.data(2*rtt+200*time.Microsecond, 3)
	e.ack(3*rtt, 4, [2]int{3, 3})
	e.data(3*rtt+100*time.Microsecond, 5)
	e.data(6*rtt, 5)
	e.data(6*rtt+200*ms, 5)
	e.ack(7*rtt+200*ms, 5)
	return e
}

func TestSVG(t *testing.T) {
	g := tlpExchange(t).graph()
	if g.TLPs != 1 || g.RTOs != 1 || g.DSACKBlocks != 1 || g.Retransmissions != 3 {
		t.Fatalf("exchange analysed as %+v", g.Counts)
	}
	var buf bytes.Buffer
	if err := g.WriteSVG(&buf, DrawOptions{}); err != nil {
		t.Fatal(err)
	}
	texts, elements := wellFormed(t, buf.Bytes())
	all := strings.Join(texts, "\n")
	for _, s := range []string{
		"10.0.0.2:7 \u2192 10.0.0.1:40000",
		"data sent", "retransmission", "RTO-like retransmission", "TLP-like probe", "network duplicate",
		"ACK", "receive window edge", "SACK block", "D-SACK block",
		"time (ms)", "relative sequence number (KB)", "3 retransmissions (1 RTO-like, 1 TLP-like)", "3 SACK blocks (1 D-SACK)",
	} {
		if !strings.Contains(all, s) {
			t.Errorf("SVG text lacks %q:\n%s", s, all)
		}
	}
	if elements["svg"] != 1 || elements["path"] < 10 || elements["text"] < 20 {
		t.Errorf("elements %v", elements)
	}
	for _, colour := range []string{styleRetx.stroke, styleRTO.stroke, styleTLP.stroke, styleSACK.stroke, styleDSACK.stroke, styleAck.stroke, styleWindow.stroke} {
		if c := strings.Count(buf.String(), `stroke="`+colour+`"`); c < 2 {
			t.Errorf("colour %s drawn %d times, want the mark and its legend", colour, c)
		}
	}
}

func TestSVGOptions(t *testing.T) {
	g := tlpExchange(t).graph()
	var buf bytes.Buffer
	if err := g.WriteSVG(&buf, DrawOptions{From: 15 * ms, To: 40 * ms, Width: 800, Height: 500}); err != nil {
		t.Fatal(err)
	}
	texts, _ := wellFormed(t, buf.Bytes())
	if !strings.Contains(buf.String(), `width="800" height="500"`) || !strings.Contains(strings.Join(texts, " "), "time (ms)") {
		t.Errorf("zoomed picture:\n%s", buf.String())
	}
	for _, o := range []DrawOptions{{Width: 10}, {Height: 100000}, {From: 5 * ms, To: 2 * ms}, {From: -1}} {
		if err := g.WriteSVG(io.Discard, o); err == nil || !strings.Contains(err.Error(), "bad draw option") {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

// TestLargeCapture draws 150k segments: the picture stays small because
// marks in one pixel column merge.
func TestLargeCapture(t *testing.T) {
	e := newExchange(t, pcap.LinkTypeRaw)
	e.snap = 60 // headers only, as tcpdump -s 60 writes: quick to build
	e.handshake(rtt)
	const n = 100000
	for i := 1; i <= n; i++ {
		at := rtt + time.Duration(i)*5*time.Microsecond
		e.data(at, i)
		if i%1000 == 500 {
			e.data(at+time.Microsecond, i-100) // a retransmission now and then
		}
		if i%2 == 0 {
			e.ack(at+rtt, i-1, [2]int{i, i})
		}
	}
	c := e.capture()
	if c.Stats.Snapped < n {
		t.Errorf("%d snapped segments, want at least %d", c.Stats.Snapped, n)
	}
	g, err := c.Analyze(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if g.DataSegments != n+1+n/1000 || g.Retransmissions != n/1000 || g.Bytes != n*mss+1 {
		t.Errorf("%d segments, %d retransmissions, %d bytes", g.DataSegments, g.Retransmissions, g.Bytes)
	}
	var buf bytes.Buffer
	if err := g.WriteSVG(&buf, DrawOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d segments: SVG of %d bytes", c.Stats.TCP, buf.Len())
	if buf.Len() > 3<<20 {
		t.Errorf("SVG of %d bytes for %d segments, want at most 3 MiB", buf.Len(), c.Stats.TCP)
	}
	wellFormed(t, buf.Bytes())
}

func TestConnSelection(t *testing.T) {
	e := newExchange(t, pcap.LinkTypeEthernet)
	e.handshake(rtt)
	for i := 1; i <= 3; i++ {
		e.data(rtt+time.Duration(i)*ms, i)
	}
	e.ack(3*rtt, 3)
	// A second, smaller connection in the same capture, where the client
	// sends more than the server.
	e.client = netipAP("10.0.0.1:40001")
	e.handshake(rtt)
	e.packet(4*rtt, false, tcpData(clientISN+1, serverISN+1, 100), 100)
	c := e.capture()
	conns := c.Conns()
	if len(conns) != 2 || conns[0].String() != "10.0.0.1:40000-10.0.0.2:7" || conns[0].Bytes != [2]uint64{0, 3000} || conns[1].Bytes != [2]uint64{100, 0} {
		t.Fatalf("connections %+v", conns)
	}
	g, err := c.Analyze(Options{})
	if err != nil || g.Sender.String() != "10.0.0.2:7" || g.Bytes != 3001 {
		t.Fatalf("default: %v %+v", err, g)
	}
	for _, sel := range []string{"10.0.0.1:40001-10.0.0.2:7", "10.0.0.2:7-10.0.0.1:40001", " 10.0.0.2:7 - 10.0.0.1:40001 "} {
		g, err := c.Analyze(Options{Conn: sel})
		if err != nil || g.Sender.String() != "10.0.0.1:40001" || g.Receiver.String() != "10.0.0.2:7" || g.Bytes != 101 {
			t.Errorf("-conn %q: %v, sender %v bytes %d", sel, err, g.Sender, g.Bytes)
		}
	}
	g, err = c.Analyze(Options{Conn: "10.0.0.1:40001-10.0.0.2:7", Reverse: true})
	if err != nil || g.Sender.String() != "10.0.0.2:7" {
		t.Errorf("reverse: %v %v", err, g.Sender)
	}
	_, err = c.Analyze(Options{Conn: "10.0.0.1:40002-10.0.0.2:7"})
	if !errors.Is(err, ErrNoConn) || !strings.Contains(err.Error(), "10.0.0.1:40000-10.0.0.2:7 (7 segments, 0+3000 bytes)") ||
		!strings.Contains(err.Error(), "10.0.0.1:40001-10.0.0.2:7") || !strings.Contains(err.Error(), "40002") {
		t.Errorf("unknown connection: %v", err)
	}
	for _, bad := range []string{"10.0.0.1:40000", "10.0.0.1-10.0.0.2", "x:1-y:2", "[::1]:1-[::1]:2"} {
		if _, err := c.Analyze(Options{Conn: bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("-conn %q: %v", bad, err)
		}
	}
	if _, err := NewCapture().Analyze(Options{}); !errors.Is(err, ErrNoConn) {
		t.Errorf("empty capture: %v", err)
	}
}

func TestChecksums(t *testing.T) {
	// One corrupted segment among good ones is left out; a direction whose
	// segments all fail (checksum offload) is kept.
	e := newExchange(t, pcap.LinkTypeRaw)
	e.handshake(rtt)
	for i := 1; i <= 4; i++ {
		e.data(rtt+time.Duration(i)*ms, i)
		if i == 2 {
			e.last[len(e.last)-1] ^= 0xff
			e.duplicate(10 * ms) // a corrupted copy, later than a duplicate could be
		}
	}
	e.ack(3*rtt, 4)
	g := e.graph()
	if g.BadChecksums != 1 || g.Retransmissions != 0 || g.DataSegments != 5 {
		t.Errorf("corrupted: %d bad, %d retransmissions, %d segments", g.BadChecksums, g.Retransmissions, g.DataSegments)
	}

	o := newExchange(t, pcap.LinkTypeRaw)
	o.handshake(rtt)
	for i := 1; i <= 4; i++ {
		o.data(rtt+time.Duration(i)*ms, i)
		o.last[ipv4HeaderLen+16] ^= 0x55 // the checksum field
		o.buf.Truncate(o.buf.Len() - len(o.last))
		o.buf.Write(o.last)
	}
	g = o.graph()
	if g.BadChecksums != 0 || g.DataSegments != 5 || g.Bytes != 4001 {
		t.Errorf("offload: %d bad, %d segments, %d bytes", g.BadChecksums, g.DataSegments, g.Bytes)
	}

	// Partial checksums (the pseudo-header's sum, left for the device) on
	// a few segments only are kept, not taken for corruption.
	p := newExchange(t, pcap.LinkTypeRaw)
	p.handshake(rtt)
	for i := 1; i <= 4; i++ {
		p.data(rtt+time.Duration(i)*ms, i)
		if i == 3 {
			seg := p.last[ipv4HeaderLen:]
			tcp.SetPartialChecksum(seg, ipv4.Header(p.last).Source(), ipv4.Header(p.last).Destination())
			p.buf.Truncate(p.buf.Len() - len(p.last))
			p.buf.Write(p.last)
		}
	}
	p.ack(3*rtt, 4)
	g = p.graph()
	if g.BadChecksums != 0 || g.DataSegments != 5 {
		t.Errorf("partial: %d bad, %d segments", g.BadChecksums, g.DataSegments)
	}
}

func TestReadPcapRejects(t *testing.T) {
	var buf bytes.Buffer
	if _, err := pcap.NewWriter(&buf, 147); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPcap(bytes.NewReader(buf.Bytes())); !errors.Is(err, pcap.ErrLinkType) || !strings.Contains(err.Error(), "147") {
		t.Errorf("link type 147: %v", err)
	}
	// A capture cut inside a record still gives what came before it.
	e := tlpExchange(t)
	b := e.buf.Bytes()
	c, err := ReadPcap(bytes.NewReader(b[:len(b)-3]))
	if !errors.Is(err, pcap.ErrTruncated) || c == nil || c.Stats.TCP != 14 {
		t.Errorf("cut capture: %v, %+v", err, c)
	}
}
