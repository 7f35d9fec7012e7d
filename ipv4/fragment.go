package ipv4

import (
	"encoding/binary"
	"errors"
)

// Errors returned by Fragment.
var (
	// ErrFragmentationNeeded: the datagram is larger than the MTU and has
	// DF set (RFC 791 §3.2: "If the Don't Fragment flag (DF) bit is set,
	// then internet fragmentation of this datagram is NOT permitted"). The
	// caller drops it and, when forwarding, sends ICMP Destination
	// Unreachable, CodeFragmentationNeeded.
	ErrFragmentationNeeded = errors.New("ipv4: fragmentation needed and DF set")
	// ErrMTUTooSmall: the MTU cannot carry the header and 8 bytes of data
	// (RFC 791 §3.2: "Every internet module must be able to forward a
	// datagram of 68 octets without further fragmentation").
	ErrMTUTooSmall = errors.New("ipv4: MTU too small to fragment")
	// ErrScratchTooSmall: the scratch buffer is shorter than the MTU.
	ErrScratchTooSmall = errors.New("ipv4: scratch buffer shorter than MTU")
)

// MinMTU is the smallest MTU every IPv4 link must support (RFC 791 §3.2:
// "a datagram of 68 octets", a 60-byte header and 8 bytes of data).
const MinMTU = 68

// Fragment splits the datagram pkt into fragments of at most mtu bytes and
// passes each to emit, following RFC 791 §3.2, "Fragmentation" (the
// procedure of "An Example Fragmentation Procedure"):
//
//   - the data of every fragment but the last is a multiple of 8 bytes;
//   - the first fragment carries all options; the others carry only the
//     options whose copied flag is set (RFC 791 §3.1, "The copied flag
//     indicates that this option is copied into all fragments on
//     fragmentation"), padded with zeros to a 32-bit boundary;
//   - MF is set on every fragment but the last, which keeps pkt's own MF
//     (pkt may itself be a fragment being fragmented again), and offsets
//     are added to pkt's offset;
//   - each header checksum is recomputed.
//
// If pkt fits in mtu it is passed to emit unchanged. If DF is set and pkt
// does not fit, Fragment returns ErrFragmentationNeeded. pkt must be a valid
// datagram (ParseHeader's errors are returned otherwise).
//
// Each fragment is built in scratch (len(scratch) >= mtu), which is reused:
// emit must copy the fragment if it keeps it. An error from emit stops
// Fragment and is returned. Fragment does not allocate.
func Fragment(pkt []byte, mtu int, scratch []byte, emit func(frag []byte) error) error {
	h, err := ParseHeader(pkt)
	if err != nil {
		return err
	}
	if len(h) <= mtu {
		return emit(h)
	}
	if h.DontFragment() {
		return ErrFragmentationNeeded
	}
	if len(scratch) < mtu {
		return ErrScratchTooSmall
	}
	ihl := h.HeaderLength()
	// Header of the later fragments: the fixed part and the copied options.
	var later [MaxHeaderLen]byte
	copy(later[:], h[:HeaderLen])
	laterLen := HeaderLen + copiedOptions(later[HeaderLen:], h.Options())
	later[offVersionIHL] = Version<<4 | byte(laterLen/4)

	if (mtu-ihl)&^7 < 8 || (mtu-laterLen)&^7 < 8 {
		return ErrMTUTooSmall
	}
	data := h.Payload()
	origOffset := h.FragmentOffset()
	origMF := h.MoreFragments()
	for off := 0; off < len(data) || off == 0; {
		hdr := h[:ihl]
		if off > 0 {
			hdr = later[:laterLen]
		}
		n := len(data) - off
		last := true
		if len(hdr)+n > mtu {
			n = (mtu - len(hdr)) &^ 7 // "the number of 8-octet blocks"
			last = false
		}
		frag := scratch[:len(hdr)+n]
		copy(frag, hdr)
		copy(frag[len(hdr):], data[off:off+n])
		binary.BigEndian.PutUint16(frag[offTotalLength:], uint16(len(frag)))
		setFragment(frag, !last || origMF, origOffset+off)
		setChecksum(frag[:len(hdr)])
		if err := emit(frag); err != nil {
			return err
		}
		off += n
		if last {
			break
		}
	}
	return nil
}

// copiedOptions writes into dst the options of opts whose copied flag is
// set, pads them with zeros (End of Option List) to a multiple of 4 bytes,
// and returns the length written. opts must have passed validOptions.
func copiedOptions(dst, opts []byte) int {
	n := 0
	for i := 0; i < len(opts); {
		t := opts[i]
		if t == optionEOL {
			break
		}
		if t == optionNOP {
			// RFC 791 §3.1, No Operation: "May be copied, introduced, or
			// deleted on fragmentation"; it is dropped here.
			i++
			continue
		}
		l := int(opts[i+1])
		if t&optionCopiedFlag != 0 {
			n += copy(dst[n:], opts[i:i+l])
		}
		i += l
	}
	for n%4 != 0 {
		dst[n] = optionEOL
		n++
	}
	return n
}
