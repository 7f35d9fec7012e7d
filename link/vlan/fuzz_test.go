package vlan

import (
	"bytes"
	"testing"
)

// FuzzParseFrame: ParseFrame never panics; what it accepts has its tag
// where PutHeader writes it, and stripping and inserting the tag again
// gives the frame back.
func FuzzParseFrame(f *testing.F) {
	f.Add(goldenTagged)
	f.Add(goldenTagged[:HeaderLen])
	f.Add(goldenTagged[:15])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ParseFrame(b)
		if err != nil {
			return
		}
		if len(fr) < HeaderLen {
			t.Fatalf("accepted a %d-byte frame", len(fr))
		}
		h := make([]byte, HeaderLen)
		tag := fr.Tag()
		PutHeader(h, fr.Destination(), fr.Source(), tag, fr.Type())
		if !bytes.Equal(h, b[:HeaderLen]) {
			t.Fatalf("header rebuilt as % x from % x", h, b[:HeaderLen])
		}
		plain := make([]byte, len(b)-TagLen)
		if n, cut := stripTag(plain, b); cut || n != len(plain) {
			t.Fatalf("stripTag %d cut %v", n, cut)
		}
		again := make([]byte, len(b))
		if n := insertTag(again, plain, tag); n != len(b) || !bytes.Equal(again, b) {
			t.Fatalf("insertTag(stripTag(b)) = % x, want % x", again[:n], b)
		}
	})
}
