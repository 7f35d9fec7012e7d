package main

import (
	"bytes"
	"io"
	"net"
	"net/http/httptest"
	"testing"
	"time"
)

func get(t *testing.T, path string) int {
	t.Helper()
	rec := httptest.NewRecorder()
	httpHandler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code
}

func TestBytesBody(t *testing.T) {
	rec := httptest.NewRecorder()
	httpHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/bytes/70000", nil))
	b := rec.Body.Bytes()
	if len(b) != 70000 || rec.Header().Get("Content-Length") != "70000" {
		t.Fatalf("len %d, Content-Length %q", len(b), rec.Header().Get("Content-Length"))
	}
	for i, c := range b {
		if c != byte(i) {
			t.Fatalf("byte %d = %d, want %d", i, c, byte(i))
		}
	}
	if !bytes.Equal(b[:256], pattern[:256]) {
		t.Fatal("pattern")
	}
}

func dialTCP(addr string) (io.ReadWriteCloser, error) {
	return net.DialTimeout("tcp4", addr, 5*time.Second)
}
