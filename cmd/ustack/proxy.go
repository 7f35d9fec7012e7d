package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/stack"
)

// proxy runs `ustack proxy`: a stack on a TUN device with a forwarder that
// relays every TCP connection and UDP flow entering the device through
// the host's own sockets (tun2socks's "direct" mode).
func proxy(args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ustack proxy -tun NAME [-addr ADDR/LEN] [-fullcone] [-dial-timeout D] [-udp-idle D] [-max-inflight N] [-pcap FILE]\n\n")
		fs.PrintDefaults()
	}
	tun := fs.String("tun", "", "TUN device to read flows from (created if missing)")
	addr := fs.String("addr", "10.255.255.1/24", "ustack's own address on the TUN device")
	fullCone := fs.Bool("fullcone", false, "relay UDP endpoint-independently (RFC 4787): one host socket per client address and port, answers from any address")
	dialTimeout := fs.Duration("dial-timeout", 10*time.Second, "how long to wait for a TCP destination to answer before refusing the client with a RST")
	udpIdle := fs.Duration("udp-idle", stack.DefaultUDPIdleTimeout, "idle timeout of a UDP flow")
	maxInFlight := fs.Int("max-inflight", stack.DefaultForwardMaxInFlight, "bound on TCP handshakes in flight (undecided plus handshaking)")
	pcapFile := fs.String("pcap", "", "write every packet of the TUN device to this libpcap file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	p, perr := netip.ParsePrefix(*addr)
	var err error
	switch {
	case *tun == "":
		err = errors.New("-tun is required")
	case perr != nil || !p.Addr().Is4():
		err = fmt.Errorf("-addr %q is not an IPv4 address with a prefix length", *addr)
	case *dialTimeout <= 0:
		err = fmt.Errorf("-dial-timeout %v is not positive", *dialTimeout)
	case *udpIdle <= 0:
		err = fmt.Errorf("-udp-idle %v is not positive", *udpIdle)
	case *maxInFlight <= 0:
		err = fmt.Errorf("-max-inflight %d is not positive", *maxInFlight)
	}
	if err != nil {
		fs.Usage()
		return err
	}
	ep, err := link.OpenTUN(*tun, link.TUNOptions{})
	if err != nil {
		return err
	}
	ep2, closeCapture, err := wrapCapture(ep, nicConfig{pcapFile: *pcapFile})
	if err != nil {
		return err
	}
	s := stack.New(stack.Options{})
	r := &relay{dialer: net.Dialer{Timeout: *dialTimeout}}
	if err := r.attach(s, ep2, p, stack.Forwarder{MaxInFlight: *maxInFlight, UDPIdleTimeout: *udpIdle}, *fullCone); err != nil {
		s.Close()
		ep2.Close()
		closeCapture()
		return err
	}
	mode := "per-flow UDP"
	if *fullCone {
		mode = "full-cone UDP"
	}
	fmt.Printf("ustack proxy ready on TUN %s (%v, %s; pid %d); Ctrl-C stops\n", *tun, p, mode, os.Getpid())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	signal.Stop(sig)
	err = s.Close()
	closeCapture()
	printStats(os.Stdout, s.Stats())
	return err
}

// relay is the forwarder's handlers: each flow is relayed through a host
// socket of its own.
type relay struct {
	dialer net.Dialer
}

// attach adds ep to s at addr, routes every destination back into it (the
// clients behind a TUN device may have any address) and installs the
// relay as the NIC's forwarder, with the bounds of f.
func (r *relay) attach(s *stack.Stack, ep link.Endpoint, addr netip.Prefix, f stack.Forwarder, fullCone bool) error {
	id, err := s.AddNIC(ep, addr)
	if err != nil {
		return err
	}
	if err := s.AddRoute(ip.Route{Destination: netip.MustParsePrefix("0.0.0.0/0"), NIC: int(id)}); err != nil {
		return err
	}
	f.TCP = r.tcp
	if fullCone {
		f.UDPFullCone = r.udpFullCone
	} else {
		f.UDP = r.udp
	}
	return s.SetForwarder(id, &f)
}

// tcp dials the original destination first and accepts the client only
// once that worked; a destination that refuses or does not answer is
// passed on to the client as a RST.
func (r *relay) tcp(req *stack.TCPForwardRequest) {
	up, err := r.dialer.DialContext(context.Background(), "tcp4", req.LocalAddr().String())
	if err != nil {
		req.Refuse(stack.RefuseReset)
		return
	}
	down, err := req.Accept()
	if err != nil {
		up.Close()
		return
	}
	splice(down, up)
}

// closeWriter is a connection with a half-close (*net.TCPConn,
// *stack.TCPConn).
type closeWriter interface{ CloseWrite() error }

// splice copies a to b and b to a until both directions end: a direction
// that reaches EOF is half-closed on the other side (CloseWrite), so a
// client's shutdown(SHUT_WR) reaches the server and the server's answer
// still comes back; an error in either direction closes both.
func splice(a, b net.Conn) {
	var once sync.Once
	abort := func() { once.Do(func() { a.Close(); b.Close() }) }
	var wg sync.WaitGroup
	copyHalf := func(dst, src net.Conn) {
		defer wg.Done()
		buf := make([]byte, 64<<10)
		if _, err := io.CopyBuffer(dst, src, buf); err != nil {
			abort()
			return
		}
		if cw, ok := dst.(closeWriter); ok {
			if cw.CloseWrite() == nil {
				return
			}
		}
		abort()
	}
	wg.Add(2)
	go copyHalf(b, a)
	go copyHalf(a, b)
	wg.Wait()
	abort()
}

// udp relays one flow through a connected host UDP socket to the
// original destination, until the flow ends (idle, or the stack closes)
// or the host socket fails.
func (r *relay) udp(f *stack.UDPFlow) {
	up, err := r.dialer.Dial("udp4", f.LocalAddr().String())
	if err != nil {
		f.Close()
		return
	}
	go func() {
		buf := make([]byte, 65535)
		for {
			n, err := up.Read(buf)
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					continue // an ICMP port unreachable: the flow goes on
				}
				break
			}
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
		f.Close()
	}()
	buf := make([]byte, 65535)
	for {
		n, err := f.Read(buf)
		if err != nil {
			break
		}
		up.Write(buf[:n])
	}
	up.Close()
}

// udpFullCone relays every datagram of one client address and port
// through one unconnected host socket, whatever the destination, and
// passes every answer to that socket back to the client from its sender:
// endpoint-independent mapping and filtering (RFC 4787 §4.1, §5).
func (r *relay) udpFullCone(f *stack.UDPFullConeFlow) {
	up, err := net.ListenUDP("udp4", nil)
	if err != nil {
		f.Close()
		return
	}
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := up.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			if _, err := f.WriteToUDPAddrPort(buf[:n], from); err != nil && !errors.Is(err, syscall.EINVAL) {
				break
			}
		}
		f.Close()
	}()
	buf := make([]byte, 65535)
	for {
		n, to, err := f.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		up.WriteToUDPAddrPort(buf[:n], to)
	}
	up.Close()
}
