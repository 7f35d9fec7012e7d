package script

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/ustack/ustack/tcp"
	"github.com/ustack/ustack/tcptest"
)

// socket is a file descriptor of the script's process: a TCP socket in
// the test stack.
type socket struct {
	fd       int
	nonblock bool
	cfg      *tcp.Config // this socket's configuration (shared with a listener's connections)
	mss      uint16      // TCP_MAXSEG, 0 for the route's
	port     uint16      // bound port
	reuse    bool
	linger   bool
	lingerS  int64
	keep     bool
	kaIdle   time.Duration
	kaIntvl  time.Duration
	kaCnt    int
	lst      *tcptest.Listener
	conn     *tcptest.Conn
	listenFD *socket // the listening socket an accepted one came from
	reported bool    // the connection's error was reported (Linux clears sk_err)
	rdShut   bool
	wrShut   bool
	read     uint64 // bytes read, for SIOCINQ
}

type sockets struct {
	fds         map[int]*socket
	connectPort uint16
}

func (s *sockets) init() {
	s.fds = make(map[int]*socket)
	s.connectPort = 8080
}

// sockArg returns the socket named by a call's first argument.
func (r *runner) sockArg(c *syscall) (*socket, error) {
	if len(c.args) == 0 {
		return nil, fmt.Errorf("missing file descriptor")
	}
	fd, err := intValue(c.args[0])
	if err != nil {
		return nil, err
	}
	s := r.fds[int(fd)]
	if s == nil {
		return nil, fmt.Errorf("file descriptor %d is not a socket of this script", fd)
	}
	return s, nil
}

func argInt(c *syscall, i int) (int64, error) {
	if i >= len(c.args) {
		return 0, fmt.Errorf("missing argument %d", i+1)
	}
	return intValue(c.args[i])
}

// countArg reads a byte count argument ("..." for a buffer is fine, the
// count is not).
func countArg(c *syscall, i int) (int, error) {
	v, err := argInt(c, i)
	if err != nil {
		return 0, err
	}
	if v < 0 || v > 1<<30 {
		return 0, fmt.Errorf("bad byte count %d", v)
	}
	return int(v), nil
}

func (r *runner) sysSocket(c *syscall) (func() outcome, error) {
	if len(c.args) != 3 {
		return nil, fmt.Errorf("expected 3 arguments")
	}
	if c.args[0].kind != xEllipsis {
		if d, err := intValue(c.args[0]); err != nil || d != 2 {
			return nil, fmt.Errorf("only AF_INET sockets are supported")
		}
	}
	typ, err := intValue(c.args[1])
	if err != nil {
		return nil, err
	}
	if typ&0xf != 1 {
		return nil, fmt.Errorf("only SOCK_STREAM sockets are supported (got %s)", c.args[1])
	}
	if c.args[2].kind != xEllipsis {
		if p, err := intValue(c.args[2]); err != nil || (p != 0 && p != 6) {
			return nil, fmt.Errorf("only IPPROTO_TCP is supported (got %s)", c.args[2])
		}
	}
	return func() outcome {
		cfg := *r.st.Config()
		s := &socket{cfg: &cfg, nonblock: typ&0x800 != 0}
		return outcome{ret: 0, bind: s}
	}, nil
}

// sockaddrPort returns the port of a sockaddr argument, 0 for "...".
func sockaddrPort(e *expr) (uint16, error) {
	if e.kind == xEllipsis {
		return 0, nil
	}
	if e.kind != xList {
		return 0, fmt.Errorf("expected a sockaddr, found %s", e)
	}
	for _, f := range e.elems {
		if f.kind == xAssign && f.text == "sin_port" {
			v := f.elems[0]
			if v.kind == xCall && v.text == "htons" && len(v.elems) == 1 {
				v = v.elems[0]
			}
			p, err := intValue(v)
			if err != nil || p < 0 || p > 0xffff {
				return 0, fmt.Errorf("bad sin_port %s", f.elems[0])
			}
			return uint16(p), nil
		}
	}
	return 0, nil
}

func (r *runner) sysBind(c *syscall) (func() outcome, error) {
	s, err := r.sockArg(c)
	if err != nil {
		return nil, err
	}
	port := r.bindPort
	if len(c.args) > 1 {
		p, err := sockaddrPort(c.args[1])
		if err != nil {
			return nil, err
		}
		if p != 0 {
			port = p
		}
	}
	return func() outcome {
		if s.port != 0 || s.conn != nil {
			return fail("EINVAL")
		}
		s.port = port
		return ok(0)
	}, nil
}

func (r *runner) sysListen(c *syscall) (func() outcome, error) {
	s, err := r.sockArg(c)
	if err != nil {
		return nil, err
	}
	backlog, err := argInt(c, 1)
	if err != nil {
		return nil, err
	}
	return func() outcome {
		if s.conn != nil {
			return fail("EINVAL")
		}
		if s.lst != nil {
			return ok(0)
		}
		if s.port == 0 {
			s.port = r.st.EphemeralPort()
		}
		l, err := r.st.Listen(s.port, int(max(backlog, 1)), s.cfg, s.mss)
		if err != nil {
			return fail("EADDRINUSE")
		}
		s.lst = l
		r.listening, r.listenPort = true, s.port
		return ok(0)
	}, nil
}

func (r *runner) sysAccept(c *syscall) (func() outcome, error) {
	s, err := r.sockArg(c)
	if err != nil {
		return nil, err
	}
	return func() outcome {
		if s.lst == nil {
			return fail("EINVAL")
		}
		conn := s.lst.Accept()
		if conn == nil {
			if s.nonblock {
				return fail("EAGAIN")
			}
			return wouldBlock()
		}
		ns := &socket{cfg: s.cfg, mss: s.mss, conn: conn, listenFD: s, port: s.port,
			keep: s.keep, kaIdle: s.kaIdle, kaIntvl: s.kaIntvl, kaCnt: s.kaCnt, linger: s.linger, lingerS: s.lingerS}
		if s.keep {
			conn.SetKeepAliveParams(s.kaIdle, s.kaIntvl, s.kaCnt)
			conn.SetKeepAlive(true)
		}
		return outcome{bind: ns}
	}, nil
}

func (r *runner) sysConnect(c *syscall) (func() outcome, error) {
	s, err := r.sockArg(c)
	if err != nil {
		return nil, err
	}
	port := r.connectPort
	if len(c.args) > 1 {
		p, err := sockaddrPort(c.args[1])
		if err != nil {
			return nil, err
		}
		if p != 0 {
			port = p
		}
	}
	started := false
	return func() outcome {
		if s.lst != nil {
			return fail("EINVAL")
		}
		if s.conn == nil {
			conn, err := r.st.Dial(s.port, netip.AddrPortFrom(tcptest.RemoteAddr, port), s.cfg, s.mss)
			if err != nil {
				return fail("EADDRINUSE")
			}
			s.conn, started = conn, true
			if s.port == 0 {
				s.port = conn.Tuple().Local.Port()
			}
			r.cur, r.listening = r.flowFor(conn.Tuple()), false
			if s.keep {
				conn.SetKeepAliveParams(s.kaIdle, s.kaIntvl, s.kaCnt)
				conn.SetKeepAlive(true)
			}
		}
		tc := s.conn.TCP()
		switch {
		case tc.Established():
			if started {
				return ok(0)
			}
			return fail("EISCONN")
		case tc.Err() != nil:
			s.reported = true
			return fail(errnoOf(tc.Err()))
		case tc.Done():
			return fail("ECONNABORTED")
		case s.nonblock:
			if started {
				started = false
				return fail("EINPROGRESS")
			}
			return fail("EALREADY")
		}
		return wouldBlock()
	}, nil
}

// connErr reports the connection's error once, as Linux reports sk_err
// once; "" when there is none to report.
func (s *socket) connErr() string {
	if s.conn == nil || s.reported {
		return ""
	}
	if err := s.conn.TCP().Err(); err != nil {
		s.reported = true
		return errnoOf(err)
	}
	return ""
}

func (r *runner) sysRead(c *syscall) (func() outcome, error) {
	s, err := r.sockArg(c)
	if err != nil {
		return nil, err
	}
	n, err := countArg(c, 2)
	if err != nil {
		return nil, err
	}
	nonblock := false
	if c.name != "read" && len(c.args) > 3 {
		fl, err := intValue(c.args[3])
		if err != nil {
			return nil, err
		}
		if fl&^0x40 != 0 {
			return nil, fmt.Errorf("flags %s are not supported (only MSG_DONTWAIT)", c.args[3])
		}
		nonblock = fl&0x40 != 0
	}
	buf := make([]byte, n)
	return func() outcome {
		if s.conn == nil {
			return fail("ENOTCONN")
		}
		if s.rdShut {
			return ok(0)
		}
		if n == 0 {
			return ok(0)
		}
		got, err := s.conn.Read(buf)
		switch {
		case got > 0:
			s.read += uint64(got)
			return ok(int64(got))
		case err == io.EOF:
			return ok(0)
		case err != nil:
			if e := s.connErr(); e != "" {
				return fail(e)
			}
			return ok(0) // the error was reported: end of file, as Linux
		case s.nonblock || nonblock:
			return fail("EAGAIN")
		}
		return wouldBlock()
	}, nil
}

func (r *runner) sysWrite(c *syscall) (func() outcome, error) {
	s, err := r.sockArg(c)
	if err != nil {
		return nil, err
	}
	n, err := countArg(c, 2)
	if err != nil {
		return nil, err
	}
	nonblock := false
	if c.name != "write" && len(c.args) > 3 {
		fl, err := intValue(c.args[3])
		if err != nil {
			return nil, err
		}
		if fl&^(0x40|0x4000) != 0 {
			return nil, fmt.Errorf("flags %s are not supported (only MSG_DONTWAIT, MSG_NOSIGNAL)", c.args[3])
		}
		nonblock = fl&0x40 != 0
	}
	if c.name == "sendto" && len(c.args) > 4 && c.args[4].kind != xEllipsis && !(c.args[4].kind == xWord && c.args[4].text == "NULL") {
		return nil, fmt.Errorf("sendto with an address is not supported")
	}
	buf := make([]byte, n)
	done := 0
	return func() outcome {
		if s.conn == nil {
			return fail("EPIPE")
		}
		if s.wrShut {
			return fail("EPIPE")
		}
		if e := s.connErr(); e != "" {
			return fail(e)
		}
		tc := s.conn.TCP()
		if tc.Err() != nil || tc.Done() {
			return fail("EPIPE")
		}
		if !tc.Established() {
			// Linux waits for the handshake (sk_stream_wait_connect).
			if s.nonblock || nonblock {
				return fail("EAGAIN")
			}
			return wouldBlock()
		}
		if n == 0 {
			return ok(0)
		}
		w, err := s.conn.Write(buf[done:])
		done += w
		if err != nil && w == 0 {
			if done > 0 {
				return ok(int64(done))
			}
			if e := s.connErr(); e != "" {
				return fail(e)
			}
			return fail("EPIPE")
		}
		if done == n {
			return ok(int64(n))
		}
		if s.nonblock || nonblock {
			if done == 0 {
				return fail("EAGAIN")
			}
			w := done
			done = 0
			return ok(int64(w))
		}
		return wouldBlock()
	}, nil
}

func (r *runner) sysClose(c *syscall) (func() outcome, error) {
	s, err := r.sockArg(c)
	if err != nil {
		return nil, err
	}
	return func() outcome {
		delete(r.fds, s.fd)
		switch {
		case s.lst != nil:
			s.lst.Close()
			if r.listening && r.listenPort == s.port {
				r.listening = false
			}
		case s.conn != nil:
			if s.linger && s.lingerS == 0 {
				s.conn.Abort()
			} else {
				s.conn.Close()
			}
		}
		return ok(0)
	}, nil
}

func (r *runner) sysShutdown(c *syscall) (func() outcome, error) {
	s, err := r.sockArg(c)
	if err != nil {
		return nil, err
	}
	how, err := argInt(c, 1)
	if err != nil {
		return nil, err
	}
	if how < 0 || how > 2 {
		return nil, fmt.Errorf("bad shutdown mode %d", how)
	}
	return func() outcome {
		if s.conn == nil {
			return fail("ENOTCONN")
		}
		if how == 0 || how == 2 {
			s.rdShut = true
		}
		if how == 1 || how == 2 {
			if !s.wrShut {
				s.wrShut = true
				s.conn.CloseWrite()
			}
		}
		return ok(0)
	}, nil
}

func (r *runner) sysFcntl(c *syscall) (func() outcome, error) {
	s, err := r.sockArg(c)
	if err != nil {
		return nil, err
	}
	cmd, err := argInt(c, 1)
	if err != nil {
		return nil, err
	}
	switch cmd {
	case 4: // F_SETFL
		fl, err := argInt(c, 2)
		if err != nil {
			return nil, err
		}
		return func() outcome {
			s.nonblock = fl&0x800 != 0
			return ok(0)
		}, nil
	case 3: // F_GETFL
		return func() outcome {
			v := int64(2) // O_RDWR
			if s.nonblock {
				v |= 0x800
			}
			return ok(v)
		}, nil
	}
	return nil, fmt.Errorf("fcntl command %s is not supported", c.args[1])
}

func (r *runner) sysIoctl(c *syscall) (func() outcome, error) {
	s, err := r.sockArg(c)
	if err != nil {
		return nil, err
	}
	req, err := argInt(c, 1)
	if err != nil {
		return nil, err
	}
	if req != 0x541B || len(c.args) < 3 {
		return nil, fmt.Errorf("ioctl %s is not supported (only SIOCINQ/FIONREAD)", c.args[1])
	}
	want, err := intValue(c.args[2])
	if err != nil {
		return nil, err
	}
	return func() outcome {
		if s.conn == nil {
			return fail("EINVAL")
		}
		got := int64(s.conn.TCP().Info().BytesIn - s.read)
		if got != want {
			r.failf(r.ev.line, fmt.Sprintf("[%d]", want), fmt.Sprintf("[%d]", got), "ioctl SIOCINQ: expected %d bytes queued, got %d", want, got)
		}
		return ok(0)
	}, nil
}

// describe is for messages about unsupported options.
func describe(e *expr) string { return strings.TrimSpace(e.String()) }
