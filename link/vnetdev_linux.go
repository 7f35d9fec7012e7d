package link

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link/vnet"
)

// vnetDev is the part of a device opened with IFF_VNET_HDR: every read and
// write carries a virtio_net_hdr before the frame, exchanged with readv
// and writev so that the frame is neither copied nor moved.
type vnetDev struct {
	rc  syscall.RawConn
	l3  int // where the IP header starts in an untagged frame (after Ethernet on TAP)
	ofl Offloads

	// The reader's state: one reader at a time (Endpoint's contract).
	rhdr  [vnet.HeaderLen]byte
	riov  [2]unix.Iovec
	rn    int
	rerr  error
	rfn   func(fd uintptr) bool
	plain plainer
	rbuf  []byte // a plain ReadFrame's frame with metadata

	// readFrames' batch, for its callback bfn (readBatch): the caller's
	// buffers, the longest frame, and what was read so far.
	bfn              func(fd uintptr) bool
	bbuf             []byte
	blens            []int
	bofl             []ip.Offload
	bmax, bgot, boff int
	berr             error
	// waited is set when the batch's first read found the device empty
	// and the poller waited for a frame (readBatch).
	waited bool

	wmu  sync.Mutex // guards the writer's state below
	whdr [vnet.HeaderLen]byte
	wiov [2]unix.Iovec
	werr error
	wfn  func(fd uintptr) bool

	drops atomic.Uint64 // frames dropped for a bad vnet header
}

func newVnetDev(f *os.File, l3 int, ofl Offloads) (*vnetDev, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	v := &vnetDev{rc: rc, l3: l3, ofl: ofl}
	v.rfn = func(fd uintptr) bool {
		n, _, errno := unix.Syscall(unix.SYS_READV, fd, uintptr(unsafe.Pointer(&v.riov[0])), 2)
		if errno == unix.EAGAIN {
			return false
		}
		v.rn, v.rerr = int(n), nil
		if errno != 0 {
			v.rn, v.rerr = 0, errno
		}
		return true
	}
	v.bfn = v.readBatch
	v.wfn = func(fd uintptr) bool {
		_, _, errno := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&v.wiov[0])), 2)
		if errno == unix.EAGAIN {
			return false
		}
		v.werr = nil
		if errno != 0 {
			v.werr = errno
		}
		return true
	}
	return v, nil
}

// frameL3 is where the IP header of frame f starts: v.l3, and 4 bytes
// further in a TAP frame with an 802.1Q tag (L3Offset), whose
// virtio_net_hdr offsets the kernel counts from the frame's start with
// the tag (drivers/net/tun.c, tun_put_user: vlan_hlen).
func (v *vnetDev) frameL3(f []byte) int {
	if v.l3 == EthernetHeaderLen {
		return L3Offset(f)
	}
	return v.l3
}

// readRaw reads one virtio_net_hdr and frame into b, returning the frame's
// length and its metadata, checked; a frame with a bad header is dropped,
// counted, and the next one read.
func (v *vnetDev) readRaw(b []byte, o *ip.Offload) (int, error) {
	for {
		v.riov[0].Base = &v.rhdr[0]
		v.riov[0].SetLen(vnet.HeaderLen)
		v.riov[1].Base = unsafe.SliceData(b)
		v.riov[1].SetLen(len(b))
		if err := v.rc.Read(v.rfn); err != nil {
			return 0, mapClosed(err)
		}
		v.riov[1].Base = nil // hold no pointer into b
		if v.rerr != nil {
			if errors.Is(v.rerr, unix.EBADF) || errors.Is(v.rerr, unix.EBADFD) {
				return 0, net.ErrClosed
			}
			return 0, v.rerr
		}
		n := v.rn - vnet.HeaderLen
		if n < 0 {
			v.drops.Add(1)
			continue
		}
		h, _ := vnet.Parse(v.rhdr[:])
		m, err := vnet.Check(h, b[:n], v.frameL3(b[:n]))
		if err != nil {
			v.drops.Add(1)
			continue
		}
		*o = m
		return n, nil
	}
}

// readFrames is BatchReader.ReadFrames: the frames waiting, read back to
// back into buf while maxLen bytes are left, each checked as readRaw
// checks it, waiting only for the first. The whole batch is read in one
// call of the poller's callback (bfn), so that a frame costs its read(2)
// and nothing more: no pass through the poller's locks, and, since the
// descriptor never blocks, no entry into the scheduler's syscall state.
func (v *vnetDev) readFrames(buf []byte, lens []int, ofl []ip.Offload, maxLen int) (int, error) {
	n := min(len(lens), len(ofl))
	if n == 0 {
		return 0, nil
	}
	v.bbuf, v.blens, v.bofl, v.bmax = buf, lens[:n], ofl[:n], maxLen
	v.bgot, v.boff, v.berr, v.waited = 0, 0, nil, false
	err := v.rc.Read(v.bfn)
	v.bbuf, v.blens, v.bofl = nil, nil, nil // hold no pointer into the caller's
	v.riov[1].Base = nil
	if err != nil {
		return 0, mapClosed(err)
	}
	if v.bgot == 0 {
		if errors.Is(v.berr, unix.EBADF) || errors.Is(v.berr, unix.EBADFD) {
			return 0, net.ErrClosed
		}
		return 0, v.berr
	}
	return v.bgot, nil // an error after the first frame: the next call sees it
}

// readBatch is the poller's callback of readFrames: it reads frames until
// none is left (EAGAIN), the batch is full or buf has not maxLen bytes
// left, and reports whether it is done: false only when it found nothing
// to read, so that the poller waits for the device.
func (v *vnetDev) readBatch(fd uintptr) bool {
	for v.bgot < len(v.blens) && (v.bgot == 0 || len(v.bbuf)-v.boff >= v.bmax) {
		if v.bgot == 1 && v.waited {
			// The first frame after a wait goes up alone: traffic of
			// a frame at a time (a request, then its answer) gains
			// nothing from the try for a second, a read that fails
			// with EAGAIN before the first frame is even looked at,
			// on the path of every answer. A burst loses nothing: the
			// next call's callback runs before the poller would wait,
			// and reads the rest as one batch.
			break
		}
		b := v.bbuf[v.boff:]
		var r uintptr
		var errno syscall.Errno
		// The descriptor is non-blocking: the read returns at once.
		if v.boff >= vnet.HeaderLen {
			// After the first frame, a plain read(2), cheaper than
			// readv's iovec, puts the header in the last bytes of the
			// frame before, which are kept aside and put back.
			hb := v.bbuf[v.boff-vnet.HeaderLen:]
			var tail [vnet.HeaderLen]byte
			copy(tail[:], hb)
			r, _, errno = unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(hb))), uintptr(len(hb)))
			copy(v.rhdr[:], hb)
			copy(hb, tail[:])
		} else {
			v.riov[0].Base = &v.rhdr[0]
			v.riov[0].SetLen(vnet.HeaderLen)
			v.riov[1].Base = unsafe.SliceData(b)
			v.riov[1].SetLen(len(b))
			r, _, errno = unix.RawSyscall(unix.SYS_READV, fd, uintptr(unsafe.Pointer(&v.riov[0])), 2)
		}
		switch errno {
		case 0:
		case unix.EAGAIN:
			v.waited = v.bgot == 0 // false: the poller waits, then calls again
			return v.bgot > 0
		case unix.EINTR:
			continue
		default:
			v.berr = errno
			return true
		}
		l := int(r) - vnet.HeaderLen
		if l < 0 {
			v.drops.Add(1)
			continue
		}
		h, _ := vnet.Parse(v.rhdr[:])
		m, err := vnet.Check(h, b[:l], v.frameL3(b[:l]))
		if err != nil {
			v.drops.Add(1)
			continue
		}
		v.blens[v.bgot], v.bofl[v.bgot] = l, m
		v.boff += l
		v.bgot++
	}
	return true
}

// readFrame is ReadFrame over the vnet header: metadata acted upon here,
// plain frames out.
func (v *vnetDev) readFrame(b []byte) (int, error) {
	if v.plain.pending() {
		return v.plain.nextSeg(b)
	}
	if v.rbuf == nil {
		v.rbuf = make([]byte, maxDeviceFrame)
	}
	for {
		var o ip.Offload
		n, err := v.readRaw(v.rbuf, &o)
		if err != nil {
			return 0, err
		}
		whole, err := v.plain.put(v.rbuf[:n], &o, v.frameL3(v.rbuf[:n]))
		if err != nil {
			v.drops.Add(1)
			continue
		}
		if !whole {
			return v.plain.nextSeg(b)
		}
		if c := copy(b, v.rbuf[:n]); c < n {
			return c, ErrTruncated
		}
		return n, nil
	}
}

// write sends b after the header h.
func (v *vnetDev) write(b []byte, h *vnet.Header) error {
	v.wmu.Lock()
	defer v.wmu.Unlock()
	h.Put(v.whdr[:])
	v.wiov[0].Base = &v.whdr[0]
	v.wiov[0].SetLen(vnet.HeaderLen)
	v.wiov[1].Base = unsafe.SliceData(b)
	v.wiov[1].SetLen(len(b))
	err := v.rc.Write(v.wfn)
	v.wiov[1].Base = nil
	if err != nil {
		return mapClosed(err)
	}
	if v.werr != nil && (errors.Is(v.werr, unix.EBADF) || errors.Is(v.werr, unix.EBADFD)) {
		return net.ErrClosed
	}
	return v.werr
}

// Linux TUN/TAP offload flags for TUNSETOFFLOAD (include/uapi/linux/if_tun.h).
// They say what the kernel may hand ustack: TCP super-segments over IPv4
// and IPv6 (which TCP takes whole, or vnet.Split cuts for a reader
// without offloads). What ustack writes is not limited by them.
const (
	tunTCPOffloads = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6
	tunUDPOffloads = unix.TUN_F_USO4 | unix.TUN_F_USO6
)

// openVnet opens queues file descriptors of the TAP (tap) or TUN device
// name with IFF_VNET_HDR (and IFF_MULTI_QUEUE when queues > 1), sets the
// header size and asks for the offloads. It returns the files, the
// device's name and what the kernel accepted; a kernel that refuses
// TUNSETOFFLOAD leaves the offloads off (plain frames behind a zero
// header).
func openVnet(name string, tap bool, queues int) ([]*os.File, string, Offloads, error) {
	flags := uint16(unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if tap {
		flags |= unix.IFF_TAP
	} else {
		flags |= unix.IFF_TUN
	}
	if queues > 1 {
		flags |= unix.IFF_MULTI_QUEUE
	}
	var files []*os.File
	fail := func(err error) ([]*os.File, string, Offloads, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, "", Offloads{}, err
	}
	var ofl Offloads
	for i := range queues {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fail(err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return fail(err)
		}
		ifr.SetUint16(flags)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fail(fmt.Errorf("TUNSETIFF: %w", err))
		}
		name = ifr.Name()
		if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnet.HeaderLen); err != nil {
			unix.Close(fd)
			return fail(fmt.Errorf("TUNSETVNETHDRSZ: %w", err))
		}
		if i == 0 {
			// TUN_F_USO4/6 came with Linux 6.2; TSO and checksum offload
			// are much older. Either set may be refused. What ustack writes is taken whatever they say (the
			// kernel's virtio_net_hdr_to_skb); they decide what the
			// kernel may hand ustack.
			ofl = Offloads{TxChecksum: true, TSO4: true, TSO6: true, MaxGSOSize: 65535}
			switch {
			case unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunTCPOffloads|tunUDPOffloads) == nil:
				ofl.RxChecksum, ofl.GRO, ofl.USO = true, true, true
			case unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunTCPOffloads) == nil:
				ofl.RxChecksum, ofl.GRO = true, true
			}
		}
		files = append(files, os.NewFile(uintptr(fd), "/dev/net/tun"))
	}
	return files, name, ofl, nil
}

// refuseOffloads turns the kernel's offloads towards the device off, and
// reports them off, as after a refused TUNSETOFFLOAD (tests).
func (v *vnetDev) refuseOffloads() error {
	var err error
	if cerr := v.rc.Control(func(fd uintptr) {
		err = unix.IoctlSetInt(int(fd), unix.TUNSETOFFLOAD, 0)
	}); cerr != nil {
		return cerr
	}
	v.ofl.RxChecksum, v.ofl.GRO, v.ofl.USO = false, false, false
	return err
}
