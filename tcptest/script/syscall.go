package script

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/ustack/ustack/tcp"
	"github.com/ustack/ustack/tcptest"
)

// errnos are Linux's error numbers of the errors scripts name.
var errnos = map[string]int64{
	"EPERM": 1, "ENOENT": 2, "EINTR": 4, "EBADF": 9, "EAGAIN": 11, "EWOULDBLOCK": 11, "EFAULT": 14,
	"EINVAL": 22, "EPIPE": 32, "ENOPROTOOPT": 92, "EOPNOTSUPP": 95, "EADDRINUSE": 98,
	"ECONNABORTED": 103, "ECONNRESET": 104, "EISCONN": 106, "ENOTCONN": 107, "ETIMEDOUT": 110,
	"ECONNREFUSED": 111, "EALREADY": 114, "EINPROGRESS": 115,
}

func tuple(local, remote uint16) tcp.Tuple {
	return tcp.Tuple{Local: netip.AddrPortFrom(tcptest.LocalAddr, local), Remote: netip.AddrPortFrom(tcptest.RemoteAddr, remote)}
}

// errnoOf maps the core's errors to the errno Linux reports.
func errnoOf(err error) string {
	switch {
	case errors.Is(err, tcp.ErrConnectionRefused):
		return "ECONNREFUSED"
	case errors.Is(err, tcp.ErrConnectionReset):
		return "ECONNRESET"
	case errors.Is(err, tcp.ErrTimeout):
		return "ETIMEDOUT"
	case errors.Is(err, tcp.ErrConnectionAborted):
		return "ECONNABORTED"
	case errors.Is(err, tcp.ErrClosed):
		return "EPIPE"
	}
	return "EIO"
}

// outcome is what a system call returned, or that it would block.
type outcome struct {
	ret   int64
	errno string
	block bool
	bind  *socket // a new socket (socket, accept) to name with the result
}

func ok(v int64) outcome        { return outcome{ret: v} }
func fail(errno string) outcome { return outcome{ret: -1, errno: errno} }
func wouldBlock() outcome       { return outcome{block: true} }
func (o outcome) String() string {
	if o.ret == -1 && o.errno != "" {
		return "-1 " + o.errno
	}
	return fmt.Sprint(o.ret)
}

// pendingCall is a system call that blocks (or must be retried until it
// can complete).
type pendingCall struct {
	e      *event
	c      *syscall
	start  time.Duration
	end    time.Duration // resolved end time (blocking calls written with "...")
	retry  func() outcome
	timing bool // check the end time
}

// syscall runs a system call line at time t (base is the time relative
// times count from).
func (r *runner) syscall(e *event, t, base time.Duration) {
	c := e.call
	if r.blocked != nil {
		r.failf(e.line, "", "", "%s while the blocking %s of line %d is in progress", c.name, r.blocked.c.name, r.blocked.e.line)
		return
	}
	fn, err := r.prepare(e)
	if err != nil {
		r.failf(e.line, "", "", "%s: %v", c.name, err)
		return
	}
	pc := &pendingCall{e: e, c: c, start: t, retry: fn}
	if c.blocking {
		pc.timing = true
		pc.end = c.end
		if e.tkind == timeRel || e.tkind == timeRelRange || e.tkind == timeAny {
			pc.end = base + c.end
		}
	}
	out := fn()
	if !out.block {
		r.finish(pc, out)
		return
	}
	r.tracef("%s(...) blocks", c.name)
	r.blocked = pc
	if c.blocking {
		return // "...": the script goes on; hook completes the call
	}
	// No "...": the call blocks the script itself until the core lets it
	// complete, as packetdrill's main thread would.
	for r.blocked != nil && r.fail == nil {
		d := r.st.NextDeadline()
		if d.IsZero() || r.st.Err() != nil {
			r.failf(e.line, "", "blocks forever", "%s would block forever (no timer can wake it); write it as \"...END %s(...)\" if a later packet completes it", c.name, c.name)
			r.blocked = nil
			return
		}
		r.st.AdvanceTo(d)
		r.checkStack()
	}
}

// hook runs after every call into the core: it completes a blocked call
// as soon as the core allows.
func (r *runner) hook() {
	if r.inHook || r.blocked == nil {
		return
	}
	r.inHook = true
	defer func() { r.inHook = false }()
	pc := r.blocked
	out := pc.retry()
	if out.block {
		return
	}
	r.blocked = nil
	r.finish(pc, out)
}

// finish checks a completed call's result (and end time).
func (r *runner) finish(pc *pendingCall, out outcome) {
	c, e := pc.c, pc.e
	if out.bind != nil {
		r.tracef("%s(%s) = %s (new socket)", c.name, join(c.args, ", "), c.result)
	} else {
		r.tracef("%s(%s) = %s", c.name, join(c.args, ", "), out)
	}
	want := c.result.String()
	if c.errno != "" {
		want += " " + c.errno
	}
	if err := r.checkResult(c, out); err != nil {
		r.failf(e.line, want, out.String(), "%s: %v", c.name, err)
		return
	}
	if pc.timing {
		at := r.now()
		tol := r.tolerance(pc.end, pc.start)
		if at < pc.end-tol || at > pc.end+tol {
			r.failf(e.line, fmt.Sprintf("return at %s sec", secs(pc.end)), fmt.Sprintf("returned at %s sec", secs(at)),
				"timing error: expected system call return at %s sec but happened at %s sec; tolerance %s sec", secs(pc.end), secs(at), secs(tol))
		}
	}
}

// checkResult compares a call's outcome with the script's "= result ERRNO".
func (r *runner) checkResult(c *syscall, out outcome) error {
	res := c.result
	if res.kind == xEllipsis {
		if out.bind != nil {
			return fmt.Errorf("a new socket needs a file descriptor number in the script")
		}
		return nil
	}
	want, err := intValue(res)
	if err != nil {
		return err
	}
	if want == -1 || out.ret == -1 {
		if want != out.ret {
			return fmt.Errorf("expected result %s but got %s", res, out)
		}
		we, ge := errnos[c.errno], errnos[out.errno]
		if c.errno == "" || we == 0 {
			return fmt.Errorf("expected errno %q is unknown", c.errno)
		}
		if we != ge {
			return fmt.Errorf("expected errno %s but got %s", c.errno, out.errno)
		}
		return nil
	}
	if out.bind != nil {
		if _, used := r.fds[int(want)]; used {
			return fmt.Errorf("file descriptor %d is already in use", want)
		}
		out.bind.fd = int(want)
		r.fds[int(want)] = out.bind
		return nil
	}
	if want != out.ret {
		return fmt.Errorf("expected result %d but got %s", want, out)
	}
	return nil
}

// calls are the system calls the runner knows.
var calls = map[string]bool{
	"socket": true, "bind": true, "listen": true, "accept": true, "accept4": true, "connect": true,
	"read": true, "recv": true, "recvfrom": true, "write": true, "send": true, "sendto": true,
	"close": true, "shutdown": true, "setsockopt": true, "getsockopt": true, "fcntl": true, "ioctl": true,
}

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

// prepare checks a call's arguments and returns the function that tries
// it (once, or again and again while it blocks).
func (r *runner) prepare(e *event) (func() outcome, error) {
	c := e.call
	// A file descriptor that names no socket (never opened, or closed):
	// EBADF, as the kernel says.
	if c.name != "socket" && len(c.args) > 0 && c.args[0].kind == xInt && r.fds[int(c.args[0].ival)] == nil {
		if _, known := calls[c.name]; known {
			return func() outcome { return fail("EBADF") }, nil
		}
	}
	switch c.name {
	case "socket":
		return r.sysSocket(c)
	case "bind":
		return r.sysBind(c)
	case "listen":
		return r.sysListen(c)
	case "accept", "accept4":
		return r.sysAccept(c)
	case "connect":
		return r.sysConnect(c)
	case "read", "recv", "recvfrom":
		return r.sysRead(c)
	case "write", "send", "sendto":
		return r.sysWrite(c)
	case "close":
		return r.sysClose(c)
	case "shutdown":
		return r.sysShutdown(c)
	case "setsockopt":
		return r.sysSetsockopt(c)
	case "getsockopt":
		return r.sysGetsockopt(c)
	case "fcntl":
		return r.sysFcntl(c)
	case "ioctl":
		return r.sysIoctl(c)
	}
	return nil, fmt.Errorf("system call %s is not supported by the ustack script runner", c.name)
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
