package link

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link/vnet"
)

// TAPOptions configures OpenTAP.
type TAPOptions struct {
	// MAC is ustack's own hardware address on the link. It must differ from
	// the address of the kernel's side of the TAP device. The zero value
	// means a random locally administered unicast address (02:xx:xx:xx:xx:xx).
	MAC MAC
	// MTU is the network-layer MTU; 0 means the device's MTU at open time.
	MTU int
	// NoOffloads opens the device without a virtio_net_hdr (through
	// water, as on other platforms): plain frames only. By default, on
	// Linux, the device is opened with IFF_VNET_HDR and asks the kernel
	// for checksum offload and TSO (TUNSETOFFLOAD); see Offloads.
	NoOffloads bool
	// Queues is the number of queues (IFF_MULTI_QUEUE), each its own file
	// descriptor, served by Queues(); 0 or 1 means one. It requires the
	// offloads path (NoOffloads false).
	Queues int
}

// TUNOptions configures OpenTUN.
type TUNOptions struct {
	// MTU is the largest IP packet; 0 means the device's MTU at open time.
	MTU int
	// NoOffloads and Queues are as in TAPOptions.
	NoOffloads bool
	Queues     int
}

// TAP is a Linux TAP device: an Endpoint whose frames are Ethernet II
// frames exchanged with the kernel. The kernel's side of the device is an
// ordinary interface with its own MAC address; ustack is the host at the
// other end of the virtual cable.
type TAP struct {
	dev    *device
	mac    MAC
	queues []*TAP // every queue, this one first; set on the first only
}

// TUN is a Linux TUN device: an Endpoint whose frames are bare IP packets.
// Its HardwareAddr is the zero MAC.
type TUN struct {
	dev    *device
	queues []*TUN
}

var (
	_ BatchReader = (*TAP)(nil)
	_ BatchReader = (*TUN)(nil)
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

	v *vnetDev // the virtio_net_hdr path; nil when opened through water
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
	if d.v != nil {
		n, err := d.v.readFrame(b)
		return n, d.closedErr(err)
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

// l3 is where the IP header of frame b starts: d.hdrLen, and 4 bytes
// further in a TAP frame with an 802.1Q tag (L3Offset).
func (d *device) l3(b []byte) int {
	if d.hdrLen == EthernetHeaderLen {
		return L3Offset(b)
	}
	return d.hdrLen
}

func (d *device) write(b []byte) error {
	if len(b) > d.mtu+d.l3(b) {
		return ErrFrameTooLarge
	}
	if d.closed.Load() {
		return net.ErrClosed
	}
	if d.v != nil {
		return d.closedErr(d.v.write(b, &vnetNone))
	}
	_, err := d.f.Write(b)
	return mapClosed(err)
}

// vnetNone is the virtio_net_hdr of a plain frame (read only).
var vnetNone vnet.Header

// readOffload is ReadFrameOffload.
func (d *device) readOffload(b []byte, o *ip.Offload) (int, error) {
	*o = ip.Offload{}
	if d.closed.Load() {
		return 0, net.ErrClosed
	}
	if d.v == nil {
		return d.read(b)
	}
	if d.v.plain.pending() {
		return d.v.plain.nextSeg(b) // left by a plain ReadFrame before
	}
	n, err := d.v.readRaw(b, o)
	return n, d.closedErr(err)
}

// closedErr reports an error of an I/O on a closed device (the poller
// says "use of closed file") as net.ErrClosed, as Endpoint documents.
func (d *device) closedErr(err error) error {
	if err != nil && d.closed.Load() {
		return net.ErrClosed
	}
	return err
}

// writeOffload is WriteFrameOffload.
func (d *device) writeOffload(b []byte, o *ip.Offload) error {
	if *o == (ip.Offload{}) || d.v == nil {
		if *o != (ip.Offload{}) {
			return fmt.Errorf("%w: the device was opened without offloads", ErrOffload)
		}
		return d.write(b)
	}
	if d.closed.Load() {
		return net.ErrClosed
	}
	l3 := d.l3(b)
	if err := d.v.ofl.checkTx(o, len(b), l3); err != nil {
		return err
	}
	if o.GSOType == 0 && len(b) > d.mtu+l3 {
		return ErrFrameTooLarge
	}
	h := vnet.HeaderFor(o, l3, 0)
	if o.GSOType != 0 && len(b) > l3 {
		ihl := int(b[l3]&0x0f) * 4
		if b[l3]>>4 == 6 {
			ihl = 40 // the fixed IPv6 header: TSO6 frames have no extension header
		}
		if len(b) >= l3+ihl+13 {
			h.HdrLen = uint16(l3 + ihl + int(b[l3+ihl+12]>>4)*4)
		}
	}
	return d.closedErr(d.v.write(b, &h))
}

// offloads reports the device's offloads.
func (d *device) offloads() Offloads {
	if d.v == nil {
		return Offloads{}
	}
	return d.v.ofl
}

// readFrames is ReadFrames: a batch with the vnet header, else one frame.
func (d *device) readFrames(buf []byte, lens []int, ofl []ip.Offload) (int, error) {
	if len(lens) == 0 || len(ofl) == 0 {
		return 0, nil
	}
	if d.v == nil || d.v.plain.pending() {
		n, err := d.readOffload(buf, &ofl[0])
		lens[0] = n
		if err != nil {
			return 0, err
		}
		return 1, nil
	}
	if d.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := d.v.readFrames(buf, lens, ofl, d.maxFrameLen())
	return n, d.closedErr(err)
}

// maxFrameLen is the longest frame a read may return.
func (d *device) maxFrameLen() int {
	if d.v != nil && d.v.ofl.GRO {
		return d.hdrLen + d.v.ofl.MaxGSOSize
	}
	return d.hdrLen + d.mtu
}

// drops counts frames dropped for a virtio_net_hdr that did not fit them.
func (d *device) drops() uint64 {
	if d.v == nil {
		return 0
	}
	return d.v.drops.Load()
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

// Close closes the device (every queue, when called on the first), which
// the kernel then removes, and unblocks a ReadFrame in progress. It is
// safe to call more than once.
func (t *TAP) Close() error {
	for _, q := range t.queues[min(1, len(t.queues)):] {
		q.dev.close()
	}
	return t.dev.close()
}

// ReadFrameOffload reads one frame with its metadata (OffloadEndpoint):
// with GRO a TCP super-segment of up to 65535 bytes of IP datagram, so
// give it a buffer of MaxGSOSize+EthernetHeaderLen bytes. A frame whose
// virtio_net_hdr does not fit it is dropped and counted in Drops.
func (t *TAP) ReadFrameOffload(b []byte, o *ip.Offload) (int, error) {
	return t.dev.readOffload(b, o)
}

// WriteFrameOffload writes one frame with its metadata (OffloadEndpoint).
func (t *TAP) WriteFrameOffload(b []byte, o *ip.Offload) error { return t.dev.writeOffload(b, o) }

// Offloads reports what the kernel agreed to (zero with NoOffloads or
// when it refused them: plain frames).
func (t *TAP) Offloads() Offloads { return t.dev.offloads() }

// Drops counts the frames read and dropped because their virtio_net_hdr
// did not fit them (vnet.Check), for this queue.
func (t *TAP) Drops() uint64 { return t.dev.drops() }

// ReadFrames reads the frames waiting, back to back (BatchReader).
func (t *TAP) ReadFrames(buf []byte, lens []int, ofl []ip.Offload) (int, error) {
	return t.dev.readFrames(buf, lens, ofl)
}

// MaxFrameLen is the longest frame ReadFrameOffload and ReadFrames return.
func (t *TAP) MaxFrameLen() int { return t.dev.maxFrameLen() }

// Queues returns the device's queues (TAPOptions.Queues), this one first:
// each is an Endpoint of its own file descriptor, to be read by its own
// goroutine; the kernel spreads flows over them by hash. Closing the
// first closes them all.
func (t *TAP) Queues() []*TAP {
	if len(t.queues) == 0 {
		return []*TAP{t}
	}
	return t.queues
}

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

// Close closes the device (every queue, when called on the first) and
// unblocks a ReadFrame in progress. It is safe to call more than once.
func (t *TUN) Close() error {
	for _, q := range t.queues[min(1, len(t.queues)):] {
		q.dev.close()
	}
	return t.dev.close()
}

// ReadFrameOffload reads one IP packet with its metadata (see
// TAP.ReadFrameOffload).
func (t *TUN) ReadFrameOffload(b []byte, o *ip.Offload) (int, error) {
	return t.dev.readOffload(b, o)
}

// WriteFrameOffload writes one IP packet with its metadata.
func (t *TUN) WriteFrameOffload(b []byte, o *ip.Offload) error { return t.dev.writeOffload(b, o) }

// Offloads reports what the kernel agreed to.
func (t *TUN) Offloads() Offloads { return t.dev.offloads() }

// Drops counts packets dropped for a virtio_net_hdr that did not fit them.
func (t *TUN) Drops() uint64 { return t.dev.drops() }

// ReadFrames reads the packets waiting, back to back (BatchReader).
func (t *TUN) ReadFrames(buf []byte, lens []int, ofl []ip.Offload) (int, error) {
	return t.dev.readFrames(buf, lens, ofl)
}

// MaxFrameLen is the longest packet ReadFrameOffload and ReadFrames return.
func (t *TUN) MaxFrameLen() int { return t.dev.maxFrameLen() }

// Queues returns the device's queues, this one first (see TAP.Queues).
func (t *TUN) Queues() []*TUN {
	if len(t.queues) == 0 {
		return []*TUN{t}
	}
	return t.queues
}
