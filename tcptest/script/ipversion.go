package script

import (
	"fmt"
	"net/netip"

	"github.com/ustack/ustack/tcptest"
)

// IPVersion is packetdrill's --ip_version: the family of the packets on
// the wire and of the script's sockets. packetdrill's table (config.c):
//
//	flavor            socket domain   bind/connect address     wire
//	ipv4              AF_INET         IPv4                     IPv4
//	ipv4-mapped-ipv6  AF_INET6        IPv4-mapped IPv6         IPv4
//	ipv6              AF_INET6        IPv6                     IPv6
type IPVersion uint8

// The versions. IPVersionDefault takes the script's --ip_version line, or
// IPv4 when it has none.
const (
	IPVersionDefault IPVersion = iota
	IPv4
	IPv4MappedIPv6
	IPv6
)

// ParseIPVersion parses the names packetdrill accepts: "ipv4",
// "ipv4-mapped-ipv6" and "ipv6".
func ParseIPVersion(s string) (IPVersion, error) {
	switch s {
	case "ipv4":
		return IPv4, nil
	case "ipv4-mapped-ipv6":
		return IPv4MappedIPv6, nil
	case "ipv6":
		return IPv6, nil
	}
	return IPVersionDefault, fmt.Errorf("bad IP version %q (want ipv4, ipv4-mapped-ipv6 or ipv6)", s)
}

// String returns the name ParseIPVersion accepts ("default" for
// IPVersionDefault).
func (v IPVersion) String() string {
	switch v {
	case IPv4:
		return "ipv4"
	case IPv4MappedIPv6:
		return "ipv4-mapped-ipv6"
	case IPv6:
		return "ipv6"
	case IPVersionDefault:
		return "default"
	}
	return fmt.Sprintf("IPVersion(%d)", uint8(v))
}

// wire returns the family of the packets.
func (v IPVersion) wire() tcptest.Family {
	if v == IPv6 {
		return tcptest.IPv6
	}
	return tcptest.IPv4
}

// Linux's address family numbers.
const (
	afUnspec = 0
	afInet   = 2
	afInet6  = 10
)

// domain returns the address family of the script's sockets.
func (v IPVersion) domain() int64 {
	if v == IPv4 {
		return afInet
	}
	return afInet6
}

// sockAddr returns a as the script's sockets see it: IPv4-mapped in
// ipv4-mapped-ipv6 (RFC 4291 §2.5.5.2).
func (v IPVersion) sockAddr(a netip.Addr) netip.Addr {
	if v == IPv4MappedIPv6 {
		return netip.AddrFrom16(a.As16())
	}
	return a
}

// IPVersion returns the version the script's --ip_version line asks for,
// IPVersionDefault when it has none (or a bad one, which Run reports).
func (s *Script) IPVersion() IPVersion {
	v := IPVersionDefault
	for _, o := range s.options {
		if o.name == "ip_version" {
			if w, err := ParseIPVersion(o.value); err == nil {
				v = w
			}
		}
	}
	return v
}

// sockaddr is a socket address argument: {sa_family=AF_INET6,
// sin_port=htons(8080), sin_addr=inet_addr("2001:db8::1")} as packetdrill's
// grammar writes it for both families, with the sockaddr_in6 field names
// (sin6_family, sin6_port, sin6_addr=inet6_addr("..."), sin6_flowinfo,
// sin6_scope_id) accepted as well.
type sockaddr struct {
	family  int64 // -1 when not written
	port    uint16
	addr    netip.Addr // the zero Addr when not written
	hasPort bool
}

// parseSockaddr reads a sockaddr argument; "..." is the zero sockaddr
// with no family.
func parseSockaddr(e *expr) (sockaddr, error) {
	sa := sockaddr{family: -1}
	if e.kind == xEllipsis {
		return sa, nil
	}
	if e.kind != xList {
		return sa, fmt.Errorf("expected a sockaddr, found %s", e)
	}
	for _, f := range e.elems {
		if f.kind != xAssign {
			return sa, fmt.Errorf("expected field=value in the sockaddr, found %s", f)
		}
		v := f.elems[0]
		switch f.text {
		case "sa_family", "sin_family", "sin6_family":
			fam, err := intValue(v)
			if err != nil || fam != afInet && fam != afInet6 && fam != afUnspec {
				return sa, fmt.Errorf("bad %s %s (want AF_INET or AF_INET6)", f.text, v)
			}
			sa.family = fam
		case "sin_port", "sin6_port":
			if v.kind == xCall && v.text == "htons" && len(v.elems) == 1 {
				v = v.elems[0]
			}
			p, err := intValue(v)
			if err != nil || p < 0 || p > 0xffff {
				return sa, fmt.Errorf("bad %s %s", f.text, f.elems[0])
			}
			sa.port, sa.hasPort = uint16(p), true
		case "sin_addr", "sin6_addr":
			a, err := addrValue(v)
			if err != nil {
				return sa, fmt.Errorf("bad %s: %v", f.text, err)
			}
			sa.addr = a
		case "sin6_flowinfo", "sin6_scope_id":
			if n, err := intValue(v); err != nil || n != 0 {
				return sa, fmt.Errorf("%s %s is not supported (only 0)", f.text, v)
			}
		default:
			return sa, fmt.Errorf("unknown sockaddr field %s", f.text)
		}
	}
	if a := sa.addr; a.IsValid() && (sa.family == afInet && !a.Is4() || sa.family == afInet6 && !a.Is6()) {
		return sa, fmt.Errorf("address %v does not belong to family %s", a, familyName(sa.family))
	}
	return sa, nil
}

// addrValue evaluates an address: inet_addr("192.0.2.1"),
// inet_addr("2001:db8::1") (packetdrill's sockaddr takes both),
// inet6_addr("2001:db8::1"), INADDR_ANY, or a bare string.
func addrValue(e *expr) (netip.Addr, error) {
	switch {
	case e.kind == xWord && (e.text == "INADDR_ANY" || e.text == "in6addr_any" || e.text == "IN6ADDR_ANY_INIT"):
		if e.text == "INADDR_ANY" {
			return netip.IPv4Unspecified(), nil
		}
		return netip.IPv6Unspecified(), nil
	case e.kind == xCall && (e.text == "inet_addr" || e.text == "inet6_addr") && len(e.elems) == 1:
		s := e.elems[0]
		if s.kind != xString {
			return netip.Addr{}, fmt.Errorf("%s needs a string, found %s", e.text, s)
		}
		a, err := netip.ParseAddr(s.text)
		if err != nil || a.Zone() != "" {
			return netip.Addr{}, fmt.Errorf("%s(%q): not an IP address", e.text, s.text)
		}
		if e.text == "inet6_addr" && !a.Is6() {
			return netip.Addr{}, fmt.Errorf("inet6_addr(%q): not an IPv6 address", s.text)
		}
		return a, nil
	case e.kind == xString:
		return addrValue(&expr{kind: xCall, text: "inet_addr", elems: []*expr{e}})
	}
	return netip.Addr{}, fmt.Errorf("expected inet_addr(\"...\") or inet6_addr(\"...\"), found %s", e)
}

func familyName(f int64) string {
	switch f {
	case afInet:
		return "AF_INET"
	case afInet6:
		return "AF_INET6"
	case afUnspec:
		return "AF_UNSPEC"
	}
	return fmt.Sprint(f)
}
