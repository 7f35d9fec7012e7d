package vnet

import (
	"bytes"
	"encoding/binary"
	"math/bits"

	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ip"
)

// Coalescer merges consecutive in-order TCP segments of one flow, over
// IPv4 or IPv6, into one super-segment, as Linux's GRO does
// (inet_gro_receive, ipv6_gro_receive and tcp_gro_receive), so that TCP
// handles a batch of segments once. It is pure: bytes in, bytes out, no
// clock.
//
// A segment joins the super-segment only when that is safe: the same
// addresses, ports, TOS, TTL and DF bit, no IP options, no fragment
// (over IPv6: the same addresses, Traffic Class, Flow Label and Hop
// Limit, and no extension header, as ipv6_gro_receive asks); the
// next sequence number; the same acknowledgment number, data offset,
// window and option bytes (the timestamps included, as Linux compares
// them); no SYN, RST or URG, and no CWR but on the first segment; and a
// payload no longer than the first segment's, which sets the size every
// segment but the last must have. A segment shorter than that, or with
// PSH or FIN, ends the super-segment: it joins, and nothing joins after
// it. Each segment's checksum is verified as its payload is copied
// (a corrupt segment never joins, and is left for the stack to count),
// and the super-segment leaves with a complete checksum.
type Coalescer struct {
	buf    []byte
	n      int    // bytes of the super-segment in buf; 0: empty
	segs   int    // segments held
	mss    int    // payload bytes of the first segment
	ihl    int    // IP header length: 20 (IPv4, no options join) or 40 (IPv6)
	thl    int    // TCP header length
	psum   uint16 // one's-complement sum of the payload, from its first byte
	closed bool   // the last segment ended the super-segment
}

// NewCoalescer returns a Coalescer that builds its super-segments in buf,
// which must hold the largest IPv4 datagram (65535 bytes): the
// super-segment is never longer, over IPv6 too.
func NewCoalescer(buf []byte) (*Coalescer, error) {
	if len(buf) < 65535 {
		return nil, ErrShortBuffer
	}
	return &Coalescer{buf: buf[:65535]}, nil
}

// Len returns the length of the super-segment held, 0 if none.
func (c *Coalescer) Len() int { return c.n }

// Segments returns how many segments the super-segment holds.
func (c *Coalescer) Segments() int { return c.segs }

// Add merges the IPv4 or IPv6 datagram pkt into the super-segment held, or, if
// none is held, starts one with it, and reports whether it did. When it
// reports false the Coalescer is unchanged: the caller Flushes what it
// holds and Adds pkt again, and a pkt refused by an empty Coalescer (not
// a TCP segment with data, a SYN, RST or URG, a bad checksum) is to be
// delivered as it is.
func (c *Coalescer) Add(pkt []byte) bool {
	ihl, thl, plen, ok := tcpSegment(pkt)
	if !ok {
		return false
	}
	th := pkt[ihl:]
	if th[13]&(tcpSYN|tcpRST|tcpURG) != 0 || plen == 0 {
		return false
	}
	if c.n == 0 {
		return c.start(pkt, ihl, thl, plen)
	}
	if c.closed || !c.matches(pkt, thl, plen) {
		return false
	}
	if c.n+plen > len(c.buf) {
		return false
	}
	payload := pkt[ihl+thl : ihl+thl+plen]
	_, s := checksum.CopySum(c.buf[c.n:], payload, 0)
	if !c.verify(pkt, ihl, thl, plen, s) {
		return false
	}
	// The piece's words start at an odd offset of the payload when the
	// bytes before it are odd in number: its sum is then byte-swapped in
	// the whole (RFC 1071 §2(B), byte order independence).
	if (c.n-c.ihl-c.thl)&1 == 1 {
		s = bits.RotateLeft16(s, 8)
	}
	c.psum = checksum.Combine(c.psum, s)
	c.n += plen
	c.segs++
	f := th[13]
	c.buf[c.ihl+13] |= f & (tcpFIN | tcpPSH)
	if plen < c.mss || f&(tcpFIN|tcpPSH) != 0 {
		c.closed = true
	}
	return true
}

// start begins a super-segment with pkt.
func (c *Coalescer) start(pkt []byte, ihl, thl, plen int) bool {
	if ihl != 20 && pkt[0]>>4 == 4 {
		return false // IPv4 options never join
	}
	hl := ihl + thl
	copy(c.buf, pkt[:hl])
	_, s := checksum.CopySum(c.buf[hl:], pkt[hl:hl+plen], 0)
	if !c.verify(pkt, ihl, thl, plen, s) {
		return false
	}
	f := pkt[ihl+13]
	*c = Coalescer{buf: c.buf, n: hl + plen, segs: 1, mss: plen, ihl: ihl, thl: thl, psum: s,
		closed: f&(tcpFIN|tcpPSH) != 0}
	return true
}

// verify reports whether pkt's TCP checksum is right, given the sum of
// its payload.
func (c *Coalescer) verify(pkt []byte, ihl, thl, plen int, psum uint16) bool {
	src, dst := addrs(pkt, pkt[0]>>4 == 6)
	sum := checksum.PseudoHeader(src, dst, 6, uint16(thl+plen))
	sum = checksum.Combine(checksum.Sum(pkt[ihl:ihl+thl], sum), psum)
	return sum == 0xffff
}

// matches reports whether pkt, a TCP segment with
// thl of TCP header and plen of payload, may follow the super-segment.
func (c *Coalescer) matches(pkt []byte, thl, plen int) bool {
	h := c.buf
	if pkt[0]>>4 != h[0]>>4 {
		return false // another family
	}
	if pkt[0]>>4 == 6 {
		// Version, Traffic Class, Flow Label; Next Header, Hop Limit;
		// the addresses (ipv6_gro_receive compares the same; the Payload
		// Length differs).
		if !bytes.Equal(pkt[0:4], h[0:4]) || !bytes.Equal(pkt[6:40], h[6:40]) {
			return false
		}
		return c.matchesTCP(pkt, thl, plen)
	}
	if pkt[0] != h[0] || pkt[1] != h[1] || pkt[8] != h[8] {
		return false // IHL (so no options), TOS, TTL
	}
	if pkt[6]&0x40 != h[6]&0x40 || !bytes.Equal(pkt[12:20], h[12:20]) {
		return false // DF, addresses
	}
	if h[6]&0x40 == 0 {
		// Without DF the IDs must run on (Linux's flush_id; with DF,
		// RFC 6864 §4.1 leaves atomic datagrams' IDs to the source).
		if binary.BigEndian.Uint16(pkt[4:]) != binary.BigEndian.Uint16(h[4:])+uint16(c.segs) {
			return false
		}
	}
	return c.matchesTCP(pkt, thl, plen)
}

// matchesTCP is matches for the TCP header, after the IP header matched.
func (c *Coalescer) matchesTCP(pkt []byte, thl, plen int) bool {
	if thl != c.thl || plen > c.mss {
		return false
	}
	th, hth := pkt[c.ihl:], c.buf[c.ihl:]
	if !bytes.Equal(th[0:4], hth[0:4]) { // ports
		return false
	}
	next := binary.BigEndian.Uint32(hth[4:]) + uint32(c.n-c.ihl-c.thl)
	if binary.BigEndian.Uint32(th[4:]) != next {
		return false
	}
	if !bytes.Equal(th[8:12], hth[8:12]) || th[12] != hth[12] {
		return false // ACK, data offset
	}
	if th[13]&tcpCWR != 0 || (th[13]^hth[13])&^(tcpFIN|tcpPSH|tcpCWR) != 0 {
		return false // Linux: flush on CWR; other flags must agree
	}
	// Window and option bytes; the checksum and urgent pointer differ.
	return bytes.Equal(th[14:16], hth[14:16]) && bytes.Equal(th[20:thl], hth[20:thl])
}

// Flush finishes the super-segment held, returns it with its metadata
// and empties the Coalescer; pkt is valid until the next Add. The IPv4
// Total Length and header checksum (IPv6's Payload Length) and the TCP
// checksum are complete. Metadata: DataValid (every segment's checksum
// was verified) and, for more than one segment, GSO TCPv4 or TCPv6 with
// the first segment's payload size (the MSS the segments were cut at).
// It returns nil when empty.
func (c *Coalescer) Flush() (pkt []byte, o ip.Offload, segs int) {
	if c.n == 0 {
		return nil, ip.Offload{}, 0
	}
	pkt = c.buf[:c.n]
	v6 := pkt[0]>>4 == 6
	gso := uint8(GSOTCPv4)
	if v6 {
		binary.BigEndian.PutUint16(pkt[4:], uint16(c.n-c.ihl))
		gso = GSOTCPv6
	} else {
		binary.BigEndian.PutUint16(pkt[2:], uint16(c.n))
		pkt[10], pkt[11] = 0, 0
		binary.BigEndian.PutUint16(pkt[10:], checksum.Checksum(pkt[:c.ihl], 0))
	}
	th := pkt[c.ihl:]
	th[16], th[17] = 0, 0
	src, dst := addrs(pkt, v6)
	sum := checksum.PseudoHeader(src, dst, 6, uint16(c.n-c.ihl))
	sum = checksum.Combine(checksum.Sum(th[:c.thl], sum), c.psum)
	binary.BigEndian.PutUint16(th[16:], ^sum)
	o.DataValid = true
	if c.segs > 1 {
		o.GSOType, o.GSOSize = gso, uint16(c.mss)
		o.ChecksumStart, o.ChecksumOffset = uint16(c.ihl), tcpChecksumOffset
	}
	segs = c.segs
	*c = Coalescer{buf: c.buf}
	return pkt, o, segs
}

// tcpSegment checks that pkt is an unfragmented TCP/IPv4 datagram with
// a valid header checksum, or a TCP/IPv6 packet without extension
// headers (gsoHeader), whose TCP header fits, and returns its IP and TCP
// header lengths and payload length.
func tcpSegment(pkt []byte) (ihl, thl, plen int, ok bool) {
	ihl, total, proto, err := gsoHeader(pkt)
	if err != nil || proto != 6 || total < ihl+20 {
		return 0, 0, 0, false
	}
	if pkt[0]>>4 == 4 && checksum.Sum(pkt[:ihl], 0) != 0xffff {
		return 0, 0, 0, false // a bad IPv4 header checksum
	}
	thl = int(pkt[ihl+12]>>4) * 4
	if thl < 20 || ihl+thl > total {
		return 0, 0, 0, false
	}
	return ihl, thl, total - ihl - thl, true
}
