package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/ustack/ustack/internal/netns"
)

// TestLossyQuick runs the lossy-link benchmark with tiny sizes on the
// cases that lose nothing, so that it cannot rot, and checks that every
// stack and workload ran and that no namespace is left behind.
func TestLossyQuick(t *testing.T) {
	netns.Require(t)
	var out, errOut bytes.Buffer
	err := run([]string{"-lossy", "-quick"}, &out, &errOut)
	t.Logf("\n%s%s", out.String(), errOut.String())
	if err != nil {
		t.Fatalf("ustackbench -lossy -quick: %v", err)
	}
	for _, want := range []string{
		"Linux→ustack", "Linux→gVisor", "Linux→Linux", "ustack→Linux", "gVisor→Linux",
		"echo (", "HTTP download (", "send (", "ustack/Linux", "ustack/gVisor",
		"clean", "5% reordered (held 3 ms)", "2% duplicated", "TLPProbes", "kernel DSACKs received",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, bad := range []string{"FAILED", ": timeout\n"} {
		if strings.Contains(out.String(), bad) {
			t.Errorf("output reports %s", bad)
		}
	}
	if left := benchNamespaces(t, os.Getpid()); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
}

// TestLossyInterrupted interrupts a lossy run in its first transfer and
// checks that its namespaces are deleted.
func TestLossyInterrupted(t *testing.T) {
	interruptRun(t, "-lossy -cases long -stacks linux -workloads echo -longsize 1GiB", 2, nil)
}

func TestLossyBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-lossy", "-cases", "nosuch"},
		{"-lossy", "-stacks", "ustack,bsd"},
		{"-lossy", "-stacks", ""},
		{"-lossy", "-workloads", "ftp"},
		{"-lossy", "-size", "0"},
		{"-lossy", "-size", "-4MiB"},
		{"-lossy", "-size", "4XB"},
		{"-lossy", "-longsize", "lots"},
		{"-lossy", "-timeout", "0s"},
		{"-lossy", "-mtu", "100"},
		{"-lossy", "-tap"},
	} {
		var out, errOut bytes.Buffer
		err := run(args, &out, &errOut)
		if err == nil {
			t.Errorf("run(%q) succeeded, want an error", args)
			continue
		}
		// The error names the flag at fault.
		if name := strings.TrimPrefix(args[1], "-"); !strings.Contains(err.Error(), name) {
			t.Errorf("run(%q) = %v: does not name -%s", args, err, name)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"4MiB": 4 << 20, "512KiB": 512 << 10, "1GiB": 1 << 30, "100000": 100000,
		"16M": 16 << 20, "2k": 2 << 10, " 3 MiB ": 3 << 20, "10B": 10,
	} {
		if got, err := parseSize("size", in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "0", "-1", "1.5MiB", "4 TiB", "99999999999GiB"} {
		if _, err := parseSize("size", in); err == nil {
			t.Errorf("parseSize(%q) succeeded", in)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4MiB", "512KiB", "1GiB", "100000", "16M", "0", "-1", "MiB", "1.5MiB", "99999999999GiB", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize("size", s)
		if err != nil {
			if !strings.Contains(err.Error(), "-size") {
				t.Errorf("error %q does not name the flag", err)
			}
			return
		}
		if n <= 0 || n > 1<<40 {
			t.Errorf("parseSize(%q) = %d, outside (0, 1 TiB]", s, n)
		}
	})
}
