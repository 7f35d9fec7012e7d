package ipv6

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"time"
)

// Well-known multicast addresses (RFC 4291 §2.7.1).
var (
	AllNodes   = netip.AddrFrom16([16]byte{0xff, 0x02, 15: 1}) // ff02::1, "All Nodes Addresses" (link-local scope)
	AllRouters = netip.AddrFrom16([16]byte{0xff, 0x02, 15: 2}) // ff02::2, "All Routers Addresses" (link-local scope)
)

// InterfaceIDLen is the length in bits of the interface identifier of an
// address formed from a prefix on Ethernet (RFC 4291 §2.5.1: "For all
// unicast addresses, except those that start with the binary value 000,
// Interface IDs are required to be 64 bits long"; RFC 2464 §4).
const InterfaceIDLen = 64

// SolicitedNodeMulticast returns the solicited-node multicast address of
// a (RFC 4291 §2.7.1: "formed by taking the low-order 24 bits of an
// address (unicast or anycast) and appending those bits to the prefix
// FF02:0:0:0:0:1:FF00::/104").
func SolicitedNodeMulticast(a netip.Addr) netip.Addr {
	a16 := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 11: 0x01, 12: 0xff, 13: a16[13], 14: a16[14], 15: a16[15]})
}

// IsSolicitedNodeMulticast reports whether a is in ff02::1:ff00:0/104
// (RFC 4291 §2.7.1).
func IsSolicitedNodeMulticast(a netip.Addr) bool {
	if !a.Is6() || a.Is4In6() {
		return false
	}
	a16 := a.As16()
	return [13]byte(a16[:13]) == [13]byte{0xff, 0x02, 11: 0x01, 12: 0xff}
}

// MulticastMAC returns the Ethernet address a packet to the IPv6
// multicast address group goes to (RFC 2464 §7: "the two octets 3333
// hexadecimal" followed by "the last four octets of DST").
func MulticastMAC(group netip.Addr) [6]byte {
	g := group.As16()
	return [6]byte{0x33, 0x33, g[12], g[13], g[14], g[15]}
}

// EUI64InterfaceID returns the modified EUI-64 interface identifier of an
// Ethernet address (RFC 4291 Appendix A: "insert two octets, with
// hexadecimal values of 0xFF and 0xFE ... in the middle of the 48-bit MAC"
// and invert the universal/local bit, "the 'u' bit"; RFC 2464 §4). This is
// what Linux uses by default (addr_gen_mode 0).
func EUI64InterfaceID(mac [6]byte) [8]byte {
	return [8]byte{mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]}
}

// AddrFromInterfaceID returns the address formed from the first 64 bits
// of prefix and the interface identifier iid (RFC 4862 §5.5.3(d): an
// address is formed "by combining the advertised prefix with an interface
// identifier of the link").
func AddrFromInterfaceID(prefix netip.Addr, iid [8]byte) netip.Addr {
	a := prefix.As16()
	copy(a[8:], iid[:])
	return netip.AddrFrom16(a)
}

// LinkLocalPrefix is fe80::/64, the prefix of link-local addresses formed
// from an interface identifier (RFC 4291 §2.5.6; RFC 4862 §5.3).
var LinkLocalPrefix = netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfe, 0x80}), 64)

// LinkLocalFromMAC returns the link-local address Linux gives an Ethernet
// interface by default: fe80::/64 and the modified EUI-64 identifier of
// its MAC (RFC 4862 §5.3, RFC 2464 §5).
func LinkLocalFromMAC(mac [6]byte) netip.Addr {
	return AddrFromInterfaceID(LinkLocalPrefix.Addr(), EUI64InterfaceID(mac))
}

// Errors of StableAddress and DecideSLAAC.
var (
	// ErrPrefixLength: the prefix is not 64 bits long, so an interface
	// identifier of 64 bits does not complete it (RFC 4862 §5.5.3(d): "If
	// the sum of the prefix length and interface identifier length does
	// not equal 128 bits, the Prefix Information option MUST be
	// ignored").
	ErrPrefixLength = errors.New("ipv6: prefix length is not 64")
	// ErrSecretTooShort: an RFC 7217 secret key under 128 bits (§5: "at
	// least 128 bits").
	ErrSecretTooShort = errors.New("ipv6: stable address secret shorter than 128 bits")
	// ErrReservedInterfaceID: the identifier is reserved (RFC 5453); RFC
	// 7217 §5 says to handle it as a duplicate address, so the caller
	// tries again with the DAD counter incremented.
	ErrReservedInterfaceID = errors.New("ipv6: reserved interface identifier")
	// ErrNotAutonomous: the A flag is clear (RFC 4862 §5.5.3(a)).
	ErrNotAutonomous = errors.New("ipv6: prefix not autonomous")
	// ErrLinkLocalPrefix: the prefix is fe80::/10 (RFC 4862 §5.5.3(b)).
	ErrLinkLocalPrefix = errors.New("ipv6: link-local prefix")
	// ErrPreferredOverValid: the preferred lifetime exceeds the valid one
	// (RFC 4862 §5.5.3(c)).
	ErrPreferredOverValid = errors.New("ipv6: preferred lifetime greater than valid lifetime")
	// ErrZeroValidLifetime: a prefix with no address yet and a zero valid
	// lifetime (RFC 4862 §5.5.3(d): "if the Valid Lifetime is not 0, form
	// an address").
	ErrZeroValidLifetime = errors.New("ipv6: zero valid lifetime for a new prefix")
)

// minStableSecret is the smallest RFC 7217 secret key, in bytes (§5:
// "at least 128 bits").
const minStableSecret = 16

// StableInterfaceID returns the RFC 7217 §5 interface identifier for
// prefix: the leftmost 64 bits of RID = F(Prefix, Net_Iface, Network_ID,
// DAD_Counter, secret_key), with SHA-256 as F (one of the two functions
// §5 names for it, with SHA-1) over the concatenation of the 64-bit
// prefix, netIface (a stable name or index of the interface), networkID
// (for example the SSID; nil for none), the counter as one octet and the
// secret. prefix must be a /64 (ErrPrefixLength) and secret at least 128
// bits long (ErrSecretTooShort); an identifier that RFC 5453 reserves is
// ErrReservedInterfaceID, to be handled as a duplicate address (retry
// with dadCounter+1).
func StableInterfaceID(prefix netip.Prefix, netIface, networkID []byte, dadCounter uint8, secret []byte) ([8]byte, error) {
	if !prefix.IsValid() || !prefix.Addr().Is6() || prefix.Bits() != 128-InterfaceIDLen {
		return [8]byte{}, ErrPrefixLength
	}
	if len(secret) < minStableSecret {
		return [8]byte{}, ErrSecretTooShort
	}
	p := prefix.Masked().Addr().As16()
	h := sha256.New()
	h.Write(p[:8])
	h.Write(netIface)
	h.Write(networkID)
	h.Write([]byte{dadCounter})
	h.Write(secret)
	var sum [sha256.Size]byte
	iid := [8]byte(h.Sum(sum[:0]))
	if IsReservedInterfaceID(iid) {
		return iid, ErrReservedInterfaceID
	}
	return iid, nil
}

// IsReservedInterfaceID reports whether iid is one RFC 5453 §3 (and the
// IANA "Reserved IPv6 Interface Identifiers" registry) reserves: all zeros
// (the Subnet-Router anycast address, RFC 4291 §2.6.1), those formed from
// IANA's Ethernet block, 0200:5EFF:FE00:0000 to 0200:5EFF:FEFF:FFFF (one
// of them for Proxy Mobile IPv6, RFC 6543), and the subnet anycast range
// FDFF:FFFF:FFFF:FF80 to FDFF:FFFF:FFFF:FFFF (RFC 2526).
func IsReservedInterfaceID(iid [8]byte) bool {
	v := binary.BigEndian.Uint64(iid[:])
	return v == 0 ||
		v>>24 == 0x02005efffe ||
		v >= 0xfdffffffffffff80
}

// InfiniteLifetime is the lifetime 0xffffffff seconds means (RFC 4861
// §4.6.2: "A value of all one bits (0xffffffff) represents infinity").
const InfiniteLifetime = time.Duration(math.MaxInt64)

// twoHours is the bound of RFC 4862 §5.5.3(e) on lowering a valid
// lifetime from an unauthenticated advertisement.
const twoHours = 2 * time.Hour

// lifetime converts an advertised lifetime in seconds.
func lifetime(s uint32) time.Duration {
	if s == math.MaxUint32 {
		return InfiniteLifetime
	}
	return time.Duration(s) * time.Second
}

// SLAACAction is what DecideSLAAC says to do with an address.
type SLAACAction uint8

// The actions of RFC 4862 §5.5.3.
const (
	SLAACIgnore SLAACAction = iota // ignore the option
	SLAACCreate                    // form an address, then run duplicate address detection (§5.5.3(d))
	SLAACUpdate                    // set the lifetimes of the address formed already (§5.5.3(e))
)

// SLAACDecision is the outcome of DecideSLAAC: the action and, for Create
// and Update, the lifetimes to set, counted from the advertisement's
// arrival (InfiniteLifetime for infinity).
type SLAACDecision struct {
	Action            SLAACAction
	Valid, Preferred  time.Duration
	ValidLifetimeKept bool // the two-hour rule kept the remaining valid lifetime (§5.5.3(e) 2)
}

// DecideSLAAC is the stateless autoconfiguration decision of RFC 4862
// §5.5.3 for the Prefix Information option p of an unauthenticated Router
// Advertisement, given whether an address was already formed from p's
// prefix on this interface (have) and, if so, its remaining valid
// lifetime:
//
//   - (a) the A flag clear: ignore (ErrNotAutonomous); (b) a link-local
//     prefix: ignore (ErrLinkLocalPrefix); (c) a preferred lifetime above
//     the valid one: ignore (ErrPreferredOverValid);
//   - (d) no address yet: with a nonzero valid lifetime (else
//     ErrZeroValidLifetime) and a 64-bit prefix (else ErrPrefixLength),
//     create one with the advertised lifetimes;
//   - (e) an address already: its preferred lifetime becomes the
//     advertised one; its valid lifetime becomes the advertised one "if
//     the received Valid Lifetime is greater than 2 hours or greater than
//     RemainingLifetime", is kept "if RemainingLifetime is less than or
//     equal to 2 hours", and is otherwise reset to 2 hours (the two-hour
//     rule that keeps a forged advertisement from expiring an address
//     at once).
//
// It is pure: the caller keeps the lifetimes and their deadlines.
func DecideSLAAC(p PrefixInformation, have bool, remainingValid time.Duration) (SLAACDecision, error) {
	if !p.Autonomous() {
		return SLAACDecision{}, ErrNotAutonomous
	}
	if netip.AddrFrom16([16]byte(p[16:32])).IsLinkLocalUnicast() {
		return SLAACDecision{}, ErrLinkLocalPrefix
	}
	valid, preferred := lifetime(p.ValidLifetime()), lifetime(p.PreferredLifetime())
	if preferred > valid {
		return SLAACDecision{}, ErrPreferredOverValid
	}
	if !have {
		if valid == 0 {
			return SLAACDecision{}, ErrZeroValidLifetime
		}
		if p.PrefixLength() != 128-InterfaceIDLen {
			return SLAACDecision{}, ErrPrefixLength
		}
		return SLAACDecision{Action: SLAACCreate, Valid: valid, Preferred: preferred}, nil
	}
	d := SLAACDecision{Action: SLAACUpdate, Preferred: preferred}
	switch {
	case valid > twoHours || valid > remainingValid: // (e) 1
		d.Valid = valid
	case remainingValid <= twoHours: // (e) 2
		d.Valid, d.ValidLifetimeKept = remainingValid, true
	default: // (e) 3
		d.Valid = twoHours
	}
	// The preferred lifetime cannot outlive the valid one.
	d.Preferred = min(d.Preferred, d.Valid)
	return d, nil
}
