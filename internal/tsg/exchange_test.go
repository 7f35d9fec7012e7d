package tsg

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/pcap"
	"github.com/ustack/ustack/tcp"
)

// exchange builds a synthetic capture, taken at the data sender (the
// server), of a transfer from server to client with 1000-byte segments:
// the test scripts which segments the capture shows and when.
type exchange struct {
	t        *testing.T
	buf      bytes.Buffer
	w        *pcap.Writer
	linkType uint32
	start    time.Time
	client   netip.AddrPort
	server   netip.AddrPort
	ids      [2]uint16
	last     []byte // the last frame written, for duplicates
	lastAt   time.Duration
	snap     int // cut frames to this many bytes when non-zero
}

const (
	mss       = 1000
	clientISN = 5000
	serverISN = 0xfffff000 // wraps within the first few KB
)

func newExchange(t *testing.T, linkType uint32) *exchange {
	e := &exchange{
		t: t, linkType: linkType,
		start:  time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC),
		client: netip.MustParseAddrPort("10.0.0.1:40000"),
		server: netip.MustParseAddrPort("10.0.0.2:7"),
	}
	var err error
	if e.w, err = pcap.NewWriter(&e.buf, linkType); err != nil {
		t.Fatal(err)
	}
	return e
}

// packet writes one segment at time at (since the start).
func (e *exchange) packet(at time.Duration, fromServer bool, h tcp.Header, payload int) {
	src, dst := e.client, e.server
	dir := 0
	if fromServer {
		src, dst, dir = e.server, e.client, 1
	}
	h.SrcPort, h.DstPort = src.Port(), dst.Port()
	tl := h.Len() + payload
	n := ipv4.HeaderLen + tl
	off := 0
	if e.linkType == pcap.LinkTypeEthernet {
		off = link.EthernetHeaderLen
	}
	snapped := e.snap > 0 && off+n > e.snap
	frame := make([]byte, off+n)
	if off > 0 {
		link.PutEthernetHeader(frame, link.MAC{2, 0, 0, 0, 0, byte(1 + dir)}, link.MAC{2, 0, 0, 0, 0, byte(2 - dir)}, link.EtherTypeIPv4)
	}
	e.ids[dir]++
	ipv4.PutHeader(frame[off:], &ipv4.Fields{TotalLength: uint16(n), ID: e.ids[dir], DontFragment: true, TTL: 64,
		Protocol: tcp.ProtocolNumber, Source: src.Addr(), Destination: dst.Addr()})
	seg := frame[off+ipv4.HeaderLen:]
	h.Encode(seg)
	if !snapped { // a cut record's checksum cannot be checked anyway
		for i := range payload {
			seg[h.Len()+i] = byte(i)
		}
		tcp.SetChecksum(seg, src.Addr(), dst.Addr())
	}
	e.write(at, frame)
}

func (e *exchange) write(at time.Duration, frame []byte) {
	e.last, e.lastAt = frame, at
	rec := frame
	if e.snap > 0 && len(rec) > e.snap {
		e.writeSnapped(at, frame)
		return
	}
	if err := e.w.WriteRecord(e.start.Add(at), rec); err != nil {
		e.t.Fatal(err)
	}
}

// writeSnapped appends a record holding the first e.snap bytes of frame
// and its full original length, as tcpdump -s writes it.
func (e *exchange) writeSnapped(at time.Duration, frame []byte) {
	ts := e.start.Add(at)
	var hdr [16]byte
	le := func(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }
	le(hdr[0:], uint32(ts.Unix()))
	le(hdr[4:], uint32(ts.Nanosecond()/1000))
	le(hdr[8:], uint32(e.snap))
	le(hdr[12:], uint32(len(frame)))
	e.buf.Write(hdr[:])
	e.buf.Write(frame[:e.snap])
}

// duplicate writes the last frame again, as a network duplicate.
func (e *exchange) duplicate(after time.Duration) { e.write(e.lastAt+after, e.last) }

// handshake: the client's SYN at 0, the SYN-ACK at 0 (the capture is at
// the server), the client's ACK one RTT later.
func (e *exchange) handshake(rtt time.Duration) {
	syn := &tcp.Options{MSS: 1460, WindowScale: 7, SACKPermitted: true}
	e.packet(0, false, tcp.Header{Seq: clientISN, Flags: tcp.FlagSYN, Window: 65535, Options: syn}, 0)
	e.packet(0, true, tcp.Header{Seq: serverISN, Ack: clientISN + 1, Flags: tcp.FlagSYN | tcp.FlagACK, Window: 65535,
		Options: &tcp.Options{MSS: mss, WindowScale: 7, SACKPermitted: true}}, 0)
	e.packet(rtt, false, tcp.Header{Seq: clientISN + 1, Ack: serverISN + 1, Flags: tcp.FlagACK, Window: 512}, 0)
}

// data sends segment i (1-based: bytes (i-1)*mss+1 .. i*mss relative).
func (e *exchange) data(at time.Duration, i int) {
	e.packet(at, true, tcp.Header{Seq: tcp.Value(serverISN + 1 + uint32(i-1)*mss), Ack: clientISN + 1,
		Flags: tcp.FlagACK | tcp.FlagPSH, Window: 512}, mss)
}

// ack sends the client's ACK of segments up to i, with SACK blocks given
// as segment ranges [from, to] (1-based, inclusive).
func (e *exchange) ack(at time.Duration, i int, sacks ...[2]int) { e.ackWin(at, i, 512, sacks...) }

// ackWin is ack with a window field of win (scaled by 7).
func (e *exchange) ackWin(at time.Duration, i int, win uint16, sacks ...[2]int) {
	h := tcp.Header{Seq: clientISN + 1, Ack: tcp.Value(serverISN + 1 + uint32(i)*mss), Flags: tcp.FlagACK, Window: win}
	if len(sacks) > 0 {
		o := &tcp.Options{WindowScale: -1, NumSACK: len(sacks)}
		for j, s := range sacks {
			o.SACK[j] = tcp.SACKBlock{Left: tcp.Value(serverISN + 1 + uint32(s[0]-1)*mss), Right: tcp.Value(serverISN + 1 + uint32(s[1])*mss)}
		}
		h.Options = o
	}
	e.packet(at, false, h, 0)
}

func (e *exchange) capture() *Capture {
	e.t.Helper()
	c, err := ReadPcap(bytes.NewReader(e.buf.Bytes()))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *exchange) graph() *Graph {
	e.t.Helper()
	g, err := e.capture().Analyze(Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	return g
}

const ms = time.Millisecond

const ipv4HeaderLen = ipv4.HeaderLen

func netipAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// tcpData is the header of a client data segment.
func tcpData(seq, ack uint32, _ int) tcp.Header {
	return tcp.Header{Seq: tcp.Value(seq), Ack: tcp.Value(ack), Flags: tcp.FlagACK | tcp.FlagPSH, Window: 512}
}
