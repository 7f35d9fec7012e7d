package arp

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack/ustack/link"
)

// checkTable verifies what the cache shows: the bounds hold, every entry
// is in a possible state, and Lookup agrees with Entries.
func checkTable(t testing.TB, c *Cache) {
	t.Helper()
	cfg := c.Config()
	incomplete := 0
	for _, e := range c.Entries() {
		mac, ok := c.Lookup(e.IP)
		switch {
		case e.State == StateIncomplete:
			incomplete++
			if ok || !e.MAC.IsZero() || e.Queued > cfg.QueueLen {
				t.Fatalf("impossible incomplete entry %+v", e)
			}
		case e.State < StateIncomplete || e.State > StateProbe || !ok || mac != e.MAC || e.MAC.IsZero() || e.Queued != 0:
			t.Fatalf("impossible entry %+v (Lookup %v, %v)", e, mac, ok)
		}
	}
	if c.Len() > cfg.MaxEntries || incomplete > cfg.MaxIncomplete || len(c.Entries()) != c.Len() {
		t.Fatalf("Len %d, %d incomplete, over %d, %d", c.Len(), incomplete, cfg.MaxEntries, cfg.MaxIncomplete)
	}
}

// forged returns the i-th address of 198.18.0.0/15, a prefix routed
// nowhere (RFC 2544's benchmarking range), and a MAC for it.
func forged(i int) (netip.Addr, link.MAC) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], 198<<24|18<<16+uint32(i%(1<<17)))
	return netip.AddrFrom4(b), link.MAC{0x02, 0xee, b[0], b[1], b[2], b[3]}
}

// TestFloodKeepsEntriesInUse floods a small cache with requests to us
// from forged senders, replies nobody asked for and announcements: the
// entry of the neighbour we talk to stays, with its MAC and no new
// request; the forged entries evict only each other.
func TestFloodKeepsEntriesInUse(t *testing.T) {
	c := NewCache(Config{MaxEntries: 16})
	if _, ok, send := c.Resolve(ipB, []byte{1}, at(0)); ok || !send {
		t.Fatal("first Resolve should ask")
	}
	c.Input(replyFrom(t, macB, ipB), isLocalA, at(time.Millisecond))
	const flood = 30000
	for i := 0; i < flood; i++ {
		ip, mac := forged(i)
		now := at(time.Second + time.Duration(i)*time.Microsecond)
		switch i % 3 {
		case 0:
			c.Input(pkt(t, OpRequest, mac, ip, link.MAC{}, ipA), isLocalA, now)
		case 1:
			c.Input(pkt(t, OpReply, mac, ip, macA, ipA), isLocalA, now)
		case 2:
			c.Input(pkt(t, OpRequest, mac, ip, link.MAC{}, ip), isLocalA, now) // announcement
		}
		if i%1000 == 0 {
			// The neighbour is in use: a send every so often.
			if mac, ok, send := c.Resolve(ipB, nil, now); !ok || send || mac != macB {
				t.Fatalf("after %d forged packets: Resolve(B) = %v, %v, %v", i, mac, ok, send)
			}
		}
	}
	checkTable(t, c)
	st := c.Stats()
	t.Logf("%d forged packets: %+v", flood, st)
	if mac, ok := c.Lookup(ipB); !ok || mac != macB {
		t.Fatalf("the neighbour's entry is gone: %v %v", mac, ok)
	}
	if st.RequestsNeeded != 1 || st.EvictionsInUse != 0 {
		t.Fatalf("RequestsNeeded %d, EvictionsInUse %d; want 1 and 0", st.RequestsNeeded, st.EvictionsInUse)
	}
	if st.Learned != flood/3 || st.Evictions != flood/3-15 || st.UnsolicitedIgnored != flood/3 {
		t.Fatalf("Learned %d, Evictions %d, UnsolicitedIgnored %d; want %d, %d, %d",
			st.Learned, st.Evictions, st.UnsolicitedIgnored, flood/3, flood/3-15, flood/3)
	}
	if c.Len() != 16 {
		t.Fatalf("Len %d, want 16", c.Len())
	}
}

// TestFullOfEntriesInUse: when every entry is in use, a request to us is
// answered but its sender not learned, while a resolution of ours evicts
// the entry least recently used.
func TestFullOfEntriesInUse(t *testing.T) {
	c := NewCache(Config{MaxEntries: 2})
	for i, p := range []struct {
		ip  netip.Addr
		mac link.MAC
	}{{ipB, macB}, {ipC, macC}} {
		c.Resolve(p.ip, nil, at(time.Duration(i)*time.Second))
		c.Input(replyFrom(t, p.mac, p.ip), isLocalA, at(time.Duration(i)*time.Second+time.Millisecond))
	}
	c.Resolve(ipB, nil, at(3*time.Second)) // B used last: C is the least recently used
	res := c.Input(pkt(t, OpRequest, macD, ipD, link.MAC{}, ipA), isLocalA, at(4*time.Second))
	if !res.Reply || c.Len() != 2 || c.Stats().LearnSkipped != 1 {
		t.Fatalf("reply %v, Len %d, LearnSkipped %d", res.Reply, c.Len(), c.Stats().LearnSkipped)
	}
	if _, ok, send := c.Resolve(ipD, []byte{1}, at(5*time.Second)); ok || !send {
		t.Fatal("Resolve(D) should ask")
	}
	if _, ok := c.Lookup(ipC); ok {
		t.Fatal("C, the least recently used, should have gone")
	}
	if _, ok := c.Lookup(ipB); !ok {
		t.Fatal("B should stay")
	}
	if st := c.Stats(); st.EvictionsInUse != 1 || st.Evictions != 1 {
		t.Fatalf("Evictions %d, EvictionsInUse %d; want 1, 1", st.Evictions, st.EvictionsInUse)
	}
	checkTable(t, c)
}

// TestMaxIncomplete: resolutions beyond MaxIncomplete evict the oldest
// incomplete entry and its queue, never a complete one.
func TestMaxIncomplete(t *testing.T) {
	c := NewCache(Config{MaxIncomplete: 4})
	c.Input(pkt(t, OpRequest, macB, ipB, link.MAC{}, ipA), isLocalA, at(0)) // learned, complete
	for i := 0; i < 100; i++ {
		ip, _ := forged(i)
		c.Resolve(ip, []byte{byte(i)}, at(time.Duration(i)*time.Millisecond))
	}
	checkTable(t, c)
	st := c.Stats()
	if c.Len() != 5 || st.Evictions != 96 || st.EvictionDrops != 96 {
		t.Fatalf("Len %d, Evictions %d, EvictionDrops %d; want 5, 96, 96", c.Len(), st.Evictions, st.EvictionDrops)
	}
	for i := 96; i < 100; i++ {
		ip, _ := forged(i)
		if s, ok := c.Neigh().State(ip); !ok || s != StateIncomplete {
			t.Fatalf("the newest incomplete entry %v is missing", ip)
		}
	}
	if _, ok := c.Lookup(ipB); !ok {
		t.Fatal("the complete entry went")
	}
}
