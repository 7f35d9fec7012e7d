package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const failingScript = `0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 2 win 65535 <mss 1460>
`

func writeFailing(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fail.pkt")
	if err := os.WriteFile(path, []byte(failingScript), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestScriptOutput(t *testing.T) {
	pass := "../../testdata/scripts/handshake-passive.pkt"
	fail := writeFailing(t)
	dir := t.TempDir()
	var out bytes.Buffer
	err := runScripts([]string{"-pcap", dir, pass, fail}, &out)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 scripts failed") {
		t.Errorf("err = %v", err)
	}
	o := out.String()
	for _, want := range []string{
		"PASS " + pass,
		"FAIL " + fail,
		fail + ":5: error handling packet: ack: got 1, want 2",
		"expected: 0.000000 > S. 0:0(0) ack 2 win 65535 <mss 1460>",
		"actual:   0.000000 > S. 0:0(0) ack 1 win 65535 <mss 1460>",
		"last packets seen:",
		"capture: " + filepath.Join(dir, "fail.pcap"),
	} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "fail.pcap")); err != nil || fi.Size() < 24 {
		t.Errorf("capture: %v", err)
	}
	out.Reset()
	if err := runScripts([]string{"-v", pass}, &out); err != nil {
		t.Errorf("passing script: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "accept(3, ..., ...) = 4 (new socket)") {
		t.Errorf("-v trace lacks the accept:\n%s", out.String())
	}
	if err := runScripts(nil, &out); err == nil {
		t.Error("no script given: no error")
	}
}

// -ip-version ipv6 runs the script over IPv6, where the stack's MSS is
// 1440 (MTU 1500 less 60) unless -mtu 1520 makes it 1460; bad values are
// errors.
func TestScriptIPVersion(t *testing.T) {
	pass := "../../testdata/scripts/handshake-passive.pkt"
	var out bytes.Buffer
	if err := runScripts([]string{"-ip-version", "ipv6", "-mtu", "1520", pass}, &out); err != nil {
		t.Fatalf("ipv6 -mtu 1520: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := runScripts([]string{"-ip-version", "ipv6", pass}, &out); err == nil || !strings.Contains(out.String(), "mss 1440") {
		t.Fatalf("ipv6 at MTU 1500 should fail on the MSS: %v\n%s", err, out.String())
	}
	if err := runScripts([]string{"-ip-version", "ipv4-mapped-ipv6", pass}, &out); err != nil {
		t.Fatalf("ipv4-mapped-ipv6: %v", err)
	}
	for _, args := range [][]string{{"-ip-version", "ipv5", pass}, {"-mtu", "-1", pass}, {"-ip-version", "ipv6", "-mtu", "1000", pass}} {
		if err := runScripts(args, &out); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// TestScriptExitStatus runs "ustack script" as a process: status 0 when
// every script passes, non-zero when one fails.
func TestScriptExitStatus(t *testing.T) {
	if files := os.Getenv("USTACK_TEST_SCRIPT_ARGS"); files != "" {
		os.Args = append([]string{"ustack", "script"}, strings.Split(files, "\n")...)
		main()
		return
	}
	pass := "../../testdata/scripts/handshake-passive.pkt"
	for _, tt := range []struct {
		name  string
		files []string
		code  int
	}{
		{"pass", []string{pass}, 0},
		{"fail", []string{pass, writeFailing(t)}, 1},
		{"missing file", []string{"nonexistent.pkt"}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestScriptExitStatus$")
			cmd.Env = append(os.Environ(), "USTACK_TEST_SCRIPT_ARGS="+strings.Join(tt.files, "\n"))
			out, err := cmd.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("exit status %d, want %d\n%s", code, tt.code, out)
			}
		})
	}
}
