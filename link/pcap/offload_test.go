package pcap

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vnet"
)

// TestOffloadPassThrough: a capture of an OffloadEndpoint passes the
// offloads and the frames' metadata through, and records a super-segment
// whole; a capture of a plain endpoint refuses metadata.
func TestOffloadPassThrough(t *testing.T) {
	ofl := link.Offloads{TxChecksum: true, RxChecksum: true, TSO4: true, GRO: true, MaxGSOSize: 65535}
	a, b := link.NewPipe(link.PipeOptions{Offloads: ofl})
	defer a.Close()
	defer b.Close()
	var buf bytes.Buffer
	e, err := New(a, &buf, Options{Now: fakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Offloads(); got != ofl {
		t.Fatalf("Offloads %+v, want %+v", got, ofl)
	}
	f := testFrame(4000, 1)
	o := ip.Offload{GSOType: vnet.GSOTCPv4, GSOSize: 1000}
	// The pipe checks nothing of the frame's contents: a frame of 4000
	// bytes with GSO metadata crosses whole to a GRO peer.
	if err := e.WriteFrameOffload(f, &o); err != nil {
		t.Fatal(err)
	}
	rb := make([]byte, 70000)
	var ro ip.Offload
	n, err := b.ReadFrameOffload(rb, &ro)
	if err != nil || n != len(f) || ro.GSOType != vnet.GSOTCPv4 {
		t.Fatalf("peer read %d bytes, %+v, %v", n, ro, err)
	}
	if err := b.WriteFrameOffload(f, &o); err != nil {
		t.Fatal(err)
	}
	ro = ip.Offload{}
	if n, err := e.ReadFrameOffload(rb, &ro); err != nil || n != len(f) || ro.GSOSize != 1000 {
		t.Fatalf("ReadFrameOffload: %d bytes, %+v, %v", n, ro, err)
	}
	_, recs := parseCapture(t, buf.Bytes())
	if len(recs) != 2 || len(recs[0].captured) != len(f) || len(recs[1].captured) != len(f) {
		t.Fatalf("capture holds %d records, want 2 of %d bytes", len(recs), len(f))
	}

	p1, p2 := link.NewPipe(link.PipeOptions{})
	defer p1.Close()
	defer p2.Close()
	pe, _ := New(rawEndpoint{p1}, &bytes.Buffer{}, Options{})
	if pe.Offloads() != (link.Offloads{}) {
		t.Error("a plain endpoint's capture claims offloads")
	}
	if err := pe.WriteFrameOffload(f[:100], &o); !errors.Is(err, link.ErrOffload) {
		t.Errorf("metadata to a plain endpoint: %v", err)
	}
}
