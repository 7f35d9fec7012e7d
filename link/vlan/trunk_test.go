package vlan_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vlan"
	"github.com/ustack/ustack/link/vnet"
)

var (
	peerMAC  = link.MAC{0x02, 0, 0, 0, 0, 0x01} // the pipe end the test writes on
	trunkMAC = link.MAC{0x02, 0, 0, 0, 0, 0x02}
)

// frame returns an untagged IPv4 frame to the trunk's MAC whose payload
// is n bytes of mark.
func frame(mark byte, n int) []byte {
	f := make([]byte, link.EthernetHeaderLen+n)
	link.PutEthernetHeader(f, trunkMAC, peerMAC, link.EtherTypeIPv4)
	for i := range n {
		f[link.EthernetHeaderLen+i] = mark
	}
	return f
}

// tagged returns frame(mark, n) with the tag t.
func tagged(t vlan.Tag, mark byte, n int) []byte {
	f := make([]byte, vlan.HeaderLen+n)
	vlan.PutHeader(f, trunkMAC, peerMAC, t, link.EtherTypeIPv4)
	for i := range n {
		f[vlan.HeaderLen+i] = mark
	}
	return f
}

type result struct {
	b   []byte
	tag vlan.Tag
	o   ip.Offload
	err error
}

// read reads one frame from e, failing the test after 5 s without one.
func read(t *testing.T, e *vlan.Endpoint) result {
	t.Helper()
	ch := make(chan result, 1)
	go func() {
		b := make([]byte, 70000)
		var o ip.Offload
		n, tag, err := e.ReadFrameTag(b, &o)
		ch <- result{b[:n], tag, o, err}
	}()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("no frame on VLAN %d within 5 s", e.VID())
		return result{}
	}
}

// readPeer reads one frame from the pipe end p within 5 s.
func readPeer(t *testing.T, p *link.PipeEnd) result {
	t.Helper()
	ch := make(chan result, 1)
	go func() {
		b := make([]byte, 70000)
		var o ip.Offload
		n, err := p.ReadFrameOffload(b, &o)
		ch <- result{b: b[:n], o: o, err: err}
	}()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no frame on the trunk's peer within 5 s")
		return result{}
	}
}

func newTrunk(t *testing.T, opts link.PipeOptions) (*link.PipeEnd, *vlan.Trunk) {
	t.Helper()
	opts.MACA, opts.MACB = peerMAC, trunkMAC
	a, b := link.NewPipe(opts)
	tr, err := vlan.NewTrunk(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(); a.Close() })
	return a, tr
}

func mustSub(t *testing.T, tr *vlan.Trunk, vid uint16, cfg vlan.Config) *vlan.Endpoint {
	t.Helper()
	e, err := tr.Sub(vid, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func write(t *testing.T, p *link.PipeEnd, f []byte) {
	t.Helper()
	if err := p.WriteFrame(f); err != nil {
		t.Fatal(err)
	}
}

// Frames are demultiplexed by VID, lose their tag on the way and keep its
// PCP and DEI as metadata; frames of no sub-endpoint are dropped, each
// counted where it belongs.
func TestTrunkDemux(t *testing.T) {
	leakcheck.Check(t)
	peer, tr := newTrunk(t, link.PipeOptions{})
	v10 := mustSub(t, tr, 10, vlan.Config{})
	v20 := mustSub(t, tr, 20, vlan.Config{})

	write(t, peer, tagged(vlan.Tag{VID: 20, PCP: 3, DEI: true}, 0x20, 46))
	write(t, peer, tagged(vlan.Tag{VID: 10}, 0x10, 46))
	for _, tc := range []struct {
		e    *vlan.Endpoint
		mark byte
		tag  vlan.Tag
	}{{v10, 0x10, vlan.Tag{VID: 10}}, {v20, 0x20, vlan.Tag{VID: 20, PCP: 3, DEI: true}}} {
		r := read(t, tc.e)
		if r.err != nil || !bytes.Equal(r.b, frame(tc.mark, 46)) {
			t.Errorf("VLAN %d read % x, %v; want the frame untagged", tc.e.VID(), r.b, r.err)
		}
		if r.tag != tc.tag {
			t.Errorf("VLAN %d: tag %+v, want %+v", tc.e.VID(), r.tag, tc.tag)
		}
	}

	// Frames no sub-endpoint takes, then a marker on VLAN 10: when it is
	// read, the reader has dispatched everything before it.
	write(t, peer, tagged(vlan.Tag{VID: 30}, 0, 46))           // unknown VID
	write(t, peer, frame(0, 46))                               // untagged, no native
	write(t, peer, tagged(vlan.Tag{VID: vlan.VIDNull}, 0, 46)) // priority-tagged, no native
	write(t, peer, tagged(vlan.Tag{VID: vlan.VIDReserved}, 0, 46))
	write(t, peer, tagged(vlan.Tag{VID: 10}, 0, 46)[:16]) // tag cut short
	write(t, peer, frame(0, 46)[:10])                     // not even an Ethernet header
	write(t, peer, tagged(vlan.Tag{VID: 10}, 0x11, 10))
	if r := read(t, v10); r.err != nil || !bytes.Equal(r.b, frame(0x11, 10)) {
		t.Fatalf("marker: % x %v", r.b, r.err)
	}
	st := tr.Stats()
	want := vlan.Stats{FramesIn: 9, DropUnknownVID: 1, DropUntagged: 2, DropReservedVID: 1, DropMalformed: 2}
	if st.FramesIn != want.FramesIn || st.DropUnknownVID != 1 || st.DropUntagged != 2 || st.DropReservedVID != 1 || st.DropMalformed != 2 {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	if c := st.VLANs[10]; c.FramesIn != 2 || c.BytesIn != 60+24 {
		t.Errorf("VLAN 10 counters %+v, want 2 frames of 84 bytes", c)
	}
	if c := st.VLANs[20]; c.FramesIn != 1 {
		t.Errorf("VLAN 20 counters %+v", c)
	}

	// With a native endpoint, untagged and priority-tagged frames reach it.
	nat, err := tr.Native(vlan.Config{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, peer, frame(0x01, 46))
	write(t, peer, tagged(vlan.Tag{VID: vlan.VIDNull, PCP: 6}, 0x02, 46))
	if r := read(t, nat); !bytes.Equal(r.b, frame(0x01, 46)) || r.tag != (vlan.Tag{}) {
		t.Errorf("native, untagged: % x tag %+v %v", r.b, r.tag, r.err)
	}
	if r := read(t, nat); !bytes.Equal(r.b, frame(0x02, 46)) || r.tag != (vlan.Tag{PCP: 6}) {
		t.Errorf("native, priority-tagged: % x tag %+v %v", r.b, r.tag, r.err)
	}
	if c := tr.Stats().Native; c.FramesIn != 2 || c.PriorityTagged != 1 {
		t.Errorf("native counters %+v", c)
	}
}

// Writes leave with the sub-endpoint's tag (untagged from the native
// endpoint), and the MTU is the trunk's less the tag unless kept.
func TestTrunkWrite(t *testing.T) {
	leakcheck.Check(t)
	peer, tr := newTrunk(t, link.PipeOptions{})
	v10 := mustSub(t, tr, 10, vlan.Config{PCP: 5})
	v20 := mustSub(t, tr, 20, vlan.Config{MTU: 1500})
	nat, err := tr.Native(vlan.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if v10.MTU() != 1496 || v20.MTU() != 1500 || nat.MTU() != 1500 {
		t.Errorf("MTUs %d %d %d, want 1496 (default) 1500 (kept) 1500 (native)", v10.MTU(), v20.MTU(), nat.MTU())
	}
	if v10.HardwareAddr() != trunkMAC {
		t.Errorf("HardwareAddr %v", v10.HardwareAddr())
	}
	if err := v10.WriteFrame(frame(0x10, 1496)); err != nil {
		t.Fatal(err)
	}
	if r := readPeer(t, peer); !bytes.Equal(r.b, tagged(vlan.Tag{VID: 10, PCP: 5}, 0x10, 1496)) {
		t.Errorf("VLAN 10 wrote % x...", r.b[:20])
	}
	if err := v10.WriteFrame(frame(0x10, 1497)); !errors.Is(err, link.ErrFrameTooLarge) {
		t.Errorf("1497 bytes on a 1496-byte MTU: %v", err)
	}
	if err := v20.WriteFrame(frame(0x20, 1500)); err != nil {
		t.Fatalf("1500 bytes on VLAN 20, MTU kept: %v", err)
	}
	if r := readPeer(t, peer); !bytes.Equal(r.b, tagged(vlan.Tag{VID: 20}, 0x20, 1500)) {
		t.Errorf("VLAN 20 wrote % x...", r.b[:20])
	}
	if err := nat.WriteFrame(frame(0x01, 100)); err != nil {
		t.Fatal(err)
	}
	if r := readPeer(t, peer); !bytes.Equal(r.b, frame(0x01, 100)) {
		t.Errorf("native wrote % x...", r.b[:20])
	}
	if err := v10.WriteFrame(make([]byte, 13)); err == nil {
		t.Error("a 13-byte frame was written")
	}
	if c := tr.Stats().VLANs[10]; c.FramesOut != 1 || c.BytesOut != 1514 {
		t.Errorf("VLAN 10 out counters %+v, want 1 frame of 1514 bytes", c)
	}
}

func TestTrunkBadArguments(t *testing.T) {
	leakcheck.Check(t)
	if _, err := vlan.NewTrunk(nil); err == nil {
		t.Error("NewTrunk(nil) succeeded")
	}
	_, tr := newTrunk(t, link.PipeOptions{})
	for _, vid := range []uint16{0, 4095, 4096, 65535} {
		if _, err := tr.Sub(vid, vlan.Config{}); !errors.Is(err, vlan.ErrVID) {
			t.Errorf("Sub(%d): %v, want ErrVID", vid, err)
		}
	}
	mustSub(t, tr, 7, vlan.Config{})
	if _, err := tr.Sub(7, vlan.Config{}); !errors.Is(err, vlan.ErrVID) {
		t.Errorf("second Sub(7): %v, want ErrVID", err)
	}
	for _, cfg := range []vlan.Config{{MTU: 1501}, {MTU: -1}, {QueueLen: -1}, {PCP: 8}} {
		if _, err := tr.Sub(8, cfg); err == nil {
			t.Errorf("Sub(8, %+v) succeeded", cfg)
		}
	}
	if _, err := tr.Native(vlan.Config{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Native(vlan.Config{}); err == nil {
		t.Error("a second native endpoint")
	}
}

// A reader that lags QueueLen frames behind loses the next ones, counted,
// and the other VLANs are not held up.
func TestTrunkQueueFull(t *testing.T) {
	leakcheck.Check(t)
	peer, tr := newTrunk(t, link.PipeOptions{})
	v10 := mustSub(t, tr, 10, vlan.Config{QueueLen: 2})
	v20 := mustSub(t, tr, 20, vlan.Config{})
	for i := range 5 {
		write(t, peer, tagged(vlan.Tag{VID: 10}, byte(i), 46))
	}
	write(t, peer, tagged(vlan.Tag{VID: 20}, 0x20, 46))
	if r := read(t, v20); r.err != nil {
		t.Fatal(r.err)
	}
	if c := tr.Stats().VLANs[10]; c.DropQueueFull != 3 {
		t.Errorf("VLAN 10 DropQueueFull %d, want 3", c.DropQueueFull)
	}
	for i := range 2 {
		if r := read(t, v10); !bytes.Equal(r.b, frame(byte(i), 46)) {
			t.Errorf("VLAN 10 frame %d: % x", i, r.b[:16])
		}
	}
}

// Closing every sub-endpoint closes the trunk, its device and its
// reader; a closed sub-endpoint's VLAN is an unknown VID.
func TestTrunkClose(t *testing.T) {
	leakcheck.Check(t)
	a, b := link.NewPipe(link.PipeOptions{MACA: peerMAC, MACB: trunkMAC})
	defer a.Close()
	tr, err := vlan.NewTrunk(b)
	if err != nil {
		t.Fatal(err)
	}
	v10 := mustSub(t, tr, 10, vlan.Config{})
	v20 := mustSub(t, tr, 20, vlan.Config{})
	done := make(chan error, 1)
	go func() {
		_, err := v10.ReadFrame(make([]byte, 1600))
		done <- err
	}()
	if err := v10.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadFrame after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock ReadFrame")
	}
	if err := v10.WriteFrame(frame(0, 46)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteFrame after Close: %v", err)
	}
	write(t, a, tagged(vlan.Tag{VID: 10}, 0, 46))
	write(t, a, tagged(vlan.Tag{VID: 20}, 0, 46))
	if r := read(t, v20); r.err != nil {
		t.Fatal(r.err)
	}
	if st := tr.Stats(); st.DropUnknownVID != 1 {
		t.Errorf("a frame for the closed VLAN 10: DropUnknownVID %d, want 1", st.DropUnknownVID)
	}
	// VLAN 10 can be made again while the trunk is open.
	v10 = mustSub(t, tr, 10, vlan.Config{})
	v10.Close()
	v20.Close() // the last: the trunk closes its device
	if err := a.WriteFrame(frame(0, 46)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("the trunk's device is still open: %v", err)
	}
	if _, err := tr.Sub(30, vlan.Config{}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Sub on a closed trunk: %v", err)
	}
}

// tcpFrame returns an Ethernet frame, tagged with tag unless it is nil,
// holding a TCP/IPv4 segment of n payload bytes whose checksum field holds
// the pseudo-header's sum only (a partial checksum, NEEDS_CSUM).
func tcpFrame(tag *vlan.Tag, n int) []byte {
	l3 := link.EthernetHeaderLen
	if tag != nil {
		l3 = vlan.HeaderLen
	}
	f := make([]byte, l3+20+20+n)
	if tag != nil {
		vlan.PutHeader(f, trunkMAC, peerMAC, *tag, link.EtherTypeIPv4)
	} else {
		link.PutEthernetHeader(f, trunkMAC, peerMAC, link.EtherTypeIPv4)
	}
	src, dst := netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.1.0.2")
	ipv4.PutHeader(f[l3:], &ipv4.Fields{TotalLength: uint16(40 + n), TTL: 64, Protocol: ip.ProtocolTCP, Source: src, Destination: dst})
	th := f[l3+20:]
	binary.BigEndian.PutUint16(th[0:], 1234)
	binary.BigEndian.PutUint16(th[2:], 80)
	binary.BigEndian.PutUint32(th[4:], 1000)
	th[12] = 5 << 4
	th[13] = 0x18 // PSH, ACK
	binary.BigEndian.PutUint16(th[14:], 65535)
	for i := range n {
		th[20+i] = byte(i)
	}
	binary.BigEndian.PutUint16(th[16:], checksum.PseudoHeader(src, dst, ip.ProtocolTCP, uint16(20+n)))
	return f
}

// tcpChecksumOK reports whether the TCP/IPv4 segment of the untagged
// frame f has a complete, correct checksum.
func tcpChecksumOK(f []byte) bool {
	pkt := f[link.EthernetHeaderLen:]
	src, dst := netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
	seg := pkt[20:]
	return checksum.Checksum(seg, checksum.PseudoHeader(src, dst, ip.ProtocolTCP, uint16(len(seg)))) == 0
}

// Offload metadata passes through the trunk unchanged both ways (its
// offsets count from the IP header), and a plain ReadFrame completes a
// partial checksum and cuts a super-segment.
func TestTrunkOffloads(t *testing.T) {
	leakcheck.Check(t)
	ofl := link.Offloads{TxChecksum: true, RxChecksum: true, TSO4: true, GRO: true}
	peer, tr := newTrunk(t, link.PipeOptions{Offloads: ofl})
	v10 := mustSub(t, tr, 10, vlan.Config{})
	if got := v10.Offloads(); !got.TxChecksum || !got.TSO4 || got.MaxGSOSize != 65535 {
		t.Errorf("Offloads %+v, want the trunk's", got)
	}
	partial := ip.Offload{NeedsChecksum: true, ChecksumStart: 20, ChecksumOffset: 16}

	// In: the metadata as the peer wrote it, the frame untagged.
	if err := peer.WriteFrameOffload(tcpFrame(&vlan.Tag{VID: 10}, 100), &partial); err != nil {
		t.Fatal(err)
	}
	r := read(t, v10)
	if r.o != partial || !bytes.Equal(r.b, tcpFrame(nil, 100)) {
		t.Errorf("ReadFrameOffload: metadata %+v frame ok %v", r.o, bytes.Equal(r.b, tcpFrame(nil, 100)))
	}
	// In, plain: the checksum completed.
	if err := peer.WriteFrameOffload(tcpFrame(&vlan.Tag{VID: 10}, 100), &partial); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2000)
	n, err := v10.ReadFrame(b)
	if err != nil || n != len(tcpFrame(nil, 100)) || !tcpChecksumOK(b[:n]) {
		t.Errorf("plain ReadFrame of a partial checksum: %d bytes, %v, checksum complete %v", n, err, err == nil && tcpChecksumOK(b[:n]))
	}
	// In, plain: a 3000-byte super-segment cut into three.
	gso := ip.Offload{GSOType: vnet.GSOTCPv4, GSOSize: 1000, NeedsChecksum: true, ChecksumStart: 20, ChecksumOffset: 16}
	if err := peer.WriteFrameOffload(tcpFrame(&vlan.Tag{VID: 10}, 3000), &gso); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		n, err := v10.ReadFrame(b)
		if err != nil || n != link.EthernetHeaderLen+40+1000 || !tcpChecksumOK(b[:n]) {
			t.Errorf("segment %d: %d bytes, %v", i, n, err)
		}
		if seq := binary.BigEndian.Uint32(b[link.EthernetHeaderLen+24:]); seq != 1000+uint32(1000*i) {
			t.Errorf("segment %d: seq %d", i, seq)
		}
	}

	// Out: the metadata handed on unchanged, the frame tagged.
	if err := v10.WriteFrameOffload(tcpFrame(nil, 100), &partial); err != nil {
		t.Fatal(err)
	}
	if r := readPeer(t, peer); r.o != partial || !bytes.Equal(r.b, tcpFrame(&vlan.Tag{VID: 10}, 100)) {
		t.Errorf("peer read metadata %+v, tagged frame ok %v", r.o, bytes.Equal(r.b, tcpFrame(&vlan.Tag{VID: 10}, 100)))
	}
	if err := v10.WriteFrameOffload(tcpFrame(nil, 3000), &gso); err != nil {
		t.Fatalf("super-segment out: %v", err)
	}
	if r := readPeer(t, peer); r.o != gso || len(r.b) != vlan.HeaderLen+40+3000 {
		t.Errorf("peer read metadata %+v, %d bytes", r.o, len(r.b))
	}
}

// Without offloads on the trunk, metadata on a write is an error.
func TestTrunkNoOffloads(t *testing.T) {
	leakcheck.Check(t)
	_, tr := newTrunk(t, link.PipeOptions{})
	v10 := mustSub(t, tr, 10, vlan.Config{})
	o := ip.Offload{NeedsChecksum: true, ChecksumStart: 20, ChecksumOffset: 16}
	if err := v10.WriteFrameOffload(tcpFrame(nil, 10), &o); !errors.Is(err, link.ErrOffload) {
		t.Errorf("metadata to a trunk without offloads: %v, want ErrOffload", err)
	}
}

// The steady state allocates nothing: a frame written to a sub-endpoint
// (tagged through a pooled buffer) and one read from it (through the
// reader goroutine's pooled frames).
func TestTrunkNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	peer, tr := newTrunk(t, link.PipeOptions{})
	v10 := mustSub(t, tr, 10, vlan.Config{})
	out, in := frame(0x10, 100), tagged(vlan.Tag{VID: 10}, 0x10, 100)
	buf := make([]byte, 2000)
	if a := testing.AllocsPerRun(500, func() {
		if err := v10.WriteFrame(out); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.ReadFrame(buf); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("write: %v allocations per frame", a)
	}
	if a := testing.AllocsPerRun(500, func() {
		if err := peer.WriteFrame(in); err != nil {
			t.Fatal(err)
		}
		if _, err := v10.ReadFrame(buf); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("read: %v allocations per frame", a)
	}
}

// twoQueues is a Pipe end that claims two queues.
type twoQueues struct{ *link.PipeEnd }

func (q twoQueues) NumQueues() int            { return 2 }
func (q twoQueues) Queue(i int) link.Endpoint { return q.PipeEnd }

func TestNewTrunkRefuses(t *testing.T) {
	a, b := link.NewPipe(link.PipeOptions{})
	defer a.Close()
	if _, err := vlan.NewTrunk(twoQueues{b}); err == nil || !strings.Contains(err.Error(), "2 queues") {
		t.Errorf("a trunk of two queues: %v", err)
	}
	if _, err := vlan.NewTrunk(zeroMAC{b}); err == nil || !strings.Contains(err.Error(), "hardware address") {
		t.Errorf("a trunk without a MAC: %v", err)
	}
}

// zeroMAC is a Pipe end without a hardware address, as a TUN device.
type zeroMAC struct{ *link.PipeEnd }

func (zeroMAC) HardwareAddr() link.MAC { return link.MAC{} }

// A super-segment written through a trunk with TSO but no GRO: the
// sub-endpoint takes it whole (its buffers are sized by MaxGSOSize), and
// the Pipe cuts the tagged frame into tagged segments.
func TestTrunkTSOWithoutGRO(t *testing.T) {
	leakcheck.Check(t)
	peer, tr := newTrunk(t, link.PipeOptions{Offloads: link.Offloads{TxChecksum: true, RxChecksum: true, TSO4: true}})
	v10 := mustSub(t, tr, 10, vlan.Config{})
	gso := ip.Offload{GSOType: vnet.GSOTCPv4, GSOSize: 1000, NeedsChecksum: true, ChecksumStart: 20, ChecksumOffset: 16}
	if err := v10.WriteFrameOffload(tcpFrame(nil, 3000), &gso); err != nil {
		t.Fatalf("super-segment: %v", err)
	}
	for i := range 3 {
		r := readPeer(t, peer)
		if len(r.b) != vlan.HeaderLen+40+1000 {
			t.Fatalf("segment %d: %d bytes", i, len(r.b))
		}
		fr, err := vlan.ParseFrame(r.b)
		if err != nil || fr.Tag().VID != 10 {
			t.Fatalf("segment %d not tagged for VLAN 10: %v", i, err)
		}
		untagged := append(append([]byte(nil), r.b[:12]...), r.b[16:]...)
		if !tcpChecksumOK(untagged) {
			t.Errorf("segment %d: checksum", i)
		}
	}
}
