package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ustack/ustack/internal/netns"
)

// Ports of the flood and churn servers.
const (
	portFloodEcho = 5005
	portChurnHTTP = 5006
)

// serverNet is one server of the flood and churn benchmarks and the
// client namespace in front of it:
//
//   - ustack or gVisor: a server child (child.go) holding a TAP device
//     whose kernel side, in the client namespace, has KernelPrefix;
//   - Linux: the kernel in a namespace of its own, at the far end of a
//     veth pair from the client namespace, echoing through this process.
//
// The kernel clients and the flood writer live in the client namespace;
// dev is the device there that leads to the server.
type serverNet struct {
	kind     string
	clientNS *netns.NS
	serverNS *netns.NS // Linux only
	dev      string
	client   *kernelPeer
	child    *serverChild // ustack and gVisor
	kernel   *kernelPeer  // Linux's worker, which listens
	listener net.Listener // Linux's echo listener
	closeNS  func() error
	routed   bool // the server routes FloodPrefix into the client namespace
}

// newServerNet builds the server kind (StackUstack, StackGVisor,
// StackLinux) and its client namespace, and waits until a client can
// connect and echo.
//
// With routed, the server has a route for FloodPrefix through the client
// namespace's kernel, which does not forward and so drops every packet to
// it: the server sends its SYN-ACKs, as it would to a real attack's
// routable sources, and they die in the client namespace. Without it no
// namespace routes the prefix, and a server may drop a SYN it cannot
// answer before it keeps any state for it (Linux and gVisor do).
func newServerNet(kind string, mtu int, routed bool, queues int) (*serverNet, error) {
	n := &serverNet{kind: kind, routed: routed}
	via := ""
	if routed {
		via = KernelPrefix.Addr().String()
	}
	switch kind {
	case StackUstack, StackGVisor:
		ns, err := newNS()
		if err != nil {
			return nil, err
		}
		n.clientNS, n.dev = ns, tapName
		n.closeNS = func() error { return closeNS(ns) }
		n.child, err = startChild(ns, childConfig{
			Kind: kind, TAP: tapName, Addr: StackPrefix.String(), MTU: mtu,
			EchoPort: portFloodEcho, HTTPPort: portChurnHTTP, RouteVia: via,
			Queues: queues,
		})
		if err != nil {
			n.closeNS()
			return nil, err
		}
		if err := upTAP(ns, mtu); err != nil {
			return nil, errors.Join(err, n.Close())
		}
	case StackLinux:
		a, b, closeAll, err := vethNet(mtu, true)
		if err != nil {
			return nil, err
		}
		n.clientNS, n.serverNS, n.dev, n.closeNS = a, b, vethA, closeAll
		// SYN cookies at their default, made explicit: sent when the SYN
		// queue is full.
		if _, err := b.Run("sysctl", "-q", "-w", "net.ipv4.tcp_syncookies=1"); err != nil {
			return nil, errors.Join(err, n.Close())
		}
		if routed {
			if _, err := b.Run("ip", "route", "add", FloodPrefix.String(), "via", via); err != nil {
				return nil, errors.Join(err, n.Close())
			}
		}
		n.kernel = newKernelPeer(b, StackPrefix.Addr())
		if n.listener, err = n.kernel.Listen(portFloodEcho); err != nil {
			return nil, errors.Join(err, n.Close())
		}
		go serveListener(n.listener, echoConn)
	default:
		return nil, fmt.Errorf("bench: unknown server %q", kind)
	}
	n.client = newKernelPeer(n.clientNS, KernelPrefix.Addr())
	// The first connects also resolve ARP both ways.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := n.echo(time.Now().Add(2 * time.Second))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, errors.Join(fmt.Errorf("bench: %s server: no echo: %w", kind, err), n.Close())
		}
	}
	return n, nil
}

// connectError is a connect that failed, as against an echo after it.
type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// echoMessage is what every legitimate client writes and reads back.
var echoMessage = []byte("ustack!\n")

// echo connects to the echo server, writes echoMessage, reads it back and
// closes, all by deadline. It returns the time the connect took.
func (n *serverNet) echo(deadline time.Time) (time.Duration, error) {
	start := time.Now()
	c, err := n.client.dialFrom(netip.AddrPortFrom(StackPrefix.Addr(), portFloodEcho), deadline)
	connect := time.Since(start)
	if err != nil {
		return connect, &connectError{err}
	}
	defer c.Close()
	c.SetDeadline(deadline)
	if _, err := c.Write(echoMessage); err != nil {
		return connect, fmt.Errorf("echo write: %w", err)
	}
	var buf [16]byte
	if _, err := io.ReadFull(c, buf[:len(echoMessage)]); err != nil {
		return connect, fmt.Errorf("echo read: %w", err)
	}
	if !bytes.Equal(buf[:len(echoMessage)], echoMessage) {
		return connect, fmt.Errorf("echo: got %q", buf[:len(echoMessage)])
	}
	return connect, nil
}

// checkNoRoute checks that no kernel namespace of the net has a route to
// prefix (when routed, that the client namespace has none and does not
// forward), so that nothing answering the flood can leave.
func (n *serverNet) checkNoRoute(prefix netip.Prefix) error {
	if n.routed {
		out, err := n.clientNS.Run("sysctl", "-n", "net.ipv4.ip_forward")
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(out)) != "0" {
			return fmt.Errorf("bench: namespace %s forwards", n.clientNS.Name())
		}
	}
	for _, ns := range []*netns.NS{n.clientNS, n.serverNS} {
		if ns == nil || n.routed && ns == n.serverNS {
			continue
		}
		if out, err := ns.Run("ip", "-4", "route", "get", prefix.Addr().Next().String()); err == nil {
			return fmt.Errorf("bench: namespace %s routes %v: %s", ns.Name(), prefix, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// macs returns the hardware addresses of the server (from the client
// namespace's neighbour table, filled by the first connects) and of the
// client namespace's device.
func (n *serverNet) macs() (server, client net.HardwareAddr, err error) {
	out, err := n.clientNS.Run("ip", "neigh", "show", StackPrefix.Addr().String(), "dev", n.dev)
	if err != nil {
		return nil, nil, err
	}
	if server, err = parseLLAddr(string(out)); err != nil {
		return nil, nil, fmt.Errorf("bench: no neighbour entry for %v on %s: %w", StackPrefix.Addr(), n.dev, err)
	}
	err = n.client.inside(func() error {
		ifi, err := net.InterfaceByName(n.dev)
		if err == nil {
			client = ifi.HardwareAddr
		}
		return err
	})
	return server, client, err
}

// parseLLAddr returns the hardware address of an `ip neigh show` line,
// "10.77.0.2 lladdr 02:00:00:00:00:01 REACHABLE", which must be a unicast
// Ethernet address.
func parseLLAddr(out string) (net.HardwareAddr, error) {
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] != "lladdr" {
			continue
		}
		mac, err := net.ParseMAC(f[i+1])
		if err != nil {
			return nil, err
		}
		if len(mac) != 6 || mac[0]&1 != 0 {
			return nil, fmt.Errorf("%v is not a unicast Ethernet address", mac)
		}
		return mac, nil
	}
	return nil, fmt.Errorf("no lladdr in %q", out)
}

// linkDrops returns the frames the client namespace's device dropped on
// their way to the server (its tx_dropped): the TAP device's queue to the
// userspace stack, or the veth's to the peer's backlog, overflowing.
func (n *serverNet) linkDrops() (uint64, error) {
	out, err := n.clientNS.Run("cat", "/sys/class/net/"+n.dev+"/statistics/tx_dropped")
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
}

// kernelStats returns the Linux server's TCP counters (nstat names), or
// nil for a userspace server.
func (n *serverNet) kernelStats() (map[string]uint64, error) {
	if n.serverNS == nil {
		return nil, nil
	}
	out, err := n.serverNS.Run("cat", "/proc/net/snmp", "/proc/net/netstat")
	if err != nil {
		return nil, err
	}
	return parseNstat(string(out)), nil
}

// Close stops the server and the clients and deletes the namespaces.
func (n *serverNet) Close() error {
	var errs []error
	if n.child != nil {
		errs = append(errs, n.child.Close())
	}
	if n.listener != nil {
		errs = append(errs, n.listener.Close())
	}
	if n.kernel != nil {
		errs = append(errs, n.kernel.Close())
	}
	if n.client != nil {
		errs = append(errs, n.client.Close())
	}
	errs = append(errs, n.closeNS())
	return errors.Join(errs...)
}
