package bench

import (
	"bytes"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/link/fault"
	"github.com/ustack/ustack/link/pcap"
)

// TestLossyNetOffloads: on an offloading bridge (LossyConfig.Offloads) the
// kernel and ustack exchange super-segments through the bridge whole, a
// 2%-lossy echo still arrives intact, and a pair with gVisor falls back
// to plain frames. The capture (-pcap) records ustack's side, super-segments
// whole: every frame that crossed the bridge from or to ustack.
func TestLossyNetOffloads(t *testing.T) {
	netns.Require(t)
	const size = 4 << 20
	var capture bytes.Buffer
	n, err := newLossyNet(StackLinux, StackUstack, 1500, fault.Impairment{Drop: 0.02}, 1, true, &capture)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			n.Close()
		}
	}()
	if _, err := transfer(WorkloadEcho, n.client.peer, n.server.peer, StackPrefix.Addr(), size, 2*time.Minute); err != nil {
		t.Fatalf("echo through the offloading bridge: %v", err)
	}
	s := n.bridge.Stats()
	frames := s.AToB.Frames + s.BToA.Frames
	// 4 MiB each way is about 5800 segments of 1448 bytes; whole
	// super-segments make far fewer frames.
	if frames == 0 || frames > 2*size/1448/2 {
		t.Errorf("%d frames crossed the bridge for 2×%d bytes: super-segments were cut", frames, size)
	}
	if s.AToB.Dropped+s.BToA.Dropped == 0 {
		t.Errorf("the bridge dropped nothing: %+v", s)
	}
	u, _ := n.ustack()
	if st := u.Stats().Link; st.SuperSegmentsOut == 0 {
		t.Errorf("ustack sent no super-segment: %+v", st)
	}
	t.Logf("bridge %d frames; ustack %+v", frames, u.Stats().TCP)
	// Each record is a 16-byte header and at most the snap length; ustack's
	// side sees what it sent (before the drops) and what reached it. The
	// bridge writes the capture until it is closed.
	closed = true
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := pcap.NewReader(&capture)
	if err != nil {
		t.Fatalf("the capture: %v", err)
	}
	records, big := 0, 0
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		records++
		if rec.OrigLen > 1514 {
			big++
		}
	}
	if uint64(records) < s.BToA.Frames || big == 0 {
		t.Errorf("capture of %d records (%d super-segments) for %d frames from ustack", records, big, s.BToA.Frames)
	}

	g, err := newLossyNet(StackLinux, StackGVisor, 1500, fault.Impairment{}, 1, true, nil)
	if err != nil {
		t.Fatalf("a gVisor pair with offloads asked for: %v", err)
	}
	g.Close()
}
