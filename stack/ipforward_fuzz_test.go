package stack

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/ustack/ustack/filter"
	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
)

// FuzzForward feeds arbitrary frames to a router's first NIC, with a
// filter that forwards, masquerades and port-forwards: whatever comes in
// (truncated, inconsistent, fragments, ICMP errors, IPv6 chains), the
// forwarding path must count and drop or route it, never panic, and keep
// connection tracking within its bound.
func FuzzForward(f *testing.F) {
	ra := link.MAC{2, 0, 0, 0, 1, 1}
	ea, er1 := link.NewPipe(link.PipeOptions{QueueLen: 4096, MACB: ra})
	er2, eb := link.NewPipe(link.PipeOptions{QueueLen: 4096, MACA: link.MAC{2, 0, 0, 0, 2, 1}})
	eth := func(typ uint16, pkt []byte) []byte {
		fr := make([]byte, link.EthernetHeaderLen+len(pkt))
		link.PutEthernetHeader(fr, ra, ea.HardwareAddr(), typ)
		copy(fr[link.EthernetHeaderLen:], pkt)
		return fr
	}
	v4 := func(dst netip.Addr, ttl, proto uint8, df, mf bool, payload []byte) []byte {
		p := make([]byte, ipv4.HeaderLen+len(payload))
		ipv4.PutHeader(p, &ipv4.Fields{TotalLength: uint16(len(p)), ID: 9, TTL: ttl, Protocol: proto,
			DontFragment: df, MoreFragments: mf, Source: rtA.Addr(), Destination: dst})
		copy(p[ipv4.HeaderLen:], payload)
		if proto == ip.ProtocolUDP || proto == ip.ProtocolTCP {
			off := 6
			if proto == ip.ProtocolTCP {
				off = 16
			}
			if len(payload) > off+1 {
				l4 := p[ipv4.HeaderLen:]
				binary.BigEndian.PutUint16(l4[off:], checksum.Checksum(l4, checksum.PseudoHeader(rtA.Addr(), dst, proto, uint16(len(l4)))))
			}
		}
		return eth(link.EtherTypeIPv4, p)
	}
	udp := []byte{0x9c, 0x40, 0, 53, 0, 12, 0, 0, 'q', 'u', 'e', 'r'}
	syn := make([]byte, 20)
	binary.BigEndian.PutUint16(syn[0:], 40000)
	binary.BigEndian.PutUint16(syn[2:], 8080)
	syn[12], syn[13] = 5<<4, 0x02
	binary.BigEndian.PutUint16(syn[14:], 65535)
	echo := []byte{ipv4.TypeEchoRequest, 0, 0, 0, 0, 1, 0, 1}
	binary.BigEndian.PutUint16(echo[2:], checksum.Checksum(echo, 0))
	f.Add(v4(rtB.Addr(), 64, ip.ProtocolUDP, false, false, udp))
	f.Add(v4(rtR1.Addr(), 64, ip.ProtocolTCP, true, false, syn))
	f.Add(v4(rtB.Addr(), 1, ip.ProtocolICMP, false, false, echo))
	f.Add(v4(rtB.Addr(), 64, ip.ProtocolUDP, false, true, udp))
	f.Add(v4(netip.MustParseAddr("192.0.2.1"), 64, ip.ProtocolICMP, false, false, echo))
	f.Add(v4(rtB.Addr(), 64, ip.ProtocolUDP, true, false, make([]byte, 1480)))
	te := make([]byte, 8+28)
	te[0] = ipv4.TypeTimeExceeded
	copy(te[8:], v4(rtA.Addr(), 64, ip.ProtocolUDP, false, false, udp[:8])[link.EthernetHeaderLen:])
	f.Add(v4(rtB.Addr(), 64, ip.ProtocolICMP, false, false, te))
	p6 := make([]byte, ipv6.HeaderLen+len(udp))
	ipv6.PutHeader(p6, &ipv6.Fields{PayloadLength: uint16(len(udp)), NextHeader: ip.ProtocolUDP, HopLimit: 64, Source: rt6A.Addr(), Destination: rt6B.Addr()})
	copy(p6[ipv6.HeaderLen:], udp)
	f.Add(eth(link.EtherTypeIPv6, p6))

	s := New(Options{Forwarding: true, DADTransmits: -1})
	defer s.Close()
	for i, ep := range []link.Endpoint{er1, er2} {
		id, err := s.AddNIC(ep, []netip.Prefix{rtR1, rtR2}[i])
		if err != nil {
			f.Fatal(err)
		}
		if err := s.AddAddress(id, []netip.Prefix{rt6R1, rt6R2}[i]); err != nil {
			f.Fatal(err)
		}
	}
	flt := filter.New(filter.Config{LocalAddr: s.LocalAddr, Conntrack: filter.ConntrackConfig{Max: 512}})
	if err := flt.Load(strings.NewReader(`*nat
-A PREROUTING -i nic1 -p tcp --dport 8080 -j DNAT --to-destination 10.2.0.2:80
-A POSTROUTING -o nic2 -j MASQUERADE
COMMIT
*filter
-A FORWARD -p udp --dport 9 -j REJECT
-A FORWARD -p tcp --dport 9 -j REJECT --reject-with tcp-reset
COMMIT
`)); err != nil {
		f.Fatal(err)
	}
	s.SetFilter(flt)
	for _, ep := range []*link.PipeEnd{ea, eb} {
		go func() { // drain what the router sends, so the pipes never fill
			buf := make([]byte, 70000)
			for {
				if _, err := ep.ReadFrame(buf); err != nil {
					return
				}
			}
		}()
	}
	n := s.nicByID(1)
	f.Fuzz(func(t *testing.T, frame []byte) {
		n.deliver(frame)
		if l := flt.Conntrack().Len(); l > 512 {
			t.Fatalf("conntrack holds %d entries, bound 512", l)
		}
	})
}
