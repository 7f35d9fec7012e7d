// Package checksum implements the Internet checksum of RFC 1071 and its
// incremental update of RFC 1624.
//
// Sums are carried as uint16 one's-complement partial sums (not yet
// complemented), so that the sum of a pseudo-header, a header and a payload
// can be computed piecewise and combined. The value that goes on the wire is
// ^Sum(...).
package checksum

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Sum returns the one's-complement sum of b added to initial (RFC 1071 §1).
// An odd trailing byte is padded with a zero byte on the right, as RFC 1071
// §4.1 does. The sum is folded to 16 bits but not complemented.
//
// Eight bytes are summed at a time with an end-around carry (RFC 1071 §2(B):
// the sum is independent of the byte order and may be computed in any word
// size, then folded).
func Sum(b []byte, initial uint16) uint16 {
	var acc uint64 = uint64(initial)
	var carry uint64
	for len(b) >= 32 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[8:16]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[16:24]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[24:32]), carry)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b), carry)
		b = b[8:]
	}
	acc, carry = bits.Add64(acc, 0, carry)
	acc += carry // cannot overflow again: acc+carry <= 2^64-1 after the add above
	if len(b) >= 4 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint32(b))<<32, 0)
		acc += carry
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint16(b))<<16, 0)
		acc += carry
		b = b[2:]
	}
	if len(b) == 1 {
		acc, carry = bits.Add64(acc, uint64(b[0])<<8, 0)
		acc += carry
	}
	return fold64(acc)
}

func fold64(acc uint64) uint16 {
	// Fold 64 -> 32 -> 16 with end-around carries.
	s := (acc >> 32) + (acc & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// Combine returns the one's-complement sum of two partial sums.
func Combine(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s + s>>16)
}

// Checksum returns the value to store in a checksum field: the complement of
// the sum of b (RFC 1071 §1: "the 16-bit one's complement of the one's
// complement sum").
func Checksum(b []byte, initial uint16) uint16 {
	return ^Sum(b, initial)
}

// PseudoHeader returns the partial sum of the pseudo-header that TCP and
// UDP checksums cover, for either family, so that no address can make it
// panic:
//
//   - When src and dst are both IPv4 (or IPv4-mapped IPv6) addresses, the
//     IPv4 pseudo-header of RFC 9293 §3.1 and RFC 768: source address,
//     destination address, a zero byte, the protocol number and the
//     transport length.
//   - Otherwise the IPv6 pseudo-header of RFC 8200 §8.1: the 16-byte
//     source and destination addresses, the "Upper-Layer Packet Length"
//     as 32 bits, 24 zero bits and the next header (proto). An IPv4
//     address paired with an IPv6 one is taken in its IPv4-mapped form and
//     the zero Addr as all zeros; callers reject such pairs before they
//     checksum, but the sum stays defined.
//
// length is at most 65535: TCP segments and UDP datagrams (whose own
// Length field RFC 8200 §8.1 says to use) fit in 16 bits; RFC 2675
// jumbograms are not supported.
func PseudoHeader(src, dst netip.Addr, proto uint8, length uint16) uint16 {
	if src.Unmap().Is4() && dst.Unmap().Is4() {
		return pseudoHeader4(src, dst, proto, length)
	}
	return pseudoHeader6(src, dst, proto, length)
}

func pseudoHeader4(src, dst netip.Addr, proto uint8, length uint16) uint16 {
	s4, d4 := src.Unmap().As4(), dst.Unmap().As4()
	acc := uint32(s4[0])<<8 | uint32(s4[1])
	acc += uint32(s4[2])<<8 | uint32(s4[3])
	acc += uint32(d4[0])<<8 | uint32(d4[1])
	acc += uint32(d4[2])<<8 | uint32(d4[3])
	acc += uint32(proto)
	acc += uint32(length)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	return uint16(acc)
}

// pseudoHeader6 sums the 40-byte IPv6 pseudo-header of RFC 8200 §8.1
// without building it: the two addresses as 64-bit words, then the 32-bit
// length and the next header, whose high 16 bits and 24 zero bits add
// nothing.
func pseudoHeader6(src, dst netip.Addr, proto uint8, length uint16) uint16 {
	s16, d16 := src.As16(), dst.As16()
	var acc, carry uint64
	acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(s16[0:8]), 0)
	acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(s16[8:16]), carry)
	acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(d16[0:8]), carry)
	acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(d16[8:16]), carry)
	acc, carry = bits.Add64(acc, uint64(length)+uint64(proto), carry)
	acc += carry // cannot overflow: when the last add carried, acc <= length+proto
	return fold64(acc)
}

// Update returns the checksum field value after a 16-bit word of the covered
// data changed from old to new, given the field's previous value hc.
// It implements RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
func Update(hc, old, new uint16) uint16 {
	return ^Combine(Combine(^hc, ^old), new)
}
