package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
	"github.com/ustack/ustack/udp"
)

// eth6 returns an Ethernet frame from src to dst carrying the IPv6
// packet of the given fields and payload.
func eth6(dst, src link.MAC, f ipv6.Fields, payload []byte) []byte {
	b := make([]byte, link.EthernetHeaderLen+ipv6.HeaderLen+len(payload))
	link.PutEthernetHeader(b, dst, src, link.EtherTypeIPv6)
	f.PayloadLength = uint16(len(payload))
	ipv6.PutHeader(b[link.EthernetHeaderLen:], &f)
	copy(b[link.EthernetHeaderLen+ipv6.HeaderLen:], payload)
	return b
}

// seedFrames6 returns well-formed IPv6 frames of every kind the stack
// handles, from the peer (addr6B, macB) to the stack (addr6A, macA).
func seedFrames6(macA, macB link.MAC) [][]byte {
	src, dst := addr6B.Addr(), addr6A.Addr()
	f := func(nh uint8, hl uint8, to netip.Addr) ipv6.Fields {
		return ipv6.Fields{NextHeader: nh, HopLimit: hl, Source: src, Destination: to}
	}
	var out [][]byte
	b := make([]byte, 2000)
	n := ipv6.PutEcho(b, ipv6.TypeEchoRequest, src, dst, 1, 1, []byte("hi"))
	out = append(out, eth6(macA, macB, f(ipv6.NextHeaderICMPv6, 64, dst), append([]byte(nil), b[:n]...)))
	snm := ipv6.SolicitedNodeMulticast(dst)
	n = ipv6.PutNeighborSolicitation(b, src, snm, dst, macB[:])
	out = append(out, eth6(ipv6.MulticastMAC(snm), macB, f(ipv6.NextHeaderICMPv6, 255, snm), append([]byte(nil), b[:n]...)))
	n = ipv6.PutNeighborAdvertisement(b, src, dst, src, ipv6.FlagSolicited|ipv6.FlagOverride, macB[:])
	out = append(out, eth6(macA, macB, f(ipv6.NextHeaderICMPv6, 255, dst), append([]byte(nil), b[:n]...)))
	ll := ipv6.LinkLocalFromMAC(macB)
	n = ipv6.PutRouterAdvertisement(b, ll, ipv6.AllNodes, &ipv6.RouterAdvertisementFields{RouterLifetime: 1800 * time.Second,
		Prefixes: []ipv6.PrefixInformationFields{{Prefix: netip.MustParsePrefix("fd09::/64"), OnLink: true, Autonomous: true,
			ValidLifetime: 3600, PreferredLifetime: 3600}}, MTU: 1400})
	out = append(out, eth6(ipv6.MulticastMAC(ipv6.AllNodes), macB, ipv6.Fields{NextHeader: ipv6.NextHeaderICMPv6, HopLimit: 255, Source: ll, Destination: ipv6.AllNodes}, append([]byte(nil), b[:n]...)))

	syn := make([]byte, tcp.HeaderLen+4)
	h := tcp.Header{SrcPort: 40000, DstPort: 7, Seq: 1000, Flags: tcp.FlagSYN, Window: 65535, Options: &tcp.Options{MSS: 1440, WindowScale: -1}}
	h.Encode(syn)
	tcp.SetChecksum(syn, src, dst)
	out = append(out, eth6(macA, macB, f(ipv6.NextHeaderTCP, 64, dst), syn))
	d := make([]byte, udp.HeaderLen+5)
	copy(d[udp.HeaderLen:], "query")
	udp.PutHeader(d, 40002, 53, 5)
	udp.SetChecksum(d, src, dst)
	out = append(out, eth6(macA, macB, f(ipv6.NextHeaderUDP, 64, dst), d))
	// A fragment (the first of two) and a packet with a destination
	// options header.
	frag := append([]byte{ipv6.NextHeaderUDP, 0, 0, 1, 0, 0, 0, 9}, d[:8]...)
	out = append(out, eth6(macA, macB, f(ipv6.NextHeaderFragment, 64, dst), frag))
	opts := append([]byte{ipv6.NextHeaderUDP, 0, 1, 4, 0, 0, 0, 0}, d...)
	out = append(out, eth6(macA, macB, f(ipv6.NextHeaderDestOptions, 64, dst), opts))
	return out
}

// FuzzDeliverFrame6 is FuzzDeliverFrame for IPv6: arbitrary frames
// (seeded with echo, NDP, RA, TCP, UDP, fragments and extension headers)
// to a stack with an IPv6 listener and UDP socket. Whatever the bytes, it
// counts and drops or answers, and never panics; the neighbour cache and
// the half-open entries stay within their bounds.
func FuzzDeliverFrame6(f *testing.F) {
	s, n := fuzzNIC(f, Options{DADTransmits: -1, SLAAC: true}, addr6A, seedFrames6)
	l, err := s.ListenTCP(netip.AddrPortFrom(netip.IPv6Unspecified(), 7))
	if err != nil {
		f.Fatal(err)
	}
	defer l.Close()
	uc, err := s.ListenUDP(netip.AddrPortFrom(netip.IPv6Unspecified(), 53))
	if err != nil {
		f.Fatal(err)
	}
	defer uc.Close()
	f.Fuzz(func(t *testing.T, frame []byte) {
		n.deliver(frame)
		if syn, _ := l.Pending(); syn > DefaultBacklog {
			t.Fatalf("%d half-open entries", syn)
		}
		n.ndMu.Lock()
		entries := n.nd.Len()
		n.ndMu.Unlock()
		if entries > 1024 {
			t.Fatalf("%d neighbour entries", entries)
		}
	})
}
