package pcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Writer writes a libpcap capture record by record, for frames that do not
// pass through an Endpoint (synthetic exchanges, converted captures). Its
// format is the Endpoint's: little-endian, microsecond timestamps, snap
// length SnapLen.
type Writer struct {
	w   io.Writer
	rec []byte
}

// NewWriter writes the global header for linkType (LinkTypeEthernet,
// LinkTypeRaw, ...) to w and returns a Writer appending records to it.
func NewWriter(w io.Writer, linkType uint32) (*Writer, error) {
	if w == nil {
		return nil, errors.New("pcap: nil writer")
	}
	if err := writeGlobalHeader(w, linkType); err != nil {
		return nil, err
	}
	return &Writer{w: w}, nil
}

// WriteRecord appends one frame captured at ts. A frame longer than
// SnapLen is cut to SnapLen bytes and keeps its original length in the
// record header. Times before 1970 or after 2106 are an error.
func (w *Writer) WriteRecord(ts time.Time, frame []byte) error {
	if sec := ts.Unix(); sec < 0 || sec > 0xffffffff {
		return fmt.Errorf("pcap: timestamp %v outside the format's range", ts)
	}
	if uint64(len(frame)) > 0xffffffff {
		return fmt.Errorf("pcap: frame of %d bytes", len(frame))
	}
	n := min(len(frame), SnapLen)
	w.rec = putRecordHeader(w.rec[:0], ts, n, len(frame))
	w.rec = append(w.rec, frame[:n]...)
	_, err := w.w.Write(w.rec)
	return err
}

// writeGlobalHeader writes the 24-byte global header the package writes.
func writeGlobalHeader(w io.Writer, linkType uint32) error {
	var h [globalHdrLen]byte
	binary.LittleEndian.PutUint32(h[0:], Magic)
	binary.LittleEndian.PutUint16(h[4:], VersionMajor)
	binary.LittleEndian.PutUint16(h[6:], VersionMinor)
	// h[8:12] thiszone and h[12:16] sigfigs are zero: timestamps are UTC.
	binary.LittleEndian.PutUint32(h[16:], SnapLen)
	binary.LittleEndian.PutUint32(h[20:], linkType)
	_, err := w.Write(h[:])
	return err
}

// putRecordHeader appends a record header (seconds, microseconds, captured
// and original length) to b.
func putRecordHeader(b []byte, ts time.Time, captured, orig int) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(ts.Unix()))
	b = binary.LittleEndian.AppendUint32(b, uint32(ts.Nanosecond()/1000))
	b = binary.LittleEndian.AppendUint32(b, uint32(captured))
	return binary.LittleEndian.AppendUint32(b, uint32(orig))
}
