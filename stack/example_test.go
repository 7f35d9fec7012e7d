package stack_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
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

// Two stacks joined by an in-memory link speak HTTP: the server's
// net/http serves on a listener from Listen, and the client's
// http.Transport dials with DialContext.
func ExampleStack_DialContext() {
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

	l, err := server.Listen("tcp", ":80")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s", r.URL.Path[1:])
	})}
	go srv.Serve(l)
	defer srv.Close()

	// With Options.Nameservers set, host names work as well.
	tr := &http.Transport{DialContext: client.DialContext}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := hc.Get("http://10.0.0.2/ustack")
	if err != nil {
		log.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status, string(body))
	// Output: 200 OK hello, ustack
}

// The UDP echo exchange with package net's names: the server's socket
// from ListenPacket, the client's from DialContext("udp").
func ExampleStack_ListenPacket() {
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

	pc, err := server.ListenPacket("udp", ":7")
	if err != nil {
		log.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			pc.WriteTo(buf[:n], from)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, "udp", "10.0.0.2:7")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("datagram")); err != nil {
		log.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s from %v via %v\n", buf[:n], c.RemoteAddr(), pc.LocalAddr())
	// Output: datagram from 10.0.0.2:7 via 0.0.0.0:7
}

// Two stacks speak IPv6 over an in-memory link: each NIC gets its
// address after duplicate address detection, finds the other's MAC by
// neighbour discovery, and a [::] listener takes the connection.
func ExampleStack_AddAddress_ipv6() {
	ea, eb := link.NewPipe(link.PipeOptions{})
	opts := stack.Options{DADTransmits: -1} // no duplicate address detection: addresses at once
	client, server := stack.New(opts), stack.New(opts)
	defer client.Close()
	defer server.Close()
	if _, err := client.AddNIC(ea, netip.MustParsePrefix("fd00::1/64")); err != nil {
		log.Fatal(err)
	}
	if _, err := server.AddNIC(eb, netip.MustParsePrefix("10.0.0.2/24")); err != nil {
		log.Fatal(err)
	}
	if err := server.AddAddress(1, netip.MustParsePrefix("fd00::2/64")); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.Ping(ctx, netip.MustParseAddr("fd00::2"), 56); err != nil {
		log.Fatal(err)
	}
	l, err := server.Listen("tcp", "[::]:80")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			fmt.Fprintf(c, "hello %v", c.RemoteAddr())
			c.Close()
		}
	}()
	c, err := client.DialContext(ctx, "tcp6", "[fd00::2]:80")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	b, _ := io.ReadAll(c)
	fmt.Printf("%s, from %v\n", b[:len("hello [fd00::1]")], c.RemoteAddr())
	// Output: hello [fd00::1], from [fd00::2]:80
}
