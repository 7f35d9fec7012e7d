package fault

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
)

// BridgeConfig configures NewBridge: the impairments of each direction and
// the seed of their decisions.
type BridgeConfig struct {
	Seed uint64     // seed of both directions' decision streams (they differ)
	AToB Impairment // frames read from a and written to b
	BToA Impairment // frames read from b and written to a
	// Offloads makes the bridge carry offload metadata: both endpoints
	// must be link.OffloadEndpoints that complete partial checksums and
	// take TCP/IPv4 super-segments (TxChecksum, TSO4), and frames go
	// across with their metadata, super-segments whole, as between two
	// virtio devices or a veth pair. An impairment then applies to the
	// whole frame, as netem's does to a GSO packet: one drop loses every
	// segment of a super-segment (see process for corruption). Without
	// it the bridge reads plain frames, MTU-sized, as a wire carries
	// them. DataValid is not carried: the receiver checks the checksums.
	Offloads bool
}

// bToASeed derives the seed of the B→A direction from BridgeConfig.Seed,
// so that the two directions do not make the same decisions frame by frame.
const bToASeed = 0x62326120_61326221 // "b2a a2b!"

// Bridge forwards the frames of two endpoints to each other, a virtual
// cable between two devices (for example two TAP devices, or a TAP device
// and one end of a link.Pipe) that impairs the traffic of each direction
// as a fault.Endpoint does, with the same seeded decisions. Frames are
// forwarded as they are: a bridge between two Ethernet links carries ARP
// and anything else, and looks at no header.
//
// Each direction is a goroutine that reads a frame from one endpoint and
// writes it to an Endpoint (New) wrapping the other, whose Tx impairment
// is that direction's; a timed direction adds the Endpoint's delivery
// goroutine. Close ends them all.
type Bridge struct {
	a, b   link.Endpoint
	fa, fb *Endpoint // a and b with the impairment of the frames written to them
	ab, ba dirCounters
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

// BridgeStats counts what a Bridge did in each direction.
type BridgeStats struct {
	AToB, BToA BridgeCounters
}

// BridgeCounters count one direction of a Bridge.
type BridgeCounters struct {
	// Frames counts the frames read from the source endpoint.
	Frames uint64
	// Errors counts frames that could not be forwarded: truncated on
	// reading (longer than the source's MTU) or refused by the destination
	// (for example larger than its MTU). Frames dropped by the impairment
	// are counted in Dropped instead. In a timed direction the
	// destination's refusals come after the delay and are not counted.
	Errors uint64
	Counters
}

// dirCounters are the atomic counters of one direction.
type dirCounters struct {
	frames, errors atomic.Uint64
}

// NewBridge starts forwarding between a and b, impaired as cfg says.
// Close stops it and closes both endpoints. It returns an error, naming
// the argument, for a nil or shared endpoint or an impairment out of
// range (Impairment.Validate).
func NewBridge(a, b link.Endpoint, cfg BridgeConfig) (*Bridge, error) {
	switch {
	case a == nil || b == nil:
		return nil, errors.New("fault: NewBridge: nil endpoint")
	case a == b:
		return nil, errors.New("fault: NewBridge: a and b are the same endpoint")
	}
	if err := cfg.AToB.Validate(); err != nil {
		return nil, fmt.Errorf("fault: NewBridge: AToB: %w", err)
	}
	if err := cfg.BToA.Validate(); err != nil {
		return nil, fmt.Errorf("fault: NewBridge: BToA: %w", err)
	}
	if cfg.Offloads {
		for _, ep := range []link.Endpoint{a, b} {
			oep, ok := ep.(link.OffloadEndpoint)
			if !ok {
				return nil, fmt.Errorf("fault: NewBridge: Offloads: %T carries no offload metadata", ep)
			}
			if o := oep.Offloads(); !o.TxChecksum || !o.TSO4 {
				return nil, fmt.Errorf("fault: NewBridge: Offloads: %T does not take partial checksums and TCP/IPv4 super-segments (%+v)", ep, o)
			}
		}
	}
	br := &Bridge{
		a:  a,
		b:  b,
		fb: New(b, Config{Seed: cfg.Seed, Tx: cfg.AToB}),
		fa: New(a, Config{Seed: cfg.Seed ^ bToASeed, Tx: cfg.BToA}),
	}
	br.wg.Add(2)
	go br.forward(a, br.fb, &br.ab, cfg.Offloads)
	go br.forward(b, br.fa, &br.ba, cfg.Offloads)
	return br, nil
}

// forward copies frames from src to dst until src fails; with offloads,
// with their offload metadata (BridgeConfig.Offloads).
func (br *Bridge) forward(src link.Endpoint, dst *Endpoint, c *dirCounters, offloads bool) {
	defer br.wg.Done()
	read := func(b []byte, _ *ip.Offload) (int, error) { return src.ReadFrame(b) }
	size := src.MTU()
	if offloads {
		oep := src.(link.OffloadEndpoint)
		read, size = oep.ReadFrameOffload, max(size, oep.Offloads().MaxGSOSize)
	}
	buf := make([]byte, size+link.EthernetHeaderLen)
	var o ip.Offload
	for {
		o = ip.Offload{}
		n, err := read(buf, &o)
		if errors.Is(err, link.ErrTruncated) {
			c.frames.Add(1)
			c.errors.Add(1)
			continue
		}
		if err != nil {
			// Closed, or a device error: either way the cable is cut;
			// close the other end too so that its reader ends.
			br.closeEnds()
			return
		}
		c.frames.Add(1)
		o.DataValid = false // a wire carries no verdict on checksums
		if err := dst.writeFrameOffload(buf[:n], &o); err != nil {
			if errors.Is(err, net.ErrClosed) {
				br.closeEnds()
				return
			}
			c.errors.Add(1)
		}
	}
}

// closeEnds closes both endpoints once, through their impairing wrappers,
// which stop their goroutines first.
func (br *Bridge) closeEnds() {
	br.once.Do(func() {
		br.err = errors.Join(br.fa.Close(), br.fb.Close())
	})
}

// Close stops forwarding, closes both endpoints and waits for the
// bridge's goroutines to end. Frames still held in a delay queue are
// discarded. It is safe to call more than once.
func (br *Bridge) Close() error {
	br.closeEnds()
	br.wg.Wait()
	return br.err
}

// Stats returns the counters of both directions.
func (br *Bridge) Stats() BridgeStats {
	return BridgeStats{
		AToB: BridgeCounters{Frames: br.ab.frames.Load(), Errors: br.ab.errors.Load(), Counters: br.fb.Stats().Tx},
		BToA: BridgeCounters{Frames: br.ba.frames.Load(), Errors: br.ba.errors.Load(), Counters: br.fa.Stats().Tx},
	}
}
