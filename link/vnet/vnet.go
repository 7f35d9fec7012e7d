// Package vnet reads and writes the virtio_net_hdr that a Linux TAP or TUN
// device opened with IFF_VNET_HDR puts before every frame (struct
// virtio_net_hdr of include/uapi/linux/virtio_net.h; the virtio 1.x
// specification, §5.1.6 "Device Operation"), checks it against the frame
// it describes, and does in software what a device with offloads does in
// hardware: it cuts a TCP super-segment into segments (GSO, Split) and
// merges consecutive segments of one flow into one (GRO, Coalescer).
//
// The header is input from the kernel: Parse never panics, and Check
// rejects, with an error naming the fault, a header inconsistent with its
// frame (a GSO type for another protocol, a zero gso_size, checksum
// offsets outside the frame), and recomputes hdr_len, which the kernel
// may set to the length of the whole first packet on its forward path.
package vnet

import (
	"encoding/binary"
	"errors"

	"github.com/ustack/ustack/ip"
)

// HeaderLen is the size of struct virtio_net_hdr without the num_buffers
// field (which only a device with VIRTIO_NET_F_MRG_RXBUF adds); the
// opener sets it with TUNSETVNETHDRSZ.
const HeaderLen = 10

// Flags of virtio_net_hdr.flags.
const (
	// FlagNeedsChecksum (VIRTIO_NET_HDR_F_NEEDS_CSUM): the transport
	// checksum is partial; the sum from CsumStart to the end is to be
	// stored at CsumStart+CsumOffset.
	FlagNeedsChecksum = 1
	// FlagDataValid (VIRTIO_NET_HDR_F_DATA_VALID): the checksum was
	// verified, on input.
	FlagDataValid = 2
)

// GSO types of virtio_net_hdr.gso_type.
const (
	GSONone  = 0    // VIRTIO_NET_HDR_GSO_NONE: one packet
	GSOTCPv4 = 1    // VIRTIO_NET_HDR_GSO_TCPV4: TSO over IPv4
	GSOUDP   = 3    // VIRTIO_NET_HDR_GSO_UDP: UFO (IP fragments), obsolete
	GSOTCPv6 = 4    // VIRTIO_NET_HDR_GSO_TCPV6: TSO over IPv6
	GSOUDPL4 = 5    // VIRTIO_NET_HDR_GSO_UDP_L4: USO, UDP segmentation
	GSOECN   = 0x80 // VIRTIO_NET_HDR_GSO_ECN: the TCP segments carry CWR
)

// Header is struct virtio_net_hdr. The device exchanges it in the host's
// byte order (legacy virtio, which TUN and TAP speak unless told
// TUNSETVNETLE or TUNSETVNETBE).
type Header struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16 // bytes of link, IP and transport headers
	GSOSize    uint16 // payload bytes per segment (the MSS)
	CsumStart  uint16 // where the checksummed range begins, from the frame's start
	CsumOffset uint16 // where the checksum goes, from CsumStart
}

// Errors of Parse and Check. Each names one fault, so the caller counts
// its drop by reason.
var (
	// ErrTruncated: fewer than HeaderLen bytes, or a frame too short for
	// the headers the header describes.
	ErrTruncated = errors.New("vnet: truncated")
	// ErrGSOType: an unknown GSO type, or one for another protocol or IP
	// version than the frame's.
	ErrGSOType = errors.New("vnet: GSO type does not match the packet")
	// ErrGSOSize: a GSO frame with gso_size 0.
	ErrGSOSize = errors.New("vnet: invalid gso_size")
	// ErrChecksumOffset: csum_start or csum_offset outside the frame or
	// not where the transport header's checksum is.
	ErrChecksumOffset = errors.New("vnet: checksum offsets out of range")
	// ErrHeader: the IP or transport header the offload applies to is
	// malformed (IP version, header lengths, total length).
	ErrHeader = errors.New("vnet: malformed packet headers")
)

// Parse decodes the header at the start of b.
func Parse(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, ErrTruncated
	}
	e := binary.NativeEndian
	return Header{
		Flags:      b[0],
		GSOType:    b[1],
		HdrLen:     e.Uint16(b[2:]),
		GSOSize:    e.Uint16(b[4:]),
		CsumStart:  e.Uint16(b[6:]),
		CsumOffset: e.Uint16(b[8:]),
	}, nil
}

// Put writes h into b[:HeaderLen]; b must be at least that long.
func (h *Header) Put(b []byte) {
	_ = b[HeaderLen-1]
	e := binary.NativeEndian
	b[0], b[1] = h.Flags, h.GSOType
	e.PutUint16(b[2:], h.HdrLen)
	e.PutUint16(b[4:], h.GSOSize)
	e.PutUint16(b[6:], h.CsumStart)
	e.PutUint16(b[8:], h.CsumOffset)
}

// Checksum offsets from the start of the transport header: TCP's
// checksum field is at octet 16 (RFC 9293 §3.1), UDP's at 6 (RFC 768).
const (
	tcpChecksumOffset = 16
	udpChecksumOffset = 6
)

// Check validates h against the frame it came with, whose IP header
// starts at l3 (14 on a TAP device, after the Ethernet header; 0 on TUN),
// and returns the per-packet metadata for the stack, with offsets from
// the start of the IP datagram as ip.Offload has them. hdr_len is not
// trusted: it is recomputed from the IP and TCP header lengths
// (wireguard-go's tun handleVirtioRead does the same, since on its forward
// path the kernel may set it to the length of the whole first packet).
// A frame whose header is not valid is reported with one of the errors
// above and is to be dropped.
func Check(h Header, frame []byte, l3 int) (ip.Offload, error) {
	var o ip.Offload
	if h.Flags&FlagDataValid != 0 {
		o.DataValid = true
	}
	gso := h.GSOType &^ GSOECN
	if gso == GSONone && h.Flags&FlagNeedsChecksum == 0 {
		if h.GSOType != GSONone {
			return ip.Offload{}, ErrGSOType // ECN without segmentation
		}
		return o, nil
	}
	if l3 < 0 || len(frame) < l3+1 {
		return ip.Offload{}, ErrTruncated
	}
	pkt := frame[l3:]
	ihl, proto, err := ipHeader(pkt)
	if err != nil {
		return ip.Offload{}, err
	}
	switch gso {
	case GSONone:
	case GSOTCPv4:
		if pkt[0]>>4 != 4 || proto != ip.ProtocolTCP {
			return ip.Offload{}, ErrGSOType
		}
	case GSOTCPv6:
		if pkt[0]>>4 != 6 || proto != ip.ProtocolTCP {
			return ip.Offload{}, ErrGSOType
		}
	case GSOUDPL4:
		if proto != ip.ProtocolUDP || h.GSOType&GSOECN != 0 {
			return ip.Offload{}, ErrGSOType
		}
	default:
		return ip.Offload{}, ErrGSOType // UFO and unknown types
	}
	thl := 0
	switch proto {
	case ip.ProtocolTCP:
		if len(pkt) < ihl+20 {
			return ip.Offload{}, ErrTruncated
		}
		thl = int(pkt[ihl+12]>>4) * 4
		if thl < 20 {
			return ip.Offload{}, ErrHeader
		}
		o.ChecksumOffset = tcpChecksumOffset
	case ip.ProtocolUDP:
		thl = 8
		o.ChecksumOffset = udpChecksumOffset
	default:
		if gso != GSONone {
			return ip.Offload{}, ErrGSOType
		}
	}
	if len(pkt) < ihl+thl {
		return ip.Offload{}, ErrTruncated
	}
	if h.Flags&FlagNeedsChecksum != 0 {
		// The partial checksum must be the transport's own field: the
		// range starts at the transport header and the field lies in it.
		start, off := int(h.CsumStart)-l3, int(h.CsumOffset)
		if start < 0 || start+off+2 > len(pkt) {
			return ip.Offload{}, ErrChecksumOffset
		}
		if thl != 0 && (start != ihl || off != int(o.ChecksumOffset)) {
			return ip.Offload{}, ErrChecksumOffset
		}
		o.NeedsChecksum = true
		o.ChecksumStart, o.ChecksumOffset = uint16(start), uint16(off)
	} else if gso != GSONone {
		// Segmentation completes each segment's checksum anyway; the
		// range is the transport's.
		o.ChecksumStart = uint16(ihl)
	} else {
		o.ChecksumOffset = 0
	}
	if gso == GSONone {
		return o, nil
	}
	if h.GSOSize == 0 {
		return ip.Offload{}, ErrGSOSize
	}
	o.GSOType, o.GSOSize = h.GSOType, h.GSOSize
	return o, nil
}

// ipHeader returns the header length and transport protocol of the IPv4
// or IPv6 datagram pkt (whose IPv6 header has no extension headers: the
// offloads apply to those alone), checking that its length fields fit.
func ipHeader(pkt []byte) (ihl int, proto uint8, err error) {
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return 0, 0, ErrTruncated
		}
		ihl = int(pkt[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(pkt[2:]))
		if ihl < 20 || total < ihl {
			return 0, 0, ErrHeader
		}
		if total > len(pkt) {
			return 0, 0, ErrTruncated
		}
		return ihl, pkt[9], nil
	case 6:
		if len(pkt) < 40 {
			return 0, 0, ErrTruncated
		}
		if 40+int(binary.BigEndian.Uint16(pkt[4:])) > len(pkt) {
			return 0, 0, ErrTruncated
		}
		return 40, pkt[6], nil
	}
	return 0, 0, ErrHeader
}

// HeaderFor returns the virtio_net_hdr for a frame whose IP header starts
// at l3 and whose metadata is o, for a write to the device: the inverse
// of Check. hdrLen is the length of the link, IP and transport headers
// (used by the device only as a hint).
func HeaderFor(o *ip.Offload, l3, hdrLen int) Header {
	var h Header
	if o.NeedsChecksum {
		h.Flags |= FlagNeedsChecksum
		h.CsumStart = uint16(l3) + o.ChecksumStart
		h.CsumOffset = o.ChecksumOffset
	}
	if o.DataValid {
		h.Flags |= FlagDataValid
	}
	if o.GSOType&^GSOECN != GSONone {
		h.GSOType, h.GSOSize, h.HdrLen = o.GSOType, o.GSOSize, uint16(hdrLen)
	}
	return h
}
