package script

import (
	"fmt"
	"time"

	"github.com/ustack/ustack/tcp"
)

// Socket option levels and names (Linux values).
const (
	solSocket = 1
	solTCP    = 6

	soReuseAddr = 2
	soError     = 4
	soSndBuf    = 7
	soRcvBuf    = 8
	soKeepAlive = 9
	soLinger    = 13

	tcpNoDelay   = 1
	tcpMaxSeg    = 2
	tcpKeepIdle  = 4
	tcpKeepIntvl = 5
	tcpKeepCnt   = 6
	tcpLinger2   = 8
	tcpCongest   = 13
)

// optName returns a readable name of a socket option argument.
func optName(c *syscall) string {
	if len(c.args) > 2 {
		return describe(c.args[2])
	}
	return "?"
}

// lingerArg reads {onoff=N, linger=N}.
func lingerArg(e *expr) (on bool, secs int64, err error) {
	if e.kind != xList {
		return false, 0, fmt.Errorf("expected {onoff=..., linger=...}, found %s", e)
	}
	for _, f := range e.elems {
		if f.kind != xAssign {
			return false, 0, fmt.Errorf("expected {onoff=..., linger=...}, found %s", e)
		}
		v, err := intValue(f.elems[0])
		if err != nil {
			return false, 0, err
		}
		switch f.text {
		case "onoff", "l_onoff":
			on = v != 0
		case "linger", "l_linger":
			secs = v
		}
	}
	return on, secs, nil
}

// sockoptArgs parses the arguments setsockopt and getsockopt share:
// fd, level, option name and the value (or result) expression.
func (r *runner) sockoptArgs(c *syscall) (s *socket, level, name int64, val *expr, err error) {
	if s, err = r.sockArg(c); err != nil {
		return nil, 0, 0, nil, err
	}
	if len(c.args) < 4 {
		return nil, 0, 0, nil, fmt.Errorf("expected 5 arguments")
	}
	if level, err = intValue(c.args[1]); err != nil {
		return nil, 0, 0, nil, err
	}
	if name, err = intValue(c.args[2]); err != nil {
		return nil, 0, 0, nil, err
	}
	return s, level, name, c.args[3], nil
}

func (r *runner) sysSetsockopt(c *syscall) (func() outcome, error) {
	s, level, name, val, err := r.sockoptArgs(c)
	if err != nil {
		return nil, err
	}
	switch {
	case level == solSocket && name == soLinger:
		on, secs, err := lingerArg(val)
		if err != nil {
			return nil, err
		}
		return func() outcome { s.linger, s.lingerS = on, secs; return ok(0) }, nil
	case level == solTCP && name == tcpCongest:
		if val.kind != xString {
			return nil, fmt.Errorf("TCP_CONGESTION takes a string, found %s", val)
		}
		algo := val.text
		return func() outcome {
			if _, err := tcp.NewCongestionControl(algo); err != nil || algo == "" {
				return fail("ENOENT") // Linux: no such congestion control
			}
			s.cfg.CongestionControl = algo
			if s.conn != nil {
				s.conn.SetCongestionControl(algo)
			}
			return ok(0)
		}, nil
	case level == solSocket && (name == soReuseAddr || name == soKeepAlive || name == soSndBuf || name == soRcvBuf),
		level == solTCP && (name == tcpNoDelay || name == tcpMaxSeg || name == tcpKeepIdle || name == tcpKeepIntvl || name == tcpKeepCnt || name == tcpLinger2):
	default:
		return nil, fmt.Errorf("socket option %s is not supported by ustack", optName(c))
	}
	v, err := intValue(val)
	if err != nil {
		return nil, err
	}
	return func() outcome {
		switch {
		case level == solSocket && name == soReuseAddr:
			s.reuse = v != 0
		case level == solSocket && name == soKeepAlive:
			s.keep = v != 0
			if s.conn != nil {
				s.conn.SetKeepAliveParams(s.kaIdle, s.kaIntvl, s.kaCnt)
				s.conn.SetKeepAlive(s.keep)
			}
		case level == solSocket && (name == soSndBuf || name == soRcvBuf):
			if v <= 0 {
				return fail("EINVAL")
			}
			// The core sizes its rings when a connection starts: the
			// value counts for connections created afterwards. As Linux
			// does (socket(7)), the value is doubled, and an explicit
			// receive buffer turns auto-tuning off.
			if name == soSndBuf {
				s.cfg.SendBufferSize = int(2 * v)
				s.cfg.MaxSendBufferSize = 0 // a fixed size, as on Linux
			} else {
				s.cfg.ReceiveBufferSize = int(2 * v)
				s.cfg.MaxReceiveBufferSize = 0
			}
		case name == tcpNoDelay:
			s.cfg.NoDelay = v != 0
			if s.conn != nil {
				s.conn.SetNoDelay(v != 0)
			}
		case name == tcpMaxSeg:
			if v < 64 || v > 65535-40 {
				return fail("EINVAL")
			}
			s.mss = uint16(v)
			if s.lst != nil {
				s.lst.SetMSS(s.mss)
			}
		case name == tcpKeepIdle || name == tcpKeepIntvl || name == tcpKeepCnt:
			if v < 1 {
				return fail("EINVAL")
			}
			switch name {
			case tcpKeepIdle:
				s.kaIdle = time.Duration(v) * time.Second
			case tcpKeepIntvl:
				s.kaIntvl = time.Duration(v) * time.Second
			case tcpKeepCnt:
				s.kaCnt = int(v)
			}
			if s.conn != nil {
				s.conn.SetKeepAliveParams(s.kaIdle, s.kaIntvl, s.kaCnt)
			}
		case name == tcpLinger2:
			// The core reads FinWait2Timeout from its Config, which an
			// accepted socket shares with its listener's other
			// connections: there is no per-connection setter.
			if v > 0 {
				s.cfg.FinWait2Timeout = time.Duration(v) * time.Second
			}
		}
		return ok(0)
	}, nil
}

func (r *runner) sysGetsockopt(c *syscall) (func() outcome, error) {
	s, level, name, want, err := r.sockoptArgs(c)
	if err != nil {
		return nil, err
	}
	b2i := func(b bool) int64 {
		if b {
			return 1
		}
		return 0
	}
	var get func() (int64, error)
	switch {
	case level == solSocket && name == soLinger:
		on, secs, err := lingerArg(want)
		if err != nil {
			return nil, err
		}
		return func() outcome {
			if on != s.linger || secs != s.lingerS {
				r.failf(r.ev.line, want.String(), fmt.Sprintf("{onoff=%d, linger=%d}", b2i(s.linger), s.lingerS), "getsockopt SO_LINGER: value differs")
			}
			return ok(0)
		}, nil
	case level == solSocket && name == soError:
		get = func() (int64, error) {
			if e := s.connErr(); e != "" {
				return errnos[e], nil
			}
			return 0, nil
		}
	case level == solSocket && name == soReuseAddr:
		get = func() (int64, error) { return b2i(s.reuse), nil }
	case level == solSocket && name == soKeepAlive:
		get = func() (int64, error) { return b2i(s.keep), nil }
	case level == solSocket && name == soSndBuf:
		get = func() (int64, error) { return int64(s.cfg.SendBufferSize), nil }
	case level == solSocket && name == soRcvBuf:
		get = func() (int64, error) { return int64(s.cfg.ReceiveBufferSize), nil }
	case level == solTCP && name == tcpNoDelay:
		get = func() (int64, error) { return b2i(s.cfg.NoDelay), nil }
	case level == solTCP && name == tcpMaxSeg:
		get = func() (int64, error) {
			if s.conn != nil && s.conn.TCP().Established() {
				return int64(s.conn.TCP().Info().MSS), nil
			}
			if s.mss != 0 {
				return int64(s.mss), nil
			}
			return 536, nil // Linux's TCP_MSS_DEFAULT before a connection exists
		}
	case level == solTCP && name == tcpKeepIdle:
		get = func() (int64, error) { return int64(orDefault(s.kaIdle, s.cfg.KeepAliveIdle) / time.Second), nil }
	case level == solTCP && name == tcpKeepIntvl:
		get = func() (int64, error) { return int64(orDefault(s.kaIntvl, s.cfg.KeepAliveInterval) / time.Second), nil }
	case level == solTCP && name == tcpKeepCnt:
		get = func() (int64, error) {
			if s.kaCnt > 0 {
				return int64(s.kaCnt), nil
			}
			return int64(s.cfg.KeepAliveCount), nil
		}
	case level == solTCP && name == tcpLinger2:
		get = func() (int64, error) { return int64(s.cfg.FinWait2Timeout / time.Second), nil }
	default:
		return nil, fmt.Errorf("socket option %s is not supported by ustack", optName(c))
	}
	return func() outcome {
		v, err := get()
		if err != nil {
			return fail("EINVAL")
		}
		if want.kind != xEllipsis {
			w, err := intValue(want)
			if err != nil {
				r.failf(r.ev.line, "", "", "getsockopt: %v", err)
				return ok(0)
			}
			if w != v {
				r.failf(r.ev.line, want.String(), fmt.Sprintf("[%d]", v), "getsockopt %s: expected %d, got %d", optName(c), w, v)
			}
		}
		return ok(0)
	}, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
