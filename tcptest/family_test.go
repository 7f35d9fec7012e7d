package tcptest

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/tcp"
)

// An IPv6 stack is packetdrill's IPv6 addresses, advertises the MSS of a
// 1500-octet MTU less 60 (RFC 8200 §8.3), and checksums with the IPv6
// pseudo-header (RFC 8200 §8.1): a segment built for the flow parses
// against the IPv6 addresses and not against the IPv4 ones.
func TestStackIPv6(t *testing.T) {
	s := NewStackFamily(tcp.DefaultConfig(), IPv6)
	if s.Family() != IPv6 || s.LocalAddr() != LocalAddr6 || s.RemoteAddr() != RemoteAddr6 || s.MSS() != DefaultMSS6 {
		t.Fatalf("family %v, addresses %v %v, MSS %d", s.Family(), s.LocalAddr(), s.RemoteAddr(), s.MSS())
	}
	if LocalAddr6.String() != "fd3d:fa7b:d17d::1" || RemoteAddr6.String() != "2001:db8::1" || DefaultMSS6 != 1440 {
		t.Fatalf("IPv6 defaults %v %v %d", LocalAddr6, RemoteAddr6, DefaultMSS6)
	}
	if _, err := s.Listen(8080, 1, nil, 0); err != nil {
		t.Fatal(err)
	}
	f := s.Flow(40000, 8080)
	if f.Tuple().Local.Addr() != LocalAddr6 || f.Tuple().Remote.Addr() != RemoteAddr6 {
		t.Fatalf("flow %v", f.Tuple())
	}
	b, err := f.Build(Seg().Flags("S").Seq(0).Win(65535).MSS(1440))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tcp.ParseSegment(b, RemoteAddr6, LocalAddr6); err != nil {
		t.Fatalf("built SYN under the IPv6 pseudo-header: %v", err)
	}
	if _, err := tcp.ParseSegment(b, RemoteAddr, LocalAddr); err != tcp.ErrChecksum {
		t.Fatalf("built SYN under the IPv4 pseudo-header: %v, want ErrChecksum", err)
	}
	if err := s.Inject(f.Tuple(), b); err != nil {
		t.Fatal(err)
	}
	p, ok := s.Next()
	if !ok {
		t.Fatal("no SYN-ACK")
	}
	if err := f.Match(Seg().Flags("S.").Seq(0).Ack(1).MSS(1440), p, MatchOptions{}); err != nil {
		t.Fatalf("SYN-ACK: %v (%v)", err, p)
	}
	if _, err := tcp.ParseSegment(p.Data, LocalAddr6, RemoteAddr6); err != nil {
		t.Fatalf("the stack's SYN-ACK under the IPv6 pseudo-header: %v", err)
	}
}

// SetMTU sets the MSS by the family's headers and refuses MTUs below the
// family's minimum; Dial refuses an address of the other family.
func TestSetMTUAndDialFamily(t *testing.T) {
	s4, s6 := NewStack(tcp.DefaultConfig()), NewStackFamily(tcp.DefaultConfig(), IPv6)
	if err := s4.SetMTU(1520); err != nil || s4.MSS() != 1480 {
		t.Fatalf("IPv4 SetMTU(1520): %v, MSS %d", err, s4.MSS())
	}
	if err := s6.SetMTU(1520); err != nil || s6.MSS() != 1460 {
		t.Fatalf("IPv6 SetMTU(1520): %v, MSS %d", err, s6.MSS())
	}
	if err := s6.SetMTU(1279); err == nil {
		t.Error("IPv6 SetMTU(1279) accepted")
	}
	if err := s4.SetMTU(67); err == nil {
		t.Error("IPv4 SetMTU(67) accepted")
	}
	if err := s4.SetMTU(65536); err == nil {
		t.Error("SetMTU(65536) accepted")
	}
	if _, err := s6.Dial(0, netip.AddrPortFrom(RemoteAddr, 80), nil, 0); err == nil {
		t.Error("IPv6 stack dialled an IPv4 address")
	}
	if _, err := s4.Dial(0, netip.AddrPortFrom(RemoteAddr6, 80), nil, 0); err == nil {
		t.Error("IPv4 stack dialled an IPv6 address")
	}
	if _, err := s4.Dial(0, netip.AddrPortFrom(netip.AddrFrom16(RemoteAddr.As16()), 80), nil, 0); err == nil {
		t.Error("IPv4 stack dialled an IPv4-mapped address")
	}
	c, err := s6.Dial(0, netip.AddrPortFrom(RemoteAddr6, 80), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := s6.Next()
	if !ok || p.Tuple != c.Tuple() {
		t.Fatalf("no SYN from the IPv6 Dial: %v", p)
	}
	d, err := decode(p.Data)
	if err != nil || len(d.opts) == 0 || d.opts[0].Kind != KindMSS || d.opts[0].Value != 1460 {
		t.Fatalf("SYN after SetMTU(1520): %v (%v)", p, err)
	}
}

// A capture of an IPv6 exchange holds IPv6 headers (version 6, next
// header TCP, payload length, the flow's addresses) around the segments.
func TestWritePcapIPv6(t *testing.T) {
	s := NewStackFamily(tcp.DefaultConfig(), IPv6)
	f := s.Flow(40000, 8080)
	f.Send(Seg().Flags("S").Seq(0).Win(1000)) // to a closed port: a RST
	s.Advance(time.Second)
	if len(s.Log()) != 2 {
		t.Fatalf("%d packets", len(s.Log()))
	}
	var buf bytes.Buffer
	if err := WritePcap(&buf, s.Log()); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()[24:]
	for i, p := range s.Log() {
		n := int(binary.LittleEndian.Uint32(b[8:]))
		if n != ipv6.HeaderLen+len(p.Data) {
			t.Fatalf("record %d: length %d", i, n)
		}
		h, err := ipv6.ParseHeader(b[16 : 16+n])
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		wantSrc, wantDst := RemoteAddr6, LocalAddr6
		if p.Dir == Out {
			wantSrc, wantDst = LocalAddr6, RemoteAddr6
		}
		if h.NextHeader() != ipv6.NextHeaderTCP || h.Source() != wantSrc || h.Destination() != wantDst ||
			int(h.PayloadLength()) != len(p.Data) || !bytes.Equal(h.Payload(), p.Data) {
			t.Errorf("record %d: % x", i, b[16:16+ipv6.HeaderLen])
		}
		if _, err := tcp.ParseSegment(h.Payload(), h.Source(), h.Destination()); err != nil {
			t.Errorf("record %d: %v", i, err)
		}
		b = b[16+n:]
	}
}

// On an IPv6 connection an injected message is read as ICMPv6: Packet Too
// Big (type 2) of 1400 lowers the MSS to 1340 and the segment goes again;
// type 3 code 4 is Time Exceeded there (a soft error), not ICMPv4's
// fragmentation needed; a Packet Too Big below 1280 is discarded
// (RFC 8201 §4).
func TestInjectICMPv6(t *testing.T) {
	h := NewFamily(t, IPv6, nil)
	l := h.Listen(8080, 16)
	p := h.Peer(40000, 8080)
	p.Send(Seg().Flags("S").Seq(0).Win(65535).MSS(1440))
	p.Expect(Seg().Flags("S.").Seq(0).Ack(1).Win(65535).MSS(1440))
	p.Send(Seg().Flags(".").Seq(1).Ack(1).Win(65535))
	c := l.Accept()
	if _, err := c.Write(make([]byte, 1440)); err != nil {
		t.Fatal(err)
	}
	p.Expect(Seg().Flags("P.").Seq(1).Len(1440).Ack(1))
	if r, err := p.Flow().SendICMP(ICMP{Type: 3, Code: 4, MTU: 1200}, true); err != nil || r != tcp.ICMPSoftError {
		t.Fatalf("ICMPv6 time exceeded: %v %v", r, err)
	}
	if r, _ := p.Flow().SendICMP(ICMP{Type: 2, MTU: 1200}, true); r != tcp.ICMPIgnored {
		t.Fatalf("Packet Too Big 1200: %v, want ignored", r)
	}
	if r, _ := p.Flow().SendICMP(ICMP{Type: 2, MTU: 1400}, true); r != tcp.ICMPMTULowered {
		t.Fatalf("Packet Too Big 1400: %v", r)
	}
	if in := c.TCP().Info(); in.MSS != 1340 {
		t.Fatalf("MSS %d, want 1340", in.MSS)
	}
	p.Expect(Seg().Flags(".").Seq(1).Len(1340).Ack(1))
	p.Expect(Seg().Flags("P.").Seq(1341).Len(100).Ack(1))
	h.ExpectNothing()
}

// A path MTU an ICMP message lowered is remembered per destination for 10
// minutes, as package stack does (RFC 1191 §6.2, §6.3): a live connection
// to the same peer and a new one start sending at it; after the 10
// minutes a new connection sends full-sized segments again.
func TestPathMTUMemory(t *testing.T) {
	for _, f := range []Family{IPv4, IPv6} {
		t.Run(f.String(), func(t *testing.T) {
			h := NewFamily(t, f, nil)
			l := h.Listen(8080, 16)
			mss := DefaultMTU - f.HeaderLen()
			open := func(port uint16) (*Peer, *Conn) {
				p := h.Peer(port, 8080)
				p.Send(Seg().Flags("S").Seq(0).Win(65535).MSS(uint16(mss)))
				p.Expect(Seg().Flags("S.").Seq(0).Ack(1).MSS(uint16(mss)))
				p.Send(Seg().Flags(".").Seq(1).Ack(1).Win(65535))
				return p, l.Accept()
			}
			p1, c1 := open(40000)
			_, c2 := open(40001)
			if _, err := c1.Write(make([]byte, mss)); err != nil {
				t.Fatal(err)
			}
			p1.Expect(Seg().Flags("P.").Seq(1).Len(mss).Ack(1))
			m := ICMP{Type: 3, Code: 4, MTU: 1300}
			if f == IPv6 {
				m = ICMP{Type: 2, MTU: 1300}
			}
			if r, err := p1.Flow().SendICMP(m, true); err != nil || r != tcp.ICMPMTULowered {
				t.Fatalf("%v %v", r, err)
			}
			if mtu, ok := h.PathMTU(h.RemoteAddr()); !ok || mtu != 1300 {
				t.Fatalf("PathMTU %d %v", mtu, ok)
			}
			want := 1300 - f.HeaderLen()
			p1.Expect(Seg().Flags(".").Seq(1).Len(want).Ack(1))
			p1.Expect(Seg().Flags("P.").Seq(uint32(1 + want)).Len(mss - want).Ack(1))
			p1.Send(Seg().Flags(".").Seq(1).Ack(uint32(1 + mss)).Win(65535))
			if got := c2.TCP().Info().MSS; int(got) != want {
				t.Fatalf("live connection's MSS %d, want %d", got, want)
			}
			_, c3 := open(40002)
			if got := c3.TCP().Info().MSS; int(got) != want {
				t.Fatalf("new connection's MSS %d, want %d", got, want)
			}
			h.Advance(pmtuTimeout)
			if _, ok := h.PathMTU(h.RemoteAddr()); ok {
				t.Fatal("path MTU remembered past 10 minutes")
			}
			_, c4 := open(40003)
			if got := c4.TCP().Info().MSS; int(got) != mss {
				t.Fatalf("connection after 10 minutes: MSS %d, want %d", got, mss)
			}
		})
	}
}
