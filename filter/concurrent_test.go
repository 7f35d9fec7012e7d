package filter

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// Hooks on several goroutines (as several NIC queues call them) while
// rules change and tables are listed: the race detector checks the
// snapshot and conntrack locking.
func TestConcurrentHooksAndRuleChanges(t *testing.T) {
	f := router(t, "-t nat -A POSTROUTING -o wan0 -j MASQUERADE", "-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				p := mk(seg{src: fmt.Sprintf("192.168.%d.%d", g, i%250+1), dst: "203.0.113.5", proto: 17, sport: uint16(1000 + i), dport: 53}, "lan0", "wan0")
				forward(f, p)
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			mustExec(t, f, fmt.Sprintf("-A FORWARD -p tcp --dport %d -j DROP", i+1))
			_ = f.List(TableFilter)
			var b strings.Builder
			_ = f.Conntrack().List(&b, t0)
			if i%10 == 0 {
				mustExec(t, f, "-D FORWARD 2")
			}
		}
	})
	wg.Wait()
	if f.Conntrack().Len() != 800 {
		t.Errorf("%d entries, want 800", f.Conntrack().Len())
	}
}

// The first packets of one flow arriving on several queues at once make
// one entry.
func TestConcurrentFirstPackets(t *testing.T) {
	for range 20 {
		f := New(Config{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				p := mk(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: 17, sport: 9, dport: 53}, "", "")
				f.Hook(Prerouting, p, t0)
				if p.ctst != StateNew {
					t.Errorf("first packet %s", stateString(p.ctst))
				}
			})
		}
		wg.Wait()
		if f.Conntrack().Len() != 1 || f.Conntrack().tuples() != 2 {
			t.Fatalf("%d entries, %d tuples", f.Conntrack().Len(), f.Conntrack().tuples())
		}
	}
}
