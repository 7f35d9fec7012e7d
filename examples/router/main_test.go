package main

import (
	"io"
	"os"
	"strings"
	"testing"
)

// TestRouterExample runs the program and checks what it shows: a connection
// between the subnets keeps its source, one to the internet is
// masqueraded, and host 1's ARP cache holds the gateway only.
func TestRouterExample(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	out := make(chan string)
	go func() { b, _ := io.ReadAll(r); out <- string(b) }()
	main()
	os.Stdout = stdout
	w.Close()
	got := <-out
	for _, want := range []string{
		", from 10.2.0.20:7", "hello 10.1.0.10:",
		"hello 203.0.113.1:", "10.1.0.1 at 02:00:00:00:01:01",
		"default via 10.1.0.1", "203.0.113.0/24 dev 3 (wan)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if i := strings.Index(got, "host 2"); strings.Contains(got[:max(i, 0)], "10.2.0.20 at") {
		t.Errorf("host 1 has an ARP entry for host 2:\n%s", got)
	}
}
