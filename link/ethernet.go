package link

import (
	"encoding/binary"
	"errors"
)

// EtherType values of the Ethernet II type field (IEEE 802.3 Clause 3.2.6,
// values assigned by IEEE; the IPv4 and ARP values are those of RFC 894 and
// RFC 826).
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeARP  uint16 = 0x0806
	EtherTypeIPv6 uint16 = 0x86dd
	// EtherTypeVLAN is the Tag Protocol Identifier of an IEEE 802.1Q
	// customer VLAN tag (IEEE Std 802.1Q-2018 §9.5, Table 9-1: C-VLAN
	// component, 81-00), which stands where the EtherType would; package
	// link/vlan parses and writes the tag.
	EtherTypeVLAN uint16 = 0x8100
)

// VLANTagLen is the length of an 802.1Q tag: the TPID and the Tag
// Control Information, 2 octets each (IEEE Std 802.1Q-2018 §9.3).
const VLANTagLen = 4

// Ethernet II header layout: destination (6), source (6), type (2).
const (
	ethDst            = 0
	ethSrc            = 6
	ethType           = 12
	EthernetHeaderLen = 14 // bytes of an Ethernet II header (no VLAN tag, no FCS)
)

// ErrEthernetTruncated is returned for a frame shorter than an Ethernet header.
var ErrEthernetTruncated = errors.New("ethernet: frame shorter than header")

// ErrEthernetLength is returned for a frame whose type field is an 802.3
// length (< 0x0600) rather than an EtherType: ustack speaks Ethernet II only.
var ErrEthernetLength = errors.New("ethernet: 802.3 length field, not an EtherType")

// Ethernet is a view of an Ethernet II frame. A value returned by
// ParseEthernet has at least EthernetHeaderLen bytes, so no accessor panics.
type Ethernet []byte

// ParseEthernet validates b as an Ethernet II frame and returns a view of it.
// The frame check sequence is not part of b (TAP devices strip it).
func ParseEthernet(b []byte) (Ethernet, error) {
	if len(b) < EthernetHeaderLen {
		return nil, ErrEthernetTruncated
	}
	if binary.BigEndian.Uint16(b[ethType:]) < 0x0600 {
		return nil, ErrEthernetLength
	}
	return Ethernet(b), nil
}

// Destination returns the "destination address" field.
func (e Ethernet) Destination() MAC { return MAC(e[ethDst : ethDst+6]) }

// Source returns the "source address" field.
func (e Ethernet) Source() MAC { return MAC(e[ethSrc : ethSrc+6]) }

// Type returns the EtherType field.
func (e Ethernet) Type() uint16 { return binary.BigEndian.Uint16(e[ethType:]) }

// Payload returns the bytes after the header.
func (e Ethernet) Payload() []byte { return e[EthernetHeaderLen:] }

// PutEthernetHeader writes an Ethernet II header into the first
// EthernetHeaderLen bytes of b, which must be at least that long.
func PutEthernetHeader(b []byte, dst, src MAC, etherType uint16) {
	_ = b[EthernetHeaderLen-1]
	copy(b[ethDst:], dst[:])
	copy(b[ethSrc:], src[:])
	binary.BigEndian.PutUint16(b[ethType:], etherType)
}

// L3Offset returns where the network-layer packet of the Ethernet frame b
// begins: after the Ethernet header and, for a frame with an 802.1Q tag
// (TPID EtherTypeVLAN), after the tag. The offsets of offload metadata
// (ip.Offload) count from there, so a device places a tagged frame's
// virtio_net_hdr checksum offsets 4 bytes further in (link/vlan).
func L3Offset(b []byte) int {
	if len(b) >= EthernetHeaderLen+VLANTagLen && binary.BigEndian.Uint16(b[ethType:]) == EtherTypeVLAN {
		return EthernetHeaderLen + VLANTagLen
	}
	return EthernetHeaderLen
}
