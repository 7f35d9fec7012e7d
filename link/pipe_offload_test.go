package link_test

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vnet"
	"github.com/ustack/ustack/tcp"
)

// superFrame returns an Ethernet frame holding a TCP/IPv4 super-segment
// of n payload bytes whose TCP checksum field holds the pseudo-header's
// sum only (a partial checksum, as NEEDS_CSUM leaves it), and its
// metadata for an MSS of mss.
func superFrame(n, mss int) ([]byte, ip.Offload) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	f := make([]byte, link.EthernetHeaderLen+40+n)
	link.PutEthernetHeader(f, link.MAC{2, 0, 0, 0, 0, 2}, link.MAC{2, 0, 0, 0, 0, 1}, link.EtherTypeIPv4)
	b := f[link.EthernetHeaderLen:]
	b[0], b[6], b[8], b[9] = 0x45, 0x40, 64, 6
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	copy(b[12:], src.AsSlice())
	copy(b[16:], dst.AsSlice())
	binary.BigEndian.PutUint16(b[10:], checksum.Checksum(b[:20], 0))
	th := b[20:]
	binary.BigEndian.PutUint16(th[0:], 1234)
	binary.BigEndian.PutUint16(th[2:], 80)
	binary.BigEndian.PutUint32(th[4:], 1)
	th[12], th[13] = 5<<4, 0x18
	binary.BigEndian.PutUint16(th[14:], 1000)
	for i := range th[20:] {
		th[20+i] = byte(i)
	}
	binary.BigEndian.PutUint16(th[16:], checksum.PseudoHeader(src, dst, 6, uint16(len(th))))
	return f, ip.Offload{GSOType: vnet.GSOTCPv4, GSOSize: uint16(mss), NeedsChecksum: true, ChecksumStart: 20, ChecksumOffset: 16}
}

// TestPipeOffloads: a Pipe with offloads carries a super-segment and its
// metadata to ReadFrameOffload, and cuts it into verified segments for a
// plain ReadFrame or a peer without GRO.
func TestPipeOffloads(t *testing.T) {
	full := link.Offloads{TxChecksum: true, RxChecksum: true, TSO4: true, GRO: true}
	for _, tc := range []struct {
		name     string
		ofl      link.Offloads
		offload  bool // read with ReadFrameOffload
		wantSegs int
	}{
		{"gro, metadata", full, true, 1},
		{"gro, plain read", full, false, 3},
		{"no gro", link.Offloads{TxChecksum: true, TSO4: true}, true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := link.NewPipe(link.PipeOptions{Offloads: tc.ofl})
			defer a.Close()
			f, o := superFrame(4000, 1448)
			if err := a.WriteFrameOffload(f, &o); err != nil {
				t.Fatal(err)
			}
			if got := a.Offloads(); got.MaxGSOSize != 65535 {
				t.Fatalf("Offloads() = %+v", got)
			}
			buf := make([]byte, 70000)
			total := 0
			for i := range tc.wantSegs {
				var got ip.Offload
				var n int
				var err error
				if tc.offload {
					n, err = b.ReadFrameOffload(buf, &got)
				} else {
					n, err = b.ReadFrame(buf)
				}
				if err != nil {
					t.Fatal(err)
				}
				pkt := buf[link.EthernetHeaderLen:n]
				if tc.wantSegs == 1 {
					if got != o || n != len(f) {
						t.Fatalf("read %d bytes with %+v, want %d with %+v", n, got, len(f), o)
					}
					total = 4000
					break
				}
				if got != (ip.Offload{}) {
					t.Fatalf("segment %d has metadata %+v", i, got)
				}
				src, dst := netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
				seg, err := tcp.ParseSegment(pkt[20:], src, dst)
				if err != nil {
					t.Fatalf("segment %d: %v", i, err)
				}
				total += len(seg.Payload())
			}
			if total != 4000 {
				t.Fatalf("%d payload bytes, want 4000", total)
			}
		})
	}

	a, _ := link.NewPipe(link.PipeOptions{Offloads: link.Offloads{TxChecksum: true}})
	defer a.Close()
	f, o := superFrame(4000, 1448)
	if err := a.WriteFrameOffload(f, &o); !errors.Is(err, link.ErrOffload) {
		t.Fatalf("TSO on a pipe without it: %v", err)
	}
	p, _ := link.NewPipe(link.PipeOptions{})
	defer p.Close()
	small, so := superFrame(100, 1448)
	so.GSOType = 0
	if err := p.WriteFrameOffload(small, &so); !errors.Is(err, link.ErrOffload) {
		t.Fatalf("partial checksum on a plain pipe: %v", err)
	}
}
