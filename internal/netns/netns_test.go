package netns

import (
	"net"
	"os"
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
