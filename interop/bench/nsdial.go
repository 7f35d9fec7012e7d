package bench

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// dialFrom connects to addr from k's namespace, the connection attempt
// bounded by deadline. Only the socket is created on k's worker (a socket
// belongs to the namespace of the thread that creates it); the connect
// and the wait for it run on the caller's goroutine, so that many
// connects can be in flight at once, which kernelPeer.Dial, serialised on
// its worker, cannot do.
func (k *kernelPeer) dialFrom(addr netip.AddrPort, deadline time.Time) (net.Conn, error) {
	fd, err := k.spare.get(k)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	sa := &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return nil, fmt.Errorf("connect %v: %w", addr, err)
	}
	// A non-blocking descriptor joins the runtime's poller.
	f := os.NewFile(uintptr(fd), "tcp")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	if err := f.SetWriteDeadline(deadline); err != nil {
		return nil, err
	}
	var cerr error
	// The connect is done when the socket turns writable: SO_ERROR says
	// how it ended (connect(2), EINPROGRESS).
	if err := rc.Write(func(fd uintptr) bool {
		e, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		switch {
		case err != nil:
			cerr = err
			return true
		case e != 0:
			cerr = unix.Errno(e)
			return true
		}
		_, err = unix.Getpeername(int(fd))
		return err == nil
	}); err != nil {
		return nil, fmt.Errorf("connect %v: %w", addr, err)
	}
	if cerr != nil {
		return nil, fmt.Errorf("connect %v: %w", addr, cerr)
	}
	f.SetWriteDeadline(time.Time{})
	return net.FileConn(f) // a duplicate of fd; f's is closed on return
}

// socketStockSize is how many sockets one trip to the worker makes.
const socketStockSize = 64

// socketStock holds TCP sockets made ahead in a kernelPeer's namespace, so
// that a dial costs a trip to the peer's worker thread only once in
// socketStockSize: under churn the trips, each a handoff between threads,
// were a large part of the client's work.
type socketStock struct {
	mu  sync.Mutex
	fds []int
}

// get returns a fresh non-blocking TCP socket of k's namespace.
func (s *socketStock) get(k *kernelPeer) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fds) == 0 {
		err := k.inside(func() error {
			for range socketStockSize {
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					return err
				}
				s.fds = append(s.fds, fd)
			}
			return nil
		})
		if len(s.fds) == 0 {
			return -1, err
		}
	}
	fd := s.fds[len(s.fds)-1]
	s.fds = s.fds[:len(s.fds)-1]
	return fd, nil
}

// close closes the sockets left.
func (s *socketStock) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fd := range s.fds {
		unix.Close(fd)
	}
	s.fds = nil
}
