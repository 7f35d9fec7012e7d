package ip

import "net/netip"

// Protocol numbers of the IPv4 Protocol and IPv6 Next Header fields
// (the IANA registry that RFC 790 began, now "Assigned Internet Protocol
// Numbers").
const (
	ProtocolICMP   = 1
	ProtocolTCP    = 6
	ProtocolUDP    = 17
	ProtocolICMPv6 = 58
)

// Packet describes one datagram between the network and the transport
// layers, whatever its family: the IP layer fills it in from a valid
// header on input and from the route on output, and transports, the ICMP
// code and the hook points read it instead of an IPv4 or IPv6 header.
//
// A Packet is a view: Datagram and Payload alias the buffer the datagram
// sits in, valid only while the caller that passed the Packet runs.
type Packet struct {
	// Source and Destination are the datagram's addresses; for IPv4 they
	// are 4-byte Addrs (never IPv4-mapped IPv6 ones).
	Source, Destination netip.Addr
	// Protocol is the transport (IPv4 Protocol, IPv6 Next Header of the
	// last extension header), one of the Protocol constants.
	Protocol uint8
	// TTL is the IPv4 Time to Live or the IPv6 Hop Limit.
	TTL uint8
	// TOS is the IPv4 Type of Service or the IPv6 Traffic Class octet
	// (DSCP and ECN, RFC 2474 and RFC 3168).
	TOS uint8
	// NIC is the interface the datagram came in on or goes out of (a
	// stack.NICID); 0 if none yet.
	NIC int
	// Broadcast is set when the datagram was sent to a link-layer
	// broadcast, the limited broadcast or a subnet's directed broadcast
	// address (RFC 1122 §3.3.6): transports must not answer it with an
	// error or a reset.
	Broadcast bool
	// Multicast is set when the destination is a multicast address.
	Multicast bool
	// Datagram is the whole datagram as received, IP header included (for
	// an ICMP error to quote, RFC 1122 §3.2.2); nil on output before the
	// header is written.
	Datagram []byte
	// Payload is the transport's bytes: the datagram after the IP header
	// (and any IPv6 extension headers).
	Payload []byte
	// Offload is reserved for what a device with offloads needs to know
	// about the packet, or has done to it.
	Offload Offload
}

// Is4 reports whether p is an IPv4 datagram.
func (p *Packet) Is4() bool { return p.Destination.Is4() }

// Offload is the per-packet offload metadata (the virtio_net_hdr fields of
// a TUN or TAP device opened with IFF_VNET_HDR): segmentation to do or
// done, a checksum left to complete, one already verified. The zero value
// means none: the packet is one datagram with its checksums complete.
type Offload struct {
	// GSOType is the segmentation the device is to perform on output
	// (or performed, coalescing, on input); 0 is none. Its values are
	// the VIRTIO_NET_HDR_GSO_* constants.
	GSOType uint8
	// GSOSize is the payload size of each segment (the MSS) when GSOType
	// is set.
	GSOSize uint16
	// ChecksumStart and ChecksumOffset locate a partial checksum to
	// complete: the sum from ChecksumStart (from the start of the
	// datagram) to the end, stored ChecksumOffset bytes after
	// ChecksumStart. NeedsChecksum says they are set.
	ChecksumStart, ChecksumOffset uint16
	NeedsChecksum                 bool
	// DataValid reports, on input, that the device verified the
	// transport checksum.
	DataValid bool
}
