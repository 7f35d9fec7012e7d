package trace

import (
	"bytes"
	"encoding/binary"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vlan"
	"github.com/ustack/ustack/link/vnet"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the formatter's output")

var (
	macA  = link.MAC{0x02, 0, 0, 0, 0, 0x0a}
	macB  = link.MAC{0x02, 0, 0, 0, 0, 0x0b}
	ip4A  = netip.MustParseAddr("10.0.0.1")
	ip4B  = netip.MustParseAddr("10.0.0.2")
	ip6A  = netip.MustParseAddr("fd00::1")
	ip6B  = netip.MustParseAddr("fd00::2")
	synOp = []byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7} // mss 1460, sackOK, TS 1 0, nop, wscale 7
)

// eth returns an Ethernet frame from macA to macB with payload p, tagged
// with tags in order.
func eth(etherType uint16, p []byte, tags ...vlan.Tag) []byte {
	f := make([]byte, 12, 14+4*len(tags)+len(p))
	copy(f, macB[:])
	copy(f[6:], macA[:])
	for _, t := range tags {
		f = binary.BigEndian.AppendUint16(f, vlan.TPID)
		f = binary.BigEndian.AppendUint16(f, t.TCI())
	}
	f = binary.BigEndian.AppendUint16(f, etherType)
	return append(f, p...)
}

// ip4 returns an IPv4 datagram from ip4A to ip4B carrying payload p.
func ip4(proto uint8, p []byte, fl ipv4.Fields) []byte {
	b := make([]byte, ipv4.HeaderLen+len(p))
	fl.TotalLength, fl.Protocol, fl.Source, fl.Destination = uint16(len(b)), proto, ip4A, ip4B
	if fl.TTL == 0 {
		fl.TTL = 64
	}
	ipv4.PutHeader(b, &fl)
	copy(b[ipv4.HeaderLen:], p)
	return b
}

// ip6 returns an IPv6 packet from ip6A to ip6B with next header nh and
// payload p.
func ip6(nh uint8, p []byte) []byte {
	b := make([]byte, ipv6.HeaderLen+len(p))
	ipv6.PutHeader(b, &ipv6.Fields{PayloadLength: uint16(len(p)), NextHeader: nh, HopLimit: 64, Source: ip6A, Destination: ip6B})
	copy(b[ipv6.HeaderLen:], p)
	return b
}

// tcpSeg returns a TCP segment with a correct checksum from src to dst.
func tcpSeg(src, dst netip.Addr, flags byte, seq, ack uint32, opts []byte, n int) []byte {
	hl := 20 + len(opts)
	b := make([]byte, hl+n)
	binary.BigEndian.PutUint16(b[0:], 40000)
	binary.BigEndian.PutUint16(b[2:], 7)
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], ack)
	b[12] = byte(hl/4) << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 64240)
	copy(b[20:], opts)
	for i := range n {
		b[hl+i] = byte(i)
	}
	binary.BigEndian.PutUint16(b[16:], ^checksum.Sum(b, checksum.PseudoHeader(src, dst, ip.ProtocolTCP, uint16(len(b)))))
	return b
}

// udpDgram returns a UDP datagram with a correct checksum.
func udpDgram(src, dst netip.Addr, n int) []byte {
	b := make([]byte, 8+n)
	binary.BigEndian.PutUint16(b[0:], 5353)
	binary.BigEndian.PutUint16(b[2:], 53)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[6:], ^checksum.Sum(b, checksum.PseudoHeader(src, dst, ip.ProtocolUDP, uint16(len(b)))))
	return b
}

// icmpMsg returns an ICMP (or ICMPv6, without its checksum) message.
func icmpMsg(typ, code uint8, rest []byte) []byte {
	b := append([]byte{typ, code, 0, 0}, rest...)
	binary.BigEndian.PutUint16(b[2:], ^checksum.Sum(b, 0))
	return b
}

// goldenCases are the frames of the golden tests, by name.
func goldenCases() []struct {
	name string
	f    Frame
} {
	arpReq := make([]byte, arp.PacketLen)
	arp.PutPacket(arpReq, arp.OpRequest, macA, ip4A, link.MAC{}, ip4B)
	arpRep := make([]byte, arp.PacketLen)
	arp.PutPacket(arpRep, arp.OpReply, macB, ip4B, macA, ip4A)
	arpAnn := make([]byte, arp.PacketLen)
	arp.PutGratuitous(arpAnn, macA, ip4A)

	syn := tcpSeg(ip4A, ip4B, 0x02, 1000, 0, synOp, 0)
	data := tcpSeg(ip4A, ip4B, 0x18, 1001, 5001, []byte{1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 1}, 100)
	bad := append([]byte(nil), data...)
	bad[30] ^= 0xff
	partial := tcpSeg(ip4A, ip4B, 0x10, 1001, 5001, nil, 1000)
	sack := tcpSeg(ip4A, ip4B, 0x10, 1, 2, []byte{1, 1, 5, 18, 0, 0, 0x03, 0xe8, 0, 0, 0x07, 0xd0, 0, 0, 0x0b, 0xb8, 0, 0, 0x0f, 0xa0}, 0)

	frag0 := ip4(ip.ProtocolUDP, udpDgram(ip4A, ip4B, 2000)[:1480], ipv4.Fields{ID: 77, MoreFragments: true})
	frag1 := ip4(ip.ProtocolUDP, make([]byte, 528), ipv4.Fields{ID: 77, FragmentOffset: 1480})

	ns := make([]byte, 4+16)
	copy(ns[4:], ip6B.AsSlice())
	fragHdr := []byte{ipv6.NextHeaderUDP, 0, 0x05, 0xc8 | 1, 0, 0, 0, 42} // offset 185*8=1480, M
	v6frag := ip6(ipv6.NextHeaderFragment, append(fragHdr, make([]byte, 64)...))

	badIP := ip4(ip.ProtocolTCP, syn, ipv4.Fields{})
	badIP[10] ^= 0xff

	return []struct {
		name string
		f    Frame
	}{
		{"arp_request", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeARP, arpReq)}},
		{"arp_reply", Frame{Dir: Out, NIC: "tap0", Data: eth(link.EtherTypeARP, arpRep)}},
		{"arp_announcement", Frame{Dir: Out, NIC: "tap0", Data: eth(link.EtherTypeARP, arpAnn)}},
		{"tcp_syn_vlan", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeIPv4, ip4(ip.ProtocolTCP, syn, ipv4.Fields{ID: 1, DontFragment: true}), vlan.Tag{VID: 10, PCP: 5})}},
		{"tcp_qinq", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeIPv4, ip4(ip.ProtocolTCP, syn, ipv4.Fields{}), vlan.Tag{VID: 100}, vlan.Tag{VID: 10})}},
		{"tcp_data", Frame{Dir: Out, NIC: "tap0", Data: eth(link.EtherTypeIPv4, ip4(ip.ProtocolTCP, data, ipv4.Fields{ID: 2, TOS: 0x10}))}},
		{"tcp_bad_checksum", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeIPv4, ip4(ip.ProtocolTCP, bad, ipv4.Fields{}))}},
		{"tcp_partial_checksum", Frame{Dir: Out, NIC: "tap0", Data: eth(link.EtherTypeIPv4, ip4(ip.ProtocolTCP, partial, ipv4.Fields{})),
			Offload: ip.Offload{NeedsChecksum: true, ChecksumStart: 20, ChecksumOffset: 16, GSOType: vnet.GSOTCPv4, GSOSize: 500}}},
		{"tcp_sack", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeIPv4, ip4(ip.ProtocolTCP, sack, ipv4.Fields{}))}},
		{"udp", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeIPv4, ip4(ip.ProtocolUDP, udpDgram(ip4A, ip4B, 30), ipv4.Fields{}))}},
		{"icmp_echo", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeIPv4, ip4(ip.ProtocolICMP, icmpMsg(8, 0, []byte{0, 1, 0, 2, 'h', 'i'}), ipv4.Fields{}))}},
		{"icmp_frag_needed", Frame{Dir: Out, NIC: "tap0", Data: eth(link.EtherTypeIPv4, ip4(ip.ProtocolICMP, icmpMsg(3, 4, []byte{0, 0, 0x05, 0xdc}), ipv4.Fields{}))}},
		{"ipv4_first_fragment", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeIPv4, frag0)}},
		{"ipv4_fragment", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeIPv4, frag1)}},
		{"ipv6_tcp", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeIPv6, ip6(ipv6.NextHeaderTCP, tcpSeg(ip6A, ip6B, 0x12, 1, 1001, synOp, 0)))}},
		{"ipv6_neighbor_solicitation", Frame{Dir: Out, NIC: "tap0", Data: eth(link.EtherTypeIPv6, ip6(ipv6.NextHeaderICMPv6, append([]byte{135, 0, 0, 0}, ns...)))}},
		{"ipv6_fragment", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeIPv6, v6frag)}},
		{"raw_ipv4_udp", Frame{Dir: In, NIC: "tun0", Raw: true, Data: ip4(ip.ProtocolUDP, udpDgram(ip4A, ip4B, 4), ipv4.Fields{})}},
		// Bad input: a line says what is wrong, and nothing above it.
		{"short_ethernet", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeIPv4, nil)[:10]}},
		{"tag_cut_short", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeIPv4, nil, vlan.Tag{VID: 10})[:15]}},
		{"ieee8023_length", Frame{Dir: In, NIC: "tap0", Data: eth(46, make([]byte, 46))}},
		{"unknown_ethertype", Frame{Dir: In, NIC: "tap0", Data: eth(0x88b5, make([]byte, 46))}},
		{"ipv4_truncated", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeIPv4, ip4(ip.ProtocolTCP, syn, ipv4.Fields{})[:30])}},
		{"ipv4_bad_header_checksum", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeIPv4, badIP)}},
		{"tcp_truncated", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeIPv4, ip4(ip.ProtocolTCP, syn[:12], ipv4.Fields{}))}},
		{"arp_truncated", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeARP, arpReq[:20])}},
		{"raw_bad_version", Frame{Dir: In, NIC: "tun0", Raw: true, Data: []byte{0x50, 0, 0, 0}}},
		{"icmp_truncated", Frame{Dir: In, NIC: "tap0", Data: eth(link.EtherTypeIPv4, ip4(ip.ProtocolICMP, []byte{8, 0, 0}, ipv4.Fields{}))}},
	}
}

func TestAppendGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			got := Append(nil, &tc.f)
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("trace of %s:\n got:\n%s\nwant:\n%s", tc.name, got, want)
			}
		})
	}
}

// Every frame's lines are indented one step per layer: the frame's line
// at depth 0, then depths that grow by one.
func TestAppendIndentation(t *testing.T) {
	for _, tc := range goldenCases() {
		checkShape(t, tc.name, Append(nil, &tc.f))
	}
}

// checkShape checks the lines of one frame's trace: newline-terminated,
// the first at depth 0, each at most one step deeper than the one before.
func checkShape(t *testing.T, name string, out []byte) {
	t.Helper()
	s := string(out)
	if !strings.HasSuffix(s, "\n") {
		t.Fatalf("%s: trace does not end in a newline: %q", name, s)
	}
	prev := -1
	for i, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		d := 0
		for strings.HasPrefix(l[2*d:], indent) {
			d++
		}
		if (i == 0 && d != 0) || (i > 0 && (d < 1 || d > prev+1)) {
			t.Fatalf("%s: line %d at depth %d after depth %d:\n%s", name, i, d, prev, s)
		}
		prev = d
	}
}

func TestAppendTime(t *testing.T) {
	f := goldenCases()[0].f
	f.Time = mustTime("2026-12-02T13:04:05.123456789Z")
	if got := string(Append(nil, &f)); !strings.HasPrefix(got, "13:04:05.123456 in tap0 42 bytes\n") {
		t.Errorf("with a time: %q", got)
	}
}
