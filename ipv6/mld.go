package ipv6

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"
)

// AllMLDv2Routers is ff02::16, where MLDv2 reports go (RFC 3810 §5.2.14:
// the address all MLDv2-capable multicast routers listen to).
var AllMLDv2Routers = netip.AddrFrom16([16]byte{0xff, 0x02, 15: 0x16})

// MLD message lengths (RFC 3810 §5.1 and §8.1: "The MLD version of a
// Multicast Listener Query message is determined as follows: MLDv1
// Query: length = 24 octets; MLDv2 Query: length >= 28 octets").
const (
	MLDv1QueryLen = 24
	MLDv2QueryLen = 28
	// mldRecordLen is the fixed part of a Multicast Address Record
	// (§5.2.4 to §5.2.8): type, aux data length, number of sources, the
	// address.
	mldRecordLen = 20
	// mldReportLen is the fixed part of a Version 2 Multicast Listener
	// Report (§5.2): type, reserved, checksum, reserved, number of
	// records.
	mldReportLen = 8
)

// MLDHopLimit is the Hop Limit of every MLD message (RFC 3810 §5: "All
// MLDv2 messages described in this document MUST be sent with a
// link-local IPv6 Source Address, an IPv6 Hop Limit of 1, and an IPv6
// Router Alert option [RFC2711] in a Hop-by-Hop Options header").
const MLDHopLimit = 1

// OptionRouterAlert is the Router Alert option type (RFC 2711 §2.1); its
// value 0 means "Datagram contains a Multicast Listener Discovery
// message".
const OptionRouterAlert = 5

// Multicast Address Record types (RFC 3810 §5.2.12).
const (
	ModeIsInclude   = 1 // MODE_IS_INCLUDE, a Current State Record
	ModeIsExclude   = 2 // MODE_IS_EXCLUDE
	ChangeToInclude = 3 // CHANGE_TO_INCLUDE_MODE, a Filter Mode Change Record: leaving a group
	ChangeToExclude = 4 // CHANGE_TO_EXCLUDE_MODE: joining a group (any source)
	AllowNewSources = 5 // ALLOW_NEW_SOURCES, a Source List Change Record
	BlockOldSources = 6 // BLOCK_OLD_SOURCES
)

// MulticastAddressRecord is one record of a Version 2 Multicast Listener
// Report (RFC 3810 §5.2.4).
type MulticastAddressRecord struct {
	Type    uint8
	Group   netip.Addr
	Sources []netip.Addr
}

// mldHopByHop is the Hop-by-Hop Options header MLD messages carry: Next
// Header ICMPv6, Hdr Ext Len 0, a Router Alert option with value 0 (RFC
// 2711 §2.1: "0 Datagram contains a Multicast Listener Discovery
// message"), and a two-octet PadN to fill the 8 octets.
var mldHopByHop = [8]byte{NextHeaderICMPv6, 0, OptionRouterAlert, 2, 0, 0, OptionPadN, 0}

// PutMLDv2Report writes into b a whole IPv6 packet carrying a Version 2
// Multicast Listener Report (RFC 3810 §5.2) from src (a link-local
// address, or :: before one is valid, §5.2.13) to AllMLDv2Routers with
// the given records: the IPv6 header with Hop Limit MLDHopLimit, the
// Hop-by-Hop Options header with the Router Alert option (§5), and the
// report. It returns the packet length, or 0 if b is too short or a record
// names a group that is not multicast or has more than 65535 sources.
// The caller splits records that would not fit its MTU (§5.2.15).
func PutMLDv2Report(b []byte, src netip.Addr, records []MulticastAddressRecord) int {
	if len(records) > 0xffff {
		return 0
	}
	n := HeaderLen + len(mldHopByHop) + mldReportLen
	for _, r := range records {
		if !r.Group.Is6() || !r.Group.IsMulticast() || len(r.Sources) > 0xffff {
			return 0
		}
		n += mldRecordLen + 16*len(r.Sources)
	}
	if len(b) < n || n-HeaderLen > MaxPayloadLength {
		return 0
	}
	PutHeader(b, &Fields{PayloadLength: uint16(n - HeaderLen), NextHeader: NextHeaderHopByHop,
		HopLimit: MLDHopLimit, Source: src, Destination: AllMLDv2Routers})
	copy(b[HeaderLen:], mldHopByHop[:])
	m := b[HeaderLen+len(mldHopByHop) : n]
	clear(m[:mldReportLen])
	m[0] = TypeMulticastListenerReportV2
	binary.BigEndian.PutUint16(m[6:], uint16(len(records)))
	off := mldReportLen
	for _, r := range records {
		m[off], m[off+1] = r.Type, 0 // no auxiliary data (§5.2.10)
		binary.BigEndian.PutUint16(m[off+2:], uint16(len(r.Sources)))
		put16(m[off+4:], r.Group)
		off += mldRecordLen
		for _, s := range r.Sources {
			put16(m[off:], s)
			off += 16
		}
	}
	SetICMPChecksum(m, src, AllMLDv2Routers)
	return n
}

// Errors returned by ParseMLDQuery.
var (
	// ErrMLDLength: a query neither 24 octets (MLDv1) nor at least 28
	// (MLDv2) long, or shorter than its sources; RFC 3810 §8.1 has a node
	// ignore a query whose length fits neither version.
	ErrMLDLength = errors.New("ipv6: bad MLD query length")
	// ErrMLDSource: a query from an address that is not link-local, the
	// unspecified address included; RFC 3810 §5.1.14 has such a query
	// silently discarded.
	ErrMLDSource = errors.New("ipv6: MLD query source is not link-local")
	// ErrMLDHopLimit: a query whose Hop Limit is not 1 (RFC 3810 §6.2).
	ErrMLDHopLimit = errors.New("ipv6: MLD query hop limit is not 1")
	// ErrMLDRouterAlert: a query without the Router Alert option in a
	// Hop-by-Hop Options header (RFC 3810 §6.2).
	ErrMLDRouterAlert = errors.New("ipv6: MLD query without router alert")
)

// MLDQuery is a view of a Multicast Listener Query (RFC 3810 §5.1, or the
// 24-octet MLDv1 query of RFC 2710 §3).
type MLDQuery []byte

// ParseMLDQuery validates the Multicast Listener Query m (from ParseICMP)
// carried by h, as RFC 3810 §6.2 says a node checks a query ("if the
// source address of the message is a valid link-local address, if the Hop
// Limit is set to 1, and if the Router Alert option is present in the
// Hop-By-Hop Options header"), and its length (§8.1). It does not
// allocate.
func ParseMLDQuery(h Header, m ICMP) (MLDQuery, error) {
	if m.Type() != TypeMulticastListenerQuery {
		return nil, ErrNDPType
	}
	if len(m) != MLDv1QueryLen && len(m) < MLDv2QueryLen {
		return nil, ErrMLDLength
	}
	if len(m) >= MLDv2QueryLen && len(m) < MLDv2QueryLen+16*int(binary.BigEndian.Uint16(m[26:])) {
		return nil, ErrMLDLength
	}
	if !h.Source().IsLinkLocalUnicast() {
		return nil, ErrMLDSource
	}
	if h.HopLimit() != MLDHopLimit {
		return nil, ErrMLDHopLimit
	}
	if !hasRouterAlert(h) {
		return nil, ErrMLDRouterAlert
	}
	return MLDQuery(m), nil
}

// hasRouterAlert reports whether h has a Hop-by-Hop Options header with a
// Router Alert option.
func hasRouterAlert(h Header) bool {
	if h.NextHeader() != NextHeaderHopByHop || len(h) < HeaderLen+2 {
		return false
	}
	end := HeaderLen + (int(h[HeaderLen+1])+1)*8
	if end > len(h) {
		return false
	}
	for i := HeaderLen + 2; i < end; {
		if h[i] == OptionPad1 {
			i++
			continue
		}
		if i+2 > end {
			return false
		}
		if h[i] == OptionRouterAlert {
			return true
		}
		i += 2 + int(h[i+1])
	}
	return false
}

// IsV1 reports whether the query is an MLDv1 query (24 octets, RFC 3810
// §8.1), to which a node answers in MLDv1 compatibility mode.
func (q MLDQuery) IsV1() bool { return len(q) == MLDv1QueryLen }

// Group returns the Multicast Address: :: for a General Query, the group
// for a Multicast Address Specific Query (RFC 3810 §5.1.5).
func (q MLDQuery) Group() netip.Addr { return netip.AddrFrom16([16]byte(q[8:24])) }

// MaximumResponseDelay returns the delay the Maximum Response Code
// encodes (RFC 3810 §5.1.3: in milliseconds below 32768, else "Maximum
// Response Delay = (mant | 0x1000) << (exp+3)"; an MLDv1 query's field is
// the delay in milliseconds, RFC 2710 §3.4).
func (q MLDQuery) MaximumResponseDelay() time.Duration {
	c := binary.BigEndian.Uint16(q[4:])
	if c < 0x8000 || q.IsV1() {
		return time.Duration(c) * time.Millisecond
	}
	exp, mant := (c>>12)&7, c&0x0fff
	return time.Duration(uint32(mant|0x1000)<<(exp+3)) * time.Millisecond
}

// NumberOfSources returns the Number of Sources of an MLDv2 query (0 for
// MLDv1).
func (q MLDQuery) NumberOfSources() int {
	if q.IsV1() {
		return 0
	}
	return int(binary.BigEndian.Uint16(q[26:]))
}

// Source returns the i-th source of an MLDv2 Multicast Address and
// Source Specific Query; i must be below NumberOfSources.
func (q MLDQuery) Source(i int) netip.Addr {
	o := MLDv2QueryLen + 16*i
	return netip.AddrFrom16([16]byte(q[o : o+16]))
}
