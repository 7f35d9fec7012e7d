package stack

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
)

// tupleQueue is FlowQueue for the tests.
func tupleQueue(t tcp.Tuple, nq int) int { return FlowQueue(t, nq) }

func TestFlowHash(t *testing.T) {
	tu := tcp.Tuple{Local: netip.MustParseAddrPort("10.1.0.1:40000"), Remote: netip.MustParseAddrPort("10.1.0.2:80")}
	for nq := 2; nq <= 8; nq++ {
		if a, b := tupleQueue(tu, nq), tupleQueue(tu.Reverse(), nq); a != b {
			t.Fatalf("%d queues: %v on queue %d, its reverse on %d: not symmetric", nq, tu, a, b)
		}
	}
	if FlowQueue(tu, 1) != 0 || FlowQueue(tcp.Tuple{Local: netip.MustParseAddrPort("[::1]:1"), Remote: tu.Remote}, 4) != 0 {
		t.Error("FlowQueue of one queue, or of an IPv6 tuple, is not 0")
	}
	// Fragments hash by their addresses only, so that the first (with
	// the ports) and the rest of one datagram go out on one queue.
	var first, later [24]byte
	first[0], first[9], later[0], later[9] = 0x45, ip.ProtocolUDP, 0x45, ip.ProtocolUDP
	for _, p := range [][]byte{first[:], later[:]} {
		copy(p[12:20], []byte{10, 1, 0, 1, 10, 1, 0, 2})
	}
	binary.BigEndian.PutUint16(first[6:], 0x2000) // MF
	binary.BigEndian.PutUint16(first[20:], 5353)
	binary.BigEndian.PutUint16(later[6:], 185) // offset 1480
	if flowHash(first[:]) != flowHash(later[:]) {
		t.Error("the fragments of one datagram hash differently")
	}
	// Ports spread flows: 64 source ports over 2 queues use both.
	var seen [2]int
	for p := range uint16(64) {
		seen[tupleQueue(tcp.Tuple{Local: netip.AddrPortFrom(tu.Local.Addr(), 40000+p), Remote: tu.Remote}, 2)]++
	}
	if seen[0] == 0 || seen[1] == 0 {
		t.Errorf("64 flows over 2 queues: %v", seen)
	}
	for _, short := range [][]byte{nil, first[:19], {0x4f, 0, 0, 24, 0, 0, 0, 0, 64, 6, 0, 0, 10, 1, 0, 1, 10, 1, 0, 2}} {
		flowHash(short) // no panic on short or inconsistent headers
	}
}

// mqEnd is one side of a multi-queue link between two stacks: queue i of
// each side is one link.Pipe, and every frame written is recorded by the
// queue it took.
type mqEnd struct {
	*link.PipeEnd // queue 0, which is the endpoint itself
	qs            []link.Endpoint
	rec           *flowRecord
}

func (m *mqEnd) NumQueues() int            { return len(m.qs) }
func (m *mqEnd) Queue(i int) link.Endpoint { return m.qs[i] }
func (m *mqEnd) Close() error {
	for _, q := range m.qs[1:] {
		q.Close()
	}
	return m.PipeEnd.Close()
}

// mqQueue records the flows written on queue i.
type mqQueue struct {
	*link.PipeEnd
	i   int
	rec *flowRecord
}

func (q *mqQueue) WriteFrame(b []byte) error {
	q.rec.add(b, q.i)
	return q.PipeEnd.WriteFrame(b)
}

// flowRecord maps each TCP flow (by its ordered pair of ends) to the
// queues its frames were written on, by either side.
type flowRecord struct {
	mu    sync.Mutex
	flows map[[2]netip.AddrPort]map[int]int // flow -> queue -> frames
}

func (r *flowRecord) add(f []byte, q int) {
	if len(f) < link.EthernetHeaderLen+40 || binary.BigEndian.Uint16(f[12:14]) != link.EtherTypeIPv4 || f[link.EthernetHeaderLen+9] != ip.ProtocolTCP {
		return
	}
	p := f[link.EthernetHeaderLen:]
	ihl := int(p[0]&0x0f) * 4
	a := netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[12:16])), binary.BigEndian.Uint16(p[ihl:]))
	b := netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[16:20])), binary.BigEndian.Uint16(p[ihl+2:]))
	if a.Compare(b) > 0 {
		a, b = b, a
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := [2]netip.AddrPort{a, b}
	if r.flows[k] == nil {
		r.flows[k] = map[int]int{}
	}
	r.flows[k][q]++
}

// newMQLink returns two ends of nq queues each, recording into rec.
func newMQLink(nq int, rec *flowRecord) (a, b *mqEnd) {
	a, b = &mqEnd{rec: rec}, &mqEnd{rec: rec}
	for i := range nq {
		ea, eb := link.NewPipe(link.PipeOptions{QueueLen: 1024})
		if i == 0 {
			a.PipeEnd, b.PipeEnd = ea, eb
		}
		a.qs = append(a.qs, &mqQueue{PipeEnd: ea, i: i, rec: rec})
		b.qs = append(b.qs, &mqQueue{PipeEnd: eb, i: i, rec: rec})
	}
	return a, b
}

// TestMultiQueueFlowsStayOnOneQueue runs several bulk connections between
// two stacks whose NICs have two queues each (a reader per queue on either
// side): every byte arrives (SHA-256), each flow's frames, both ways,
// took one queue (the symmetric flow hash: a reply leaves on the queue
// its flow came in on), both queues carried flows, and Stats sums the
// queues' counters.
func TestMultiQueueFlowsStayOnOneQueue(t *testing.T) {
	const nq, conns, size = 2, 4, 1 << 20
	rec := &flowRecord{flows: map[[2]netip.AddrPort]map[int]int{}}
	ea, eb := newMQLink(nq, rec)
	a, b := New(Options{}), New(Options{})
	defer a.Close()
	defer b.Close()
	if _, err := a.AddNIC(ea, addrA); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddNIC(eb, addrB); err != nil {
		t.Fatal(err)
	}
	server := netip.AddrPortFrom(addrB.Addr(), 9000)
	l, err := b.ListenTCP(server)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sums := make(chan [32]byte, conns)
	go func() {
		for {
			c, err := l.AcceptTCP()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				h := sha256.New()
				if n, _ := io.Copy(h, c); n == 0 {
					return // a connection closed unused, on a queue already taken
				}
				sums <- [32]byte(h.Sum(nil))
			}()
		}
	}()
	// Dial until the connections cover every queue (each flow's queue is
	// its hash: at most a few tries).
	var cs []*TCPConn
	used := map[int]int{}
	for try := 0; len(cs) < conns || len(used) < nq; try++ {
		if try == 64 {
			t.Fatalf("64 connections hashed to queues %v only", used)
		}
		c := dial(t, a, server)
		q := tupleQueue(tcp.Tuple{Local: addrPort(c.LocalAddr()), Remote: server}, nq)
		if len(cs) >= conns-1 && len(used) < nq && used[q] > 0 {
			c.Close() // its flow is on a queue already used
			continue
		}
		used[q]++
		cs = append(cs, c)
	}
	want := map[[32]byte]int{}
	var wg sync.WaitGroup
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range cs {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		want[sha256.Sum256(data)]++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.Copy(c, bytes.NewReader(data)); err != nil {
				t.Errorf("write: %v", err)
			}
		}()
	}
	wg.Wait()
	for range cs {
		select {
		case s := <-sums:
			if want[s] == 0 {
				t.Errorf("a connection delivered bytes whose SHA-256 %x was not sent", s)
			}
			want[s]--
		case <-time.After(30 * time.Second):
			t.Fatal("a connection did not finish in 30 s")
		}
	}
	rec.mu.Lock()
	for f, qs := range rec.flows {
		if len(qs) != 1 {
			t.Errorf("flow %v took queues %v (frames per queue)", f, qs)
		}
	}
	rec.mu.Unlock()
	for _, s := range []*Stack{a, b} {
		// The queues' counters first, atomically, then the snapshot: a
		// frame still in flight (the closing handshakes, the IPv6
		// link-local address's reports) only makes the snapshot larger.
		var in, out uint64
		for _, n := range s.nicList() {
			for _, q := range n.queues {
				in += q.rx.snapshot().Link.FramesIn
				out += q.tx.snapshot().Link.FramesOut
			}
		}
		st := s.Stats()
		if st.Link.FramesIn == 0 || st.Link.FramesIn < in || st.Link.FramesOut < out {
			t.Errorf("Stats.Link %+v does not sum the queues' %d in, %d out", st.Link, in, out)
		}
		// A full pipe drops frames (and a loaded machine fires timers
		// early): retransmissions are no sign of reordering; the flows'
		// queues above are.
		t.Logf("%d frames in, %d out; %d retransmits, %d D-SACKs sent", st.Link.FramesIn, st.Link.FramesOut, st.TCP.Retransmits, st.TCP.DSACKsSent)
	}
}
