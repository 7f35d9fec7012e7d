package bench

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// onesSum is a plain RFC 1071 sum, 16 bits at a time, independent of the
// checksum package the builder uses.
func onesSum(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return s
}

// TestSYNFrames checks the flood's frames with gVisor's header parsers
// and a plain checksum: valid IPv4 and TCP checksums, a SYN with the
// options of a Linux client to the server, sources inside the prefix (and
// neither its network nor its broadcast address), and randomness where
// the flood needs it.
func TestSYNFrames(t *testing.T) {
	dstMAC := net.HardwareAddr{0x02, 1, 2, 3, 4, 5}
	srcMAC := net.HardwareAddr{0x02, 6, 7, 8, 9, 10}
	dst := netip.MustParseAddr("10.77.0.2")
	for _, prefix := range []netip.Prefix{FloodPrefix, netip.MustParsePrefix("198.18.7.0/30")} {
		b := newSYNBuilder(dstMAC, srcMAC, dst, 5005, prefix, 42)
		sources := map[netip.Addr]bool{}
		ports := map[uint16]bool{}
		isns := map[uint32]bool{}
		const n = 2000
		for i := range n {
			var f [synFrameLen]byte
			if got := b.fill(f[:]); got != synFrameLen {
				t.Fatalf("fill returned %d, want %d", got, synFrameLen)
			}
			if string(f[0:6]) != string(dstMAC) || string(f[6:12]) != string(srcMAC) || binary.BigEndian.Uint16(f[12:14]) != ethTypeIPv4 {
				t.Fatalf("frame %d: bad Ethernet header % x", i, f[:14])
			}
			ip := header.IPv4(f[ethLen:])
			if !ip.IsValid(len(f) - ethLen) {
				t.Fatalf("frame %d: invalid IPv4 header % x", i, f[ethLen:ethLen+ipLen])
			}
			if !ip.IsChecksumValid() || onesSum(f[ethLen:ethLen+ipLen]) != 0xffff {
				t.Fatalf("frame %d: bad IPv4 checksum", i)
			}
			if ip.Protocol() != protoTCP || ip.TTL() != floodTTL || int(ip.TotalLength()) != ipLen+tcpLen {
				t.Fatalf("frame %d: protocol %d TTL %d length %d", i, ip.Protocol(), ip.TTL(), ip.TotalLength())
			}
			src := netip.AddrFrom4(ip.SourceAddress().As4())
			if !prefix.Contains(src) || src == prefix.Masked().Addr() {
				t.Fatalf("frame %d: source %v outside %v or its network address", i, src, prefix)
			}
			if !prefix.Contains(src.Next()) {
				t.Fatalf("frame %d: source %v is the broadcast address of %v", i, src, prefix)
			}
			if netip.AddrFrom4(ip.DestinationAddress().As4()) != dst {
				t.Fatalf("frame %d: destination %v", i, ip.DestinationAddress())
			}
			tcph := header.TCP(ip.Payload())
			if !tcph.IsChecksumValid(ip.SourceAddress(), tcpip.AddrFrom4(dst.As4()), 0, 0) {
				t.Fatalf("frame %d: bad TCP checksum", i)
			}
			pseudo := make([]byte, 0, 12+tcpLen)
			pseudo = append(pseudo, f[ethLen+12:ethLen+20]...)
			pseudo = append(pseudo, 0, protoTCP, 0, tcpLen)
			pseudo = append(pseudo, ip.Payload()...)
			if onesSum(pseudo) != 0xffff {
				t.Fatalf("frame %d: TCP checksum fails the plain sum", i)
			}
			if tcph.Flags() != header.TCPFlagSyn || tcph.DestinationPort() != 5005 || tcph.AckNumber() != 0 || tcph.SourcePort() < minFloodPort {
				t.Fatalf("frame %d: flags %v dst port %d ack %d src port %d", i, tcph.Flags(), tcph.DestinationPort(), tcph.AckNumber(), tcph.SourcePort())
			}
			opts := header.ParseSynOptions(tcph.Options(), false)
			if opts.MSS != floodMSS || !opts.SACKPermitted || !opts.TS || opts.WS != floodWScale {
				t.Fatalf("frame %d: SYN options %+v", i, opts)
			}
			sources[src] = true
			ports[tcph.SourcePort()] = true
			isns[tcph.SequenceNumber()] = true
		}
		if prefix.Bits() == 16 && (len(sources) < n*9/10 || len(ports) < n*9/10 || len(isns) < n*9/10) {
			t.Errorf("%v: %d sources, %d ports, %d ISNs in %d frames: not random enough", prefix, len(sources), len(ports), len(isns), n)
		}
		if prefix.Bits() == 30 && len(sources) != 2 {
			t.Errorf("%v: sources %v, want the two host addresses", prefix, sources)
		}
	}
}

// TestSYNFramesNoAlloc checks that building frames allocates nothing, so
// that the flood writer's rate is not the garbage collector's.
func TestSYNFramesNoAlloc(t *testing.T) {
	b := newSYNBuilder(net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}, netip.MustParseAddr("10.77.0.2"), 7, FloodPrefix, 1)
	var f [synFrameLen]byte
	if a := testing.AllocsPerRun(1000, func() { b.fill(f[:]) }); a != 0 {
		t.Errorf("fill allocates %.1f times per frame", a)
	}
}

// BenchmarkSYNFrame measures the frame builder alone: the flood's rate
// cannot exceed it.
func BenchmarkSYNFrame(bm *testing.B) {
	b := newSYNBuilder(net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}, netip.MustParseAddr("10.77.0.2"), 7, FloodPrefix, 1)
	var f [synFrameLen]byte
	for bm.Loop() {
		b.fill(f[:])
	}
}
