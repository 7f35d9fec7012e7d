package ipv6

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// add parses b, walks its chain and adds it to r at now.
func add(t testing.TB, r *Reassembler, b []byte, now time.Time) ([]byte, error) {
	t.Helper()
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseExtensions(h)
	if err != nil {
		t.Fatal(err)
	}
	return r.Add(h, c, now)
}

// testPacket returns a UDP-like packet of n data bytes from src.
func testPacket(src netip.Addr, n int, seed byte) []byte {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i) ^ seed
	}
	return packet(src, addr2, []ext{optionsHeader(NextHeaderHopByHop, 5, 2, 0, 0)}, NextHeaderUDP, data)
}

func TestReassemblyOrders(t *testing.T) {
	pkt := testPacket(addr1, 5000, 1)
	fs := fragmentAll(t, pkt, 1280, 9) // 5 fragments
	for _, tc := range []struct {
		name  string
		order []int
	}{
		{"in order", []int{0, 1, 2, 3, 4}},
		{"reverse", []int{4, 3, 2, 1, 0}},
		{"shuffled", []int{2, 0, 4, 1, 3}},
		{"duplicates", []int{1, 1, 0, 3, 2, 3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReassembler(ReassemblyConfig{})
			var got []byte
			for n, i := range tc.order {
				out, err := add(t, r, fs[i], t0)
				if err != nil {
					t.Fatalf("fragment %d: %v", i, err)
				}
				if out != nil && n != len(tc.order)-1 {
					t.Fatalf("fragment %d completed early", i)
				}
				got = out
			}
			if !bytes.Equal(got, pkt) {
				t.Fatalf("reassembled packet differs")
			}
			if s := r.Stats(); s.Reassembled != 1 || s.Datagrams != 0 || s.Bytes != 0 ||
				s.Duplicates != uint64(len(tc.order)-5) {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

func TestReassemblyAtomicFragment(t *testing.T) {
	// RFC 6946 §4: an atomic fragment is processed in isolation, even
	// while fragments with its identification are being reassembled.
	fs := fragmentAll(t, testPacket(addr1, 3000, 2), 1280, 77)
	r := NewReassembler(ReassemblyConfig{})
	if _, err := add(t, r, fs[0], t0); err != nil {
		t.Fatal(err)
	}
	atomic := packet(addr1, addr2, []ext{fragmentHeader(0, false, 77)}, NextHeaderUDP, make([]byte, 16))
	got, err := add(t, r, atomic, t0)
	if err != nil || !bytes.Equal(got, atomic) {
		t.Fatalf("atomic fragment: %v, %x", err, got)
	}
	if s := r.Stats(); s.Fragments != 1 || s.Datagrams != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestReassemblyOverlap(t *testing.T) {
	// RFC 5722 §4: an overlap discards the whole packet, and the
	// fragments that arrive later.
	pkt := testPacket(addr1, 4000, 3)
	fs := fragmentAll(t, pkt, 1280, 5)
	h, _ := ParseHeader(fs[1])
	c, _ := ParseExtensions(h)
	off := FragmentAt(h, c.Fragment).Offset()
	// A fragment overlapping fs[1] by 8 bytes at its start.
	over := packet(addr1, addr2, []ext{optionsHeader(NextHeaderHopByHop, 5, 2, 0, 0), fragmentHeader(off-8, true, 5)},
		NextHeaderUDP, make([]byte, 16))
	r := NewReassembler(ReassemblyConfig{})
	for _, f := range [][]byte{fs[0], fs[1]} {
		if _, err := add(t, r, f, t0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := add(t, r, over, t0); !errors.Is(err, ErrFragmentOverlap) {
		t.Fatalf("overlap: %v", err)
	}
	for _, f := range fs[2:] {
		if got, err := add(t, r, f, t0); got != nil || !errors.Is(err, ErrFragmentOverlap) {
			t.Fatalf("later fragment of a discarded packet: %v", err)
		}
	}
	if s := r.Stats(); s.Overlaps != 1 || s.Discarded != uint64(len(fs)-2) || s.Bytes != 0 {
		t.Errorf("stats %+v", s)
	}
	// After the timeout the identification may start a new packet.
	if got := reassembleAllAt(t, r, fs, t0.Add(DefaultReassemblyTimeout)); !bytes.Equal(got, pkt) {
		t.Error("not reassembled after the discarded packet's timeout")
	}
}

// reassembleAllAt adds fs to r at now and returns what completes.
func reassembleAllAt(t testing.TB, r *Reassembler, fs [][]byte, now time.Time) []byte {
	t.Helper()
	var out []byte
	for _, f := range fs {
		got, err := add(t, r, f, now)
		if err != nil {
			t.Fatal(err)
		}
		if got != nil {
			out = got
		}
	}
	return out
}

func TestReassemblyTimeout(t *testing.T) {
	fs := fragmentAll(t, testPacket(addr1, 3000, 4), 1280, 6)
	r := NewReassembler(ReassemblyConfig{})
	for _, f := range fs[:2] {
		if _, err := add(t, r, f, t0); err != nil {
			t.Fatal(err)
		}
	}
	if d := r.NextDeadline(); !d.Equal(t0.Add(60 * time.Second)) {
		t.Fatalf("deadline %v", d)
	}
	calls := 0
	r.Expire(t0.Add(59*time.Second), func([]byte) { calls++ })
	if calls != 0 || r.Stats().Datagrams != 1 {
		t.Fatal("expired before 60 s")
	}
	var quote []byte
	r.Expire(t0.Add(60*time.Second), func(first []byte) { calls++; quote = bytes.Clone(first) })
	if calls != 1 || r.Stats().Datagrams != 0 || r.Stats().Timeouts != 1 {
		t.Fatalf("calls %d stats %+v", calls, r.Stats())
	}
	// The quote is fragment zero as received, cut to what an ICMPv6 error
	// holds.
	if len(quote) != MaxErrorLen-ICMPHeaderLen || !bytes.Equal(quote, fs[0][:len(quote)]) {
		t.Errorf("quote %d bytes differs from fragment zero", len(quote))
	}
	// Without fragment zero, nothing is quoted.
	if _, err := add(t, r, fs[1], t0); err != nil {
		t.Fatal(err)
	}
	r.Expire(t0.Add(time.Hour), func([]byte) { t.Error("quoted without fragment zero") })
}

func TestReassemblyInvalid(t *testing.T) {
	r := NewReassembler(ReassemblyConfig{})
	fs := fragmentAll(t, testPacket(addr1, 3000, 5), 1280, 8)
	h, _ := ParseHeader(fs[0])
	c, _ := ParseExtensions(h)
	for _, tc := range []struct {
		name string
		c    Chain
	}{
		{"fragment past the packet", Chain{Proto: NextHeaderFragment, Offset: len(h) - 4, ProtoPointer: 40, Fragment: len(h) - 4}},
		{"offset is not the fragment", Chain{Proto: NextHeaderFragment, Offset: c.Offset + 8, ProtoPointer: c.ProtoPointer, Fragment: c.Fragment}},
		{"pointer not a next header", Chain{Proto: NextHeaderFragment, Offset: c.Offset, ProtoPointer: 12, Fragment: c.Fragment}},
		{"pointer names no fragment", Chain{Proto: NextHeaderFragment, Offset: c.Offset, ProtoPointer: 6, Fragment: c.Fragment}},
	} {
		if _, err := r.Add(h, tc.c, t0); !errors.Is(err, ErrFragmentInvalid) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	odd := packet(addr1, addr2, []ext{fragmentHeader(0, true, 1)}, NextHeaderUDP, make([]byte, 12))
	oh := Header(odd)
	if _, err := r.Add(oh, Chain{Proto: NextHeaderFragment, Offset: 40, ProtoPointer: 6, Fragment: 40}, t0); !errors.Is(err, ErrFragmentInvalid) {
		t.Errorf("M set, 12 bytes: %v", err)
	}
	if s := r.Stats(); s.Invalid != 5 || s.Datagrams != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestReassemblyMemoryBound(t *testing.T) {
	// Sources that never complete evict each other, oldest first, and the
	// bytes held stay under MaxBytes.
	cfg := ReassemblyConfig{MaxDatagrams: 8, MaxBytes: 64 << 10}
	r := NewReassembler(cfg)
	for i := range 200 {
		src := netip.AddrFrom16([16]byte{0xfd, 15: byte(i)})
		fs := fragmentAll(t, testPacket(src, 6000, byte(i)), 1280, uint32(i))
		if _, err := add(t, r, fs[0], t0); err != nil {
			t.Fatal(err)
		}
		if s := r.Stats(); s.Bytes > cfg.MaxBytes || s.Datagrams > cfg.MaxDatagrams || s.SpareBytes > cfg.MaxBytes {
			t.Fatalf("after %d: %+v", i, s)
		}
	}
	if s := r.Stats(); s.Evictions == 0 {
		t.Errorf("no evictions: %+v", s)
	}
	// One source cannot hold more than its share.
	r = NewReassembler(ReassemblyConfig{MaxDatagrams: 16, MaxPerSource: 4})
	for i := range 10 {
		fs := fragmentAll(t, testPacket(addr1, 3000, 0), 1280, uint32(i))
		add(t, r, fs[0], t0)
	}
	victim := fragmentAll(t, testPacket(addr2, 3000, 0), 1280, 1)
	add(t, r, victim[0], t0)
	for i := range 10 {
		fs := fragmentAll(t, testPacket(addr1, 3000, 0), 1280, uint32(100+i))
		add(t, r, fs[0], t0)
	}
	if s := r.Stats(); s.Datagrams != 5 || s.SourceEvictions != 16 {
		t.Errorf("stats %+v", s)
	}
	if got := reassembleAllAt(t, r, victim[1:], t0); got == nil {
		t.Error("another source's packet was evicted by one source's flood")
	}
}

func TestReassemblyTooLarge(t *testing.T) {
	r := NewReassembler(ReassemblyConfig{})
	// 65528 + 8 octets of data after a 48-byte Unfragmentable Part would
	// be a payload over 65535: ParseExtensions refuses it, and Add too.
	b := packet(addr1, addr2, []ext{fragmentHeader(65520, false, 3)}, NextHeaderUDP, make([]byte, 16))
	h := Header(b)
	c := Chain{Proto: NextHeaderFragment, Offset: 40, ProtoPointer: 6, Fragment: 40}
	if _, err := r.Add(h, c, t0); !errors.Is(err, ErrFragmentTooLarge) {
		t.Errorf("%v", err)
	}
}

func TestReassemblyAllocs(t *testing.T) {
	// A flood of first fragments that never complete allocates nothing in
	// the steady state.
	r := NewReassembler(ReassemblyConfig{MaxDatagrams: 16})
	var hs []Header
	var cs []Chain
	for i := range 64 {
		fs := fragmentAll(t, testPacket(netip.AddrFrom16([16]byte{0xfd, 14: byte(i)}), 3000, 0), 1280, uint32(i))
		h, _ := ParseHeader(fs[0])
		c, _ := ParseExtensions(h)
		hs, cs = append(hs, h), append(cs, c)
	}
	i := 0
	step := func() {
		r.Add(hs[i%len(hs)], cs[i%len(hs)], t0)
		i++
	}
	for range 200 {
		step()
	}
	if n := testing.AllocsPerRun(500, step); n != 0 {
		t.Errorf("%v allocations per fragment", n)
	}
}

// FuzzReassembly cuts a packet at random 8-byte boundaries, shuffles and
// duplicates the fragments, and checks that the packet comes back; the
// fuzzer's bytes also go in as fragments of their own, which must never
// panic or break the bounds.
func FuzzReassembly(f *testing.F) {
	f.Add(uint64(1), uint16(3000), []byte{})
	f.Add(uint64(2), uint16(100), linux(f, "frag1"))
	f.Fuzz(func(t *testing.T, seed uint64, size uint16, garbage []byte) {
		rng := rand.New(rand.NewPCG(seed, seed>>7))
		r := NewReassembler(ReassemblyConfig{MaxDatagrams: 4, MaxBytes: 1 << 20})
		if h, err := ParseHeader(garbage); err == nil {
			c, err := ParseExtensions(h)
			if err == nil {
				r.Add(h, c, t0)
			}
			// A chain that does not match must be refused, not panic.
			r.Add(h, Chain{Proto: NextHeaderFragment, Offset: int(seed % 200), ProtoPointer: int(seed % 50), Fragment: int(seed % 200)}, t0)
		}
		n := int(size)%20000 + 1
		pkt := testPacket(addr1, n, byte(seed))
		unfrag := HeaderLen + 8
		data := pkt[unfrag:]
		// Cut points at multiples of 8.
		var cuts []int
		for off := 0; off < len(data); {
			step := (rng.IntN(200) + 1) * 8
			cuts = append(cuts, off)
			off += step
		}
		var fs [][]byte
		for i, off := range cuts {
			end := len(data)
			if i+1 < len(cuts) {
				end = cuts[i+1]
			}
			fs = append(fs, packet(addr1, addr2, []ext{optionsHeader(NextHeaderHopByHop, 5, 2, 0, 0),
				fragmentHeader(off, i+1 < len(cuts), uint32(seed))}, NextHeaderUDP, data[off:end]))
			// The first fragment's Fragment header names UDP; the others
			// may say anything (RFC 8200 §4.5).
			if i > 0 {
				fs[i][unfrag] = byte(rng.IntN(256))
			}
		}
		if len(fs) > 1 {
			fs = append(fs, fs[rng.IntN(len(fs))])
		}
		rng.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
		var got []byte
		for _, fr := range fs {
			h, err := ParseHeader(fr)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ParseExtensions(h)
			if err != nil {
				if errors.Is(err, ErrIncompleteHeaderChain) && len(cuts) > 0 {
					return // the first fragment is too short to hold the UDP header
				}
				t.Fatal(err)
			}
			out, err := r.Add(h, c, t0)
			if err != nil {
				t.Fatal(err)
			}
			if out != nil {
				got = out
			}
		}
		want := pkt
		if len(cuts) == 1 {
			want = fs[0] // an atomic fragment comes back as it is (RFC 6946 §4)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("reassembled %d bytes, want %d", len(got), len(want))
		}
		if s := r.Stats(); s.Bytes < 0 || s.Bytes > 1<<20 {
			t.Fatalf("stats %+v", s)
		}
	})
}
