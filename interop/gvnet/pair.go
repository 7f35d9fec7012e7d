package gvnet

import (
	"context"
	"net/netip"
	"sync"
)

// PairOptions configure NewPair. The zero value is two stacks at
// 10.9.0.1/24 and 10.9.0.2/24 on a 1500-byte MTU link.
type PairOptions struct {
	A, B   netip.Prefix // addresses of the two stacks; zero means 10.9.0.1/24 and 10.9.0.2/24
	MTU    int          // link MTU; 0 means 1500
	NoSACK bool         // turn off TCP SACK (on by default) on both stacks
}

// Pair is two gVisor stacks joined by an in-memory link: one goroutine per
// direction reads each packet a stack sends from its channel endpoint and
// injects it into the other's.
type Pair struct {
	A, B *Stack

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// NewPair builds two stacks and starts the two pump goroutines. Close stops
// them and both stacks.
func NewPair(opts PairOptions) (*Pair, error) {
	if !opts.A.IsValid() {
		opts.A = netip.MustParsePrefix("10.9.0.1/24")
	}
	if !opts.B.IsValid() {
		opts.B = netip.MustParsePrefix("10.9.0.2/24")
	}
	a, err := New(Options{Addr: opts.A, MTU: opts.MTU, NoSACK: opts.NoSACK})
	if err != nil {
		return nil, err
	}
	b, err := New(Options{Addr: opts.B, MTU: opts.MTU, NoSACK: opts.NoSACK})
	if err != nil {
		a.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pair{A: a, B: b, cancel: cancel}
	p.wg.Add(2)
	go p.pump(ctx, a, b)
	go p.pump(ctx, b, a)
	return p, nil
}

// pump moves every packet from sends to to until ctx ends or from's
// endpoint closes. The packet's storage is shared, not copied: ToBuffer
// takes a reference on its chunks.
func (p *Pair) pump(ctx context.Context, from, to *Stack) {
	defer p.wg.Done()
	for {
		pkt := from.ep.ReadContext(ctx)
		if pkt == nil {
			return
		}
		b := pkt.ToBuffer()
		pkt.DecRef()
		to.inject(b)
	}
}

// Close stops the pumps and closes both stacks. It is safe to call more
// than once.
func (p *Pair) Close() error {
	p.once.Do(func() {
		p.cancel()
		p.wg.Wait()
		p.A.Close()
		p.B.Close()
	})
	return nil
}
