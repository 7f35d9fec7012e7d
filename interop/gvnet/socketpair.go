package gvnet

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"

	"github.com/ustack/ustack/link"
)

// socketBuffer is the send and receive buffer asked for on both ends of
// the socket pair (SO_SNDBUFFORCE needs CAP_NET_ADMIN; without it the
// ordinary, capped SO_SNDBUF is used): room for a few thousand frames, as
// a NIC ring would hold, so that the pair itself drops nothing in bursts.
const socketBuffer = 8 << 20

// NewSocketpair builds a gVisor stack on gVisor's fdbased endpoint (the
// one it uses on a TAP device) on one end of an AF_UNIX SOCK_SEQPACKET
// socket pair, with Ethernet framing and ARP, and returns the other end as
// a ustack link.Endpoint carrying the stack's Ethernet frames: the virtual
// cable to the gVisor host, for a fault.Bridge to hold. Close the Stack
// first, then the endpoint.
func NewSocketpair(opts Options) (*Stack, *SocketEndpoint, error) {
	if !opts.Addr.IsValid() || !opts.Addr.Addr().Is4() {
		return nil, nil, fmt.Errorf("gvnet: %v is not an IPv4 prefix", opts.Addr)
	}
	mtu := opts.MTU
	if mtu == 0 {
		mtu = 1500
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("gvnet: socketpair: %w", err)
	}
	for _, fd := range fds {
		for _, o := range [][2]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}} {
			if unix.SetsockoptInt(fd, unix.SOL_SOCKET, o[0], socketBuffer) != nil {
				unix.SetsockoptInt(fd, unix.SOL_SOCKET, o[1], socketBuffer)
			}
		}
	}
	mac := randomMAC()
	ep, err := fdbased.New(&fdbased.Options{
		FDs:            []int{fds[0]},
		MTU:            uint32(mtu),
		EthernetHeader: true,
		Address:        tcpip.LinkAddress(mac[:]),
	})
	if err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("gvnet: fdbased endpoint on a socket pair: %v", err)
	}
	ns, err := newNetstack(Options{Addr: opts.Addr, MTU: mtu, NoSACK: opts.NoSACK}, ep, true)
	if err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, err
	}
	if err := unix.SetNonblock(fds[1], true); err != nil {
		unix.Close(fds[1])
		ns.Close()
		ns.Wait()
		unix.Close(fds[0])
		return nil, nil, fmt.Errorf("gvnet: socket pair: %w", err)
	}
	se := &SocketEndpoint{f: os.NewFile(uintptr(fds[1]), "gvnet-socketpair"), mtu: mtu, mac: mac}
	if se.rc, err = se.f.SyscallConn(); err != nil {
		se.f.Close()
		ns.Close()
		ns.Wait()
		unix.Close(fds[0])
		return nil, nil, err
	}
	s := &Stack{ns: ns, addr: opts.Addr, mtu: mtu, closeLink: func() { unix.Close(fds[0]) }}
	return s, se, nil
}

// randomMAC returns a random locally administered unicast MAC.
func randomMAC() link.MAC {
	var m link.MAC
	rand.Read(m[:])
	m[0] = m[0]&^1 | 2
	return m
}

// SocketEndpoint is the far end of a gVisor stack's socket pair (see
// NewSocketpair): a link.Endpoint whose frames are the Ethernet frames the
// gVisor stack sends and receives. Its HardwareAddr is the gVisor stack's
// MAC, the host at the other end of this cable.
type SocketEndpoint struct {
	f  *os.File
	rc interface {
		Read(func(uintptr) bool) error
	}
	mtu    int
	mac    link.MAC
	closed atomic.Bool
}

var _ link.Endpoint = (*SocketEndpoint)(nil)

// ReadFrame reads one frame the gVisor stack sent. A frame longer than b
// is cut to len(b) and reported with link.ErrTruncated.
func (e *SocketEndpoint) ReadFrame(b []byte) (int, error) {
	if e.closed.Load() {
		return 0, net.ErrClosed
	}
	var n, flags int
	var rerr error
	err := e.rc.Read(func(fd uintptr) bool {
		n, _, flags, _, rerr = unix.Recvmsg(int(fd), b, nil, 0)
		return rerr != unix.EAGAIN
	})
	switch {
	case err != nil:
		return 0, mapClosed(err)
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, net.ErrClosed // the gVisor end closed; frames are never empty
	case flags&unix.MSG_TRUNC != 0:
		return n, link.ErrTruncated
	}
	return n, nil
}

// WriteFrame delivers one Ethernet frame to the gVisor stack, waiting for
// room in the socket buffer if it is full.
func (e *SocketEndpoint) WriteFrame(b []byte) error {
	if len(b) > e.mtu+link.EthernetHeaderLen {
		return link.ErrFrameTooLarge
	}
	if e.closed.Load() {
		return net.ErrClosed
	}
	_, err := e.f.Write(b)
	return mapClosed(err)
}

// MTU returns the gVisor stack's link MTU.
func (e *SocketEndpoint) MTU() int { return e.mtu }

// HardwareAddr returns the gVisor stack's MAC address.
func (e *SocketEndpoint) HardwareAddr() link.MAC { return e.mac }

// Close closes this end of the socket pair and unblocks a ReadFrame. It is
// safe to call more than once.
func (e *SocketEndpoint) Close() error {
	if e.closed.Swap(true) {
		return nil
	}
	return e.f.Close()
}

func mapClosed(err error) error {
	if errors.Is(err, os.ErrClosed) {
		return net.ErrClosed
	}
	return err
}
