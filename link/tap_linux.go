package link

import (
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/songgao/water"
)

// OpenTAP creates (or attaches to) the TAP device name in the calling
// thread's network namespace. The device is removed when the TAP is closed
// unless it was made persistent beforehand. Bring the kernel side up and
// give it addresses with ip(8).
func OpenTAP(name string, opts TAPOptions) (*TAP, error) {
	t := &TAP{}
	dev := &t.dev
	kernelMAC, err := openDevice(dev, water.TAP, name, opts.MTU, EthernetHeaderLen)
	if err != nil {
		return nil, err
	}
	mac := opts.MAC
	switch {
	case mac.IsZero():
		for mac.IsZero() || mac == kernelMAC {
			if mac, err = randomMAC(); err != nil {
				dev.close()
				return nil, err
			}
		}
	case mac == kernelMAC:
		dev.close()
		return nil, fmt.Errorf("%w: %v", ErrSameMAC, mac)
	case mac.IsMulticast():
		dev.close()
		return nil, fmt.Errorf("link: TAP MAC %v is a multicast address", mac)
	}
	t.mac = mac
	return t, nil
}

// OpenTUN creates (or attaches to) the TUN device name in the calling
// thread's network namespace. Frames are bare IP packets (no packet
// information header: IFF_NO_PI).
func OpenTUN(name string, opts TUNOptions) (*TUN, error) {
	t := &TUN{}
	if _, err := openDevice(&t.dev, water.TUN, name, opts.MTU, 0); err != nil {
		return nil, err
	}
	return t, nil
}

// openDevice opens /dev/net/tun through water and checks that the file is
// non-blocking and registered with the runtime poller, so that Close
// unblocks a blocked Read. water opens it with O_NONBLOCK and wraps it with
// os.NewFile, which registers non-blocking descriptors with the poller; if
// that ever changes, the descriptor is re-wrapped here.
func openDevice(dev *device, kind water.DeviceType, name string, mtu, hdrLen int) (kernelMAC MAC, err error) {
	cfg := water.Config{DeviceType: kind}
	cfg.Name = name
	ifce, err := water.New(cfg)
	if err != nil {
		return MAC{}, fmt.Errorf("link: open %s: %w", name, err)
	}
	f, err := pollable(ifce.ReadWriteCloser)
	if err != nil {
		ifce.Close()
		return MAC{}, fmt.Errorf("link: open %s: %w", name, err)
	}
	dev.f, dev.name, dev.hdrLen = f, ifce.Name(), hdrLen
	ni, err := net.InterfaceByName(dev.name)
	if err != nil {
		dev.close()
		return MAC{}, fmt.Errorf("link: %s: %w", dev.name, err)
	}
	dev.mtu = mtu
	if dev.mtu <= 0 {
		dev.mtu = ni.MTU
	}
	if len(ni.HardwareAddr) == 6 {
		kernelMAC = MAC(ni.HardwareAddr)
	}
	return kernelMAC, nil
}

// pollable returns rw as an *os.File whose descriptor is in non-blocking
// mode and therefore served by the runtime poller.
func pollable(rw io.ReadWriteCloser) (*os.File, error) {
	f, ok := rw.(*os.File)
	if !ok {
		return nil, fmt.Errorf("water returned %T, not *os.File", rw)
	}
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nonblock bool
	var ctlErr error
	if err := sc.Control(func(fd uintptr) {
		var flags int
		flags, ctlErr = fcntlGetFl(fd)
		nonblock = flags&syscall.O_NONBLOCK != 0
	}); err != nil {
		return nil, err
	}
	if ctlErr != nil {
		return nil, ctlErr
	}
	if nonblock {
		return f, nil
	}
	// Blocking descriptor: duplicate it in non-blocking mode and let
	// os.NewFile register the copy with the poller.
	var fd int
	if err := sc.Control(func(orig uintptr) {
		fd, ctlErr = syscall.Dup(int(orig))
	}); err != nil {
		return nil, err
	}
	if ctlErr != nil {
		return nil, ctlErr
	}
	f.Close()
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "tun"), nil
}

func fcntlGetFl(fd uintptr) (int, error) {
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(flags), nil
}
