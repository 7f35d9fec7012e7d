package link

import (
	"crypto/rand"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
)

// TAPOptions configures OpenTAP.
type TAPOptions struct {
	// MAC is ustack's own hardware address on the link. It must differ from
	// the address of the kernel's side of the TAP device. The zero value
	// means a random locally administered unicast address (02:xx:xx:xx:xx:xx).
	MAC MAC
	// MTU is the network-layer MTU; 0 means the device's MTU at open time.
	MTU int
}

// TUNOptions configures OpenTUN.
type TUNOptions struct {
	// MTU is the largest IP packet; 0 means the device's MTU at open time.
	MTU int
}

// TAP is a Linux TAP device: an Endpoint whose frames are Ethernet II
// frames exchanged with the kernel. The kernel's side of the device is an
// ordinary interface with its own MAC address; ustack is the host at the
// other end of the virtual cable.
type TAP struct {
	dev device
	mac MAC
}

// TUN is a Linux TUN device: an Endpoint whose frames are bare IP packets.
// Its HardwareAddr is the zero MAC.
type TUN struct {
	dev device
}

var (
	_ Endpoint = (*TAP)(nil)
	_ Endpoint = (*TUN)(nil)
)

// ErrSameMAC is returned by OpenTAP when TAPOptions.MAC equals the MAC of
// the kernel's side of the device.
var ErrSameMAC = errors.New("link: TAP MAC equals the kernel interface's MAC")

// device is the part common to TAP and TUN: a non-blocking file descriptor
// registered with Go's poller, so that Close unblocks a ReadFrame.
type device struct {
	f      *os.File
	name   string
	mtu    int
	hdrLen int // link header bytes before the network-layer packet
	closed atomic.Bool

	mu      sync.Mutex // guards scratch
	scratch []byte     // maxDeviceFrame bytes, for reads into short buffers
}

// maxDeviceFrame bounds a frame read from a TUN/TAP device: an IP packet
// cannot exceed 65535 bytes (RFC 791, Total Length), plus the link header.
const maxDeviceFrame = 65535 + EthernetHeaderLen

// read reads one frame into b. The kernel silently cuts a frame to the
// buffer it is given, so a buffer shorter than MTU plus link header is
// served through an internal maximum-size buffer to detect truncation.
func (d *device) read(b []byte) (int, error) {
	if d.closed.Load() {
		return 0, net.ErrClosed
	}
	if len(b) >= d.mtu+d.hdrLen {
		n, err := d.f.Read(b)
		return n, mapClosed(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.scratch == nil {
		d.scratch = make([]byte, maxDeviceFrame)
	}
	n, err := d.f.Read(d.scratch)
	if err != nil {
		return 0, mapClosed(err)
	}
	if c := copy(b, d.scratch[:n]); c < n {
		return c, ErrTruncated
	}
	return n, nil
}

// mapClosed reports the error of an operation on a closed file as
// net.ErrClosed, as Endpoint documents.
func mapClosed(err error) error {
	if errors.Is(err, os.ErrClosed) {
		return net.ErrClosed
	}
	return err
}

func (d *device) write(b []byte) error {
	if len(b) > d.mtu+d.hdrLen {
		return ErrFrameTooLarge
	}
	if d.closed.Load() {
		return net.ErrClosed
	}
	_, err := d.f.Write(b)
	return mapClosed(err)
}

func (d *device) close() error {
	if d.closed.Swap(true) {
		return nil
	}
	return d.f.Close()
}

// randomMAC returns a random locally administered unicast address
// 02:xx:xx:xx:xx:xx (IEEE 802: the U/L bit set, the I/G bit clear).
func randomMAC() (MAC, error) {
	var m MAC
	if _, err := rand.Read(m[1:]); err != nil {
		return MAC{}, err
	}
	m[0] = 0x02
	return m, nil
}

// ReadFrame reads one Ethernet frame sent by the kernel. Give it a buffer
// of at least MTU()+EthernetHeaderLen bytes: a shorter one costs a copy
// through an internal buffer (which is how truncation is detected; the
// kernel cuts a frame to the buffer silently, so a frame longer than a
// full-size buffer, possible only if the device's MTU was raised after
// OpenTAP, is not reported as truncated).
func (t *TAP) ReadFrame(b []byte) (int, error) { return t.dev.read(b) }

// WriteFrame hands one Ethernet frame to the kernel. A frame longer than
// MTU()+EthernetHeaderLen is rejected with ErrFrameTooLarge.
func (t *TAP) WriteFrame(b []byte) error { return t.dev.write(b) }

// MTU returns the network-layer MTU.
func (t *TAP) MTU() int { return t.dev.mtu }

// HardwareAddr returns ustack's MAC address on this link (not the kernel's).
func (t *TAP) HardwareAddr() MAC { return t.mac }

// Name returns the interface name of the device, e.g. "ustap0".
func (t *TAP) Name() string { return t.dev.name }

// Close closes the device, which the kernel then removes, and unblocks a
// ReadFrame in progress. It is safe to call more than once.
func (t *TAP) Close() error { return t.dev.close() }

// ReadFrame reads one IP packet sent by the kernel. Give it a buffer of at
// least MTU() bytes: a shorter one costs a copy (see TAP.ReadFrame).
func (t *TUN) ReadFrame(b []byte) (int, error) { return t.dev.read(b) }

// WriteFrame hands one IP packet to the kernel. A packet longer than MTU()
// is rejected with ErrFrameTooLarge.
func (t *TUN) WriteFrame(b []byte) error { return t.dev.write(b) }

// MTU returns the largest IP packet the device carries.
func (t *TUN) MTU() int { return t.dev.mtu }

// HardwareAddr returns the zero MAC: a TUN device has no link layer.
func (t *TUN) HardwareAddr() MAC { return MAC{} }

// Name returns the interface name of the device, e.g. "ustun0".
func (t *TUN) Name() string { return t.dev.name }

// Close closes the device and unblocks a ReadFrame in progress. It is safe
// to call more than once.
func (t *TUN) Close() error { return t.dev.close() }
