package filter

import (
	"fmt"
	"strings"
)

// Save returns table t in the form of iptables -S: policies, user chains,
// then every rule as the -A command that adds it. Exec (or Load) of each
// line rebuilds the same rules.
func (f *Filter) Save(t Table) string {
	if t >= numTables {
		return ""
	}
	rs := f.rules.Load()
	var b strings.Builder
	for _, c := range rs.chains[t] {
		if c.builtin {
			fmt.Fprintf(&b, "-P %s %s\n", c.name, targetNames[c.policy])
		}
	}
	for _, c := range rs.chains[t] {
		if !c.builtin {
			fmt.Fprintf(&b, "-N %s\n", c.name)
		}
	}
	for _, c := range rs.chains[t] {
		for _, r := range c.rules {
			if r.spec == "" {
				fmt.Fprintf(&b, "-A %s\n", c.name)
			} else {
				fmt.Fprintf(&b, "-A %s %s\n", c.name, r.spec)
			}
		}
	}
	return b.String()
}

// SaveAll returns both tables in the form of iptables-save (without
// counters), which Load reads back.
func (f *Filter) SaveAll() string {
	rs := f.rules.Load()
	var b strings.Builder
	for t := range numTables {
		fmt.Fprintf(&b, "*%s\n", t)
		for _, c := range rs.chains[t] {
			pol := "-"
			if c.builtin {
				pol = targetNames[c.policy]
			}
			fmt.Fprintf(&b, ":%s %s [0:0]\n", c.name, pol)
		}
		for _, c := range rs.chains[t] {
			for _, r := range c.rules {
				fmt.Fprintf(&b, "-A %s %s\n", c.name, r.spec)
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// List returns table t in the form of iptables -L -v -n: each chain with
// its policy (or references) and counters, each rule with its packet and
// byte counters, target, protocol, interfaces, addresses and matches.
func (f *Filter) List(t Table) string {
	if t >= numTables {
		return ""
	}
	rs := f.rules.Load()
	var b strings.Builder
	for i, c := range rs.chains[t] {
		if i > 0 {
			b.WriteString("\n")
		}
		if c.builtin {
			pk, by := c.pol.load()
			fmt.Fprintf(&b, "Chain %s (policy %s %d packets, %d bytes)\n", c.name, targetNames[c.policy], pk, by)
		} else {
			fmt.Fprintf(&b, "Chain %s (%d references)\n", c.name, refs(rs, t, c.name))
		}
		b.WriteString(strings.TrimRight(fmt.Sprintf("%5s %5s %-10s %-4s %-3s %-6s %-6s %-20s %-20s", "pkts", "bytes", "target", "prot", "opt", "in", "out", "source", "destination"), " ") + "\n")
		for _, r := range c.rules {
			pk, by := r.Counters()
			tg := targetNames[r.target]
			if r.target == TargetJump {
				tg = r.chain
			}
			prot := "all"
			if r.protoSet {
				prot = neg(r.protoNeg) + protoName(r.proto)
			}
			v6 := r.family6()
			any := "0.0.0.0/0"
			opt := "--"
			if v6 {
				any, opt = "::/0", ""
			}
			src, dst := any, any
			if r.src.IsValid() {
				src = neg(r.srcNeg) + r.src.String()
			}
			if r.dst.IsValid() {
				dst = neg(r.dstNeg) + r.dst.String()
			}
			in, out := "*", "*"
			if r.in != "" {
				in = neg(r.inNeg) + r.in
			}
			if r.out != "" {
				out = neg(r.outNeg) + r.out
			}
			line := fmt.Sprintf("%5s %5s %-10s %-4s %-3s %-6s %-6s %-20s %-20s %s", human(pk), human(by), tg, prot, opt, in, out, src, dst, r.listMatches())
			b.WriteString(strings.TrimRight(line, " ") + "\n")
		}
	}
	return b.String()
}

// human writes a counter as iptables -L -v does without -x: with a K, M,
// G or T suffix once it passes 99999.
func human(n uint64) string {
	units := []string{"", "K", "M", "G", "T", "P"}
	i := 0
	for n > 99999 && i < len(units)-1 {
		n /= 1000
		i++
	}
	return fmt.Sprintf("%d%s", n, units[i])
}
