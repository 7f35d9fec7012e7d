package stack

import (
	"encoding/binary"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vnet"
)

// groBatch is the most frames a reader takes in one ReadFrames, and
// groArena the bytes it reads them into (at least two of the largest
// frames, so that a batch can hold more than one).
const (
	groBatch = 64
	groArena = 256 << 10
)

// readBatches is the reader of the NIC's queue q whose endpoint reads batches: it
// reads the frames waiting, merges the consecutive in-order TCP segments
// (over IPv4 or IPv6) of one flow among them into a super-segment (software GRO,
// vnet.Coalescer: Linux's tcp_gro_receive rules), and delivers the
// batch in order, each super-segment to TCP whole with the number of
// segments it holds (tcp.Conn.InputSegments).
func (n *nic) readBatches(q *nicQueue, br link.BatchReader) {
	st := q.rx.get()
	arena := make([]byte, max(groArena, 2*br.MaxFrameLen()))
	lens := make([]int, groBatch)
	ofl := make([]ip.Offload, groBatch)
	co, _ := vnet.NewCoalescer(make([]byte, 65535))
	var rx rxOffload
	l3 := 0
	if n.ethernet() {
		l3 = link.EthernetHeaderLen
	}
	for {
		k, err := br.ReadFrames(arena, lens, ofl)
		if err != nil {
			if n.readFailed(err) {
				return
			}
			continue
		}
		off := 0
		for i := range k {
			f := arena[off : off+lens[i]]
			off += lens[i]
			inc(&st.Link.FramesIn)
			add(&st.Link.BytesIn, uint64(len(f)))
			o := &ofl[i]
			// A segment joins or starts a super-segment only if another
			// can follow it: one alone in its batch, or too large for a
			// second to fit beside it, is delivered without the copy.
			join := co.Len() > 0 || (i+1 < k && 2*(len(f)-l3) <= 65535)
			if join && o.GSOType == 0 && n.coalescable(f) {
				if o.NeedsChecksum {
					if !vnet.CompleteChecksum(f[l3:], int(o.ChecksumStart), int(o.ChecksumOffset)) {
						inc(&st.Link.DropBadOffload)
						continue
					}
					inc(&st.Link.ChecksumsCompleted)
				}
				if co.Add(f[l3:]) {
					continue
				}
				n.flushGRO(co)
				if co.Add(f[l3:]) {
					continue
				}
				n.deliver(f) // not coalescable after all (a SYN, a bad checksum)
				continue
			}
			n.flushGRO(co)
			if *o != (ip.Offload{}) {
				rx.deliver(n, f, o)
			} else {
				n.deliver(f)
			}
		}
		n.flushGRO(co)
	}
}

// coalescable reports whether f may join a super-segment: a unicast TCP
// datagram to this NIC, over IPv4 or IPv6 with TCP right after the fixed
// header (broadcasts, multicasts, ARP and NDP are delivered as they are).
// The Coalescer checks the rest.
func (n *nic) coalescable(f []byte) bool {
	if n.ethernet() {
		if len(f) < link.EthernetHeaderLen || link.MAC(f[0:6]) != n.mac {
			return false
		}
		switch binary.BigEndian.Uint16(f[12:]) {
		case link.EtherTypeIPv4, link.EtherTypeIPv6:
		default:
			return false
		}
		f = f[link.EthernetHeaderLen:]
	}
	switch {
	case len(f) >= 20 && f[0]>>4 == 4:
		return f[9] == ip.ProtocolTCP
	case len(f) >= ipv6.HeaderLen && f[0]>>4 == 6:
		return f[6] == ip.ProtocolTCP
	}
	return false
}

// flushGRO delivers what co holds: a segment as it is, several as a
// super-segment with their count.
func (n *nic) flushGRO(co *vnet.Coalescer) {
	pkt, o, segs := co.Flush()
	if segs == 0 {
		return
	}
	op := &o
	if segs > 1 {
		inc(&n.s.ctr.get().Link.SegmentsCoalesced)
	} else {
		op = nil
	}
	if pkt[0]>>4 == 6 {
		n.deliverIPv6(pkt, false, op)
		return
	}
	n.deliverIPv4Offload(pkt, false, op)
}
