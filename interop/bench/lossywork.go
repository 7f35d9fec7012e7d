package bench

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"
)

// Workloads of the lossy-link benchmark.
const (
	// WorkloadEcho: the client writes the bytes and reads their echo at
	// the same time; the echo is checked with SHA-256.
	WorkloadEcho = "echo"
	// WorkloadHTTP: the client downloads the bytes over HTTP/1.1 from the
	// server (net/http on both ends); length and SHA-256 are checked.
	WorkloadHTTP = "http"
	// WorkloadSend: the client sends the bytes to a Linux server, which
	// answers with their SHA-256.
	WorkloadSend = "send"
)

// AllWorkloads are the workloads measured by default, in table order.
var AllWorkloads = []string{WorkloadEcho, WorkloadHTTP, WorkloadSend}

// Ports of the workloads' servers.
const (
	portEcho = 7
	portSend = 9
	portHTTP = 80
)

// errTimeout marks a transfer that did not finish within the timeout.
var errTimeout = errors.New("timeout")

// pattern returns the size bytes every workload moves: a ChaCha8 stream.
func pattern(size int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{'u', 's', 't', 'a', 'c', 'k'}), size)
}

// patternSums caches the SHA-256 of the pattern by size.
var patternSums sync.Map

func patternSum(size int64) [32]byte {
	if s, ok := patternSums.Load(size); ok {
		return s.([32]byte)
	}
	h := sha256.New()
	io.Copy(h, pattern(size))
	var s [32]byte
	h.Sum(s[:0])
	patternSums.Store(size, s)
	return s
}

// transfer runs one workload of size bytes from client to server and
// returns the time from the established connection to the verified end.
// It gives up with errTimeout after timeout.
func transfer(workload string, client, server Peer, serverAddr netip.Addr, size int64, timeout time.Duration) (time.Duration, error) {
	want := patternSum(size)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var port uint16
	var serve func(net.Listener) func()
	switch workload {
	case WorkloadEcho:
		port, serve = portEcho, echoServe
	case WorkloadSend:
		port, serve = portSend, sumServe
	case WorkloadHTTP:
		port, serve = portHTTP, func(l net.Listener) func() { return httpServe(l, size) }
	default:
		return 0, fmt.Errorf("bench: unknown workload %q", workload)
	}
	l, err := server.Listen(port)
	if err != nil {
		return 0, fmt.Errorf("listen: %w", err)
	}
	stop := serve(l)
	defer stop()
	c, err := client.Dial(ctx, netip.AddrPortFrom(serverAddr, port))
	if err != nil {
		return 0, timeoutOr(ctx, fmt.Errorf("dial: %w", err))
	}
	defer c.Close()
	if err := checkCC(c); err != nil {
		return 0, err
	}
	start := time.Now()
	c.SetDeadline(start.Add(timeout))
	switch workload {
	case WorkloadEcho:
		err = echoClient(c, size, want)
	case WorkloadSend:
		err = sendClient(c, size, want)
	case WorkloadHTTP:
		err = httpClient(ctx, c, serverAddr, size, want)
	}
	return time.Since(start), timeoutOr(ctx, err)
}

// timeoutOr reports err as errTimeout if it is a deadline's doing.
func timeoutOr(ctx context.Context, err error) error {
	if err != nil && (errors.Is(err, os.ErrDeadlineExceeded) || ctx.Err() != nil) {
		return errTimeout
	}
	return err
}

// serveConns accepts connections on l and runs handle on each; the
// returned function closes l and every connection and waits.
func serveConns(l net.Listener, handle func(net.Conn)) func() {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if checkCC(c) != nil {
					c.Close() // the client's transfer fails
					return
				}
				handle(c)
				c.Close()
			}()
		}
	}()
	return func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}

func echoServe(l net.Listener) func() {
	return serveConns(l, func(c net.Conn) {
		io.Copy(c, c)
		closeWrite(c)
	})
}

// sumServe answers each connection, once the client has closed its
// sending side, with the SHA-256 of what it received.
func sumServe(l net.Listener) func() {
	return serveConns(l, func(c net.Conn) {
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			return
		}
		c.Write(h.Sum(nil))
		closeWrite(c)
	})
}

func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// echoClient writes the pattern on c while reading its echo, and checks it.
func echoClient(c net.Conn, size int64, want [32]byte) error {
	errc := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, pattern(size))
		if err == nil {
			err = closeWrite(c)
		}
		errc <- err
	}()
	h := sha256.New()
	n, rerr := io.Copy(h, c)
	if rerr != nil {
		c.Close() // unblocks the writer
		<-errc
		return fmt.Errorf("reading the echo after %d bytes: %w", n, rerr)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	return checkSum("echo", n, size, h.Sum(nil), want)
}

// sendClient writes the pattern, closes its side and reads the server's
// SHA-256 of what it received.
func sendClient(c net.Conn, size int64, want [32]byte) error {
	if _, err := io.Copy(c, pattern(size)); err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	if err := closeWrite(c); err != nil {
		return err
	}
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("reading the server's checksum: %w", err)
	}
	return checkSum("send", size, size, got, want)
}

func checkSum(what string, n, size int64, got []byte, want [32]byte) error {
	if n != size {
		return fmt.Errorf("%s: %d bytes, want %d", what, n, size)
	}
	if string(got) != string(want[:]) {
		return fmt.Errorf("%s: the bytes differ from those sent (SHA-256)", what)
	}
	return nil
}

// httpServe serves the pattern of size bytes at every path.
func httpServe(l net.Listener, size int64) func() {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		io.Copy(w, pattern(size))
	})}
	done := make(chan struct{})
	go func() {
		srv.Serve(l)
		close(done)
	}()
	return func() {
		srv.Close()
		<-done
	}
}

// httpClient downloads the pattern over the connection c with net/http.
func httpClient(ctx context.Context, c net.Conn, serverAddr netip.Addr, size int64, want [32]byte) error {
	var used sync.Once
	tr := &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			var conn net.Conn
			used.Do(func() { conn = c })
			if conn == nil {
				return nil, errors.New("bench: the HTTP client asked for a second connection")
			}
			return conn, nil
		},
		DisableCompression: true,
		DisableKeepAlives:  true,
		ReadBufferSize:     64 << 10,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+serverAddr.String()+"/pattern", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("GET: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET: %s", resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(h, bufio.NewReaderSize(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("reading the body after %d bytes: %w", n, err)
	}
	return checkSum("http", n, size, h.Sum(nil), want)
}

// checkCC checks that a kernel connection runs kernelCC; other stacks'
// connections pass.
func checkCC(c net.Conn) error {
	if _, ok := c.(*net.TCPConn); !ok {
		return nil
	}
	cc, err := congestionControl(c)
	if err != nil || cc != kernelCC {
		return fmt.Errorf("bench: the kernel's connection runs congestion control %q (%v), want %q", cc, err, kernelCC)
	}
	return nil
}
