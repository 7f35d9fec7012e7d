package link

import (
	"net"

	"github.com/ustack/ustack/ip"
)

// BatchReader is an OffloadEndpoint that reads the frames already waiting
// in one call, so that a reader can coalesce the consecutive segments of
// a flow (software GRO) before its transport sees them.
type BatchReader interface {
	OffloadEndpoint
	// ReadFrames blocks until a frame arrives, then reads it and the
	// frames ready after it, back to back into buf: frame i is
	// buf[off:off+lens[i]], off the sum of the lengths before it, with
	// metadata ofl[i]. It reads at most min(len(lens), len(ofl))
	// frames, and only frames that fit whole in what is left of buf (a
	// device, which cannot tell a frame's length before reading it, reads
	// another only while MaxFrameLen bytes are left); it returns how many
	// it read. Give it a buf of at least MaxFrameLen bytes.
	ReadFrames(buf []byte, lens []int, ofl []ip.Offload) (int, error)
	// MaxFrameLen is the longest frame ReadFrames may return: the MTU
	// or, with GRO, the largest super-segment, plus the link header.
	MaxFrameLen() int
}

var _ BatchReader = (*PipeEnd)(nil)

// MaxFrameLen implements BatchReader.
func (p *PipeEnd) MaxFrameLen() int { return p.rx.slotSize }

// ReadFrames implements BatchReader: the frames queued for this end, as
// many as fit.
func (p *PipeEnd) ReadFrames(buf []byte, lens []int, ofl []ip.Offload) (int, error) {
	n := min(len(lens), len(ofl))
	if n == 0 {
		return 0, nil
	}
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
	got, off := 0, 0
	for got < n && q.n > 0 && len(buf)-off >= q.lens[q.head] {
		l := copy(buf[off:], q.slot(q.head)[:q.lens[q.head]])
		lens[got], ofl[got] = l, q.meta[q.head]
		off += l
		got++
		q.head++
		if q.head == len(q.lens) {
			q.head = 0
		}
		q.n--
	}
	q.mu.Unlock()
	if got == 0 {
		return 0, ErrTruncated // buf cannot hold the next frame
	}
	p.rxFrames.Add(uint64(got))
	return got, nil
}
