package tcp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

func TestISN(t *testing.T) {
	key := [32]byte{1, 2, 3}
	g := NewISNGenerator(key)
	tu := Tuple{
		Local:  netip.MustParseAddrPort("10.0.0.2:80"),
		Remote: netip.MustParseAddrPort("10.0.0.1:41234"),
	}
	// A time on a 4 µs boundary, so that sub-tick offsets stay in one tick.
	base := time.Date(2026, 11, 29, 20, 0, 0, 0, time.UTC)
	isn := g.ISN(tu, base)

	t.Run("deterministic", func(t *testing.T) {
		if again := NewISNGenerator(key).ISN(tu, base); again != isn {
			t.Errorf("same key, tuple and time: %#x then %#x", isn, again)
		}
	})
	t.Run("advances 250000 per second", func(t *testing.T) {
		tests := []struct {
			name string
			d    time.Duration
			want uint32
		}{
			{name: "3µs same tick", d: 3 * time.Microsecond, want: 0},
			{name: "4µs", d: 4 * time.Microsecond, want: 1},
			{name: "1ms", d: time.Millisecond, want: 250},
			{name: "1s", d: time.Second, want: 250_000},
			{name: "1.5s", d: 1500 * time.Millisecond, want: 375_000},
			{name: "1h", d: time.Hour, want: 900_000_000},
			{name: "wraps after 2^32 ticks", d: (1 << 32) * 4 * time.Microsecond, want: 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := g.ISN(tu, base.Add(tt.d)).Sub(isn); got != tt.want {
					t.Errorf("ISN advanced by %d after %v, want %d", got, tt.d, tt.want)
				}
			})
		}
	})
	t.Run("tuples differ", func(t *testing.T) {
		others := []Tuple{
			tu.Reverse(),
			{Local: tu.Local, Remote: netip.MustParseAddrPort("10.0.0.1:41235")},
			{Local: netip.MustParseAddrPort("10.0.0.2:81"), Remote: tu.Remote},
			{Local: tu.Local, Remote: netip.MustParseAddrPort("10.0.0.3:41234")},
			{Local: netip.MustParseAddrPort("10.0.0.4:80"), Remote: tu.Remote},
		}
		seen := map[Value]Tuple{isn: tu}
		for _, o := range others {
			v := g.ISN(o, base)
			if prev, ok := seen[v]; ok {
				t.Errorf("ISN(%v) = ISN(%v) = %#x", o, prev, v)
			}
			seen[v] = o
		}
	})
	t.Run("many tuples spread", func(t *testing.T) {
		// F truncated to 32 bits: 1000 ports should give (almost surely)
		// 1000 distinct ISNs; a collision here would mean F ignores the port.
		seen := make(map[Value]bool)
		for p := uint16(1); p <= 1000; p++ {
			o := Tuple{Local: tu.Local, Remote: netip.AddrPortFrom(tu.Remote.Addr(), p)}
			seen[g.ISN(o, base)] = true
		}
		if len(seen) < 999 {
			t.Errorf("1000 tuples gave %d distinct ISNs", len(seen))
		}
	})
	t.Run("keys differ", func(t *testing.T) {
		other := key
		other[31] ^= 1
		if v := NewISNGenerator(other).ISN(tu, base); v == isn {
			t.Errorf("keys differing in one bit give the same ISN %#x", v)
		}
	})
}

// TestISNIsHMAC checks the hand-rolled HMAC of ISNGenerator.f against
// crypto/hmac, and that the ISN is M plus its first 32 bits.
func TestISNIsHMAC(t *testing.T) {
	tuples := []Tuple{
		{Local: netip.MustParseAddrPort("10.0.0.2:80"), Remote: netip.MustParseAddrPort("10.0.0.1:41234")},
		{Local: netip.MustParseAddrPort("[2001:db8::1]:443"), Remote: netip.MustParseAddrPort("[2001:db8::2]:5000")},
		{},
	}
	keys := [][32]byte{{}, {1, 2, 3}, {31: 0xff}}
	for _, key := range keys {
		g := NewISNGenerator(key)
		for _, tu := range tuples {
			var msg []byte
			la, ra := tu.Local.Addr().As16(), tu.Remote.Addr().As16()
			msg = append(msg, la[:]...)
			msg = binary.BigEndian.AppendUint16(msg, tu.Local.Port())
			msg = append(msg, ra[:]...)
			msg = binary.BigEndian.AppendUint16(msg, tu.Remote.Port())
			mac := hmac.New(sha256.New, key[:])
			mac.Write(msg)
			sum := mac.Sum(nil)
			want := binary.BigEndian.Uint32(sum)
			if got := g.prf(tu); string(got[:]) != string(sum) {
				t.Errorf("key %x tuple %v: prf = %x, want HMAC %x", key[:4], tu, got, sum)
			}
			if got, w := g.TimestampOffset(tu), binary.BigEndian.Uint32(sum[4:]); got != w {
				t.Errorf("TimestampOffset = %#x, want %#x", got, w)
			}
			// The cookie hash is the HMAC of the tuple, the stamp and the
			// peer's ISN.
			cmsg := binary.BigEndian.AppendUint32(append([]byte(nil), msg...), 0x01020304)
			cmsg = binary.BigEndian.AppendUint32(cmsg, 0xa0b0c0d0)
			cmac := hmac.New(sha256.New, key[:])
			cmac.Write(cmsg)
			if got, w := g.CookieHash(tu, 0x01020304, 0xa0b0c0d0), binary.BigEndian.Uint32(cmac.Sum(nil)); got != w {
				t.Errorf("CookieHash = %#x, want %#x", got, w)
			}
			// At the Unix epoch M is 0, so the ISN is F itself.
			if got := g.ISN(tu, time.Unix(0, 0)); uint32(got) != want {
				t.Errorf("ISN at the epoch = %#x, want %#x", got, want)
			}
		}
	}
}

func TestISNAllocs(t *testing.T) {
	g := NewISNGenerator([32]byte{9})
	tu := Tuple{Local: netip.MustParseAddrPort("10.0.0.2:80"), Remote: netip.MustParseAddrPort("10.0.0.1:41234")}
	now := time.Unix(1000, 0)
	if n := testing.AllocsPerRun(100, func() { _ = g.ISN(tu, now) }); n != 0 {
		t.Errorf("ISN allocates %v times", n)
	}
}
