package tcp

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenStreamCases are seeded exchanges (with and without SACK and
// timestamps, clean and lossy) whose every segment, both ways, is hashed:
// the wire output of the core bit for bit.
var goldenStreamCases = []struct {
	name          string
	sack, ts      bool
	loss, reord   float64
	size          int
	seed          uint64
	tune          func(c *Conn) // applied to both ends after the handshake
	noDelay, reno bool
	// burst drops, toward b, every burst-th data segment and the three
	// after it: holes of four segments.
	burst int
}{
	{name: "clean", sack: true, ts: true, size: 1 << 20, seed: 1},
	{name: "lossy-sack-ts", sack: true, ts: true, loss: 0.03, reord: 0.03, size: 1 << 20, seed: 2},
	{name: "lossy-sack", sack: true, loss: 0.03, reord: 0.02, size: 1 << 20, seed: 3},
	{name: "lossy-reno", loss: 0.03, size: 512 << 10, seed: 4, reno: true},
	{name: "lossy-nodelay", sack: true, ts: true, loss: 0.02, size: 512 << 10, seed: 5, noDelay: true},
	{name: "bursts-sack-ts", sack: true, ts: true, size: 1 << 20, seed: 6, burst: 150},
	{name: "bursts-reno", size: 512 << 10, seed: 7, burst: 90, reno: true},
}

// streamHash runs case i and returns the SHA-256 of every segment sent,
// in the order sent, each prefixed with its direction. setup runs on the
// pair after the handshake.
func streamHash(t *testing.T, i int, setup func(p *pair)) string {
	tc := goldenStreamCases[i]
	cfg := DefaultConfig()
	cfg.SACKPermitted, cfg.Timestamps = tc.sack, tc.ts
	cfg.NoDelay = tc.noDelay
	if tc.reno {
		cfg.CongestionControl = CongestionReno
	}
	p := newPair(t, cfg, tc.seed)
	p.loss, p.reorder = tc.loss, tc.reord
	h := sha256.New()
	p.tap = func(toB bool, seg []byte) {
		if toB {
			h.Write([]byte{'>'})
		} else {
			h.Write([]byte{'<'})
		}
		h.Write(seg)
	}
	if tc.burst > 0 {
		n := 0
		p.drop = func(toB bool, seg []byte) bool {
			if !toB || len(seg) <= int(seg[offDataOffset]>>4)*4 {
				return false
			}
			n++
			return n%tc.burst < 4
		}
	}
	if setup != nil {
		setup(p)
	}
	transfer(t, p, tc.size)
	return hex.EncodeToString(h.Sum(nil))
}

// TestGoldenStream checks the wire output of seeded exchanges against
// testdata/golden-stream.txt (rewritten with -update): a change to what
// the core sends, segment for segment, shows here. The hashes were taken
// with the core as it was before GSO (commit 1591354): without
// SetGSOMaxSize the core sends what it sent then, bit for bit.
func TestGoldenStream(t *testing.T) {
	const file = "testdata/golden-stream.txt"
	var got []string
	for i, tc := range goldenStreamCases {
		got = append(got, tc.name+" "+streamHash(t, i, nil))
	}
	if *updateGolden {
		if err := os.WriteFile(file, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(want) != len(got) {
		t.Fatalf("%s has %d cases, want %d", file, len(want), len(got))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("stream changed: got %s, want %s", got[i], want[i])
		}
	}
}
