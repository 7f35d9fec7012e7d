package link_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
)

// TestPipeReadFrames reads the frames queued on a Pipe in batches: back to
// back, with their metadata, never more than lens holds or buf fits.
func TestPipeReadFrames(t *testing.T) {
	a, b := link.NewPipe(link.PipeOptions{Offloads: link.Offloads{TxChecksum: true, RxChecksum: true, TSO4: true, GRO: true}})
	defer a.Close()
	super, o := superFrame(3000, 1000)
	frames := [][]byte{bytes.Repeat([]byte{1}, 60), super, bytes.Repeat([]byte{3}, 1514), bytes.Repeat([]byte{4}, 100)}
	for i, f := range frames {
		var err error
		if i == 1 {
			err = a.WriteFrameOffload(f, &o)
		} else {
			err = a.WriteFrame(f)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if b.MaxFrameLen() != 65535+link.EthernetHeaderLen+link.VLANTagLen { // room for a tagged frame
		t.Fatalf("MaxFrameLen %d", b.MaxFrameLen())
	}
	buf := make([]byte, 4000)
	lens := make([]int, 3)
	ofl := make([]ip.Offload, 3)
	n, err := b.ReadFrames(buf, lens, ofl)
	if err != nil || n != 2 {
		// The third (1514 bytes) does not fit in what is left of buf.
		t.Fatalf("ReadFrames = %d, %v; want 2", n, err)
	}
	if !bytes.Equal(buf[:60], frames[0]) || !bytes.Equal(buf[60:60+lens[1]], super) || ofl[1] != o || ofl[0] != (ip.Offload{}) {
		t.Fatalf("batch: lens %v, metadata %+v", lens[:n], ofl[:n])
	}
	n, err = b.ReadFrames(buf, lens, ofl)
	if err != nil || n != 2 || lens[0] != 1514 || lens[1] != 100 || !bytes.Equal(buf[1514:1614], frames[3]) {
		t.Fatalf("second batch: %d, %v, lens %v", n, err, lens[:n])
	}
	a.WriteFrame(frames[2])
	if n, err := b.ReadFrames(buf[:100], lens, ofl); n != 0 || !errors.Is(err, link.ErrTruncated) {
		t.Fatalf("short buffer: %d, %v", n, err)
	}
	a.Close()
	if n, err := b.ReadFrames(buf, lens, ofl); n != 1 || err != nil {
		t.Fatalf("the frame queued before Close: %d, %v", n, err)
	}
	if _, err := b.ReadFrames(buf, lens, ofl); err == nil {
		t.Fatal("ReadFrames after Close succeeded")
	}
}
