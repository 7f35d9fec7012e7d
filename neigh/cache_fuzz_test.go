package neigh

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/link"
)

// FuzzCache drives a small Cache, IPv4 and IPv6 addresses mixed, with a
// sequence of operations and times decoded from the input, and checks
// after each: the table stays within MaxEntries and MaxIncomplete and each
// queue within QueueLen; every entry is in a possible state (an address
// exactly when not INCOMPLETE, a queue only when INCOMPLETE, no more
// solicitations than the state allows) on the right eviction list; after
// Tick(now) no deadline is at or before now; every packet given to
// Resolve is accounted for exactly once; and while the generation stays,
// an address Lookup returned is still the one it returns.
func FuzzCache(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 1, 1, 2, 0x10, 2, 0x10, 2, 0x10, 2, 0x10})
	f.Add([]byte{0, 1, 1, 0x31, 4, 1, 2, 100, 0, 1, 2, 100, 2, 30, 2, 30, 2, 30, 2, 30})
	f.Add([]byte{3, 0x12, 3, 0x13, 3, 0x14, 3, 0x15, 3, 0x16, 0, 7, 0, 8, 5, 2, 2, 0xff})
	f.Add([]byte{0, 2, 1, 0x52, 0, 2, 2, 120, 6, 2, 1, 0xa2, 2, 200, 2, 200})
	f.Fuzz(runFuzz)
}

func runFuzz(t *testing.T, ops []byte) {
	const maxEntries, maxIncomplete, queueLen = 5, 3, 2
	cfg := Config{MaxEntries: maxEntries, MaxIncomplete: maxIncomplete, QueueLen: queueLen, StaleTime: 20 * time.Second}
	var seed uint64 = 1
	cfg.Rand = func(n int64) int64 { seed = seed*6364136223846793005 + 1442695040888963407; return int64(seed>>1) % n }
	c := New(cfg)
	cfg = c.Config()
	addrs := []netip.Addr{
		netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3"),
		netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fe80::2"), netip.MustParseAddr("2001:db8::3"),
		netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("fe80::8"),
	}
	addr := func(b byte) netip.Addr { return addrs[int(b)%len(addrs)] }
	mac := func(b byte) link.MAC { return link.MAC{0x02, 0, 0, 0, 0, b & 3} } // 0 is "none"
	now := t0
	var queued, released, failedPkts uint64
	seen := map[netip.Addr]link.MAC{}
	gen := c.Generation()
	for len(ops) >= 2 {
		op, arg := ops[0], ops[1]
		ops = ops[2:]
		ip := addr(arg)
		switch op % 7 {
		case 0: // a packet to send
			if _, ok, _ := c.Resolve(ip, []byte{arg}, now); !ok {
				queued++
			}
		case 1: // an advertisement: arg's high bits are the flags and address
			a := arg >> 3
			res := c.Advertisement(ip, mac(a), Flags{Solicited: a&4 != 0, Override: a&8 != 0, Router: a&16 != 0}, now)
			released += uint64(len(res.Released))
		case 2: // time passes; Tick
			now = now.Add(time.Duration(arg) * 250 * time.Millisecond)
			c.Tick(now, func(s Solicit) {
				if !s.Target.IsValid() || s.Unicast == s.MAC.IsZero() {
					t.Fatalf("solicitation %+v", s)
				}
			}, func(f Failure) {
				if _, ok := c.State(f.Target); ok || len(f.Queued) > queueLen {
					t.Fatalf("failure %+v (entry still there: %v)", f, ok)
				}
				failedPkts += uint64(len(f.Queued))
			})
			if d := c.NextDeadline(); !d.IsZero() && !d.After(now) {
				t.Fatalf("after Tick(%v) NextDeadline = %v", now, d)
			}
		case 3: // a solicitation from ip
			res := c.Learn(ip, mac(arg>>3), arg&0x80 != 0, now)
			released += uint64(len(res.Released))
		case 4: // upper-layer confirmation
			c.Confirm(ip, now)
		case 5: // a send without a packet
			c.Resolve(ip, nil, now)
		case 6: // a little time passes without Tick
			now = now.Add(time.Duration(arg) * time.Millisecond)
		}
		if c.Generation() != gen {
			gen = c.Generation()
			clear(seen)
		}
		for _, a := range addrs {
			m, ok := c.Lookup(a)
			if old, had := seen[a]; had && (!ok || m != old) {
				t.Fatalf("%v: address %v became %v, %v with the generation unchanged", a, old, m, ok)
			}
			if ok {
				seen[a] = m
			}
		}
		if c.Len() > maxEntries || c.pending.n > maxIncomplete {
			t.Fatalf("Len %d, INCOMPLETE %d", c.Len(), c.pending.n)
		}
		checkLists(t, c)
		var waiting uint64
		for _, e := range c.Entries() {
			switch e.State {
			case StateIncomplete:
				if !e.MAC.IsZero() || e.Probes < 1 || e.Probes > cfg.MaxMulticastSolicit || e.Queued > queueLen {
					t.Fatalf("impossible %+v", e)
				}
			case StateReachable, StateStale, StateDelay:
				if e.MAC.IsZero() || e.Probes != 0 || e.Queued != 0 {
					t.Fatalf("impossible %+v", e)
				}
			case StateProbe:
				if e.MAC.IsZero() || e.Probes < 1 || e.Probes > cfg.MaxUnicastSolicit || e.Queued != 0 {
					t.Fatalf("impossible %+v", e)
				}
			default:
				t.Fatalf("impossible %+v", e)
			}
			if e.Deadline.IsZero() {
				t.Fatalf("no timer: %+v", e)
			}
			waiting += uint64(e.Queued)
		}
		st := c.Stats()
		if got := released + st.QueueDrops + st.TimeoutDrops + st.EvictionDrops + waiting; got != queued {
			t.Fatalf("packets: %d queued, %d accounted for (stats %+v, %d waiting)", queued, got, st, waiting)
		}
		if st.Released != released {
			t.Fatalf("Stats.Released = %d, handed back %d", st.Released, released)
		}
	}
}
