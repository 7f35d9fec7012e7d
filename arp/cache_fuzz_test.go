package arp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/link"
)

// FuzzCache drives a small Cache with a sequence of operations decoded from
// the input and checks its invariants after each: the table stays within
// MaxEntries and each queue within QueueLen; after Tick(now) no work is due
// at now; and every packet handed to Resolve is accounted for exactly once
// (released, dropped on overflow, timeout or eviction, or still queued);
// and every entry is in a possible state (checkTable).
func FuzzCache(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 1, 1, 2, 0x10, 2, 0x10, 2, 0x10, 2, 0x10})
	f.Add([]byte{0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 2, 0, 3, 0, 4, 1, 0x21, 3, 1})
	f.Add([]byte{1, 0x03, 1, 0x13, 1, 0x23, 1, 0x33, 2, 0xff, 2, 0xff, 3, 3})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const maxEntries, queueLen = 4, 3
		c := NewCache(Config{BaseReachableTime: 5 * time.Second, StaleTime: 5 * time.Second, MaxMulticastSolicit: 2, QueueLen: queueLen, MaxEntries: maxEntries})
		now := t0
		addr := func(b byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, b % 6}) } // 10.0.0.0 is local
		isLocal := func(ip netip.Addr) bool { return ip == addr(0) }
		var queued, released uint64
		buf := make([]byte, PacketLen)
		for len(ops) >= 2 {
			op, arg := ops[0], ops[1]
			ops = ops[2:]
			switch op % 5 {
			case 0: // Resolve with a packet
				if _, ok, _ := c.Resolve(addr(arg), []byte{arg}, now); !ok {
					queued++
				}
			case 1: // Input: arg = op bit, sender, target, MAC choice
				pop := OpRequest + uint16(arg>>7)
				sha := link.MAC{0x02, 0, 0, 0, 0, arg >> 4 & 3}
				if arg&0x40 != 0 {
					sha = link.Broadcast
				}
				PutPacket(buf, pop, sha, addr(arg>>4&7), link.MAC{}, addr(arg))
				p, err := ParsePacket(buf)
				if err != nil {
					t.Fatal(err)
				}
				res := c.Input(p, isLocal, now)
				if len(res.Released) > queueLen {
					t.Fatalf("released %d > QueueLen", len(res.Released))
				}
				released += uint64(len(res.Released))
			case 2: // advance time and Tick
				now = now.Add(time.Duration(arg) * 50 * time.Millisecond)
				c.Tick(now, func(netip.Addr) {})
				if d := c.NextDeadline(); !d.IsZero() && !d.After(now) {
					t.Fatalf("after Tick(%v) NextDeadline = %v", now, d)
				}
			case 3: // Lookup agrees with Entries
				mac, ok := c.Lookup(addr(arg))
				for _, e := range c.Entries() {
					if e.IP == addr(arg) && (ok != (e.State != StateIncomplete) || ok && e.MAC != mac) {
						t.Fatalf("Lookup %v = %v, entry %+v", e.IP, mac, e)
					}
				}
			case 4: // Resolve without a packet
				c.Resolve(addr(arg), nil, now)
			}
			if c.Len() > maxEntries {
				t.Fatalf("Len = %d > MaxEntries", c.Len())
			}
			checkTable(t, c)
			var waiting uint64
			for _, e := range c.Entries() {
				if e.Queued > queueLen {
					t.Fatalf("entry %+v holds more than QueueLen", e)
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
	})
}
