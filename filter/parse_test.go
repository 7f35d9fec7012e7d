package filter

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRuleCanonical(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"issue example", "-p tcp -s 192.168.1.0/24 -m tcp --dport 80 -j ACCEPT", "-s 192.168.1.0/24 -p tcp -m tcp --dport 80 -j ACCEPT"},
		{"implicit tcp match", "-p tcp --dport 22 -j DROP", "-p tcp -m tcp --dport 22 -j DROP"},
		{"address masked", "-d 10.1.2.3/8 -j DROP", "-d 10.0.0.0/8 -j DROP"},
		{"host address", "-s 10.1.2.3", "-s 10.1.2.3/32"},
		{"v6", "-s 2001:db8::/32 -p ipv6-icmp -j ACCEPT", "-s 2001:db8::/32 -p ipv6-icmp -j ACCEPT"},
		{"negations", "! -s 10.0.0.0/8 ! -i eth0 -p udp ! --sport 53", "! -s 10.0.0.0/8 ! -i eth0 -p udp -m udp ! --sport 53"},
		{"interface wildcard", "-i veth+ -o eth0 -j ACCEPT", "-i veth+ -o eth0 -j ACCEPT"},
		{"port range", "-p udp --dport 1000:2000 -j ACCEPT", "-p udp -m udp --dport 1000:2000 -j ACCEPT"},
		{"open range", "-p udp --sport :1023", "-p udp -m udp --sport 0:1023"},
		{"syn", "-p tcp --syn -j DROP", "-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j DROP"},
		{"tcp flags", "-p tcp --tcp-flags ALL NONE -j DROP", "-p tcp -m tcp --tcp-flags ALL NONE -j DROP"},
		{"not syn", "-p tcp ! --syn", "-p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN"},
		{"multiport", "-p tcp -m multiport --dports 22,80,8000:8080 -j ACCEPT", "-p tcp -m multiport --dports 22,80,8000:8080 -j ACCEPT"},
		{"conntrack", "-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT", "-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"},
		{"state", "-m state --state NEW,INVALID -j DROP", "-m state --state INVALID,NEW -j DROP"},
		{"limit", "-m limit --limit 5/s --limit-burst 10 -j LOG", "-m limit --limit 5/sec --limit-burst 10 -j LOG"},
		{"limit default", "-m limit -j ACCEPT", "-m limit --limit 3/hour --limit-burst 5 -j ACCEPT"},
		{"icmp type", "-p icmp --icmp-type echo-request -j ACCEPT", "-p icmp -m icmp --icmp-type 8 -j ACCEPT"},
		{"icmp type/code", "-p icmp -m icmp --icmp-type 3/4", "-p icmp -m icmp --icmp-type 3/4"},
		{"reject default", "-p udp -j REJECT", "-p udp -j REJECT --reject-with icmp-port-unreachable"},
		{"reject reset", "-p tcp -j REJECT --reject-with tcp-reset", "-p tcp -j REJECT --reject-with tcp-reset"},
		{"reject v6", "-s ::/0 -j REJECT", "-s ::/0 -j REJECT --reject-with icmp6-port-unreachable"},
		{"log", `-j LOG --log-prefix "in: " --log-level 6`, `-j LOG --log-prefix "in: " --log-level info`},
		{"jump", "-p tcp -j SSH", "-p tcp -j SSH"},
		{"return", "-j RETURN", "-j RETURN"},
		{"dnat", "-p tcp --dport 80 -j DNAT --to-destination 10.0.0.2:8080", "-p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.2:8080"},
		{"dnat v6", "-p tcp -j DNAT --to-destination [2001:db8::2]:80-90", "-p tcp -j DNAT --to-destination [2001:db8::2]:80-90"},
		{"snat range", "-j SNAT --to-source 198.51.100.1-198.51.100.4", "-j SNAT --to-source 198.51.100.1-198.51.100.4"},
		{"masquerade", "-o eth0 -p udp -j MASQUERADE --to-ports 20000-20099", "-o eth0 -p udp -j MASQUERADE --to-ports 20000-20099"},
		{"redirect", "-p tcp --dport 80 -j REDIRECT --to-ports 3128", "-p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128"},
		{"protocol number", "-p 47 -j DROP", "-p 47 -j DROP"},
		{"all", "-p all -j ACCEPT", "-j ACCEPT"},
		{"counts only", "-s 10.0.0.1", "-s 10.0.0.1/32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRule(tt.in)
			if err != nil {
				t.Fatalf("ParseRule(%q): %v", tt.in, err)
			}
			if got := r.String(); got != tt.want {
				t.Errorf("ParseRule(%q) = %q, want %q", tt.in, got, tt.want)
			}
			r2, err := ParseRule(r.String())
			if err != nil || r2.String() != r.String() {
				t.Errorf("round trip of %q: %q, %v", r.String(), r2, err)
			}
		})
	}
}

func TestParseRuleErrors(t *testing.T) {
	tests := []struct {
		in   string
		col  int
		frag string
	}{
		{"-p tcp --bogus 1", 8, "unknown option \"--bogus\""},
		{"-s 300.0.0.1", 4, "bad address"},
		{"-s", 3, "needs a value"},
		{"--dport 80", 1, "needs -p tcp or -p udp"},
		{"-p tcp --dport 99999", 16, "bad port"},
		{"-p tcp --dport 90:80", 16, "bad port"},
		{"-p udp --syn", 8, "needs -p tcp"},
		{"-p tcp --tcp-flags SYN,BOGUS SYN", 20, "bad TCP flags"},
		{"-m bogus", 4, "unknown match"},
		{"-m tcp --dport 1", 4, "needs -p tcp"},
		{"--ctstate NEW", 1, "needs -m conntrack"},
		{"-m conntrack --ctstate NEW,OLD", 24, "unknown state"},
		{"-p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", 30, "too many ports"},
		{"-m limit --limit 0/sec", 18, "bad --limit"},
		{"-j ACCEPT -j DROP", 11, "-j given twice"},
		{"-j REJECT --reject-with icmp-bogus", 25, "unknown --reject-with"},
		{"-p udp -j REJECT --reject-with tcp-reset", 32, "tcp-reset needs -p tcp"},
		{"--reject-with tcp-reset", 1, "needs -j REJECT"},
		{"-j DNAT", 8, "needs --to-destination"},
		{"-j DNAT --to-destination 10.0.0.1:80", 37, "needs -p tcp"},
		{"-j SNAT --to-source 10.0.0.9-10.0.0.1", 21, "bad NAT address range"},
		{"-i this-name-is-far-too-long", 4, "bad interface name"},
		{"-p tcp -m tcp --dport !", 23, "put ! before"},
		{"-p bogus", 4, "unknown protocol"},
		{"! -p all", 6, "matches nothing"},
		{`-j LOG --log-prefix "unterminated`, 21, "unterminated quote"},
		{"-j -bad", 4, "bad target"},
	}
	for _, tt := range tests {
		_, err := ParseRule(tt.in)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("ParseRule(%q) = %v, want a *SyntaxError", tt.in, err)
			continue
		}
		if se.Column != tt.col || !strings.Contains(se.Msg, tt.frag) {
			t.Errorf("ParseRule(%q) = %v, want column %d and %q", tt.in, err, tt.col, tt.frag)
		}
	}
}

const ruleFile = `# A host firewall
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:SSH - [0:0]

-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j SSH
-A INPUT -p tcp -s 192.168.1.0/24 -m tcp --dport 80 -j ACCEPT
-A INPUT -p icmp --icmp-type echo-request -m limit --limit 10/sec -j ACCEPT
-A SSH -s 10.0.0.0/8 -j ACCEPT
-A SSH -j LOG --log-prefix "ssh denied: "
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i eth0 -p tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80
-A POSTROUTING -o eth0 -j MASQUERADE
COMMIT
`

func TestLoadAndSave(t *testing.T) {
	f := New(Config{})
	if err := f.Load(strings.NewReader(ruleFile)); err != nil {
		t.Fatal(err)
	}
	want := `-P INPUT DROP
-P FORWARD DROP
-P OUTPUT ACCEPT
-N SSH
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j SSH
-A INPUT -s 192.168.1.0/24 -p tcp -m tcp --dport 80 -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type 8 -m limit --limit 10/sec --limit-burst 5 -j ACCEPT
-A SSH -s 10.0.0.0/8 -j ACCEPT
-A SSH -j LOG --log-prefix "ssh denied: "
`
	if got := f.Save(TableFilter); got != want {
		t.Errorf("Save(filter):\n%s\nwant:\n%s", got, want)
	}
	wantNAT := `-P PREROUTING ACCEPT
-P OUTPUT ACCEPT
-P POSTROUTING ACCEPT
-A PREROUTING -i eth0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80
-A POSTROUTING -o eth0 -j MASQUERADE
`
	if got := f.Save(TableNAT); got != wantNAT {
		t.Errorf("Save(nat):\n%s\nwant:\n%s", got, wantNAT)
	}
	// Loading the file again replaces its tables rather than adding.
	before := f.SaveAll()
	if err := f.Load(strings.NewReader(ruleFile)); err != nil || f.SaveAll() != before {
		t.Errorf("a second Load changed the rules (%v):\n%s", err, f.SaveAll())
	}
	// The -S listing loads back into the same rules.
	g := New(Config{})
	if err := g.Load(strings.NewReader(f.Save(TableFilter) + "-t nat " + strings.ReplaceAll(strings.TrimSuffix(f.Save(TableNAT), "\n"), "\n", "\n-t nat ") + "\n")); err != nil {
		t.Fatal(err)
	}
	if g.Save(TableFilter) != f.Save(TableFilter) || g.Save(TableNAT) != f.Save(TableNAT) {
		t.Errorf("round trip differs:\n%s%s", g.Save(TableFilter), g.Save(TableNAT))
	}
	// SaveAll is the iptables-save form, which Load takes too.
	h := New(Config{})
	if err := h.Load(strings.NewReader(f.SaveAll())); err != nil {
		t.Fatalf("loading SaveAll: %v\n%s", err, f.SaveAll())
	}
	if h.SaveAll() != f.SaveAll() {
		t.Errorf("SaveAll round trip:\n%s\nwant:\n%s", h.SaveAll(), f.SaveAll())
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		in        string
		line, col int
		frag      string
	}{
		{"-A INPUT -p tcp --dprt 80 -j ACCEPT", 1, 17, `unknown option "--dprt"`},
		{"# c\n\n  -A INPUT -j ACCEPT\n-A INPUT -x", 4, 10, "unknown option"},
		{"*filter\n-A INPUT -j ACCEPT\n", 2, 1, "missing COMMIT"},
		{"*mangle\nCOMMIT", 1, 2, "unknown table"},
		{"COMMIT", 1, 1, "COMMIT outside"},
		{"-A NOPE -j ACCEPT", 1, 4, "no chain"},
		{"-A INPUT -j NOPE", 1, 4, "no such user chain"},
		{"*nat\n-A INPUT -j DNAT --to-destination 10.0.0.1", 2, 4, "no chain"},
		{"-A INPUT -j MASQUERADE", 1, 4, "only in the nat table"},
		{"-t nat -A PREROUTING -j SNAT --to-source 10.0.0.1", 1, 11, "not valid in chain PREROUTING"},
		{"-P INPUT REJECT", 1, 10, "bad policy"},
		{"-N A\n-N B\n-A A -j B\n-A B -j A", 4, 4, "loop"},
		{"-A INPUT", 0, 0, ""},
		{"INPUT -j ACCEPT", 1, 1, "no command"},
		{"*filter\n:FOO DROP [0:0]\nCOMMIT", 2, 6, "policy is -"},
	}
	for _, tt := range tests {
		f := New(Config{})
		before := f.SaveAll()
		err := f.Load(strings.NewReader(tt.in))
		if tt.line == 0 {
			if err != nil {
				t.Errorf("Load(%q): %v", tt.in, err)
			}
			continue
		}
		var se *SyntaxError
		if !errors.As(err, &se) || se.Line != tt.line || se.Column != tt.col || !strings.Contains(se.Msg, tt.frag) {
			t.Errorf("Load(%q) = %v, want line %d column %d %q", tt.in, err, tt.line, tt.col, tt.frag)
		}
		if f.SaveAll() != before {
			t.Errorf("Load(%q) failed but changed the rules", tt.in)
		}
	}
}

func TestExecCommands(t *testing.T) {
	f := New(Config{})
	mustExec(t, f,
		"iptables -A INPUT -p tcp --dport 1 -j ACCEPT",
		"-A INPUT -p tcp --dport 3 -j ACCEPT",
		"-I INPUT 2 -p tcp --dport 2 -j ACCEPT",
		"-I INPUT -p tcp --dport 0 -j ACCEPT",
		"-D INPUT -p tcp --dport 3 -j ACCEPT",
		"-D INPUT 1",
		"-P FORWARD DROP",
		"-N LOGDROP",
		"-A LOGDROP -j LOG",
		"-A LOGDROP -j DROP",
		"-A FORWARD -j LOGDROP",
		"-t nat -A POSTROUTING -o eth0 -j MASQUERADE",
	)
	want := `-P INPUT ACCEPT
-P FORWARD DROP
-P OUTPUT ACCEPT
-N LOGDROP
-A INPUT -p tcp -m tcp --dport 1 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 2 -j ACCEPT
-A FORWARD -j LOGDROP
-A LOGDROP -j LOG
-A LOGDROP -j DROP
`
	if got := f.Save(TableFilter); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if err := f.Exec("-X LOGDROP"); err == nil {
		t.Error("-X of a referenced, non-empty chain succeeded")
	}
	mustExec(t, f, "-F FORWARD", "-F LOGDROP", "-X LOGDROP", "-F")
	if got := f.Save(TableFilter); got != "-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n" {
		t.Errorf("after flush:\n%s", got)
	}
	for _, bad := range []string{"-D INPUT 5", "-I INPUT 9 -j ACCEPT", "-N INPUT", "-P NOPE DROP", "-t nat -P OUTPUT DROP", "-A INPUT -A OUTPUT", "-t raw -A INPUT", "-X INPUT", "-N -j"} {
		if err := f.Exec(bad); err == nil {
			t.Errorf("Exec(%q) succeeded", bad)
		}
	}
}
