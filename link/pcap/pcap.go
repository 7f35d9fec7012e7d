// Package pcap records the traffic of a link.Endpoint in a libpcap capture
// file that tcpdump and Wireshark open.
//
// The file format is the classic libpcap one: a 24-byte global header
// (magic 0xa1b2c3d4, version 2.4, snaplen 65535) followed by one record per
// frame, each a 16-byte record header (seconds, microseconds, captured
// length, original length) and the frame bytes. Multi-byte fields are
// written little-endian; readers detect the byte order from the magic.
// Writer writes records without an Endpoint.
//
// Reader reads such captures back, and those tcpdump writes (either byte
// order, microsecond or nanosecond timestamps); Network unpacks the
// link-layer headers of Ethernet, raw IP and Linux cooked captures.
package pcap

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
)

// Link types of the global header (tcpdump.org link-layer header types).
const (
	LinkTypeEthernet = 1   // LINKTYPE_ETHERNET: IEEE 802.3 Ethernet frames
	LinkTypeRaw      = 101 // LINKTYPE_RAW: bare IPv4 or IPv6 packets
)

// File format constants.
const (
	Magic        = 0xa1b2c3d4 // microsecond-resolution libpcap magic
	VersionMajor = 2
	VersionMinor = 4
	SnapLen      = 65535 // longest frame recorded in full; longer ones are cut
	globalHdrLen = 24
	recordHdrLen = 16
)

// Options configures New.
type Options struct {
	// Now timestamps each record; nil means time.Now.
	Now func() time.Time
}

// Stats counts what an Endpoint recorded.
type Stats struct {
	Records     uint64 // records written to the capture
	WriteErrors uint64 // records lost because the io.Writer failed
}

// Endpoint is a link.Endpoint that passes every call through to the wrapped
// endpoint and appends each frame read or written to a capture. A failure
// to write the capture is counted in Stats, never returned to the caller of
// ReadFrame or WriteFrame.
type Endpoint struct {
	ep  link.Endpoint
	now func() time.Time

	mu  sync.Mutex // serializes writes to w and use of rec
	w   io.Writer
	rec []byte // record header plus up to SnapLen frame bytes

	records     atomic.Uint64
	writeErrors atomic.Uint64
}

var _ link.OffloadEndpoint = (*Endpoint)(nil)

// New writes the capture's global header to w and returns an Endpoint that
// records the traffic of ep into w. The link type is Ethernet for an
// endpoint with a hardware address and raw IP for one without (TUN). The
// caller keeps ownership of w: Close does not close it.
func New(ep link.Endpoint, w io.Writer, opts Options) (*Endpoint, error) {
	if ep == nil || w == nil {
		return nil, errors.New("pcap: nil endpoint or writer")
	}
	linkType := uint32(LinkTypeEthernet)
	if ep.HardwareAddr().IsZero() {
		linkType = LinkTypeRaw
	}
	if err := writeGlobalHeader(w, linkType); err != nil {
		return nil, err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Endpoint{ep: ep, now: now, w: w, rec: make([]byte, recordHdrLen+SnapLen)}, nil
}

// record appends one frame to the capture in a single Write.
func (e *Endpoint) record(frame []byte) {
	ts := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	n := copy(e.rec[recordHdrLen:], frame)
	putRecordHeader(e.rec[:0], ts, n, len(frame))
	if _, err := e.w.Write(e.rec[:recordHdrLen+n]); err != nil {
		e.writeErrors.Add(1)
		return
	}
	e.records.Add(1)
}

// ReadFrame reads a frame from the wrapped endpoint and records it. A
// truncated frame is recorded as far as it was read.
func (e *Endpoint) ReadFrame(b []byte) (int, error) {
	n, err := e.ep.ReadFrame(b)
	if n > 0 && (err == nil || errors.Is(err, link.ErrTruncated)) {
		e.record(b[:n])
	}
	return n, err
}

// WriteFrame writes b to the wrapped endpoint and records it if the write
// succeeded.
func (e *Endpoint) WriteFrame(b []byte) error {
	if err := e.ep.WriteFrame(b); err != nil {
		return err
	}
	e.record(b)
	return nil
}

// Offloads reports the wrapped endpoint's offloads: none unless it is a
// link.OffloadEndpoint.
func (e *Endpoint) Offloads() link.Offloads {
	if oep, ok := e.ep.(link.OffloadEndpoint); ok {
		return oep.Offloads()
	}
	return link.Offloads{}
}

// ReadFrameOffload is ReadFrame with the frame's offload metadata from a
// wrapped link.OffloadEndpoint (none from another). A super-segment is
// recorded as it is read, one large packet, as tcpdump shows a GRO
// packet; a partial checksum is recorded partial.
func (e *Endpoint) ReadFrameOffload(b []byte, o *ip.Offload) (int, error) {
	oep, ok := e.ep.(link.OffloadEndpoint)
	if !ok {
		*o = ip.Offload{}
		return e.ReadFrame(b)
	}
	n, err := oep.ReadFrameOffload(b, o)
	if n > 0 && (err == nil || errors.Is(err, link.ErrTruncated)) {
		e.record(b[:n])
	}
	return n, err
}

// WriteFrameOffload is WriteFrame with offload metadata *o for a wrapped
// link.OffloadEndpoint; to another, metadata is an error (link.ErrOffload)
// unless it is zero. A super-segment is recorded whole, as tcpdump shows
// a TSO packet.
func (e *Endpoint) WriteFrameOffload(b []byte, o *ip.Offload) error {
	oep, ok := e.ep.(link.OffloadEndpoint)
	if !ok {
		if *o != (ip.Offload{}) {
			return fmt.Errorf("%w: %T carries no offload metadata", link.ErrOffload, e.ep)
		}
		return e.WriteFrame(b)
	}
	if err := oep.WriteFrameOffload(b, o); err != nil {
		return err
	}
	e.record(b)
	return nil
}

// MTU returns the wrapped endpoint's MTU.
func (e *Endpoint) MTU() int { return e.ep.MTU() }

// HardwareAddr returns the wrapped endpoint's hardware address.
func (e *Endpoint) HardwareAddr() link.MAC { return e.ep.HardwareAddr() }

// Close closes the wrapped endpoint. It does not close the capture writer.
func (e *Endpoint) Close() error { return e.ep.Close() }

// Stats returns the capture counters.
func (e *Endpoint) Stats() Stats {
	return Stats{Records: e.records.Load(), WriteErrors: e.writeErrors.Load()}
}
