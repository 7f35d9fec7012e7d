// Package vlan splits one Ethernet link.Endpoint, a trunk, into IEEE
// 802.1Q VLAN sub-endpoints: frames read from the trunk go to the
// sub-endpoint of the VLAN identifier in their tag, with the tag taken
// off; frames written to a sub-endpoint leave with its tag. Each
// sub-endpoint is an ordinary link.Endpoint, so a stack attaches it as
// another NIC (stack.AddNIC), and one TAP device carries several subnets,
// as the kernel's `ip link add link tap0 name tap0.10 type vlan id 10`
// does on its side.
//
// The tag format (Tag, ParseFrame, PutHeader) follows IEEE Std
// 802.1Q-2018 §9: a 2-octet Tag Protocol Identifier 0x8100 where the
// EtherType of an untagged frame stands, then the 2-octet Tag Control
// Information: Priority Code Point (3 bits), Drop Eligible Indicator (1
// bit) and VLAN Identifier (12 bits).
package vlan

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ustack/ustack/link"
)

// Lengths and offsets of a tagged Ethernet frame: destination (6), source
// (6), TPID (2), TCI (2), EtherType (2) (IEEE Std 802.1Q-2018 §9.3).
const (
	// TPID is the Tag Protocol Identifier of a customer VLAN tag
	// (IEEE Std 802.1Q-2018 §9.5, Table 9-1: 81-00).
	TPID = link.EtherTypeVLAN
	// TagLen is the length of the tag: TPID and TCI.
	TagLen = link.VLANTagLen
	// HeaderLen is the length of the link header of a tagged frame.
	HeaderLen = link.EthernetHeaderLen + TagLen

	offTPID = 12
	offTCI  = 14
	offType = 16
)

// Reserved VLAN identifiers (IEEE Std 802.1Q-2018 §9.6, Table 9-2).
const (
	// VIDNull is the null VID: the tag carries only a priority (a
	// priority-tagged frame), and the frame belongs to the port's
	// untagged VLAN.
	VIDNull = 0
	// VIDReserved is reserved for implementation use; it "shall not be
	// configured ... nor transmitted in a tag header". Frames tagged with
	// it are dropped.
	VIDReserved = 4095
	// MaxVID is the largest VID a VLAN may have.
	MaxVID = 4094
)

// Tag is the Tag Control Information of an 802.1Q tag (IEEE Std
// 802.1Q-2018 §9.6).
type Tag struct {
	// PCP is the Priority Code Point, 0-7.
	PCP uint8
	// DEI is the Drop Eligible Indicator.
	DEI bool
	// VID is the VLAN Identifier, 0-4095.
	VID uint16
}

// TCI returns the 16-bit Tag Control Information field: PCP in the top 3
// bits, then DEI, then the VID. Out-of-range PCP and VID bits are cut.
func (t Tag) TCI() uint16 {
	v := uint16(t.PCP&7)<<13 | t.VID&0x0fff
	if t.DEI {
		v |= 1 << 12
	}
	return v
}

// TagFromTCI splits a Tag Control Information field into its parts.
func TagFromTCI(tci uint16) Tag {
	return Tag{PCP: uint8(tci >> 13), DEI: tci&(1<<12) != 0, VID: tci & 0x0fff}
}

// String formats the tag as "vlan 10 pcp 0", with " dei" when DEI is set.
func (t Tag) String() string {
	s := fmt.Sprintf("vlan %d pcp %d", t.VID, t.PCP)
	if t.DEI {
		s += " dei"
	}
	return s
}

// Errors of ParseFrame.
var (
	// ErrTruncated: the frame is shorter than a tagged header.
	ErrTruncated = errors.New("vlan: frame shorter than a tagged Ethernet header")
	// ErrNotTagged: the frame's EtherType field is not TPID.
	ErrNotTagged = errors.New("vlan: frame has no 802.1Q tag")
	// ErrLength: the EtherType after the tag is an 802.3 length (below
	// 0x0600), which ustack does not speak.
	ErrLength = errors.New("vlan: 802.3 length field after the tag, not an EtherType")
)

// Frame is a view of an Ethernet frame with an 802.1Q tag. A value
// returned by ParseFrame has at least HeaderLen bytes, so no accessor
// panics.
type Frame []byte

// ParseFrame validates b as a tagged Ethernet II frame and returns a view
// of it: at least HeaderLen bytes, TPID 0x8100, and an EtherType (not an
// 802.3 length) after the tag. Frames with a second tag inside (802.1ad
// stacking) parse, with TPID as their Type.
func ParseFrame(b []byte) (Frame, error) {
	if len(b) < link.EthernetHeaderLen {
		return nil, ErrTruncated
	}
	if binary.BigEndian.Uint16(b[offTPID:]) != TPID {
		return nil, ErrNotTagged
	}
	if len(b) < HeaderLen {
		return nil, ErrTruncated
	}
	if binary.BigEndian.Uint16(b[offType:]) < 0x0600 {
		return nil, ErrLength
	}
	return Frame(b), nil
}

// Destination returns the "destination address" field.
func (f Frame) Destination() link.MAC { return link.MAC(f[0:6]) }

// Source returns the "source address" field.
func (f Frame) Source() link.MAC { return link.MAC(f[6:12]) }

// Tag returns the Tag Control Information.
func (f Frame) Tag() Tag { return TagFromTCI(binary.BigEndian.Uint16(f[offTCI:])) }

// Type returns the EtherType after the tag.
func (f Frame) Type() uint16 { return binary.BigEndian.Uint16(f[offType:]) }

// Payload returns the bytes after the tagged header.
func (f Frame) Payload() []byte { return f[HeaderLen:] }

// PutHeader writes a tagged Ethernet header into the first HeaderLen
// bytes of b, which must be at least that long.
func PutHeader(b []byte, dst, src link.MAC, t Tag, etherType uint16) {
	_ = b[HeaderLen-1]
	copy(b[0:], dst[:])
	copy(b[6:], src[:])
	binary.BigEndian.PutUint16(b[offTPID:], TPID)
	binary.BigEndian.PutUint16(b[offTCI:], t.TCI())
	binary.BigEndian.PutUint16(b[offType:], etherType)
}

// insertTag writes into dst the untagged Ethernet frame f with the tag t
// inserted after its addresses, in one pass, and returns its length;
// dst must hold len(f)+TagLen bytes and f at least
// link.EthernetHeaderLen.
func insertTag(dst, f []byte, t Tag) int {
	copy(dst[:12], f[:12])
	binary.BigEndian.PutUint16(dst[offTPID:], TPID)
	binary.BigEndian.PutUint16(dst[offTCI:], t.TCI())
	return offType + copy(dst[offType:], f[12:])
}

// stripTag writes into dst the tagged frame f without its tag, in one
// pass, and returns its length and whether it had to cut it to fit dst;
// f is at least HeaderLen long.
func stripTag(dst, f []byte) (int, bool) {
	n := copy(dst, f[:12])
	n += copy(dst[n:], f[offType:])
	return n, n < len(f)-TagLen
}
