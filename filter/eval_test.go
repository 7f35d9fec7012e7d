package filter

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// verdictOf runs a one-rule INPUT chain (policy DROP unless the rule
// accepts) on p and reports whether the rule matched.
func matchOne(t *testing.T, rule string, p *Packet) bool {
	t.Helper()
	f := New(Config{})
	mustExec(t, f, "-P INPUT DROP", "-A INPUT "+rule+" -j ACCEPT")
	return f.Hook(Input, p, t0).Action == Accept
}

func TestMatches(t *testing.T) {
	tcp := func(src, dst string, sp, dp uint16, fl uint8) *Packet {
		return mk(seg{src: src, dst: dst, proto: 6, sport: sp, dport: dp, flags: fl, win: 1000}, "eth0", "")
	}
	udp := func(src, dst string, sp, dp uint16) *Packet {
		return mk(seg{src: src, dst: dst, proto: 17, sport: sp, dport: dp}, "eth1", "")
	}
	echo := mk(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: 1, icmpType: 8, id: 7}, "eth0", "")
	echo6 := mk(seg{src: "2001:db8::1", dst: "2001:db8::2", proto: 58, icmpType: 128, id: 7}, "eth0", "")
	tests := []struct {
		name, rule string
		p          *Packet
		want       bool
	}{
		{"issue rule", "-p tcp -s 192.168.1.0/24 -m tcp --dport 80", tcp("192.168.1.9", "10.0.0.1", 5000, 80, flagSYN), true},
		{"issue rule other net", "-p tcp -s 192.168.1.0/24 -m tcp --dport 80", tcp("192.168.2.9", "10.0.0.1", 5000, 80, flagSYN), false},
		{"issue rule other port", "-p tcp -s 192.168.1.0/24 -m tcp --dport 80", tcp("192.168.1.9", "10.0.0.1", 5000, 81, flagSYN), false},
		{"proto", "-p udp", tcp("1.1.1.1", "2.2.2.2", 1, 2, 0), false},
		{"! proto", "! -p udp", tcp("1.1.1.1", "2.2.2.2", 1, 2, 0), true},
		{"all", "-p all", udp("1.1.1.1", "2.2.2.2", 1, 2), true},
		{"dst", "-d 10.0.0.0/24", udp("1.1.1.1", "10.0.0.200", 1, 2), true},
		{"! dst", "! -d 10.0.0.0/24", udp("1.1.1.1", "10.0.0.200", 1, 2), false},
		{"v4 rule, v6 packet", "-s 0.0.0.0/0", echo6, false},
		{"v6 rule", "-s 2001:db8::/64", echo6, true},
		{"! v4 rule never matches v6", "! -s 10.0.0.0/8", echo6, false},
		{"in", "-i eth0", tcp("1.1.1.1", "2.2.2.2", 1, 2, 0), true},
		{"in other", "-i eth0", udp("1.1.1.1", "2.2.2.2", 1, 2), false},
		{"in wildcard", "-i eth+", udp("1.1.1.1", "2.2.2.2", 1, 2), true},
		{"! in", "! -i eth0", udp("1.1.1.1", "2.2.2.2", 1, 2), true},
		{"out none at input", "-o eth0", udp("1.1.1.1", "2.2.2.2", 1, 2), false},
		{"sport", "-p udp --sport 53", udp("1.1.1.1", "2.2.2.2", 53, 2), true},
		{"sport range", "-p udp --sport 50:60", udp("1.1.1.1", "2.2.2.2", 61, 2), false},
		{"dport range", "-p udp --dport 1000:2000", udp("1.1.1.1", "2.2.2.2", 1, 1500), true},
		{"! dport", "-p udp ! --dport 53", udp("1.1.1.1", "2.2.2.2", 1, 53), false},
		{"syn", "-p tcp --syn", tcp("1.1.1.1", "2.2.2.2", 1, 2, flagSYN), true},
		{"syn-ack is not --syn", "-p tcp --syn", tcp("1.1.1.1", "2.2.2.2", 1, 2, flagSYN|flagACK), false},
		{"! syn", "-p tcp ! --syn", tcp("1.1.1.1", "2.2.2.2", 1, 2, flagACK), true},
		{"tcp-flags", "-p tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE", tcp("1.1.1.1", "2.2.2.2", 1, 2, 0), true},
		{"tcp-flags xmas", "-p tcp --tcp-flags ALL FIN,PSH,URG", tcp("1.1.1.1", "2.2.2.2", 1, 2, flagFIN|flagPSH|flagURG), true},
		{"multiport dports", "-p tcp -m multiport --dports 22,80,443", tcp("1.1.1.1", "2.2.2.2", 1, 443, 0), true},
		{"multiport miss", "-p tcp -m multiport --dports 22,80,443", tcp("1.1.1.1", "2.2.2.2", 1, 444, 0), false},
		{"multiport range", "-p tcp -m multiport --sports 1000:2000,5", tcp("1.1.1.1", "2.2.2.2", 1999, 1, 0), true},
		{"multiport ports either", "-p udp -m multiport --ports 53", udp("1.1.1.1", "2.2.2.2", 1, 53), true},
		{"! multiport", "-p udp -m multiport ! --ports 53", udp("1.1.1.1", "2.2.2.2", 1, 53), false},
		{"icmp type", "-p icmp --icmp-type echo-request", echo, true},
		{"icmp type other", "-p icmp --icmp-type echo-reply", echo, false},
		{"icmpv6 type", "-p ipv6-icmp -m icmp6 --icmpv6-type 128", echo6, true},
		{"ctstate new", "-m conntrack --ctstate NEW", tcp("1.1.1.1", "2.2.2.2", 1, 2, flagSYN), true},
		{"ctstate established", "-m conntrack --ctstate ESTABLISHED", tcp("1.1.1.1", "2.2.2.2", 1, 2, flagSYN), false},
		{"ctstate invalid", "-m state --state INVALID", tcp("1.1.1.1", "2.2.2.2", 1, 2, flagRST), true},
		{"! ctstate", "-m conntrack ! --ctstate INVALID", tcp("1.1.1.1", "2.2.2.2", 1, 2, flagSYN), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.Reset()
			if got := matchOne(t, tt.rule, tt.p); got != tt.want {
				t.Errorf("%q matched %v, want %v", tt.rule, got, tt.want)
			}
		})
	}
}

func TestTruncatedTransportMatchesNoPorts(t *testing.T) {
	p := mk(seg{src: "1.1.1.1", dst: "2.2.2.2", proto: 6, sport: 1, dport: 80, flags: flagSYN}, "", "")
	p.IP.Payload = p.IP.Payload[:10]
	p.IP.Datagram = p.IP.Datagram[:30]
	if matchOne(t, "-p tcp --dport 80", p) {
		t.Error("a truncated TCP header matched --dport")
	}
	p.Reset()
	if !matchOne(t, "-m conntrack --ctstate INVALID", p) {
		t.Error("a truncated TCP header is not INVALID")
	}
}

func TestTargets(t *testing.T) {
	f := New(Config{})
	mustExec(t, f,
		"-A INPUT -p tcp --dport 1 -j ACCEPT",
		"-A INPUT -p tcp --dport 2 -j DROP",
		"-A INPUT -p tcp --dport 3 -j REJECT --reject-with tcp-reset",
		"-A INPUT -p udp --dport 4 -j REJECT",
		"-A INPUT -p udp --dport 5 -j REJECT --reject-with icmp-admin-prohibited",
		"-A INPUT -j REJECT --reject-with icmp-host-prohibited",
	)
	tests := []struct {
		p    seg
		want Verdict
	}{
		{seg{proto: 6, dport: 1, flags: flagSYN}, Verdict{Action: Accept}},
		{seg{proto: 6, dport: 2, flags: flagSYN}, Verdict{Action: Drop}},
		{seg{proto: 6, dport: 3, flags: flagSYN}, Verdict{Action: Reject, RejectWith: RejectTCPReset}},
		{seg{proto: 17, dport: 4}, Verdict{Action: Reject, RejectWith: RejectPortUnreachable}},
		{seg{proto: 17, dport: 5}, Verdict{Action: Reject, RejectWith: RejectAdminProhibited}},
		{seg{proto: 17, dport: 6}, Verdict{Action: Reject, RejectWith: RejectHostProhibited}},
	}
	for i, tt := range tests {
		tt.p.src, tt.p.dst, tt.p.sport = "10.0.0.1", "10.0.0.2", uint16(1000+i)
		if got := f.Hook(Input, mk(tt.p, "eth0", ""), t0); got != tt.want {
			t.Errorf("dport %d: %+v, want %+v", tt.p.dport, got, tt.want)
		}
	}
	if typ, code, ok := RejectAdminProhibited.ICMP(); !ok || typ != 3 || code != 13 {
		t.Errorf("admin-prohibited is %d/%d", typ, code)
	}
	if _, _, ok := RejectTCPReset.ICMP(); ok {
		t.Error("tcp-reset has an ICMP type")
	}
}

func TestUserChainsAndReturn(t *testing.T) {
	f := New(Config{})
	mustExec(t, f,
		"-P INPUT DROP",
		"-N WEB", "-N ADMIN",
		"-A INPUT -p tcp -j WEB",
		"-A INPUT -p udp --dport 53 -j ACCEPT",
		"-A WEB -p tcp --dport 80 -j ACCEPT",
		"-A WEB -s 10.9.0.0/16 -j ADMIN",
		"-A WEB -p tcp --dport 81 -j RETURN",
		"-A WEB -p tcp --dport 81:82 -j ACCEPT",
		"-A ADMIN -p tcp --dport 22 -j ACCEPT",
		"-A ADMIN -j RETURN",
		"-A ADMIN -j ACCEPT",
	)
	tests := []struct {
		src   string
		proto uint8
		dport uint16
		want  Action
	}{
		{"10.0.0.1", 6, 80, Accept},  // WEB accepts
		{"10.0.0.1", 6, 22, Drop},    // not from the admin net: falls off WEB, then the policy
		{"10.9.1.1", 6, 22, Accept},  // WEB -> ADMIN accepts
		{"10.9.1.1", 6, 23, Drop},    // ADMIN returns before its ACCEPT
		{"10.0.0.1", 6, 81, Drop},    // RETURN from WEB skips its 81:82 rule
		{"10.0.0.1", 6, 82, Accept},  // but 82 reaches it
		{"10.0.0.1", 17, 53, Accept}, // after WEB is skipped for UDP
	}
	for i, tt := range tests {
		p := mk(seg{src: tt.src, dst: "10.0.0.2", proto: tt.proto, sport: uint16(2000 + i), dport: tt.dport, flags: flagSYN}, "eth0", "")
		if got := f.Hook(Input, p, t0).Action; got != tt.want {
			t.Errorf("%s proto %d dport %d: %v, want %v", tt.src, tt.proto, tt.dport, got, tt.want)
		}
	}
	// Counters add up: every packet entered INPUT once, and the ones no
	// rule decided were counted by the policy.
	rules, _ := f.Rules(TableFilter, "INPUT")
	p0, _ := rules[0].Counters()
	p1, _ := rules[1].Counters()
	_, pol, _, _ := f.Policy(TableFilter, "INPUT")
	if p0 != 6 || p1 != 1 || pol != 3 {
		t.Errorf("INPUT counters: jump %d, udp %d, policy %d; want 6, 1, 3", p0, p1, pol)
	}
	web, _ := f.Rules(TableFilter, "WEB")
	var sum uint64
	for _, r := range web {
		n, _ := r.Counters()
		sum += n
	}
	// WEB's rules: 80 (1), ADMIN jump (2), RETURN (1), 81:82 (1).
	if sum != 5 {
		t.Errorf("WEB rule counters sum to %d, want 5", sum)
	}
	_, bytes := rules[1].Counters()
	if bytes != 28 { // a 20-byte IPv4 header and an 8-byte UDP header
		t.Errorf("byte counter %d, want 28", bytes)
	}
}

func TestPolicies(t *testing.T) {
	f := New(Config{})
	p := func() *Packet {
		return mk(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: 17, sport: 1, dport: 2}, "eth0", "eth1")
	}
	for _, h := range []Hook{Input, Forward, Output} {
		if f.Hook(h, p(), t0).Action != Accept {
			t.Errorf("%v: default policy did not accept", h)
		}
	}
	mustExec(t, f, "-P INPUT DROP", "-P FORWARD DROP", "-P OUTPUT DROP")
	for _, h := range []Hook{Input, Forward, Output} {
		if f.Hook(h, p(), t0).Action != Drop {
			t.Errorf("%v: policy DROP did not drop", h)
		}
	}
	// Prerouting and postrouting have no filter chain: the nat table
	// cannot drop.
	for _, h := range []Hook{Prerouting, Postrouting} {
		if f.Hook(h, p(), t0).Action != Accept {
			t.Errorf("%v dropped", h)
		}
	}
	if err := f.SetPolicy(TableFilter, "INPUT", TargetReject); err == nil {
		t.Error("policy REJECT accepted")
	}
	if f.Hook(Input, nil, t0).Action != Drop || f.Stats().DropInvalid.Load() != 1 {
		t.Error("nil packet not a counted drop")
	}
}

func TestLimit(t *testing.T) {
	f := New(Config{})
	mustExec(t, f, "-P INPUT DROP", "-A INPUT -m limit --limit 2/sec --limit-burst 3 -j ACCEPT")
	n := 0
	for i := range 10 {
		p := mk(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: 17, sport: uint16(i + 1), dport: 2}, "", "")
		if f.Hook(Input, p, t0).Action == Accept {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d of a burst accepted, want 3", n)
	}
	p := mk(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: 17, sport: 99, dport: 2}, "", "")
	if f.Hook(Input, p, t0.Add(500*time.Millisecond)).Action != Accept {
		t.Error("no token after 500 ms at 2/sec")
	}
}

func TestLog(t *testing.T) {
	var buf bytes.Buffer
	f := New(Config{Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	mustExec(t, f, `-A INPUT -p tcp --dport 22 -j LOG --log-prefix "ssh: " --log-level info`, "-A INPUT -p tcp --dport 22 -j DROP")
	p := mk(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: 6, sport: 4000, dport: 22, flags: flagSYN}, "eth0", "")
	if f.Hook(Input, p, t0).Action != Drop {
		t.Error("LOG terminated the chain")
	}
	out := buf.String()
	for _, want := range []string{`msg="ssh: "`, "level=INFO", "IN=eth0", "SRC=10.0.0.1", "DST=10.0.0.2", "PROTO=TCP", "SPT=4000", "DPT=22"} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
}

func TestList(t *testing.T) {
	f := New(Config{})
	mustExec(t, f, "-P INPUT DROP", "-N SSH",
		"-A INPUT -p tcp -s 192.168.1.0/24 -m tcp --dport 80 -j ACCEPT",
		"-A INPUT -i eth0 -p tcp --dport 22 -j SSH",
		"-A SSH -m conntrack --ctstate NEW -m limit --limit 3/min -j ACCEPT")
	for range 2 {
		f.Hook(Input, mk(seg{src: "192.168.1.5", dst: "10.0.0.1", proto: 6, sport: 999, dport: 80, flags: flagSYN, win: 100}, "eth0", ""), t0)
	}
	f.Hook(Input, mk(seg{src: "192.168.1.5", dst: "10.0.0.1", proto: 17, sport: 999, dport: 80}, "eth0", ""), t0)
	want := `Chain INPUT (policy DROP 1 packets, 28 bytes)
 pkts bytes target     prot opt in     out    source               destination
    2    80 ACCEPT     tcp  --  *      *      192.168.1.0/24       0.0.0.0/0            tcp dpt:80
    0     0 SSH        tcp  --  eth0   *      0.0.0.0/0            0.0.0.0/0            tcp dpt:22

Chain FORWARD (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out    source               destination

Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out    source               destination

Chain SSH (1 references)
 pkts bytes target     prot opt in     out    source               destination
    0     0 ACCEPT     all  --  *      *      0.0.0.0/0            0.0.0.0/0            ctstate NEW limit: avg 3/min burst 5
`
	if got := f.List(TableFilter); got != want {
		t.Errorf("List:\n%s\nwant:\n%s", got, want)
	}
	if human(123456789) != "123M" || human(99999) != "99999" {
		t.Error("human counters")
	}
}

func TestFragmentUntracked(t *testing.T) {
	p := mk(seg{src: "10.0.0.1", dst: "10.0.0.2", proto: 17, sport: 1, dport: 53, data: 8}, "", "")
	p.IP.Datagram[6] = 0x20 // More Fragments
	if matchOne(t, "-p udp --dport 53", p) {
		t.Error("a fragment matched a port")
	}
	p.Reset()
	if !matchOne(t, "-m conntrack --ctstate UNTRACKED", p) {
		t.Errorf("a fragment is %s, not UNTRACKED", stateString(p.ctst))
	}
}
