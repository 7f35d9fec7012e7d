package gvnet

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
)

// TAPOptions configure NewTAP.
type TAPOptions struct {
	// Name is the TAP device's name, for example "gvtap0". It is created
	// if it does not exist.
	Name string
	// Addr is the stack's address and subnet, for example 10.77.0.2/24.
	Addr netip.Prefix
	// MTU is the link MTU; 0 means 1500.
	MTU int
	// NoSACK turns off TCP selective acknowledgements.
	NoSACK bool
}

// NewTAP opens the TAP device opts.Name in the calling thread's network
// namespace (run it inside netns.NS.Do) and builds a gVisor stack on it:
// a pkg/tcpip/link/fdbased endpoint reading and writing Ethernet frames
// on the device's file descriptor, with ARP, at a random locally
// administered MAC that differs from the kernel side's. Bring the kernel
// side up and give it an address with ip(8). Close stops the stack and
// closes the descriptor, which removes the device.
func NewTAP(opts TAPOptions) (*Stack, error) {
	if !opts.Addr.IsValid() || !opts.Addr.Addr().Is4() {
		return nil, fmt.Errorf("gvnet: %v is not an IPv4 prefix", opts.Addr)
	}
	mtu := opts.MTU
	if mtu == 0 {
		mtu = 1500
	}
	fd, err := openTAP(opts.Name)
	if err != nil {
		return nil, err
	}
	mac, err := stackMAC(opts.Name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ep, err := fdbased.New(&fdbased.Options{
		FDs:            []int{fd},
		MTU:            uint32(mtu),
		EthernetHeader: true,
		Address:        mac,
	})
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("gvnet: fdbased endpoint on %s: %v", opts.Name, err)
	}
	ns, err := newNetstack(Options{Addr: opts.Addr, MTU: mtu, NoSACK: opts.NoSACK}, ep, true)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	// The stack's Wait detaches the endpoint, which stops and waits for
	// its reading goroutines; only then is the descriptor closed.
	return &Stack{ns: ns, addr: opts.Addr, mtu: mtu, closeLink: func() { unix.Close(fd) }}, nil
}

// openTAP opens /dev/net/tun and attaches it to the TAP device name
// (TUNSETIFF with IFF_TAP|IFF_NO_PI: Ethernet frames, no packet
// information header), creating the device if needed.
func openTAP(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("gvnet: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("gvnet: TAP name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("gvnet: TUNSETIFF %s: %w", name, err)
	}
	return fd, nil
}

// stackMAC returns a random locally administered unicast MAC that differs
// from the kernel side of the device name.
func stackMAC(name string) (tcpip.LinkAddress, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return "", fmt.Errorf("gvnet: %s: %w", name, err)
	}
	for {
		var m [6]byte
		if _, err := rand.Read(m[:]); err != nil {
			return "", err
		}
		m[0] = m[0]&^1 | 2 // unicast, locally administered
		if string(m[:]) != string(ifi.HardwareAddr) {
			return tcpip.LinkAddress(m[:]), nil
		}
	}
}
