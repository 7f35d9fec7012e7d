package bench

import (
	"fmt"
	"net"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// floodBatch is how many frames one sendmmsg(2) call writes.
const floodBatch = 64

// floodWriter writes spoofed SYN frames onto a link with an AF_PACKET
// socket bound to the device: on a TAP device the frames go to the
// process holding its descriptor (the userspace stack), on a veth to its
// peer (the kernel in the other namespace).
type floodWriter struct {
	fd   int
	b    *synBuilder
	bufs [floodBatch][synFrameLen]byte
	iov  [floodBatch]unix.Iovec
	msgs [floodBatch]unix.Mmsghdr
}

// floodTally is what a flood wrote.
type floodTally struct {
	Sent    uint64        // frames the socket accepted
	Failed  uint64        // frames refused (ENOBUFS and the like)
	Behind  uint64        // frames of the schedule skipped: the writer fell behind
	Elapsed time.Duration // from the first frame to the end
	Err     error         // a failure that stopped the flood early
}

// Rate returns the frames the socket accepted per second.
func (r floodTally) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

// newFloodWriter opens an AF_PACKET socket on device dev inside k's
// namespace. It sends only: protocol 0 binds it to no traffic, so that it
// receives nothing.
func newFloodWriter(k *kernelPeer, dev string, b *synBuilder) (*floodWriter, error) {
	w := &floodWriter{fd: -1, b: b}
	err := k.inside(func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket(AF_PACKET): %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(ethTypeIPv4), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind AF_PACKET to %s: %w", dev, err)
		}
		// A large send buffer, so that the socket does not hold the
		// writer back while the device's queue drains; what the device
		// cannot queue it drops and counts (tx_dropped).
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20)
		w.fd = fd
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench: flood writer on %s: %w", dev, err)
	}
	for i := range w.msgs {
		w.iov[i] = unix.Iovec{Base: &w.bufs[i][0]}
		w.iov[i].SetLen(synFrameLen)
		w.msgs[i].Hdr.Iov = &w.iov[i]
		w.msgs[i].Hdr.SetIovlen(1)
	}
	return w, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Close closes the socket.
func (w *floodWriter) Close() error { return unix.Close(w.fd) }

// send builds n (at most floodBatch) frames and writes them with one
// sendmmsg call, or as many calls as it takes; it returns the frames
// written and refused.
func (w *floodWriter) send(n int) (sent, failed int, err error) {
	for i := 0; i < n; i++ {
		w.b.fill(w.bufs[i][:])
	}
	for sent+failed < n {
		k, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(w.fd),
			uintptr(unsafe.Pointer(&w.msgs[sent+failed])), uintptr(n-sent-failed), 0, 0, 0)
		switch {
		case e == 0:
			sent += int(k)
		case e == unix.EINTR:
		case e == unix.ENOBUFS || e == unix.EAGAIN:
			// The device's queue refused the frame: a drop, as a
			// saturated link drops.
			failed++
			runtime.Gosched()
		default:
			return sent, failed, fmt.Errorf("sendmmsg: %w", e)
		}
	}
	return sent, failed, nil
}

// run floods until stop is closed: rate frames per second, or as fast as
// it can when rate is 0. Behind schedule (the machine busy) it catches up
// by at most a tenth of a second's frames, so that it never bursts more
// than that.
func (w *floodWriter) run(rate int, stop <-chan struct{}) (r floodTally) {
	start := time.Now()
	defer func() { r.Elapsed = time.Since(start) }()
	for {
		select {
		case <-stop:
			return r
		default:
		}
		n := floodBatch
		if rate > 0 {
			due := int64(time.Since(start).Seconds()*float64(rate)) - int64(r.Sent+r.Failed+r.Behind)
			if lag := int64(max(rate/10, floodBatch)); due > lag {
				// Skip what cannot be caught up without a burst.
				r.Behind += uint64(due - lag)
				due = lag
			}
			if due <= 0 {
				time.Sleep(500 * time.Microsecond)
				continue
			}
			n = int(min(due, floodBatch))
		}
		sent, failed, err := w.send(n)
		r.Sent += uint64(sent)
		r.Failed += uint64(failed)
		if err != nil {
			r.Err = err
			return r
		}
	}
}
