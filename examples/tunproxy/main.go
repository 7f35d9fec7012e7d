// Command tunproxy is a transparent proxy on a ustack stack attached to a
// TUN device: every TCP connection and UDP flow that enters the device,
// to whatever address, is relayed through the host's own sockets (the
// "direct" mode of tun2socks). See README.md for the commands to try it.
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"os/signal"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/stack"
)

func main() {
	tun := flag.String("tun", "tun0", "TUN device (created if missing)")
	addr := flag.String("addr", "10.255.255.1/24", "ustack's own address on the device")
	flag.Parse()

	prefix, err := netip.ParsePrefix(*addr)
	if err != nil {
		log.Fatalf("-addr: %v", err)
	}
	ep, err := link.OpenTUN(*tun, link.TUNOptions{})
	if err != nil {
		log.Fatalf("open TUN %s: %v", *tun, err)
	}
	s := stack.New(stack.Options{})
	defer s.Close()
	id, err := s.AddNIC(ep, prefix)
	if err != nil {
		log.Fatal(err)
	}
	// Clients behind the device may have any address: answer them all
	// through it.
	if err := s.AddRoute(ip.Route{Destination: netip.MustParsePrefix("0.0.0.0/0"), NIC: int(id)}); err != nil {
		log.Fatal(err)
	}
	err = s.SetForwarder(id, &stack.Forwarder{
		TCP: func(r *stack.TCPForwardRequest) {
			// Dial first: the client's SYN is answered only if the
			// destination answered ours.
			up, err := net.Dial("tcp4", r.LocalAddr().String())
			if err != nil {
				r.Refuse(stack.RefuseReset)
				return
			}
			down, err := r.Accept()
			if err != nil {
				up.Close()
				return
			}
			log.Printf("tcp %v -> %v", down.RemoteAddr(), down.LocalAddr())
			done := make(chan struct{})
			go func() {
				io.Copy(up, down)
				up.(*net.TCPConn).CloseWrite() // pass the client's FIN on
				close(done)
			}()
			io.Copy(down, up)
			down.CloseWrite() // and the server's back
			<-done
			up.Close()
			down.Close()
		},
		UDP: func(f *stack.UDPFlow) {
			up, err := net.Dial("udp4", f.LocalAddr().String())
			if err != nil {
				f.Close()
				return
			}
			log.Printf("udp %v -> %v", f.RemoteAddr(), f.LocalAddr())
			go func() {
				buf := make([]byte, 65535)
				for {
					n, err := up.Read(buf)
					if err != nil {
						break
					}
					f.Write(buf[:n])
				}
			}()
			buf := make([]byte, 65535)
			for {
				n, err := f.Read(buf) // until the flow is idle for 30 s
				if err != nil {
					break
				}
				up.Write(buf[:n])
			}
			up.Close()
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("proxying everything that enters %s; Ctrl-C to stop", *tun)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	<-sig
}
