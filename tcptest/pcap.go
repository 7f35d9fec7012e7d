package tcptest

import (
	"encoding/binary"
	"io"
	"os"

	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/tcp"
)

// pcap file format (https://www.tcpdump.org/manpages/pcap-savefile.5.html).
const (
	pcapMagic    = 0xa1b2c3d4 // microsecond timestamps
	pcapLinkRaw  = 101        // LINKTYPE_RAW: the packet begins with an IPv4 or IPv6 header
	pcapSnapLen  = 65535
	pcapTTL      = 64
	pcapHeaderSz = 24
)

// WritePcap writes packets to w as a pcap capture, each segment inside an
// IPv4 header, or an IPv6 header (RFC 8200 §3) for an IPv6 tuple, with
// link type raw IP (whose version field tells the two apart), so that
// Wireshark and tcpdump show the exchange.
func WritePcap(w io.Writer, packets []Packet) error {
	var h [pcapHeaderSz]byte
	binary.LittleEndian.PutUint32(h[0:], pcapMagic)
	binary.LittleEndian.PutUint16(h[4:], 2) // version 2.4
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], pcapSnapLen)
	binary.LittleEndian.PutUint32(h[20:], pcapLinkRaw)
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	for i, p := range packets {
		hl := ipHeaderLen(p.Tuple)
		n := hl + len(p.Data)
		b := make([]byte, 16+n)
		us := p.Time.UnixMicro()
		binary.LittleEndian.PutUint32(b[0:], uint32(us/1e6))
		binary.LittleEndian.PutUint32(b[4:], uint32(us%1e6))
		binary.LittleEndian.PutUint32(b[8:], uint32(n))
		binary.LittleEndian.PutUint32(b[12:], uint32(n))
		src, dst := p.Tuple.Remote.Addr(), p.Tuple.Local.Addr()
		if p.Dir == Out {
			src, dst = dst, src
		}
		if hl == ipv6.HeaderLen {
			ipv6.PutHeader(b[16:], &ipv6.Fields{
				PayloadLength: uint16(len(p.Data)), NextHeader: ipv6.NextHeaderTCP,
				HopLimit: pcapTTL, Source: src, Destination: dst,
			})
		} else {
			ipv4.PutHeader(b[16:], &ipv4.Fields{
				TotalLength: uint16(n), ID: uint16(i), DontFragment: true,
				TTL: pcapTTL, Protocol: tcp.ProtocolNumber, Source: src, Destination: dst,
			})
		}
		copy(b[16+hl:], p.Data)
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// WritePcapFile writes the stack's exchange so far (Log) to a pcap file.
func (s *Stack) WritePcapFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WritePcap(f, s.log); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
