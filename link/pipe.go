package link

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/ustack/ustack/ip"
)

// PipeOptions configures NewPipe. The zero value is a 1500-byte-MTU pair
// with 256-frame queues and the MACs 02:00:00:00:00:01 and :02.
type PipeOptions struct {
	MTU      int // network-layer MTU; 0 means 1500
	QueueLen int // frames buffered per direction; 0 means 256
	MACA     MAC // hardware address of the first end; zero means 02:00:00:00:00:01
	MACB     MAC // hardware address of the second end; zero means 02:00:00:00:00:02
	// Offloads makes both ends OffloadEndpoints that carry frames with
	// their metadata as a virtio device does: partial checksums and
	// super-segments up to MaxGSOSize (0 means 65535 when TSO4 or GRO is
	// set) pass through to the peer's ReadFrameOffload. A partial
	// checksum is completed on the way when RxChecksum is off, and a
	// super-segment cut into segments when GRO is off, as the kernel does
	// for a device without them. The zero value: plain frames.
	Offloads Offloads
}

// PipeStats counts the traffic of one PipeEnd.
type PipeStats struct {
	TxFrames uint64 // frames this end wrote that were queued for the peer
	RxFrames uint64 // frames this end read
	Drops    uint64 // frames this end wrote that were dropped because the peer's queue was full
}

// PipeEnd is one end of an in-memory Ethernet link created by NewPipe. It
// implements Endpoint; it is safe for one reader and several writers.
type PipeEnd struct {
	rx, tx *pipeQueue // rx: frames for this end; tx: frames for the peer
	mac    MAC
	mtu    int
	peer   *PipeEnd
	ofl    Offloads

	rxPlain plainer    // ReadFrame's segments of a super-segment (one reader)
	rxBuf   []byte     // ReadFrame's frame with metadata, when ofl is set
	txMu    sync.Mutex // guards txPlain
	txPlain plainer    // a super-segment cut for a peer without GRO

	closed   atomic.Bool
	txFrames atomic.Uint64
	rxFrames atomic.Uint64
	drops    atomic.Uint64
}

// pipeQueue is a bounded ring of pre-allocated frame slots, one per
// direction. Frames are copied in by WriteFrame and out by ReadFrame, so the
// steady state allocates nothing.
type pipeQueue struct {
	mu       sync.Mutex   // guards every field below and the slot contents
	nonEmpty sync.Cond    // signalled when a frame is queued or the pipe closes
	slots    []byte       // len(lens) slots of slotSize bytes each
	lens     []int        // frame length of each slot
	meta     []ip.Offload // metadata of each slot
	slotSize int
	head     int  // index of the oldest queued frame
	n        int  // number of queued frames
	waiters  int  // readers blocked in nonEmpty.Wait
	closed   bool // either end closed: no more frames are queued
}

func newPipeQueue(n, slotSize int) *pipeQueue {
	q := &pipeQueue{
		slots:    make([]byte, n*slotSize),
		lens:     make([]int, n),
		meta:     make([]ip.Offload, n),
		slotSize: slotSize,
	}
	q.nonEmpty.L = &q.mu
	return q
}

func (q *pipeQueue) slot(i int) []byte {
	return q.slots[i*q.slotSize : (i+1)*q.slotSize]
}

func (q *pipeQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.nonEmpty.Broadcast()
}

// NewPipe returns the two connected ends of an in-memory Ethernet link: a
// frame written to one end is read from the other. Each direction buffers up
// to QueueLen frames; a frame written while the peer's queue is full is
// dropped and counted, as a real link would. Closing either end closes the
// link: the closed end's reads fail with net.ErrClosed at once, the peer's
// once it has drained the frames already queued for it.
func NewPipe(opts PipeOptions) (*PipeEnd, *PipeEnd) {
	if opts.MTU <= 0 {
		opts.MTU = 1500
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = 256
	}
	if opts.MACA.IsZero() {
		opts.MACA = MAC{0x02, 0, 0, 0, 0, 0x01}
	}
	if opts.MACB.IsZero() {
		opts.MACB = MAC{0x02, 0, 0, 0, 0, 0x02}
	}
	slot := opts.MTU + EthernetHeaderLen + VLANTagLen // room for an 802.1Q tag (link/vlan)
	ofl := opts.Offloads
	if ofl.TSO4 || ofl.TSO6 || ofl.USO || ofl.GRO {
		if ofl.MaxGSOSize <= 0 || ofl.MaxGSOSize > 65535 {
			ofl.MaxGSOSize = 65535
		}
		slot = max(slot, ofl.MaxGSOSize+EthernetHeaderLen+VLANTagLen)
	} else {
		ofl.MaxGSOSize = 0
	}
	ab := newPipeQueue(opts.QueueLen, slot)
	ba := newPipeQueue(opts.QueueLen, slot)
	a := &PipeEnd{rx: ba, tx: ab, mac: opts.MACA, mtu: opts.MTU, ofl: ofl}
	b := &PipeEnd{rx: ab, tx: ba, mac: opts.MACB, mtu: opts.MTU, ofl: ofl}
	a.peer, b.peer = b, a
	return a, b
}

// ReadFrame blocks until the peer has written a frame and copies it into b.
// A frame longer than b is truncated and reported with ErrTruncated.
func (p *PipeEnd) ReadFrame(b []byte) (int, error) {
	if p.ofl == (Offloads{}) {
		return p.read(b, nil)
	}
	if p.rxPlain.pending() {
		p.rxFrames.Add(1)
		return p.rxPlain.nextSeg(b)
	}
	if p.rxBuf == nil {
		p.rxBuf = make([]byte, p.rx.slotSize)
	}
	for {
		var o ip.Offload
		n, err := p.read(p.rxBuf, &o)
		if err != nil {
			return 0, err
		}
		whole, err := p.rxPlain.put(p.rxBuf[:n], &o, L3Offset(p.rxBuf[:n]))
		if err != nil {
			continue // cannot happen: WriteFrameOffload checked it
		}
		if !whole {
			return p.rxPlain.nextSeg(b)
		}
		if c := copy(b, p.rxBuf[:n]); c < n {
			return c, ErrTruncated
		}
		return n, nil
	}
}

// ReadFrameOffload is ReadFrame with the frame's metadata in *o: with
// Offloads set, frames and super-segments come as the peer wrote them.
func (p *PipeEnd) ReadFrameOffload(b []byte, o *ip.Offload) (int, error) {
	*o = ip.Offload{}
	return p.read(b, o)
}

// Offloads returns the offloads given to NewPipe.
func (p *PipeEnd) Offloads() Offloads { return p.ofl }

// read takes the next frame from the queue into b, and its metadata into
// *o unless o is nil.
func (p *PipeEnd) read(b []byte, o *ip.Offload) (int, error) {
	q := p.rx
	q.mu.Lock()
	for q.n == 0 && !q.closed {
		q.waiters++
		q.nonEmpty.Wait()
		q.waiters--
	}
	if q.n == 0 || p.closed.Load() {
		q.mu.Unlock()
		return 0, net.ErrClosed
	}
	n := copy(b, q.slot(q.head)[:q.lens[q.head]])
	full := q.lens[q.head]
	if o != nil {
		*o = q.meta[q.head]
	}
	q.head++
	if q.head == len(q.lens) {
		q.head = 0
	}
	q.n--
	q.mu.Unlock()
	p.rxFrames.Add(1)
	if n < full {
		return n, ErrTruncated
	}
	return n, nil
}

// WriteFrame copies b into the peer's queue. It returns ErrFrameTooLarge for
// a frame longer than MTU+EthernetHeaderLen (plus VLANTagLen for a frame
// with an 802.1Q tag) and net.ErrClosed once the pipe
// is closed. A frame that finds the peer's queue full is dropped silently
// and counted in Stats().Drops.
func (p *PipeEnd) WriteFrame(b []byte) error {
	if len(b) > p.mtu+L3Offset(b) {
		return ErrFrameTooLarge
	}
	return p.write(b, nil)
}

// WriteFrameOffload is WriteFrame with metadata for the peer: a partial
// checksum (NeedsChecksum, if TxChecksum is set) or a super-segment of up
// to MaxGSOSize bytes (a GSO type the Offloads allow). Metadata they do
// not allow is an ErrOffload naming it.
func (p *PipeEnd) WriteFrameOffload(b []byte, o *ip.Offload) error {
	if *o == (ip.Offload{}) {
		return p.WriteFrame(b)
	}
	l3 := L3Offset(b)
	if err := p.ofl.checkTx(o, len(b), l3); err != nil {
		return err
	}
	if o.GSOType == 0 && len(b) > p.mtu+l3 {
		return ErrFrameTooLarge
	}
	gso := o.GSOType != 0
	if (gso && !p.ofl.GRO) || (o.NeedsChecksum && !p.ofl.RxChecksum) {
		// What the peer's device would not take is done here, as the
		// kernel does in software for a device without the feature.
		p.txMu.Lock()
		defer p.txMu.Unlock()
		meta := *o
		whole, err := p.txPlain.put(b, &meta, l3)
		if err != nil {
			return err
		}
		if whole {
			return p.write(b, nil)
		}
		for p.txPlain.pending() {
			seg := p.txPlain.buf[p.txPlain.off : p.txPlain.off+p.txPlain.lens[p.txPlain.next]]
			p.txPlain.off += len(seg)
			p.txPlain.next++
			if err := p.write(seg, nil); err != nil {
				return err
			}
		}
		return nil
	}
	return p.write(b, o)
}

// write queues b, with metadata *o unless o is nil, for the peer.
func (p *PipeEnd) write(b []byte, o *ip.Offload) error {
	q := p.tx
	if len(b) > q.slotSize {
		return ErrFrameTooLarge
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return net.ErrClosed
	}
	if q.n == len(q.lens) {
		q.mu.Unlock()
		p.drops.Add(1)
		return nil
	}
	i := q.head + q.n
	if i >= len(q.lens) {
		i -= len(q.lens)
	}
	q.lens[i] = copy(q.slot(i), b)
	if o != nil {
		q.meta[i] = *o
	} else {
		q.meta[i] = ip.Offload{}
	}
	q.n++
	wake := q.waiters > 0
	q.mu.Unlock()
	if wake {
		q.nonEmpty.Signal()
	}
	p.txFrames.Add(1)
	return nil
}

// MTU returns the network-layer MTU given to NewPipe.
func (p *PipeEnd) MTU() int { return p.mtu }

// HardwareAddr returns this end's MAC address.
func (p *PipeEnd) HardwareAddr() MAC { return p.mac }

// Close closes the link in both directions and unblocks readers on both
// ends. It is safe to call more than once.
func (p *PipeEnd) Close() error {
	p.closed.Store(true)
	p.rx.close()
	p.tx.close()
	return nil
}

// Stats returns this end's counters.
func (p *PipeEnd) Stats() PipeStats {
	return PipeStats{
		TxFrames: p.txFrames.Load(),
		RxFrames: p.rxFrames.Load(),
		Drops:    p.drops.Load(),
	}
}

var _ OffloadEndpoint = (*PipeEnd)(nil)
