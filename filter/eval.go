package filter

import (
	"context"
	"log/slog"
	"strings"
	"time"
)

// Action is what the stack does with a packet after a hook.
type Action uint8

// The actions.
const (
	Accept Action = iota // go on with the packet
	Drop                 // discard it silently
	Reject               // discard it and send Verdict.RejectWith back
)

// String returns the action's name, as the target that chose it.
func (a Action) String() string {
	switch a {
	case Accept:
		return "ACCEPT"
	case Drop:
		return "DROP"
	case Reject:
		return "REJECT"
	}
	return "?"
}

// String returns the verdict as iptables would write its target.
func (v Verdict) String() string {
	if v.Action == Reject {
		return "REJECT --reject-with " + v.RejectWith.String()
	}
	return v.Action.String()
}

// Verdict is the filter's decision on a packet at one hook.
type Verdict struct {
	Action Action
	// RejectWith is the reply to send for Reject: a TCP reset
	// (RejectTCPReset) or the ICMP / ICMPv6 error that RejectWith.ICMP
	// names, as the stack's own unreachable path builds them.
	RejectWith RejectWith
}

// Hook runs the filter at hook h on p at time now, in Linux's order of
// priorities: connection tracking first (at the first hook the datagram
// reaches), then at prerouting and output the nat table's destination
// NAT, at input, forward and output the filter table, and at postrouting
// (and, for replies, input) the nat table's source NAT. NAT rewrites p's
// bytes in place, so after an Accept the stack goes on with p.IP as it is
// now (its Destination may have changed at prerouting or output: route
// again).
//
// Hook does not allocate on the accept path of an established flow.
func (f *Filter) Hook(h Hook, p *Packet, now time.Time) Verdict {
	if p == nil || p.IP == nil || h >= numHooks {
		f.stats.DropInvalid.Add(1)
		return Verdict{Action: Drop}
	}
	var v view
	if !p.track {
		if v.decode(p.IP) {
			p.track, p.ctst = true, StateUntracked // a fragment: see the package doc
		} else {
			f.ct.track(p, &v, p.IP.Payload, now)
		}
	} else {
		v.decode(p.IP)
	}
	rs := f.rules.Load()
	vd := Verdict{}
	p.hit = hit{}
	switch h {
	case Prerouting:
		vd = f.natDst(rs, h, p, &v, now)
	case Output:
		if vd = f.natDst(rs, h, p, &v, now); vd.Action == Accept {
			vd = f.run(rs.hookChain(TableFilter, h), p, &v, now)
		}
	case Input:
		if vd = f.run(rs.hookChain(TableFilter, h), p, &v, now); vd.Action == Accept {
			vd = f.natSrc(rs, h, p, &v, now)
		}
	case Forward:
		vd = f.run(rs.hookChain(TableFilter, h), p, &v, now)
	case Postrouting:
		vd = f.natSrc(rs, h, p, &v, now)
	}
	if t := f.tracer.Load(); t != nil {
		f.trace(*t, rs, h, p, vd)
	}
	if vd.Action != Accept && p.ct != nil && p.ctst == StateNew {
		f.ct.dropNew(p.ct)
	}
	return vd
}

// dropNew forgets a connection whose first packets were dropped and that
// never saw a reply, so that refused flows do not fill the table (Linux
// never confirms them).
func (ct *Conntrack) dropNew(c *conn) {
	ct.mu.Lock()
	c.mu.Lock()
	unconfirmed := !c.seenRep && !c.assured
	c.mu.Unlock()
	if unconfirmed {
		ct.remove(c)
	}
	ct.mu.Unlock()
}

// frame is a chain being walked and the next rule in it.
type frame struct {
	c *chain
	i int
}

// walk evaluates chain c on p, following jumps and RETURNs, and returns
// the rule with the terminating target, or nil when the built-in chain's
// policy applies (its counters are then counted).
func (f *Filter) walk(c *chain, p *Packet, v *view, now time.Time) *Rule {
	var stack [maxDepth + 2]frame
	sp := 0
	cur := frame{c: c}
	for {
		if cur.i >= len(cur.c.rules) {
			if sp == 0 {
				cur.c.pol.add(v.length, v.stripe())
				p.hit = hit{c: cur.c}
				return nil
			}
			sp--
			cur = stack[sp]
			continue
		}
		r := cur.c.rules[cur.i]
		cur.i++
		// The IPv4 source test inline, before the call: the rules of a
		// long chain (block lists) mostly miss on it.
		if r.src4.ok && !v.v6 && (v.src4&r.src4.mask == r.src4.addr) == r.srcNeg {
			continue
		}
		if !r.matches(p, v, now) {
			continue
		}
		r.ctr.add(v.length, v.stripe())
		switch r.target {
		case TargetNone:
		case TargetLog:
			f.logPacket(r, p, v)
		case TargetReturn:
			if sp == 0 {
				cur.c.pol.add(v.length, v.stripe())
				p.hit = hit{c: cur.c}
				return nil
			}
			sp--
			cur = stack[sp]
		case TargetJump:
			if sp >= len(stack) {
				f.stats.DropJumpDepth.Add(1)
				p.hit = hit{c: cur.c, r: r, num: cur.i}
				return &dropRule
			}
			stack[sp] = cur
			sp++
			cur = frame{c: r.jump}
		default:
			p.hit = hit{c: cur.c, r: r, num: cur.i}
			return r
		}
	}
}

// stripe picks a counter stripe by the flow's ports, the same for both
// directions.
func (v *view) stripe() uint { return uint(v.sport ^ v.dport ^ v.id) }

// dropRule stands for a drop the filter decides itself.
var dropRule = Rule{target: TargetDrop}

// run evaluates a filter table chain.
func (f *Filter) run(c *chain, p *Packet, v *view, now time.Time) Verdict {
	if c == nil {
		return Verdict{}
	}
	r := f.walk(c, p, v, now)
	if r == nil {
		if c.policy == TargetDrop {
			return Verdict{Action: Drop}
		}
		return Verdict{}
	}
	switch r.target {
	case TargetDrop:
		return Verdict{Action: Drop}
	case TargetReject:
		return Verdict{Action: Reject, RejectWith: r.reject}
	}
	return Verdict{}
}

// matches reports whether every match of r holds for p.
func (r *Rule) matches(p *Packet, v *view, now time.Time) bool {
	if r.src4.ok {
		if v.v6 || (v.src4&r.src4.mask == r.src4.addr) == r.srcNeg {
			return false
		}
	} else if r.src.IsValid() && (r.src.Addr().Is6() != v.v6 || r.src.Contains(v.src) == r.srcNeg) {
		return false
	}
	if r.dst4.ok {
		if v.v6 || (v.dst4&r.dst4.mask == r.dst4.addr) == r.dstNeg {
			return false
		}
	} else if r.dst.IsValid() && (r.dst.Addr().Is6() != v.v6 || r.dst.Contains(v.dst) == r.dstNeg) {
		return false
	}
	if r.protoSet && (v.proto == r.proto) == r.protoNeg {
		return false
	}
	if r.in != "" && nicMatch(r.in, p.In) == r.inNeg {
		return false
	}
	if r.out != "" && nicMatch(r.out, p.Out) == r.outNeg {
		return false
	}
	if r.sportSet || r.dportSet || r.flagsSet || r.mportDir != 0 || r.icmpSet {
		if !v.l4 {
			return false
		}
		if r.sportSet && r.sport.has(v.sport) == r.sportNeg {
			return false
		}
		if r.dportSet && r.dport.has(v.dport) == r.dportNeg {
			return false
		}
		if r.flagsSet && (v.flags&r.flagMask == r.flagComp) == r.flagsNeg {
			return false
		}
		if r.mportDir != 0 && r.multiport(v) == r.mportNeg {
			return false
		}
		if r.icmpSet && (v.typ == uint8(r.icmpType) && (r.icmpCode < 0 || v.code == uint8(r.icmpCode))) == r.icmpNeg {
			return false
		}
	}
	if r.ctSet && (p.ctst&r.ctstate != 0) == r.ctNeg {
		return false
	}
	if r.limiter != nil && !r.limiter.allow(now) {
		return false
	}
	return true
}

func (r *Rule) multiport(v *view) bool {
	for _, pr := range r.mports {
		if r.mportDir&1 != 0 && pr.has(v.sport) || r.mportDir&2 != 0 && pr.has(v.dport) {
			return true
		}
	}
	return false
}

// nicMatch matches an interface name; a pattern ending in '+' matches
// every name it begins (iptables(8), -i).
func nicMatch(pattern, name string) bool {
	if strings.HasSuffix(pattern, "+") {
		return strings.HasPrefix(name, pattern[:len(pattern)-1])
	}
	return pattern == name
}

var slogLevels = map[string]slog.Level{"emerg": slog.LevelError + 4, "alert": slog.LevelError + 3, "crit": slog.LevelError + 2,
	"error": slog.LevelError, "warning": slog.LevelWarn, "notice": slog.LevelInfo + 2, "info": slog.LevelInfo, "debug": slog.LevelDebug}

// logPacket is the LOG target: one record with the fields Linux's LOG
// writes (IN=, OUT=, SRC=, DST=, PROTO=, SPT=, DPT=).
func (f *Filter) logPacket(r *Rule, p *Packet, v *view) {
	lvl, ok := slogLevels[r.logLevel]
	if !ok {
		lvl = slog.LevelWarn
	}
	ctx := context.Background()
	if !f.log.Enabled(ctx, lvl) {
		return
	}
	attrs := []slog.Attr{slog.String("IN", p.In), slog.String("OUT", p.Out),
		slog.String("SRC", v.src.String()), slog.String("DST", v.dst.String()),
		slog.Int("LEN", v.length), slog.String("PROTO", strings.ToUpper(protoName(v.proto)))}
	if v.l4 && (v.proto == 6 || v.proto == 17) {
		attrs = append(attrs, slog.Int("SPT", int(v.sport)), slog.Int("DPT", int(v.dport)))
	}
	f.log.LogAttrs(ctx, lvl, r.logPrefix, attrs...)
}
