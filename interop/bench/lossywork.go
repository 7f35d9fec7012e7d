package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
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
	// the same time; the echo is checked with CRC-32C (see newCheck).
	WorkloadEcho = "echo"
	// WorkloadHTTP: the client downloads the bytes over HTTP/1.1 from the
	// server (net/http on both ends); length and CRC-32C are checked.
	WorkloadHTTP = "http"
	// WorkloadSend: the client sends the bytes to the server, which
	// answers with their CRC-32C.
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

// The bytes the workloads move and their check cost the benchmark's own
// process CPU on a 2-core machine that the userspace stacks (and the
// bridge) share with it, while a kernel server pays none of it: with a
// ChaCha8 stream and SHA-256 they took 38% of the process in a profile of
// the echo. So the pattern repeats one block of random bytes, written
// straight from it (io.WriterTo: no generation, no copy), each repetition
// after its 8-byte number, and the check is CRC-32C (hardware-assisted,
// many GB/s). A lost, duplicated, reordered or corrupted piece changes
// the check, a piece moved by whole repetitions too (their numbers
// differ).

// patternBlockLen is the length of the pattern's block: 1 MiB and an odd
// tail, so that the block never lines up with a power-of-two segment,
// buffer or window size.
const patternBlockLen = 1<<20 + 7

// patternUnitLen is the length of one repetition: its number and the
// block.
const patternUnitLen = 8 + patternBlockLen

// patternBlock is the block the pattern repeats: a ChaCha8 stream.
var patternBlock = sync.OnceValue(func() []byte {
	b := make([]byte, patternBlockLen)
	rand.NewChaCha8([32]byte{'u', 's', 't', 'a', 'c', 'k'}).Read(b)
	return b
})

// patternReader reads the pattern from offset off, left bytes of it.
type patternReader struct {
	off, left int64
	num       [8]byte // the current repetition's number, big-endian
}

// pattern returns the size bytes every workload moves.
func pattern(size int64) io.Reader { return &patternReader{left: size} }

// next returns the pattern's next piece, of at most max bytes, without
// copying the block; it is valid until the next call.
func (r *patternReader) next(max int) []byte {
	var b []byte
	if u := r.off % patternUnitLen; u < 8 {
		binary.BigEndian.PutUint64(r.num[:], uint64(r.off/patternUnitLen))
		b = r.num[u:]
	} else {
		b = patternBlock()[u-8:]
	}
	b = b[:min(int64(len(b)), int64(max), r.left)]
	r.off += int64(len(b))
	r.left -= int64(len(b))
	return b
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.left > 0 {
		n += copy(p[n:], r.next(len(p)-n))
	}
	return n, nil
}

// WriteTo writes the rest of the pattern to w in pieces of at most 64
// KiB, slices of the block but for the numbers.
func (r *patternReader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for r.left > 0 {
		m, err := w.Write(r.next(64 << 10))
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// castagnoli is the CRC-32C table (crc32.MakeTable uses the SSE4.2
// instruction for it on amd64).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkSize is the length of a check as sent by the send workload.
const checkSize = crc32.Size

// newCheck returns the check the workloads compute over what they read.
func newCheck() hash.Hash32 { return crc32.New(castagnoli) }

// patternSums caches the check of the pattern by size.
var patternSums sync.Map

func patternSum(size int64) [checkSize]byte {
	if s, ok := patternSums.Load(size); ok {
		return s.([checkSize]byte)
	}
	h := newCheck()
	io.Copy(h, pattern(size))
	var s [checkSize]byte
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
// sending side, with the check (newCheck) of what it received.
func sumServe(l net.Listener) func() {
	return serveConns(l, func(c net.Conn) {
		h := newCheck()
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
func echoClient(c net.Conn, size int64, want [checkSize]byte) error {
	errc := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, pattern(size))
		if err == nil {
			err = closeWrite(c)
		}
		errc <- err
	}()
	h := newCheck()
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
// check of what it received.
func sendClient(c net.Conn, size int64, want [checkSize]byte) error {
	if _, err := io.Copy(c, pattern(size)); err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	if err := closeWrite(c); err != nil {
		return err
	}
	got := make([]byte, checkSize)
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("reading the server's checksum: %w", err)
	}
	return checkSum("send", size, size, got, want)
}

func checkSum(what string, n, size int64, got []byte, want [checkSize]byte) error {
	if n != size {
		return fmt.Errorf("%s: %d bytes, want %d", what, n, size)
	}
	if string(got) != string(want[:]) {
		return fmt.Errorf("%s: the bytes differ from those sent (CRC-32C)", what)
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
func httpClient(ctx context.Context, c net.Conn, serverAddr netip.Addr, size int64, want [checkSize]byte) error {
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
	h := newCheck()
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
