package udp_test

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/ustack/ustack/udp"
)

func Example() {
	src, dst := netip.MustParseAddrPort("192.0.2.1:40000"), netip.MustParseAddrPort("192.0.2.2:7")
	payload := []byte("hello, udp\n")

	// Build: the header, the payload after it, then the checksum over the
	// pseudo-header, header and payload.
	b := make([]byte, udp.HeaderLen+len(payload))
	if err := udp.PutHeader(b, src.Port(), dst.Port(), len(payload)); err != nil {
		panic(err)
	}
	copy(b[udp.HeaderLen:], payload)
	if err := udp.SetChecksum(b, src.Addr(), dst.Addr()); err != nil {
		panic(err)
	}
	fmt.Printf("% x\n", b[:udp.HeaderLen])

	// Parse, as the receiver does: the same bytes verify between the same
	// addresses, and a single flipped bit is a counted drop.
	d, err := udp.Parse(b, src.Addr(), dst.Addr())
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d > %d, length %d: %q\n", d.SourcePort(), d.DestinationPort(), d.Length(), d.Payload())
	b[udp.HeaderLen] ^= 1
	_, err = udp.Parse(b, src.Addr(), dst.Addr())
	fmt.Println(errors.Is(err, udp.ErrChecksum))
	// Output:
	// 9c 40 00 07 00 13 0c 99
	// 40000 > 7, length 19: "hello, udp\n"
	// true
}

func ExampleQueue() {
	// A socket's receive queue: at most 2 datagrams and 1,000 bytes; the
	// metadata kept with each datagram is here its source.
	q, err := udp.NewQueue[netip.AddrPort](2, 1000)
	if err != nil {
		panic(err)
	}
	from := netip.MustParseAddrPort("192.0.2.1:40000")
	for _, msg := range []string{"first datagram", "second", "third: dropped, the queue is full"} {
		q.Push([]byte(msg), from)
	}
	fmt.Println(q.Len(), "queued,", q.Drops(), "dropped")

	// A buffer shorter than the datagram gets its start; the rest is
	// discarded, as recvmsg does with MSG_TRUNC.
	buf := make([]byte, 5)
	n, size, src, _ := q.Pop(buf)
	fmt.Printf("%q from %v (%d of %d bytes)\n", buf[:n], src, n, size)
	n, size, _, _ = q.Pop(buf)
	fmt.Printf("%q (%d of %d bytes)\n", buf[:n], n, size)
	_, _, _, ok := q.Pop(buf)
	fmt.Println(ok)
	// Output:
	// 2 queued, 1 dropped
	// "first" from 192.0.2.1:40000 (5 of 14 bytes)
	// "secon" (5 of 6 bytes)
	// false
}
