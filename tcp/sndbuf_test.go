package tcp

import (
	"testing"
	"time"
)

// On a 50 ms path at 25 MB/s the send buffer grows past its initial
// 256 KiB with the congestion window (two windows, up to
// MaxSendBufferSize), so that it no longer caps the rate at 256 KiB per
// round trip; a buffer the application set stays put.
func TestSendBufferGrowsWithWindow(t *testing.T) {
	for _, fixed := range []bool{false, true} {
		cfg := tuneConfig(true, 4<<20)
		cfg.SendBufferSize = 256 << 10
		cfg.MaxSendBufferSize = 2 << 20
		p := newLongPath(t, cfg, 25*time.Millisecond, 25e6)
		if fixed {
			if err := p.a.SetSendBufferSize(256 << 10); err != nil {
				t.Fatal(err)
			}
		}
		p.run(t, 1500*time.Millisecond)
		got := p.a.SendBufferSize()
		t.Logf("fixed %v: %d bytes received in 1.5 s, send buffer %d, cwnd %d", fixed, p.received, got, p.a.Info().CongestionWindow)
		switch {
		case fixed && got != 256<<10:
			t.Errorf("a fixed send buffer grew to %d", got)
		case !fixed && (got <= 256<<10 || got > 2<<20):
			t.Errorf("send buffer %d, want above 256 KiB and at most 2 MiB", got)
		}
	}
	if err := new(Conn).SetSendBufferSize(0); err != ErrBufferSize {
		t.Errorf("SetSendBufferSize(0): %v", err)
	}
}
