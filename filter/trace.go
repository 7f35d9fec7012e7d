package filter

import (
	"strconv"

	"github.com/ustack/ustack/ip"
)

// Decision is what a Tracer learns of one Hook call: the hook, the chain
// and rule that decided (the rule's number in its chain as iptables -L
// --line-numbers counts, from 1, and its -S text; number 0 and no text
// for the chain's policy), the verdict, and the packet's connection
// tracking state.
type Decision struct {
	Hook    Hook
	Table   Table  // the table of Chain
	Chain   string // "" when no chain ran at this hook, or only empty ones with policy ACCEPT
	RuleNum int    // 0: the policy of Chain (or no rule)
	Rule    string // the rule as iptables -S writes it, "-A CHAIN ..."
	Verdict Verdict
	State   State // the conntrack state: NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED
	// TCPState is the connection's TCP conntrack state after this
	// packet (TCPNone for other protocols or untracked packets).
	TCPState TCPState
	// IP is the datagram decided on, valid only during the call; In and
	// Out are its NICs' names, as in Packet.
	IP      *ip.Packet
	In, Out string
}

// Tracer is told of every Hook call's decision, on the goroutine that
// called Hook, before Hook returns. It must not keep d or d.IP.
type Tracer func(d *Decision)

// SetTracer makes t the filter's tracer; nil (the default) turns tracing
// off, which costs Hook one atomic load.
func (f *Filter) SetTracer(t Tracer) {
	if t == nil {
		f.tracer.Store(nil)
		return
	}
	f.tracer.Store(&t)
}

// hit is where the last chain walked on a packet ended: the rule with the
// terminating target and its 1-based number in its chain c, or the
// policy of c (rule nil, num 0).
type hit struct {
	c   *chain
	r   *Rule
	num int
}

// trace builds the Decision of hook h on p and hands it to t.
func (f *Filter) trace(t Tracer, rs *ruleset, h Hook, p *Packet, vd Verdict) {
	// Fields of p, never p itself: the tracer is any function, and a p
	// that escaped through it would cost the stack an allocation per
	// datagram even with tracing off.
	d := Decision{Hook: h, Verdict: vd, State: p.ctst, IP: p.IP, In: p.In, Out: p.Out}
	if c := p.hit.c; c != nil && (len(c.rules) > 0 || c.policy != TargetAccept) {
		d.Chain, d.RuleNum = c.name, p.hit.num
		for tb := range rs.chains {
			for _, x := range rs.chains[tb] {
				if x == c {
					d.Table = Table(tb)
				}
			}
		}
		if r := p.hit.r; r != nil && d.RuleNum > 0 {
			d.Rule = "-A " + c.name + " " + r.spec
		}
	}
	if ct := p.ct; ct != nil && ct.tuple[0].Proto == 6 {
		ct.mu.Lock()
		d.TCPState = ct.tcp
		ct.mu.Unlock()
	}
	t(&d)
}

// String returns the decision as one line, as ustack's trace prints it:
//
//	INPUT ACCEPT by rule 2 "-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT", ct NEW SYN_SENT
func (d *Decision) String() string {
	return string(d.Append(nil))
}

// Append appends the line of String to b.
func (d *Decision) Append(b []byte) []byte {
	b = append(b, d.Hook.String()...)
	b = append(b, ' ')
	b = append(b, d.Verdict.String()...)
	switch {
	case d.Chain == "":
		b = append(b, " (no rules)"...)
	case d.RuleNum == 0:
		b = append(b, " by policy of "...)
		if d.Table != TableFilter {
			b = append(b, d.Table.String()...)
			b = append(b, ' ')
		}
		b = append(b, d.Chain...)
	default:
		b = append(b, " by rule "...)
		b = strconv.AppendInt(b, int64(d.RuleNum), 10)
		if d.Table != TableFilter {
			b = append(b, " of "...)
			b = append(b, d.Table.String()...)
		}
		b = append(b, ' ')
		b = strconv.AppendQuote(b, d.Rule)
	}
	b = append(b, ", ct "...)
	b = append(b, d.State.String()...)
	if d.TCPState != TCPNone {
		b = append(b, ' ')
		b = append(b, d.TCPState.String()...)
	}
	return b
}

// String returns the states in s as --ctstate writes them
// ("ESTABLISHED", "NEW,RELATED"), "-" for none.
func (s State) String() string {
	var b []byte
	for _, n := range stateNames {
		if s&n.s != 0 {
			if b != nil {
				b = append(b, ',')
			}
			b = append(b, n.name...)
		}
	}
	if b == nil {
		return "-"
	}
	return string(b)
}
