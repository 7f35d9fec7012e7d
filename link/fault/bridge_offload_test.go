package fault

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vnet"
)

// offloadPipes are the offloads of the pipes in the offload bridge tests:
// a virtio device's.
var offloadPipes = link.Offloads{TxChecksum: true, RxChecksum: true, TSO4: true, GRO: true, MaxGSOSize: 65535}

// superSegment returns an Ethernet frame holding a TCP/IPv4 super-segment
// of n payload bytes with a partial checksum (NEEDS_CSUM), and its
// metadata for an MSS of mss.
func superSegment(n, mss int) ([]byte, ip.Offload) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	f := make([]byte, link.EthernetHeaderLen+40+n)
	link.PutEthernetHeader(f, link.MAC{2, 0, 0, 0, 0, 2}, link.MAC{2, 0, 0, 0, 0, 1}, link.EtherTypeIPv4)
	b := f[link.EthernetHeaderLen:]
	b[0], b[6], b[8], b[9] = 0x45, 0x40, 64, 6 // RFC 791: IHL 5, DF, TTL 64, TCP
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	copy(b[12:], src.AsSlice())
	copy(b[16:], dst.AsSlice())
	binary.BigEndian.PutUint16(b[10:], checksum.Checksum(b[:20], 0))
	th := b[20:]
	binary.BigEndian.PutUint16(th[0:], 1234)
	binary.BigEndian.PutUint16(th[2:], 80)
	binary.BigEndian.PutUint32(th[4:], 1)
	th[12], th[13] = 5<<4, 0x18 // data offset 5, ACK|PSH
	binary.BigEndian.PutUint16(th[14:], 1000)
	for i := range th[20:] {
		th[20+i] = byte(i * 7)
	}
	binary.BigEndian.PutUint16(th[16:], checksum.PseudoHeader(src, dst, 6, uint16(len(th))))
	return f, ip.Offload{GSOType: vnet.GSOTCPv4, GSOSize: uint16(mss), NeedsChecksum: true, ChecksumStart: 20, ChecksumOffset: 16}
}

// tcpChecksumOK reports whether the plain Ethernet frame f holds a
// TCP/IPv4 segment whose checksum verifies.
func tcpChecksumOK(f []byte) bool {
	b := f[link.EthernetHeaderLen:]
	th := b[20:binary.BigEndian.Uint16(b[2:])]
	src, dst := netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
	return checksum.Checksum(th, checksum.PseudoHeader(src, dst, 6, uint16(len(th)))) == 0
}

// offloadBridged is bridged with offload pipes and cfg.Offloads set.
func offloadBridged(t *testing.T, cfg BridgeConfig) (x, y *link.PipeEnd, br *Bridge) {
	t.Helper()
	cfg.Offloads = true
	x, xb := link.NewPipe(link.PipeOptions{QueueLen: 64, Offloads: offloadPipes})
	yb, y := link.NewPipe(link.PipeOptions{QueueLen: 64, Offloads: offloadPipes})
	br, err := NewBridge(xb, yb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		br.Close()
		x.Close()
		y.Close()
	})
	return x, y, br
}

// readOffload reads one frame from e within a second, or reports false.
func readOffload(t *testing.T, e *link.PipeEnd) ([]byte, ip.Offload, bool) {
	t.Helper()
	type res struct {
		f []byte
		o ip.Offload
	}
	ch := make(chan res, 1)
	go func() {
		buf := make([]byte, 70000)
		var o ip.Offload
		n, err := e.ReadFrameOffload(buf, &o)
		if err != nil {
			close(ch)
			return
		}
		ch <- res{buf[:n], o}
	}()
	select {
	case r, ok := <-ch:
		return r.f, r.o, ok
	case <-time.After(time.Second):
		return nil, ip.Offload{}, false
	}
}

// TestBridgeOffloadsWhole: with Offloads, a super-segment crosses the
// bridge whole with its metadata, and a drop loses all of it at once.
func TestBridgeOffloadsWhole(t *testing.T) {
	x, y, br := offloadBridged(t, BridgeConfig{Seed: 1})
	f, o := superSegment(20*1448, 1448)
	if err := x.WriteFrameOffload(f, &o); err != nil {
		t.Fatal(err)
	}
	got, gotO, ok := readOffload(t, y)
	if !ok {
		t.Fatal("nothing came through")
	}
	if !bytes.Equal(got, f) || gotO.GSOType != vnet.GSOTCPv4 || gotO.GSOSize != 1448 || !gotO.NeedsChecksum {
		t.Fatalf("got %d bytes with %+v, want the %d-byte super-segment with %+v", len(got), gotO, len(f), o)
	}
	if s := br.Stats().AToB; s.Frames != 1 || s.Errors != 0 {
		t.Errorf("stats %+v, want one frame", s)
	}

	x2, y2, br2 := offloadBridged(t, BridgeConfig{Seed: 1, AToB: Impairment{Drop: 1}})
	if err := x2.WriteFrameOffload(f, &o); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := readOffload(t, y2); ok {
		t.Fatal("a dropped super-segment came through")
	}
	if s := br2.Stats().AToB; s.Frames != 1 || s.Dropped != 1 {
		t.Errorf("stats %+v, want one frame dropped once", s)
	}
}

// TestBridgeOffloadsCorrupt: a corrupted super-segment goes on as its
// segments, plain, with exactly one failing its checksum, so that the
// flipped bit is caught as on a wire.
func TestBridgeOffloadsCorrupt(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		x, y, br := offloadBridged(t, BridgeConfig{Seed: seed, AToB: Impairment{Corrupt: 1, CorruptIP: true}})
		const segs = 8
		f, o := superSegment(segs*1000, 1000)
		if err := x.WriteFrameOffload(f, &o); err != nil {
			t.Fatal(err)
		}
		bad := 0
		for i := range segs {
			g, gotO, ok := readOffload(t, y)
			if !ok {
				t.Fatalf("seed %d: segment %d did not come", seed, i)
			}
			if gotO != (ip.Offload{}) {
				t.Fatalf("seed %d: segment %d has metadata %+v", seed, i, gotO)
			}
			if !tcpChecksumOK(g) || checksum.Checksum(g[link.EthernetHeaderLen:][:20], 0) != 0 {
				bad++
			}
		}
		if bad != 1 {
			t.Errorf("seed %d: %d segments fail their checksums, want 1", seed, bad)
		}
		if s := br.Stats().AToB; s.Corrupted != 1 {
			t.Errorf("seed %d: stats %+v", seed, s)
		}
	}
}

// TestBridgeOffloadsRefused: Offloads needs two endpoints that take
// super-segments; anything else is an error naming the endpoint.
func TestBridgeOffloadsRefused(t *testing.T) {
	a, b := link.NewPipe(link.PipeOptions{})
	defer a.Close()
	defer b.Close()
	c, d := link.NewPipe(link.PipeOptions{Offloads: offloadPipes})
	defer c.Close()
	defer d.Close()
	_, err := NewBridge(b, c, BridgeConfig{Offloads: true})
	if err == nil || !strings.Contains(err.Error(), "PipeEnd") {
		t.Fatalf("NewBridge of a plain pipe with Offloads: %v", err)
	}
}
