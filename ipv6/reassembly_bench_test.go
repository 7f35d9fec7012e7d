package ipv6

import (
	"net/netip"
	"testing"
)

// BenchmarkReassemblyFlood measures the cost of one flood fragment: first
// fragments of datagrams that never complete, from 64 sources, into a
// Reassembler that holds 16.
func BenchmarkReassemblyFlood(b *testing.B) {
	r := NewReassembler(ReassemblyConfig{MaxDatagrams: 16})
	var hs []Header
	var cs []Chain
	for i := range 64 {
		fs := fragmentAll(b, testPacket(netip.AddrFrom16([16]byte{0xfd, 14: byte(i)}), 3000, 0), 1280, uint32(i))
		h, _ := ParseHeader(fs[0])
		c, _ := ParseExtensions(h)
		hs, cs = append(hs, h), append(cs, c)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.Add(hs[i%len(hs)], cs[i%len(hs)], t0)
		i++
	}
}

// BenchmarkReassemblyComplete measures reassembling a 3000-byte packet
// from its three fragments; the completed packet's buffer is the caller's,
// so each costs one allocation.
func BenchmarkReassemblyComplete(b *testing.B) {
	r := NewReassembler(ReassemblyConfig{})
	fs := fragmentAll(b, testPacket(netip.AddrFrom16([16]byte{0xfd, 15: 1}), 3000, 0), 1280, 7)
	var hs []Header
	var cs []Chain
	for _, f := range fs {
		h, _ := ParseHeader(f)
		c, _ := ParseExtensions(h)
		hs, cs = append(hs, h), append(cs, c)
	}
	b.ReportAllocs()
	for b.Loop() {
		var out []byte
		for j := range hs {
			out, _ = r.Add(hs[j], cs[j], t0)
		}
		if out == nil {
			b.Fatal("not reassembled")
		}
	}
}
