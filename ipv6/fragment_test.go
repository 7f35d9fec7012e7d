package ipv6

import (
	"bytes"
	"errors"
	"testing"
)

// fragmentAll returns copies of the fragments Fragment makes of pkt.
func fragmentAll(t testing.TB, pkt []byte, mtu int, id uint32) [][]byte {
	t.Helper()
	var out [][]byte
	if err := Fragment(pkt, mtu, id, make([]byte, mtu), func(f []byte) error {
		out = append(out, bytes.Clone(f))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// reassembleAll adds the fragments fs in order to a new Reassembler and
// returns the packet the last one completes.
func reassembleAll(t testing.TB, fs [][]byte) []byte {
	t.Helper()
	r := NewReassembler(ReassemblyConfig{})
	var out []byte
	for i, f := range fs {
		h, err := ParseHeader(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseExtensions(h)
		if err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		got, err := r.Add(h, c, t0)
		if err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		if got != nil && i != len(fs)-1 {
			t.Fatalf("fragment %d completed early", i)
		}
		out = got
	}
	return out
}

// TestFragmentLinuxGolden reassembles the two fragments Linux sent for a
// 2000-byte ping over a 1280-byte MTU, then fragments the packet again
// with Linux's identification and checks that the fragments are Linux's,
// byte for byte.
func TestFragmentLinuxGolden(t *testing.T) {
	f0, f1 := linux(t, "frag0"), linux(t, "frag1")
	pkt := reassembleAll(t, [][]byte{f0, f1})
	if len(pkt) != HeaderLen+8+2000 {
		t.Fatalf("reassembled %d bytes", len(pkt))
	}
	h, _ := ParseHeader(pkt)
	c, err := ParseExtensions(h)
	if err != nil || c.Proto != NextHeaderICMPv6 || c.Fragment != 0 {
		t.Fatalf("reassembled chain %+v, %v", c, err)
	}
	if _, err := ParseICMP(h.Payload(), h.Source(), h.Destination()); err != nil {
		t.Fatalf("reassembled echo request: %v", err)
	}
	fs := fragmentAll(t, pkt, 1280, 0x8699b5aa)
	if len(fs) != 2 || !bytes.Equal(fs[0], f0) || !bytes.Equal(fs[1], f1) {
		t.Fatalf("fragments differ from Linux's:\n got %x\nwant %x", fs, [][]byte{f0, f1})
	}
}

func TestFragmentSizes(t *testing.T) {
	for _, tc := range []struct {
		name string
		exts []ext
		n    int
		mtu  int
	}{
		{"no extensions", nil, 5000, 1280},
		{"just over", nil, 1241, 1280},
		{"jumbo-ish", nil, 65000, 1500},
		{"hop-by-hop, destination, routing, destination", []ext{optionsHeader(NextHeaderHopByHop),
			optionsHeader(NextHeaderDestOptions), routingHeader(0, 0), optionsHeader(NextHeaderDestOptions, 0x1e, 0)}, 3000, 1280},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := make([]byte, tc.n)
			for i := range data {
				data[i] = byte(i * 7)
			}
			pkt := packet(addr1, addr2, tc.exts, NextHeaderUDP, data)
			fs := fragmentAll(t, pkt, tc.mtu, 42)
			unfrag, _ := unfragmentableLen(pkt)
			for i, f := range fs {
				if len(f) > tc.mtu {
					t.Fatalf("fragment %d: %d bytes", i, len(f))
				}
				if !bytes.Equal(f[offSource:HeaderLen], pkt[offSource:HeaderLen]) {
					t.Fatalf("fragment %d: addresses changed", i)
				}
				h, _ := ParseHeader(f)
				c, err := ParseExtensions(h)
				if err != nil || c.Proto != NextHeaderFragment || c.Fragment != unfrag {
					t.Fatalf("fragment %d: chain %+v, %v", i, c, err)
				}
				fh := FragmentAt(h, c.Fragment)
				if fh.Identification() != 42 || fh.More() != (i < len(fs)-1) {
					t.Fatalf("fragment %d: id %d more %v", i, fh.Identification(), fh.More())
				}
			}
			if got := reassembleAll(t, fs); !bytes.Equal(got, pkt) {
				t.Fatalf("reassembled packet differs")
			}
		})
	}
}

func TestFragmentErrors(t *testing.T) {
	pkt := packet(addr1, addr2, nil, NextHeaderUDP, make([]byte, 3000))
	emit := func([]byte) error { return nil }
	if err := Fragment(pkt, 1279, 1, make([]byte, 2000), emit); !errors.Is(err, ErrMTUTooSmall) {
		t.Errorf("MTU 1279: %v", err)
	}
	if err := Fragment(pkt, 1280, 1, make([]byte, 1279), emit); !errors.Is(err, ErrScratchTooSmall) {
		t.Errorf("short scratch: %v", err)
	}
	frag := packet(addr1, addr2, []ext{fragmentHeader(0, false, 1)}, NextHeaderUDP, make([]byte, 3000))
	if err := Fragment(frag, 1280, 1, make([]byte, 1280), emit); !errors.Is(err, ErrAlreadyFragment) {
		t.Errorf("already a fragment: %v", err)
	}
	if err := Fragment(pkt[:30], 1280, 1, make([]byte, 1280), emit); !errors.Is(err, ErrTruncated) {
		t.Errorf("truncated: %v", err)
	}
	big := packet(addr1, addr2, []ext{optionsHeader(NextHeaderHopByHop, make([]byte, 1250)...)}, NextHeaderUDP, make([]byte, 100))
	if err := Fragment(big, 1280, 1, make([]byte, 1280), emit); !errors.Is(err, ErrMTUTooSmall) {
		t.Errorf("unfragmentable part over the MTU: %v", err)
	}
	stop := errors.New("stop")
	n := 0
	if err := Fragment(pkt, 1280, 1, make([]byte, 1280), func([]byte) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("emit error: %v after %d", err, n)
	}
}

func TestFragmentFits(t *testing.T) {
	pkt := packet(addr1, addr2, nil, NextHeaderUDP, make([]byte, 1240))
	n := 0
	Fragment(pkt, 1280, 1, nil, func(f []byte) error {
		n++
		if &f[0] != &pkt[0] || len(f) != len(pkt) {
			t.Error("a packet that fits is not passed unchanged")
		}
		return nil
	})
	if n != 1 {
		t.Errorf("%d emits", n)
	}
}

func TestFragmentAllocs(t *testing.T) {
	pkt := packet(addr1, addr2, nil, NextHeaderUDP, make([]byte, 9000))
	scratch := make([]byte, 1500)
	emit := func([]byte) error { return nil }
	if n := testing.AllocsPerRun(100, func() { Fragment(pkt, 1500, 1, scratch, emit) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
