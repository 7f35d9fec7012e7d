package script

import (
	"fmt"
	"strconv"
	"strings"
)

// exprKind is the kind of a system call argument or result.
type exprKind uint8

const (
	xEllipsis exprKind = iota // ...
	xInt                      // 3, -1, 0x802
	xWord                     // SOCK_STREAM
	xString                   // "abc" (with a trailing ... allowed)
	xOr                       // a | b
	xAssign                   // name = value (in { } lists)
	xArray                    // [ a, b ]
	xList                     // { a, b }
	xCall                     // htons(8080), inet_addr("1.2.3.4")
)

// expr is a system call argument or result (packetdrill's expression).
type expr struct {
	kind  exprKind
	line  int
	ival  int64
	text  string  // word, string, call or assignment name
	elems []*expr // operands, elements, arguments
}

func (e *expr) String() string {
	switch e.kind {
	case xEllipsis:
		return "..."
	case xInt:
		return strconv.FormatInt(e.ival, 10)
	case xWord:
		return e.text
	case xString:
		return strconv.Quote(e.text)
	case xOr:
		return join(e.elems, "|")
	case xAssign:
		return e.text + "=" + e.elems[0].String()
	case xArray:
		return "[" + join(e.elems, ", ") + "]"
	case xList:
		return "{" + join(e.elems, ", ") + "}"
	case xCall:
		return e.text + "(" + join(e.elems, ", ") + ")"
	}
	return "?"
}

func join(es []*expr, sep string) string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.String()
	}
	return strings.Join(s, sep)
}

// expr parses: primary ('|' primary)*
func (p *parser) expr() (*expr, error) {
	e, err := p.primary()
	if err != nil {
		return nil, err
	}
	if !p.isPunct("|") {
		return e, nil
	}
	or := &expr{kind: xOr, line: e.line, elems: []*expr{e}}
	for p.isPunct("|") {
		p.next()
		f, err := p.primary()
		if err != nil {
			return nil, err
		}
		or.elems = append(or.elems, f)
	}
	return or, nil
}

func (p *parser) primary() (*expr, error) {
	t := p.next()
	e := &expr{line: t.line}
	switch t.kind {
	case tEllipsis:
		e.kind = xEllipsis
	case tInt:
		e.kind, e.ival = xInt, t.ival
	case tString:
		e.kind, e.text = xString, t.text
		if p.peek().kind == tEllipsis {
			p.next()
		}
	case tWord:
		switch {
		case p.isPunct("="):
			p.next()
			v, err := p.expr()
			if err != nil {
				return nil, err
			}
			e.kind, e.text, e.elems = xAssign, t.text, []*expr{v}
		case p.isPunct("("):
			p.next()
			args, err := p.exprList(")")
			if err != nil {
				return nil, err
			}
			e.kind, e.text, e.elems = xCall, t.text, args
			if p.isPunct("=") { // msg_iov(1)=[...] in a msghdr
				p.next()
				v, err := p.expr()
				if err != nil {
					return nil, err
				}
				e = &expr{kind: xAssign, line: t.line, text: t.text + "(" + join(args, ", ") + ")", elems: []*expr{v}}
			}
		default:
			e.kind, e.text = xWord, t.text
		}
	case tPunct:
		switch t.text {
		case "[":
			elems, err := p.exprList("]")
			if err != nil {
				return nil, err
			}
			e.kind, e.elems = xArray, elems
		case "{":
			elems, err := p.exprList("}")
			if err != nil {
				return nil, err
			}
			e.kind, e.elems = xList, elems
		default:
			return nil, p.errf(t, "unexpected %s in expression", t)
		}
	default:
		return nil, p.errf(t, "unexpected %s in expression", t)
	}
	return e, nil
}

// exprList parses expressions separated by commas up to closer (consumed).
func (p *parser) exprList(closer string) ([]*expr, error) {
	var es []*expr
	if p.isPunct(closer) {
		p.next()
		return es, nil
	}
	for {
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		es = append(es, e)
		t := p.next()
		if t.kind == tPunct && t.text == closer {
			return es, nil
		}
		if t.kind != tPunct || t.text != "," {
			return nil, p.errf(t, "expected \",\" or %q, found %s", closer, t)
		}
	}
}

// syscall parses: [...end] name(args) = result [ERRNO] [(note)]
func (p *parser) syscall(e *event) error {
	e.kind = evSyscall
	c := &syscall{}
	if p.peek().kind == tEllipsis {
		p.next()
		end, err := p.duration()
		if err != nil {
			return err
		}
		c.blocking, c.end = true, end
	}
	name := p.next()
	if name.kind != tWord {
		return p.errf(name, "expected a system call name, found %s", name)
	}
	c.name = name.text
	if err := p.expectPunct("("); err != nil {
		return err
	}
	args, err := p.exprList(")")
	if err != nil {
		return err
	}
	c.args = args
	if err := p.expectPunct("="); err != nil {
		return err
	}
	if c.result, err = p.expr(); err != nil {
		return err
	}
	if t := p.peek(); t.kind == tWord {
		p.next()
		c.errno = t.text
	}
	if p.isPunct("(") { // a note: free text up to the matching ")"
		open := p.next()
		depth := 1
		for depth > 0 {
			t := p.next()
			switch {
			case t.kind == tEOF:
				return p.errf(open, "unterminated note")
			case t.kind == tPunct && t.text == "(":
				depth++
			case t.kind == tPunct && t.text == ")":
				depth--
			}
		}
	}
	e.call = c
	return nil
}

// intValue evaluates an integer expression: numbers, symbolic constants
// and their "|".
func intValue(e *expr) (int64, error) {
	switch e.kind {
	case xInt:
		return e.ival, nil
	case xWord:
		if v, ok := constants[e.text]; ok {
			return v, nil
		}
		if v, ok := errnos[e.text]; ok {
			return v, nil
		}
		return 0, fmt.Errorf("unknown symbol %s", e.text)
	case xOr:
		var v int64
		for _, x := range e.elems {
			y, err := intValue(x)
			if err != nil {
				return 0, err
			}
			v |= y
		}
		return v, nil
	case xArray:
		if len(e.elems) == 1 {
			return intValue(e.elems[0])
		}
	}
	return 0, fmt.Errorf("expected an integer, found %s", e)
}

// constants are the Linux values of the symbols scripts use.
var constants = map[string]int64{
	"AF_INET": 2, "AF_INET6": 10, "PF_INET": 2, "AF_UNSPEC": 0,
	"SOCK_STREAM": 1, "SOCK_DGRAM": 2, "SOCK_NONBLOCK": 0x800, "SOCK_CLOEXEC": 0x80000,
	"IPPROTO_IP": 0, "IPPROTO_TCP": 6, "IPPROTO_UDP": 17,
	"SOL_SOCKET": 1, "SOL_TCP": 6, "SOL_IP": 0,
	"SO_REUSEADDR": 2, "SO_ERROR": 4, "SO_KEEPALIVE": 9, "SO_LINGER": 13, "SO_SNDBUF": 7, "SO_RCVBUF": 8,
	"SO_REUSEPORT": 15,
	"TCP_NODELAY":  1, "TCP_MAXSEG": 2, "TCP_KEEPIDLE": 4, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 6,
	"TCP_LINGER2": 8, "TCP_INFO": 11, "TCP_USER_TIMEOUT": 18, "TCP_CORK": 3, "TCP_DEFER_ACCEPT": 9,
	"TCP_QUICKACK": 12, "TCP_CONGESTION": 13, "TCP_FASTOPEN": 23, "TCP_NOTSENT_LOWAT": 25,
	"F_GETFL": 3, "F_SETFL": 4, "F_GETFD": 1, "F_SETFD": 2,
	"O_RDONLY": 0, "O_WRONLY": 1, "O_RDWR": 2, "O_NONBLOCK": 0x800, "O_NDELAY": 0x800,
	"SHUT_RD": 0, "SHUT_WR": 1, "SHUT_RDWR": 2,
	"MSG_OOB": 1, "MSG_PEEK": 2, "MSG_DONTWAIT": 0x40, "MSG_WAITALL": 0x100, "MSG_NOSIGNAL": 0x4000,
	"MSG_MORE": 0x8000, "MSG_EOR": 0x80, "MSG_TRUNC": 0x20,
	"SIOCINQ": 0x541B, "FIONREAD": 0x541B, "SIOCOUTQ": 0x5411, "TIOCOUTQ": 0x5411,
	"INADDR_ANY": 0,
}
