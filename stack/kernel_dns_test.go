package stack

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/internal/netns"
)

// bigTXT is the TXT record set dnsmasq serves for big.test: 12 strings
// of 200 bytes, about 2,500 bytes of answer, more than the 1,232 bytes
// Go's resolver asks for over UDP (its EDNS0 payload size), so dnsmasq
// answers over UDP truncated (TC) and the resolver asks again over TCP.
func bigTXT() []string {
	var txt []string
	for i := range 12 {
		txt = append(txt, fmt.Sprintf("%02d", i)+strings.Repeat(string(rune('a'+i)), 198))
	}
	return txt
}

// startDNSMasq runs dnsmasq in k's namespace, bound to the kernel's TAP
// address and answering for names only from its command line (no
// /etc/hosts, no resolv.conf, no configuration file): web.test is the
// kernel's address and big.test has bigTXT. It returns once dnsmasq says
// it has started, and kills it (by its PID) when the test ends.
func startDNSMasq(t *testing.T, k *kernelNet) {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		bin, err = exec.LookPath("/usr/sbin/dnsmasq") // sbin may not be on PATH
	}
	if err != nil {
		if os.Getenv(netns.RequireEnv) == "1" {
			t.Fatal("dnsmasq not installed")
		}
		t.Skip("dnsmasq not installed")
	}
	args := []string{"netns", "exec", k.ns.Name(), bin,
		"--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--listen-address=" + kernelAddr.Addr().String(), "--port=53",
		"--host-record=web.test," + kernelAddr.Addr().String(),
		"--keep-in-foreground", "--log-facility=-", "--user=root",
		"--pid-file=" + filepath.Join(t.TempDir(), "dnsmasq.pid"),
	}
	for _, s := range bigTXT() {
		args = append(args, "--txt-record=big.test,"+s)
	}
	cmd := exec.Command("ip", args...) // ip netns exec execs dnsmasq: cmd.Process is dnsmasq
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	started := make(chan bool, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "started, version") {
				started <- true
			}
		}
		started <- false
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-copied
		cmd.Wait()
		if t.Failed() {
			t.Logf("dnsmasq's log:\n%s", log.String())
		}
	})
	select {
	case ok := <-started:
		if !ok {
			<-copied
			t.Fatalf("dnsmasq exited:\n%s", log.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dnsmasq did not start within 10 s")
	}
}

// TestKernelDNSAndHTTPByName: the stack's Resolver asks dnsmasq, a
// kernel DNS server in the test's namespace, over the TAP; net/http
// with http.Transport{DialContext: s.DialContext} fetches
// http://web.test:PORT/ from a kernel HTTP server there (its listening
// socket made in the namespace) and the body arrives whole. Then a TXT
// answer too big for UDP comes truncated and the resolver asks again
// over the stack's TCP.
func TestKernelDNSAndHTTPByName(t *testing.T) {
	leakcheck.Check(t)
	k := newKernelNetWith(t, Options{Nameservers: []netip.AddrPort{netip.AddrPortFrom(kernelAddr.Addr(), 53)}})
	startDNSMasq(t, k)

	var l net.Listener
	if err := k.ns.Do(func() (err error) {
		l, err = net.Listen("tcp4", netip.AddrPortFrom(kernelAddr.Addr(), 0).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	body := udpPattern(300_000)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/pattern" || r.Host != fmt.Sprintf("web.test:%d", l.Addr().(*net.TCPAddr).Port) {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	})}
	served := make(chan struct{})
	go func() { srv.Serve(l); close(served) }()
	defer func() { srv.Close(); <-served }()

	tr := &http.Transport{DialContext: k.s.DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://web.test:%d/pattern", l.Addr().(*net.TCPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET: %s, %d of %d bytes, equal %v, %v", resp.Status, len(got), len(body), bytes.Equal(got, body), err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := k.s.Resolver().LookupHost(ctx, "nosuch.test."); err == nil {
		t.Error("nosuch.test resolved")
	}
	opens := k.s.Stats().TCP.ActiveOpens
	txt, err := k.s.Resolver().LookupTXT(ctx, "big.test.")
	if err != nil {
		t.Fatal(err)
	}
	want := bigTXT()
	if strings.Join(slices.Sorted(slices.Values(txt)), ",") != strings.Join(want, ",") {
		t.Errorf("TXT big.test: %d strings %q, want %d", len(txt), txt, len(want))
	}
	if n := k.s.Stats().TCP.ActiveOpens - opens; n != 1 {
		t.Errorf("the TXT lookup opened %d TCP connections, want 1 (the retry after the truncated UDP answer)", n)
	}
}
