package tcp

import (
	"math/rand/v2"
	"testing"
	"time"
)

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

// FuzzHandshake opens a connection through a Listener over a lossy,
// reordering, duplicating wire, with a half-open entry or a SYN cookie
// (cookies mode 0: when full, never happening here; 1 never; 2 always).
// Invariants hold throughout; the handshake either completes on both
// sides with matching sequence numbers and options or ends with an error.
func FuzzHandshake(f *testing.F) {
	f.Add(uint64(1), uint8(30), uint8(20), uint8(10), true)
	f.Add(uint64(7), uint8(55), uint8(50), uint8(25), false)
	f.Add(uint64(2<<8|3), uint8(20), uint8(20), uint8(20), true)
	f.Add(uint64(5<<8|2), uint8(40), uint8(10), uint8(20), false)
	f.Fuzz(func(t *testing.T, seed uint64, loss, reorder, dup uint8, options bool) {
		cfg := DefaultConfig()
		if !options {
			cfg = testConfig()
		}
		cfg.SynRetries = 12
		cfg.SynAckRetries = 12
		cfg.SYNCookies = SYNCookieMode((seed >> 8) % 3)
		cfg.SYNCookieHash = NewISNGenerator([32]byte{byte(seed)}).CookieHash
		p := &pair{now: t0, rng: rand.New(rand.NewPCG(seed, 2)), latency: time.Millisecond}
		p.oa = pairOut{p: p, toB: true}
		p.ob = pairOut{p: p, toB: false}
		cfgB := cfg
		p.l = NewListener(&cfgB, tuple.Remote, 4)
		p.a = Dial(&cfg, tuple, Value(seed), 1460, p.now, p.aOut())
		p.loss = float64(loss%70) / 100
		p.reorder = float64(reorder%70) / 100
		p.dup = float64(dup%40) / 100
		for i := 0; i < 100000; i++ {
			if p.a.Established() && p.b != nil && p.b.Established() || p.a.Done() {
				break
			}
			if !p.deliverOne(t) && !p.advance() {
				break
			}
			for _, c := range []*Conn{p.a, p.b} {
				if c != nil {
					if err := checkInvariants(c); err != nil {
						t.Fatalf("%v: %v", c.State(), err)
					}
				}
			}
		}
		if syn, _ := p.l.Pending(); cfg.SYNCookies == SYNCookiesAlways && syn != 0 {
			t.Fatalf("%d half-open entries with cookies always", syn)
		}
		if p.a.Established() && p.b != nil && p.b.Established() {
			if p.a.irs != p.b.iss || p.b.irs != p.a.iss {
				t.Fatalf("sequence numbers disagree: a irs %d iss %d, b irs %d iss %d", p.a.irs, p.a.iss, p.b.irs, p.b.iss)
			}
			// A cookie connection whose ACK carried no timestamp loses
			// window scale and SACK (and says so by having no
			// timestamps); otherwise both sides agree.
			lost := cfg.SYNCookies == SYNCookiesAlways && p.a.tsOK && !p.b.tsOK
			if !lost && (p.a.tsOK != p.b.tsOK || p.a.wsOK != p.b.wsOK || p.a.sackOK != p.b.sackOK) {
				t.Fatal("options disagree")
			}
			return
		}
		if p.a.Done() && p.a.Err() == nil {
			t.Fatal("dial ended without an error")
		}
	})
}
