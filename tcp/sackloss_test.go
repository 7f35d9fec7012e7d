package tcp

import "testing"

// Under 5% random loss and 5% reordering, with the default MinRTO of
// 200 ms, RACK-TLP (RFC 8985) repairs several holes per round trip, lost
// retransmissions and tail losses included; NewReno (RFC 6582) repairs one
// hole per round trip, and lost retransmissions or many holes end in
// timeouts. The figures are deterministic (seeded wire, virtual time).
func TestTransferFivePercentLossTimeouts(t *testing.T) {
	timeouts := map[bool]uint64{}
	for _, sack := range []bool{false, true} {
		var drops int
		var virtual float64
		for seed := uint64(1); seed <= 10; seed++ {
			cfg := DefaultConfig()
			cfg.SACKPermitted = sack
			st := new(Stats)
			cfg.Stats = st
			p := newPair(t, cfg, seed)
			p.loss, p.reorder = 0.05, 0.05
			transfer(t, p, 4<<20)
			drops += p.drops
			virtual += p.now.Sub(t0).Seconds()
			timeouts[sack] += st.Timeouts.Load()
		}
		t.Logf("SACK %v: %d drops, %d timeouts, %.2fs virtual", sack, drops, timeouts[sack], virtual)
	}
	// Measured: 21 timeouts with RACK-TLP, 172 with NewReno (90 with
	// SACK when RFC 6675's DupThresh recovery alone detected losses).
	if timeouts[true]*4 > timeouts[false] {
		t.Fatalf("timeouts with SACK %d, without %d: more than 25%%", timeouts[true], timeouts[false])
	}
}
