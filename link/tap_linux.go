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
//
// Unless opts.NoOffloads is set, the device is opened with IFF_VNET_HDR
// and offloads (see Offloads; TAP.ReadFrame still returns plain frames),
// with opts.Queues queues (IFF_MULTI_QUEUE). A kernel that refuses
// IFF_VNET_HDR gets a plain device instead (one queue); one that refuses
// the offloads, a device whose Offloads are off.
func OpenTAP(name string, opts TAPOptions) (*TAP, error) {
	queues, err := openQueues(name, true, opts.NoOffloads, opts.Queues, opts.MTU, EthernetHeaderLen)
	if err != nil {
		return nil, err
	}
	t := &TAP{dev: queues[0]}
	dev := t.dev
	kernelMAC, err := kernelMACOf(dev.name)
	if err != nil {
		closeAll(queues)
		return nil, err
	}
	mac := opts.MAC
	switch {
	case mac.IsZero():
		for mac.IsZero() || mac == kernelMAC {
			if mac, err = randomMAC(); err != nil {
				closeAll(queues)
				return nil, err
			}
		}
	case mac == kernelMAC:
		closeAll(queues)
		return nil, fmt.Errorf("%w: %v", ErrSameMAC, mac)
	case mac.IsMulticast():
		closeAll(queues)
		return nil, fmt.Errorf("link: TAP MAC %v is a multicast address", mac)
	}
	t.mac = mac
	if len(queues) > 1 {
		t.queues = []*TAP{t}
		for _, q := range queues[1:] {
			t.queues = append(t.queues, &TAP{dev: q, mac: mac})
		}
	}
	return t, nil
}

// kernelMACOf returns the MAC of the kernel's side of the device name.
func kernelMACOf(name string) (MAC, error) {
	ni, err := net.InterfaceByName(name)
	if err != nil {
		return MAC{}, fmt.Errorf("link: %s: %w", name, err)
	}
	if len(ni.HardwareAddr) == 6 {
		return MAC(ni.HardwareAddr), nil
	}
	return MAC{}, nil
}

func closeAll(ds []*device) {
	for _, d := range ds {
		d.close()
	}
}

// openQueues opens the device's queues: with the vnet header unless
// noOffloads (or the kernel refuses it and one queue will do), else
// through water.
func openQueues(name string, tap, noOffloads bool, queues, mtu, hdrLen int) ([]*device, error) {
	queues = max(queues, 1)
	if !noOffloads {
		files, ifname, ofl, err := openVnet(name, tap, queues)
		if err == nil {
			ni, err := net.InterfaceByName(ifname)
			if err != nil {
				for _, f := range files {
					f.Close()
				}
				return nil, fmt.Errorf("link: %s: %w", ifname, err)
			}
			if mtu <= 0 {
				mtu = ni.MTU
			}
			var ds []*device
			for _, f := range files {
				v, err := newVnetDev(f, hdrLen, ofl)
				if err != nil {
					for _, f := range files {
						f.Close()
					}
					return nil, err
				}
				ds = append(ds, &device{f: f, name: ifname, mtu: mtu, hdrLen: hdrLen, v: v})
			}
			return ds, nil
		}
		if queues > 1 {
			return nil, fmt.Errorf("link: open %s with %d queues: %w", name, queues, err)
		}
		// An older kernel or a restricted /dev/net/tun: plain frames.
	} else if queues > 1 {
		return nil, fmt.Errorf("link: open %s: %d queues need the offloads path (NoOffloads is set)", name, queues)
	}
	d := &device{}
	kind := water.DeviceType(water.TUN)
	if tap {
		kind = water.TAP
	}
	if _, err := openDevice(d, kind, name, mtu, hdrLen); err != nil {
		return nil, err
	}
	return []*device{d}, nil
}

// OpenTUN creates (or attaches to) the TUN device name in the calling
// thread's network namespace. Frames are bare IP packets (no packet
// information header: IFF_NO_PI).
// Offloads and queues are as for OpenTAP.
func OpenTUN(name string, opts TUNOptions) (*TUN, error) {
	queues, err := openQueues(name, false, opts.NoOffloads, opts.Queues, opts.MTU, 0)
	if err != nil {
		return nil, err
	}
	t := &TUN{dev: queues[0]}
	if len(queues) > 1 {
		t.queues = []*TUN{t}
		for _, q := range queues[1:] {
			t.queues = append(t.queues, &TUN{dev: q})
		}
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
