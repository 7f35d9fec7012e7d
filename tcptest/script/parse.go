package script

import (
	"fmt"
	"strings"
	"time"

	"github.com/ustack/ustack/tcptest"
)

// timeKind is how an event's time is written.
type timeKind uint8

const (
	timeAbs      timeKind = iota // 0.100
	timeRel                      // +0.100
	timeAny                      // *
	timeAbsRange                 // 0.1~0.2
	timeRelRange                 // +0.1~+0.2
)

// eventKind is what an event does.
type eventKind uint8

const (
	evPacket  eventKind = iota // < or > TCP segment
	evSyscall                  // socket(...) = 3
	evCommand                  // `shell command` (skipped)
	evCode                     // %{ python }% (skipped)
)

// event is one timed line of a script.
type event struct {
	line     int
	tkind    timeKind
	t, tEnd  time.Duration // start (and end of a range)
	kind     eventKind
	dir      tcptest.Direction
	spec     *tcptest.Spec
	icmp     *icmpLine // an inbound ICMP error instead of a TCP segment
	ports    bool      // the packet names its ports
	src, dst uint16
	call     *syscall
	text     string // command or code, as described in notes
	cmd      string // a shell command's text
}

// syscall is a system call line: [...end] name(args) = result [ERRNO] [(note)].
type syscall struct {
	name     string
	args     []*expr
	result   *expr
	errno    string
	blocking bool          // written with "...end": may block until end
	end      time.Duration // end time as written
}

// option is a --name[=value] line at the top of a script.
type option struct {
	line        int
	name, value string
}

// Script is a parsed packetdrill script.
type Script struct {
	Name    string
	options []option
	events  []*event
	notes   []string // commands and code without a time
	// setup holds the shell commands without a time, for the runner to
	// carry out before the first event if it can (sysctl.go).
	setup []setupCommand
}

// Parse parses a script in packetdrill's syntax. Constructs ustack cannot
// run (UDP, outbound ICMP, encapsulation, TCP options it does not know)
// are errors naming the line.
func Parse(name string, src []byte) (*Script, error) {
	toks, err := lex(string(src))
	if err != nil {
		return nil, fmt.Errorf("%s:%w", name, err)
	}
	p := &parser{toks: toks}
	s := &Script{Name: name}
	if err := p.script(s); err != nil {
		return nil, fmt.Errorf("%s:%w", name, err)
	}
	return s, nil
}

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peek() token  { return p.toks[p.pos] }
func (p *parser) peek2() token { return p.toks[min(p.pos+1, len(p.toks)-1)] }
func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

func (p *parser) errf(t token, format string, args ...any) error {
	return &syntaxError{t.line, fmt.Sprintf(format, args...)}
}

func (p *parser) isPunct(s string) bool {
	t := p.peek()
	return t.kind == tPunct && t.text == s
}

func (p *parser) isWord(s string) bool {
	t := p.peek()
	return t.kind == tWord && t.text == s
}

func (p *parser) expectPunct(s string) error {
	t := p.next()
	if t.kind != tPunct || t.text != s {
		return p.errf(t, "expected %q, found %s", s, t)
	}
	return nil
}

func (p *parser) expectInt(what string) (int64, token, error) {
	t := p.next()
	if t.kind != tInt {
		return 0, t, p.errf(t, "expected %s, found %s", what, t)
	}
	return t.ival, t, nil
}

func (p *parser) u32(what string) (uint32, error) {
	v, t, err := p.expectInt(what)
	if err != nil {
		return 0, err
	}
	if v < 0 || v > 0xffffffff {
		return 0, p.errf(t, "%s out of range: %d", what, v)
	}
	return uint32(v), nil
}

func (p *parser) u16(what string) (uint16, error) {
	v, t, err := p.expectInt(what)
	if err != nil {
		return 0, err
	}
	if v < 0 || v > 0xffff {
		return 0, p.errf(t, "%s out of range: %d", what, v)
	}
	return uint16(v), nil
}

func (p *parser) script(s *Script) error {
	for p.peek().kind == tOption {
		t := p.next()
		o := option{line: t.line, name: t.text}
		if p.isPunct("=") {
			p.next()
			v := p.next()
			if v.kind == tEOF {
				return p.errf(v, "missing value for --%s", o.name)
			}
			o.value = v.text
		}
		s.options = append(s.options, o)
	}
	for {
		t := p.peek()
		switch t.kind {
		case tEOF:
			if len(s.events) == 0 {
				return p.errf(t, "script has no events")
			}
			return nil
		case tBackquote, tCode:
			// An init or cleanup command without a time.
			p.next()
			if t.kind == tBackquote {
				s.setup = append(s.setup, setupCommand{line: t.line, text: t.text, desc: describeSkipped(t)})
				continue
			}
			s.notes = append(s.notes, fmt.Sprintf("line %d: %s skipped (it configures or inspects Linux)", t.line, describeSkipped(t)))
			continue
		}
		e, err := p.event()
		if err != nil {
			return err
		}
		s.events = append(s.events, e)
	}
}

// setupCommand is a shell command without a time.
type setupCommand struct {
	line       int
	text, desc string
}

func describeSkipped(t token) string {
	if t.kind == tCode {
		return "code block %{ }%"
	}
	cmd := strings.TrimSpace(t.text)
	if i := strings.IndexByte(cmd, '\n'); i >= 0 {
		cmd = cmd[:i] + " ..."
	}
	return fmt.Sprintf("shell command `%s`", cmd)
}

// duration reads a time in seconds (an integer or a float).
func (p *parser) duration() (time.Duration, error) {
	t := p.next()
	var secs float64
	switch t.kind {
	case tInt:
		secs = float64(t.ival)
	case tFloat:
		secs = t.fval
	default:
		return 0, p.errf(t, "expected a time, found %s", t)
	}
	if secs < 0 {
		return 0, p.errf(t, "negative time")
	}
	return time.Duration(secs*1e6+0.5) * time.Microsecond, nil
}

func (p *parser) event() (*event, error) {
	t := p.peek()
	e := &event{line: t.line}
	var err error
	switch {
	case p.isPunct("*"):
		p.next()
		e.tkind = timeAny
	case p.isPunct("+"):
		p.next()
		if e.t, err = p.duration(); err != nil {
			return nil, err
		}
		e.tkind = timeRel
		if p.isPunct("~") {
			p.next()
			if err := p.expectPunct("+"); err != nil {
				return nil, err
			}
			if e.tEnd, err = p.duration(); err != nil {
				return nil, err
			}
			e.tkind = timeRelRange
		}
	case t.kind == tInt || t.kind == tFloat:
		if e.t, err = p.duration(); err != nil {
			return nil, err
		}
		e.tkind = timeAbs
		if p.isPunct("~") {
			p.next()
			if e.tEnd, err = p.duration(); err != nil {
				return nil, err
			}
			e.tkind = timeAbsRange
		}
	default:
		return nil, p.errf(t, "expected an event time (0.1, +0.1, *), found %s", t)
	}
	if (e.tkind == timeAbsRange || e.tkind == timeRelRange) && e.tEnd < e.t {
		return nil, p.errf(t, "time range ends before it starts")
	}
	a := p.peek()
	e.line = a.line
	switch {
	case a.kind == tPunct && (a.text == "<" || a.text == ">"):
		return e, p.packet(e)
	case a.kind == tBackquote:
		p.next()
		e.kind, e.text, e.cmd = evCommand, describeSkipped(a), a.text
		return e, nil
	case a.kind == tCode:
		p.next()
		e.kind, e.text = evCode, describeSkipped(a)
		return e, nil
	case a.kind == tEllipsis || a.kind == tWord && p.peek2().kind == tPunct && p.peek2().text == "(":
		return e, p.syscall(e)
	}
	return nil, p.errf(a, "expected a packet (< or >), a system call, a `command` or %%{ code }%%, found %s", a)
}
