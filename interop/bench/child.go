package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
	gvtcp "gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/ustack/ustack/interop/gvnet"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/stack"
	"github.com/ustack/ustack/tcp"
)

// The flood and churn benchmarks run each userspace server (ustack,
// gVisor) in a child process of the benchmark, so that the server's RSS
// and Go heap are its own and not the flood writer's or the clients'. The
// child is this same program, started inside the server's namespace by
// `ip netns exec` with childEnv set; it opens the TAP device there, serves
// echo and HTTP on its stack and answers the parent's requests on its
// standard input and output, one JSON line each. It exits when its
// standard input ends (the parent closed it, or died).

// childEnv carries a child's configuration, as JSON; when it is set the
// program is a server child (RunChildIfAsked).
const childEnv = "USTACKBENCH_SERVER_CHILD"

// childConfig configures a server child.
type childConfig struct {
	Kind     string // StackUstack or StackGVisor
	TAP      string // the TAP device to open in the child's namespace
	Addr     string // the stack's prefix, for example 10.77.0.2/24
	MTU      int
	EchoPort uint16 // echo: every byte read is written back
	HTTPPort uint16 // one small response per connection, then close
	// RouteVia, if set, routes FloodPrefix through this gateway (the
	// client namespace's kernel, which drops what it cannot forward).
	RouteVia string
	// Queues is the number of queues of ustack's TAP device, a reader
	// each (0 or 1: one); gVisor's has one.
	Queues int `json:",omitempty"`
}

// childStats is a child's answer to "stats".
type childStats struct {
	RSS, PeakRSS uint64 // VmRSS and VmHWM, bytes
	HeapLive     uint64 // bytes of live heap after a full collection
	HeapSys      uint64 // bytes of heap obtained from the OS
	CPU          uint64 // nanoseconds of CPU the process used, user and system
	// Counters are the stack's non-zero counters by name ("TCP.ListenOverflows").
	Counters map[string]uint64
	Conns    int // connections in the stack's table
	TimeWait int // of which in TIME-WAIT
	Err      string
}

// RunChildIfAsked makes the program a server child of the flood or churn
// benchmark when the environment says so: it serves until its standard
// input ends and then exits the process. Otherwise it returns at once. A
// program that runs RunFlood or RunChurn calls it first thing in main (and
// in TestMain), because the benchmarks start children by running the
// program's own executable.
func RunChildIfAsked() {
	spec, ok := os.LookupEnv(childEnv)
	if !ok {
		return
	}
	var cfg childConfig
	err := json.Unmarshal([]byte(spec), &cfg)
	if err == nil {
		err = serveChild(cfg, os.Stdin, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ustackbench server child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// childServer is the stack a child runs.
type childServer struct {
	listeners []net.Listener
	stats     func(*childStats)
	close     func() error
}

// serveChild runs the child: it builds the stack, reports "ready", then
// answers every "stats" line until in ends.
func serveChild(cfg childConfig, in io.Reader, out io.Writer) error {
	prefix, err := netip.ParsePrefix(cfg.Addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", cfg.Addr, err)
	}
	var srv *childServer
	switch cfg.Kind {
	case StackUstack:
		srv, err = ustackChild(cfg, prefix)
	case StackGVisor:
		srv, err = gvisorChild(cfg, prefix)
	default:
		err = fmt.Errorf("unknown server kind %q", cfg.Kind)
	}
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for i, l := range srv.listeners {
		handle := echoConn
		if i == 1 {
			handle = httpConn
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveListener(l, handle)
		}()
	}
	enc := json.NewEncoder(out)
	if err := enc.Encode(childStats{}); err != nil { // ready
		return err
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		switch sc.Text() {
		case "stats":
			var st childStats
			srv.stats(&st)
			readMemory(&st)
			if err := enc.Encode(st); err != nil {
				return err
			}
		default:
			enc.Encode(childStats{Err: fmt.Sprintf("unknown request %q", sc.Text())})
		}
	}
	for _, l := range srv.listeners {
		l.Close()
	}
	err = srv.close()
	wg.Wait()
	return err
}

// serveListener accepts until l is closed, handling each connection on
// its own goroutine.
func serveListener(l net.Listener, handle func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

// echoConn writes back every byte read until the client closes.
func echoConn(c net.Conn) { io.Copy(c, c) }

// httpResponse is the churn server's answer to every request.
var httpResponse = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n")

// httpConn reads one request's head and answers it with httpResponse,
// then closes: the server closes first, so that its side of every
// connection goes through TIME-WAIT, as a server's does under wrk
// -H 'Connection: close'.
func httpConn(c net.Conn) {
	var buf [1024]byte
	n := 0
	for !bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
		if n == len(buf) {
			return
		}
		k, err := c.Read(buf[n:])
		n += k
		if err != nil {
			return
		}
	}
	c.Write(httpResponse)
}

// ustackChild builds a ustack stack on the TAP device.
func ustackChild(cfg childConfig, prefix netip.Prefix) (*childServer, error) {
	tap, err := link.OpenTAP(cfg.TAP, link.TAPOptions{MTU: cfg.MTU, Queues: cfg.Queues})
	if err != nil {
		return nil, err
	}
	s, err := newUstack(tap, prefix)
	if err != nil {
		tap.Close()
		return nil, err
	}
	if cfg.RouteVia != "" {
		gw, err := netip.ParseAddr(cfg.RouteVia)
		if err == nil {
			err = s.AddRoute(ip.Route{Destination: FloodPrefix, Gateway: gw})
		}
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("route %v via %q: %w", FloodPrefix, cfg.RouteVia, err)
		}
	}
	var ls []*stack.TCPListener
	srv := &childServer{close: s.Close}
	for _, port := range []uint16{cfg.EchoPort, cfg.HTTPPort} {
		l, err := s.ListenTCP(netip.AddrPortFrom(prefix.Addr(), port))
		if err != nil {
			s.Close()
			return nil, err
		}
		ls = append(ls, l)
		srv.listeners = append(srv.listeners, l)
	}
	srv.stats = func(st *childStats) {
		st.Counters = map[string]uint64{}
		collectCounters(st.Counters, "", reflect.ValueOf(s.Stats()))
		// Per-listener counters, if the listener has them: any method
		// Stats returning a struct of counters.
		for i, l := range ls {
			if m := reflect.ValueOf(l).MethodByName("Stats"); m.IsValid() && m.Type().NumIn() == 0 && m.Type().NumOut() == 1 {
				collectCounters(st.Counters, []string{"echo", "http"}[i]+" listener.", m.Call(nil)[0])
			}
		}
		for _, c := range s.Connections() {
			st.Conns++
			if c.State == tcp.StateTimeWait {
				st.TimeWait++
			}
		}
	}
	return srv, nil
}

// gvisorChild builds a gVisor stack on the TAP device (fdbased).
func gvisorChild(cfg childConfig, prefix netip.Prefix) (*childServer, error) {
	g, err := gvnet.NewTAP(gvnet.TAPOptions{Name: cfg.TAP, Addr: prefix, MTU: cfg.MTU})
	if err != nil {
		return nil, err
	}
	if cfg.RouteVia != "" {
		gw, err := netip.ParseAddr(cfg.RouteVia)
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("route %v via %q: %w", FloodPrefix, cfg.RouteVia, err)
		}
		sub, _ := tcpip.NewSubnet(tcpip.AddrFrom4(FloodPrefix.Addr().As4()), tcpip.MaskFromBytes(net.CIDRMask(FloodPrefix.Bits(), 32)))
		g.Netstack().AddRoute(tcpip.Route{Destination: sub, Gateway: tcpip.AddrFrom4(gw.As4()), NIC: 1})
	}
	srv := &childServer{close: g.Close}
	for _, port := range []uint16{cfg.EchoPort, cfg.HTTPPort} {
		l, err := g.Listen(port)
		if err != nil {
			g.Close()
			return nil, err
		}
		srv.listeners = append(srv.listeners, l)
	}
	srv.stats = func(st *childStats) {
		st.Counters = map[string]uint64{}
		collectCounters(st.Counters, "TCP.", reflect.ValueOf(g.Netstack().Stats().TCP))
		for _, ep := range g.Netstack().RegisteredEndpoints() {
			e, ok := ep.(interface{ State() uint32 })
			if !ok {
				continue
			}
			st.Conns++
			if gvtcp.EndpointState(e.State()) == gvtcp.StateTimeWait {
				st.TimeWait++
			}
		}
	}
	return srv, nil
}

// statCounter is gVisor's counter type.
var statCounter = reflect.TypeFor[*tcpip.StatCounter]()

// collectCounters adds to m every non-zero counter in v, a struct of
// uint64 counters (ustack), *tcpip.StatCounter (gVisor) or structs of
// them, named by their path from v.
func collectCounters(m map[string]uint64, prefix string, v reflect.Value) {
	if v.Kind() == reflect.Pointer && v.Type() != statCounter {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch {
	case v.Type() == statCounter:
		if !v.IsNil() {
			if n := v.Interface().(*tcpip.StatCounter).Value(); n != 0 {
				m[strings.TrimSuffix(prefix, ".")] = n
			}
		}
	case v.Kind() == reflect.Uint64:
		if n := v.Uint(); n != 0 {
			m[strings.TrimSuffix(prefix, ".")] = n
		}
	case v.Kind() == reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() {
				collectCounters(m, prefix+f.Name+".", v.Field(i))
			}
		}
	}
}

// readMemory fills the memory figures of st for this process.
func readMemory(st *childStats) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st.HeapLive, st.HeapSys = ms.HeapAlloc, ms.HeapSys
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		st.CPU = uint64(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		st.Err = err.Error()
		return
	}
	st.RSS, st.PeakRSS = statusKB(b, "VmRSS:"), statusKB(b, "VmHWM:")
}

// statusKB returns the field of /proc/PID/status text b, in kB there, in
// bytes; 0 if it is missing.
func statusKB(b []byte, field string) uint64 {
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				n, err := strconv.ParseUint(f[0], 10, 64)
				if err == nil {
					return n << 10
				}
			}
		}
	}
	return 0
}

// errChildExited reports a child that ended before answering.
var errChildExited = errors.New("server child exited")
