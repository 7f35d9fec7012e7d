package stack

import (
	"context"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/fault"
)

func TestPingWithLoss(t *testing.T) {
	leakcheck.Check(t)
	seed := uint64(7)
	a, b := pair(t, Options{}, func(ep link.Endpoint) link.Endpoint {
		seed++
		return fault.New(ep, fault.Config{Seed: seed, Tx: fault.Impairment{Drop: 0.2}})
	})
	// With 20% loss each way, ARP still resolves: requests are retried
	// once a second until one and its reply get through.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		_, err := a.Ping(pctx, addrB.Addr(), 56)
		pcancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("ARP never resolved through 20% loss")
		}
	}
	cancel()
	// Then most pings come back (each is lost with probability 0.36).
	ok := 0
	for i := 0; i < 50; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		if _, err := a.Ping(ctx, addrB.Addr(), 56); err == nil {
			ok++
		}
		cancel()
	}
	if ok < 20 {
		t.Errorf("%d of 50 pings answered with 20%% loss each way", ok)
	}
	t.Logf("%d of 50 pings answered; a sent %d ARP requests", ok, a.Stats().ARP.RequestsOut)
	_ = b
}

// faultyPair joins two stacks through fault decorators that drop,
// reorder and duplicate frames in both directions.
func faultyPair(t *testing.T, drop, reorder, dup float64) (a, b *Stack) {
	seed := uint64(41)
	return pair(t, Options{}, func(ep link.Endpoint) link.Endpoint {
		seed++
		return fault.New(ep, fault.Config{Seed: seed, Tx: fault.Impairment{Drop: drop, Reorder: reorder, Duplicate: dup}})
	})
}

func TestTCPTransferThroughFaults(t *testing.T) {
	leakcheck.Check(t)
	a, b := faultyPair(t, 0.05, 0.05, 0.05)
	start := time.Now()
	transfer(t, a, b, tcpFaultTransferSize)
	t.Logf("%d MiB each way through 5%% loss, reordering and duplication in %v", tcpFaultTransferSize>>20, time.Since(start))
	t.Logf("a: %v", a.Stats().TCP)
}
