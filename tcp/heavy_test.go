package tcp

import "testing"

// Heavy loss, reordering and duplication, with and without options: the
// data must still arrive intact (the connection may take long in virtual
// time, but never stalls or corrupts).
func TestTransferHeavyLoss(t *testing.T) {
	for seed := uint64(10); seed < 16; seed++ {
		cfg := DefaultConfig()
		if seed%2 == 0 {
			cfg = testConfig()
			cfg.MaxRetries = 30
		}
		cfg.SendBufferSize, cfg.ReceiveBufferSize = 32<<10, 24<<10
		p := newPair(t, cfg, seed)
		p.loss, p.reorder, p.dup = 0.2, 0.2, 0.1
		transfer(t, p, 256<<10)
	}
}
