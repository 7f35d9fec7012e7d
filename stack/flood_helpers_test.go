package stack

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
)

// spoofed is the prefix flood tests draw forged sources from: RFC 2544's
// benchmarking range, routed nowhere in these tests (the stacks have only
// their on-link 10.1.0.0/24), so nothing answers a forged source.
var spoofed = netip.MustParsePrefix("198.18.0.0/15")

// spoofedAddr returns the i-th address of spoofed.
func spoofedAddr(i int) netip.Addr {
	b := spoofed.Addr().As4()
	v := binary.BigEndian.Uint32(b[:]) + uint32(i%(1<<17))
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// ipFrame builds an Ethernet frame carrying an IPv4 datagram from src to
// dst with the given fields and payload.
func ipFrame(dstMAC, srcMAC link.MAC, f ipv4.Fields, payload []byte) []byte {
	fr := make([]byte, link.EthernetHeaderLen+ipv4.HeaderLen+len(payload))
	link.PutEthernetHeader(fr, dstMAC, srcMAC, link.EtherTypeIPv4)
	f.TotalLength = uint16(ipv4.HeaderLen + len(payload))
	if f.TTL == 0 {
		f.TTL = 64
	}
	ipv4.PutHeader(fr[link.EthernetHeaderLen:], &f)
	copy(fr[link.EthernetHeaderLen+ipv4.HeaderLen:], payload)
	return fr
}

// echoRequest returns an ICMP echo request with the given ident and seq.
func echoRequest(ident, seq uint16, data []byte) []byte {
	m := make([]byte, 8+len(data))
	m[0] = ipv4.TypeEchoRequest
	binary.BigEndian.PutUint16(m[4:], ident)
	binary.BigEndian.PutUint16(m[6:], seq)
	copy(m[8:], data)
	binary.BigEndian.PutUint16(m[2:], checksum.Checksum(m, 0))
	return m
}

// arpFrame builds an ARP packet in an Ethernet frame to dstMAC.
func arpFrame(dstMAC link.MAC, op uint16, sha link.MAC, spa netip.Addr, tha link.MAC, tpa netip.Addr) []byte {
	f := make([]byte, link.EthernetHeaderLen+arp.PacketLen)
	link.PutEthernetHeader(f, dstMAC, sha, link.EtherTypeARP)
	arp.PutPacket(f[link.EthernetHeaderLen:], op, sha, spa, tha, tpa)
	return f
}

// drain reads and discards every frame ep receives until the test ends,
// with one buffer, so that a flood's answers never fill the pipe.
func drain(t *testing.T, ep link.Endpoint) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 70000)
		for {
			if _, err := ep.ReadFrame(buf); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { ep.Close(); <-done })
}
