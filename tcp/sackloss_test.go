package tcp

import "testing"

// Under 5% random loss and 5% reordering, with the default MinRTO of
// 200 ms, SACK-based loss recovery (RFC 6675) repairs several holes per
// round trip; NewReno (RFC 6582) repairs one, and lost retransmissions or
// many holes end in timeouts. The figures are deterministic (seeded wire,
// virtual time).
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
	// Measured when RFC 6675 recovery came: 90 timeouts with SACK, 177
	// with NewReno (114 with NewReno plus lost-retransmission detection
	// alone). Most of those left are tail losses (nothing SACKed above),
	// which only a probe (RFC 8985 §7, TLP) would repair before the RTO.
	if timeouts[true]*10 > timeouts[false]*6 {
		t.Fatalf("timeouts with SACK %d, without %d: more than 60%%", timeouts[true], timeouts[false])
	}
}
