package arp

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/ustack/ustack/link"
)

var (
	macA = link.MAC{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a}
	macB = link.MAC{0x02, 0x00, 0x00, 0x00, 0x00, 0x0b}
	ipA  = netip.MustParseAddr("192.168.1.10")
	ipB  = netip.MustParseAddr("192.168.1.1")
)

// goldenRequest is "who has 192.168.1.1? tell 192.168.1.10" from
// 02:00:00:00:00:0a, as tcpdump -x shows it.
var goldenRequest = []byte{
	0x00, 0x01, // ar$hrd: Ethernet
	0x08, 0x00, // ar$pro: IPv4
	0x06,       // ar$hln
	0x04,       // ar$pln
	0x00, 0x01, // ar$op: request
	0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // ar$sha
	192, 168, 1, 10, // ar$spa
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ar$tha
	192, 168, 1, 1, // ar$tpa
}

// goldenReply is the answer "192.168.1.1 is at 02:00:00:00:00:0b".
var goldenReply = []byte{
	0x00, 0x01, 0x08, 0x00, 0x06, 0x04,
	0x00, 0x02, // ar$op: reply
	0x02, 0x00, 0x00, 0x00, 0x00, 0x0b, // ar$sha
	192, 168, 1, 1, // ar$spa
	0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // ar$tha
	192, 168, 1, 10, // ar$tpa
}

func TestParsePacketGolden(t *testing.T) {
	tests := []struct {
		name     string
		b        []byte
		op       uint16
		sha, tha link.MAC
		spa, tpa netip.Addr
	}{
		{name: "request", b: goldenRequest, op: OpRequest, sha: macA, spa: ipA, tha: link.MAC{}, tpa: ipB},
		{name: "reply", b: goldenReply, op: OpReply, sha: macB, spa: ipB, tha: macA, tpa: ipA},
		{
			name: "request with Ethernet padding",
			b:    append(append([]byte{}, goldenRequest...), make([]byte, 18)...),
			op:   OpRequest, sha: macA, spa: ipA, tha: link.MAC{}, tpa: ipB,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePacket(tt.b)
			if err != nil {
				t.Fatalf("ParsePacket: %v", err)
			}
			if len(p) != PacketLen || cap(p) != PacketLen {
				t.Errorf("len, cap = %d, %d, want %d, %d", len(p), cap(p), PacketLen, PacketLen)
			}
			if got := p.HardwareType(); got != 1 {
				t.Errorf("HardwareType() = %d, want 1", got)
			}
			if got := p.ProtocolType(); got != 0x0800 {
				t.Errorf("ProtocolType() = %#x, want 0x0800", got)
			}
			if got := p.Op(); got != tt.op {
				t.Errorf("Op() = %d, want %d", got, tt.op)
			}
			if got := p.SenderHardwareAddr(); got != tt.sha {
				t.Errorf("SenderHardwareAddr() = %v, want %v", got, tt.sha)
			}
			if got := p.SenderProtocolAddr(); got != tt.spa {
				t.Errorf("SenderProtocolAddr() = %v, want %v", got, tt.spa)
			}
			if got := p.TargetHardwareAddr(); got != tt.tha {
				t.Errorf("TargetHardwareAddr() = %v, want %v", got, tt.tha)
			}
			if got := p.TargetProtocolAddr(); got != tt.tpa {
				t.Errorf("TargetProtocolAddr() = %v, want %v", got, tt.tpa)
			}
		})
	}
}

func TestPutPacketGolden(t *testing.T) {
	b := bytes.Repeat([]byte{0xee}, PacketLen+4)
	PutPacket(b, OpRequest, macA, ipA, link.MAC{}, ipB)
	if !bytes.Equal(b[:PacketLen], goldenRequest) {
		t.Errorf("request:\n got % x\nwant % x", b[:PacketLen], goldenRequest)
	}
	if !bytes.Equal(b[PacketLen:], []byte{0xee, 0xee, 0xee, 0xee}) {
		t.Errorf("PutPacket wrote past PacketLen: % x", b[PacketLen:])
	}

	req, err := ParsePacket(goldenRequest)
	if err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, PacketLen)
	PutReply(reply, req, macB)
	if !bytes.Equal(reply, goldenReply) {
		t.Errorf("reply:\n got % x\nwant % x", reply, goldenReply)
	}

	// In place, over the request itself.
	inPlace := append([]byte{}, goldenRequest...)
	PutReply(inPlace, Packet(inPlace), macB)
	if !bytes.Equal(inPlace, goldenReply) {
		t.Errorf("in-place reply:\n got % x\nwant % x", inPlace, goldenReply)
	}

	// An IPv4-mapped IPv6 address writes its IPv4 form.
	PutPacket(b, OpReply, macB, netip.AddrFrom16(ipB.As16()), macA, ipA)
	if !bytes.Equal(b[:PacketLen], goldenReply) {
		t.Errorf("mapped reply:\n got % x\nwant % x", b[:PacketLen], goldenReply)
	}
}

func TestPutGratuitous(t *testing.T) {
	want := []byte{
		0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
		0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 192, 168, 1, 10,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 168, 1, 10,
	}
	b := make([]byte, PacketLen)
	PutGratuitous(b, macA, ipA)
	if !bytes.Equal(b, want) {
		t.Errorf("got % x\nwant % x", b, want)
	}
}

func TestPutPacketZeroAddr(t *testing.T) {
	// An ARP Probe (RFC 5227 §2.1.1) has an all-zero sender IP address.
	b := bytes.Repeat([]byte{0xee}, PacketLen)
	PutPacket(b, OpRequest, macA, netip.Addr{}, link.MAC{}, ipA)
	p, err := ParsePacket(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.SenderProtocolAddr(); got != netip.IPv4Unspecified() {
		t.Errorf("SenderProtocolAddr() = %v, want 0.0.0.0", got)
	}
}

func TestParsePacketMalformed(t *testing.T) {
	with := func(off int, v ...byte) []byte {
		b := append([]byte{}, goldenRequest...)
		copy(b[off:], v)
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{name: "nil", b: nil, want: ErrTruncated},
		{name: "empty", b: []byte{}, want: ErrTruncated},
		{name: "fixed part only", b: goldenRequest[:8], want: ErrTruncated},
		{name: "one byte short", b: goldenRequest[:PacketLen-1], want: ErrTruncated},
		{name: "hardware type 0", b: with(offHrd, 0, 0), want: ErrHardwareType},
		{name: "hardware type IEEE 802 (6)", b: with(offHrd, 0, 6), want: ErrHardwareType},
		{name: "hardware type byte-swapped", b: with(offHrd, 1, 0), want: ErrHardwareType},
		{name: "protocol type IPv6", b: with(offPro, 0x86, 0xdd), want: ErrProtocolType},
		{name: "protocol type ARP", b: with(offPro, 0x08, 0x06), want: ErrProtocolType},
		{name: "hardware length 8", b: with(offHln, 8), want: ErrAddressLength},
		{name: "hardware length 0", b: with(offHln, 0), want: ErrAddressLength},
		{name: "protocol length 16", b: with(offPln, 16), want: ErrAddressLength},
		{name: "op 0", b: with(offOp, 0, 0), want: ErrOperation},
		{name: "op RARP request (3)", b: with(offOp, 0, 3), want: ErrOperation},
		{name: "op InARP reply (9)", b: with(offOp, 0, 9), want: ErrOperation},
		{name: "op 0x0101", b: with(offOp, 1, 1), want: ErrOperation},
		{name: "truncated beats bad type", b: []byte{0xff, 0xff, 0, 0}, want: ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePacket(tt.b)
			if !errors.Is(err, tt.want) {
				t.Errorf("ParsePacket() error = %v, want %v", err, tt.want)
			}
			if p != nil {
				t.Errorf("ParsePacket() = % x, want nil view on error", p)
			}
		})
	}
}

func TestParsePacketNoAlloc(t *testing.T) {
	var mac link.MAC
	var ip netip.Addr
	n := testing.AllocsPerRun(100, func() {
		p, err := ParsePacket(goldenRequest)
		if err != nil {
			t.Fatal(err)
		}
		mac = p.SenderHardwareAddr()
		ip = p.TargetProtocolAddr()
	})
	if n != 0 {
		t.Errorf("ParsePacket and accessors allocate %v times, want 0", n)
	}
	_, _ = mac, ip
}

// FuzzParsePacket checks that ParsePacket never panics and that any packet
// it accepts is rebuilt byte for byte by PutPacket from its accessors.
func FuzzParsePacket(f *testing.F) {
	f.Add(goldenRequest)
	f.Add(goldenReply)
	f.Add(goldenRequest[:27])
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePacket(b)
		if err != nil {
			if p != nil {
				t.Fatalf("non-nil view with error %v", err)
			}
			return
		}
		if len(p) != PacketLen {
			t.Fatalf("len(view) = %d", len(p))
		}
		if op := p.Op(); op != OpRequest && op != OpReply {
			t.Fatalf("accepted op %d", op)
		}
		out := make([]byte, PacketLen)
		PutPacket(out, p.Op(), p.SenderHardwareAddr(), p.SenderProtocolAddr(),
			p.TargetHardwareAddr(), p.TargetProtocolAddr())
		if !bytes.Equal(out, p) {
			t.Fatalf("round trip:\n got % x\nwant % x", out, []byte(p))
		}
		q, err := ParsePacket(out)
		if err != nil || !bytes.Equal(q, p) {
			t.Fatalf("rebuilt packet does not parse back: %v", err)
		}
	})
}
