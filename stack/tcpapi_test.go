package stack

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
)

// selfSigned returns a certificate for "ustack.test".
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "ustack.test"},
		DNSNames:     []string{"ustack.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestHTTPSOverUstack runs net/http with crypto/tls, unchanged, on both
// ends of a ustack connection.
func TestHTTPSOverUstack(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	cert := selfSigned(t)
	l, err := b.ListenTCP(netip.AddrPortFrom(addrB.Addr(), 443))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello over TLS from "+r.RemoteAddr)
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}}))
	}()
	defer func() { srv.Close(); <-done }()

	pool := x509.NewCertPool()
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	pool.AddCert(leaf)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return a.DialTCP(ctx, netip.AddrPortFrom(addrB.Addr(), 443))
		},
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "ustack.test"},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for i := 0; i < 3; i++ {
		resp, err := client.Get("https://ustack.test/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "hello over TLS from " + addrA.Addr().String(); string(body[:len(want)]) != want {
			t.Fatalf("body %q", body)
		}
	}
}

// TestLingerZeroResets checks that SetLinger(0) then Close aborts with a
// RST, which the peer sees as ECONNRESET.
func TestLingerZeroResets(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	c, sc := connectedPair(t, a, b)
	c.SetLinger(0)
	c.Close()
	sc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := sc.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("peer read after linger-0 close: %v, want ECONNRESET", err)
	}
}

// TestSetReadBuffer: an explicit receive buffer turns auto-tuning off and
// is what Info reports; a size that is not positive is an error naming
// it.
func TestSetReadBuffer(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	c, sc := connectedPair(t, a, b)
	if err := sc.SetReadBuffer(0); err == nil || !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "SetReadBuffer: bytes 0") {
		t.Fatalf("SetReadBuffer(0): %v", err)
	}
	if err := sc.SetReadBuffer(100 << 10); err != nil {
		t.Fatal(err)
	}
	if got := sc.Info().ReceiveBufferSize; got != 100<<10 {
		t.Fatalf("ReceiveBufferSize %d", got)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, 1<<20))
		werr <- err
	}()
	sc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(sc, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if got := sc.Info().ReceiveBufferSize; got != 100<<10 {
		t.Fatalf("ReceiveBufferSize %d after a transfer: auto-tuning still on", got)
	}
}

// TestCloseWithUnreadDataResets: closing with received data unread sends
// a RST (RFC 9293 §3.6, RFC 1122 §4.2.2.13), not a FIN.
func TestCloseWithUnreadDataResets(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	c, sc := connectedPair(t, a, b)
	c.Write([]byte("unread"))
	waitFor(t, "the server to receive the data", func() bool { return sc.Info().BytesIn == 6 })
	sc.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read: %v, want ECONNRESET", err)
	}
}

// TestDialTimesOut: SYNs to an address that never answers give up with
// ETIMEDOUT after the configured retries, a timeout error.
func TestDialTimesOut(t *testing.T) {
	leakcheck.Check(t)
	cfg := tcp.DefaultConfig()
	cfg.InitialRTO = 10 * time.Millisecond
	cfg.SynRetries = 2
	a, b := pair(t, Options{TCP: &cfg}, nil)
	_ = b
	// A route through a gateway nobody owns: ARP never resolves, every SYN
	// is lost.
	silent := netip.MustParseAddr("10.1.0.77")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := a.DialTCP(ctx, netip.AddrPortFrom(silent, 80))
	var ne net.Error
	if !errors.Is(err, syscall.ETIMEDOUT) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial: %v, want ETIMEDOUT", err)
	}
}

// TestDialContextCancel: a cancelled context ends a dial at once.
func TestDialContextCancel(t *testing.T) {
	leakcheck.Check(t)
	a, _ := pair(t, Options{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := a.DialTCP(ctx, netip.AddrPortFrom(netip.MustParseAddr("10.1.0.77"), 80))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("dial: %v, want context.Canceled", err)
	}
}

// TestListenErrors covers the listener's argument checks.
func TestListenErrors(t *testing.T) {
	leakcheck.Check(t)
	a, _ := pair(t, Options{}, nil)
	l, err := a.ListenTCP(netip.AddrPortFrom(addrA.Addr(), 8080))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := a.ListenTCP(netip.AddrPortFrom(netip.IPv4Unspecified(), 8080)); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second listen on 8080: %v, want EADDRINUSE", err)
	}
	if _, err := a.ListenTCP(netip.MustParseAddrPort("10.9.9.9:80")); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Errorf("listen on a foreign address: %v, want EADDRNOTAVAIL", err)
	}
	l2, err := a.ListenTCP(netip.AddrPortFrom(addrA.Addr(), 0))
	if err != nil || l2.Addr().(*net.TCPAddr).Port == 0 {
		t.Fatalf("listen on port 0: %v %v", l2, err)
	}
	l2.Close()
	l.SetDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := l.Accept(); !errors.Is(err, os.ErrDeadlineExceeded) || !isTimeout(err) {
		t.Errorf("accept past deadline: %v", err)
	}
	l.SetDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() { _, err := l.Accept(); errc <- err }()
	l.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("accept after Close: %v, want net.ErrClosed", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestStackCloseUnblocksEverything: closing the stack ends blocked Reads,
// Accepts and Dials on it, and every goroutine it started.
func TestStackCloseUnblocksEverything(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	c, _ := connectedPair(t, a, b)
	l, err := a.ListenTCP(netip.AddrPortFrom(addrA.Addr(), 99))
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 3)
	go func() { _, err := c.Read(make([]byte, 1)); errs <- err }()
	go func() { _, err := l.Accept(); errs <- err }()
	go func() {
		// A dial that cannot complete: nobody owns 10.1.0.77.
		_, err := a.DialTCP(context.Background(), netip.MustParseAddrPort("10.1.0.77:80"))
		errs <- err
	}()
	a.Close()
	for i := 0; i < 3; i++ {
		select {
		case err := <-errs:
			if err == nil {
				t.Error("a blocked call returned no error after Stack.Close")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Stack.Close left a call blocked")
		}
	}
}

// TestKeepAliveDetectsDeadPeer: with keepalive on, a connection whose peer
// vanished (its link is cut, so no RST can come) fails with ETIMEDOUT once
// the probes go unanswered (RFC 1122 §4.2.3.6).
func TestKeepAliveDetectsDeadPeer(t *testing.T) {
	leakcheck.Check(t)
	ea, eb := link.NewPipe(link.PipeOptions{})
	a, b := New(Options{}), New(Options{})
	defer a.Close()
	defer b.Close()
	if _, err := a.AddNIC(ea, addrA); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddNIC(eb, addrB); err != nil {
		t.Fatal(err)
	}
	c, _ := connectedPair(t, a, b)
	if err := c.SetKeepAlive(true); err != nil {
		t.Fatal(err)
	}
	c.SetKeepAlivePeriod(20 * time.Millisecond)
	eb.Close() // the peer vanishes without a word
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ETIMEDOUT) || !isTimeout(err) {
		t.Fatalf("read: %v, want ETIMEDOUT", err)
	}
	if n := a.Stats().TCP.KeepAliveProbes; n == 0 {
		t.Error("no keepalive probe counted")
	}
}

// TestCloseReadAndCloseWrite: CloseRead ends reading with EOF at once;
// CloseWrite sends a FIN the peer reads as EOF while the other direction
// keeps working (a half-close).
func TestCloseReadAndCloseWrite(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	c, sc := connectedPair(t, a, b)
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	sc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := sc.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("peer read after CloseWrite: %d %v, want EOF", n, err)
	}
	if _, err := sc.Write([]byte("still open")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "still open" {
		t.Fatalf("read after half-close: %q %v", buf, err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("write after CloseWrite: %v, want EPIPE", err)
	}
	if err := sc.CloseRead(); err != nil {
		t.Fatal(err)
	}
	if n, err := sc.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("read after CloseRead: %d %v", n, err)
	}
}

// TestSetCongestionControl: the default is CUBIC, a connection switches
// to NewReno and back, and an unknown name is an error naming it.
func TestSetCongestionControl(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	c, sc := connectedPair(t, a, b)
	if got := c.Info().CongestionControl; got != tcp.CongestionCubic {
		t.Fatalf("default congestion control %q", got)
	}
	if err := c.SetCongestionControl("vegas"); err == nil || !errors.Is(err, syscall.ENOENT) || !strings.Contains(err.Error(), `"vegas"`) {
		t.Fatalf("SetCongestionControl(vegas): %v", err)
	}
	if err := c.SetCongestionControl(tcp.CongestionReno); err != nil {
		t.Fatal(err)
	}
	if got := c.Info().CongestionControl; got != tcp.CongestionReno {
		t.Fatalf("after the switch: %q", got)
	}
	// Data still flows with the new controller.
	go c.Write(make([]byte, 256<<10))
	sc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(sc, make([]byte, 256<<10)); err != nil {
		t.Fatal(err)
	}
}

// TestSetWriteBuffer: a size that is not positive is an error naming the
// call; a valid one fixes the send buffer.
func TestSetWriteBuffer(t *testing.T) {
	leakcheck.Check(t)
	a, b := pair(t, Options{}, nil)
	c, sc := connectedPair(t, a, b)
	if err := c.SetWriteBuffer(-1); err == nil || !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "SetWriteBuffer: bytes -1") {
		t.Fatalf("SetWriteBuffer(-1): %v", err)
	}
	if err := c.SetWriteBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	go c.Write(make([]byte, 512<<10))
	sc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(sc, make([]byte, 512<<10)); err != nil {
		t.Fatal(err)
	}
}
