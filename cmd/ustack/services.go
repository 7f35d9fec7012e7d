package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ustack/ustack/stack"
)

// services are the TCP and UDP servers serve and demo run on a stack.
type services struct {
	wg        sync.WaitGroup
	listeners []net.Listener
	servers   []*http.Server
	packet    []net.PacketConn
}

// startEcho serves the echo protocol (RFC 862) on port, over TCP (every
// byte read is written back until the client closes) and over UDP ("When
// a datagram is received, the data from it is sent back in an answering
// datagram").
func (sv *services) startEcho(s *stack.Stack, port int) error {
	return sv.startTCPUDP(s, port, func(c net.Conn) { io.Copy(c, c) },
		func(c *stack.UDPConn, b []byte, from netip.AddrPort) { c.WriteToUDPAddrPort(b, from) })
}

// startHTTP serves httpHandler on port.
func (sv *services) startHTTP(s *stack.Stack, port int) error {
	l, err := s.ListenTCP(netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(port))) // IPv4 too (dual-stack)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: httpHandler(), ReadHeaderTimeout: 10 * time.Second}
	sv.servers = append(sv.servers, srv)
	sv.wg.Add(1)
	go func() {
		defer sv.wg.Done()
		srv.Serve(l)
	}()
	return nil
}

// stop closes every listener and connection and waits for the servers.
func (sv *services) stop() {
	for _, l := range sv.listeners {
		l.Close()
	}
	for _, c := range sv.packet {
		c.Close()
	}
	for _, srv := range sv.servers {
		srv.Close()
	}
	sv.wg.Wait()
}

// maxBytes bounds GET /bytes/N.
const maxBytes = 1 << 40

// httpHandler answers GET / with a short page and GET /bytes/N with a body
// of N bytes in which byte i is i mod 256, with a Content-Length.
func httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Hello from ustack, a userspace TCP/IP stack in Go.\nYou are %s.\nTry /bytes/N for N bytes of i mod 256.\n", r.RemoteAddr)
	})
	mux.HandleFunc("GET /bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
		if err != nil || n < 0 || n > maxBytes {
			http.Error(w, "N must be an integer from 0 to 2^40", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		writePattern(w, n)
	})
	return mux
}

// pattern holds bytes i mod 256; its length is a multiple of 256 so that
// repeating it continues the sequence.
var pattern = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

func writePattern(w io.Writer, n int64) error {
	for n > 0 {
		chunk := pattern
		if int64(len(chunk)) > n {
			chunk = chunk[:n]
		}
		if _, err := w.Write(chunk); err != nil {
			return err
		}
		n -= int64(len(chunk))
	}
	return nil
}

// printConnections writes the connection table, one row per connection.
func printConnections(w io.Writer, conns []stack.TCPInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LOCAL\tREMOTE\tSTATE\tBYTES IN\tBYTES OUT\tRETRANS\tSRTT\tCWND")
	for _, c := range conns {
		fmt.Fprintf(tw, "%v\t%v\t%v\t%d\t%d\t%d\t%v\t%d\n", c.Tuple.Local, c.Tuple.Remote, c.State,
			c.BytesIn, c.BytesOut, c.Retransmits, c.SRTT.Round(time.Microsecond), c.CongestionWindow)
	}
	if len(conns) == 0 {
		fmt.Fprintln(tw, "(no connections)")
	}
	tw.Flush()
}

// parsePort validates a port flag; 0 means the service is off.
func parsePort(name string, p int) error {
	if p < 0 || p > 65535 {
		return fmt.Errorf("-%s %d: not a port", name, p)
	}
	return nil
}

// printListeners writes a line per TCP listener with its SYN-queue and
// SYN-cookie counters.
func (sv *services) printListeners(w io.Writer) {
	for _, l := range sv.listeners {
		tl, ok := l.(*stack.TCPListener)
		if !ok {
			continue
		}
		st := tl.Stats()
		fmt.Fprintf(w, "listener %v: SYNs %d, half-open %d, accept queue %d, SYN-queue drops %d (oldest %d, timeouts %d), SYN-ACK retransmits %d, cookies sent %d accepted %d rejected %d, accept-queue overflows %d, RSTs %d (rate-limited %d)\n",
			l.Addr(), st.SYNsReceived, st.HalfOpen, st.AcceptQueue, st.SYNQueueDrops, st.SYNQueueOldestDropped, st.SYNQueueTimeouts,
			st.SYNACKRetransmits, st.SYNCookiesSent, st.SYNCookiesAccepted, st.SYNCookiesRejected, st.ListenOverflows, st.ResetsSent, st.ResetsRateLimited)
	}
}
