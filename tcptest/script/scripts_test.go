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

// families are the runs of every script: IPv4; IPv6 with a link MTU of
// 1520, as Linux's selftests run their IPv6 pass (ksft_runner.sh), so
// that a script's MSS of 1460 holds; and ipv4-mapped-ipv6 (IPv4 on the
// wire under AF_INET6 sockets).
var families = []script.Options{
	{IPVersion: script.IPv4},
	{IPVersion: script.IPv6, MTU: 1520},
	{IPVersion: script.IPv4MappedIPv6},
}

// notInFamily lists the scripts that cannot apply to a family, and why.
// Every other script runs in every family.
var notInFamily = map[string]map[script.IPVersion]string{
	"pmtu-frag-needed": {
		script.IPv6: "IPv4's RFC 1191: its MTUs (1200, and 60 below RFC 791's 68) are below IPv6's minimum link MTU " +
			"of 1280, and RFC 8201 §4 discards such messages; pmtu-packet-too-big is its IPv6 counterpart",
	},
	"icmp-source-quench-ignored": {
		script.IPv6: "ICMPv4's Source Quench has no ICMPv6 counterpart (RFC 4443)",
	},
	"pmtu-packet-too-big": {
		script.IPv4:           "ICMPv6's Packet Too Big and RFC 8201's 1280 floor; pmtu-frag-needed is its IPv4 counterpart",
		script.IPv4MappedIPv6: "ICMPv6's Packet Too Big and RFC 8201's 1280 floor; the wire of ipv4-mapped-ipv6 is IPv4",
	},
}

// TestScripts runs every script of testdata/scripts in every family (the
// skips are notInFamily's); CI fails on any FAIL.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(scriptsDir, "*.pkt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no scripts in %s", scriptsDir)
	}
	for _, o := range families {
		t.Run(o.IPVersion.String(), func(t *testing.T) {
			for _, f := range files {
				name := strings.TrimSuffix(filepath.Base(f), ".pkt")
				t.Run(name, func(t *testing.T) {
					if why, ok := notInFamily[name][o.IPVersion]; ok {
						t.Skip(why)
					}
					res := script.RunFile(f, o)
					if !res.Passed() {
						reportFailure(t, res)
					}
				})
			}
		})
	}
	// The skip list names scripts that exist.
	for name := range notInFamily {
		if _, err := os.Stat(filepath.Join(scriptsDir, name+".pkt")); err != nil {
			t.Errorf("notInFamily names %s: %v", name, err)
		}
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
