package pcap

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ustack/ustack/link"
)

// Link-layer header lengths of the cooked captures (tcpdump.org's
// LINKTYPE_LINUX_SLL and LINKTYPE_LINUX_SLL2 pages).
const (
	sllHeaderLen    = 16 // packet type, ARPHRD type, address length, address (8), protocol
	sllProtocolOff  = 14
	sll2HeaderLen   = 20 // protocol, reserved, interface index, ARPHRD type, packet type, address length, address (8)
	sll2ProtocolOff = 0
	vlanTagLen      = 4
	etherTypeVLAN   = 0x8100 // IEEE 802.1Q tag
	etherTypeQinQ   = 0x88a8 // IEEE 802.1ad service tag
)

// ErrLinkType reports a link type Network does not unpack.
var ErrLinkType = errors.New("pcap: unsupported link type")

// ErrLinkHeader reports a frame too short for its link-layer header.
var ErrLinkHeader = errors.New("pcap: frame shorter than its link-layer header")

// Network returns the network-layer packet a frame of the given link type
// carries, with its EtherType (link.EtherTypeIPv4, link.EtherTypeIPv6, ...).
// It unpacks Ethernet (with up to two 802.1Q/802.1ad tags), raw IP
// (LinkTypeRaw, whose version nibble tells IPv4 from IPv6, LinkTypeIPv4,
// LinkTypeIPv6) and Linux cooked captures (LinkTypeLinuxSLL and
// LinkTypeLinuxSLL2). The result aliases frame.
func Network(linkType uint32, frame []byte) (etherType uint16, packet []byte, err error) {
	switch linkType {
	case LinkTypeEthernet:
		e, err := link.ParseEthernet(frame)
		if err != nil {
			return 0, nil, fmt.Errorf("%w: %v", ErrLinkHeader, err)
		}
		t, p := e.Type(), e.Payload()
		for range 2 {
			if t != etherTypeVLAN && t != etherTypeQinQ {
				break
			}
			if len(p) < vlanTagLen {
				return 0, nil, fmt.Errorf("%w: VLAN tag cut short", ErrLinkHeader)
			}
			t, p = binary.BigEndian.Uint16(p[2:]), p[vlanTagLen:]
		}
		return t, p, nil
	case LinkTypeRaw:
		if len(frame) == 0 {
			return 0, nil, fmt.Errorf("%w: empty raw IP packet", ErrLinkHeader)
		}
		switch frame[0] >> 4 {
		case 4:
			return link.EtherTypeIPv4, frame, nil
		case 6:
			return link.EtherTypeIPv6, frame, nil
		}
		return 0, nil, fmt.Errorf("%w: raw packet of IP version %d", ErrLinkHeader, frame[0]>>4)
	case LinkTypeIPv4:
		return link.EtherTypeIPv4, frame, nil
	case LinkTypeIPv6:
		return link.EtherTypeIPv6, frame, nil
	case LinkTypeLinuxSLL:
		if len(frame) < sllHeaderLen {
			return 0, nil, fmt.Errorf("%w: %d-byte cooked (SLL) frame", ErrLinkHeader, len(frame))
		}
		return binary.BigEndian.Uint16(frame[sllProtocolOff:]), frame[sllHeaderLen:], nil
	case LinkTypeLinuxSLL2:
		if len(frame) < sll2HeaderLen {
			return 0, nil, fmt.Errorf("%w: %d-byte cooked (SLL2) frame", ErrLinkHeader, len(frame))
		}
		return binary.BigEndian.Uint16(frame[sll2ProtocolOff:]), frame[sll2HeaderLen:], nil
	}
	return 0, nil, fmt.Errorf("%w %d (Ethernet 1, raw IP 101/228/229, Linux SLL 113 and SLL2 276 are)", ErrLinkType, linkType)
}
