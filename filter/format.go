package filter

import (
	"fmt"
	"strconv"
	"strings"
)

func neg(b bool) string {
	if b {
		return "! "
	}
	return ""
}

// String writes the range as matches take it: port or lo:hi.
func (p portRange) String() string {
	if p.lo == p.hi {
		return strconv.Itoa(int(p.lo))
	}
	return fmt.Sprintf("%d:%d", p.lo, p.hi)
}

func (p portRange) nat() string {
	if p.lo == p.hi {
		return strconv.Itoa(int(p.lo))
	}
	return fmt.Sprintf("%d-%d", p.lo, p.hi)
}

// quote writes a word the tokenizer reads back as one.
func quote(s string) string {
	if s == "" || strings.ContainsAny(s, " \t'\"") {
		return `"` + strings.ReplaceAll(s, `"`, "'") + `"`
	}
	return s
}

// format writes r in iptables -S order: addresses, interfaces, protocol,
// then each match module, then the target and its options.
func (r *Rule) format() string {
	var b []string
	add := func(f string, a ...any) { b = append(b, fmt.Sprintf(f, a...)) }
	if r.src.IsValid() {
		add("%s-s %s", neg(r.srcNeg), r.src)
	}
	if r.dst.IsValid() {
		add("%s-d %s", neg(r.dstNeg), r.dst)
	}
	if r.in != "" {
		add("%s-i %s", neg(r.inNeg), r.in)
	}
	if r.out != "" {
		add("%s-o %s", neg(r.outNeg), r.out)
	}
	if r.protoSet {
		add("%s-p %s", neg(r.protoNeg), protoName(r.proto))
	}
	if r.sportSet || r.dportSet || r.flagsSet {
		add("-m %s", protoName(r.proto))
		if r.sportSet {
			add("%s--sport %s", neg(r.sportNeg), r.sport)
		}
		if r.dportSet {
			add("%s--dport %s", neg(r.dportNeg), r.dport)
		}
		if r.flagsSet {
			add("%s--tcp-flags %s %s", neg(r.flagsNeg), formatFlags(r.flagMask), formatFlags(r.flagComp))
		}
	}
	if r.icmpSet {
		opt, mod := "--icmp-type", "icmp"
		if r.proto != 1 {
			opt, mod = "--icmpv6-type", "icmp6"
		}
		t := strconv.Itoa(int(r.icmpType))
		if r.icmpCode >= 0 {
			t += "/" + strconv.Itoa(int(r.icmpCode))
		}
		add("-m %s %s%s %s", mod, neg(r.icmpNeg), opt, t)
	}
	if r.mportDir != 0 {
		ps := make([]string, len(r.mports))
		for i, p := range r.mports {
			ps[i] = p.String()
		}
		opt := [...]string{"", "--sports", "--dports", "--ports"}[r.mportDir]
		add("-m multiport %s%s %s", neg(r.mportNeg), opt, strings.Join(ps, ","))
	}
	if r.ctSet {
		var ss []string
		for _, n := range stateNames {
			if r.ctstate&n.s != 0 {
				ss = append(ss, n.name)
			}
		}
		if r.stateMatch {
			add("-m state %s--state %s", neg(r.ctNeg), strings.Join(ss, ","))
		} else {
			add("-m conntrack %s--ctstate %s", neg(r.ctNeg), strings.Join(ss, ","))
		}
	}
	if r.limiter != nil {
		add("-m limit --limit %s --limit-burst %d", r.limitSpec, r.limitBurst)
	}
	switch r.target {
	case TargetNone:
	case TargetJump:
		add("-j %s", r.chain)
	default:
		add("-j %s", targetNames[r.target])
	}
	switch r.target {
	case TargetReject:
		add("--reject-with %s", r.reject)
	case TargetLog:
		if r.logPrefix != "" {
			add("--log-prefix %s", quote(r.logPrefix))
		}
		if r.logLevel != "" {
			add("--log-level %s", r.logLevel)
		}
	case TargetDNAT, TargetSNAT:
		opt := "--to-destination"
		if r.target == TargetSNAT {
			opt = "--to-source"
		}
		add("%s %s", opt, r.natString())
	case TargetMasquerade, TargetRedirect:
		if r.natPortOK {
			add("--to-ports %s", r.natPorts.nat())
		}
	}
	return strings.Join(b, " ")
}

func (r *Rule) natString() string {
	a := r.natAddr[0].String()
	if r.natAddr[1] != r.natAddr[0] {
		a += "-" + r.natAddr[1].String()
	}
	if !r.natPortOK {
		return a
	}
	if r.natAddr[0].Is6() {
		a = "[" + a + "]"
	}
	return a + ":" + r.natPorts.nat()
}

// listMatches writes the trailing column of iptables -L -n for r: the
// options of its match modules and its target.
func (r *Rule) listMatches() string {
	var b []string
	add := func(f string, a ...any) { b = append(b, fmt.Sprintf(f, a...)) }
	if r.sportSet || r.dportSet || r.flagsSet {
		m := protoName(r.proto)
		if r.sportSet {
			add("%s %s%s", m, map[bool]string{true: "spts:", false: "spt:"}[r.sport.lo != r.sport.hi], neg(r.sportNeg)+r.sport.String())
		}
		if r.dportSet {
			add("%s %s%s", m, map[bool]string{true: "dpts:", false: "dpt:"}[r.dport.lo != r.dport.hi], neg(r.dportNeg)+r.dport.String())
		}
		if r.flagsSet {
			add("tcp flags:%s0x%02X/0x%02X", neg(r.flagsNeg), r.flagMask, r.flagComp)
		}
	}
	if r.icmpSet {
		s := "icmptype " + strconv.Itoa(int(r.icmpType))
		if r.icmpCode >= 0 {
			s += " code " + strconv.Itoa(int(r.icmpCode))
		}
		add("%s%s", neg(r.icmpNeg), s)
	}
	if r.mportDir != 0 {
		ps := make([]string, len(r.mports))
		for i, p := range r.mports {
			ps[i] = p.String()
		}
		add("multiport %s %s%s", [...]string{"", "sports", "dports", "ports"}[r.mportDir], neg(r.mportNeg), strings.Join(ps, ","))
	}
	if r.ctSet {
		var ss []string
		for _, n := range stateNames {
			if r.ctstate&n.s != 0 {
				ss = append(ss, n.name)
			}
		}
		if r.stateMatch {
			add("%sstate %s", neg(r.ctNeg), strings.Join(ss, ","))
		} else {
			add("%sctstate %s", neg(r.ctNeg), strings.Join(ss, ","))
		}
	}
	if r.limiter != nil {
		add("limit: avg %s burst %d", r.limitSpec, r.limitBurst)
	}
	switch r.target {
	case TargetReject:
		add("reject-with %s", r.reject)
	case TargetLog:
		add("LOG flags 0 level %d%s", logLevelNum(r.logLevel), map[bool]string{true: ` prefix "` + r.logPrefix + `"`, false: ""}[r.logPrefix != ""])
	case TargetDNAT:
		add("to:%s", r.natString())
	case TargetSNAT:
		add("to:%s", r.natString())
	case TargetMasquerade:
		if r.natPortOK {
			add("masq ports: %s", r.natPorts.nat())
		}
	case TargetRedirect:
		if r.natPortOK {
			add("redir ports %s", r.natPorts.nat())
		}
	}
	return strings.Join(b, " ")
}

func logLevelNum(l string) int {
	for i, n := range logLevels {
		if n == l {
			return i
		}
	}
	return 4 // iptables-extensions(8): LOG's default level is warning
}
