package stack

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
	"github.com/ustack/ustack/udp"
)

// seedFrames returns well-formed frames of every kind the stack handles,
// from the peer (addrB, macB) to the stack under test (addrA, macA).
func seedFrames(macA, macB link.MAC) [][]byte {
	var out [][]byte
	eth := func(typ uint16, payload []byte) []byte {
		f := make([]byte, link.EthernetHeaderLen+len(payload))
		link.PutEthernetHeader(f, macA, macB, typ)
		copy(f[link.EthernetHeaderLen:], payload)
		return f
	}
	a := make([]byte, arp.PacketLen)
	arp.PutPacket(a, arp.OpRequest, macB, addrB.Addr(), link.MAC{}, addrA.Addr())
	out = append(out, eth(link.EtherTypeARP, a))

	ip := func(proto uint8, payload []byte, mf bool, off uint16) []byte {
		p := make([]byte, ipv4.HeaderLen+len(payload))
		ipv4.PutHeader(p, &ipv4.Fields{TotalLength: uint16(len(p)), ID: 7, TTL: 64, Protocol: proto,
			MoreFragments: mf, FragmentOffset: off, Source: addrB.Addr(), Destination: addrA.Addr()})
		copy(p[ipv4.HeaderLen:], payload)
		return p
	}
	echo := []byte{ipv4.TypeEchoRequest, 0, 0, 0, 0, 1, 0, 1, 'h', 'i'}
	binary.BigEndian.PutUint16(echo[2:], checksum.Checksum(echo, 0))
	out = append(out, eth(link.EtherTypeIPv4, ip(ipv4.ProtocolICMP, echo, false, 0)))
	out = append(out, eth(link.EtherTypeIPv4, ip(ipv4.ProtocolICMP, make([]byte, 16), true, 0)))
	out = append(out, eth(link.EtherTypeIPv4, ip(ipv4.ProtocolICMP, make([]byte, 8), false, 16)))

	syn := make([]byte, tcp.HeaderLen+4)
	h := tcp.Header{SrcPort: 40000, DstPort: 7, Seq: 1000, Flags: tcp.FlagSYN, Window: 65535, Options: &tcp.Options{MSS: 1460, WindowScale: -1}}
	h.Encode(syn)
	tcp.SetChecksum(syn, addrB.Addr(), addrA.Addr())
	out = append(out, eth(link.EtherTypeIPv4, ip(ipv4.ProtocolTCP, syn, false, 0)))
	ack := make([]byte, tcp.HeaderLen+3)
	h = tcp.Header{SrcPort: 40000, DstPort: 7, Seq: 1001, Ack: 1, Flags: tcp.FlagACK | tcp.FlagPSH, Window: 65535}
	h.Encode(ack)
	copy(ack[tcp.HeaderLen:], "abc")
	tcp.SetChecksum(ack, addrB.Addr(), addrA.Addr())
	out = append(out, eth(link.EtherTypeIPv4, ip(ipv4.ProtocolTCP, ack, false, 0)))
	// The same SYN and ACK for the listener that always sends cookies
	// (port 8), the SYN with timestamps, window scale and SACK.
	syn8 := make([]byte, tcp.HeaderLen+20)
	h = tcp.Header{SrcPort: 40001, DstPort: 8, Seq: 1000, Flags: tcp.FlagSYN, Window: 65535,
		Options: &tcp.Options{MSS: 1460, WindowScale: 7, SACKPermitted: true, Timestamp: true, TSVal: 1}}
	h.Encode(syn8)
	tcp.SetChecksum(syn8, addrB.Addr(), addrA.Addr())
	out = append(out, eth(link.EtherTypeIPv4, ip(ipv4.ProtocolTCP, syn8, false, 0)))
	ack8 := make([]byte, tcp.HeaderLen)
	h = tcp.Header{SrcPort: 40001, DstPort: 8, Seq: 1001, Ack: 1, Flags: tcp.FlagACK, Window: 65535}
	h.Encode(ack8)
	tcp.SetChecksum(ack8, addrB.Addr(), addrA.Addr())
	out = append(out, eth(link.EtherTypeIPv4, ip(ipv4.ProtocolTCP, ack8, false, 0)))
	out = append(out, eth(link.EtherTypeIPv4, ip(253, []byte("x"), false, 0)))
	// UDP: to the socket on port 53, to a port without one (answered
	// with a port unreachable), and the first of two fragments of a
	// datagram to port 53.
	udpDatagram := func(dport uint16, payload []byte) []byte {
		d := make([]byte, udp.HeaderLen+len(payload))
		copy(d[udp.HeaderLen:], payload)
		udp.PutHeader(d, 40002, dport, len(payload))
		udp.SetChecksum(d, addrB.Addr(), addrA.Addr())
		return d
	}
	out = append(out, eth(link.EtherTypeIPv4, ip(ipv4.ProtocolUDP, udpDatagram(53, []byte("query")), false, 0)))
	out = append(out, eth(link.EtherTypeIPv4, ip(ipv4.ProtocolUDP, udpDatagram(54, nil), false, 0)))
	big := udpDatagram(53, make([]byte, 40))
	out = append(out, eth(link.EtherTypeIPv4, ip(ipv4.ProtocolUDP, big[:24], true, 0)))
	return out
}

// fuzzNIC is the harness of the frame fuzzers: a stack made with opts
// whose NIC 1, at addr, is one end of a Pipe, the other end drained so
// that the pipe never fills. The frames seeds returns for the two ends'
// MACs seed f, each with a truncated and a corrupted copy. The stack is
// closed when f ends.
func fuzzNIC(f *testing.F, opts Options, addr netip.Prefix, seeds func(macA, macB link.MAC) [][]byte) (*Stack, *nic) {
	f.Helper()
	ea, eb := link.NewPipe(link.PipeOptions{QueueLen: 4096})
	for _, fr := range seeds(ea.HardwareAddr(), eb.HardwareAddr()) {
		f.Add(fr)
		f.Add(fr[:len(fr)/2])
		c := append([]byte(nil), fr...)
		c[len(c)-1] ^= 0x55
		f.Add(c)
	}
	s := New(opts)
	f.Cleanup(func() { s.Close() })
	if _, err := s.AddNIC(ea, addr); err != nil {
		f.Fatal(err)
	}
	go func() {
		buf := make([]byte, 70000)
		for {
			if _, err := eb.ReadFrame(buf); err != nil {
				return
			}
		}
	}()
	return s, s.nicByID(1)
}

// FuzzDeliverFrame feeds arbitrary frames to a stack with two listeners
// (port 7 with half-open entries, port 8 answering every SYN with a
// cookie) and a UDP socket (port 53), as a NIC's reader would: whatever
// the bytes, the stack must count and drop or answer, never panic, the
// half-open entries stay within the backlog and the UDP queue within its
// bounds.
func FuzzDeliverFrame(f *testing.F) {
	s, n := fuzzNIC(f, Options{}, addrA, seedFrames)
	l, err := s.ListenTCP(netip.AddrPortFrom(addrA.Addr(), 7))
	if err != nil {
		f.Fatal(err)
	}
	defer l.Close()
	l8, err := s.ListenTCPBacklog(netip.AddrPortFrom(addrA.Addr(), 8), 16)
	if err != nil {
		f.Fatal(err)
	}
	defer l8.Close()
	if err := l8.SetSYNCookies(tcp.SYNCookiesAlways); err != nil {
		f.Fatal(err)
	}
	// A UDP socket whose queue stays within its bounds however many
	// datagrams arrive; nobody reads it.
	uc, err := s.ListenUDP(netip.AddrPortFrom(addrA.Addr(), 53))
	if err != nil {
		f.Fatal(err)
	}
	defer uc.Close()
	f.Fuzz(func(t *testing.T, frame []byte) {
		n.deliver(frame)
		if syn, _ := l8.Pending(); syn != 0 {
			t.Fatalf("%d half-open entries with cookies always", syn)
		}
		if syn, _ := l.Pending(); syn > DefaultBacklog {
			t.Fatalf("%d half-open entries", syn)
		}
		uc.mu.Lock()
		queued, bytes := uc.q.Len(), uc.q.Bytes()
		uc.mu.Unlock()
		if queued > udpQueueCount(DefaultUDPReadBuffer) || queued > 1 && bytes > DefaultUDPReadBuffer {
			t.Fatalf("UDP queue holds %d datagrams, %d bytes", queued, bytes)
		}
	})
}
