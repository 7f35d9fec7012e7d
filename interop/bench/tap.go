package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"sync"
	"syscall"

	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/interop/gvnet"
	"github.com/ustack/ustack/link"
)

// Addresses of the two ends of every TAP and veth link. They exist only
// inside the namespaces the pairs create (DESIGN.md, "Network tests: the
// rules").
var (
	KernelPrefix = netip.MustParsePrefix("10.77.0.1/24")
	StackPrefix  = netip.MustParsePrefix("10.77.0.2/24")
)

// Device names inside the namespaces.
const (
	tapName  = "bentap0"
	vethA    = "benveth0"
	vethB    = "benveth1"
	nsPrefix = "bench"
)

// Names of the pairs over TAP and veth.
const (
	nameKernelToUstack = "kernel→ustack"
	nameUstackToKernel = "ustack→kernel"
	nameKernelToGVisor = "kernel→gVisor"
	nameGVisorToKernel = "gVisor→kernel"
	nameVeth           = "kernel↔kernel (veth)"
	nameVethNoOffload  = "veth, offloads off"
)

// Pair kinds over TAP and veth, in table order.
var (
	KindKernelToUstack = PairKind{nameKernelToUstack, KernelToUstackTAP}
	KindUstackToKernel = PairKind{nameUstackToKernel, UstackToKernelTAP}
	KindKernelToGVisor = PairKind{nameKernelToGVisor, KernelToGVisorTAP}
	KindGVisorToKernel = PairKind{nameGVisorToKernel, GVisorToKernelTAP}
	KindVeth           = PairKind{nameVeth, func(mtu int) (*Pair, error) { return KernelVeth(mtu, true) }}
	KindVethNoOffload  = PairKind{nameVethNoOffload, func(mtu int) (*Pair, error) { return KernelVeth(mtu, false) }}
	AllTAPKinds        = []PairKind{KindKernelToUstack, KindUstackToKernel, KindKernelToGVisor, KindGVisorToKernel, KindVeth, KindVethNoOffload}
)

// TAPMetrics are the metrics measured over TAP and veth. The idle-heap
// metric is left out: with the kernel at one end it would count only one
// side.
var TAPMetrics = []string{MetricBulk, MetricLatency, MetricConnect, MetricUDP, MetricUDPRR}

// namespaces tracks the namespaces the pairs created and have not deleted,
// so that CloseNamespaces can delete them when the program is interrupted.
var namespaces struct {
	sync.Mutex
	live    map[*netns.NS]bool
	stopped bool
}

// newNS creates and registers a namespace. The lock is held while the
// namespace is created so that CloseNamespaces cannot miss one.
func newNS() (*netns.NS, error) {
	namespaces.Lock()
	defer namespaces.Unlock()
	if namespaces.stopped {
		return nil, errors.New("bench: namespaces closed (interrupted)")
	}
	ns, err := netns.New(nsPrefix)
	if err != nil {
		return nil, err
	}
	if namespaces.live == nil {
		namespaces.live = map[*netns.NS]bool{}
	}
	namespaces.live[ns] = true
	return ns, nil
}

// closeNS deletes a namespace newNS created.
func closeNS(ns *netns.NS) error {
	namespaces.Lock()
	delete(namespaces.live, ns)
	namespaces.Unlock()
	return ns.Close()
}

// closeLive deletes every namespace still registered.
func closeLive() error {
	namespaces.Lock()
	defer namespaces.Unlock()
	var errs []error
	for ns := range namespaces.live {
		errs = append(errs, ns.Close())
		delete(namespaces.live, ns)
	}
	return errors.Join(errs...)
}

// CloseNamespaces ends the server children of the flood and churn
// benchmarks, deletes every namespace the TAP and veth pairs created and
// have not yet deleted, and makes every later attempt to create one fail. A program calls it once, when it is interrupted and about to exit.
func CloseNamespaces() error {
	killChildren()
	namespaces.Lock()
	namespaces.stopped = true
	namespaces.Unlock()
	return closeLive()
}

// TAPAvailable reports, as an error saying what is missing, whether the
// TAP and veth pairs can be built: root, /dev/net/tun and ip(8).
func TAPAvailable() error { return netns.Available() }

// kernelPeer is the Linux kernel's TCP in a namespace, through Go's net
// package. Its sockets are created by a worker goroutine locked to a
// thread inside the namespace (sockets stay in the namespace they were
// created in); everything else, reads and writes included, runs on
// ordinary goroutines, so that the measurements do not pay for handing a
// locked thread back and forth.
type kernelPeer struct {
	addr netip.Addr
	reqs chan func()
	done chan error // the worker's ns.Do result
	// control, if set, is run on every socket before it binds or
	// connects (the lossy benchmark sets the congestion control there).
	control func(network, address string, c syscall.RawConn) error
	// spare are sockets made ahead by dialFrom (nsdial.go).
	spare socketStock
}

// newKernelPeer starts the peer's worker in ns. Close stops it.
func newKernelPeer(ns *netns.NS, addr netip.Addr) *kernelPeer {
	k := &kernelPeer{addr: addr, reqs: make(chan func()), done: make(chan error, 1)}
	go func() {
		k.done <- ns.Do(func() error {
			for f := range k.reqs {
				f()
			}
			return nil
		})
	}()
	return k
}

// inside runs f on the worker, inside the namespace, and returns its error.
func (k *kernelPeer) inside(f func() error) error {
	errc := make(chan error, 1)
	k.reqs <- func() { errc <- f() }
	return <-errc
}

// Close stops the worker. The sockets stay open.
func (k *kernelPeer) Close() error {
	k.spare.close()
	close(k.reqs)
	return <-k.done
}

func (k *kernelPeer) Listen(port uint16) (l net.Listener, err error) {
	err = k.inside(func() (err error) {
		lc := net.ListenConfig{Control: k.control}
		l, err = lc.Listen(context.Background(), "tcp4", netip.AddrPortFrom(k.addr, port).String())
		return err
	})
	return l, err
}

// ListenUDP implements UDPPeer: a kernel UDP socket bound in the
// namespace.
func (k *kernelPeer) ListenUDP(port uint16) (c UDPConn, err error) {
	err = k.inside(func() (err error) {
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(k.addr, port)))
		return err
	})
	return c, err
}

// DialUDP implements UDPPeer: a kernel UDP socket of the namespace
// connected to addr.
func (k *kernelPeer) DialUDP(addr netip.AddrPort) (c UDPConn, err error) {
	err = k.inside(func() (err error) {
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
		return err
	})
	return c, err
}

func (k *kernelPeer) Dial(ctx context.Context, addr netip.AddrPort) (c net.Conn, err error) {
	err = k.inside(func() (err error) {
		d := net.Dialer{Control: k.control}
		c, err = d.DialContext(ctx, "tcp4", addr.String())
		return err
	})
	return c, err
}

// tapNet is a fresh namespace holding a TAP device whose kernel side has
// KernelPrefix; open, run inside the namespace, attaches the other side.
func tapNet(open func() error) (*netns.NS, error) {
	ns, err := newNS()
	if err != nil {
		return nil, err
	}
	if err := ns.Do(open); err != nil {
		closeNS(ns)
		return nil, err
	}
	return ns, nil
}

// upTAP brings the kernel side of the TAP device up with KernelPrefix.
func upTAP(ns *netns.NS, mtu int) error {
	for _, c := range [][]string{
		{"ip", "link", "set", "dev", tapName, "mtu", strconv.Itoa(mtu), "up"},
		{"ip", "addr", "add", KernelPrefix.String(), "dev", tapName},
	} {
		if _, err := ns.Run(c...); err != nil {
			return err
		}
	}
	return nil
}

// tapPair completes a pair of the kernel and a stack (peer, closed by
// closeStack) on a TAP device in ns: the kernel dials when kernelClient.
func tapPair(name string, mtu int, ns *netns.NS, peer Peer, udpPeer UDPPeer, closeStack func() error, kernelClient bool) (*Pair, error) {
	closeAll := func() error { return errors.Join(closeStack(), closeNS(ns)) }
	if err := upTAP(ns, mtu); err != nil {
		closeAll()
		return nil, err
	}
	k := newKernelPeer(ns, KernelPrefix.Addr())
	p := &Pair{Name: name, MTU: mtu, closers: []func() error{closeAll, k.Close}}
	if kernelClient {
		p.Client, p.Server, p.ServerAddr = k, peer, StackPrefix.Addr()
		p.ClientUDP, p.ServerUDP = k, udpPeer
	} else {
		p.Client, p.Server, p.ServerAddr = peer, k, KernelPrefix.Addr()
		p.ClientUDP, p.ServerUDP = udpPeer, k
	}
	return p, nil
}

// ustackTAP builds a ustack stack at StackPrefix on a TAP device.
func ustackTAP(name string, mtu int, kernelClient bool) (*Pair, error) {
	var tap *link.TAP
	ns, err := tapNet(func() (err error) {
		tap, err = link.OpenTAP(tapName, link.TAPOptions{MTU: mtu})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s, err := newUstack(tap, StackPrefix)
	if err != nil {
		tap.Close()
		closeNS(ns)
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p, err := tapPair(name, mtu, ns, ustackPeer{s, StackPrefix.Addr()}, ustackPeer{s, StackPrefix.Addr()}, s.Close, kernelClient)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// gvisorTAP builds a gVisor stack at StackPrefix on a TAP device.
func gvisorTAP(name string, mtu int, kernelClient bool) (*Pair, error) {
	var g *gvnet.Stack
	ns, err := tapNet(func() (err error) {
		g, err = gvnet.NewTAP(gvnet.TAPOptions{Name: tapName, Addr: StackPrefix, MTU: mtu})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p, err := tapPair(name, mtu, ns, g, gvisorUDP{g}, g.Close, kernelClient)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// KernelToUstackTAP returns the kernel as client and ustack as server over
// a TAP device in a fresh namespace (ustack's link.TAP, Ethernet and ARP).
func KernelToUstackTAP(mtu int) (*Pair, error) { return ustackTAP(nameKernelToUstack, mtu, true) }

// UstackToKernelTAP returns ustack as client and the kernel as server over
// a TAP device in a fresh namespace.
func UstackToKernelTAP(mtu int) (*Pair, error) { return ustackTAP(nameUstackToKernel, mtu, false) }

// KernelToGVisorTAP returns the kernel as client and gVisor as server over
// a TAP device in a fresh namespace (gVisor's fdbased endpoint on the
// device's descriptor, Ethernet and ARP).
func KernelToGVisorTAP(mtu int) (*Pair, error) { return gvisorTAP(nameKernelToGVisor, mtu, true) }

// GVisorToKernelTAP returns gVisor as client and the kernel as server over
// a TAP device in a fresh namespace.
func GVisorToKernelTAP(mtu int) (*Pair, error) { return gvisorTAP(nameGVisorToKernel, mtu, false) }

// vethOffloads are the features KernelVeth turns off when asked to: the
// checksum, scatter-gather and segmentation offloads that let the kernel
// move 64 KB segments over veth instead of MTU-sized ones.
var vethOffloads = []string{"rx", "off", "tx", "off", "sg", "off", "tso", "off", "gso", "off", "gro", "off"}

// KernelVeth returns the kernel talking to itself over a veth pair
// between two fresh namespaces, client at KernelPrefix and server at
// StackPrefix: the limit of the TAP path. With offloads false it turns the
// offloads off with ethtool(8) on both ends; without ethtool it returns
// ErrUnavailable.
func KernelVeth(mtu int, offloads bool) (*Pair, error) {
	name := nameVeth
	if !offloads {
		name = nameVethNoOffload
		if _, err := exec.LookPath("ethtool"); err != nil {
			return nil, fmt.Errorf("%s: %w: ethtool is not installed", name, ErrUnavailable)
		}
	}
	a, b, closeAll, err := vethNet(mtu, offloads)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	client := newKernelPeer(a, KernelPrefix.Addr())
	server := newKernelPeer(b, StackPrefix.Addr())
	return &Pair{
		Name:       name,
		Client:     client,
		Server:     server,
		ClientUDP:  client,
		ServerUDP:  server,
		ServerAddr: StackPrefix.Addr(),
		MTU:        mtu,
		closers:    []func() error{closeAll, client.Close, server.Close},
	}, nil
}

// vethNet creates two fresh namespaces joined by a veth pair, vethA at
// KernelPrefix in a and vethB at StackPrefix in b, with the offloads off
// (ethtool) unless offloads. closeAll deletes both namespaces.
func vethNet(mtu int, offloads bool) (a, b *netns.NS, closeAll func() error, err error) {
	if a, err = newNS(); err != nil {
		return nil, nil, nil, err
	}
	if b, err = newNS(); err != nil {
		closeNS(a)
		return nil, nil, nil, err
	}
	closeAll = func() error { return errors.Join(closeNS(a), closeNS(b)) }
	m := strconv.Itoa(mtu)
	type command struct {
		ns  *netns.NS
		cmd []string
	}
	cmds := []command{
		// Created inside a, with its peer moved straight into b: the
		// pair never exists in the caller's namespace.
		{a, []string{"ip", "link", "add", vethA, "mtu", m, "type", "veth", "peer", "name", vethB, "mtu", m, "netns", b.Name()}},
		{a, []string{"ip", "addr", "add", KernelPrefix.String(), "dev", vethA}},
		{b, []string{"ip", "addr", "add", StackPrefix.String(), "dev", vethB}},
	}
	if !offloads {
		cmds = append(cmds,
			command{a, append([]string{"ethtool", "-K", vethA}, vethOffloads...)},
			command{b, append([]string{"ethtool", "-K", vethB}, vethOffloads...)})
	}
	cmds = append(cmds,
		command{a, []string{"ip", "link", "set", vethA, "up"}},
		command{b, []string{"ip", "link", "set", vethB, "up"}})
	for _, c := range cmds {
		if _, err := c.ns.Run(c.cmd...); err != nil {
			closeAll()
			return nil, nil, nil, err
		}
	}
	return a, b, closeAll, nil
}

var (
	_ Peer    = (*kernelPeer)(nil)
	_ UDPPeer = (*kernelPeer)(nil)
)
