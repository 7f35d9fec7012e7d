// Command echo serves the echo protocol (RFC 862) on a ustack stack
// attached to a TAP device: every byte a client sends comes back, many
// clients at once. See README.md for the commands to try it.
package main

import (
	"flag"
	"io"
	"log"
	"net/netip"
	"os"
	"os/signal"

	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/stack"
)

func main() {
	tap := flag.String("tap", "tap0", "existing TAP device")
	addr := flag.String("addr", "10.0.0.2/24", "ustack's address and prefix length")
	port := flag.Int("port", 7, "TCP port to serve on")
	flag.Parse()

	prefix, err := netip.ParsePrefix(*addr)
	if err != nil {
		log.Fatalf("-addr: %v", err)
	}
	ep, err := link.OpenTAP(*tap, link.TAPOptions{})
	if err != nil {
		log.Fatalf("open TAP %s: %v", *tap, err)
	}
	s := stack.New(stack.Options{})
	defer s.Close()
	if _, err := s.AddNIC(ep, prefix); err != nil {
		log.Fatal(err)
	}
	l, err := s.ListenTCP(netip.AddrPortFrom(prefix.Addr(), uint16(*port)))
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("echo on %v, MAC %v; Ctrl-C to stop", l.Addr(), ep.HardwareAddr())

	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		<-sig
		l.Close() // Accept returns, main returns, the deferred Close ends the stack
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			n, _ := io.Copy(c, c)
			log.Printf("%v: echoed %d bytes", c.RemoteAddr(), n)
		}()
	}
}
