package filter

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Table names a table of chains.
type Table uint8

// The tables.
const (
	TableFilter Table = iota // filter: INPUT, FORWARD, OUTPUT
	TableNAT                 // nat: PREROUTING, OUTPUT, POSTROUTING
	numTables
)

var tableNames = [numTables]string{"filter", "nat"}

// String returns the table's iptables name.
func (t Table) String() string {
	if t < numTables {
		return tableNames[t]
	}
	return "?"
}

// builtins are each table's built-in chains, in iptables -L order.
var builtins = [numTables][]Hook{
	TableFilter: {Input, Forward, Output},
	TableNAT:    {Prerouting, Output, Postrouting},
}

// chain is a built-in or user chain in one snapshot.
type chain struct {
	name    string
	builtin bool
	policy  Target // ACCEPT or DROP for a built-in chain
	rules   []*Rule
	pol     *counters // the policy's counters, shared across snapshots
}

// ruleset is one immutable snapshot of every table: changes build a new
// one and publish it, so evaluation reads it without a lock.
type ruleset struct {
	chains [numTables][]*chain // built-ins first, in builtins order
}

func (rs *ruleset) find(t Table, name string) *chain {
	for _, c := range rs.chains[t] {
		if c.name == name {
			return c
		}
	}
	return nil
}

// hookChain returns the built-in chain of table t at hook h, or nil.
func (rs *ruleset) hookChain(t Table, h Hook) *chain {
	for i, b := range builtins[t] {
		if b == h {
			return rs.chains[t][i]
		}
	}
	return nil
}

// Config holds what the filter needs from the stack, and its limits.
type Config struct {
	// Logger receives the LOG target's records; nil discards them.
	Logger *slog.Logger
	// LocalAddr returns the address MASQUERADE uses on the NIC named
	// nic (its primary address of the family), and REDIRECT on the NIC
	// a packet came in on; ok false makes the packet a counted drop.
	LocalAddr func(nic string, v6 bool) (addr netip.Addr, ok bool)
	// Conntrack sizes and times the connection tracking table; the zero
	// value means Linux's defaults.
	Conntrack ConntrackConfig
}

// Filter is a packet filter: the filter and nat tables, the connection
// tracking table they share, and counters. It is safe for concurrent use:
// Hook reads the rules without a lock; changes to the rules are
// serialized and published atomically.
type Filter struct {
	cfg   Config
	log   *slog.Logger
	mu    sync.Mutex // serializes rule changes (writers of rules)
	rules atomic.Pointer[ruleset]
	ct    *Conntrack
	stats Stats
	// tracer is told of every decision (SetTracer); nil when off.
	tracer atomic.Pointer[Tracer]
}

// Stats counts what the filter did outside the rules' own counters.
type Stats struct {
	DropInvalid       atomic.Uint64 // packets too malformed to evaluate (no transport header where one is needed)
	DropNATNoAddr     atomic.Uint64 // MASQUERADE or REDIRECT found no local address
	DropNATNoPort     atomic.Uint64 // SNAT or MASQUERADE found no free port: the range is exhausted
	DropJumpDepth     atomic.Uint64 // chains nested deeper than maxDepth
	DropConntrackFull atomic.Uint64 // the conntrack table was full of assured entries
}

// New returns a Filter with empty chains, every policy ACCEPT.
func New(cfg Config) *Filter {
	f := &Filter{cfg: cfg, log: cfg.Logger}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.ct = newConntrack(cfg.Conntrack, &f.stats)
	rs := new(ruleset)
	for t := range numTables {
		for _, h := range builtins[t] {
			rs.chains[t] = append(rs.chains[t], &chain{name: h.String(), builtin: true, policy: TargetAccept, pol: new(counters)})
		}
	}
	f.rules.Store(rs)
	return f
}

// Conntrack returns the connection tracking table.
func (f *Filter) Conntrack() *Conntrack { return f.ct }

// Stats returns the filter's drop counters.
func (f *Filter) Stats() *Stats { return &f.stats }

// edit applies fn to a copy of the rules and publishes the copy if fn
// succeeds and the jumps still resolve without a loop.
func (f *Filter) edit(fn func(rs *ruleset) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.rules.Load()
	rs := new(ruleset)
	for t := range numTables {
		for _, c := range old.chains[t] {
			cc := *c
			cc.rules = slices.Clone(c.rules)
			rs.chains[t] = append(rs.chains[t], &cc)
		}
	}
	if err := fn(rs); err != nil {
		return err
	}
	if err := rs.link(); err != nil {
		return err
	}
	f.rules.Store(rs)
	return nil
}

// maxDepth bounds how deep user chains nest.
const maxDepth = 16

// link resolves every jump to its chain in rs, copying a rule whose
// resolution changed (rules in older snapshots stay untouched), and
// rejects a missing chain, a jump loop or nesting deeper than maxDepth.
func (rs *ruleset) link() error {
	for t := range numTables {
		for _, c := range rs.chains[t] {
			for i, r := range c.rules {
				if r.target != TargetJump {
					continue
				}
				to := rs.find(t, r.chain)
				if to == nil || to.builtin {
					return fmt.Errorf("filter: chain %s: jump to %q: no such user chain in table %s", c.name, r.chain, t)
				}
				if r.jump != to {
					cp := *r
					cp.jump = to
					c.rules[i] = &cp
				}
			}
		}
		for _, c := range rs.chains[t] {
			if err := depth(c, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

func depth(c *chain, d int) error {
	if d > maxDepth {
		return fmt.Errorf("filter: chain %s: jumps loop or nest deeper than %d", c.name, maxDepth)
	}
	for _, r := range c.rules {
		if r.jump != nil {
			if err := depth(r.jump, d+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func chainErr(t Table, name string) error {
	return fmt.Errorf("filter: no chain %q in table %s", name, t)
}

// targetAllowed reports whether rule r may be in chain c of table t: NAT
// targets only in nat, and only at the hooks Linux allows them; filter
// verdicts only in filter.
func targetAllowed(t Table, c *chain, r *Rule) error {
	nat := r.target >= TargetDNAT
	switch {
	case t == TableFilter && nat:
		return fmt.Errorf("filter: %s is valid only in the nat table", targetNames[r.target])
	case t == TableNAT && (r.target == TargetDrop || r.target == TargetReject):
		return fmt.Errorf("filter: %s is not valid in the nat table", targetNames[r.target])
	}
	if c.builtin && nat {
		dst := r.target == TargetDNAT || r.target == TargetRedirect
		if dst && c.name == "POSTROUTING" || !dst && c.name != "POSTROUTING" {
			return fmt.Errorf("filter: %s is not valid in chain %s", targetNames[r.target], c.name)
		}
	}
	return nil
}

// Append adds r at the end of chain in table t (iptables -A).
func (f *Filter) Append(t Table, chainName string, r *Rule) error {
	return f.Insert(t, chainName, -1, r)
}

// Insert adds r to chain in table t before rule number pos (1-based, as
// iptables -I counts; pos -1 appends).
func (f *Filter) Insert(t Table, chainName string, pos int, r *Rule) error {
	if r == nil || t >= numTables {
		return errors.New("filter: Insert: nil rule or bad table")
	}
	return f.edit(func(rs *ruleset) error {
		c := rs.find(t, chainName)
		if c == nil {
			return chainErr(t, chainName)
		}
		if err := targetAllowed(t, c, r); err != nil {
			return err
		}
		if pos == -1 {
			c.rules = append(c.rules, r)
			return nil
		}
		if pos < 1 || pos > len(c.rules)+1 {
			return fmt.Errorf("filter: chain %s: rule number %d out of range", chainName, pos)
		}
		c.rules = slices.Insert(c.rules, pos-1, r)
		return nil
	})
}

// Delete removes from chain in table t the first rule whose
// specification equals r's (iptables -D chain rule-spec).
func (f *Filter) Delete(t Table, chainName string, r *Rule) error {
	if r == nil || t >= numTables {
		return errors.New("filter: Delete: nil rule or bad table")
	}
	return f.edit(func(rs *ruleset) error {
		c := rs.find(t, chainName)
		if c == nil {
			return chainErr(t, chainName)
		}
		for i, x := range c.rules {
			if x.spec == r.spec {
				c.rules = slices.Delete(c.rules, i, i+1)
				return nil
			}
		}
		return fmt.Errorf("filter: chain %s: no rule %q", chainName, r.spec)
	})
}

// DeleteNum removes rule number n (1-based) of chain (iptables -D chain n).
func (f *Filter) DeleteNum(t Table, chainName string, n int) error {
	return f.edit(func(rs *ruleset) error {
		c := rs.find(t, chainName)
		if c == nil {
			return chainErr(t, chainName)
		}
		if n < 1 || n > len(c.rules) {
			return fmt.Errorf("filter: chain %s: rule number %d out of range", chainName, n)
		}
		c.rules = slices.Delete(c.rules, n-1, n)
		return nil
	})
}

// NewChain creates a user chain (iptables -N).
func (f *Filter) NewChain(t Table, name string) error {
	if t >= numTables || !validChainName(name) {
		return fmt.Errorf("filter: bad chain name %q", name)
	}
	return f.edit(func(rs *ruleset) error {
		if rs.find(t, name) != nil {
			return fmt.Errorf("filter: chain %q already exists in table %s", name, t)
		}
		rs.chains[t] = append(rs.chains[t], &chain{name: name, pol: new(counters)})
		return nil
	})
}

// DeleteChain deletes an empty, unreferenced user chain (iptables -X).
func (f *Filter) DeleteChain(t Table, name string) error {
	return f.edit(func(rs *ruleset) error {
		c := rs.find(t, name)
		if c == nil || c.builtin {
			return fmt.Errorf("filter: no user chain %q in table %s", name, t)
		}
		if len(c.rules) > 0 {
			return fmt.Errorf("filter: chain %q is not empty", name)
		}
		if refs(rs, t, name) > 0 {
			return fmt.Errorf("filter: chain %q is referenced", name)
		}
		rs.chains[t] = slices.DeleteFunc(rs.chains[t], func(x *chain) bool { return x == c })
		return nil
	})
}

// Flush deletes every rule of chain, or of every chain of t when chain
// is "" (iptables -F).
func (f *Filter) Flush(t Table, chainName string) error {
	return f.edit(func(rs *ruleset) error {
		found := false
		for _, c := range rs.chains[t] {
			if chainName == "" || c.name == chainName {
				c.rules, found = nil, true
			}
		}
		if !found {
			return chainErr(t, chainName)
		}
		return nil
	})
}

// SetPolicy sets a built-in chain's policy to ACCEPT or DROP (iptables -P).
func (f *Filter) SetPolicy(t Table, chainName string, policy Target) error {
	if policy != TargetAccept && policy != TargetDrop {
		return fmt.Errorf("filter: policy must be ACCEPT or DROP, not %v", targetNames[min(int(policy), len(targetNames)-1)])
	}
	if t == TableNAT && policy == TargetDrop {
		return errors.New("filter: the nat table's policies must stay ACCEPT")
	}
	return f.edit(func(rs *ruleset) error {
		c := rs.find(t, chainName)
		if c == nil || !c.builtin {
			return fmt.Errorf("filter: %q is not a built-in chain of table %s", chainName, t)
		}
		c.policy = policy
		return nil
	})
}

func refs(rs *ruleset, t Table, name string) int {
	n := 0
	for _, c := range rs.chains[t] {
		for _, r := range c.rules {
			if r.target == TargetJump && r.chain == name {
				n++
			}
		}
	}
	return n
}

// Rules returns the rules of chain in table t, in order.
func (f *Filter) Rules(t Table, chainName string) ([]*Rule, error) {
	if t >= numTables {
		return nil, errors.New("filter: bad table")
	}
	c := f.rules.Load().find(t, chainName)
	if c == nil {
		return nil, chainErr(t, chainName)
	}
	return slices.Clone(c.rules), nil
}

// Policy returns a built-in chain's policy and its counters.
func (f *Filter) Policy(t Table, chainName string) (policy Target, packets, bytes uint64, err error) {
	if t >= numTables {
		return 0, 0, 0, errors.New("filter: bad table")
	}
	c := f.rules.Load().find(t, chainName)
	if c == nil || !c.builtin {
		return 0, 0, 0, chainErr(t, chainName)
	}
	pk, by := c.pol.load()
	return c.policy, pk, by, nil
}

// Exec runs one iptables command: -A, -I, -D, -P, -N, -X or -F, with an
// optional leading "iptables" and "-t filter|nat" (the default table is
// filter), for example
//
//	-t nat -A POSTROUTING -o eth0 -j MASQUERADE
//
// A command that does not parse is a *SyntaxError naming the column.
func (f *Filter) Exec(cmd string) error {
	return f.exec(cmd, TableFilter, false)
}

func (f *Filter) exec(cmd string, table Table, tableFixed bool) error {
	toks, serr := tokenize(cmd)
	if serr != nil {
		return serr
	}
	end := len(cmd) + 1
	if len(toks) > 0 && (toks[0].s == "iptables" || toks[0].s == "ip6tables") {
		toks = toks[1:]
	}
	var op token
	var rest []token
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch t.s {
		case "-t", "--table":
			if i+1 >= len(toks) {
				return &SyntaxError{Column: end, Msg: "-t needs a table name"}
			}
			i++
			switch toks[i].s {
			case "filter":
				if tableFixed && table != TableFilter {
					return &SyntaxError{Column: toks[i].col, Msg: "-t filter inside a *nat block"}
				}
				table = TableFilter
			case "nat":
				if tableFixed && table != TableNAT {
					return &SyntaxError{Column: toks[i].col, Msg: "-t nat inside a *filter block"}
				}
				table = TableNAT
			default:
				return &SyntaxError{Column: toks[i].col, Msg: fmt.Sprintf("unknown table %q", toks[i].s)}
			}
		case "-A", "--append", "-I", "--insert", "-D", "--delete", "-P", "--policy", "-N", "--new-chain", "-X", "--delete-chain", "-F", "--flush":
			if op.s != "" {
				return &SyntaxError{Column: t.col, Msg: "a second command " + t.s}
			}
			op = t
		default:
			rest = append(rest, t)
			continue
		}
	}
	if op.s == "" {
		return &SyntaxError{Column: 1, Msg: "no command (-A, -I, -D, -P, -N, -X, -F)"}
	}
	// The chain name, and for some commands a number or a policy, come
	// right after the command word in rest.
	arg := func(what string) (token, error) {
		if len(rest) == 0 || strings.HasPrefix(rest[0].s, "-") {
			return token{}, &SyntaxError{Column: op.col, Msg: op.s + " needs " + what}
		}
		t := rest[0]
		rest = rest[1:]
		return t, nil
	}
	// Rules follow the command and its chain; check that the chain
	// word really came right after the command word.
	chainTok, err := arg("a chain name")
	if err != nil && !(op.s == "-F" || op.s == "--flush") {
		return err
	}
	name := chainTok.s
	wrap := func(e error, col int) error {
		if e == nil {
			return nil
		}
		var se *SyntaxError
		if errors.As(e, &se) {
			return se
		}
		return &SyntaxError{Column: col, Msg: strings.TrimPrefix(e.Error(), "filter: ")}
	}
	switch op.s {
	case "-P", "--policy":
		pt, err := arg("a policy")
		if err != nil {
			return err
		}
		if len(rest) > 0 {
			return &SyntaxError{Column: rest[0].col, Msg: fmt.Sprintf("unexpected %q", rest[0].s)}
		}
		pol := map[string]Target{"ACCEPT": TargetAccept, "DROP": TargetDrop}[pt.s]
		if pol == 0 {
			return &SyntaxError{Column: pt.col, Msg: fmt.Sprintf("bad policy %q", pt.s)}
		}
		return wrap(f.SetPolicy(table, name, pol), chainTok.col)
	case "-N", "--new-chain", "-X", "--delete-chain", "-F", "--flush":
		if len(rest) > 0 {
			return &SyntaxError{Column: rest[0].col, Msg: fmt.Sprintf("unexpected %q", rest[0].s)}
		}
		switch op.s {
		case "-N", "--new-chain":
			return wrap(f.NewChain(table, name), chainTok.col)
		case "-X", "--delete-chain":
			return wrap(f.DeleteChain(table, name), chainTok.col)
		}
		return wrap(f.Flush(table, name), op.col)
	}
	pos := -1
	if op.s == "-I" || op.s == "--insert" {
		pos = 1
		if len(rest) > 0 {
			if n, e := strconv.Atoi(rest[0].s); e == nil {
				pos = n
				rest = rest[1:]
			}
		}
	}
	if op.s == "-D" || op.s == "--delete" {
		if len(rest) == 1 {
			if n, e := strconv.Atoi(rest[0].s); e == nil {
				return wrap(f.DeleteNum(table, name, n), rest[0].col)
			}
		}
	}
	r, serr := parseRuleTokens(rest, end)
	if serr != nil {
		return serr
	}
	switch op.s {
	case "-D", "--delete":
		return wrap(f.Delete(table, name, r), op.col)
	}
	return wrap(f.Insert(table, name, pos, r), chainTok.col)
}

// Load reads rules in the iptables-save form, or as a list of iptables
// commands: '#' comments and blank lines are skipped; "*filter" or
// "*nat" opens a table block, ":CHAIN POLICY [pkts:bytes]" declares a
// chain, "COMMIT" ends the block; any other line is a command for Exec.
// As with iptables-restore, a table block replaces its table: its rules
// and user chains go, its policies return to ACCEPT unless declared.
// The whole input applies or, at the first error, none of it: the error
// is a *SyntaxError naming the line and column.
func (f *Filter) Load(r io.Reader) error {
	// Edit a scratch filter starting from the current rules, then
	// publish its rules; f.mu keeps other changes out meanwhile.
	f.mu.Lock()
	defer f.mu.Unlock()
	scratch := New(Config{})
	scratch.rules.Store(f.rules.Load())
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLineLen+1)
	table, inBlock := TableFilter, false
	line := 0
	fail := func(col int, msg string) error { return &SyntaxError{Line: line, Column: col, Msg: msg} }
	for sc.Scan() {
		line++
		text := sc.Text()
		trim := strings.TrimLeft(text, " \t")
		col := len(text) - len(trim) + 1
		trim = strings.TrimRight(trim, " \t\r")
		switch {
		case trim == "" || trim[0] == '#':
			continue
		case trim[0] == '*':
			if inBlock {
				return fail(col, "a table block inside another (missing COMMIT)")
			}
			switch trim[1:] {
			case "filter":
				table = TableFilter
			case "nat":
				table = TableNAT
			default:
				return fail(col+1, fmt.Sprintf("unknown table %q", trim[1:]))
			}
			inBlock = true
			_ = scratch.edit(func(rs *ruleset) error {
				rs.chains[table] = rs.chains[table][:len(builtins[table])]
				for _, c := range rs.chains[table] {
					c.rules, c.policy = nil, TargetAccept
				}
				return nil
			})
			continue
		case trim == "COMMIT":
			if !inBlock {
				return fail(col, "COMMIT outside a table block")
			}
			inBlock, table = false, TableFilter
			continue
		case trim[0] == ':':
			if !inBlock {
				return fail(col, "a chain declaration outside a table block")
			}
			fields := strings.Fields(trim[1:])
			if len(fields) < 2 || len(fields) > 3 {
				return fail(col, "a chain declaration is :CHAIN POLICY [packets:bytes]")
			}
			name, pol := fields[0], fields[1]
			rs := scratch.rules.Load()
			c := rs.find(table, name)
			switch {
			case c != nil && c.builtin:
				if err := scratch.SetPolicy(table, name, map[string]Target{"ACCEPT": TargetAccept, "DROP": TargetDrop}[pol]); err != nil {
					return fail(col+1+len(name)+1, strings.TrimPrefix(err.Error(), "filter: "))
				}
			case pol != "-":
				return fail(col+1+len(name)+1, "a user chain's policy is -")
			case c == nil:
				if err := scratch.NewChain(table, name); err != nil {
					return fail(col+1, strings.TrimPrefix(err.Error(), "filter: "))
				}
			}
			continue
		}
		if err := scratch.exec(text, table, inBlock); err != nil {
			var se *SyntaxError
			if errors.As(err, &se) {
				return &SyntaxError{Line: line, Column: se.Column, Msg: se.Msg}
			}
			return fail(col, err.Error())
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return &SyntaxError{Line: line + 1, Column: maxLineLen, Msg: "line too long"}
		}
		return fmt.Errorf("filter: reading rules: %w", err)
	}
	if inBlock {
		return &SyntaxError{Line: line, Column: 1, Msg: "missing COMMIT at the end"}
	}
	f.rules.Store(scratch.rules.Load())
	return nil
}
