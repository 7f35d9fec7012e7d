package pcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// More link types a Reader recognises in captures written by tcpdump and
// libpcap (tcpdump.org link-layer header types). Network unpacks them.
const (
	LinkTypeLinuxSLL  = 113 // LINKTYPE_LINUX_SLL: Linux "cooked" header, tcpdump -i any before libpcap 1.10
	LinkTypeIPv4      = 228 // LINKTYPE_IPV4: bare IPv4 packets
	LinkTypeIPv6      = 229 // LINKTYPE_IPV6: bare IPv6 packets
	LinkTypeLinuxSLL2 = 276 // LINKTYPE_LINUX_SLL2: Linux "cooked" v2 header, tcpdump -i any since libpcap 1.10
)

// MagicNano is the global header magic of a capture with nanosecond
// timestamps (pcap-savefile(5)); Magic is the microsecond one.
const MagicNano = 0xa1b23c4d

// pcapngMagic is the block type of a pcapng Section Header Block, the
// first four bytes of every pcapng file.
const pcapngMagic = 0x0a0d0d0a

// MaxRecordLen is the longest record a Reader accepts: libpcap's
// MAXIMUM_SNAPLEN, the largest snap length tcpdump writes. A record header
// claiming more is an error, so a corrupt file cannot make the Reader
// allocate without bound.
const MaxRecordLen = 262144

// Errors of a Reader. Each is wrapped with the record number or detail.
var (
	// ErrMagic: the file does not start with a libpcap magic number.
	ErrMagic = errors.New("pcap: not a libpcap capture (bad magic number)")
	// ErrPcapng: the file is pcapng, which the Reader does not read.
	ErrPcapng = errors.New("pcap: file is pcapng, not libpcap; convert it with `editcap -F pcap IN OUT` or capture with `tcpdump -w` (which writes libpcap)")
	// ErrVersion: the global header has a major version other than 2.
	ErrVersion = errors.New("pcap: unsupported file format version")
	// ErrTruncated: the file ends inside a header or a record.
	ErrTruncated = errors.New("pcap: file truncated")
	// ErrRecordLength: a record header claims more than MaxRecordLen bytes.
	ErrRecordLength = errors.New("pcap: record length out of range")
)

// Record is one frame read from a capture.
type Record struct {
	// Time is the capture timestamp.
	Time time.Time
	// Data holds the captured bytes. It is valid until the next call to
	// Next; copy it to keep it.
	Data []byte
	// OrigLen is the frame's length on the wire, which exceeds len(Data)
	// when the capture's snap length cut the frame.
	OrigLen int
}

// Reader reads a classic libpcap capture (pcap-savefile(5)): either byte
// order, microsecond or nanosecond timestamps, any link type (LinkType
// reports it; Network unpacks the common ones). pcapng files are rejected
// with ErrPcapng.
type Reader struct {
	r        io.Reader
	order    binary.ByteOrder
	nano     bool
	linkType uint32
	snapLen  uint32
	n        int // records read so far
	hdr      [recordHdrLen]byte
	buf      []byte
}

// NewReader reads the global header from r and returns a Reader positioned
// at the first record.
func NewReader(r io.Reader) (*Reader, error) {
	if r == nil {
		return nil, errors.New("pcap: nil reader")
	}
	var h [globalHdrLen]byte
	if n, err := io.ReadFull(r, h[:]); err != nil {
		if n >= 4 && binary.LittleEndian.Uint32(h[:]) == pcapngMagic {
			return nil, ErrPcapng
		}
		if err == io.EOF {
			return nil, fmt.Errorf("%w: empty file", ErrTruncated)
		}
		return nil, fmt.Errorf("%w: global header of %d bytes, want %d", ErrTruncated, n, globalHdrLen)
	}
	rd := &Reader{r: r}
	switch m := binary.LittleEndian.Uint32(h[:]); m {
	case Magic:
		rd.order = binary.LittleEndian
	case MagicNano:
		rd.order, rd.nano = binary.LittleEndian, true
	case pcapngMagic:
		// The Section Header Block type is a palindrome: same in both orders.
		return nil, ErrPcapng
	default:
		switch binary.BigEndian.Uint32(h[:]) {
		case Magic:
			rd.order = binary.BigEndian
		case MagicNano:
			rd.order, rd.nano = binary.BigEndian, true
		default:
			return nil, fmt.Errorf("%w: %#08x", ErrMagic, m)
		}
	}
	if major := rd.order.Uint16(h[4:]); major != VersionMajor {
		return nil, fmt.Errorf("%w: %d.%d", ErrVersion, major, rd.order.Uint16(h[6:]))
	}
	rd.snapLen = rd.order.Uint32(h[16:])
	// pcap-savefile(5): the upper 16 bits of the link-type field may hold
	// an FCS length and flags; the link type is the lower 16 bits.
	rd.linkType = rd.order.Uint32(h[20:]) & 0xffff
	return rd, nil
}

// LinkType returns the capture's link-layer header type (LinkTypeEthernet,
// LinkTypeRaw, ...).
func (r *Reader) LinkType() uint32 { return r.linkType }

// SnapLen returns the snap length the global header declares.
func (r *Reader) SnapLen() uint32 { return r.snapLen }

// Nanosecond reports whether the capture's timestamps have nanosecond
// resolution.
func (r *Reader) Nanosecond() bool { return r.nano }

// Next returns the next record, or io.EOF after the last one. A file that
// ends inside a record gives an error wrapping ErrTruncated, a record
// longer than MaxRecordLen one wrapping ErrRecordLength; after an error the
// Reader cannot continue.
func (r *Reader) Next() (Record, error) {
	n, err := io.ReadFull(r.r, r.hdr[:])
	if err != nil {
		if err == io.EOF {
			return Record{}, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Record{}, fmt.Errorf("%w: record %d header has %d of %d bytes", ErrTruncated, r.n+1, n, recordHdrLen)
		}
		return Record{}, err
	}
	sec := r.order.Uint32(r.hdr[0:])
	frac := r.order.Uint32(r.hdr[4:])
	incl := r.order.Uint32(r.hdr[8:])
	orig := r.order.Uint32(r.hdr[12:])
	if incl > MaxRecordLen {
		return Record{}, fmt.Errorf("%w: record %d claims %d bytes (at most %d)", ErrRecordLength, r.n+1, incl, MaxRecordLen)
	}
	if cap(r.buf) < int(incl) {
		r.buf = make([]byte, incl)
	}
	data := r.buf[:incl]
	if n, err := io.ReadFull(r.r, data); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
			return Record{}, fmt.Errorf("%w: record %d has %d of %d bytes", ErrTruncated, r.n+1, n, incl)
		}
		return Record{}, err
	}
	r.n++
	var nsec int64
	if r.nano {
		nsec = int64(frac)
	} else {
		nsec = int64(frac) * 1000
	}
	// A fraction of a second of one second or more is malformed but
	// harmless: time.Unix normalises it.
	return Record{
		Time:    time.Unix(int64(sec), nsec).UTC(),
		Data:    data,
		OrigLen: int(max(orig, incl)),
	}, nil
}
