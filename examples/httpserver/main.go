// Command httpserver runs Go's net/http server, unchanged, on a ustack
// stack attached to a TAP device. See README.md for the commands to try it.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/netip"
	"os"
	"os/signal"

	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/stack"
)

func main() {
	tap := flag.String("tap", "tap0", "existing TAP device")
	addr := flag.String("addr", "10.0.0.2/24", "ustack's address and prefix length")
	port := flag.Int("port", 80, "TCP port to serve on")
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

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Hello, %s: this page came through ustack.\n", r.RemoteAddr)
	})
	srv := &http.Server{Handler: mux}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		<-sig
		srv.Close()
	}()
	log.Printf("HTTP on %v; Ctrl-C to stop", l.Addr())
	if err := srv.Serve(l); err != http.ErrServerClosed {
		log.Print(err)
	}
}
