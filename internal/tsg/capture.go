// Package tsg draws the time-sequence graph of a TCP connection (the
// Stevens and tcptrace picture: sequence number against time) from a
// packet capture, as a self-contained SVG.
//
// A Capture collects the TCP segments of a capture file, grouped by
// connection; Analyze picks one connection and direction and works out
// what its sender did (new data, retransmissions, timeouts and loss
// probes, network duplicates) and what its receiver said (the ACK line,
// the window, SACK and D-SACK blocks); Graph.WriteSVG draws the result.
// The package is pure: it reads no clock and starts no goroutines, so all
// of it is testable from synthetic captures.
package tsg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/pcap"
	"github.com/ustack/ustack/tcp"
)

// CaptureStats counts the packets a Capture saw and why it set some aside.
type CaptureStats struct {
	Packets    int // records offered to Add
	TCP        int // IPv4 TCP segments kept
	LinkErrors int // frames whose link-layer header was unreadable
	NotIPv4    int // ARP, IPv6 and other network protocols (IPv6 is not drawn)
	Malformed  int // IPv4 or TCP headers that failed validation
	Fragments  int // IPv4 fragments (not reassembled)
	NotTCP     int // IPv4 packets of other protocols
	Snapped    int // segments cut by the snap length (payload length from the IP header, checksum unverified)
	// PartialChecksums counts segments whose checksum field holds the
	// pseudo-header's sum alone, left for a device to finish (transmit
	// checksum offload): kept as good.
	PartialChecksums int
}

// segment is what the analysis needs of one TCP segment.
type segment struct {
	t        int64 // capture time, ns since the Unix epoch
	dir      uint8 // 0: from Conn.A, 1: from Conn.B
	flags    tcp.Flags
	badCsum  bool // the TCP checksum did not verify
	snapped  bool // cut by the snap length: the checksum could not be checked
	nsack    uint8
	wscale   int8 // Window Scale option, -1 when absent
	seq, ack uint32
	plen     uint32 // payload length, from the IP header
	win      uint16
	ipID     uint16
	csum     uint16 // the TCP checksum field, to recognise duplicates
	sack     [tcp.MaxSACKBlocks]tcp.SACKBlock
}

// Conn names one connection of a capture and sums its traffic.
type Conn struct {
	// A is the endpoint that sent the first SYN seen, or else the source
	// of the connection's first segment; B is its peer.
	A, B netip.AddrPort
	// Segments counts the TCP segments of both directions.
	Segments int
	// Bytes holds the payload bytes sent by A (Bytes[0]) and by B
	// (Bytes[1]), retransmissions included.
	Bytes [2]uint64
}

// String returns the connection as -conn names it: "A-B".
func (c Conn) String() string { return c.A.String() + "-" + c.B.String() }

type connKey struct{ lo, hi netip.AddrPort }

func keyOf(src, dst netip.AddrPort) connKey {
	if src.Addr().Less(dst.Addr()) || (src.Addr() == dst.Addr() && src.Port() < dst.Port()) {
		return connKey{src, dst}
	}
	return connKey{dst, src}
}

type connData struct {
	Conn
	first int // order of appearance
	segs  []segment
}

// Capture holds the TCP segments of a capture, by connection. The zero
// value is not usable; call NewCapture.
type Capture struct {
	// Stats counts what Add saw.
	Stats CaptureStats
	conns map[connKey]*connData
	buf   []byte // scratch for snapped packets
}

// NewCapture returns an empty Capture.
func NewCapture() *Capture {
	return &Capture{conns: make(map[connKey]*connData)}
}

// ReadPcap reads a whole libpcap capture (see pcap.Reader for the formats)
// into a Capture. A damaged record ends the reading with an error; the
// Capture returned with it holds what came before, so a capture cut short
// by a crash can still be drawn.
func ReadPcap(r io.Reader) (*Capture, error) {
	pr, err := pcap.NewReader(r)
	if err != nil {
		return nil, err
	}
	if _, _, err := pcap.Network(pr.LinkType(), nil); errors.Is(err, pcap.ErrLinkType) {
		return nil, err
	}
	c := NewCapture()
	for {
		rec, err := pr.Next()
		if err == io.EOF {
			return c, nil
		}
		if err != nil {
			return c, err
		}
		c.Add(rec.Time, pr.LinkType(), rec.Data, rec.OrigLen)
	}
}

// Add records one captured frame of the given pcap link type. origLen is
// its length on the wire (len(frame) when it was captured whole). Frames
// that are not IPv4 TCP, or whose headers are malformed, are counted in
// Stats and otherwise ignored; Add never fails and keeps no reference to
// frame.
func (c *Capture) Add(ts time.Time, linkType uint32, frame []byte, origLen int) {
	c.Stats.Packets++
	typ, pkt, err := pcap.Network(linkType, frame)
	if err != nil {
		c.Stats.LinkErrors++
		return
	}
	if typ != link.EtherTypeIPv4 {
		c.Stats.NotIPv4++
		return
	}
	snapped := false
	h, err := ipv4.ParseHeader(pkt)
	if errors.Is(err, ipv4.ErrTruncated) && origLen > len(frame) && len(pkt) >= ipv4.HeaderLen {
		// The snap length cut the packet. Its headers may still be whole:
		// pad the payload with zeros to the IP total length, so that the
		// sequence space it covers is known (its checksum is not).
		total := int(binary.BigEndian.Uint16(pkt[2:]))
		if total > len(pkt) {
			c.buf = append(c.buf[:0], pkt...)
			c.buf = append(c.buf, make([]byte, total-len(pkt))...)
			h, err = ipv4.ParseHeader(c.buf)
			snapped = true
		}
	}
	if err != nil {
		c.Stats.Malformed++
		return
	}
	if h.IsFragment() {
		c.Stats.Fragments++
		return
	}
	if h.Protocol() != tcp.ProtocolNumber {
		c.Stats.NotTCP++
		return
	}
	src, dst := h.Source(), h.Destination()
	b := h.Payload()
	s, err := tcp.ParseSegment(b, src, dst)
	bad := false
	if errors.Is(err, tcp.ErrChecksum) {
		// ParseSegment checks the checksum before the ports and options.
		// A checksum that does not verify is kept and marked: with
		// transmit checksum offload a capture holds every sent segment
		// with a partial checksum (Analyze decides per direction).
		s, err = tcp.Segment(b), nil
		var o tcp.Options
		if s.SourcePort() == 0 || s.DestinationPort() == 0 || tcp.ParseOptions(s.OptionBytes(), &o) != nil {
			err = tcp.ErrOptions
		}
		// A partial checksum, the pseudo-header's sum alone, is what a
		// stack leaves for its device to finish (CHECKSUM_PARTIAL,
		// NEEDS_CSUM; link/pcap records ustack's so): not corruption.
		if err == nil && binary.BigEndian.Uint16(b[16:18]) == checksum.PseudoHeader(src, dst, tcp.ProtocolNumber, uint16(len(b))) {
			c.Stats.PartialChecksums++
		} else {
			bad = !snapped
		}
	}
	if err != nil {
		c.Stats.Malformed++
		return
	}
	if snapped {
		c.Stats.Snapped++
	}
	c.Stats.TCP++
	var o tcp.Options
	s.Options(&o)
	sa, da := netip.AddrPortFrom(src, s.SourcePort()), netip.AddrPortFrom(dst, s.DestinationPort())
	k := keyOf(sa, da)
	cd := c.conns[k]
	if cd == nil {
		cd = &connData{Conn: Conn{A: sa, B: da}, first: len(c.conns)}
		c.conns[k] = cd
	}
	f := s.Flags()
	if f.Has(tcp.FlagSYN) && !f.Has(tcp.FlagACK) && cd.A != sa && !cd.sawSYN() {
		// The first SYN names the client; swap what came before it.
		cd.A, cd.B = cd.B, cd.A
		cd.Bytes[0], cd.Bytes[1] = cd.Bytes[1], cd.Bytes[0]
		for i := range cd.segs {
			cd.segs[i].dir ^= 1
		}
	}
	seg := segment{
		t:       ts.UnixNano(),
		flags:   f,
		badCsum: bad,
		snapped: snapped,
		wscale:  o.WindowScale,
		seq:     uint32(s.Seq()),
		ack:     uint32(s.Ack()),
		plen:    uint32(len(s.Payload())),
		win:     s.Window(),
		ipID:    h.ID(),
		csum:    s.Checksum(),
		nsack:   uint8(o.NumSACK),
		sack:    o.SACK,
	}
	if sa != cd.A {
		seg.dir = 1
	}
	cd.Segments++
	cd.Bytes[seg.dir] += uint64(seg.plen)
	cd.segs = append(cd.segs, seg)
}

// sawSYN reports whether a SYN without ACK is among the segments so far.
func (cd *connData) sawSYN() bool {
	for _, s := range cd.segs {
		if s.flags.Has(tcp.FlagSYN) && !s.flags.Has(tcp.FlagACK) {
			return true
		}
	}
	return false
}

// Conns returns the capture's connections, most payload bytes first (ties
// in order of appearance).
func (c *Capture) Conns() []Conn {
	all := c.sorted()
	out := make([]Conn, len(all))
	for i, cd := range all {
		out[i] = cd.Conn
	}
	return out
}

func (c *Capture) sorted() []*connData {
	all := make([]*connData, 0, len(c.conns))
	for _, cd := range c.conns {
		all = append(all, cd)
	}
	sort.Slice(all, func(i, j int) bool {
		bi, bj := all[i].Bytes[0]+all[i].Bytes[1], all[j].Bytes[0]+all[j].Bytes[1]
		if bi != bj {
			return bi > bj
		}
		return all[i].first < all[j].first
	})
	return all
}

// ErrNoConn reports a capture without a TCP connection, or without the one
// asked for.
var ErrNoConn = errors.New("tsg: connection not found")

// find returns the connection sel names ("10.0.0.2:7-10.0.0.1:40000", in
// either order), or the one with the most payload bytes when sel is empty.
func (c *Capture) find(sel string) (*connData, error) {
	all := c.sorted()
	if len(all) == 0 {
		return nil, fmt.Errorf("%w: the capture holds no IPv4 TCP segments (%d packets read, %d of them not IPv4, %d malformed)",
			ErrNoConn, c.Stats.Packets, c.Stats.NotIPv4, c.Stats.Malformed)
	}
	if sel == "" {
		return all[0], nil
	}
	x, y, err := ParseConn(sel)
	if err != nil {
		return nil, err
	}
	if cd := c.conns[keyOf(x, y)]; cd != nil {
		return cd, nil
	}
	var list strings.Builder
	for i, cd := range all {
		if i == 20 {
			fmt.Fprintf(&list, "\n  ... and %d more", len(all)-i)
			break
		}
		fmt.Fprintf(&list, "\n  %s (%d segments, %d+%d bytes)", cd.Conn, cd.Segments, cd.Bytes[0], cd.Bytes[1])
	}
	return nil, fmt.Errorf("%w: %s; the capture holds:%s", ErrNoConn, sel, list.String())
}

// ParseConn parses a connection as -conn names it, "ADDR:PORT-ADDR:PORT"
// (IPv4 addresses), and returns the two endpoints in the order given.
func ParseConn(s string) (x, y netip.AddrPort, err error) {
	a, b, ok := strings.Cut(s, "-")
	if ok {
		x, err = netip.ParseAddrPort(strings.TrimSpace(a))
		if err == nil {
			y, err = netip.ParseAddrPort(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil || !x.Addr().Is4() || !y.Addr().Is4() {
		return x, y, fmt.Errorf("tsg: bad connection %q: want LOCAL-REMOTE as ADDR:PORT-ADDR:PORT, e.g. 10.0.0.2:7-10.0.0.1:40000", s)
	}
	return x, y, nil
}
