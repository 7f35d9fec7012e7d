package vlan_test

import (
	"bytes"
	"testing"

	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vlan"
)

// FuzzTrunk: any frame read from the trunk is accounted for exactly once,
// delivered to one sub-endpoint (untagged, as it came but for its tag)
// or dropped under one counter, and never panics the reader.
func FuzzTrunk(f *testing.F) {
	f.Add(tagged(vlan.Tag{VID: 10}, 1, 46))
	f.Add(tagged(vlan.Tag{VID: 20, PCP: 7, DEI: true}, 2, 10))
	f.Add(tagged(vlan.Tag{VID: 0}, 3, 0))
	f.Add(tagged(vlan.Tag{VID: 4095}, 4, 0))
	f.Add(tagged(vlan.Tag{VID: 30}, 5, 0))
	f.Add(frame(6, 46))
	f.Add(tagged(vlan.Tag{VID: 10}, 0, 0)[:16])
	f.Add([]byte{1, 2, 3})
	f.Fuzz(trunkOnce)
}

// trunkOnce is FuzzTrunk's check of one frame b.
func trunkOnce(t *testing.T, b []byte) {
	{
		a, end := link.NewPipe(link.PipeOptions{MACA: peerMAC, MACB: trunkMAC, QueueLen: 4})
		defer a.Close()
		tr, err := vlan.NewTrunk(end)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		v10 := mustSub(t, tr, 10, vlan.Config{})
		v20 := mustSub(t, tr, 20, vlan.Config{})
		nat, err := tr.Native(vlan.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.WriteFrame(b); err != nil {
			return // longer than the pipe carries: never read
		}
		marker := tagged(vlan.Tag{VID: 10}, 0xee, 7)
		if err := a.WriteFrame(marker); err != nil {
			t.Fatal(err)
		}
		// Read VLAN 10 up to the marker: then the reader has dispatched b.
		var got10 [][]byte
		for {
			r := read(t, v10)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if bytes.Equal(r.b, frame(0xee, 7)) && len(got10) == 0 && !bytes.Equal(b, marker) {
				break
			}
			got10 = append(got10, r.b)
			if bytes.Equal(r.b, frame(0xee, 7)) && len(got10) == 2 {
				break // b was a marker too
			}
		}
		st := tr.Stats()
		c10, c20, cn := st.VLANs[10], st.VLANs[20], st.Native
		delivered := c10.FramesIn - 1 + c20.FramesIn + cn.FramesIn // less the marker
		drops := st.DropUnknownVID + st.DropUntagged + st.DropReservedVID + st.DropMalformed
		if st.FramesIn != 2 || delivered+drops != 1 {
			t.Fatalf("frame % x: read %d, delivered %d, dropped %d: %+v", b, st.FramesIn, delivered, drops, st)
		}
		var e *vlan.Endpoint
		switch {
		case c20.FramesIn == 1:
			e = v20
		case cn.FramesIn == 1:
			e = nat
		}
		var out []byte
		if e != nil {
			out = read(t, e).b
		} else if len(got10) == 1 {
			out = got10[0]
		}
		if out == nil {
			return
		}
		// Delivered: the frame with its tag, if any, taken out.
		want := b
		if fr, err := vlan.ParseFrame(b); err == nil {
			want = append(append([]byte(nil), b[:12]...), b[16:]...)
			_ = fr
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("delivered % x for % x", out, b)
		}
	}
}
