package stack

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
)

// icmpOutcomes sums the counters one ICMP error ends in, exactly one each.
func icmpOutcomes(st Stats) uint64 {
	return st.ICMP.ErrorsIgnored + st.ICMP.DropBadQuote + st.ICMP.ErrorsNoConnection +
		st.TCP.ICMPIgnored + st.TCP.ICMPSoftErrors + st.TCP.ICMPAborts + st.TCP.PMTUDecreases +
		st.UDP.ICMPErrorsReported
}

// quotedUDP returns the quote an ICMP error carries of a UDP datagram
// from src to dst: its IPv4 header and UDP header.
func quotedUDP(src, dst netip.AddrPort) []byte {
	q := make([]byte, ipv4.HeaderLen+8)
	ipv4.PutHeader(q, &ipv4.Fields{TotalLength: ipv4.HeaderLen + 100, TTL: 64, Protocol: ipv4.ProtocolUDP, Source: src.Addr(), Destination: dst.Addr()})
	binary.BigEndian.PutUint16(q[ipv4.HeaderLen:], src.Port())
	binary.BigEndian.PutUint16(q[ipv4.HeaderLen+2:], dst.Port())
	binary.BigEndian.PutUint16(q[ipv4.HeaderLen+4:], 100)
	return q
}

// FuzzICMPError delivers ICMP error messages with a valid checksum and
// arbitrary type, code, second word and quote to a stack with a live
// connection: whatever the quote (truncated, garbage, another tuple, a
// sequence number anywhere; a connected UDP socket's datagram), the
// stack must not panic, and each message must be counted under exactly
// one outcome.
func FuzzICMPError(f *testing.F) {
	ea, eb := link.NewPipe(link.PipeOptions{})
	a, b := New(Options{}), New(Options{})
	defer func() { a.Close(); b.Close() }()
	if _, err := a.AddNIC(ea, addrA); err != nil {
		f.Fatal(err)
	}
	if _, err := b.AddNIC(eb, addrB); err != nil {
		f.Fatal(err)
	}
	l, err := b.ListenTCP(netip.AddrPortFrom(addrB.Addr(), 7))
	if err != nil {
		f.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c // kept open; closing the stacks ends it
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := a.DialTCP(ctx, netip.AddrPortFrom(addrB.Addr(), 7))
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	tu := tcp.Tuple{Local: netip.MustParseAddrPort(c.LocalAddr().String()), Remote: netip.MustParseAddrPort(c.RemoteAddr().String())}
	n := a.nicByID(1)
	macA, macB := n.mac, b.nicByID(1).mac

	// A connected UDP socket, and the quote of a datagram it sent.
	uc, err := a.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(addrB.Addr(), 53))
	if err != nil {
		f.Fatal(err)
	}
	defer uc.Close()
	uq := quotedUDP(uc.LocalAddr().(*net.UDPAddr).AddrPort(), netip.AddrPortFrom(addrB.Addr(), 53))
	f.Add(uint8(3), uint8(3), uint32(0), uq)
	f.Add(uint8(3), uint8(1), uint32(0), uq)
	f.Add(uint8(12), uint8(0), uint32(0), uq[:22])

	q := quotedTCP(tu, 1, 1500)
	f.Add(uint8(3), uint8(4), uint32(1280), q)
	f.Add(uint8(3), uint8(4), uint32(0), q)
	f.Add(uint8(3), uint8(1), uint32(0), q)
	f.Add(uint8(11), uint8(0), uint32(0), q)
	f.Add(uint8(12), uint8(0), uint32(20<<24), q)
	f.Add(uint8(4), uint8(0), uint32(0), q)
	f.Add(uint8(3), uint8(4), uint32(1280), q[:24])
	f.Add(uint8(3), uint8(3), uint32(0), q[:10])
	f.Add(uint8(3), uint8(4), uint32(60), []byte{0x4f, 0, 0, 20})
	f.Fuzz(func(t *testing.T, typ, code uint8, word uint32, quote []byte) {
		if !ipv4.IsError(typ) || len(quote) > 1400 {
			return
		}
		m := make([]byte, ipv4.ICMPHeaderLen+len(quote))
		m[0], m[1] = typ, code
		binary.BigEndian.PutUint32(m[4:], word)
		copy(m[ipv4.ICMPHeaderLen:], quote)
		fr := make([]byte, link.EthernetHeaderLen+ipv4.HeaderLen+len(m))
		link.PutEthernetHeader(fr, macA, macB, link.EtherTypeIPv4)
		ip := fr[link.EthernetHeaderLen:]
		ipv4.PutHeader(ip, &ipv4.Fields{TotalLength: uint16(len(ip)), TTL: 64, Protocol: ipv4.ProtocolICMP, Source: routerAddr, Destination: addrA.Addr()})
		copy(ip[ipv4.HeaderLen:], m)
		icmp := ip[ipv4.HeaderLen:]
		binary.BigEndian.PutUint16(icmp[2:], checksum.Checksum(icmp, 0))
		before := icmpOutcomes(a.Stats())
		n.deliver(fr)
		if got := icmpOutcomes(a.Stats()) - before; got != 1 {
			t.Fatalf("type %d code %d quote %x: %d outcomes counted, want 1", typ, code, quote, got)
		}
	})
}
