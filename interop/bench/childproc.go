package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ustack/ustack/internal/netns"
)

// childTimeout bounds the wait for a child's answer.
const childTimeout = 30 * time.Second

// serverChild is the parent's handle on a server child (child.go).
type serverChild struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	lines  chan []byte // the child's standard output, line by line
	stderr *syncBuffer
	done   chan error // the child's exit, once
}

// syncBuffer is a bytes.Buffer safe for the child's stderr copier and a
// reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() < 64<<10 {
		s.b.Write(p)
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.TrimSpace(s.b.String())
}

// children are the server children alive, so that CloseNamespaces can end
// them when the program is interrupted.
var children struct {
	sync.Mutex
	live map[*exec.Cmd]bool
}

// killChildren ends every server child still alive, by its PID.
func killChildren() {
	children.Lock()
	defer children.Unlock()
	for c := range children.live {
		c.Process.Kill()
	}
}

// startChild starts a server child inside ns and waits until it serves.
func startChild(ns *netns.NS, cfg childConfig) (*serverChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	spec, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", "netns", "exec", ns.Name(), exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	// The child dies with the benchmark even if nothing closes its
	// input (ip(8) execs the program, so the setting carries over).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c := &serverChild{cmd: cmd, stderr: &syncBuffer{}, lines: make(chan []byte, 1), done: make(chan error, 1)}
	cmd.Stderr = c.stderr
	if c.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	children.Lock()
	if err := cmd.Start(); err != nil {
		children.Unlock()
		return nil, fmt.Errorf("bench: starting the %s server child: %w", cfg.Kind, err)
	}
	if children.live == nil {
		children.live = map[*exec.Cmd]bool{}
	}
	children.live[cmd] = true
	children.Unlock()
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			c.lines <- bytes.Clone(sc.Bytes())
		}
		close(c.lines)
		err := cmd.Wait()
		children.Lock()
		delete(children.live, cmd)
		children.Unlock()
		c.done <- err
	}()
	if _, err := c.read(); err != nil {
		c.Close()
		return nil, fmt.Errorf("bench: the %s server child did not start: %w", cfg.Kind, err)
	}
	return c, nil
}

// read returns the child's next answer.
func (c *serverChild) read() (childStats, error) {
	var st childStats
	select {
	case line, ok := <-c.lines:
		if !ok {
			return st, fmt.Errorf("%w: %s", errChildExited, c.stderr.String())
		}
		if err := json.Unmarshal(line, &st); err != nil {
			return st, fmt.Errorf("bench: server child said %q: %w", line, err)
		}
		if st.Err != "" {
			return st, fmt.Errorf("bench: server child: %s", st.Err)
		}
		return st, nil
	case <-time.After(childTimeout):
		return st, fmt.Errorf("bench: server child silent for %v: %s", childTimeout, c.stderr.String())
	}
}

// stats asks the child for its memory and counters.
func (c *serverChild) stats() (childStats, error) {
	if _, err := io.WriteString(c.in, "stats\n"); err != nil {
		return childStats{}, fmt.Errorf("%w: %s", errChildExited, c.stderr.String())
	}
	return c.read()
}

// Close ends the child: it closes its input, which stops its stack, and
// kills it if it has not exited within childTimeout.
func (c *serverChild) Close() error {
	c.in.Close()
	timeout := time.After(childTimeout)
	killed := false
	lines := c.lines
	for {
		select {
		case _, ok := <-lines: // drained, so that the reader reaches Wait
			if !ok {
				lines = nil
			}
		case err := <-c.done:
			switch {
			case killed:
				return errors.New("bench: server child did not exit; killed")
			case err != nil:
				return fmt.Errorf("bench: server child: %w: %s", err, c.stderr.String())
			}
			return nil
		case <-timeout:
			c.cmd.Process.Kill()
			killed = true
		}
	}
}
