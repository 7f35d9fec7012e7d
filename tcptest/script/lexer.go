package script

import (
	"fmt"
	"strconv"
	"strings"
)

// tokKind is the kind of a token of packetdrill's script language (its
// lexer.l, re-implemented from the grammar in packetdrill's syntax.md).
type tokKind uint8

const (
	tEOF       tokKind = iota
	tInt               // 123, -1, 0x1f
	tFloat             // 0.100, .1
	tWord              // S, sackOK, SOCK_STREAM, socket
	tString            // "text"
	tBackquote         // `shell command`
	tCode              // %{ python }%
	tOption            // --name
	tEllipsis          // ...
	tIPv4              // 192.0.2.1
	tPunct             // any other single character
)

type token struct {
	kind tokKind
	text string // the source text (for tString, tBackquote, tCode, tOption: the contents)
	ival int64
	fval float64
	line int
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of file"
	case tString:
		return strconv.Quote(t.text)
	case tBackquote:
		return "`" + t.text + "`"
	case tCode:
		return "%{...}%"
	case tOption:
		return "--" + t.text
	}
	return strconv.Quote(t.text)
}

// syntaxError is an error at a line of the script.
type syntaxError struct {
	line int
	msg  string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isWord(c byte) bool {
	return c == '_' || isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// lex splits src into tokens. Comments (// and /* */) and white space are
// dropped.
func lex(src string) ([]token, error) {
	var toks []token
	line := 1
	i := 0
	for i < len(src) {
		c := src[i]
		start := i
		switch {
		case c == '\n':
			line++
			i++
			continue
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
			continue
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
			continue
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, &syntaxError{line, "unterminated /* comment"}
			}
			line += strings.Count(src[i:i+2+end+2], "\n")
			i += 2 + end + 2
			continue
		case strings.HasPrefix(src[i:], "%{"):
			end := strings.Index(src[i+2:], "}%")
			if end < 0 {
				return nil, &syntaxError{line, "unterminated %{ code block"}
			}
			body := src[i+2 : i+2+end]
			toks = append(toks, token{kind: tCode, text: strings.Trim(body, " \t"), line: line})
			line += strings.Count(body, "\n")
			i += 2 + end + 2
			continue
		case strings.HasPrefix(src[i:], "..."):
			toks = append(toks, token{kind: tEllipsis, text: "...", line: line})
			i += 3
			continue
		case c == '"' || c == '`':
			j := i + 1
			for j < len(src) && src[j] != c {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(src) {
				return nil, &syntaxError{line, fmt.Sprintf("unterminated %c", c)}
			}
			body := src[i+1 : j]
			k := tString
			if c == '`' {
				k = tBackquote
			}
			toks = append(toks, token{kind: k, text: body, line: line})
			line += strings.Count(body, "\n")
			i = j + 1
			continue
		case strings.HasPrefix(src[i:], "--") && i+2 < len(src) && isWord(src[i+2]):
			j := i + 2
			for j < len(src) && isWord(src[j]) {
				j++
			}
			toks = append(toks, token{kind: tOption, text: src[i+2 : j], line: line})
			i = j
			// --name=value: the value is everything up to white space
			// (an address, a number, a word).
			if i < len(src) && src[i] == '=' {
				toks = append(toks, token{kind: tPunct, text: "=", line: line})
				i++
				k := i
				for k < len(src) && src[k] != ' ' && src[k] != '\t' && src[k] != '\n' && src[k] != '\r' {
					k++
				}
				toks = append(toks, token{kind: tWord, text: src[i:k], line: line})
				i = k
			}
			continue
		case strings.HasPrefix(src[i:], "0x") && i+2 < len(src) && isHex(src[i+2]):
			j := i + 2
			for j < len(src) && isHex(src[j]) {
				j++
			}
			v, err := strconv.ParseInt(src[i+2:j], 16, 64)
			if err != nil {
				return nil, &syntaxError{line, fmt.Sprintf("bad number %q", src[i:j])}
			}
			toks = append(toks, token{kind: tInt, text: src[i:j], ival: v, line: line})
			i = j
			continue
		}
		// Numbers: [-]?[0-9]*[.][0-9]+ is a float, [-]?[0-9]+ an integer,
		// four dotted numbers an IPv4 address (the longest match wins, as
		// in flex).
		if isDigit(c) || c == '.' || c == '-' {
			j := i
			if src[j] == '-' {
				j++
			}
			d := j
			for j < len(src) && isDigit(src[j]) {
				j++
			}
			intEnd := j
			if j < len(src) && src[j] == '.' && j+1 < len(src) && isDigit(src[j+1]) {
				j++
				for j < len(src) && isDigit(src[j]) {
					j++
				}
				// An IPv4 address?
				k := j
				dots := 1
				for dots < 3 && k+1 < len(src) && src[k] == '.' && isDigit(src[k+1]) {
					k++
					for k < len(src) && isDigit(src[k]) {
						k++
					}
					dots++
				}
				if dots == 3 && src[i] != '-' && intEnd > d {
					toks = append(toks, token{kind: tIPv4, text: src[i:k], line: line})
					i = k
					continue
				}
				v, err := strconv.ParseFloat(src[i:j], 64)
				if err != nil {
					return nil, &syntaxError{line, fmt.Sprintf("bad number %q", src[i:j])}
				}
				toks = append(toks, token{kind: tFloat, text: src[i:j], fval: v, line: line})
				i = j
				continue
			}
			if intEnd > d && !(intEnd < len(src) && isWord(src[intEnd]) && src[i] != '-') {
				v, err := strconv.ParseInt(src[i:intEnd], 10, 64)
				if err != nil {
					return nil, &syntaxError{line, fmt.Sprintf("bad number %q", src[i:intEnd])}
				}
				toks = append(toks, token{kind: tInt, text: src[i:intEnd], ival: v, line: line})
				i = intEnd
				continue
			}
			if !isDigit(c) {
				toks = append(toks, token{kind: tPunct, text: string(c), line: line})
				i++
				continue
			}
		}
		if isWord(c) {
			j := i
			for j < len(src) && isWord(src[j]) {
				j++
			}
			toks = append(toks, token{kind: tWord, text: src[i:j], line: line})
			i = j
			continue
		}
		toks = append(toks, token{kind: tPunct, text: src[start : start+1], line: line})
		i++
	}
	toks = append(toks, token{kind: tEOF, line: line})
	return toks, nil
}
