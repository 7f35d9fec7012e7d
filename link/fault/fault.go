// Package fault wraps a link.Endpoint to impair its traffic the way a bad
// network would: it drops, duplicates, reorders and corrupts frames, delays
// them and limits their rate, independently in each direction.
//
// Every random decision comes from a PCG generator (math/rand/v2) seeded
// with Config.Seed, one stream per direction, and a fixed number of draws is
// made per frame. The same seed and the same sequence of frames in a
// direction therefore give the same decisions, whatever happens in the
// other direction: a failing test can be replayed.
//
// Without Delay, Jitter, RateBytesPerSec or ReorderDelay an Endpoint starts
// no goroutine: frames are impaired synchronously in WriteFrame and
// ReadFrame. With them, a timed direction queues frames by delivery time
// and one goroutine (two for Rx) delivers them until Close.
//
// A Bridge joins two endpoints, for example two TAP devices, with an
// impairment for each direction: the lossy link between a kernel and the
// stack under test.
package fault

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
)

// Impairment describes what happens to the frames of one direction.
// Probabilities are in [0, 1] and apply to each frame independently.
type Impairment struct {
	Drop      float64 // probability that a frame is lost
	Duplicate float64 // probability that a frame is delivered twice
	Reorder   float64 // probability that a frame is held back (see ReorderDelay)
	Corrupt   float64 // probability that one random bit of a frame is flipped (see CorruptIP)

	// CorruptIP confines Corrupt to IP packets: on an Ethernet endpoint
	// (one with a hardware address) only frames carrying IPv4 or IPv6 are
	// corrupted, and never in their Ethernet header. This is corruption
	// that got past the link's frame check sequence (in a router's
	// memory, say), which only the IP and TCP checksums can catch; ARP,
	// which has no checksum and never leaves its link, is not corrupted,
	// as a real link's FCS would have dropped the frame. Without it any
	// bit of any frame may flip.
	CorruptIP bool

	// ReorderDelay is how long a frame picked by Reorder is held back
	// while the frames behind it pass, as on a path where one packet
	// takes a slower route. 0 holds it until the next frame has passed
	// (the two swap places) and, alone, starts no goroutine.
	ReorderDelay time.Duration

	// Delay is added to every frame's delivery. Jitter adds a further
	// uniformly random delay in [0, Jitter). Delivery stays in order:
	// jitter never reorders frames (use Reorder for that).
	Delay  time.Duration
	Jitter time.Duration
	// RateBytesPerSec limits the direction's throughput: a frame of n
	// bytes occupies the link for n/RateBytesPerSec seconds, and frames
	// queue behind it. 0 means unlimited.
	RateBytesPerSec int64
}

// Validate reports, as an error naming the field, a probability outside
// [0, 1] or a negative duration or rate. New does not check (a
// probability above 1 acts as 1, below 0 as 0); NewBridge does.
func (im Impairment) Validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"Drop", im.Drop}, {"Duplicate", im.Duplicate}, {"Reorder", im.Reorder}, {"Corrupt", im.Corrupt}} {
		if !(p.v >= 0 && p.v <= 1) { // also NaN
			return fmt.Errorf("fault: %s %v is not a probability in [0, 1]", p.name, p.v)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Delay", im.Delay}, {"Jitter", im.Jitter}, {"ReorderDelay", im.ReorderDelay}} {
		if d.v < 0 {
			return fmt.Errorf("fault: %s %v is negative", d.name, d.v)
		}
	}
	if im.RateBytesPerSec < 0 {
		return fmt.Errorf("fault: RateBytesPerSec %d is negative", im.RateBytesPerSec)
	}
	return nil
}

// timed reports whether frames of this direction pass through a delay
// queue served by a goroutine.
func (im Impairment) timed() bool {
	return im.Delay > 0 || im.Jitter > 0 || im.RateBytesPerSec > 0 || im.Reorder > 0 && im.ReorderDelay > 0
}

// Config configures New.
type Config struct {
	Seed uint64     // seed of the decision streams
	Tx   Impairment // frames written to the Endpoint
	Rx   Impairment // frames read from the Endpoint
}

// Counters count the impairments applied in one direction.
type Counters struct {
	Dropped    uint64 // frames lost, including frames dropped because the delay queue was full
	Duplicated uint64 // extra copies delivered
	Reordered  uint64 // frames held back
	Corrupted  uint64 // frames with one bit flipped
	Delayed    uint64 // frames that went through the delay queue
}

// Stats holds the counters of both directions.
type Stats struct {
	Tx, Rx Counters
}

// delayQueueLen bounds the frames waiting in a direction's delay queue;
// further frames are dropped and counted, as a router's queue would.
const delayQueueLen = 4096

// PCG stream selectors of the two directions, so that they draw from
// independent sequences of the same seed.
const (
	streamTx = 0x7478 // "tx"
	streamRx = 0x7278 // "rx"
)

// Endpoint is a link.Endpoint that impairs the traffic of the endpoint it
// wraps. It is safe for one reader and several writers, like any Endpoint.
type Endpoint struct {
	ep   link.Endpoint
	oep  link.OffloadEndpoint // ep if it carries offload metadata, else nil
	done chan struct{}        // closed by Close
	once sync.Once
	wg   sync.WaitGroup // the goroutines of timed directions

	txMu sync.Mutex // guards tx and serializes untimed writes to ep
	tx   *shaper
	txq  *timedQueue // timed Tx: frames waiting for their delivery time

	rxMu    sync.Mutex // guards rx, rxBuf and pending
	rx      *shaper
	rxBuf   []byte   // untimed Rx: the frame read from ep
	pending [][]byte // untimed Rx: frames to deliver before reading again
	rxq     *timedQueue
	rxReady chan item // timed Rx: frames that are due, for ReadFrame
	rxErr   error     // timed Rx: why the reading goroutine stopped

	pool sync.Pool // recycles frame copies of delay queues and pending frames
}

var _ link.Endpoint = (*Endpoint)(nil)

// item is a frame in a delay queue with the time it is due.
type item struct {
	b   []byte
	o   ip.Offload // the frame's offload metadata (Bridge with Offloads)
	due time.Time
	seq uint64 // arrival order in the queue, for frames due at the same time
}

// New returns an Endpoint that impairs the traffic of ep according to cfg.
// Close it to end its goroutines; it closes ep.
func New(ep link.Endpoint, cfg Config) *Endpoint {
	e := &Endpoint{
		ep:    ep,
		done:  make(chan struct{}),
		rxBuf: make([]byte, ep.MTU()+link.EthernetHeaderLen),
	}
	e.pool.New = func() any { return new([]byte) }
	e.oep, _ = ep.(link.OffloadEndpoint)
	ether := !ep.HardwareAddr().IsZero()
	e.tx = newShaper(cfg.Tx, rand.NewPCG(cfg.Seed, streamTx), &e.pool, ether)
	e.rx = newShaper(cfg.Rx, rand.NewPCG(cfg.Seed, streamRx), &e.pool, ether)
	if cfg.Tx.timed() {
		e.txq = newTimedQueue()
		e.wg.Add(1)
		go e.transmitLoop()
	}
	if cfg.Rx.timed() {
		e.rxq = newTimedQueue()
		e.rxReady = make(chan item, 64)
		e.wg.Add(2)
		go e.receiveLoop()
		go e.readyLoop()
	}
	return e
}

func (e *Endpoint) closed() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// WriteFrame impairs b and passes what survives to the wrapped endpoint,
// now or, for a timed direction, at its delivery time. A dropped frame is
// not an error. In a timed direction, errors of the wrapped endpoint are
// not reported.
func (e *Endpoint) WriteFrame(b []byte) error { return e.writeFrameOffload(b, nil) }

// writeFrameOffload is WriteFrame for a frame with offload metadata *o
// (nil: a plain frame), which goes to the wrapped endpoint with it; the
// Bridge with Offloads writes through it.
func (e *Endpoint) writeFrameOffload(b []byte, o *ip.Offload) error {
	if e.closed() {
		return net.ErrClosed
	}
	e.txMu.Lock()
	defer e.txMu.Unlock()
	if e.txq != nil {
		now := time.Now()
		e.tx.process(b, o, func(f []byte, o *ip.Offload, late bool) { e.tx.enqueue(e.txq, f, o, now, late) })
		return nil
	}
	var err error
	e.tx.process(b, o, func(f []byte, o *ip.Offload, _ bool) {
		if werr := e.write(f, o); werr != nil && err == nil {
			err = werr
		}
	})
	return err
}

// write hands f to the wrapped endpoint, with its metadata o if it has any.
func (e *Endpoint) write(f []byte, o *ip.Offload) error {
	if *o != (ip.Offload{}) && e.oep != nil {
		return e.oep.WriteFrameOffload(f, o)
	}
	return e.ep.WriteFrame(f)
}

// transmitLoop delivers the frames of the timed Tx queue at their due time.
func (e *Endpoint) transmitLoop() {
	defer e.wg.Done()
	e.txq.run(e.done, func(it item) bool {
		e.write(it.b, &it.o)
		e.tx.putBuf(it.b)
		return true
	})
}

// ReadFrame reads frames from the wrapped endpoint until one survives the
// impairments, and copies it into b.
func (e *Endpoint) ReadFrame(b []byte) (int, error) {
	if e.closed() {
		return 0, net.ErrClosed
	}
	e.rxMu.Lock()
	defer e.rxMu.Unlock()
	if e.rxq != nil {
		return e.readTimed(b)
	}
	for {
		if len(e.pending) > 0 {
			f := e.pending[0]
			e.pending[0] = nil
			e.pending = e.pending[1:]
			n, err := deliver(b, f)
			e.rx.putBuf(f)
			return n, err
		}
		n, err := e.ep.ReadFrame(e.rxBuf)
		if err != nil && !errors.Is(err, link.ErrTruncated) {
			return 0, err
		}
		var first []byte
		e.rx.process(e.rxBuf[:n], nil, func(f []byte, _ *ip.Offload, _ bool) {
			if first == nil {
				first = f // valid until the next process call
				return
			}
			e.pending = append(e.pending, append(e.rx.getBuf(), f...))
		})
		if first != nil {
			return deliver(b, first)
		}
	}
}

// readTimed returns the next frame of the timed Rx queue once it is due.
func (e *Endpoint) readTimed(b []byte) (int, error) {
	var it item
	var ok bool
	select {
	case it, ok = <-e.rxReady:
	case <-e.done:
		return 0, net.ErrClosed
	}
	if !ok {
		if e.rxErr != nil {
			return 0, e.rxErr
		}
		return 0, net.ErrClosed
	}
	n, err := deliver(b, it.b)
	e.rx.putBuf(it.b)
	return n, err
}

// receiveLoop reads from the wrapped endpoint, impairs what it reads and
// queues it for ReadFrame at its delivery time. It ends when the wrapped
// endpoint fails (Close closes it), and closes the queue so that ReadFrame
// reports why once the queue is drained.
func (e *Endpoint) receiveLoop() {
	defer e.wg.Done()
	buf := make([]byte, e.ep.MTU()+link.EthernetHeaderLen)
	for {
		n, err := e.ep.ReadFrame(buf)
		if err != nil && !errors.Is(err, link.ErrTruncated) {
			e.rxErr = err // published to readers by close(e.rxReady)
			e.rxq.close()
			return
		}
		now := time.Now()
		e.rx.process(buf[:n], nil, func(f []byte, o *ip.Offload, late bool) { e.rx.enqueue(e.rxq, f, o, now, late) })
	}
}

// readyLoop moves the frames of the timed Rx queue to rxReady as they fall
// due, and closes rxReady when the queue is closed and drained or the
// Endpoint is closed.
func (e *Endpoint) readyLoop() {
	defer e.wg.Done()
	defer close(e.rxReady)
	e.rxq.run(e.done, func(it item) bool {
		select {
		case e.rxReady <- it:
			return true
		case <-e.done:
			return false
		}
	})
}

// deliver copies frame f into b, reporting truncation.
func deliver(b, f []byte) (int, error) {
	n := copy(b, f)
	if n < len(f) {
		return n, link.ErrTruncated
	}
	return n, nil
}

// MTU returns the wrapped endpoint's MTU.
func (e *Endpoint) MTU() int { return e.ep.MTU() }

// HardwareAddr returns the wrapped endpoint's hardware address.
func (e *Endpoint) HardwareAddr() link.MAC { return e.ep.HardwareAddr() }

// Close closes the wrapped endpoint, discards frames still held back or
// queued, and waits for the Endpoint's goroutines to end. It is safe to call
// more than once.
func (e *Endpoint) Close() error {
	var err error
	e.once.Do(func() {
		close(e.done)
		err = e.ep.Close()
		e.wg.Wait()
	})
	return err
}

// Stats returns the counters of both directions.
func (e *Endpoint) Stats() Stats {
	return Stats{Tx: e.tx.c.load(), Rx: e.rx.c.load()}
}
