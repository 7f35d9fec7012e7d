package main

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/netns"
)

// childServe runs `ustack` with the arguments in the environment variable
// env and exits, when the test binary was started as a serve child
// (startServe); otherwise it returns. A test that starts one calls it
// first.
func childServe(env string) {
	if args := os.Getenv(env); args != "" {
		os.Args = append([]string{"ustack"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
}

// serveChild is `ustack serve` running as a child process of the test
// binary inside a test namespace, its output read line by line.
type serveChild struct {
	cmd   *exec.Cmd
	lines chan string
}

// startServe starts the test binary again inside ns, running only test
// (which calls childServe(env) first), with env set to args: `ustack
// serve ...` as a process of the namespace. It is killed at the end of
// the test if it is still running.
func startServe(t *testing.T, ns *netns.NS, test, env, args string) *serveChild {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns.Name(), os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env+"="+args)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) // only if the test failed before the orderly stop
	lines := make(chan string, 100000)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return &serveChild{cmd: cmd, lines: lines}
}

// waitLine returns the next line of the child's output that contains
// substr, failing the test if the child exits or 20 s pass first.
func (c *serveChild) waitLine(t *testing.T, substr string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("serve exited before printing %q", substr)
			}
			if strings.Contains(l, substr) {
				return l
			}
		case <-timeout:
			t.Fatalf("serve did not print %q", substr)
		}
	}
}
