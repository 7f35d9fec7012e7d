package main

import (
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/netns"
)

// serveRules is the rule file of TestServeRules: default deny with
// ESTABLISHED,RELATED, the notes' /24 rule on port 80, and port 7 refused
// with a reset.
const serveRules = `# the notes' stateful firewall
*filter
:INPUT DROP [0:0]
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p tcp -s 10.6.0.0/24 -m tcp --dport 80 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 7 -j REJECT --reject-with tcp-reset
COMMIT
`

// TestServeRules runs `ustack serve -rules` in a test namespace against
// the kernel: HTTP from inside the /24 is served, a connection from a
// source outside it is dropped silently (the kernel's connect times out),
// the echo port is refused with a reset, and the listing and the counters
// printed at SIGUSR1 and at exit say so.
func TestServeRules(t *testing.T) {
	childServe("USTACK_TEST_SERVE_ARGS")
	ns := netns.NewT(t)
	for _, c := range [][]string{
		{"ip", "tuntap", "add", "dev", "ustap1", "mode", "tap"},
		{"ip", "link", "set", "ustap1", "up"},
		{"ip", "addr", "add", "10.6.0.1/24", "dev", "ustap1"},
		// A second kernel address outside the rule's /24, whose SYNs go
		// out the same device.
		{"ip", "addr", "add", "10.6.1.1/24", "dev", "ustap1"},
	} {
		if _, err := ns.Run(c...); err != nil {
			t.Fatal(err)
		}
	}
	rules := t.TempDir() + "/rules"
	if err := os.WriteFile(rules, []byte(serveRules), 0o644); err != nil {
		t.Fatal(err)
	}
	sc := startServe(t, ns, "TestServeRules", "USTACK_TEST_SERVE_ARGS", "serve -tap ustap1 -addr 10.6.0.2/24 -echo 7 -http 80 -trace -rules "+rules)
	cmd, lines := sc.cmd, sc.lines
	waitLine := func(substr string) string {
		t.Helper()
		return sc.waitLine(t, substr)
	}
	waitLine("packet filter: " + rules)
	waitLine("ustack serving 10.6.0.2/24")

	if out, err := ns.Run("curl", "-sS", "--max-time", "10", "http://10.6.0.2/bytes/1000"); err != nil || len(out) != 1000 {
		t.Fatalf("curl from inside the /24: %v, %d bytes", err, len(out))
	}
	// -trace prints each verdict with its rule and conntrack state.
	waitLine(`filter ustap1 INPUT ACCEPT by rule 2 "-A INPUT -s 10.6.0.0/24 -p tcp -m tcp --dport 80 -j ACCEPT", ct NEW SYN_SENT: TCP 10.6.0.1:`)
	waitLine(`filter ustap1 INPUT ACCEPT by rule 1 "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT", ct ESTABLISHED ESTABLISHED`)
	// From outside the /24: dropped, so curl times out (exit status 28)
	// rather than being refused (7).
	_, err := ns.Run("curl", "-sS", "--max-time", "1", "--interface", "10.6.1.1", "http://10.6.0.2/")
	if err == nil || !strings.Contains(err.Error(), "exit status 28") {
		t.Fatalf("curl from outside the /24: %v, want a timeout (exit status 28)", err)
	}
	waitLine("filter ustap1 INPUT DROP by policy of INPUT, ct NEW SYN_SENT: TCP 10.6.1.1:")
	// Port 7: refused with a reset.
	if err := ns.Do(func() error {
		c, err := dialTCP("10.6.0.2:7")
		if err == nil {
			c.Close()
		}
		return err
	}); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("echo port behind REJECT: %v, want connection refused", err)
	}
	waitLine(`filter ustap1 INPUT REJECT --reject-with tcp-reset by rule 3 "-A INPUT -p tcp -m tcp --dport 7 -j REJECT --reject-with tcp-reset", ct NEW SYN_SENT: TCP 10.6.0.1:`)

	cmd.Process.Signal(syscall.SIGUSR1)
	waitLine("Chain INPUT (policy DROP")
	waitLine("reject-with tcp-reset")
	waitLine("connection tracking:")

	cmd.Process.Signal(syscall.SIGINT)
	waitLine("counters (non-zero):")
	waitLine("Filter.Dropped")
	waitLine("Filter.Rejected 1")
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve exited with %v", err)
	}
}

// A rule file with an unknown option is an error naming its line and
// column.
func TestServeBadRules(t *testing.T) {
	rules := t.TempDir() + "/rules"
	os.WriteFile(rules, []byte("-A INPUT -p tcp\n-A INPUT --bogus 1 -j ACCEPT\n"), 0o644)
	err := serve([]string{"-tap", "x", "-addr", "10.0.0.2/24", "-rules", rules})
	if err == nil || !strings.Contains(err.Error(), "line 2, column 10") {
		t.Fatalf("serve with a bad rule file: %v", err)
	}
}

// serveRules6 is serveRules as ip6tables takes it, with the ICMPv6 rule
// without which neighbour discovery dies at the default DROP.
const serveRules6 = `*filter
:INPUT DROP [0:0]
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p ipv6-icmp -j ACCEPT
-A INPUT -p tcp -s fd16::/64 -m tcp --dport 80 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 7 -j REJECT --reject-with tcp-reset
COMMIT
`

// TestServeRules6 is TestServeRules over IPv6 against the kernel: with
// -p ipv6-icmp accepted the kernel resolves the stack, HTTP from inside
// the /64 is served, a source outside it dropped, port 7 refused with a
// reset; with the same rules but no ICMPv6 rule, the kernel's Neighbor
// Solicitations are dropped and it never resolves the stack's address.
func TestServeRules6(t *testing.T) {
	childServe("USTACK_TEST_SERVE_RULES6_ARGS")
	for _, tc := range []struct {
		name  string
		rules string
	}{
		{"icmpv6", serveRules6},
		{"no-icmpv6", strings.Replace(serveRules6, "-A INPUT -p ipv6-icmp -j ACCEPT\n", "", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := netns.NewT(t)
			for _, c := range [][]string{
				{"ip", "tuntap", "add", "dev", "ustap6", "mode", "tap"},
				{"ip", "link", "set", "ustap6", "up"},
				{"ip", "-6", "addr", "add", "fd16::1/64", "dev", "ustap6", "nodad"},
				// A second kernel address outside the rule's /64.
				{"ip", "-6", "addr", "add", "fd17::1/64", "dev", "ustap6", "nodad"},
			} {
				if _, err := ns.Run(c...); err != nil {
					t.Fatal(err)
				}
			}
			rules := t.TempDir() + "/rules"
			if err := os.WriteFile(rules, []byte(tc.rules), 0o644); err != nil {
				t.Fatal(err)
			}
			sc := startServe(t, ns, "TestServeRules6", "USTACK_TEST_SERVE_RULES6_ARGS", "serve -tap ustap6 -addr fd16::2/64 -echo 7 -http 80 -rules "+rules)
			waitLine := func(substr string) string {
				t.Helper()
				return sc.waitLine(t, substr)
			}
			waitLine("packet filter: " + rules)
			waitLine("ustack serving fd16::2/64")
			if tc.name == "no-icmpv6" {
				// The kernel solicits (3 times, a second apart) and
				// gives up: the entry ends FAILED or is gone, never with
				// the stack's MAC.
				if out, err := ns.Run("ping", "-6", "-c", "1", "-W", "4", "fd16::2"); err == nil {
					t.Fatalf("ping through a DROP INPUT without ICMPv6 answered:\n%s", out)
				}
				out, _ := ns.Run("ip", "-6", "neigh", "show", "fd16::2", "dev", "ustap6")
				if strings.Contains(string(out), "lladdr") {
					t.Fatalf("the kernel resolved the stack through a filter that drops NDP: %s", out)
				}
				t.Logf("kernel neighbour entry: %q", strings.TrimSpace(string(out)))
				sc.cmd.Process.Signal(syscall.SIGINT)
				waitLine("Filter.Dropped")
				for range sc.lines {
				}
				sc.cmd.Wait()
				return
			}
			// DAD must pass before the address answers; curl retries the
			// connection within its time.
			if out, err := ns.Run("curl", "-g", "-6", "-sS", "--max-time", "10", "--retry", "3", "--retry-connrefused", "http://[fd16::2]/bytes/1000"); err != nil || len(out) != 1000 {
				t.Fatalf("curl -6 from inside the /64: %v, %d bytes", err, len(out))
			}
			out, _ := ns.Run("ip", "-6", "neigh", "show", "fd16::2", "dev", "ustap6")
			if !strings.Contains(string(out), "lladdr") {
				t.Errorf("the kernel has no MAC for the stack: %q", out)
			}
			_, err := ns.Run("curl", "-g", "-6", "-sS", "--max-time", "1", "--interface", "fd17::1", "http://[fd16::2]/")
			if err == nil || !strings.Contains(err.Error(), "exit status 28") {
				t.Fatalf("curl -6 from outside the /64: %v, want a timeout (exit status 28)", err)
			}
			if err := ns.Do(func() error {
				c, err := net.DialTimeout("tcp6", "[fd16::2]:7", 5*time.Second)
				if err == nil {
					c.Close()
				}
				return err
			}); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("echo port behind REJECT over IPv6: %v, want connection refused", err)
			}
			sc.cmd.Process.Signal(syscall.SIGUSR1)
			waitLine("Chain INPUT (policy DROP")
			waitLine("ipv6-icmp")
			waitLine("connection tracking:")
			waitLine("src=fd16::1 dst=fd16::2")
			sc.cmd.Process.Signal(syscall.SIGINT)
			waitLine("Filter.Dropped")
			waitLine("Filter.Rejected 1")
			for range sc.lines {
			}
			if err := sc.cmd.Wait(); err != nil {
				t.Fatalf("serve exited with %v", err)
			}
		})
	}
}
