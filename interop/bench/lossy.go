package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/interop/gvnet"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/fault"
	"github.com/ustack/ustack/link/pcap"
	"github.com/ustack/ustack/stack"
)

// The topology of the lossy-link benchmark (RunLossy): a client and a
// server, each one of
//
//   - the Linux kernel, in a namespace of its own behind a TAP device
//     whose descriptor this process holds,
//   - ustack, in process, on one end of a link.Pipe,
//   - gVisor, in process, on its fdbased endpoint on one end of a socket
//     pair (gvnet.NewSocketpair),
//
// joined by a fault.Bridge between the TAP descriptor, the other end of
// the pipe or the other end of the socket pair. Every frame between the
// two crosses the bridge, ARP included, and the bridge impairs both
// directions with the case's impairment and the same seed whatever the
// stacks. The client has KernelPrefix, the server StackPrefix.

// Server and client kinds of the lossy-link benchmark.
const (
	StackUstack = "ustack"
	StackGVisor = "gvisor"
	StackLinux  = "linux"
)

// AllLossyStacks are the stacks measured by default, in table order.
var AllLossyStacks = []string{StackUstack, StackGVisor, StackLinux}

// stackTitle is the name of a stack kind in tables.
var stackTitle = map[string]string{StackUstack: "ustack", StackGVisor: "gVisor", StackLinux: "Linux"}

// side is one end of the bridge: the endpoint the bridge holds and the
// stack behind it.
type side struct {
	ep     link.Endpoint // held, and closed, by the bridge
	peer   Peer
	ustack *stack.Stack // the ustack stack, if this side is ustack
	ns     *netns.NS    // the namespace, if this side is the kernel
	stop   func() error // stops the stack, before the bridge closes ep
}

// kernelSysctls are the TCP settings Linux normally runs with, made
// explicit in every namespace.
var kernelSysctls = []string{
	"net.ipv4.tcp_sack=1",
	"net.ipv4.tcp_dsack=1",
	"net.ipv4.tcp_timestamps=1",
	"net.ipv4.tcp_window_scaling=1",
}

// kernelCC is the congestion control of the kernel's sockets: Linux's
// default. A new namespace inherits the host's default, which need not be
// CUBIC (on this machine it is BBR), and only the initial namespace may
// make an algorithm outside tcp_allowed_congestion_control the default,
// so it is set on each socket instead (TCP_CONGESTION; CAP_NET_ADMIN
// allows any algorithm). Accepted sockets inherit the listener's.
const kernelCC = "cubic"

// setCC sets kernelCC on a socket, as a net.Dialer or net.ListenConfig
// Control function.
func setCC(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, kernelCC)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("bench: setsockopt TCP_CONGESTION %s: %w", kernelCC, serr)
	}
	return nil
}

// congestionControl returns the congestion control of the TCP connection c.
func congestionControl(c net.Conn) (string, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return "", errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return "", err
	}
	var name string
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		name, gerr = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	}); err != nil {
		return "", err
	}
	return name, gerr
}

// kernelSide is the kernel in a fresh namespace, with prefix on a TAP
// device whose descriptor is the side's endpoint. A TAP device opened
// without a virtio-net header hands this process only frames of at most
// the MTU (the kernel segments in software), so no offload needs turning
// off.
func kernelSide(prefix netip.Prefix, mtu int) (*side, error) {
	var tap *link.TAP
	ns, err := tapNet(func() (err error) {
		tap, err = link.OpenTAP(tapName, link.TAPOptions{MTU: mtu})
		return err
	})
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*side, error) {
		tap.Close()
		return nil, errors.Join(err, closeNS(ns))
	}
	for _, c := range [][]string{
		{"ip", "link", "set", "dev", tapName, "mtu", strconv.Itoa(mtu), "up"},
		{"ip", "addr", "add", prefix.String(), "dev", tapName},
		append([]string{"sysctl", "-q", "-w"}, kernelSysctls...),
	} {
		if _, err := ns.Run(c...); err != nil {
			return fail(err)
		}
	}
	k := newKernelPeer(ns, prefix.Addr())
	k.control = setCC
	return &side{ep: tap, peer: k, ns: ns, stop: k.Close}, nil
}

// lossyOffloads are the offloads of the pipe under ustack on an
// offloading bridge (LossyConfig.Offloads): a virtio device's, as the
// kernel's TAP offers.
var lossyOffloads = link.Offloads{TxChecksum: true, RxChecksum: true, TSO4: true, GRO: true, MaxGSOSize: 65535}

// ustackSide is a ustack stack at prefix on one end of a link.Pipe; the
// other end is the side's endpoint. With offloads, the pipe carries
// super-segments with their metadata and the stack sends with TSO
// (software GSO otherwise, the default).
func ustackSide(prefix netip.Prefix, mtu int, offloads bool) (*side, error) {
	po := link.PipeOptions{MTU: mtu, QueueLen: 4096}
	if offloads {
		po.Offloads, po.QueueLen = lossyOffloads, 512
	}
	nic, far := link.NewPipe(po)
	s, err := newUstackOpts(nic, prefix, stack.Options{})
	if err != nil {
		far.Close()
		return nil, err
	}
	return &side{ep: far, peer: ustackPeer{s, prefix.Addr()}, ustack: s, stop: s.Close}, nil
}

// gvisorSide is a gVisor stack at prefix on its fdbased endpoint on a
// socket pair; the other end of the pair is the side's endpoint.
func gvisorSide(prefix netip.Prefix, mtu int) (*side, error) {
	g, se, err := gvnet.NewSocketpair(gvnet.Options{Addr: prefix, MTU: mtu})
	if err != nil {
		return nil, err
	}
	return &side{ep: se, peer: g, stop: g.Close}, nil
}

// newSide returns a side of the given kind; offloads asks for one whose
// endpoint carries offload metadata where the kind can (ustack, the
// kernel's TAP, which always can; gVisor's fdbased endpoint on a socket
// pair cannot).
func newSide(kind string, prefix netip.Prefix, mtu int, offloads bool) (*side, error) {
	switch kind {
	case StackUstack:
		return ustackSide(prefix, mtu, offloads)
	case StackGVisor:
		return gvisorSide(prefix, mtu)
	case StackLinux:
		return kernelSide(prefix, mtu)
	}
	return nil, fmt.Errorf("bench: unknown stack %q", kind)
}

// lossyNet is a client and a server side joined by a bridge.
type lossyNet struct {
	client, server *side
	bridge         *fault.Bridge
}

// newLossyNet builds the client side, the server side and the bridge
// between them, which impairs both directions with im. With offloads,
// the bridge carries super-segments whole between two sides that can
// (fault.BridgeConfig.Offloads): every pair but those with gVisor.
//
// With capture set, the frames of the ustack side (the server's if both
// are ustack) are recorded into it as the bridge passes them, with their
// offloads: super-segments whole (up to the snap length), as `ustack tsg`
// reads them.
func newLossyNet(client, server string, mtu int, im fault.Impairment, seed uint64, offloads bool, capture io.Writer) (*lossyNet, error) {
	offloads = offloads && client != StackGVisor && server != StackGVisor
	c, err := newSide(client, KernelPrefix, mtu, offloads)
	if err != nil {
		return nil, fmt.Errorf("%s client: %w", client, err)
	}
	s, err := newSide(server, StackPrefix, mtu, offloads)
	if err != nil {
		c.stop()
		c.ep.Close()
		if c.ns != nil {
			closeNS(c.ns)
		}
		return nil, fmt.Errorf("%s server: %w", server, err)
	}
	if capture != nil {
		for _, sd := range []*side{s, c} {
			if sd.ustack == nil {
				continue
			}
			ep, err := pcap.New(sd.ep, capture, pcap.Options{})
			if err != nil {
				n := &lossyNet{client: c, server: s}
				return nil, errors.Join(err, n.closeSides())
			}
			sd.ep = ep
			break
		}
	}
	br, err := fault.NewBridge(c.ep, s.ep, fault.BridgeConfig{Seed: seed, AToB: im, BToA: im, Offloads: offloads})
	if err != nil {
		n := &lossyNet{client: c, server: s}
		return nil, errors.Join(err, n.closeSides())
	}
	return &lossyNet{client: c, server: s, bridge: br}, nil
}

// ustack returns the ustack stack of the net, if one side is ustack, and
// the kernel side's namespace, if the other is the kernel.
func (n *lossyNet) ustack() (*stack.Stack, *netns.NS) {
	for _, p := range [][2]*side{{n.client, n.server}, {n.server, n.client}} {
		if p[0].ustack != nil {
			return p[0].ustack, p[1].ns
		}
	}
	return nil, nil
}

// Close stops both stacks, then the bridge (which closes the TAP devices
// and pipe and socket ends), then deletes the namespaces.
func (n *lossyNet) Close() error {
	errs := []error{n.client.stop(), n.server.stop(), n.bridge.Close()}
	for _, s := range []*side{n.client, n.server} {
		if s.ns != nil {
			errs = append(errs, closeNS(s.ns))
		}
	}
	return errors.Join(errs...)
}

// closeSides tears the two sides down without a bridge between them.
func (n *lossyNet) closeSides() error {
	var errs []error
	for _, s := range []*side{n.client, n.server} {
		errs = append(errs, s.stop(), s.ep.Close())
		if s.ns != nil {
			errs = append(errs, closeNS(s.ns))
		}
	}
	return errors.Join(errs...)
}

// kernelCounters are the kernel's TCP counters in a namespace that matter
// for loss recovery (nstat's names).
type kernelCounters struct {
	RetransSegs  uint64 // Tcp RetransSegs
	Timeouts     uint64 // TcpExt TCPTimeouts: retransmission timeouts
	DSACKRecv    uint64 // TcpExt TCPDSACKRecv + TCPDSACKOfoRecv: D-SACKs received
	DSACKSent    uint64 // TcpExt TCPDSACKOldSent + TCPDSACKOfoSent
	SpuriousRTOs uint64 // TcpExt TCPSpuriousRTOs
	LossProbes   uint64 // TcpExt TCPLossProbes: tail loss probes sent
}

func (k kernelCounters) add(o kernelCounters) kernelCounters {
	return kernelCounters{
		RetransSegs:  k.RetransSegs + o.RetransSegs,
		Timeouts:     k.Timeouts + o.Timeouts,
		DSACKRecv:    k.DSACKRecv + o.DSACKRecv,
		DSACKSent:    k.DSACKSent + o.DSACKSent,
		SpuriousRTOs: k.SpuriousRTOs + o.SpuriousRTOs,
		LossProbes:   k.LossProbes + o.LossProbes,
	}
}

// readKernelCounters reads /proc/net/snmp and /proc/net/netstat inside ns.
func readKernelCounters(ns *netns.NS) (kernelCounters, error) {
	out, err := ns.Run("cat", "/proc/net/snmp", "/proc/net/netstat")
	if err != nil {
		return kernelCounters{}, err
	}
	v := parseNstat(string(out))
	return kernelCounters{
		RetransSegs:  v["Tcp.RetransSegs"],
		Timeouts:     v["TcpExt.TCPTimeouts"],
		DSACKRecv:    v["TcpExt.TCPDSACKRecv"] + v["TcpExt.TCPDSACKOfoRecv"],
		DSACKSent:    v["TcpExt.TCPDSACKOldSent"] + v["TcpExt.TCPDSACKOfoSent"],
		SpuriousRTOs: v["TcpExt.TCPSpuriousRTOs"],
		LossProbes:   v["TcpExt.TCPLossProbes"],
	}, nil
}

// parseNstat parses the text of /proc/net/snmp and /proc/net/netstat:
// pairs of lines "Group: Name1 Name2 ..." and "Group: 1 2 ...". It returns
// the values by "Group.Name"; lines that do not pair up are skipped.
func parseNstat(out string) map[string]uint64 {
	v := map[string]uint64{}
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		// A header line is "Group: Name Name ...": a group name with its
		// colon, and the value line repeats it.
		if len(names) < 2 || len(names) != len(values) || names[0] != values[0] ||
			len(names[0]) < 2 || !strings.HasSuffix(names[0], ":") {
			continue
		}
		if _, err := strconv.ParseUint(values[1], 10, 64); err != nil {
			continue // a header line followed by another header line
		}
		prefix := strings.TrimSuffix(names[0], ":")
		for j := 1; j < len(names); j++ {
			if n, err := strconv.ParseUint(values[j], 10, 64); err == nil {
				v[prefix+"."+names[j]] = n
			}
		}
		i++
	}
	return v
}
