package link

import (
	"errors"
	"fmt"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link/vnet"
)

// Offloads is what a device does to frames for the stack (a TAP or TUN
// device opened with IFF_VNET_HDR and TUNSETOFFLOAD, a Pipe configured so):
// the capabilities, once per endpoint; what one frame needs travels
// beside it as an ip.Offload. The zero value is a device without
// offloads.
type Offloads struct {
	// TxChecksum: frames written may carry a partial transport checksum
	// (ip.Offload.NeedsChecksum) for the device to complete.
	TxChecksum bool
	// RxChecksum: frames read may come with ip.Offload.DataValid (the
	// checksum was verified) or NeedsChecksum (it is partial, as for a
	// packet the host made itself: Linux's CHECKSUM_PARTIAL).
	RxChecksum bool
	// TSO4, TSO6 and USO: frames written may be TCP/IPv4, TCP/IPv6 or
	// UDP super-segments (ip.Offload.GSOType and GSOSize) for the device
	// to segment.
	TSO4, TSO6, USO bool
	// GRO: frames read may be super-segments holding several segments of
	// one flow, with their GSOType and GSOSize (the kernel's TSO towards
	// the device, or its GRO).
	GRO bool
	// MaxGSOSize is the largest super-segment, in bytes of IP datagram,
	// that may be written or read; 0 when neither TSO nor GRO is on.
	MaxGSOSize int
}

// OffloadEndpoint is an Endpoint whose frames can carry offload metadata.
// Its ReadFrame and WriteFrame still exchange plain frames: a plain reader
// gets complete checksums and a super-segment cut into segments, at the
// cost of doing in software what the metadata would have let it skip.
type OffloadEndpoint interface {
	Endpoint
	// Offloads reports what the device does.
	Offloads() Offloads
	// ReadFrameOffload is ReadFrame that also returns the frame's
	// metadata in *o. With GRO the frame may be longer than the MTU, up
	// to MaxGSOSize plus the link header; give it a buffer that large.
	ReadFrameOffload(b []byte, o *ip.Offload) (int, error)
	// WriteFrameOffload is WriteFrame with metadata *o for the device:
	// a partial checksum to complete, a super-segment to cut. Metadata
	// the device cannot act on is an error naming it (ErrOffload).
	WriteFrameOffload(b []byte, o *ip.Offload) error
}

// ErrOffload is returned by WriteFrameOffload for metadata the endpoint
// does not offer: a GSO type it does not segment, a partial checksum it
// does not complete, offsets outside the frame.
var ErrOffload = errors.New("link: offload not supported")

// checkTx checks o against what ofl offers, for a frame of n bytes whose
// IP header starts at l3, and returns an error naming the fault.
func (ofl Offloads) checkTx(o *ip.Offload, n, l3 int) error {
	if o.NeedsChecksum {
		if !ofl.TxChecksum {
			return fmt.Errorf("%w: partial checksum", ErrOffload)
		}
		if l3+int(o.ChecksumStart)+int(o.ChecksumOffset)+2 > n {
			return fmt.Errorf("%w: checksum offsets %d+%d beyond a %d-byte frame", ErrOffload, o.ChecksumStart, o.ChecksumOffset, n)
		}
	}
	switch o.GSOType &^ vnet.GSOECN {
	case vnet.GSONone:
		return nil
	case vnet.GSOTCPv4:
		if !ofl.TSO4 {
			return fmt.Errorf("%w: TSO over IPv4", ErrOffload)
		}
	case vnet.GSOTCPv6:
		if !ofl.TSO6 {
			return fmt.Errorf("%w: TSO over IPv6", ErrOffload)
		}
	case vnet.GSOUDPL4:
		if !ofl.USO {
			return fmt.Errorf("%w: UDP segmentation", ErrOffload)
		}
	default:
		return fmt.Errorf("%w: GSO type %#x", ErrOffload, o.GSOType)
	}
	if o.GSOSize == 0 {
		return fmt.Errorf("%w: GSO size 0", ErrOffload)
	}
	if n-l3 > ofl.MaxGSOSize {
		return fmt.Errorf("%w: a %d-byte super-segment beyond MaxGSOSize %d", ErrOffload, n-l3, ofl.MaxGSOSize)
	}
	return nil
}

// plainer turns frames with metadata into plain frames for a reader that
// takes no metadata (an OffloadEndpoint's ReadFrame): it completes a
// partial checksum and cuts a TCP super-segment into segments, which
// it hands out one per Next. Its buffer is reused: a frame returned by
// Next is valid until the following Put or Next.
type plainer struct {
	buf  []byte // the segments, back to back
	lens []int  // their lengths
	next int    // index of the next segment to hand out
	off  int    // its offset in buf
}

// put takes the frame f with metadata o (IP header at l3) and reports
// whether f is now plain as it is (true) or was cut into segments for
// next (false). A frame whose metadata does not fit it is reported with
// an error, to be dropped.
func (p *plainer) put(f []byte, o *ip.Offload, l3 int) (bool, error) {
	gso := o.GSOType &^ vnet.GSOECN
	if gso == vnet.GSONone {
		if o.NeedsChecksum && !vnet.CompleteChecksum(f[l3:], int(o.ChecksumStart), int(o.ChecksumOffset)) {
			return false, vnet.ErrChecksumOffset
		}
		return true, nil
	}
	if gso != vnet.GSOTCPv4 && gso != vnet.GSOTCPv6 && gso != vnet.GSOUDPL4 {
		return false, vnet.ErrGSOType
	}
	if p.buf == nil {
		// Split's scratch, then the segments: the payload once and the
		// headers of each, at most 2 of its bytes per payload byte.
		p.buf = make([]byte, 3*maxDeviceFrame)
	}
	p.lens, p.next = p.lens[:0], 0
	p.off = maxDeviceFrame
	used := p.off
	err := vnet.Split(f, l3, int(o.GSOSize), p.buf[:maxDeviceFrame], func(seg []byte) error {
		if used+len(seg) > len(p.buf) {
			return vnet.ErrShortBuffer
		}
		copy(p.buf[used:], seg)
		p.lens = append(p.lens, len(seg))
		used += len(seg)
		return nil
	})
	if err != nil {
		p.lens = p.lens[:0]
		return false, err
	}
	return false, nil
}

// pending reports whether segments are waiting for next.
func (p *plainer) pending() bool { return p.next < len(p.lens) }

// nextSeg copies the next segment into b and returns its length.
func (p *plainer) nextSeg(b []byte) (int, error) {
	seg := p.buf[p.off : p.off+p.lens[p.next]]
	p.off += p.lens[p.next]
	p.next++
	if n := copy(b, seg); n < len(seg) {
		return n, ErrTruncated
	}
	return len(seg), nil
}
