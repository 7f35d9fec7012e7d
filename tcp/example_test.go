package tcp_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/ustack/ustack/tcp"
)

// queue is a minimal Output: it keeps each segment for the other side.
type queue struct{ segs [][]byte }

func (q *queue) Buffer(n int) ([]byte, int) { return make([]byte, n), 0 }

func (q *queue) Send(t tcp.Tuple, buf []byte, off int) { q.segs = append(q.segs, buf[off:]) }

// deliver hands every queued segment to c.
func (q *queue) deliver(now time.Time, from tcp.Tuple, c *tcp.Conn, back tcp.Output) {
	for len(q.segs) > 0 {
		b := q.segs[0]
		q.segs = q.segs[1:]
		seg, err := tcp.ParseSegment(b, from.Local.Addr(), from.Remote.Addr())
		if err != nil {
			panic(err)
		}
		c.Input(now, seg, back)
	}
}

// Example connects a client Conn to a server Listener, sends a message and
// closes, moving segments by hand at a virtual time.
func Example() {
	cfg := tcp.DefaultConfig()
	client := tcp.Tuple{
		Local:  netip.MustParseAddrPort("10.0.0.1:40000"),
		Remote: netip.MustParseAddrPort("10.0.0.2:80"),
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var toServer, toClient queue

	l := tcp.NewListener(&cfg, client.Remote, 16)
	c := tcp.Dial(&cfg, client, 1000, 1460, now, &toServer)

	// The SYN reaches the listener, which answers it from a half-open
	// entry; the final ACK creates the server side, on the accept queue.
	toListener := func() *tcp.Conn {
		var s *tcp.Conn
		for _, b := range toServer.segs {
			seg, _ := tcp.ParseSegment(b, client.Local.Addr(), client.Remote.Addr())
			if c := l.Input(now, client.Reverse(), seg, 5000, 1460, &toClient); c != nil {
				s = c
			}
		}
		toServer.segs = nil
		return s
	}
	toListener()                                          // SYN
	toClient.deliver(now, client.Reverse(), c, &toServer) // SYN,ACK
	s := toListener()                                     // ACK
	fmt.Println(c.State(), l.Accept() == s)

	c.Write(now, []byte("hello"), &toServer)
	c.CloseWrite(now, &toServer)
	toServer.deliver(now, client, s, &toClient)
	buf := make([]byte, 16)
	n, _ := s.Read(now, buf, &toClient)
	_, err := s.Read(now, buf, &toClient)
	fmt.Printf("%q %v %v\n", buf[:n], err, s.State())

	s.Close(now, &toClient)
	toClient.deliver(now, client.Reverse(), c, &toServer)
	toServer.deliver(now, client, s, &toClient)
	fmt.Println(c.State(), s.State())
	fmt.Println(c.NextDeadline().Sub(now)) // TIME-WAIT lasts 2*MSL
	// Output:
	// ESTABLISHED true
	// "hello" EOF CLOSE-WAIT
	// TIME-WAIT CLOSED
	// 1m0s
}

// gsoQueue is a queue whose link can segment: it keeps super-segments
// whole, with the number of segments each holds, as a device with TSO on
// one side and GRO on the other would hand them over.
type gsoQueue struct {
	queue
	segs []int
}

func (q *gsoQueue) Send(t tcp.Tuple, buf []byte, off int) {
	q.queue.Send(t, buf, off)
	q.segs = append(q.segs, 1)
}

func (q *gsoQueue) SendGSO(t tcp.Tuple, buf []byte, off, gsoSize int) {
	q.queue.Send(t, buf, off)
	payload := len(buf[off:]) - int(buf[off+12]>>4)*4
	q.segs = append(q.segs, (payload+gsoSize-1)/gsoSize)
}

// ExampleConn_SetGSOMaxSize sends 64 KiB with GSO: the initial window
// (ten segments, RFC 6928) goes as one super-segment of ten SendMSS
// pieces, which the receiver takes whole with InputSegments (checksums
// left partial, trusted as a device's NEEDS_CSUM would be).
func ExampleConn_SetGSOMaxSize() {
	cfg := tcp.DefaultConfig()
	client := tcp.Tuple{
		Local:  netip.MustParseAddrPort("10.0.0.1:40000"),
		Remote: netip.MustParseAddrPort("10.0.0.2:80"),
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var toServer gsoQueue
	var toClient queue
	l := tcp.NewListener(&cfg, client.Remote, 16)
	c := tcp.Dial(&cfg, client, 1000, 1460, now, &toServer)
	seg, _ := tcp.ParseSegment(toServer.queue.segs[0], client.Local.Addr(), client.Remote.Addr())
	l.Input(now, client.Reverse(), seg, 5000, 1460, &toClient) // SYN
	toClient.deliver(now, client.Reverse(), c, &toServer)      // SYN,ACK
	seg, _ = tcp.ParseSegment(toServer.queue.segs[1], client.Local.Addr(), client.Remote.Addr())
	s := l.Input(now, client.Reverse(), seg, 5000, 1460, &toClient) // ACK
	toServer.queue.segs, toServer.segs = nil, nil

	c.SetGSOMaxSize(65535)
	c.Write(now, make([]byte, 64<<10), &toServer)
	for i, b := range toServer.queue.segs {
		seg, _ := tcp.ParseSegmentVerified(b, client.Local.Addr(), client.Remote.Addr())
		fmt.Printf("%d bytes in %d segments of %d\n", len(seg.Payload()), toServer.segs[i], c.SendMSS())
		s.InputSegments(now, seg, toServer.segs[i], &toClient)
	}
	fmt.Println(len(toClient.segs), "ACK")
	// Output:
	// 14480 bytes in 10 segments of 1448
	// 1 ACK
}
