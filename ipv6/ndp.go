package ipv6

import (
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"time"
)

// NDP message lengths: the ICMPv6 message up to its options (RFC 4861 §4.1
// to §4.5), the minimum "ICMP length (derived from the IP length)" of the
// validity checks of §6.1.1, §6.1.2, §7.1.1, §7.1.2 and §8.1.
const (
	RouterSolicitationLen    = 8
	RouterAdvertisementLen   = 16
	NeighborSolicitationLen  = 24
	NeighborAdvertisementLen = 24
	RedirectLen              = 40
)

// NDPHopLimit is the Hop Limit every NDP message is sent and must be
// received with (RFC 4861 §6.1.1, §6.1.2, §7.1.1, §7.1.2, §8.1: "The IP
// Hop Limit field has a value of 255, i.e., the packet could not possibly
// have been forwarded by a router").
const NDPHopLimit = 255

// NDP option types (RFC 4861 §4.6).
const (
	OptionSourceLinkLayerAddress = 1
	OptionTargetLinkLayerAddress = 2
	OptionPrefixInformation      = 3
	OptionRedirectedHeader       = 4
	OptionMTU                    = 5
)

// Option lengths in 8-octet units, the unit of the option Length field
// (RFC 4861 §4.6: "in units of 8 octets").
const (
	prefixInformationUnits = 4 // §4.6.2: "Length 4"
	mtuUnits               = 1 // §4.6.4: "Length 1"
	// PrefixInformationLen is the length of a Prefix Information option.
	PrefixInformationLen = prefixInformationUnits * 8
	// MTUOptionLen is the length of an MTU option.
	MTUOptionLen = mtuUnits * 8
)

// Errors returned by ValidateNDP and ValidateOptions, one per check of RFC
// 4861 §6.1.1, §6.1.2, §7.1.1, §7.1.2 and §8.1, each a reason to silently
// discard the message.
var (
	ErrNDPType               = errors.New("ipv6: not an NDP message")
	ErrNDPHopLimit           = errors.New("ipv6: NDP hop limit is not 255")
	ErrNDPCode               = errors.New("ipv6: NDP ICMP code is not 0")
	ErrNDPLength             = errors.New("ipv6: NDP message too short")
	ErrNDPTargetMulticast    = errors.New("ipv6: NDP target address is multicast")
	ErrNDPSourceNotLinkLocal = errors.New("ipv6: NDP source address is not link-local")
	// ErrNDPDADDestination: a solicitation from the unspecified address
	// not sent to a solicited-node multicast address (§7.1.1).
	ErrNDPDADDestination = errors.New("ipv6: NS from the unspecified address not to a solicited-node address")
	// ErrNDPUnspecifiedWithLinkAddr: a solicitation from the unspecified
	// address with a source link-layer address option (§6.1.1, §7.1.1).
	ErrNDPUnspecifiedWithLinkAddr = errors.New("ipv6: solicitation from the unspecified address has a link-layer address option")
	// ErrNDPSolicitedMulticast: an advertisement to a multicast address
	// with the Solicited flag set (§7.1.2).
	ErrNDPSolicitedMulticast = errors.New("ipv6: NA to a multicast address has the solicited flag")
	// ErrNDPRedirectDestination: a Redirect whose Destination Address is
	// multicast (§8.1).
	ErrNDPRedirectDestination = errors.New("ipv6: redirect destination is multicast")
	// ErrNDPRedirectTarget: a Redirect whose Target Address is neither
	// link-local nor the Destination Address (§8.1).
	ErrNDPRedirectTarget = errors.New("ipv6: redirect target is neither link-local nor the destination")
	// ErrOptionZeroLength: an option with Length 0 (§4.6: "Nodes MUST
	// silently discard an ND packet that contains an option with length
	// zero").
	ErrOptionZeroLength = errors.New("ipv6: NDP option of length zero")
	// ErrOptionOverrun: an option runs past the message.
	ErrOptionOverrun = errors.New("ipv6: NDP option runs past the message")
	// ErrOptionLength: an option whose Length its type does not allow
	// (§4.6.2: Prefix Information is 4, §4.6.4: MTU is 1).
	ErrOptionLength = errors.New("ipv6: NDP option has a bad length")
)

// optionsOffset returns where the options of an NDP message of type typ
// start, or 0 if typ is not an NDP message type.
func optionsOffset(typ uint8) int {
	switch typ {
	case TypeRouterSolicitation:
		return RouterSolicitationLen
	case TypeRouterAdvertisement:
		return RouterAdvertisementLen
	case TypeNeighborSolicitation:
		return NeighborSolicitationLen
	case TypeNeighborAdvertisement:
		return NeighborAdvertisementLen
	case TypeRedirect:
		return RedirectLen
	}
	return 0
}

// ValidateNDP makes the validity checks of RFC 4861 on the NDP message m
// (from ParseICMP, which checked the checksum) carried by h, and returns
// the first that fails:
//
//   - all messages: Hop Limit 255 (ErrNDPHopLimit), ICMP Code 0
//     (ErrNDPCode), the ICMP length at least that of the message type
//     (ErrNDPLength), every option valid (ValidateOptions);
//   - Router Solicitation (§6.1.1): from the unspecified address, no
//     source link-layer address option;
//   - Router Advertisement (§6.1.2): a link-local source;
//   - Neighbor Solicitation (§7.1.1): a target that is not multicast; from
//     the unspecified address (duplicate address detection, RFC 4862
//     §5.4.3), a solicited-node multicast destination and no source
//     link-layer address option;
//   - Neighbor Advertisement (§7.1.2): a target that is not multicast, the
//     Solicited flag clear when the destination is multicast;
//   - Redirect (§8.1): a link-local source, a Destination Address that is
//     not multicast, a Target Address that is link-local or the
//     Destination Address.
//
// What needs state (a Redirect from the current first-hop router, an NA
// for a tentative address) is the caller's. It does not allocate.
func ValidateNDP(h Header, m ICMP) error {
	opt := optionsOffset(m.Type())
	if opt == 0 {
		return ErrNDPType
	}
	if h.HopLimit() != NDPHopLimit {
		return ErrNDPHopLimit
	}
	if m.Code() != 0 {
		return ErrNDPCode
	}
	if len(m) < opt {
		return ErrNDPLength
	}
	opts := m[opt:]
	if err := ValidateOptions(opts); err != nil {
		return err
	}
	src, dst := h.Source(), h.Destination()
	switch m.Type() {
	case TypeRouterSolicitation:
		if src.IsUnspecified() && FindOption(opts, OptionSourceLinkLayerAddress) != nil {
			return ErrNDPUnspecifiedWithLinkAddr
		}
	case TypeRouterAdvertisement:
		if !src.IsLinkLocalUnicast() {
			return ErrNDPSourceNotLinkLocal
		}
	case TypeNeighborSolicitation:
		if NeighborSolicitation(m).Target().IsMulticast() {
			return ErrNDPTargetMulticast
		}
		if src.IsUnspecified() {
			if !IsSolicitedNodeMulticast(dst) {
				return ErrNDPDADDestination
			}
			if FindOption(opts, OptionSourceLinkLayerAddress) != nil {
				return ErrNDPUnspecifiedWithLinkAddr
			}
		}
	case TypeNeighborAdvertisement:
		na := NeighborAdvertisement(m)
		if na.Target().IsMulticast() {
			return ErrNDPTargetMulticast
		}
		if dst.IsMulticast() && na.Solicited() {
			return ErrNDPSolicitedMulticast
		}
	case TypeRedirect:
		if !src.IsLinkLocalUnicast() {
			return ErrNDPSourceNotLinkLocal
		}
		rd := Redirect(m)
		if rd.Destination().IsMulticast() {
			return ErrNDPRedirectDestination
		}
		if t := rd.Target(); !t.IsLinkLocalUnicast() && t != rd.Destination() {
			return ErrNDPRedirectTarget
		}
	}
	return nil
}

// ValidateOptions checks the option list of an NDP message (RFC 4861
// §4.6): every option has a nonzero Length (ErrOptionZeroLength) that
// fits in opts (ErrOptionOverrun), and Prefix Information and MTU options
// have their fixed lengths (ErrOptionLength). Options of other types are
// kept for the caller to ignore (§4.6: "Receivers MUST silently ignore
// any options they do not recognize and continue processing the
// message"). It does not allocate.
func ValidateOptions(opts []byte) error {
	for len(opts) > 0 {
		if len(opts) < 2 {
			return ErrOptionOverrun
		}
		units := int(opts[1])
		if units == 0 {
			return ErrOptionZeroLength
		}
		if units*8 > len(opts) {
			return ErrOptionOverrun
		}
		switch opts[0] {
		case OptionPrefixInformation:
			if units != prefixInformationUnits {
				return ErrOptionLength
			}
		case OptionMTU:
			if units != mtuUnits {
				return ErrOptionLength
			}
		}
		opts = opts[units*8:]
	}
	return nil
}

// Option is a view of one NDP option (RFC 4861 §4.6): Type, Length (in
// 8-octet units) and data. Options from NextOption on a list that passed
// ValidateOptions are at least 8 bytes long and have their type's length.
type Option []byte

// NextOption returns the first option of opts, a list that passed
// ValidateOptions, and the rest of the list; nil and nil at its end.
func NextOption(opts []byte) (Option, []byte) {
	if len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
		return nil, nil
	}
	n := int(opts[1]) * 8
	return Option(opts[:n]), opts[n:]
}

// FindOption returns the first option of type typ in opts, a list that
// passed ValidateOptions, or nil.
func FindOption(opts []byte, typ uint8) Option {
	for o, rest := NextOption(opts); o != nil; o, rest = NextOption(rest) {
		if o.Type() == typ {
			return o
		}
	}
	return nil
}

// Type returns the option's Type.
func (o Option) Type() uint8 { return o[0] }

// Data returns the option's bytes after Type and Length.
func (o Option) Data() []byte { return o[2:] }

// LinkLayerAddress returns the address a Source or Target Link-Layer
// Address option carries, Ethernet's 6 octets (RFC 4861 §4.6.1: "The
// content and format of this field (including byte and bit ordering) is
// expected to be specified in specific documents that describe how IPv6
// operates over different link layers"; RFC 2464 §6).
func (o Option) LinkLayerAddress() [6]byte { return [6]byte(o[2:8]) }

// PrefixInformation returns the view of a Prefix Information option
// (o.Type() must be OptionPrefixInformation from a validated list).
func (o Option) PrefixInformation() PrefixInformation { return PrefixInformation(o) }

// MTU returns the MTU of an MTU option (RFC 4861 §4.6.4).
func (o Option) MTU() uint32 { return binary.BigEndian.Uint32(o[4:]) }

// PrefixInformation is a view of a 32-byte Prefix Information option (RFC
// 4861 §4.6.2).
type PrefixInformation []byte

// PrefixLength returns the Prefix Length (0 to 128 as a valid option; up
// to 255 on the wire).
func (p PrefixInformation) PrefixLength() uint8 { return p[2] }

// OnLink reports the L flag.
func (p PrefixInformation) OnLink() bool { return p[3]&0x80 != 0 }

// Autonomous reports the A flag (RFC 4862 §5.5.3(a)).
func (p PrefixInformation) Autonomous() bool { return p[3]&0x40 != 0 }

// ValidLifetime returns the Valid Lifetime in seconds; 0xffffffff is
// infinity (RFC 4861 §4.6.2).
func (p PrefixInformation) ValidLifetime() uint32 { return binary.BigEndian.Uint32(p[4:]) }

// PreferredLifetime returns the Preferred Lifetime in seconds.
func (p PrefixInformation) PreferredLifetime() uint32 { return binary.BigEndian.Uint32(p[8:]) }

// Prefix returns the prefix, its bits past the Prefix Length cleared
// (RFC 4861 §4.6.2: "The bits in the prefix after the prefix length are
// reserved and MUST be initialized to zero by the sender and ignored by
// the receiver"); the zero Prefix when the length is over 128.
func (p PrefixInformation) Prefix() netip.Prefix {
	pf, err := netip.AddrFrom16([16]byte(p[16:32])).Prefix(int(p[2]))
	if err != nil {
		return netip.Prefix{}
	}
	return pf
}

// RouterSolicitation is a view of a Router Solicitation (RFC 4861 §4.1).
type RouterSolicitation []byte

// Options returns the option list.
func (m RouterSolicitation) Options() []byte { return m[RouterSolicitationLen:] }

// RouterAdvertisement is a view of a Router Advertisement (RFC 4861
// §4.2).
type RouterAdvertisement []byte

// CurHopLimit returns the Cur Hop Limit (0: unspecified by this router).
func (m RouterAdvertisement) CurHopLimit() uint8 { return m[4] }

// Managed reports the M flag ("Managed address configuration").
func (m RouterAdvertisement) Managed() bool { return m[5]&0x80 != 0 }

// OtherConfig reports the O flag ("Other configuration").
func (m RouterAdvertisement) OtherConfig() bool { return m[5]&0x40 != 0 }

// RouterLifetime returns the Router Lifetime: 0 means the router is not a
// default router.
func (m RouterAdvertisement) RouterLifetime() time.Duration {
	return time.Duration(binary.BigEndian.Uint16(m[6:])) * time.Second
}

// ReachableTime returns the Reachable Time (0: unspecified).
func (m RouterAdvertisement) ReachableTime() time.Duration {
	return time.Duration(binary.BigEndian.Uint32(m[8:])) * time.Millisecond
}

// RetransTimer returns the Retrans Timer (0: unspecified).
func (m RouterAdvertisement) RetransTimer() time.Duration {
	return time.Duration(binary.BigEndian.Uint32(m[12:])) * time.Millisecond
}

// Options returns the option list.
func (m RouterAdvertisement) Options() []byte { return m[RouterAdvertisementLen:] }

// NeighborSolicitation is a view of a Neighbor Solicitation (RFC 4861
// §4.3).
type NeighborSolicitation []byte

// Target returns the Target Address.
func (m NeighborSolicitation) Target() netip.Addr { return netip.AddrFrom16([16]byte(m[8:24])) }

// Options returns the option list.
func (m NeighborSolicitation) Options() []byte { return m[NeighborSolicitationLen:] }

// NeighborAdvertisement is a view of a Neighbor Advertisement (RFC 4861
// §4.4).
type NeighborAdvertisement []byte

// Flags of a Neighbor Advertisement (RFC 4861 §4.4), for
// PutNeighborAdvertisement.
const (
	FlagRouter    = 0x80 // R: "the sender is a router"
	FlagSolicited = 0x40 // S: "sent in response to a Neighbor Solicitation"
	FlagOverride  = 0x20 // O: "the advertisement should override an existing cache entry"
)

// Router reports the R flag.
func (m NeighborAdvertisement) Router() bool { return m[4]&FlagRouter != 0 }

// Solicited reports the S flag.
func (m NeighborAdvertisement) Solicited() bool { return m[4]&FlagSolicited != 0 }

// Override reports the O flag.
func (m NeighborAdvertisement) Override() bool { return m[4]&FlagOverride != 0 }

// Target returns the Target Address.
func (m NeighborAdvertisement) Target() netip.Addr { return netip.AddrFrom16([16]byte(m[8:24])) }

// Options returns the option list.
func (m NeighborAdvertisement) Options() []byte { return m[NeighborAdvertisementLen:] }

// Redirect is a view of a Redirect message (RFC 4861 §4.5).
type Redirect []byte

// Target returns the Target Address: the better first hop.
func (m Redirect) Target() netip.Addr { return netip.AddrFrom16([16]byte(m[8:24])) }

// Destination returns the Destination Address: the destination that is
// redirected.
func (m Redirect) Destination() netip.Addr { return netip.AddrFrom16([16]byte(m[24:40])) }

// Options returns the option list.
func (m Redirect) Options() []byte { return m[RedirectLen:] }

// linkLayerOptionLen is the length of a link-layer address option for
// Ethernet: 2 + 6 octets, one unit (RFC 2464 §6).
const linkLayerOptionLen = 8

// putLinkLayerOption writes a link-layer address option of type typ for
// lla at b and returns its length; nothing when lla is nil.
func putLinkLayerOption(b []byte, typ uint8, lla []byte) int {
	if lla == nil {
		return 0
	}
	n := (2 + len(lla) + 7) &^ 7 // RFC 4861 §4.6.1: padded to 8 octets
	clear(b[:n])
	b[0], b[1] = typ, byte(n/8)
	copy(b[2:], lla)
	return n
}

// llaLen returns the length of the option putLinkLayerOption writes.
func llaLen(lla []byte) int {
	if lla == nil {
		return 0
	}
	return (2 + len(lla) + 7) &^ 7
}

// PutRouterSolicitation writes into b a Router Solicitation from src to
// dst (RFC 4861 §4.1) with a Source Link-Layer Address option for lla
// unless lla is nil (it must be when src is unspecified, §4.1), and
// returns its length, or 0 if b is too short. The packet goes out with Hop
// Limit NDPHopLimit.
func PutRouterSolicitation(b []byte, src, dst netip.Addr, lla []byte) int {
	n := RouterSolicitationLen + llaLen(lla)
	if len(b) < n {
		return 0
	}
	clear(b[:RouterSolicitationLen])
	b[0] = TypeRouterSolicitation
	putLinkLayerOption(b[RouterSolicitationLen:], OptionSourceLinkLayerAddress, lla)
	SetICMPChecksum(b[:n], src, dst)
	return n
}

// RouterAdvertisementFields holds what PutRouterAdvertisement writes.
type RouterAdvertisementFields struct {
	CurHopLimit          uint8
	Managed, OtherConfig bool
	RouterLifetime       time.Duration // whole seconds, 0 to 65535 s (RFC 4861 §4.2: 16 bits)
	ReachableTime        time.Duration // whole milliseconds, 0 to 2^32-1 ms
	RetransTimer         time.Duration // whole milliseconds, 0 to 2^32-1 ms
	SourceLinkAddr       []byte        // nil: no Source Link-Layer Address option
	MTU                  uint32        // 0: no MTU option
	Prefixes             []PrefixInformationFields
}

// PrefixInformationFields holds one Prefix Information option (RFC 4861
// §4.6.2). Lifetimes are in seconds, 0xffffffff for infinity.
type PrefixInformationFields struct {
	Prefix                           netip.Prefix
	OnLink, Autonomous               bool
	ValidLifetime, PreferredLifetime uint32
}

// PutRouterAdvertisement writes into b the Router Advertisement f from src
// to dst (RFC 4861 §4.2), its options in the order Source Link-Layer
// Address, MTU, Prefix Information, and returns its length, or 0 if b is
// too short or a field is out of its range (a lifetime or timer that does
// not fit its field, an invalid or IPv4 prefix).
func PutRouterAdvertisement(b []byte, src, dst netip.Addr, f *RouterAdvertisementFields) int {
	if f.RouterLifetime < 0 || f.RouterLifetime > math.MaxUint16*time.Second ||
		f.ReachableTime < 0 || f.ReachableTime > math.MaxUint32*time.Millisecond ||
		f.RetransTimer < 0 || f.RetransTimer > math.MaxUint32*time.Millisecond {
		return 0
	}
	for _, p := range f.Prefixes {
		if !p.Prefix.IsValid() || !p.Prefix.Addr().Is6() || p.Prefix.Addr().Is4In6() {
			return 0
		}
	}
	n := RouterAdvertisementLen + llaLen(f.SourceLinkAddr) + len(f.Prefixes)*PrefixInformationLen
	if f.MTU != 0 {
		n += MTUOptionLen
	}
	if len(b) < n {
		return 0
	}
	clear(b[:n])
	b[0] = TypeRouterAdvertisement
	b[4] = f.CurHopLimit
	if f.Managed {
		b[5] |= 0x80
	}
	if f.OtherConfig {
		b[5] |= 0x40
	}
	binary.BigEndian.PutUint16(b[6:], uint16(f.RouterLifetime/time.Second))
	binary.BigEndian.PutUint32(b[8:], uint32(f.ReachableTime/time.Millisecond))
	binary.BigEndian.PutUint32(b[12:], uint32(f.RetransTimer/time.Millisecond))
	off := RouterAdvertisementLen
	off += putLinkLayerOption(b[off:], OptionSourceLinkLayerAddress, f.SourceLinkAddr)
	if f.MTU != 0 {
		b[off], b[off+1] = OptionMTU, mtuUnits
		binary.BigEndian.PutUint32(b[off+4:], f.MTU)
		off += MTUOptionLen
	}
	for _, p := range f.Prefixes {
		o := b[off : off+PrefixInformationLen]
		o[0], o[1] = OptionPrefixInformation, prefixInformationUnits
		o[2] = byte(p.Prefix.Bits())
		if p.OnLink {
			o[3] |= 0x80
		}
		if p.Autonomous {
			o[3] |= 0x40
		}
		binary.BigEndian.PutUint32(o[4:], p.ValidLifetime)
		binary.BigEndian.PutUint32(o[8:], p.PreferredLifetime)
		put16(o[16:], p.Prefix.Masked().Addr())
		off += PrefixInformationLen
	}
	SetICMPChecksum(b[:n], src, dst)
	return n
}

// PutNeighborSolicitation writes into b a Neighbor Solicitation for
// target from src to dst (RFC 4861 §4.3), with a Source Link-Layer
// Address option for lla unless lla is nil (it must be for duplicate
// address detection, from the unspecified address to the target's
// solicited-node address, RFC 4862 §5.4.2), and returns its length, or 0
// if b is too short.
func PutNeighborSolicitation(b []byte, src, dst, target netip.Addr, lla []byte) int {
	n := NeighborSolicitationLen + llaLen(lla)
	if len(b) < n {
		return 0
	}
	clear(b[:NeighborSolicitationLen])
	b[0] = TypeNeighborSolicitation
	put16(b[8:], target)
	putLinkLayerOption(b[NeighborSolicitationLen:], OptionSourceLinkLayerAddress, lla)
	SetICMPChecksum(b[:n], src, dst)
	return n
}

// PutNeighborAdvertisement writes into b a Neighbor Advertisement for
// target from src to dst with flags (FlagRouter, FlagSolicited,
// FlagOverride; RFC 4861 §4.4) and a Target Link-Layer Address option for
// lla unless lla is nil, and returns its length, or 0 if b is too short.
func PutNeighborAdvertisement(b []byte, src, dst, target netip.Addr, flags uint8, lla []byte) int {
	n := NeighborAdvertisementLen + llaLen(lla)
	if len(b) < n {
		return 0
	}
	clear(b[:NeighborAdvertisementLen])
	b[0] = TypeNeighborAdvertisement
	b[4] = flags & (FlagRouter | FlagSolicited | FlagOverride)
	put16(b[8:], target)
	putLinkLayerOption(b[NeighborAdvertisementLen:], OptionTargetLinkLayerAddress, lla)
	SetICMPChecksum(b[:n], src, dst)
	return n
}

// PutRedirect writes into b a Redirect from src to dst telling that
// destination is best reached through target (RFC 4861 §4.5), with a
// Target Link-Layer Address option for lla unless lla is nil and a
// Redirected Header option quoting as much of redirected as fits in
// MaxErrorLen ("as much of the forwarded packet as can fit without the
// redirect packet exceeding the minimum MTU", §4.6.3) unless it is nil,
// and returns its length, or 0 if b is too short.
func PutRedirect(b []byte, src, dst, target, destination netip.Addr, lla, redirected []byte) int {
	n := RedirectLen + llaLen(lla)
	q := 0
	if redirected != nil {
		q = min(len(redirected), (MaxErrorLen-n-8)&^7)
		n += 8 + (q+7)&^7
	}
	if len(b) < n {
		return 0
	}
	clear(b[:n])
	b[0] = TypeRedirect
	put16(b[8:], target)
	put16(b[24:], destination)
	off := RedirectLen + putLinkLayerOption(b[RedirectLen:], OptionTargetLinkLayerAddress, lla)
	if redirected != nil {
		b[off], b[off+1] = OptionRedirectedHeader, byte((n-off)/8) // §4.6.3: 6 reserved octets, then the packet
		copy(b[off+8:], redirected[:q])
	}
	SetICMPChecksum(b[:n], src, dst)
	return n
}
