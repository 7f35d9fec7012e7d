package vlan

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vnet"
)

// Config configures a sub-endpoint of a Trunk (Trunk.Sub, Trunk.Native).
type Config struct {
	// MTU is the sub-endpoint's MTU. 0 means the trunk's MTU minus
	// TagLen for a VLAN, so that a tagged frame fits in what the trunk
	// carries untagged (a switch port that counts the tag against its
	// frame size), and the trunk's MTU for the native endpoint. It may
	// be at most the trunk's MTU: give the trunk's MTU to keep it, as
	// Linux's VLAN devices do by default (a TAP device and a Pipe do not
	// count the tag against their MTU: link.L3Offset).
	MTU int
	// PCP and DEI go in the tag of every frame written to a VLAN
	// (IEEE Std 802.1Q-2018 §6.9.3: the priority and drop eligibility
	// of a frame; PCP 0 is best effort). The native endpoint writes
	// untagged frames and ignores them.
	PCP uint8
	DEI bool
	// QueueLen bounds the frames read from the trunk and waiting for
	// the sub-endpoint's reader; past it frames are dropped and counted
	// (Counters.DropQueueFull). 0 means 256.
	QueueLen int
}

// Counters count one sub-endpoint's traffic.
type Counters struct {
	FramesIn, BytesIn   uint64 // frames (and their bytes, without the tag) demultiplexed to its queue
	FramesOut, BytesOut uint64 // frames (and their bytes, with the tag) written to the trunk
	DropQueueFull       uint64 // frames for it dropped because its reader lagged QueueLen frames behind
	WriteErrors         uint64 // frames the trunk refused to write
	PriorityTagged      uint64 // (native endpoint) frames that came with a tag of VID 0
}

// Stats counts what a Trunk did with the frames it read, and the
// traffic of each sub-endpoint.
type Stats struct {
	FramesIn        uint64 // frames read from the trunk
	DropUnknownVID  uint64 // tagged with a VID that has no sub-endpoint
	DropUntagged    uint64 // untagged or priority-tagged, with no native endpoint
	DropReservedVID uint64 // tagged with VID 4095 (IEEE Std 802.1Q-2018 Table 9-2)
	DropMalformed   uint64 // shorter than an Ethernet header, tag cut short, or an 802.3 length after the tag
	ReadErrors      uint64 // reads of the trunk that failed
	// VLANs holds the counters of each VLAN's sub-endpoint, by VID,
	// those of closed ones included.
	VLANs map[uint16]Counters
	// Native holds the counters of the native (untagged) endpoint.
	Native Counters
}

// Trunk is an Ethernet link.Endpoint that carries 802.1Q-tagged frames
// for several VLANs, each served by a sub-endpoint (Sub), and untagged
// frames, served by the native endpoint (Native) if there is one. One
// goroutine reads the trunk and hands each frame to its sub-endpoint's
// queue; the sub-endpoint's ReadFrame copies it out with the tag taken
// off, so the frame's bytes are copied once between the trunk and the
// reader.
//
// Offload metadata passes through: if the trunk is a
// link.OffloadEndpoint, so is each sub-endpoint, with the same
// link.Offloads, and a frame's ip.Offload is handed on as it is, since
// its offsets count from the IP header, which the tag does not move; the
// device places the virtio_net_hdr offsets of a tagged frame 4 bytes
// further (link.L3Offset). A sub-endpoint read with plain ReadFrame does
// what the metadata asks in software (a partial checksum completed, a
// super-segment cut).
type Trunk struct {
	ep     link.Endpoint
	oep    link.OffloadEndpoint // ep when it carries offload metadata, else nil
	ofl    link.Offloads
	bufLen int // the longest frame the trunk may carry, tag included

	// vlans and native are read by the reader goroutine for every frame
	// without a lock; Sub, Native and Endpoint.Close store them under mu.
	vlans  [MaxVID + 1]atomic.Pointer[Endpoint]
	native atomic.Pointer[Endpoint]

	mu     sync.Mutex           // guards made, open, closed
	made   map[uint16]*Endpoint // every VLAN sub-endpoint made, closed or not, for Stats
	nat    *Endpoint            // the native endpoint made, if any
	open   int                  // sub-endpoints made and not closed
	closed bool

	rxPool sync.Pool // *rxFrame of bufLen bytes
	txPool sync.Pool // *[]byte of bufLen bytes, for tagging a frame written

	done chan struct{} // closed when the reader goroutine ends
	stop chan struct{} // closed by Close
	once sync.Once
	wg   sync.WaitGroup

	framesIn, dropUnknownVID, dropUntagged, dropReserved, dropMalformed, readErrors atomic.Uint64
}

// rxFrame is a frame read from the trunk, on its way to a sub-endpoint.
type rxFrame struct {
	b      []byte
	n      int
	o      ip.Offload
	tag    Tag
	tagged bool // b[:n] still has its tag
}

// ErrVID is returned by Sub for a VLAN identifier no VLAN may have, or
// one that already has a sub-endpoint.
var ErrVID = errors.New("vlan: invalid VLAN identifier")

// NewTrunk makes ep, an Ethernet endpoint (one with a hardware address),
// a trunk, and starts the goroutine that reads it; Close the trunk, or
// every sub-endpoint made of it, to end it. The trunk owns ep from now
// on: nothing else may read it. An endpoint without a hardware address
// (TUN) or of several queues (link.MultiQueue; the trunk reads one) is
// an error.
func NewTrunk(ep link.Endpoint) (*Trunk, error) {
	if ep == nil {
		return nil, errors.New("vlan: nil trunk endpoint")
	}
	if ep.HardwareAddr().IsZero() {
		return nil, errors.New("vlan: the trunk endpoint has no hardware address (a TUN device carries no Ethernet frames to tag)")
	}
	if ep.MTU() <= TagLen {
		return nil, fmt.Errorf("vlan: trunk MTU %d leaves no room for a tag", ep.MTU())
	}
	if mq, ok := ep.(link.MultiQueue); ok && mq.NumQueues() > 1 {
		return nil, fmt.Errorf("vlan: the trunk endpoint has %d queues; a trunk reads one (open the device with one queue)", mq.NumQueues())
	}
	t := &Trunk{
		ep:   ep,
		made: make(map[uint16]*Endpoint),
		done: make(chan struct{}),
		stop: make(chan struct{}),
	}
	maxPkt := ep.MTU()
	if oep, ok := ep.(link.OffloadEndpoint); ok {
		t.oep, t.ofl = oep, oep.Offloads()
		// Super-segments read (GRO) or written (TSO, USO), of up to
		// MaxGSOSize bytes, which is 0 without them.
		maxPkt = max(maxPkt, t.ofl.MaxGSOSize)
	}
	t.bufLen = maxPkt + HeaderLen
	t.rxPool.New = func() any { return &rxFrame{b: make([]byte, t.bufLen)} }
	t.txPool.New = func() any { b := make([]byte, t.bufLen); return &b }
	t.wg.Add(1)
	go t.readLoop()
	return t, nil
}

// Sub returns the sub-endpoint of VLAN vid (1-4094): it reads the frames
// tagged with vid, untagged, and writes frames with vid's tag. An
// invalid or taken vid is an ErrVID naming it, an MTU beyond the trunk's
// an error.
func (t *Trunk) Sub(vid uint16, cfg Config) (*Endpoint, error) {
	if vid == VIDNull || vid > MaxVID {
		return nil, fmt.Errorf("%w: %d (a VLAN has 1 to %d; 0 is the untagged VLAN, Native)", ErrVID, vid, MaxVID)
	}
	return t.add(vid, false, cfg)
}

// Native returns the native endpoint: it reads the untagged frames and
// those tagged with VID 0 (priority-tagged, IEEE Std 802.1Q-2018 §9.6),
// and writes untagged frames. Without one, such frames are dropped and
// counted (Stats.DropUntagged).
func (t *Trunk) Native(cfg Config) (*Endpoint, error) { return t.add(VIDNull, true, cfg) }

func (t *Trunk) add(vid uint16, native bool, cfg Config) (*Endpoint, error) {
	mtu := cfg.MTU
	switch {
	case mtu < 0 || mtu > t.ep.MTU():
		return nil, fmt.Errorf("vlan: Config.MTU %d outside 0 (the default) to the trunk's %d", mtu, t.ep.MTU())
	case cfg.QueueLen < 0:
		return nil, fmt.Errorf("vlan: Config.QueueLen %d is negative", cfg.QueueLen)
	case cfg.PCP > 7:
		return nil, fmt.Errorf("vlan: Config.PCP %d outside 0-7", cfg.PCP)
	case mtu == 0 && native:
		mtu = t.ep.MTU()
	case mtu == 0:
		mtu = t.ep.MTU() - TagLen
	}
	ql := cfg.QueueLen
	if ql == 0 {
		ql = 256
	}
	e := &Endpoint{
		t:      t,
		native: native,
		tag:    Tag{PCP: cfg.PCP, DEI: cfg.DEI, VID: vid},
		mtu:    mtu,
		q:      make(chan *rxFrame, ql),
		closed: make(chan struct{}),
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, net.ErrClosed
	}
	switch {
	case native && t.nat != nil:
		return nil, errors.New("vlan: the trunk has a native endpoint already")
	case !native && t.made[vid] != nil && !t.made[vid].isClosed():
		return nil, fmt.Errorf("%w: VLAN %d has a sub-endpoint already", ErrVID, vid)
	}
	if native {
		t.nat = e
		t.native.Store(e)
	} else {
		t.made[vid] = e
		t.vlans[vid].Store(e)
	}
	t.open++
	return e, nil
}

// readLoop is the trunk's reader: it reads every frame and hands it to
// the queue of the sub-endpoint it is for, until the trunk closes.
func (t *Trunk) readLoop() {
	defer t.wg.Done()
	defer close(t.done)
	for {
		f := t.rxPool.Get().(*rxFrame)
		var err error
		f.o = ip.Offload{}
		if t.oep != nil {
			f.n, err = t.oep.ReadFrameOffload(f.b, &f.o)
		} else {
			f.n, err = t.ep.ReadFrame(f.b)
		}
		if err != nil {
			t.rxPool.Put(f)
			if errors.Is(err, link.ErrTruncated) {
				t.dropMalformed.Add(1)
				continue
			}
			if errors.Is(err, net.ErrClosed) || t.isClosed() {
				return
			}
			t.readErrors.Add(1)
			select { // back off from a failing device
			case <-t.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		t.framesIn.Add(1)
		t.dispatch(f)
	}
}

// dispatch hands the frame f to the sub-endpoint its tag names (IEEE Std
// 802.1Q-2018 §6.9: the VID of a tagged frame, the native VLAN of an
// untagged or priority-tagged one), or drops it, counted.
func (t *Trunk) dispatch(f *rxFrame) {
	b := f.b[:f.n]
	var e *Endpoint
	if len(b) < link.EthernetHeaderLen {
		t.dropMalformed.Add(1)
		t.rxPool.Put(f)
		return
	}
	fr, err := ParseFrame(b)
	switch {
	case err == ErrNotTagged:
		f.tagged, f.tag = false, Tag{}
		if e = t.native.Load(); e == nil {
			t.dropUntagged.Add(1)
		}
	case err != nil:
		t.dropMalformed.Add(1)
	default:
		f.tagged, f.tag = true, fr.Tag()
		switch f.tag.VID {
		case VIDNull:
			if e = t.native.Load(); e == nil {
				t.dropUntagged.Add(1)
			} else {
				e.priorityTagged.Add(1)
			}
		case VIDReserved:
			t.dropReserved.Add(1)
		default:
			if e = t.vlans[f.tag.VID].Load(); e == nil {
				t.dropUnknownVID.Add(1)
			}
		}
	}
	if e == nil {
		t.rxPool.Put(f)
		return
	}
	n := f.n
	if f.tagged {
		n -= TagLen
	}
	// Counted before the frame is queued, so that its reader never sees
	// it uncounted; taken back if the queue is full.
	e.framesIn.Add(1)
	e.bytesIn.Add(uint64(n))
	select {
	case e.q <- f:
	default:
		e.framesIn.Add(^uint64(0))
		e.bytesIn.Add(^uint64(n - 1))
		e.dropQueueFull.Add(1)
		t.rxPool.Put(f)
	}
}

func (t *Trunk) isClosed() bool {
	select {
	case <-t.stop:
		return true
	default:
		return false
	}
}

// Close closes the trunk's endpoint and every sub-endpoint, and returns
// once the reader goroutine has ended. It is safe to call more than once.
func (t *Trunk) Close() error {
	var err error
	t.once.Do(func() {
		t.mu.Lock()
		t.closed = true
		t.mu.Unlock()
		close(t.stop)
		err = t.ep.Close()
		t.wg.Wait()
	})
	return err
}

// Stats returns the trunk's counters and those of its sub-endpoints.
func (t *Trunk) Stats() Stats {
	st := Stats{
		FramesIn:        t.framesIn.Load(),
		DropUnknownVID:  t.dropUnknownVID.Load(),
		DropUntagged:    t.dropUntagged.Load(),
		DropReservedVID: t.dropReserved.Load(),
		DropMalformed:   t.dropMalformed.Load(),
		ReadErrors:      t.readErrors.Load(),
		VLANs:           make(map[uint16]Counters),
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for vid, e := range t.made {
		st.VLANs[vid] = e.Counters()
	}
	if t.nat != nil {
		st.Native = t.nat.Counters()
	}
	return st
}

// Endpoint is a sub-endpoint of a Trunk: a VLAN's (Trunk.Sub) or the
// native one (Trunk.Native). It is a link.OffloadEndpoint, safe for one
// reader and several writers; its hardware address is the trunk's.
type Endpoint struct {
	t      *Trunk
	native bool
	tag    Tag // of the frames written (VID 0 for the native endpoint)
	mtu    int
	q      chan *rxFrame
	closed chan struct{}
	once   sync.Once

	// The reader's state (one reader at a time): a super-segment cut for
	// a plain ReadFrame.
	plain  []byte // the frame, a scratch, then the segments back to back
	segs   []int  // their lengths
	segOff int    // offset of the next one in plain
	segIdx int

	framesIn, bytesIn, framesOut, bytesOut, dropQueueFull, writeErrors, priorityTagged atomic.Uint64
}

var _ link.OffloadEndpoint = (*Endpoint)(nil)

// VID returns the endpoint's VLAN identifier, 0 for the native endpoint.
func (e *Endpoint) VID() uint16 { return e.tag.VID }

// ReadFrame reads the next frame for this endpoint, without its tag. A
// frame that came with offload metadata is made plain: its partial
// checksum completed, a super-segment cut into segments, handed out one
// per call.
func (e *Endpoint) ReadFrame(b []byte) (int, error) {
	if e.segIdx < len(e.segs) {
		return e.nextSeg(b)
	}
	for {
		f, err := e.next()
		if err != nil {
			return 0, err
		}
		if f.o == (ip.Offload{}) {
			n, err := e.copyOut(b, f)
			e.t.rxPool.Put(f)
			return n, err
		}
		if e.plain == nil {
			// The frame, Split's scratch, then the segments: the payload
			// once and the headers of each, less than twice the frame.
			e.plain = make([]byte, 4*e.t.bufLen)
		}
		scratch := e.plain[:e.t.bufLen]
		n, _ := e.copyOut(scratch, f) // bufLen holds every frame
		o := f.o
		e.t.rxPool.Put(f)
		fr := scratch[:n]
		if o.GSOType&^vnet.GSOECN == vnet.GSONone {
			if o.NeedsChecksum && !vnet.CompleteChecksum(fr[link.EthernetHeaderLen:], int(o.ChecksumStart), int(o.ChecksumOffset)) {
				continue // inconsistent metadata: the frame is dropped
			}
			c := copy(b, fr)
			if c < n {
				return c, link.ErrTruncated
			}
			return n, nil
		}
		e.segs, e.segIdx, e.segOff = e.segs[:0], 0, 2*e.t.bufLen
		used := e.segOff
		err = vnet.Split(fr, link.EthernetHeaderLen, int(o.GSOSize), e.plain[e.t.bufLen:2*e.t.bufLen], func(s []byte) error {
			if used+len(s) > len(e.plain) {
				return vnet.ErrShortBuffer
			}
			copy(e.plain[used:], s)
			e.segs = append(e.segs, len(s))
			used += len(s)
			return nil
		})
		if err != nil || len(e.segs) == 0 {
			e.segs = e.segs[:0]
			continue
		}
		return e.nextSeg(b)
	}
}

// nextSeg hands out the next segment of a super-segment cut by ReadFrame.
func (e *Endpoint) nextSeg(b []byte) (int, error) {
	l := e.segs[e.segIdx]
	s := e.plain[e.segOff : e.segOff+l]
	e.segOff += l
	e.segIdx++
	if c := copy(b, s); c < l {
		return c, link.ErrTruncated
	}
	return l, nil
}

// ReadFrameOffload reads the next frame for this endpoint, without its
// tag, with its offload metadata in *o (link.OffloadEndpoint).
func (e *Endpoint) ReadFrameOffload(b []byte, o *ip.Offload) (int, error) {
	n, _, err := e.ReadFrameTag(b, o)
	return n, err
}

// ReadFrameTag is ReadFrameOffload that also returns the tag the frame
// came with (its PCP and DEI; the zero Tag for an untagged frame on the
// native endpoint). o may be nil to ignore the metadata, which must then
// be none.
func (e *Endpoint) ReadFrameTag(b []byte, o *ip.Offload) (int, Tag, error) {
	if o != nil {
		*o = ip.Offload{}
	}
	if e.segIdx < len(e.segs) { // left by a plain ReadFrame
		n, err := e.nextSeg(b)
		return n, Tag{}, err
	}
	f, err := e.next()
	if err != nil {
		return 0, Tag{}, err
	}
	n, err := e.copyOut(b, f)
	if o != nil {
		*o = f.o
	}
	tag := f.tag
	e.t.rxPool.Put(f)
	return n, tag, err
}

// next waits for the next frame queued for e.
func (e *Endpoint) next() (*rxFrame, error) {
	select {
	case f := <-e.q:
		return f, nil
	default:
	}
	select {
	case f := <-e.q:
		return f, nil
	case <-e.closed:
		return nil, net.ErrClosed
	case <-e.t.done:
		select { // the frames read before the trunk closed
		case f := <-e.q:
			return f, nil
		default:
			return nil, net.ErrClosed
		}
	}
}

// copyOut copies f into b, without its tag.
func (e *Endpoint) copyOut(b []byte, f *rxFrame) (int, error) {
	fr := f.b[:f.n]
	var n int
	var cut bool
	if f.tagged {
		n, cut = stripTag(b, fr)
	} else {
		n = copy(b, fr)
		cut = n < len(fr)
	}
	if cut {
		return n, link.ErrTruncated
	}
	return n, nil
}

// WriteFrame writes the Ethernet frame b to the trunk with the
// endpoint's tag inserted (untagged from the native endpoint). A frame
// longer than MTU()+link.EthernetHeaderLen is link.ErrFrameTooLarge.
func (e *Endpoint) WriteFrame(b []byte) error { return e.write(b, nil) }

// WriteFrameOffload is WriteFrame with offload metadata *o for the trunk
// (link.OffloadEndpoint); its offsets count from the IP header, which
// the tag does not move.
func (e *Endpoint) WriteFrameOffload(b []byte, o *ip.Offload) error {
	if *o == (ip.Offload{}) {
		return e.write(b, nil)
	}
	return e.write(b, o)
}

// write writes b with metadata o, or none if o is nil (so that a plain
// write does not make its metadata escape).
func (e *Endpoint) write(b []byte, o *ip.Offload) error {
	if e.isClosed() {
		return net.ErrClosed
	}
	if len(b) < link.EthernetHeaderLen {
		return fmt.Errorf("vlan: a %d-byte frame is shorter than an Ethernet header", len(b))
	}
	plain := o == nil
	if (plain || o.GSOType == 0) && len(b) > e.mtu+link.EthernetHeaderLen {
		return link.ErrFrameTooLarge
	}
	if len(b)+TagLen > e.t.bufLen {
		return link.ErrFrameTooLarge
	}
	out := b
	var bp *[]byte
	if !e.native {
		bp = e.t.txPool.Get().(*[]byte)
		out = (*bp)[:insertTag(*bp, b, e.tag)]
	}
	var err error
	switch {
	case plain:
		err = e.t.ep.WriteFrame(out)
	case e.t.oep != nil:
		err = e.t.oep.WriteFrameOffload(out, o)
	default:
		err = fmt.Errorf("%w: the trunk carries no offload metadata", link.ErrOffload)
	}
	if bp != nil {
		e.t.txPool.Put(bp)
	}
	if err != nil {
		e.writeErrors.Add(1)
		return err
	}
	e.framesOut.Add(1)
	e.bytesOut.Add(uint64(len(out)))
	return nil
}

// MTU returns the endpoint's MTU (Config.MTU).
func (e *Endpoint) MTU() int { return e.mtu }

// HardwareAddr returns the trunk's hardware address.
func (e *Endpoint) HardwareAddr() link.MAC { return e.t.ep.HardwareAddr() }

// Offloads returns the trunk's offloads (none if it is not a
// link.OffloadEndpoint).
func (e *Endpoint) Offloads() link.Offloads { return e.t.ofl }

// Counters returns the endpoint's counters.
func (e *Endpoint) Counters() Counters {
	return Counters{
		FramesIn: e.framesIn.Load(), BytesIn: e.bytesIn.Load(),
		FramesOut: e.framesOut.Load(), BytesOut: e.bytesOut.Load(),
		DropQueueFull: e.dropQueueFull.Load(), WriteErrors: e.writeErrors.Load(),
		PriorityTagged: e.priorityTagged.Load(),
	}
}

func (e *Endpoint) isClosed() bool {
	select {
	case <-e.closed:
		return true
	default:
		return false
	}
}

// Close detaches the endpoint from the trunk: frames for its VLAN are
// dropped from now on (counted as of an unknown VID, or untagged), and a
// ReadFrame in progress returns net.ErrClosed. When the last of the
// trunk's sub-endpoints closes, the trunk closes too (a stack closing
// its NICs thus closes the device). It is safe to call more than once.
func (e *Endpoint) Close() error {
	last := false
	e.once.Do(func() {
		close(e.closed)
		t := e.t
		t.mu.Lock()
		if e.native {
			t.native.Store(nil)
		} else {
			t.vlans[e.tag.VID].Store(nil)
		}
		t.open--
		last = t.open == 0
		t.mu.Unlock()
	})
	if last {
		return e.t.Close()
	}
	return nil
}
