package script_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ustack/ustack/tcptest/script"
)

// scriptsDir holds ustack's own scripts; every one must pass.
const scriptsDir = "../../testdata/scripts"

// TestScripts runs every script of testdata/scripts; CI fails on any FAIL.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(scriptsDir, "*.pkt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no scripts in %s", scriptsDir)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".pkt"), func(t *testing.T) {
			res := script.RunFile(f, script.Options{})
			if !res.Passed() {
				reportFailure(t, res)
			}
		})
	}
}

// TestKnownFailing runs the scripts of testdata/scripts/known-failing,
// which describe behaviour the RFCs require and ustack's core does not
// have yet: each must still fail (move it up when the core is fixed).
func TestKnownFailing(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(scriptsDir, "known-failing", "*.pkt"))
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".pkt"), func(t *testing.T) {
			res := script.RunFile(f, script.Options{})
			var fail *script.Failure
			switch {
			case res.Passed():
				t.Errorf("%s passes now: move it to %s", f, scriptsDir)
			case !errors.As(res.Err, &fail):
				t.Errorf("%s does not run: %v", f, res.Err)
			default:
				t.Logf("fails as expected: %v", res.Err)
			}
		})
	}
}

func reportFailure(t *testing.T, res *script.Result) {
	t.Helper()
	var fail *script.Failure
	if errors.As(res.Err, &fail) {
		t.Error(fail.Detail())
	} else {
		t.Error(res.Err)
	}
	dir := os.Getenv("TCPTEST_PCAP_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	name := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".pcap")
	f, err := os.Create(name)
	if err != nil {
		t.Log(err)
		return
	}
	defer f.Close()
	if err := res.WritePcap(f); err == nil {
		t.Logf("capture: %s", name)
	}
}
