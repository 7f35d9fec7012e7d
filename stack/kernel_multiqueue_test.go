package stack

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
)

// readRecord notes, for each TCP flow read from a multi-queue device, the
// queues its frames came on, and the data segments that did not start
// where the flow's previous one ended: gaps, that start past it (a frame
// lost or overtaken), and repeats, that start before it (the kernel's
// retransmissions: tail loss probes, spurious or not). The
// frames the kernel sends of a flow before it has seen the flow written on
// a queue (the SYN, and the handshake's ACK, which the kernel sends while
// it processes the SYN-ACK, before the device's tun_flow_update notes
// its queue) go on the queue of the kernel's own hash; they are counted
// apart, in early.
type readRecord struct {
	mu      sync.Mutex
	queues  map[tcp.Tuple]map[int]int // flow (from our side) -> queue -> frames after the handshake
	early   map[tcp.Tuple][]int       // the queues of the SYN and the first ACK, if it carried no data
	next    map[tcp.Tuple]uint32      // the flow's next sequence number
	gaps    int
	repeats int
}

func (r *readRecord) add(f []byte, q int) {
	if len(f) < link.EthernetHeaderLen+40 || binary.BigEndian.Uint16(f[12:14]) != link.EtherTypeIPv4 || f[link.EthernetHeaderLen+9] != ip.ProtocolTCP {
		return
	}
	p := f[link.EthernetHeaderLen:]
	ihl := int(p[0]&0x0f) * 4
	if len(p) < ihl+20 {
		return
	}
	seg := p[ihl:]
	t := tcp.Tuple{
		Local:  netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[16:20])), binary.BigEndian.Uint16(seg[2:])),
		Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[12:16])), binary.BigEndian.Uint16(seg[0:])),
	}
	flags := seg[13]
	seq := binary.BigEndian.Uint32(seg[4:])
	payload := int(binary.BigEndian.Uint16(p[2:4])) - ihl - int(seg[12]>>4)*4
	r.mu.Lock()
	defer r.mu.Unlock()
	if flags&0x02 != 0 { // SYN
		r.next[t] = seq + 1
		r.early[t] = append(r.early[t], q)
		return
	}
	if r.queues[t] == nil {
		if len(r.early[t]) == 1 && payload == 0 { // the handshake's ACK
			r.early[t] = append(r.early[t], q)
			r.queues[t] = map[int]int{}
			return
		}
		r.queues[t] = map[int]int{}
	}
	r.queues[t][q]++
	if payload > 0 {
		end := seq + uint32(payload)
		n, ok := r.next[t]
		switch d := int32(seq - n); {
		case !ok || d == 0:
			r.next[t] = end
		case d > 0:
			r.gaps++
			r.next[t] = end
		case int32(end-n) > 0:
			r.repeats++ // overlaps the end of what came
			r.next[t] = end
		default:
			r.repeats++
		}
	}
}

// recQueue is a queue of a TAP device whose reads are recorded.
type recQueue struct {
	*link.TAP
	i   int
	rec *readRecord
}

func (q *recQueue) ReadFrame(b []byte) (int, error) {
	n, err := q.TAP.ReadFrame(b)
	if err == nil {
		q.rec.add(b[:n], q.i)
	}
	return n, err
}

func (q *recQueue) ReadFrameOffload(b []byte, o *ip.Offload) (int, error) {
	n, err := q.TAP.ReadFrameOffload(b, o)
	if err == nil {
		q.rec.add(b[:n], q.i)
	}
	return n, err
}

func (q *recQueue) ReadFrames(buf []byte, lens []int, ofl []ip.Offload) (int, error) {
	n, err := q.TAP.ReadFrames(buf, lens, ofl)
	off := 0
	for i := range n {
		q.rec.add(buf[off:off+lens[i]], q.i)
		off += lens[i]
	}
	return n, err
}

// recTAP is a multi-queue TAP device whose queues are recQueues.
type recTAP struct {
	*link.TAP
	qs []link.Endpoint
}

func (r *recTAP) NumQueues() int            { return len(r.qs) }
func (r *recTAP) Queue(i int) link.Endpoint { return r.qs[i] }

// TestKernelMultiQueue: over a TAP device of two queues, each read by its
// own reader, kernel TCP clients' data comes back intact (SHA-256) through
// ustack's echo service on several connections at once; every frame of a
// flow after its handshake came on one queue (so none can overtake
// another through a second queue), the queue ustack writes the flow on, as
// the kernel steers a flow to the queue it last saw it written on; both
// queues carried flows; and any gap in a flow's data (a segment that
// starts past the end of what came) is explained by a frame the kernel
// dropped (its TAP's tx_dropped: the queue's ring was full), not by a
// reordering.
// The same run over one queue is the baseline of its counters.
func TestKernelMultiQueue(t *testing.T) {
	for _, nq := range []int{1, 2} {
		t.Run(fmt.Sprintf("Queues%d", nq), func(t *testing.T) { testKernelMultiQueue(t, nq) })
	}
}

func testKernelMultiQueue(t *testing.T, nq int) {
	leakcheck.Check(t)
	const conns, size = 4, 8 << 20
	ns := netns.NewT(t)
	var tap *link.TAP
	if err := ns.Do(func() (err error) {
		tap, err = link.OpenTAP("ustap0", link.TAPOptions{Queues: nq})
		return err
	}); err != nil {
		t.Fatalf("open a TAP of %d queues in %s: %v", nq, ns.Name(), err)
	}
	for _, c := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "set", "ustap0", "up"},
		{"ip", "addr", "add", kernelAddr.String(), "dev", "ustap0"},
	} {
		if _, err := ns.Run(c...); err != nil {
			tap.Close()
			t.Fatal(err)
		}
	}
	if got := tap.NumQueues(); got != nq {
		tap.Close()
		t.Fatalf("%d queues, want %d", got, nq)
	}
	rec := &readRecord{queues: map[tcp.Tuple]map[int]int{}, early: map[tcp.Tuple][]int{}, next: map[tcp.Tuple]uint32{}}
	ep := &recTAP{TAP: tap}
	for i, q := range tap.Queues() {
		ep.qs = append(ep.qs, &recQueue{TAP: q, i: i, rec: rec})
	}
	k := &kernelNet{ns: ns, tap: tap, s: New(Options{})}
	t.Cleanup(func() { k.s.Close() })
	if _, err := k.s.AddNIC(ep, stackAddr); err != nil {
		t.Fatal(err)
	}
	l, err := k.s.ListenTCP(netip.AddrPortFrom(netip.IPv4Unspecified(), 7))
	if err != nil {
		t.Fatal(err)
	}
	wait := echoServer(l)
	t.Cleanup(func() { l.Close(); wait() })
	// Dial until the connections cover both queues.
	var cs []net.Conn
	used := map[int]bool{}
	for try := 0; len(cs) < conns || len(used) < nq; try++ {
		if try == 64 {
			t.Fatalf("64 connections on queues %v only", used)
		}
		c, err := k.kernelDial(t, netip.AddrPortFrom(stackAddr.Addr(), 7))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		q := tupleQueue(tcp.Tuple{Local: netip.AddrPortFrom(stackAddr.Addr(), 7), Remote: c.LocalAddr().(*net.TCPAddr).AddrPort()}, nq)
		if len(cs) >= conns-1 && len(used) < nq && used[q] {
			continue // held open but idle: its flow's queue is used already
		}
		used[q] = true
		cs = append(cs, c)
	}
	errc := make(chan error, len(cs))
	for i, c := range cs {
		go func() { errc <- exchange(c, size, byte(10+i)) }()
	}
	for range cs {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	out, err := ns.Run("cat", "/sys/class/net/ustap0/statistics/tx_dropped")
	if err != nil {
		t.Fatal(err)
	}
	var dropped int
	fmt.Sscan(string(out), &dropped)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	moved, strays := 0, 0
	var strayFlows []string
	for _, c := range cs {
		tu := tcp.Tuple{Local: netip.AddrPortFrom(stackAddr.Addr(), 7), Remote: c.LocalAddr().(*net.TCPAddr).AddrPort()}
		qs := rec.queues[tu]
		want := tupleQueue(tu, nq)
		if qs[want] == 0 {
			t.Errorf("flow %v: frames read per queue after the handshake %v, want all on queue %d (its hash)", tu, qs, want)
		}
		for q, n := range qs {
			if q != want {
				strays += n
				strayFlows = append(strayFlows, fmt.Sprintf("%v %v", tu, qs))
			}
		}
		for _, q := range rec.early[tu] {
			if q != want {
				moved++
			}
		}
	}
	st := k.s.Stats()
	t.Logf("%d connections of %d MiB each way: frames in %d (super-segments %d), out %d; handshake frames on another queue than the flow's %d; "+
		"data segments past a gap %d, repeated %d, kernel drops %d; TCP out-of-order drops %d, D-SACKs sent %d, retransmits %d",
		len(cs), size>>20, st.Link.FramesIn, st.Link.SuperSegmentsIn, st.Link.FramesOut, moved,
		rec.gaps, rec.repeats, dropped, st.TCP.DroppedOutOfOrder, st.TCP.DSACKsSent, st.TCP.Retransmits)
	// A frame of a flow read on another queue than its hash is a fault,
	// but for one case that is the kernel's own: when its retransmission
	// timer fires, Linux picks the socket a new hash (sk_rethink_txhash),
	// and the device may steer a frame by it before our next write of the
	// flow pins the flow again (seen under the load of a full CI run, as
	// one frame after a few kernel retransmissions). So strays are
	// allowed up to the kernel's repeated segments, and logged.
	if strays > rec.repeats {
		t.Errorf("%d frames read on another queue than their flow's hash, with %d kernel retransmissions: %v", strays, rec.repeats, strayFlows)
	} else if strays > 0 {
		t.Logf("%d frames read on another queue after %d kernel retransmissions (the kernel rehashes a socket on a timeout): %v", strays, rec.repeats, strayFlows)
	}
	if rec.gaps > 0 && dropped == 0 {
		t.Errorf("%d data segments arrived past a gap and the kernel dropped none: reordered", rec.gaps)
	}
}
