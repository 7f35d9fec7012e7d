package script

import (
	"errors"
	"fmt"
	"net/netip"
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
	"ENETUNREACH": 101, "EHOSTUNREACH": 113, "EPROTO": 71, "EAFNOSUPPORT": 97, "EADDRNOTAVAIL": 99,
}

// tuple is the 4-tuple of the stack's local port and the peer's remote
// port, at the run's addresses.
func (r *runner) tuple(local, remote uint16) tcp.Tuple {
	return tcp.Tuple{Local: netip.AddrPortFrom(r.st.LocalAddr(), local), Remote: netip.AddrPortFrom(r.st.RemoteAddr(), remote)}
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
	case errors.Is(err, tcp.ErrNetUnreachable):
		return "ENETUNREACH"
	case errors.Is(err, tcp.ErrHostUnreachable):
		return "EHOSTUNREACH"
	case errors.Is(err, tcp.ErrProtocolUnreachable):
		return "ENOPROTOOPT"
	case errors.Is(err, tcp.ErrSourceRouteFailed):
		return "EOPNOTSUPP"
	case errors.Is(err, tcp.ErrProtocolError):
		return "EPROTO"
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
		if d.Sub(tcptest.Epoch) > t+maxWait {
			r.failf(e.line, "", "still blocked", "%s still blocks after %v of virtual time", c.name, maxWait)
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
