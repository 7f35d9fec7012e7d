package filter

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ustack/ustack/ip"
)

// SyntaxError is a rule that does not parse: where, and why.
type SyntaxError struct {
	Line, Column int // 1-based; Line is 0 for a rule given alone
	Msg          string
}

// Error returns "line L, column C: msg" ("column C: msg" for a rule alone).
func (e *SyntaxError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("column %d: %s", e.Column, e.Msg)
	}
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// token is one word of a rule line and the 1-based column it starts at.
type token struct {
	s   string
	col int
}

// maxLineLen bounds a rule line, as a guard against absurd input.
const maxLineLen = 4096

// tokenize splits a line into words as a shell would for iptables: blanks
// separate words, double or single quotes group them (for --log-prefix).
func tokenize(line string) ([]token, *SyntaxError) {
	if len(line) > maxLineLen {
		return nil, &SyntaxError{Column: maxLineLen, Msg: "line too long"}
	}
	var toks []token
	for i := 0; i < len(line); {
		c := line[i]
		if c == ' ' || c == '\t' || c == '\r' {
			i++
			continue
		}
		start := i
		var b strings.Builder
		for i < len(line) && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' {
			if q := line[i]; q == '"' || q == '\'' {
				j := strings.IndexByte(line[i+1:], q)
				if j < 0 {
					return nil, &SyntaxError{Column: i + 1, Msg: "unterminated quote"}
				}
				b.WriteString(line[i+1 : i+1+j])
				i += j + 2
				continue
			}
			b.WriteByte(line[i])
			i++
		}
		toks = append(toks, token{b.String(), start + 1})
	}
	return toks, nil
}

// ruleParser reads the words of one rule specification.
type ruleParser struct {
	toks []token
	i    int
	end  int // column past the last word, for "missing value" errors
}

func (p *ruleParser) errf(t token, format string, a ...any) *SyntaxError {
	return &SyntaxError{Column: t.col, Msg: fmt.Sprintf(format, a...)}
}

func (p *ruleParser) more() bool { return p.i < len(p.toks) }

func (p *ruleParser) next() token {
	t := p.toks[p.i]
	p.i++
	return t
}

// value returns the word after option opt.
func (p *ruleParser) value(opt token) (token, *SyntaxError) {
	if !p.more() {
		return token{}, &SyntaxError{Column: p.end, Msg: "option " + opt.s + " needs a value"}
	}
	t := p.next()
	if t.s == "!" {
		return token{}, p.errf(t, "put ! before %s, not after it", opt.s)
	}
	return t, nil
}

// ParseRule parses a rule specification: the matches and the target that
// follow "-A CHAIN" in iptables, for example
//
//	-p tcp -s 192.168.1.0/24 -m tcp --dport 80 -j ACCEPT
//
// An unknown option or a bad value is a *SyntaxError naming its column.
func ParseRule(spec string) (*Rule, error) {
	toks, err := tokenize(spec)
	if err != nil {
		return nil, err
	}
	r, serr := parseRuleTokens(toks, len(spec)+1)
	if serr != nil {
		return nil, serr
	}
	return r, nil
}

func parseRuleTokens(toks []token, end int) (*Rule, *SyntaxError) {
	p := &ruleParser{toks: toks, end: end}
	r := &Rule{icmpType: -1, icmpCode: -1}
	modules := map[string]bool{}
	for p.more() {
		t := p.next()
		neg := false
		if t.s == "!" {
			if !p.more() {
				return nil, p.errf(t, "! must come before an option")
			}
			neg = true
			t = p.next()
		}
		var err *SyntaxError
		switch t.s {
		case "-p", "--protocol":
			err = p.protocol(r, t, neg)
		case "-s", "--source", "--src":
			r.src, err = p.prefix(t)
			r.srcNeg = neg
		case "-d", "--destination", "--dst":
			r.dst, err = p.prefix(t)
			r.dstNeg = neg
		case "-i", "--in-interface":
			r.in, err = p.nic(t)
			r.inNeg = neg
		case "-o", "--out-interface":
			r.out, err = p.nic(t)
			r.outNeg = neg
		case "-m", "--match":
			if neg {
				return nil, p.errf(t, "! cannot negate -m")
			}
			var v token
			if v, err = p.value(t); err == nil {
				switch v.s {
				case "tcp", "udp":
					if !r.protoSet || r.protoNeg || r.proto != protoByName[v.s] {
						return nil, p.errf(v, "-m %s needs -p %s before it", v.s, v.s)
					}
				case "icmp", "icmp6", "multiport", "conntrack", "state", "limit":
				default:
					return nil, p.errf(v, "unknown match %q", v.s)
				}
				modules[v.s] = true
			}
		case "--sport", "--source-port", "--dport", "--destination-port":
			err = p.port(r, t, neg)
		case "--syn":
			if err = p.needTCP(r, t); err == nil {
				r.flagMask, r.flagComp = flagFIN|flagSYN|flagRST|flagACK, flagSYN
				r.flagsSet, r.flagsNeg = true, neg
			}
		case "--tcp-flags":
			err = p.tcpFlags(r, t, neg)
		case "--icmp-type", "--icmpv6-type":
			err = p.icmpTypeOpt(r, t, neg, modules)
		case "--sports", "--source-ports", "--dports", "--destination-ports", "--ports":
			err = p.multiport(r, t, neg, modules)
		case "--ctstate", "--state":
			err = p.state(r, t, neg, modules)
		case "--limit", "--limit-burst":
			if neg {
				return nil, p.errf(t, "! cannot negate %s", t.s)
			}
			err = p.limit(r, t, modules)
		case "-j", "--jump", "-g", "--goto":
			if neg {
				return nil, p.errf(t, "! cannot negate -j")
			}
			if t.s == "-g" || t.s == "--goto" {
				return nil, p.errf(t, "-g (goto) is not supported; use -j")
			}
			err = p.target(r, t)
		case "--reject-with", "--log-prefix", "--log-level", "--to-destination", "--to-source", "--to-ports", "--to":
			if neg {
				return nil, p.errf(t, "! cannot negate %s", t.s)
			}
			err = p.targetOpt(r, t)
		default:
			return nil, p.errf(t, "unknown option %q", t.s)
		}
		if err != nil {
			return nil, err
		}
	}
	if modules["limit"] && r.limitRate == 0 {
		r.limitRate, r.limitSpec = 3.0/3600, "3/hour" // iptables-extensions(8): the default --limit
	}
	if modules["limit"] && r.limitBurst == 0 {
		r.limitBurst = 5 // iptables-extensions(8): the default --limit-burst
	}
	if r.target == TargetReject && r.reject == RejectNone {
		r.reject = RejectPortUnreachable // iptables-extensions(8): the default
		if r.family6() {
			r.reject = RejectICMP6PortUnreachable
		}
	}
	if (r.target == TargetDNAT || r.target == TargetSNAT) && !r.natSet {
		return nil, &SyntaxError{Column: end, Msg: targetNames[r.target] + " needs --to-" + map[Target]string{TargetDNAT: "destination", TargetSNAT: "source"}[r.target]}
	}
	if r.natPortOK && r.target != TargetMasquerade && r.target != TargetRedirect && (!r.protoSet || r.protoNeg || (r.proto != ip.ProtocolTCP && r.proto != ip.ProtocolUDP)) {
		return nil, &SyntaxError{Column: end, Msg: "a NAT port needs -p tcp or -p udp"}
	}
	if (r.target == TargetMasquerade || r.target == TargetRedirect) && r.natPortOK && (!r.protoSet || r.protoNeg || (r.proto != ip.ProtocolTCP && r.proto != ip.ProtocolUDP)) {
		return nil, &SyntaxError{Column: end, Msg: "--to-ports needs -p tcp or -p udp"}
	}
	if r.limitRate > 0 {
		r.limiter = &limiter{rl: ip.NewRateLimiter(r.limitRate, r.limitBurst)}
	}
	r.ctr = new(counters)
	r.src4, r.dst4 = newPrefix4(r.src), newPrefix4(r.dst)
	r.spec = r.format()
	return r, nil
}

// family6 reports whether r's addresses are IPv6 ones.
func (r *Rule) family6() bool {
	return (r.src.IsValid() && r.src.Addr().Is6()) || (r.dst.IsValid() && r.dst.Addr().Is6()) ||
		(r.protoSet && r.proto == ip.ProtocolICMPv6)
}

var protoByName = map[string]uint8{"tcp": ip.ProtocolTCP, "udp": ip.ProtocolUDP, "icmp": ip.ProtocolICMP,
	"icmpv6": ip.ProtocolICMPv6, "ipv6-icmp": ip.ProtocolICMPv6}

func protoName(p uint8) string {
	switch p {
	case ip.ProtocolTCP:
		return "tcp"
	case ip.ProtocolUDP:
		return "udp"
	case ip.ProtocolICMP:
		return "icmp"
	case ip.ProtocolICMPv6:
		return "ipv6-icmp"
	}
	return strconv.Itoa(int(p))
}

func (p *ruleParser) protocol(r *Rule, t token, neg bool) *SyntaxError {
	v, err := p.value(t)
	if err != nil {
		return err
	}
	if r.protoSet {
		return p.errf(t, "-p given twice")
	}
	s := strings.ToLower(v.s)
	switch {
	case s == "all":
		if neg {
			return p.errf(v, "! -p all matches nothing")
		}
		return nil
	case protoByName[s] != 0:
		r.proto = protoByName[s]
	default:
		n, e := strconv.ParseUint(s, 10, 8)
		if e != nil {
			return p.errf(v, "unknown protocol %q", v.s)
		}
		if n == 0 {
			// iptables(8): "The number zero is equivalent to all".
			if neg {
				return p.errf(v, "! -p 0 matches nothing")
			}
			return nil
		}
		r.proto = uint8(n)
	}
	r.protoSet, r.protoNeg = true, neg
	return nil
}

func (p *ruleParser) prefix(t token) (netip.Prefix, *SyntaxError) {
	v, err := p.value(t)
	if err != nil {
		return netip.Prefix{}, err
	}
	if strings.Contains(v.s, "/") {
		pfx, e := netip.ParsePrefix(v.s)
		if e != nil {
			return netip.Prefix{}, p.errf(v, "bad address/prefix %q", v.s)
		}
		if pfx.Addr().Zone() != "" {
			return netip.Prefix{}, p.errf(v, "bad address/prefix %q: zones are not allowed", v.s)
		}
		return pfx.Masked(), nil
	}
	a, e := netip.ParseAddr(v.s)
	if e != nil || a.Zone() != "" || a.Is4In6() {
		return netip.Prefix{}, p.errf(v, "bad address %q", v.s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// nic checks an interface name: at most 15 bytes (Linux's IFNAMSIZ less
// the NUL), no blank or slash; a trailing + matches every name it begins.
func (p *ruleParser) nic(t token) (string, *SyntaxError) {
	v, err := p.value(t)
	if err != nil {
		return "", err
	}
	if len(v.s) == 0 || len(v.s) > 15 || strings.ContainsAny(v.s, "/!:") || strings.Contains(v.s[:len(v.s)-1], "+") {
		return "", p.errf(v, "bad interface name %q", v.s)
	}
	return v.s, nil
}

func (p *ruleParser) needTCP(r *Rule, t token) *SyntaxError {
	if !r.protoSet || r.protoNeg || r.proto != ip.ProtocolTCP {
		return p.errf(t, "%s needs -p tcp", t.s)
	}
	return nil
}

func parsePort(s string) (uint16, bool) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, false
	}
	return uint16(n), true
}

// parseRange reads "port" or "lo:hi" (either end may be left out, as in
// iptables: ":1023" is 0:1023 and "1024:" is 1024:65535); sep is ':' for
// matches and '-' for NAT.
func parseRange(s string, sep byte) (portRange, bool) {
	i := strings.IndexByte(s, sep)
	if i < 0 {
		n, ok := parsePort(s)
		return portRange{n, n}, ok
	}
	lo, hi := uint16(0), uint16(math.MaxUint16)
	ok := true
	if i > 0 {
		lo, ok = parsePort(s[:i])
	}
	if ok && i < len(s)-1 {
		hi, ok = parsePort(s[i+1:])
	}
	if !ok || lo > hi || (i == 0 && i == len(s)-1) {
		return portRange{}, false
	}
	return portRange{lo, hi}, true
}

func (p *ruleParser) port(r *Rule, t token, neg bool) *SyntaxError {
	if !r.protoSet || r.protoNeg || (r.proto != ip.ProtocolTCP && r.proto != ip.ProtocolUDP) {
		return p.errf(t, "%s needs -p tcp or -p udp", t.s)
	}
	v, err := p.value(t)
	if err != nil {
		return err
	}
	pr, ok := parseRange(v.s, ':')
	if !ok {
		return p.errf(v, "bad port or range %q", v.s)
	}
	if t.s == "--sport" || t.s == "--source-port" {
		r.sport, r.sportSet, r.sportNeg = pr, true, neg
	} else {
		r.dport, r.dportSet, r.dportNeg = pr, true, neg
	}
	return nil
}

var flagNames = []struct {
	name string
	bit  uint8
}{{"FIN", flagFIN}, {"SYN", flagSYN}, {"RST", flagRST}, {"PSH", flagPSH}, {"ACK", flagACK}, {"URG", flagURG}, {"ECE", flagECE}, {"CWR", flagCWR}}

func parseFlags(s string) (uint8, bool) {
	switch s {
	case "ALL":
		return 0xff, true
	case "NONE":
		return 0, true
	}
	var m uint8
	for f := range strings.SplitSeq(s, ",") {
		found := false
		for _, n := range flagNames {
			if n.name == f {
				m |= n.bit
				found = true
			}
		}
		if !found {
			return 0, false
		}
	}
	return m, true
}

func formatFlags(m uint8) string {
	switch m {
	case 0xff:
		return "ALL"
	case 0:
		return "NONE"
	}
	var b []string
	for _, n := range flagNames {
		if m&n.bit != 0 {
			b = append(b, n.name)
		}
	}
	return strings.Join(b, ",")
}

func (p *ruleParser) tcpFlags(r *Rule, t token, neg bool) *SyntaxError {
	if err := p.needTCP(r, t); err != nil {
		return err
	}
	mv, err := p.value(t)
	if err != nil {
		return err
	}
	cv, err := p.value(t)
	if err != nil {
		return err
	}
	mask, ok := parseFlags(mv.s)
	if !ok {
		return p.errf(mv, "bad TCP flags %q", mv.s)
	}
	comp, ok := parseFlags(cv.s)
	if !ok {
		return p.errf(cv, "bad TCP flags %q", cv.s)
	}
	r.flagMask, r.flagComp, r.flagsSet, r.flagsNeg = mask, comp&mask, true, neg
	return nil
}

// icmpTypes are the names iptables accepts for --icmp-type (RFC 792).
var icmpTypes = map[string][2]int16{
	"echo-reply": {0, -1}, "destination-unreachable": {3, -1}, "network-unreachable": {3, 0},
	"host-unreachable": {3, 1}, "protocol-unreachable": {3, 2}, "port-unreachable": {3, 3},
	"fragmentation-needed": {3, 4}, "source-quench": {4, -1}, "redirect": {5, -1},
	"echo-request": {8, -1}, "time-exceeded": {11, -1}, "parameter-problem": {12, -1},
	"timestamp-request": {13, -1}, "timestamp-reply": {14, -1},
}

func (p *ruleParser) icmpTypeOpt(r *Rule, t token, neg bool, modules map[string]bool) *SyntaxError {
	want := uint8(ip.ProtocolICMP)
	if t.s == "--icmpv6-type" {
		want = ip.ProtocolICMPv6
	}
	if !r.protoSet || r.protoNeg || r.proto != want {
		return p.errf(t, "%s needs -p %s", t.s, protoName(want))
	}
	v, err := p.value(t)
	if err != nil {
		return err
	}
	if tc, ok := icmpTypes[v.s]; ok && want == ip.ProtocolICMP {
		r.icmpType, r.icmpCode = tc[0], tc[1]
	} else {
		ts, cs, hasCode := strings.Cut(v.s, "/")
		n, e := strconv.ParseUint(ts, 10, 8)
		if e != nil {
			return p.errf(v, "unknown ICMP type %q", v.s)
		}
		r.icmpType, r.icmpCode = int16(n), -1
		if hasCode {
			c, e := strconv.ParseUint(cs, 10, 8)
			if e != nil {
				return p.errf(v, "bad ICMP code in %q", v.s)
			}
			r.icmpCode = int16(c)
		}
	}
	r.icmpSet, r.icmpNeg = true, neg
	return nil
}

// maxMultiport is the most ports -m multiport takes (iptables-extensions(8):
// "Up to 15 ports can be specified").
const maxMultiport = 15

func (p *ruleParser) multiport(r *Rule, t token, neg bool, modules map[string]bool) *SyntaxError {
	if !modules["multiport"] {
		return p.errf(t, "%s needs -m multiport", t.s)
	}
	if !r.protoSet || r.protoNeg || (r.proto != ip.ProtocolTCP && r.proto != ip.ProtocolUDP) {
		return p.errf(t, "-m multiport needs -p tcp or -p udp")
	}
	if r.mportDir != 0 {
		return p.errf(t, "only one of --sports, --dports, --ports")
	}
	v, err := p.value(t)
	if err != nil {
		return err
	}
	n := 0
	for s := range strings.SplitSeq(v.s, ",") {
		pr, ok := parseRange(s, ':')
		if !ok {
			return p.errf(v, "bad port or range %q", s)
		}
		if pr.lo != pr.hi {
			n += 2
		} else {
			n++
		}
		r.mports = append(r.mports, pr)
	}
	if n > maxMultiport {
		return p.errf(v, "too many ports (at most %d, a range counting 2)", maxMultiport)
	}
	switch t.s {
	case "--sports", "--source-ports":
		r.mportDir = 1
	case "--dports", "--destination-ports":
		r.mportDir = 2
	default:
		r.mportDir = 3
	}
	r.mportNeg = neg
	return nil
}

func (p *ruleParser) state(r *Rule, t token, neg bool, modules map[string]bool) *SyntaxError {
	if t.s == "--ctstate" && !modules["conntrack"] {
		return p.errf(t, "--ctstate needs -m conntrack")
	}
	if t.s == "--state" && !modules["state"] {
		return p.errf(t, "--state needs -m state")
	}
	v, err := p.value(t)
	if err != nil {
		return err
	}
	var st State
	for s := range strings.SplitSeq(v.s, ",") {
		found := false
		for _, n := range stateNames {
			if n.name == s {
				st |= n.s
				found = true
			}
		}
		if !found {
			return p.errf(v, "unknown state %q", s)
		}
	}
	r.ctstate, r.ctSet, r.ctNeg, r.stateMatch = st, true, neg, t.s == "--state"
	return nil
}

func (p *ruleParser) limit(r *Rule, t token, modules map[string]bool) *SyntaxError {
	if !modules["limit"] {
		return p.errf(t, "%s needs -m limit", t.s)
	}
	v, err := p.value(t)
	if err != nil {
		return err
	}
	if t.s == "--limit-burst" {
		n, e := strconv.ParseUint(v.s, 10, 32)
		if e != nil || n == 0 || n > 10000 {
			return p.errf(v, "bad --limit-burst %q (1 to 10000)", v.s)
		}
		r.limitBurst = int(n)
		return nil
	}
	// iptables-extensions(8): rate[/second|/minute|/hour|/day].
	ns, unit, _ := strings.Cut(v.s, "/")
	n, e := strconv.ParseUint(ns, 10, 32)
	per := map[string]float64{"": 1, "s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60,
		"h": 3600, "hour": 3600, "d": 86400, "day": 86400}
	d, ok := per[unit]
	if e != nil || n == 0 || !ok {
		return p.errf(v, "bad --limit %q", v.s)
	}
	canon := map[float64]string{1: "sec", 60: "min", 3600: "hour", 86400: "day"}
	r.limitRate, r.limitSpec = float64(n)/d, fmt.Sprintf("%d/%s", n, canon[d])
	return nil
}

func (p *ruleParser) target(r *Rule, t token) *SyntaxError {
	v, err := p.value(t)
	if err != nil {
		return err
	}
	if r.target != TargetNone {
		return p.errf(t, "-j given twice")
	}
	for i, n := range targetNames {
		if n != "" && n == v.s {
			r.target = Target(i)
			return nil
		}
	}
	if !validChainName(v.s) {
		return p.errf(v, "bad target or chain name %q", v.s)
	}
	r.target, r.chain = TargetJump, v.s
	return nil
}

// validChainName: iptables allows up to 28 characters, not starting with
// '-' or '!'; built-in target names are not chain names.
func validChainName(s string) bool {
	if len(s) == 0 || len(s) > 28 || s[0] == '-' || s[0] == '!' || strings.ContainsAny(s, "\"'") {
		return false
	}
	for i := range len(s) {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false // printable ASCII only: names are words of a line
		}
	}
	for _, n := range targetNames {
		if n == s {
			return false
		}
	}
	return true
}

var logLevels = []string{"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"}

func (p *ruleParser) targetOpt(r *Rule, t token) *SyntaxError {
	v, err := p.value(t)
	if err != nil {
		return err
	}
	need := map[string][]Target{"--reject-with": {TargetReject}, "--log-prefix": {TargetLog}, "--log-level": {TargetLog},
		"--to-destination": {TargetDNAT}, "--to-source": {TargetSNAT}, "--to-ports": {TargetMasquerade, TargetRedirect}, "--to": {TargetDNAT}}
	ok := false
	for _, tg := range need[t.s] {
		ok = ok || r.target == tg
	}
	if !ok {
		return p.errf(t, "%s needs -j %s before it", t.s, targetNames[need[t.s][0]])
	}
	switch t.s {
	case "--reject-with":
		for i, n := range rejectNames {
			if n != "" && n == v.s {
				r.reject = RejectWith(i)
				if r.reject == RejectTCPReset && (!r.protoSet || r.protoNeg || r.proto != ip.ProtocolTCP) {
					return p.errf(v, "tcp-reset needs -p tcp")
				}
				return nil
			}
		}
		return p.errf(v, "unknown --reject-with %q", v.s)
	case "--log-prefix":
		if len(v.s) > 29 { // iptables-extensions(8): "up to 29 letters long"
			return p.errf(v, "--log-prefix longer than 29 characters")
		}
		r.logPrefix = v.s
	case "--log-level":
		for _, l := range logLevels {
			if l == v.s {
				r.logLevel = v.s
				return nil
			}
		}
		if n, e := strconv.Atoi(v.s); e == nil && n >= 0 && n <= 7 {
			r.logLevel = logLevels[n]
			return nil
		}
		return p.errf(v, "unknown --log-level %q", v.s)
	case "--to-ports":
		pr, ok := parseRange(v.s, '-')
		if !ok || pr.lo == 0 {
			return p.errf(v, "bad port or range %q", v.s)
		}
		r.natPorts, r.natPortOK = pr, true
	default:
		return p.natTo(r, v)
	}
	return nil
}

// natTo parses DNAT's --to-destination and SNAT's --to-source:
// addr[-addr][:port[-port]], an IPv6 address in brackets when a port
// follows ([2001:db8::1]:80).
func (p *ruleParser) natTo(r *Rule, v token) *SyntaxError {
	if r.natSet {
		return p.errf(v, "only one --to-destination or --to-source")
	}
	s := v.s
	var addrs, ports string
	portSep := false // a ':' introduces ports
	if strings.HasPrefix(s, "[") {
		i := strings.IndexByte(s, ']')
		if i < 0 {
			return p.errf(v, "bad NAT address %q", s)
		}
		addrs, s = s[1:i], s[i+1:]
		if s != "" {
			if s[0] != ':' {
				return p.errf(v, "bad NAT address %q", v.s)
			}
			ports, portSep = s[1:], true
		}
	} else if strings.Count(s, ":") == 1 {
		addrs, ports, _ = strings.Cut(s, ":")
		portSep = true
	} else {
		addrs = s
	}
	lo, hi, _ := strings.Cut(addrs, "-")
	a, e := netip.ParseAddr(lo)
	if e != nil || a.Zone() != "" || a.Is4In6() {
		return p.errf(v, "bad NAT address %q", lo)
	}
	b := a
	if hi != "" {
		if b, e = netip.ParseAddr(hi); e != nil || b.Is4() != a.Is4() || b.Less(a) || b.Zone() != "" {
			return p.errf(v, "bad NAT address range %q", addrs)
		}
	}
	r.natAddr = [2]netip.Addr{a, b}
	if portSep {
		pr, ok := parseRange(ports, '-')
		if !ok || pr.lo == 0 {
			return p.errf(v, "bad NAT port or range %q", ports)
		}
		r.natPorts, r.natPortOK = pr, true
	}
	r.natSet = true
	return nil
}
