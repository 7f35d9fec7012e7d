package stack

import (
	"encoding/binary"
	"reflect"
	"sync/atomic"

	"golang.org/x/sys/cpu"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
)

// nicQueue is one queue of a NIC: the endpoint its reader goroutine reads
// and that the frames of the flows hashing to it are written to
// (link.MultiQueue; a NIC of one queue has one, its endpoint), with the
// counters of each side in blocks of their own cache lines, so that two
// readers, or a reader and the senders of another queue, never write to
// one cache line. Stats sums them.
type nicQueue struct {
	ep  link.Endpoint
	oep link.OffloadEndpoint // ep when it carries offload metadata, else nil
	// rx is counted in by the queue's reader only; tx by the senders of
	// the flows that hash to the queue.
	rx, tx queueCounters
}

// queueCounters is a block of counters padded to its own cache lines.
type queueCounters struct {
	_ cpu.CacheLinePad
	counters
	_ cpu.CacheLinePad
}

// newQueues returns the queues of ep: one per queue of a
// link.MultiQueue, else ep alone.
func newQueues(ep link.Endpoint) []*nicQueue {
	eps := []link.Endpoint{ep}
	if mq, ok := ep.(link.MultiQueue); ok && mq.NumQueues() >= 1 {
		eps = eps[:0]
		for i := range mq.NumQueues() {
			eps = append(eps, mq.Queue(i))
		}
	}
	qs := make([]*nicQueue, len(eps))
	for i, e := range eps {
		qs[i] = &nicQueue{ep: e}
		if oep, ok := e.(link.OffloadEndpoint); ok {
			qs[i].oep = oep
		}
	}
	return qs
}

// txQueue returns the queue the frame goes out on: the one its flow
// hashes to (flowHash), so that the frames of one flow leave in order
// through one queue, and that the kernel, which steers a flow's frames to
// the queue it last saw the flow written on, hands its frames of the flow
// back on the same queue (link.MultiQueue). Frames that are not IPv4
// (ARP) go out on the first queue.
func (n *nic) txQueue(frame []byte) *nicQueue {
	if len(n.queues) == 1 {
		return n.queues[0]
	}
	pkt := frame
	if n.ethernet() {
		if len(frame) < link.EthernetHeaderLen || binary.BigEndian.Uint16(frame[12:14]) != link.EtherTypeIPv4 {
			return n.queues[0]
		}
		pkt = frame[link.EthernetHeaderLen:]
	}
	return n.queues[flowHash(pkt)%uint32(len(n.queues))]
}

// flowHash hashes the flow of the IPv4 datagram pkt: its addresses and,
// for TCP and UDP when it is not a fragment, its ports. It is symmetric
// (a datagram and its reply hash alike: the two ends are ordered before
// they are mixed), so that a flow has one hash whichever way it is seen.
// A datagram too short for its header hashes to 0.
func flowHash(pkt []byte) uint32 {
	if len(pkt) < ipv4.HeaderLen {
		return 0
	}
	src := uint64(binary.BigEndian.Uint32(pkt[12:16])) << 16
	dst := uint64(binary.BigEndian.Uint32(pkt[16:20])) << 16
	ihl := int(pkt[0]&0x0f) * 4
	frag := binary.BigEndian.Uint16(pkt[6:8]) & 0x3fff // MF and the offset (RFC 791)
	if p := pkt[9]; (p == ip.ProtocolTCP || p == ip.ProtocolUDP) && frag == 0 && ihl >= ipv4.HeaderLen && len(pkt) >= ihl+4 {
		src |= uint64(binary.BigEndian.Uint16(pkt[ihl:]))
		dst |= uint64(binary.BigEndian.Uint16(pkt[ihl+2:]))
	}
	if src > dst {
		src, dst = dst, src
	}
	// A multiply-xorshift mix (splitmix64's finalizer) of the ordered pair.
	h := src*0x9e3779b97f4a7c15 ^ dst
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return uint32(h)
}

// FlowQueue returns the queue that a NIC of queues queues (a
// link.MultiQueue) writes the TCP segments of 4-tuple t on, and so the
// queue the kernel hands the flow's segments back on once it has seen
// one written (link.MultiQueue): a symmetric hash of t, the same for
// t.Reverse(). It is 0 for queues below 2, and for a t that is not IPv4.
func FlowQueue(t ip.Tuple, queues int) int {
	if queues < 2 || !t.Local.Addr().Is4() || !t.Remote.Addr().Is4() {
		return 0
	}
	var pkt [ipv4.HeaderLen + 4]byte
	pkt[0], pkt[9] = 0x45, ip.ProtocolTCP // version 4, IHL 5 (RFC 791)
	l, r := t.Local.Addr().As4(), t.Remote.Addr().As4()
	copy(pkt[12:16], l[:])
	copy(pkt[16:20], r[:])
	binary.BigEndian.PutUint16(pkt[20:], t.Local.Port())
	binary.BigEndian.PutUint16(pkt[22:], t.Remote.Port())
	return int(flowHash(pkt[:]) % uint32(queues))
}

// addCounters adds every counter of src, read atomically, to dst.
func addCounters(dst *Stats, src *counters) {
	addAtomic(reflect.ValueOf(dst).Elem(), reflect.ValueOf(&src.s).Elem())
}

func addAtomic(dst, src reflect.Value) {
	for i := 0; i < src.NumField(); i++ {
		f := src.Field(i)
		switch f.Kind() {
		case reflect.Struct:
			addAtomic(dst.Field(i), f)
		case reflect.Uint64:
			d := dst.Field(i)
			d.SetUint(d.Uint() + atomic.LoadUint64(f.Addr().Interface().(*uint64)))
		}
	}
}
