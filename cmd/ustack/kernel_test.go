package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/stack"
)

// TestCurlAgainstUstackHTTP runs serve's HTTP service on a stack attached
// to a TAP device in a test-created namespace and fetches from it with
// curl, run by the kernel inside the namespace.
func TestCurlAgainstUstackHTTP(t *testing.T) {
	leakcheck.Check(t)
	ns := netns.NewT(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is not installed (.ci/run installs it)")
	}
	var tap *link.TAP
	if err := ns.Do(func() (err error) { tap, err = link.OpenTAP("ustap0", link.TAPOptions{}); return err }); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{{"ip", "link", "set", "ustap0", "up"}, {"ip", "addr", "add", "10.8.0.1/24", "dev", "ustap0"}} {
		if _, err := ns.Run(c...); err != nil {
			tap.Close()
			t.Fatal(err)
		}
	}
	s := stack.New(stack.Options{})
	defer s.Close()
	if _, err := s.AddNIC(tap, netip.MustParsePrefix("10.8.0.2/24")); err != nil {
		t.Fatal(err)
	}
	var sv services
	if err := sv.startHTTP(s, 80); err != nil {
		t.Fatal(err)
	}
	defer sv.stop()

	out, err := ns.Run("curl", "-sS", "--max-time", "10", "http://10.8.0.2/")
	if err != nil || !strings.Contains(string(out), "Hello from ustack") {
		t.Fatalf("GET /: %v\n%s", err, out)
	}

	// 100 MiB: curl prints the size it received and ustack's bytes are
	// checked against the i mod 256 pattern by their SHA-256.
	const n = 100 << 20
	cmd := exec.Command("ip", "netns", "exec", ns.Name(), "curl", "-sS", "--max-time", "120",
		"-w", "%{size_download} %{http_code}", "-o", "/dev/stderr", fmt.Sprintf("http://10.8.0.2/bytes/%d", n))
	stderr, _ := cmd.StderrPipe()
	var stdout strings.Builder
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	got, _ := io.Copy(h, stderr)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("curl /bytes/%d: %v (%s)", n, err, stdout.String())
	}
	w := sha256.New()
	writePattern(w, n)
	if got != n || string(h.Sum(nil)) != string(w.Sum(nil)) || stdout.String() != fmt.Sprintf("%d 200", n) {
		t.Fatalf("curl received %d bytes (%s), pattern ok: %v", got, stdout.String(), string(h.Sum(nil)) == string(w.Sum(nil)))
	}
}

func TestHTTPHandlerRejectsBadN(t *testing.T) {
	for _, p := range []string{"/bytes/-1", "/bytes/x", "/bytes/99999999999999999999"} {
		if code := get(t, p); code != 400 {
			t.Errorf("GET %s = %d, want 400", p, code)
		}
	}
	if code := get(t, "/bytes/10"); code != 200 {
		t.Errorf("GET /bytes/10 = %d", code)
	}
}
