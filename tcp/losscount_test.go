package tcp

import "testing"

// Timeouts through seeded random loss from 1% to 10% (with 5% reordering),
// SACK on, 4 MiB each way per seed, virtual time. RACK-TLP should repair
// almost everything without the retransmission timer: the test asserts
// counts of timeouts, never times.
func TestTransferLossRatesTimeouts(t *testing.T) {
	for _, tc := range []struct {
		loss float64
		max  uint64 // timeouts allowed over the seeds
	}{
		// Measured: 0, 0, 4 and 29 timeouts.
		{0.01, 0},
		{0.02, 2},
		{0.05, 10},
		{0.10, 45},
	} {
		var timeouts, tlps uint64
		var drops int
		for seed := uint64(1); seed <= 5; seed++ {
			cfg := DefaultConfig()
			st := new(Stats)
			cfg.Stats = st
			p := newPair(t, cfg, seed)
			p.loss, p.reorder = tc.loss, 0.05
			transfer(t, p, 1<<20)
			drops += p.drops
			timeouts += st.Timeouts.Load()
			tlps += st.TLPProbes.Load()
		}
		t.Logf("%2.0f%% loss: %d drops, %d timeouts, %d tail loss probes", 100*tc.loss, drops, timeouts, tlps)
		if timeouts > tc.max {
			t.Errorf("%2.0f%% loss: %d timeouts over 5 seeds, want at most %d", 100*tc.loss, timeouts, tc.max)
		}
	}
}
