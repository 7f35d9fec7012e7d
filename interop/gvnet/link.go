package gvnet

import (
	"context"
	"net"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/ustack/ustack/link"
)

// Link adapts a Stack's channel endpoint to ustack's link.Endpoint. Its
// hardware address is the zero MAC, so ustack treats it as an L3 link (like
// TUN): every frame is one bare IPv4 packet.
//
// WriteFrame copies the packet into a gVisor packet buffer and injects it
// into the gVisor stack, which processes it before WriteFrame returns.
// ReadFrame blocks until gVisor sends a packet and copies it out. Close
// unblocks ReadFrame; it does not close the gVisor stack.
type Link struct {
	s      *Stack
	ctx    context.Context
	cancel context.CancelFunc
	closed atomic.Bool
}

var _ link.Endpoint = (*Link)(nil)

// NewLink returns a link.Endpoint whose far side is s, which must come
// from New (not NewTAP). Attach only one Link to a Stack: each packet s
// sends is read by one reader.
func NewLink(s *Stack) *Link {
	ctx, cancel := context.WithCancel(context.Background())
	return &Link{s: s, ctx: ctx, cancel: cancel}
}

// ReadFrame blocks until the gVisor stack sends a packet and copies it into
// b. A packet longer than b is truncated and reported with
// link.ErrTruncated. After Close it returns net.ErrClosed.
func (l *Link) ReadFrame(b []byte) (int, error) {
	if l.closed.Load() {
		return 0, net.ErrClosed
	}
	pkt := l.s.ep.ReadContext(l.ctx)
	if pkt == nil { // Close, or the gVisor stack closed its endpoint
		return 0, net.ErrClosed
	}
	n, full := copyPacket(b, pkt)
	pkt.DecRef()
	if !full {
		return n, link.ErrTruncated
	}
	return n, nil
}

// copyPacket copies the whole of pkt (headers and data) into b without
// allocating. It reports whether all of pkt fit.
func copyPacket(b []byte, pkt *stack.PacketBuffer) (n int, full bool) {
	views, off := pkt.AsViewList()
	for v := views.Front(); v != nil; v = v.Next() {
		s := v.AsSlice()
		if off >= len(s) {
			off -= len(s)
			continue
		}
		s = s[off:]
		off = 0
		c := copy(b[n:], s)
		n += c
		if c < len(s) {
			return n, false
		}
	}
	return n, true
}

// WriteFrame injects one IPv4 packet into the gVisor stack. The packet is
// copied; b is not retained.
func (l *Link) WriteFrame(b []byte) error {
	if l.closed.Load() {
		return net.ErrClosed
	}
	if len(b) > l.s.mtu {
		return link.ErrFrameTooLarge
	}
	l.s.inject(buffer.MakeWithData(b))
	return nil
}

// MTU returns the gVisor stack's link MTU.
func (l *Link) MTU() int { return l.s.mtu }

// HardwareAddr returns the zero MAC: the link carries bare IPv4 packets.
func (l *Link) HardwareAddr() link.MAC { return link.MAC{} }

// Close makes ReadFrame and WriteFrame fail with net.ErrClosed and unblocks
// a ReadFrame in progress. The gVisor stack stays open.
func (l *Link) Close() error {
	l.closed.Store(true)
	l.cancel()
	return nil
}
