package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/interop/bench"
)

// argsEnv makes the test binary run ustackbench with these arguments
// instead of the tests (see TestMain), so that a test can signal it.
const argsEnv = "USTACKBENCH_TEST_ARGS"

func TestMain(m *testing.M) {
	bench.RunChildIfAsked() // the server child of -flood and -churn
	if args, ok := os.LookupEnv(argsEnv); ok {
		if err := run(strings.Fields(args), os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "ustackbench:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// benchNamespaces lists the namespaces that process pid's TAP pairs
// created and have not deleted.
func benchNamespaces(t *testing.T, pid int) []string {
	t.Helper()
	entries, err := os.ReadDir("/var/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	prefix := fmt.Sprintf("ustack-bench-%d-", pid)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names
}

// TestTAPQuick runs the benchmark against the kernel with tiny sizes, so
// that it cannot rot, and checks that it leaves no namespace behind.
func TestTAPQuick(t *testing.T) {
	netns.Require(t)
	var out, errOut bytes.Buffer
	err := run([]string{"-tap", "-quick"}, &out, &errOut)
	t.Logf("\n%s%s", out.String(), errOut.String())
	if err != nil {
		t.Fatalf("ustackbench -tap -quick: %v", err)
	}
	for _, want := range []string{"kernel→ustack", "ustack→kernel", "kernel→gVisor", "gVisor→kernel", "kernel↔kernel (veth)",
		"bulk throughput", "RR median", "RR p99", "connections/s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "FAILED") {
		t.Errorf("a pair failed")
	}
	if left := benchNamespaces(t, os.Getpid()); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
}

// TestTAPInterrupted interrupts a full run while it measures and checks
// that the namespaces it had created are deleted.
func TestTAPInterrupted(t *testing.T) {
	stderr := interruptRun(t, "-tap -pairs k2u,veth -bytes 100000 -count 100", 1, nil)
	if !strings.Contains(stderr, "namespaces deleted") {
		t.Errorf("stderr lacks the cleanup message:\n%s", stderr)
	}
}

// interruptRun starts the benchmark with args in a child process, waits
// for its header line, for at least want of its namespaces to exist and,
// if ready is not nil, for ready to report true, sends SIGINT and checks
// that it exits with status 130 and leaves no namespace behind. It returns the child's standard error.
func interruptRun(t *testing.T, args string, want int, ready func() bool) string {
	t.Helper()
	netns.Require(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), argsEnv+"="+args)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatalf("no output: %v\n%s", err, stderr.String())
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(benchNamespaces(t, cmd.Process.Pid)) < want || ready != nil && !ready() {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("%d namespaces did not appear\n%s", want, stderr.String())
		}
		time.Sleep(10 * time.Millisecond) // polling another process
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Errorf("exit: %v, want status 130\n%s", err, stderr.String())
	}
	if left := benchNamespaces(t, cmd.Process.Pid); len(left) > 0 {
		for _, n := range left {
			exec.Command("ip", "netns", "delete", n).Run()
		}
		t.Errorf("namespaces left behind after SIGINT: %v", left)
	}
	return stderr.String()
}

func TestTAPBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-tap", "-metrics", "idle"}, {"-tap", "-pairs", "ustack"}, {"-pairs", "k2u"}} {
		var out, errOut bytes.Buffer
		if err := run(args, &out, &errOut); err == nil {
			t.Errorf("run(%q) succeeded, want an error", args)
		}
	}
}

// TestTAPQueuesQuick runs the multi-queue comparison with tiny sizes: both
// totals and the ratio are printed, and no namespace is left behind.
func TestTAPQueuesQuick(t *testing.T) {
	netns.Require(t)
	var out, errOut bytes.Buffer
	err := run([]string{"-tap", "-queues", "2", "-conns", "4", "-quick"}, &out, &errOut)
	t.Logf("\n%s%s", out.String(), errOut.String())
	if err != nil {
		t.Fatalf("ustackbench -tap -queues 2 -quick: %v", err)
	}
	for _, want := range []string{"1 queue(s):", "2 queue(s):", "ratio"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if left := benchNamespaces(t, os.Getpid()); len(left) != 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
}
