package netns

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestNamespaceLifecycle(t *testing.T) {
	ns := NewT(t)
	if !strings.HasPrefix(ns.Name(), "ustack-test-") {
		t.Errorf("name %q lacks the ustack-test- prefix", ns.Name())
	}
	if _, err := os.Stat(filepath.Join(runDir, ns.Name())); err != nil {
		t.Fatalf("namespace not created: %v", err)
	}

	// Inside, there is only loopback.
	var inside []net.Interface
	if err := ns.Do(func() (err error) {
		inside, err = net.Interfaces()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(inside) != 1 || inside[0].Name != "lo" || inside[0].Flags&net.FlagUp == 0 {
		t.Errorf("interfaces inside = %v, want only lo, up", inside)
	}

	out, err := ns.Run("ip", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.TrimSpace(string(out)), "\n") + 1; n != 1 {
		t.Errorf("ip link show inside lists %d links:\n%s", n, out)
	}
	if _, err := ns.Run("false"); err == nil {
		t.Errorf("Run of a failing command returned no error")
	}
}

func TestCloseDeletes(t *testing.T) {
	Require(t)
	ns, err := New("close")
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(runDir, ns.Name())); !os.IsNotExist(err) {
		t.Errorf("namespace still present after Close: %v", err)
	}
}

// TestOrphanPID: only names New makes are taken for sweeping, never
// this process's own.
func TestOrphanPID(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"ustack-test-23214-4366b30e", 23214, true},
		{"ustack-lossy-k-77-0123abcd", 77, true},
		{fmt.Sprintf("ustack-test-%d-4366b30e", os.Getpid()), 0, false},
		{"ustack-test-23214-4366b30", 0, false},
		{"ustack-test-x-4366b30e", 0, false},
		{"ustack-test-23214-4366b3zz", 0, false},
		{"other-test-23214-4366b30e", 0, false},
		{"ustack-23214", 0, false},
	} {
		pid, ok := orphanPID(tc.name)
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("orphanPID(%q) = %d, %v, want %d, %v", tc.name, pid, ok, tc.pid, tc.ok)
		}
	}
}

// TestSweepOrphans: a namespace named for a process that is gone is
// deleted by the next New; one of a live process is kept.
func TestSweepOrphans(t *testing.T) {
	Require(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	orphan := fmt.Sprintf("ustack-test-%d-0badf00d", dead.Process.Pid)
	live := fmt.Sprintf("ustack-test-%d-0badf00d", os.Getppid())
	for _, n := range []string{orphan, live} {
		if out, err := exec.Command("ip", "netns", "add", n).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", n, err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "delete", n).Run() })
	}
	sweepOrphans()
	if _, err := os.Stat(filepath.Join(runDir, orphan)); !os.IsNotExist(err) {
		t.Errorf("orphan %s not deleted: %v", orphan, err)
	}
	if _, err := os.Stat(filepath.Join(runDir, live)); err != nil {
		t.Errorf("live %s deleted: %v", live, err)
	}
}
