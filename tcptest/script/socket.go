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
	// packetdrill fills in "..." with the --ip_version's domain; a
	// domain of the other family would put packets of the other family
	// on the wire, which the run's stack does not have.
	if c.args[0].kind != xEllipsis {
		d, err := intValue(c.args[0])
		if err != nil || d != afInet && d != afInet6 {
			return nil, fmt.Errorf("only AF_INET and AF_INET6 sockets are supported (got %s)", c.args[0])
		}
		if d != r.ver.domain() {
			return nil, fmt.Errorf("an %s socket in an --ip_version=%s run, whose sockets are %s", familyName(d), r.ver, familyName(r.ver.domain()))
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

// sockaddrArg reads the sockaddr argument of bind or connect ("..." for
// the run's default). A family other than the socket's is EAFNOSUPPORT,
// as Linux's inet_bind, inet6_bind, tcp_v4_connect and tcp_v6_connect
// say. An address whose packets would be of the other family on the wire
// (an IPv4-mapped address in an IPv6 run, an IPv6 one in
// ipv4-mapped-ipv6) is an error naming the line: the run's stack has one
// family.
func (r *runner) sockaddrArg(c *syscall) (sa sockaddr, errno string, err error) {
	if len(c.args) < 2 {
		return sockaddr{family: -1}, "", nil
	}
	if sa, err = parseSockaddr(c.args[1]); err != nil {
		return sa, "", err
	}
	if sa.family >= 0 && sa.family != r.ver.domain() {
		return sa, "EAFNOSUPPORT", nil
	}
	if a := sa.addr; a.IsValid() && !a.IsUnspecified() {
		if (r.ver == IPv4MappedIPv6) != a.Is4In6() {
			return sa, "", fmt.Errorf("address %v would put %s packets on the wire of an --ip_version=%s run",
				a, map[bool]string{true: "IPv4", false: "IPv6"}[a.Unmap().Is4()], r.ver)
		}
	}
	return sa, "", nil
}

func (r *runner) sysBind(c *syscall) (func() outcome, error) {
	s, err := r.sockArg(c)
	if err != nil {
		return nil, err
	}
	sa, errno, err := r.sockaddrArg(c)
	if err != nil {
		return nil, err
	}
	port := r.bindPort
	if sa.hasPort && sa.port != 0 {
		port = sa.port
	}
	// The address must be the stack's (as the script's sockets see it) or
	// the wildcard; Linux refuses another with EADDRNOTAVAIL.
	if a := sa.addr; errno == "" && a.IsValid() && !a.IsUnspecified() && a != r.ver.sockAddr(r.st.LocalAddr()) {
		errno = "EADDRNOTAVAIL"
	}
	return func() outcome {
		if errno != "" {
			return fail(errno)
		}
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
	sa, errno, err := r.sockaddrArg(c)
	if err != nil {
		return nil, err
	}
	port := r.connectPort
	if sa.hasPort && sa.port != 0 {
		port = sa.port
	}
	// The peer is the address given (any of the run's family), else the
	// scripted peer's.
	remote := r.st.RemoteAddr()
	if a := sa.addr; a.IsValid() {
		if a.IsUnspecified() {
			return nil, fmt.Errorf("connect to the unspecified address %v is not supported", a)
		}
		remote = a.Unmap()
	}
	started := false
	return func() outcome {
		if errno != "" {
			return fail(errno)
		}
		if s.lst != nil {
			return fail("EINVAL")
		}
		if s.conn == nil {
			conn, err := r.st.Dial(s.port, netip.AddrPortFrom(remote, port), s.cfg, s.mss)
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
