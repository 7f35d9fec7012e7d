package stack_test

import (
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/stack"
)

// Two stacks joined by an in-memory link exchange UDP datagrams: one
// serves the echo protocol (RFC 862) on a socket from ListenUDP, the
// other sends through a connected socket from DialUDP and reads the
// answer.
func ExampleStack_ListenUDP() {
	ea, eb := link.NewPipe(link.PipeOptions{})
	client, server := stack.New(stack.Options{}), stack.New(stack.Options{})
	defer client.Close()
	defer server.Close()
	if _, err := client.AddNIC(ea, netip.MustParsePrefix("10.0.0.1/24")); err != nil {
		log.Fatal(err)
	}
	if _, err := server.AddNIC(eb, netip.MustParsePrefix("10.0.0.2/24")); err != nil {
		log.Fatal(err)
	}

	// The server: port 7 on every address; each datagram goes back to
	// where it came from.
	echo, err := server.ListenUDP(netip.MustParseAddrPort("0.0.0.0:7"))
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := echo.ReadFromUDPAddrPort(buf)
			if err != nil {
				return // closed
			}
			echo.WriteToUDPAddrPort(buf[:n], from)
		}
	}()

	// The client: from an ephemeral port of 10.0.0.1 to the server.
	c, err := client.DialUDP(netip.AddrPort{}, netip.MustParseAddrPort("10.0.0.2:7"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello, ustack")); err != nil {
		log.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s from %v\n", buf[:n], c.RemoteAddr())
	echo.Close()
	// Output: hello, ustack from 10.0.0.2:7
}
