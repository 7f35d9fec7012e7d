package stack

import (
	"net/netip"
	"testing"

	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
	"github.com/ustack/ustack/udp"
)

// forwardSeeds are frames from addrB (addr6B) to addresses of no stack,
// for a forwarding stack at addrA (addr6A), over IPv4 and IPv6: a SYN
// with options, its final ACK with data, a RST, a UDP datagram and the
// first fragment of another.
func forwardSeeds(macA, macB link.MAC) [][]byte {
	var out [][]byte
	for _, fam := range fwdFamilies {
		out = append(out, forwardSeedsOf(fam, macA, macB)...)
	}
	return out
}

// forwardSeedsOf is forwardSeeds for the family fam (whose b is the
// client here, and whose a the forwarder).
func forwardSeedsOf(fam fwdFamily, macA, macB link.MAC) [][]byte {
	var out [][]byte
	farTCP, farUDP, farUDP2 := fam.farTCP, fam.farUDP, fam.farUDP2
	src := fam.b.Addr()
	ip := func(dst netip.Addr, proto uint8, payload []byte, mf bool) []byte {
		if fam.v6() {
			if mf { // a first fragment: the Fragment header before payload
				payload = append([]byte{proto, 0, 0, 1, 0, 0, 0, 9}, payload...)
				proto = ipv6.NextHeaderFragment
			}
			return eth6(macA, macB, ipv6.Fields{NextHeader: proto, HopLimit: 64, Source: src, Destination: dst}, payload)
		}
		return ipFrame(macA, macB, ipv4.Fields{ID: 9, Protocol: proto, MoreFragments: mf, Source: src, Destination: dst}, payload)
	}
	seg := func(h tcp.Header, payload string) []byte {
		b := make([]byte, h.Len()+len(payload))
		h.Encode(b)
		copy(b[h.Len():], payload)
		tcp.SetChecksum(b, src, farTCP.Addr())
		return b
	}
	out = append(out, ip(farTCP.Addr(), ipv4.ProtocolTCP, seg(tcp.Header{SrcPort: 40000, DstPort: farTCP.Port(), Seq: 1000, Flags: tcp.FlagSYN, Window: 65535,
		Options: &tcp.Options{MSS: 1460, WindowScale: 7, SACKPermitted: true, Timestamp: true, TSVal: 1}}, ""), false))
	out = append(out, ip(farTCP.Addr(), ipv4.ProtocolTCP, seg(tcp.Header{SrcPort: 40000, DstPort: farTCP.Port(), Seq: 1001, Ack: 1, Flags: tcp.FlagACK | tcp.FlagPSH, Window: 65535}, "abc"), false))
	out = append(out, ip(farTCP.Addr(), ipv4.ProtocolTCP, seg(tcp.Header{SrcPort: 40000, DstPort: farTCP.Port(), Seq: 1001, Flags: tcp.FlagRST}, ""), false))
	d := make([]byte, udp.HeaderLen+40)
	udp.PutHeader(d, 40002, farUDP.Port(), 40)
	udp.SetChecksum(d, src, farUDP.Addr())
	out = append(out, ip(farUDP.Addr(), ipv4.ProtocolUDP, d, false))
	out = append(out, ip(farUDP2.Addr(), ipv4.ProtocolUDP, d[:24], true))
	return out
}

// FuzzForwarder feeds arbitrary frames to a forwarding stack whose TCP
// handler refuses in every way or accepts, by the client's port, and
// whose UDP handler reads its flow: whatever the bytes, the stack must
// count and drop or answer, never panic, and the forwarder must keep
// within its bounds.
func FuzzForwarder(f *testing.F) {
	s, n := fuzzNIC(f, Options{DADTransmits: -1}, addrA, forwardSeeds)
	id := n.id
	if err := s.AddAddress(id, addr6A); err != nil {
		f.Fatal(err)
	}
	const maxInFlight, maxFlows = 8, 8
	err := s.SetForwarder(id, &Forwarder{
		MaxInFlight: maxInFlight,
		MaxUDPFlows: maxFlows,
		TCP: func(r *TCPForwardRequest) {
			if how := Refusal(r.RemoteAddr().Port() % 6); how <= RefuseAdminProhibited {
				r.Refuse(how)
				return
			}
			if c, err := r.Accept(); err == nil {
				c.Close()
			}
		},
		UDP: func(fl *UDPFlow) {
			buf := make([]byte, 100)
			for {
				if _, err := fl.Read(buf); err != nil {
					return
				}
			}
		},
	})
	if err != nil {
		f.Fatal(err)
	}
	fw := n.fwd.Load()
	f.Fuzz(func(t *testing.T, frame []byte) {
		n.deliver(frame)
		fw.mu.RLock()
		inFlight, flows := len(fw.pending)+len(fw.handshakes), len(fw.flows)
		fw.mu.RUnlock()
		if inFlight > maxInFlight || flows > maxFlows {
			t.Fatalf("%d requests in flight, %d flows; bounds %d and %d", inFlight, flows, maxInFlight, maxFlows)
		}
	})
}
