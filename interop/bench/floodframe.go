package bench

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"

	"github.com/ustack/ustack/internal/checksum"
)

// FloodPrefix is the /16 the spoofed SYNs of the flood benchmark come
// from: part of 198.18.0.0/15, which RFC 2544 (appendix C.2.2, and
// RFC 6890 §2.2.2) sets aside for benchmarking network devices. No
// namespace of the benchmark has a route for it (RunFlood checks), so every
// SYN-ACK answering the flood dies in the server, as the SYN-ACKs of the
// attack RFC 4987 §2 describes go to addresses that never answer.
var FloodPrefix = netip.MustParsePrefix("198.18.0.0/16")

// Sizes of the flood's frames: Ethernet, a 20-byte IPv4 header, a TCP
// header with 20 bytes of options (MSS, SACK permitted, timestamps, window
// scale: what a Linux client's SYN carries).
const (
	ethLen       = 14
	ipLen        = 20
	tcpLen       = 40
	synFrameLen  = ethLen + ipLen + tcpLen
	ethTypeIPv4  = 0x0800
	protoTCP     = 6
	floodTTL     = 64
	floodMSS     = 1460
	floodWScale  = 7
	tcpFlagSYN   = 0x02
	floodWindow  = 64240
	minFloodPort = 1024
)

// synBuilder writes spoofed SYN frames to one server: Ethernet from src to
// dst, IPv4 from a random address of prefix to dstIP, TCP from a random
// port to dstPort with a random ISN and timestamp.
type synBuilder struct {
	dstMAC, srcMAC net.HardwareAddr
	dstIP          netip.Addr
	dstPort        uint16
	prefix         netip.Prefix
	rng            *rand.Rand
	// hostMask selects the host bits of an address in prefix.
	hostMask uint32
	netBits  uint32
}

// newSYNBuilder returns a builder for SYNs to dstIP:dstPort at dstMAC,
// sent from srcMAC, with sources drawn from prefix (an IPv4 prefix of at
// most /30) by a generator seeded with seed.
func newSYNBuilder(dstMAC, srcMAC net.HardwareAddr, dstIP netip.Addr, dstPort uint16, prefix netip.Prefix, seed uint64) *synBuilder {
	prefix = prefix.Masked()
	p4 := prefix.Addr().As4()
	mask := uint32(1)<<(32-prefix.Bits()) - 1
	return &synBuilder{
		dstMAC: dstMAC, srcMAC: srcMAC, dstIP: dstIP, dstPort: dstPort, prefix: prefix,
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		hostMask: mask,
		netBits:  binary.BigEndian.Uint32(p4[:]) &^ mask,
	}
}

// source returns a random address of the prefix that is neither its
// network address nor its broadcast address.
func (b *synBuilder) source() [4]byte {
	var a [4]byte
	for {
		h := b.rng.Uint32() & b.hostMask
		if h != 0 && h != b.hostMask {
			binary.BigEndian.PutUint32(a[:], b.netBits|h)
			return a
		}
	}
}

// fill writes one SYN frame into f, which must hold synFrameLen bytes,
// and returns its length.
func (b *synBuilder) fill(f []byte) int {
	f = f[:synFrameLen]
	// Ethernet II.
	copy(f[0:6], b.dstMAC)
	copy(f[6:12], b.srcMAC)
	binary.BigEndian.PutUint16(f[12:14], ethTypeIPv4)

	// IPv4 (RFC 791 §3.1): version 4, IHL 5, DF, TTL 64, TCP.
	ip := f[ethLen : ethLen+ipLen]
	src := b.source()
	dst := b.dstIP.As4()
	ip[0] = 0x45
	ip[1] = 0
	binary.BigEndian.PutUint16(ip[2:4], ipLen+tcpLen)
	binary.BigEndian.PutUint16(ip[4:6], uint16(b.rng.Uint32()))
	binary.BigEndian.PutUint16(ip[6:8], 0x4000) // DF, offset 0
	ip[8] = floodTTL
	ip[9] = protoTCP
	ip[10], ip[11] = 0, 0
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	// "The checksum field is the 16 bit one's complement of the one's
	// complement sum of all 16 bit words in the header" (RFC 791 §3.1).
	binary.BigEndian.PutUint16(ip[10:12], checksum.Checksum(ip, 0))

	// TCP (RFC 9293 §3.1): random source port and ISN, SYN, data offset
	// 10 words.
	t := f[ethLen+ipLen:]
	binary.BigEndian.PutUint16(t[0:2], uint16(minFloodPort+b.rng.IntN(65536-minFloodPort)))
	binary.BigEndian.PutUint16(t[2:4], b.dstPort)
	binary.BigEndian.PutUint32(t[4:8], b.rng.Uint32())
	binary.BigEndian.PutUint32(t[8:12], 0)
	t[12] = (tcpLen / 4) << 4
	t[13] = tcpFlagSYN
	binary.BigEndian.PutUint16(t[14:16], floodWindow)
	t[16], t[17] = 0, 0 // checksum, below
	t[18], t[19] = 0, 0 // urgent pointer
	// Options, in Linux's order: MSS (RFC 9293 §3.2), SACK permitted
	// (RFC 2018 §2), timestamps (RFC 7323 §3.2), NOP, window scale
	// (RFC 7323 §2.2).
	o := t[20:40]
	o[0], o[1] = 2, 4
	binary.BigEndian.PutUint16(o[2:4], floodMSS)
	o[4], o[5] = 4, 2
	o[6], o[7] = 8, 10
	binary.BigEndian.PutUint32(o[8:12], b.rng.Uint32())
	binary.BigEndian.PutUint32(o[12:16], 0)
	o[16] = 1
	o[17], o[18], o[19] = 3, 3, floodWScale
	// The checksum covers the pseudo-header, the header and the options
	// (RFC 9293 §3.1, "Checksum").
	ph := checksum.PseudoHeader(netip.AddrFrom4(src), b.dstIP, protoTCP, tcpLen)
	binary.BigEndian.PutUint16(t[16:18], checksum.Checksum(t, ph))
	return synFrameLen
}
