package arp

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/ustack/ustack/link"
)

// PacketLen is the length of an ARP packet for IPv4 over Ethernet:
// 8 bytes of fixed fields plus 2*(6+4) bytes of addresses (RFC 826, Packet
// format, with ar$hln = 6 and ar$pln = 4).
const PacketLen = 28

// Operation codes, the values of ar$op (RFC 826, Definitions:
// ares_op$REQUEST = 1, ares_op$REPLY = 2).
const (
	OpRequest uint16 = 1 // ares_op$REQUEST
	OpReply   uint16 = 2 // ares_op$REPLY
)

// Field values this package speaks (RFC 826, Packet format).
const (
	// HardwareTypeEthernet is ar$hrd for Ethernet, ares_hrd$Ethernet = 1.
	HardwareTypeEthernet uint16 = 1
	// ProtocolTypeIPv4 is ar$pro for IPv4: the Ethernet type of IP, 0x0800.
	ProtocolTypeIPv4 uint16 = link.EtherTypeIPv4
	hardwareLen             = 6 // ar$hln: bytes of a MAC-48 address
	protocolLen             = 4 // ar$pln: bytes of an IPv4 address
)

// Field offsets in the packet (RFC 826, Packet format, with ar$hln = 6 and
// ar$pln = 4).
const (
	offHrd = 0  // ar$hrd, 16 bits
	offPro = 2  // ar$pro, 16 bits
	offHln = 4  // ar$hln, 8 bits
	offPln = 5  // ar$pln, 8 bits
	offOp  = 6  // ar$op, 16 bits
	offSha = 8  // ar$sha, 6 bytes
	offSpa = 14 // ar$spa, 4 bytes
	offTha = 18 // ar$tha, 6 bytes
	offTpa = 24 // ar$tpa, 4 bytes
)

// Errors returned by ParsePacket, one per reason a packet is refused.
var (
	// ErrTruncated reports a packet shorter than PacketLen.
	ErrTruncated = errors.New("arp: packet shorter than 28 bytes")
	// ErrHardwareType reports an ar$hrd other than Ethernet (1).
	ErrHardwareType = errors.New("arp: hardware type is not Ethernet")
	// ErrProtocolType reports an ar$pro other than IPv4 (0x0800).
	ErrProtocolType = errors.New("arp: protocol type is not IPv4")
	// ErrAddressLength reports an ar$hln other than 6 or an ar$pln other than 4.
	ErrAddressLength = errors.New("arp: address lengths are not 6 and 4")
	// ErrOperation reports an ar$op other than request (1) or reply (2).
	ErrOperation = errors.New("arp: operation is neither request nor reply")
)

// Packet is a view of an ARP packet for IPv4 over Ethernet (RFC 826,
// Packet format). A Packet returned by ParsePacket is exactly PacketLen
// bytes long, so no accessor panics.
type Packet []byte

// ParsePacket validates b as an ARP packet for IPv4 over Ethernet and
// returns a view of its first PacketLen bytes; trailing bytes (Ethernet
// padding to the 60-byte minimum frame) are allowed and left out of the
// view. The view shares b's memory and has capacity PacketLen.
//
// RFC 826, Packet Reception: "?Do I have the hardware type in ar$hrd? ...
// [optionally check the hardware length ar$hln] ?Do I speak the protocol in
// ar$pro? ... [optionally check the protocol length ar$pln]". Both length
// checks are done here, and an ar$op other than request or reply (RARP,
// InARP) is refused.
func ParsePacket(b []byte) (Packet, error) {
	if len(b) < PacketLen {
		return nil, ErrTruncated
	}
	if binary.BigEndian.Uint16(b[offHrd:]) != HardwareTypeEthernet {
		return nil, ErrHardwareType
	}
	if binary.BigEndian.Uint16(b[offPro:]) != ProtocolTypeIPv4 {
		return nil, ErrProtocolType
	}
	if b[offHln] != hardwareLen || b[offPln] != protocolLen {
		return nil, ErrAddressLength
	}
	if op := binary.BigEndian.Uint16(b[offOp:]); op != OpRequest && op != OpReply {
		return nil, ErrOperation
	}
	return Packet(b[:PacketLen:PacketLen]), nil
}

// HardwareType returns the "ar$hrd" field (always 1 after ParsePacket).
func (p Packet) HardwareType() uint16 { return binary.BigEndian.Uint16(p[offHrd:]) }

// ProtocolType returns the "ar$pro" field (always 0x0800 after ParsePacket).
func (p Packet) ProtocolType() uint16 { return binary.BigEndian.Uint16(p[offPro:]) }

// Op returns the "ar$op" field: OpRequest or OpReply.
func (p Packet) Op() uint16 { return binary.BigEndian.Uint16(p[offOp:]) }

// SenderHardwareAddr returns the "ar$sha" field.
func (p Packet) SenderHardwareAddr() link.MAC { return link.MAC(p[offSha : offSha+6]) }

// SenderProtocolAddr returns the "ar$spa" field as an IPv4 address.
func (p Packet) SenderProtocolAddr() netip.Addr {
	return netip.AddrFrom4([4]byte(p[offSpa : offSpa+4]))
}

// TargetHardwareAddr returns the "ar$tha" field.
func (p Packet) TargetHardwareAddr() link.MAC { return link.MAC(p[offTha : offTha+6]) }

// TargetProtocolAddr returns the "ar$tpa" field as an IPv4 address.
func (p Packet) TargetProtocolAddr() netip.Addr {
	return netip.AddrFrom4([4]byte(p[offTpa : offTpa+4]))
}

// PutPacket writes an ARP packet for IPv4 over Ethernet into the first
// PacketLen bytes of b, which must be at least that long (it panics
// otherwise, like any short buffer). spa and tpa must be IPv4 (or
// IPv4-mapped IPv6) addresses; the zero netip.Addr writes 0.0.0.0. Any
// other address panics: passing one is a programming error.
//
// RFC 826, Packet format: ar$tha is the "Hardware address of target of
// this packet (if known)"; a request passes the zero MAC, since that is the
// value it is trying to determine (RFC 826, Packet Generation).
func PutPacket(b []byte, op uint16, sha link.MAC, spa netip.Addr, tha link.MAC, tpa netip.Addr) {
	_ = b[PacketLen-1]
	binary.BigEndian.PutUint16(b[offHrd:], HardwareTypeEthernet)
	binary.BigEndian.PutUint16(b[offPro:], ProtocolTypeIPv4)
	b[offHln] = hardwareLen
	b[offPln] = protocolLen
	binary.BigEndian.PutUint16(b[offOp:], op)
	copy(b[offSha:], sha[:])
	putAddr(b[offSpa:], spa)
	copy(b[offTha:], tha[:])
	putAddr(b[offTpa:], tpa)
}

// putAddr writes ip as 4 bytes; the zero Addr is 0.0.0.0.
func putAddr(b []byte, ip netip.Addr) {
	if !ip.IsValid() {
		clear(b[:4])
		return
	}
	a := ip.As4() // panics for an IPv6 address, which ARP cannot carry
	copy(b[:4], a[:])
}

// PutGratuitous writes an ARP Announcement for ip owned by sha into b (at
// least PacketLen bytes).
//
// RFC 5227 §2.3: an ARP Announcement is "identical to the ARP Probe ...
// except that now the sender and target IP addresses are both set to the
// host's newly selected IPv4 address"; §2.1.1: the probe is an ARP Request
// whose 'target hardware address' field "is ignored and SHOULD be set to all
// zeroes". RFC 5227 §3 explains why a Request rather than a Reply is used.
// The caller broadcasts it.
func PutGratuitous(b []byte, sha link.MAC, ip netip.Addr) {
	PutPacket(b, OpRequest, sha, ip, link.MAC{}, ip)
}

// PutReply writes into b (at least PacketLen bytes) the reply to request
// req, answering that the requested address req.TargetProtocolAddr() is at
// mac. The caller sends it to req.SenderHardwareAddr().
//
// RFC 826, Packet Reception: "Swap hardware and protocol fields, putting the
// local hardware and protocol addresses in the sender fields. Set the ar$op
// field to ares_op$REPLY". b may be req itself: all fields are read before
// any is written, so the reply can be built in place.
func PutReply(b []byte, req Packet, mac link.MAC) {
	PutPacket(b, OpReply, mac, req.TargetProtocolAddr(), req.SenderHardwareAddr(), req.SenderProtocolAddr())
}
