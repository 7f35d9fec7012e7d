package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/stack"
)

// MultiQueueConfig configures RunMultiQueue.
type MultiQueueConfig struct {
	MTU    int   // link MTU
	Queues int   // queues of the TAP device compared with one queue
	Conns  int   // concurrent kernel→ustack bulk connections
	Bytes  int64 // bytes each connection sends
	Count  int   // runs of each, interleaved; the medians are printed
}

// DefaultMultiQueueConfig is the case: two queues against one,
// four connections of 64 MiB each, three runs.
func DefaultMultiQueueConfig() MultiQueueConfig {
	return MultiQueueConfig{MTU: 1500, Queues: 2, Conns: 4, Bytes: 64 << 20, Count: 3}
}

// MultiQueueResult is one run over a TAP device of Queues queues.
type MultiQueueResult struct {
	Queues  int
	Bytes   int64         // all connections together
	Elapsed time.Duration // from the first Write to the last byte read
	PerConn []float64     // each connection's MB/s over Elapsed
}

// MBps is the connections' total throughput.
func (r MultiQueueResult) MBps() float64 { return float64(r.Bytes) / r.Elapsed.Seconds() / 1e6 }

// ustackTAPQueues builds the kernel as client of a ustack stack at
// StackPrefix on a TAP device of queues queues, a reader each.
func ustackTAPQueues(mtu, queues int) (*Pair, *stack.Stack, error) {
	name := fmt.Sprintf("kernel→ustack, %d queue(s)", queues)
	var tap *link.TAP
	ns, err := tapNet(func() (err error) {
		tap, err = link.OpenTAP(tapName, link.TAPOptions{MTU: mtu, Queues: queues})
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	s, err := newUstack(tap, StackPrefix)
	if err != nil {
		tap.Close()
		closeNS(ns)
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	p, err := tapPair(name, mtu, ns, ustackPeer{s, StackPrefix.Addr()}, ustackPeer{s, StackPrefix.Addr()}, s.Close, true)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, s, nil
}

// MeasureMultiQueue runs cfg.Conns concurrent bulk connections from the
// kernel to ustack over a TAP device of queues queues: the connections
// are spread evenly over the queues (each flow's queue is its hash,
// stack.FlowQueue: a connection that would crowd a queue is held open
// idle and another dialled), then all send cfg.Bytes at once, timed from
// the first Write to the server having read the last byte of every one.
func MeasureMultiQueue(cfg MultiQueueConfig, queues int) (MultiQueueResult, error) {
	p, _, err := ustackTAPQueues(cfg.MTU, queues)
	if err != nil {
		return MultiQueueResult{}, err
	}
	defer p.Close()
	l, err := p.Server.Listen(portBulk)
	if err != nil {
		return MultiQueueResult{}, err
	}
	defer l.Close()
	type done struct {
		at  time.Time
		err error
	}
	got := make(chan done, cfg.Conns)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, chunk)
				var m int64
				for m < cfg.Bytes {
					k, err := c.Read(buf)
					m += int64(k)
					if err != nil {
						if errors.Is(err, io.EOF) && m == 0 {
							return // an idle connection closed at the end
						}
						got <- done{time.Now(), fmt.Errorf("server read after %d bytes: %w", m, err)}
						return
					}
				}
				got <- done{time.Now(), nil}
			}()
		}
	}()
	perQueue := make([]int, queues)
	var cs, idle []net.Conn
	defer func() {
		for _, c := range slices.Concat(cs, idle) {
			c.Close()
		}
	}()
	for len(cs) < cfg.Conns {
		if len(idle) > 64 {
			return MultiQueueResult{}, fmt.Errorf("%d connections dialled and the queues still uneven: %v", len(cs)+len(idle), perQueue)
		}
		c, err := dial(p, portBulk)
		if err != nil {
			return MultiQueueResult{}, err
		}
		q := stack.FlowQueue(ip.Tuple{Local: netip.AddrPortFrom(StackPrefix.Addr(), portBulk), Remote: c.LocalAddr().(*net.TCPAddr).AddrPort()}, queues)
		if perQueue[q] >= (cfg.Conns+queues-1)/queues {
			idle = append(idle, c)
			continue
		}
		perQueue[q]++
		cs = append(cs, c)
	}
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i)
	}
	start := time.Now()
	werr := make(chan error, len(cs))
	for _, c := range cs {
		go func() {
			for sent := int64(0); sent < cfg.Bytes; {
				k := int(min(int64(len(buf)), cfg.Bytes-sent))
				if _, err := c.Write(buf[:k]); err != nil {
					werr <- err
					return
				}
				sent += int64(k)
			}
			werr <- nil
		}()
	}
	r := MultiQueueResult{Queues: queues, Bytes: cfg.Bytes * int64(len(cs))}
	var last time.Time
	for range cs {
		select {
		case err := <-werr:
			if err != nil {
				return MultiQueueResult{}, fmt.Errorf("client write: %w", err)
			}
		case <-time.After(5 * time.Minute):
			return MultiQueueResult{}, errors.New("a connection stalled for 5 minutes")
		}
	}
	for range cs {
		select {
		case d := <-got:
			if d.err != nil {
				return MultiQueueResult{}, d.err
			}
			if d.at.After(last) {
				last = d.at
			}
			r.PerConn = append(r.PerConn, float64(cfg.Bytes)/d.at.Sub(start).Seconds()/1e6)
		case <-time.After(5 * time.Minute):
			return MultiQueueResult{}, errors.New("the server stalled for 5 minutes")
		}
	}
	r.Elapsed = last.Sub(start)
	return r, nil
}

// RunMultiQueue measures cfg over a TAP device of one queue and of
// cfg.Queues queues, Count times interleaved, and prints the median
// totals and their ratio. Every namespace it creates is deleted before
// it returns.
func RunMultiQueue(cfg MultiQueueConfig, w io.Writer) error {
	if err := TAPAvailable(); err != nil {
		return fmt.Errorf("bench: over TAP: %w", err)
	}
	if cfg.Queues < 2 || cfg.Conns < 1 || cfg.Bytes <= 0 || cfg.Count < 1 {
		return fmt.Errorf("bench: multi-queue: want at least 2 queues, 1 connection, 1 byte and 1 run, have %+v", cfg)
	}
	defer closeLive()
	fmt.Fprintf(w, "kernel→ustack over TAP, MTU %d: %d connections of %d MiB at once, over 1 queue and over %d queues (a reader each); median of %d interleaved runs\n",
		cfg.MTU, cfg.Conns, cfg.Bytes>>20, cfg.Queues, cfg.Count)
	totals := map[int][]float64{}
	for i := range cfg.Count {
		for _, q := range []int{1, cfg.Queues} {
			r, err := MeasureMultiQueue(cfg, q)
			if err != nil {
				return errors.Join(err, closeLive())
			}
			fmt.Fprintf(w, "  run %d, %d queue(s): %.0f MB/s total (per connection %s)\n", i+1, q, r.MBps(), formatMBps(r.PerConn))
			totals[q] = append(totals[q], r.MBps())
		}
	}
	one, many := median(totals[1]), median(totals[cfg.Queues])
	fmt.Fprintf(w, "total MB/s: 1 queue %.0f, %d queues %.0f; ratio %.2f×\n", one, cfg.Queues, many, many/one)
	return closeLive()
}

func formatMBps(v []float64) string {
	var out []byte
	for i, x := range v {
		if i > 0 {
			out = append(out, ' ')
		}
		out = fmt.Appendf(out, "%.0f", x)
	}
	return string(out)
}
