// Package netns creates throw-away Linux network namespaces for tests.
//
// Every TAP device, veth pair and address a ustack test creates must live in
// a network namespace that the test created itself and deletes when it ends,
// even when it fails (see DESIGN.md, "Network tests: the rules"). A typical
// test:
//
//	func TestSomething(t *testing.T) {
//		ns := netns.NewT(t) // skips without root, deleted at Cleanup
//		var tap *link.TAP
//		err := ns.Do(func() (err error) {
//			tap, err = link.OpenTAP("ustap0", link.TAPOptions{})
//			return err
//		})
//		...
//		out, err := ns.Run("ip", "link", "set", "ustap0", "up")
//	}
//
// Namespaces are named ustack-<prefix>-<pid>-<random> and created and
// deleted with the ip(8) command (iproute2), so that `ip netns list` shows
// them and `ip netns exec` can run commands inside.
package netns

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireEnv is the environment variable that turns a missing capability
// from a skip into a failure; CI sets it to 1.
const RequireEnv = "USTACK_REQUIRE_NETNS"

// runDir is where ip(8) keeps the bind mounts of named namespaces.
const runDir = "/var/run/netns"

// NS is a named network namespace created by New.
type NS struct {
	name string
}

// Require skips the test, with a message saying what is missing, unless the
// process runs as root with /dev/net/tun and the ip command available. When
// the environment variable USTACK_REQUIRE_NETNS is 1 it fails the test
// instead of skipping.
func Require(tb testing.TB) {
	tb.Helper()
	if err := available(); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			tb.Fatalf("netns: %v (and %s=1)", err, RequireEnv)
		}
		tb.Skipf("netns: %v; skipping (set %s=1 to fail instead)", err, RequireEnv)
	}
}

func available() error {
	if os.Geteuid() != 0 {
		return errors.New("creating network namespaces and TAP devices needs root")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("/dev/net/tun is missing: %w", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("the ip command (iproute2) is not installed")
	}
	return nil
}

// New creates a network namespace with a unique name built from prefix, the
// process id and random bytes. The caller must Close it.
//
// The first call in a process also deletes the namespaces of this naming
// (ustack-<prefix>-<pid>-<hex>) whose process is gone (orphans): a test
// binary killed by its timeout cannot run its cleanups, and its
// namespaces would otherwise stay. A namespace whose process still runs,
// or whose pid a later process took, is left alone.
func New(prefix string) (*NS, error) {
	sweepOnce.Do(sweepOrphans)
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("ustack-%s-%d-%s", prefix, os.Getpid(), hex.EncodeToString(r[:]))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("netns: ip netns add %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	ns := &NS{name: name}
	// Bring up loopback so that tests can use 127.0.0.1 inside.
	if _, err := ns.Run("ip", "link", "set", "lo", "up"); err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

// NewT calls Require, creates a namespace named after "test" and registers
// its deletion with tb.Cleanup, so it is deleted even when the test fails.
// Errors are fatal.
func NewT(tb testing.TB) *NS {
	tb.Helper()
	Require(tb)
	ns, err := New("test")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := ns.Close(); err != nil {
			tb.Error(err)
		}
	})
	return ns
}

// Name returns the namespace's name, as `ip netns` knows it.
func (ns *NS) Name() string { return ns.name }

// Do runs f on a goroutine locked to an OS thread that has joined the
// namespace, and returns f's error. Sockets and devices that f opens belong
// to the namespace and stay there after Do returns; goroutines that f starts
// do not run in the namespace.
func (ns *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread stays locked, and so is destroyed when this goroutine
		// exits, unless it is known to be back in its original namespace.
		runtime.LockOSThread()
		orig, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netns: open current namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(filepath.Join(runDir, ns.name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netns: open %s: %w", ns.name, err)
			return
		}
		err = unix.Setns(target, unix.CLONE_NEWNET)
		unix.Close(target)
		if err != nil {
			errc <- fmt.Errorf("netns: setns %s: %w", ns.name, err)
			return
		}
		ferr := f()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("netns: setns back: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Run runs a command inside the namespace with `ip netns exec` and returns
// its combined output. A non-zero exit status is returned as an error that
// includes the output.
func (ns *NS) Run(cmd ...string) ([]byte, error) {
	if len(cmd) == 0 {
		return nil, errors.New("netns: Run without a command")
	}
	args := append([]string{"netns", "exec", ns.name}, cmd...)
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("netns %s: %s: %v: %s", ns.name, strings.Join(cmd, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// Close deletes the namespace. Devices in it that no process holds open
// are destroyed with it.
func (ns *NS) Close() error {
	out, err := exec.Command("ip", "netns", "delete", ns.name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns: ip netns delete %s: %v: %s", ns.name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

var sweepOnce sync.Once

// sweepOrphans deletes the namespaces New made in processes that no longer
// exist (see New).
func sweepOrphans() {
	entries, err := os.ReadDir(runDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if pid, ok := orphanPID(e.Name()); ok && unix.Kill(pid, 0) == unix.ESRCH {
			exec.Command("ip", "netns", "delete", e.Name()).Run()
		}
	}
}

// orphanPID returns the process id in a name New made,
// ustack-<prefix>-<pid>-<8 hex digits>, and false for any other name.
func orphanPID(name string) (int, bool) {
	parts := strings.Split(name, "-")
	if len(parts) < 4 || parts[0] != "ustack" {
		return 0, false
	}
	hexPart, pidPart := parts[len(parts)-1], parts[len(parts)-2]
	if len(hexPart) != 8 {
		return 0, false
	}
	if _, err := hex.DecodeString(hexPart); err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(pidPart)
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return 0, false
	}
	return pid, true
}
