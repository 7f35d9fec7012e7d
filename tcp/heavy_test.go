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

// FuzzTransfer moves a little data both ways between two Conns over a
// lossy, reordering, duplicating wire chosen by the fuzzer, with small
// buffers and either option set; the bytes must arrive intact.
func FuzzTransfer(f *testing.F) {
	f.Add(uint64(1), uint8(10), uint8(10), uint8(5), uint16(20000), true)
	f.Add(uint64(2), uint8(50), uint8(0), uint8(0), uint16(3000), false)
	f.Fuzz(func(t *testing.T, seed uint64, loss, reorder, dup uint8, size uint16, options bool) {
		cfg := DefaultConfig()
		if !options {
			cfg = testConfig()
		}
		cfg.SendBufferSize, cfg.ReceiveBufferSize = 3000+int(seed%5000), 2000+int(seed%7000)
		cfg.MaxRetries = 60
		p := newPair(t, cfg, seed)
		p.loss = float64(loss%60) / 100
		p.reorder = float64(reorder%60) / 100
		p.dup = float64(dup%30) / 100
		transfer(t, p, int(size%40000))
	})
}
