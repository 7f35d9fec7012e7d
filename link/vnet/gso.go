package vnet

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/ustack/ustack/internal/checksum"
)

// ErrShortBuffer is returned by Split when its buffer cannot hold one
// segment, and by NewCoalescer for a buffer shorter than an IPv4
// datagram can be.
var ErrShortBuffer = errors.New("vnet: buffer too short")

// TCP flags in octet 13 of the TCP header (RFC 9293 §3.1; CWR and ECE
// from RFC 3168 §23.2).
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpURG = 0x20
	tcpCWR = 0x80
)

// Split cuts the TCP super-segment in frame, over IPv4 or IPv6, whose IP
// header starts at l3 (the link header before it, if any, is repeated on
// every segment), into segments of at most mss payload bytes, as a
// device does for VIRTIO_NET_HDR_GSO_TCPV4 and _TCPV6 (Linux's
// tcp_gso_segment); or a UDP super-datagram into datagrams of mss payload
// bytes for VIRTIO_NET_HDR_GSO_UDP_L4 (Linux's __udp_gso_segment: each
// with its own UDP Length and checksum). Each segment is built in buf and
// passed to emit, which must not keep it. Every segment gets the IP
// header with its own length (IPv4's Total Length, IPv6's Payload
// Length), and over IPv4 an Identification one more than the previous
// segment's (RFC 6864 §4.1 lets a source number atomic datagrams as it
// likes; Linux increments) and a new header checksum; the TCP header with
// its sequence number advanced by the bytes before it, CWR on the first
// segment only and FIN and PSH on the last only (RFC 3168 §6.1.2: CWR is
// set on one segment, the first one sent after the window is reduced),
// and a complete checksum over the family's pseudo-header (RFC 9293
// §3.1, RFC 8200 §8.1), whatever the super-segment's own checksum field
// held (full or the partial sum of NEEDS_CSUM). The payload's checksum is
// summed as it is copied.
//
// A super-segment of mss payload bytes or fewer comes out whole, with its
// checksums completed. Split returns ErrHeader for a frame that is not a
// well-formed unfragmented TCP or UDP datagram (over IPv6, one with an
// extension header: the offloads apply to the fixed header alone),
// ErrGSOSize for mss < 1, ErrShortBuffer when buf cannot hold the headers
// and mss bytes, and the first error emit returns.
func Split(frame []byte, l3, mss int, buf []byte, emit func(seg []byte) error) error {
	if mss < 1 {
		return ErrGSOSize
	}
	if l3 < 0 || len(frame) < l3+20 {
		return ErrTruncated
	}
	pkt := frame[l3:]
	ihl, total, proto, err := gsoHeader(pkt)
	if err != nil {
		return err
	}
	udp := proto == 17
	v6 := pkt[0]>>4 == 6
	thl := 8 // RFC 768
	if !udp {
		if total < ihl+20 {
			return ErrHeader
		}
		thl = int(pkt[ihl+12]>>4) * 4
	}
	if thl < 8 || ihl+thl > total {
		return ErrHeader
	}
	hl := l3 + ihl + thl
	if len(buf) < hl+min(mss, total-ihl-thl) {
		return ErrShortBuffer
	}
	src, dst := addrs(pkt, v6)
	payload := pkt[ihl+thl : total]
	var id uint16
	if !v6 {
		id = binary.BigEndian.Uint16(pkt[4:])
	}
	var seq uint32
	var flags byte
	if !udp {
		seq, flags = binary.BigEndian.Uint32(pkt[ihl+4:]), pkt[ihl+13]
	}
	for off, i := 0, 0; ; i++ {
		n := min(mss, len(payload)-off)
		last := off+n == len(payload)
		seg := buf[:hl+n]
		copy(seg, frame[:hl])
		_, psum := checksum.CopySum(seg[hl:], payload[off:off+n], 0)
		ih := seg[l3:]
		if v6 {
			binary.BigEndian.PutUint16(ih[4:], uint16(thl+n)) // RFC 8200 §3 Payload Length
		} else {
			binary.BigEndian.PutUint16(ih[2:], uint16(ihl+thl+n))
			binary.BigEndian.PutUint16(ih[4:], id+uint16(i))
			ih[10], ih[11] = 0, 0
			binary.BigEndian.PutUint16(ih[10:], checksum.Checksum(ih[:ihl], 0))
		}
		th := ih[ihl:]
		at := tcpChecksumOffset
		if udp {
			binary.BigEndian.PutUint16(th[4:], uint16(thl+n))
			at = udpChecksumOffset
		} else {
			binary.BigEndian.PutUint32(th[4:], seq+uint32(off))
			f := flags
			if !last {
				f &^= tcpFIN | tcpPSH
			}
			if i > 0 {
				f &^= tcpCWR
			}
			th[13] = f
		}
		th[at], th[at+1] = 0, 0
		sum := checksum.PseudoHeader(src, dst, proto, uint16(thl+n))
		sum = checksum.Combine(checksum.Sum(th[:thl], sum), psum)
		if udp && sum == 0xffff {
			sum = 0 // RFC 768, RFC 8200 §8.1: a computed zero goes as all ones
		}
		binary.BigEndian.PutUint16(th[at:], ^sum)
		if err := emit(seg); err != nil {
			return err
		}
		off += n
		if last {
			return nil
		}
	}
}

// ipv6HeaderLen is the length of the fixed IPv6 header (RFC 8200 §3).
const ipv6HeaderLen = 40

// gsoHeader checks that pkt is a datagram an offload may cut or merge:
// an unfragmented IPv4 datagram, or an IPv6 packet whose Next Header is
// the transport's (no extension header), carrying TCP or UDP, with
// length fields that fit pkt (a longer pkt is Ethernet padding). It
// returns the IP header length (40 for IPv6), the datagram's length and
// the transport protocol.
func gsoHeader(pkt []byte) (ihl, total int, proto uint8, err error) {
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		ihl = int(pkt[0]&0x0f) * 4
		total = int(binary.BigEndian.Uint16(pkt[2:]))
		if ihl < 20 || total > len(pkt) || total < ihl+8 {
			return 0, 0, 0, ErrHeader
		}
		if binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 {
			return 0, 0, 0, ErrHeader // a fragment (MF or an offset): not a segment
		}
		proto = pkt[9]
	case len(pkt) >= ipv6HeaderLen && pkt[0]>>4 == 6:
		ihl = ipv6HeaderLen
		total = ihl + int(binary.BigEndian.Uint16(pkt[4:]))
		if total > len(pkt) || total < ihl+8 {
			return 0, 0, 0, ErrHeader
		}
		proto = pkt[6]
	default:
		return 0, 0, 0, ErrHeader
	}
	if proto != 6 && proto != 17 {
		return 0, 0, 0, ErrHeader
	}
	return ihl, total, proto, nil
}

// addrs returns the source and destination addresses of the IPv4 or
// (v6) IPv6 header pkt.
func addrs(pkt []byte, v6 bool) (src, dst netip.Addr) {
	if v6 {
		return netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40]))
	}
	return netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
}

// Segments returns how many segments of at most mss payload bytes the
// super-segment with payload bytes of TCP payload holds (at least one).
func Segments(payload, mss int) int {
	if mss < 1 || payload <= mss {
		return 1
	}
	return (payload + mss - 1) / mss
}

// CompleteChecksum stores the transport checksum of the datagram pkt
// whose metadata said NEEDS_CSUM: the one's-complement sum of
// pkt[start:], into which the device left the pseudo-header's sum at
// start+offset, goes to start+offset (virtio 1.x §5.1.6.2: "the device
// ... will complete the checksum"). It reports false, changing nothing,
// when the offsets do not fit pkt.
func CompleteChecksum(pkt []byte, start, offset int) bool {
	if start < 0 || offset < 0 || start+offset+2 > len(pkt) {
		return false
	}
	at := start + offset
	binary.BigEndian.PutUint16(pkt[at:], ^checksum.Sum(pkt[start:], 0))
	return true
}
