package arp

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/neigh"
)

// The local host is ipA/macA; peers are ipB/macB, ipC/macC, ipD/macD.
var (
	macC = link.MAC{0x02, 0x00, 0x00, 0x00, 0x00, 0x0c}
	macD = link.MAC{0x02, 0x00, 0x00, 0x00, 0x00, 0x0d}
	ipC  = netip.MustParseAddr("192.168.1.3")
	ipD  = netip.MustParseAddr("192.168.1.4")

	t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// at returns t0 plus d: the tests' manual clock.
func at(d time.Duration) time.Time { return t0.Add(d) }

func isLocalA(ip netip.Addr) bool { return ip == ipA }

// pkt builds a parsed ARP packet.
func pkt(t testing.TB, op uint16, sha link.MAC, spa netip.Addr, tha link.MAC, tpa netip.Addr) Packet {
	t.Helper()
	b := make([]byte, PacketLen)
	PutPacket(b, op, sha, spa, tha, tpa)
	p, err := ParsePacket(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// replyFrom is the reply of peer (mac, ip) to our request.
func replyFrom(t testing.TB, mac link.MAC, ip netip.Addr) Packet {
	return pkt(t, OpReply, mac, ip, macA, ipA)
}

// tick runs c.Tick and returns the addresses it asked requests for.
func tick(c *Cache, now time.Time) []netip.Addr {
	var got []netip.Addr
	c.Tick(now, func(ip netip.Addr) { got = append(got, ip) })
	return got
}

func TestConfigDefaults(t *testing.T) {
	got := NewCache(Config{}).Config()
	if got.BaseReachableTime != 30*time.Second || got.RetransTimer != time.Second || got.MaxMulticastSolicit != 3 ||
		got.QueueLen != 16 || got.MaxEntries != 1024 || got.MaxIncomplete != 128 || got.StaleTime != DefaultStaleTime {
		t.Errorf("defaults = %+v", got)
	}
	got = NewCache(Config{BaseReachableTime: -1, QueueLen: -1, MaxEntries: 7}).Config()
	if got.BaseReachableTime != 30*time.Second || got.QueueLen != 0 || got.MaxEntries != 7 || got.MaxIncomplete != 7 {
		t.Errorf("negative fields = %+v", got)
	}
}

func TestResolveRateLimit(t *testing.T) {
	c := NewCache(Config{})
	steps := []struct {
		name     string
		at       time.Duration
		wantSend bool
	}{
		{name: "first call sends", at: 0, wantSend: true},
		{name: "same instant", at: 0, wantSend: false},
		{name: "within RetryInterval", at: 500 * time.Millisecond, wantSend: false},
		{name: "just before retry", at: time.Second - 1, wantSend: false},
		{name: "retry due", at: time.Second, wantSend: true},
		{name: "after retry", at: 1500 * time.Millisecond, wantSend: false},
		{name: "second retry", at: 2 * time.Second, wantSend: true},
		{name: "MaxRequests reached", at: 3 * time.Second, wantSend: false},
		{name: "still exhausted", at: 10 * time.Second, wantSend: false},
	}
	for _, s := range steps {
		mac, ok, send := c.Resolve(ipB, []byte{1}, at(s.at))
		if ok || mac != (link.MAC{}) || send != s.wantSend {
			t.Errorf("%s: Resolve at %v = %v, %v, %v; want zero, false, %v", s.name, s.at, mac, ok, send, s.wantSend)
		}
	}
	if got := c.Stats().RequestsNeeded; got != 3 {
		t.Errorf("RequestsNeeded = %d, want 3", got)
	}
}

func TestTickRetryAndGiveUp(t *testing.T) {
	c := NewCache(Config{})
	if _, _, send := c.Resolve(ipB, []byte("one"), at(0)); !send {
		t.Fatal("first Resolve: sendRequest false")
	}
	if _, _, send := c.Resolve(ipB, []byte("two"), at(100*time.Millisecond)); send {
		t.Fatal("second Resolve within 1 s asked for a request")
	}
	steps := []struct {
		name         string
		at           time.Duration
		wantRequests []netip.Addr
		wantDeadline time.Duration // -1: zero time
		wantLen      int
	}{
		{name: "before retry", at: 999 * time.Millisecond, wantDeadline: time.Second, wantLen: 1},
		{name: "first retry", at: time.Second, wantRequests: []netip.Addr{ipB}, wantDeadline: 2 * time.Second, wantLen: 1},
		{name: "idle", at: 1500 * time.Millisecond, wantDeadline: 2 * time.Second, wantLen: 1},
		{name: "second retry", at: 2 * time.Second, wantRequests: []netip.Addr{ipB}, wantDeadline: 3 * time.Second, wantLen: 1},
		{name: "give up", at: 3 * time.Second, wantDeadline: -1, wantLen: 0},
	}
	for _, s := range steps {
		got := tick(c, at(s.at))
		if !slices.Equal(got, s.wantRequests) {
			t.Errorf("%s: Tick requested %v, want %v", s.name, got, s.wantRequests)
		}
		want := time.Time{}
		if s.wantDeadline >= 0 {
			want = at(s.wantDeadline)
		}
		if d := c.NextDeadline(); !d.Equal(want) {
			t.Errorf("%s: NextDeadline = %v, want %v", s.name, d, want)
		}
		if c.Len() != s.wantLen {
			t.Errorf("%s: Len = %d, want %d", s.name, c.Len(), s.wantLen)
		}
	}
	st := c.Stats()
	if st.RequestsNeeded != 3 || st.Timeouts != 1 || st.TimeoutDrops != 2 {
		t.Errorf("stats = %+v; want RequestsNeeded 3, Timeouts 1, TimeoutDrops 2", st)
	}
	// A late reply creates nothing, and the next packet starts afresh.
	if res := c.Input(replyFrom(t, macB, ipB), isLocalA, at(3*time.Second)); res.Released != nil {
		t.Errorf("late reply released %q", res.Released)
	}
	if _, ok := c.Lookup(ipB); ok {
		t.Error("late unsolicited reply created an entry")
	}
	if _, _, send := c.Resolve(ipB, nil, at(3*time.Second)); !send {
		t.Error("Resolve after give-up did not start a new resolution")
	}
}

func TestReplyReleasesInOrder(t *testing.T) {
	c := NewCache(Config{})
	p1 := []byte("first")
	c.Resolve(ipB, p1, at(0))
	c.Resolve(ipB, []byte("second"), at(time.Millisecond))
	c.Resolve(ipB, nil, at(2*time.Millisecond)) // holds nothing
	c.Resolve(ipB, []byte{}, at(2*time.Millisecond))
	c.Resolve(ipB, []byte("third"), at(3*time.Millisecond))
	copy(p1, "XXXXX") // the cache holds a copy

	if e := c.Entries(); len(e) != 1 || e[0].State != StateIncomplete || e[0].Queued != 3 || e[0].Probes != 1 {
		t.Errorf("Entries = %+v", e)
	}
	res := c.Input(replyFrom(t, macB, ipB), isLocalA, at(10*time.Millisecond))
	want := [][]byte{[]byte("first"), []byte("second"), []byte("third")}
	if !slices.EqualFunc(res.Released, want, bytes.Equal) {
		t.Errorf("Released = %q, want %q", res.Released, want)
	}
	if res.ReleasedTo != ipB || res.ReleasedMAC != macB || res.Reply || res.Conflict {
		t.Errorf("result = %+v", res)
	}
	if mac, ok := c.Lookup(ipB); !ok || mac != macB {
		t.Errorf("Lookup = %v, %v; want %v, true", mac, ok, macB)
	}
	if mac, ok, send := c.Resolve(ipB, []byte("fourth"), at(11*time.Millisecond)); !ok || mac != macB || send {
		t.Errorf("Resolve after reply = %v, %v, %v", mac, ok, send)
	}
	st := c.Stats()
	if st.Resolved != 1 || st.Released != 3 || st.UnsolicitedIgnored != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestQueueOverflowDropsOldest(t *testing.T) {
	c := NewCache(Config{QueueLen: 3})
	for i := range 5 {
		c.Resolve(ipB, []byte{byte(i)}, at(time.Duration(i)*time.Millisecond))
	}
	res := c.Input(replyFrom(t, macB, ipB), isLocalA, at(time.Second/2))
	want := [][]byte{{2}, {3}, {4}}
	if !slices.EqualFunc(res.Released, want, bytes.Equal) {
		t.Errorf("Released = %v, want %v", res.Released, want)
	}
	if got := c.Stats().QueueDrops; got != 2 {
		t.Errorf("QueueDrops = %d, want 2", got)
	}

	c = NewCache(Config{QueueLen: -1})
	c.Resolve(ipB, []byte{1}, at(0))
	if res := c.Input(replyFrom(t, macB, ipB), isLocalA, at(0)); res.Released != nil {
		t.Errorf("QueueLen -1 held %v", res.Released)
	}
}

// TestNUD follows an ARP entry through NUD: learned from a request
// (STALE), used (DELAY), probed by unicast (PROBE), confirmed by the
// reply (REACHABLE), STALE again after ReachableTime, confirmed by the
// upper layer, and deleted when its probes go unanswered.
func TestNUD(t *testing.T) {
	c := NewCache(Config{Rand: func(n int64) int64 { return n / 2 }}) // ReachableTime 30 s
	c.Input(pkt(t, OpRequest, macB, ipB, link.MAC{}, ipA), isLocalA, at(0))
	state := func(want State) {
		t.Helper()
		if s, ok := c.Neigh().State(ipB); !ok || s != want {
			t.Fatalf("state %v (present %v), want %v", s, ok, want)
		}
	}
	state(StateStale)
	if mac, ok, send := c.Resolve(ipB, []byte{1}, at(time.Second)); !ok || send || mac != macB {
		t.Fatalf("Resolve of a STALE entry = %v, %v, %v; want its MAC and no request", mac, ok, send)
	}
	state(StateDelay)
	var got []neigh.Solicit
	solicit := func(s neigh.Solicit) { got = append(got, s) }
	c.TickSolicit(at(6*time.Second-1), solicit, nil)
	state(StateDelay)
	c.TickSolicit(at(6*time.Second), solicit, nil)
	state(StateProbe)
	if want := []neigh.Solicit{{Target: ipB, Unicast: true, MAC: macB}}; !slices.Equal(got, want) {
		t.Fatalf("DELAY timeout asked %+v, want %+v", got, want)
	}
	c.Input(replyFrom(t, macB, ipB), isLocalA, at(6*time.Second+time.Millisecond))
	state(StateReachable)
	if d := c.NextDeadline(); !d.Equal(at(36*time.Second + time.Millisecond)) {
		t.Fatalf("REACHABLE until %v", d)
	}
	tick(c, at(40*time.Second))
	state(StateStale)
	c.Resolve(ipB, nil, at(41*time.Second))
	c.Confirm(ipB, at(42*time.Second)) // a TCP ACK: no probe needed
	state(StateReachable)
	if r := tick(c, at(47*time.Second)); r != nil {
		t.Fatalf("probe after confirmation: %v", r)
	}
	// Unanswered: STALE, DELAY, three probes, gone.
	tick(c, at(72*time.Second))
	state(StateStale)
	c.Resolve(ipB, nil, at(73*time.Second))
	for i := range 4 {
		tick(c, at(78*time.Second+time.Duration(i)*time.Second))
	}
	if c.Len() != 0 || c.Stats().Unreachable != 1 || c.Stats().RequestsNeeded != 4 {
		t.Fatalf("Len %d, stats %+v", c.Len(), c.Stats())
	}
}

// TestStaleExpiry: an entry left STALE and unused is deleted after
// StaleTime.
func TestStaleExpiry(t *testing.T) {
	c := NewCache(Config{})
	c.Input(pkt(t, OpRequest, macB, ipB, link.MAC{}, ipA), isLocalA, at(0))
	tick(c, at(DefaultStaleTime-1))
	if c.Len() != 1 {
		t.Fatal("deleted before StaleTime")
	}
	tick(c, at(DefaultStaleTime))
	if c.Len() != 0 || c.Stats().Expired != 1 || !c.NextDeadline().IsZero() {
		t.Errorf("Len %d, Expired %d, NextDeadline %v", c.Len(), c.Stats().Expired, c.NextDeadline())
	}
}

// TestInput follows RFC 826 Packet Reception with the restrictions in
// Cache.Input's doc, from a table holding at most one entry for the sender.
func TestInput(t *testing.T) {
	oldMAC := link.MAC{0x02, 0, 0, 0, 0, 0x99}
	tests := []struct {
		name string
		// prior state of ipB's entry: 0 none, StateIncomplete (one packet
		// queued), StateStale (MAC oldMAC, learned from a request).
		prior                   State
		op                      uint16
		sha                     link.MAC
		spa, tpa                netip.Addr
		wantReply, wantConflict bool
		wantReleased            int
		wantState               State // of the sender's entry after; 0: none
		wantMAC                 link.MAC
		wantStat                func(Stats) uint64
		wantStatName            string
	}{
		{
			name: "request to us creates a STALE entry and asks a reply",
			op:   OpRequest, sha: macB, spa: ipB, tpa: ipA,
			wantReply: true, wantState: StateStale, wantMAC: macB,
			wantStat: func(s Stats) uint64 { return s.Learned }, wantStatName: "Learned",
		},
		{
			name:  "request to us updates an existing entry",
			prior: StateStale, op: OpRequest, sha: macB, spa: ipB, tpa: ipA,
			wantReply: true, wantState: StateStale, wantMAC: macB,
			wantStat: func(s Stats) uint64 { return s.Changed }, wantStatName: "Changed",
		},
		{
			name: "request not for us creates nothing",
			op:   OpRequest, sha: macB, spa: ipB, tpa: ipC,
		},
		{
			name:  "request not for us refreshes an existing entry",
			prior: StateStale, op: OpRequest, sha: oldMAC, spa: ipB, tpa: ipC,
			wantState: StateStale, wantMAC: oldMAC,
			wantStat: func(s Stats) uint64 { return s.Refreshed }, wantStatName: "Refreshed",
		},
		{
			name: "unsolicited reply to us creates nothing",
			op:   OpReply, sha: macB, spa: ipB, tpa: ipA,
			wantStat: func(s Stats) uint64 { return s.UnsolicitedIgnored }, wantStatName: "UnsolicitedIgnored",
		},
		{
			name: "unsolicited reply not for us creates nothing",
			op:   OpReply, sha: macB, spa: ipB, tpa: ipC,
			wantStat: func(s Stats) uint64 { return s.UnsolicitedIgnored }, wantStatName: "UnsolicitedIgnored",
		},
		{
			name:  "reply to us confirms an existing entry",
			prior: StateStale, op: OpReply, sha: oldMAC, spa: ipB, tpa: ipA,
			wantState: StateReachable, wantMAC: oldMAC,
			wantStat: func(s Stats) uint64 { return s.Confirmed }, wantStatName: "Confirmed",
		},
		{
			name:  "reply to us with a new MAC overrides and confirms",
			prior: StateStale, op: OpReply, sha: macB, spa: ipB, tpa: ipA,
			wantState: StateReachable, wantMAC: macB,
			wantStat: func(s Stats) uint64 { return s.Changed }, wantStatName: "Changed",
		},
		{
			name:  "solicited reply completes the entry",
			prior: StateIncomplete, op: OpReply, sha: macB, spa: ipB, tpa: ipA,
			wantReleased: 1, wantState: StateReachable, wantMAC: macB,
			wantStat: func(s Stats) uint64 { return s.Resolved }, wantStatName: "Resolved",
		},
		{
			name:  "request from the awaited host completes the entry, STALE",
			prior: StateIncomplete, op: OpRequest, sha: macB, spa: ipB, tpa: ipA,
			wantReply: true, wantReleased: 1, wantState: StateStale, wantMAC: macB,
			wantStat: func(s Stats) uint64 { return s.Resolved }, wantStatName: "Resolved",
		},
		{
			name: "gratuitous ARP creates nothing",
			op:   OpRequest, sha: macB, spa: ipB, tpa: ipB,
		},
		{
			name:  "gratuitous ARP updates an existing entry",
			prior: StateStale, op: OpRequest, sha: macB, spa: ipB, tpa: ipB,
			wantState: StateStale, wantMAC: macB,
			wantStat: func(s Stats) uint64 { return s.Changed }, wantStatName: "Changed",
		},
		{
			name:  "gratuitous reply updates an existing entry without confirming it",
			prior: StateStale, op: OpReply, sha: macB, spa: ipB, tpa: ipB,
			wantState: StateStale, wantMAC: macB,
			wantStat: func(s Stats) uint64 { return s.Changed }, wantStatName: "Changed",
		},
		{
			name: "probe for us is answered, enters nothing",
			op:   OpRequest, sha: macB, spa: netip.IPv4Unspecified(), tpa: ipA,
			wantReply: true,
			wantStat:  func(s Stats) uint64 { return s.Probes }, wantStatName: "Probes",
		},
		{
			name: "probe for another address is ignored",
			op:   OpRequest, sha: macB, spa: netip.IPv4Unspecified(), tpa: ipC,
			wantStat: func(s Stats) uint64 { return s.Probes }, wantStatName: "Probes",
		},
		{
			name:  "broadcast sender MAC is ignored",
			prior: StateStale, op: OpRequest, sha: link.Broadcast, spa: ipB, tpa: ipA,
			wantState: StateStale, wantMAC: oldMAC,
			wantStat: func(s Stats) uint64 { return s.InvalidSender }, wantStatName: "InvalidSender",
		},
		{
			name: "multicast sender MAC is ignored",
			op:   OpRequest, sha: link.MAC{0x01, 0x00, 0x5e, 0, 0, 1}, spa: ipB, tpa: ipA,
			wantStat: func(s Stats) uint64 { return s.InvalidSender }, wantStatName: "InvalidSender",
		},
		{
			name: "zero sender MAC is ignored",
			op:   OpRequest, sha: link.MAC{}, spa: ipB, tpa: ipA,
			wantStat: func(s Stats) uint64 { return s.InvalidSender }, wantStatName: "InvalidSender",
		},
		{
			name: "multicast sender IP is ignored",
			op:   OpRequest, sha: macB, spa: netip.MustParseAddr("224.0.0.1"), tpa: ipA,
			wantStat: func(s Stats) uint64 { return s.InvalidSender }, wantStatName: "InvalidSender",
		},
		{
			name: "broadcast sender IP is ignored",
			op:   OpRequest, sha: macB, spa: netip.MustParseAddr("255.255.255.255"), tpa: ipA,
			wantStat: func(s Stats) uint64 { return s.InvalidSender }, wantStatName: "InvalidSender",
		},
		{
			name: "sender claims our address",
			op:   OpRequest, sha: macB, spa: ipA, tpa: ipA,
			wantConflict: true,
			wantStat:     func(s Stats) uint64 { return s.Conflicts }, wantStatName: "Conflicts",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCache(Config{})
			switch tt.prior {
			case StateIncomplete:
				c.Resolve(ipB, []byte("queued"), at(0))
			case StateStale:
				c.Input(pkt(t, OpRequest, oldMAC, ipB, link.MAC{}, ipA), isLocalA, at(0))
			}
			before := c.Stats()
			now := at(500 * time.Millisecond)
			res := c.Input(pkt(t, tt.op, tt.sha, tt.spa, link.MAC{}, tt.tpa), isLocalA, now)
			if res.Reply != tt.wantReply || res.Conflict != tt.wantConflict || len(res.Released) != tt.wantReleased {
				t.Errorf("Input = %+v; want Reply %v, Conflict %v, %d released", res, tt.wantReply, tt.wantConflict, tt.wantReleased)
			}
			if tt.wantReleased > 0 && (res.ReleasedTo != ipB || res.ReleasedMAC != tt.wantMAC) {
				t.Errorf("released to %v at %v", res.ReleasedTo, res.ReleasedMAC)
			}
			entries := c.Entries()
			if tt.wantState == 0 {
				if len(entries) != 0 {
					t.Errorf("Entries = %+v, want none", entries)
				}
			} else if len(entries) != 1 || entries[0].IP != ipB || entries[0].State != tt.wantState || entries[0].MAC != tt.wantMAC {
				t.Errorf("Entries = %+v, want %v %v %v", entries, ipB, tt.wantState, tt.wantMAC)
			}
			if tt.wantStat != nil {
				if d := tt.wantStat(c.Stats()) - tt.wantStat(before); d != 1 {
					t.Errorf("%s grew by %d, want 1", tt.wantStatName, d)
				}
			}
			if got := c.Stats().Received - before.Received; got != 1 {
				t.Errorf("Received grew by %d, want 1", got)
			}
		})
	}
}

func TestMaxEntriesEviction(t *testing.T) {
	t.Run("oldest goes", func(t *testing.T) {
		c := NewCache(Config{MaxEntries: 2})
		c.Input(pkt(t, OpRequest, macB, ipB, link.MAC{}, ipA), isLocalA, at(0))
		c.Input(pkt(t, OpRequest, macC, ipC, link.MAC{}, ipA), isLocalA, at(time.Second))
		// B's reply confirms it: C is now the least recently confirmed.
		// (A request would not: it shows B sends, not that B hears us.)
		c.Input(replyFrom(t, macB, ipB), isLocalA, at(2*time.Second))
		c.Input(pkt(t, OpRequest, macD, ipD, link.MAC{}, ipA), isLocalA, at(3*time.Second))
		var ips []netip.Addr
		for _, e := range c.Entries() {
			ips = append(ips, e.IP)
		}
		if want := []netip.Addr{ipB, ipD}; !slices.Equal(ips, want) {
			t.Errorf("entries %v, want %v", ips, want)
		}
		if got := c.Stats().Evictions; got != 1 {
			t.Errorf("Evictions = %d, want 1", got)
		}
	})
	t.Run("an idle entry goes before an older incomplete entry", func(t *testing.T) {
		c := NewCache(Config{MaxEntries: 2, MaxMulticastSolicit: 100})
		c.Resolve(ipC, []byte{1}, at(0))
		c.Input(pkt(t, OpRequest, macB, ipB, link.MAC{}, ipA), isLocalA, at(time.Second))
		c.Resolve(ipD, nil, at(6*time.Second)) // B, learned, was never used
		if _, ok := c.Lookup(ipB); ok || c.Len() != 2 {
			t.Errorf("B still present or Len %d != 2: %+v", c.Len(), c.Entries())
		}
		if e := c.Entries(); e[0].IP != ipC || e[1].IP != ipD {
			t.Errorf("Entries = %+v, want C and D", e)
		}
	})
	t.Run("incomplete entries count and lose their queue", func(t *testing.T) {
		c := NewCache(Config{MaxEntries: 2})
		c.Resolve(ipB, []byte{1}, at(0))
		c.Resolve(ipB, []byte{2}, at(0))
		c.Resolve(ipC, []byte{3}, at(time.Millisecond))
		_, _, send := c.Resolve(ipD, []byte{4}, at(2*time.Millisecond))
		if !send || c.Len() != 2 {
			t.Fatalf("send %v, Len %d", send, c.Len())
		}
		st := c.Stats()
		if st.Evictions != 1 || st.EvictionDrops != 2 {
			t.Errorf("Evictions %d, EvictionDrops %d; want 1, 2", st.Evictions, st.EvictionDrops)
		}
		if res := c.Input(replyFrom(t, macB, ipB), isLocalA, at(3*time.Millisecond)); res.Released != nil {
			t.Errorf("evicted entry released %v", res.Released)
		}
	})
}

func TestNextDeadline(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, c *Cache)
		want  time.Duration // -1: zero time
	}{
		{name: "empty", setup: func(*testing.T, *Cache) {}, want: -1},
		{
			name:  "incomplete: next retry",
			setup: func(_ *testing.T, c *Cache) { c.Resolve(ipB, nil, at(2*time.Second)) },
			want:  3 * time.Second,
		},
		{
			name: "learned: STALE expiry",
			setup: func(t *testing.T, c *Cache) {
				c.Input(pkt(t, OpRequest, macB, ipB, link.MAC{}, ipA), isLocalA, at(time.Second))
			},
			want: 61 * time.Second,
		},
		{
			name: "earliest of both",
			setup: func(t *testing.T, c *Cache) {
				c.Input(pkt(t, OpRequest, macB, ipB, link.MAC{}, ipA), isLocalA, at(0))
				c.Resolve(ipC, nil, at(30*time.Second))
				c.Resolve(ipD, nil, at(20*time.Second))
			},
			want: 21 * time.Second,
		},
		{
			name: "after a Resolve retry",
			setup: func(_ *testing.T, c *Cache) {
				c.Resolve(ipB, nil, at(0))
				c.Resolve(ipB, nil, at(1500*time.Millisecond))
			},
			want: 2500 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCache(Config{})
			tt.setup(t, c)
			want := time.Time{}
			if tt.want >= 0 {
				want = at(tt.want)
			}
			if got := c.NextDeadline(); !got.Equal(want) {
				t.Errorf("NextDeadline = %v, want %v", got, want)
			}
		})
	}
}

func TestTickOrderAndReentry(t *testing.T) {
	c := NewCache(Config{})
	for _, ip := range []netip.Addr{ipD, ipB, ipC} {
		c.Resolve(ip, nil, at(0))
	}
	var got []netip.Addr
	c.Tick(at(time.Second), func(ip netip.Addr) {
		got = append(got, ip)
		c.Resolve(ip, []byte{1}, at(time.Second)) // re-entry is allowed
	})
	if want := []netip.Addr{ipB, ipC, ipD}; !slices.Equal(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
	c.Tick(at(2*time.Second), nil) // nil callback only counts
	if got := c.Stats().RequestsNeeded; got != 9 {
		t.Errorf("RequestsNeeded = %d, want 9", got)
	}
}

func TestEntries(t *testing.T) {
	c := NewCache(Config{})
	c.Resolve(ipC, []byte{1}, at(0))
	c.Input(pkt(t, OpRequest, macB, ipB, link.MAC{}, ipA), isLocalA, at(time.Second))
	want := []Entry{
		{IP: ipB, MAC: macB, State: StateStale, Deadline: at(61 * time.Second)},
		{IP: ipC, State: StateIncomplete, Deadline: at(time.Second), Probes: 1, Queued: 1},
	}
	if got := c.Entries(); !slices.Equal(got, want) {
		t.Errorf("Entries =\n%+v\nwant\n%+v", got, want)
	}
	var lines []string
	for _, e := range c.Entries() {
		lines = append(lines, fmt.Sprintf("%v %v %v", e.IP, e.MAC, e.State))
	}
	if want := []string{"192.168.1.1 02:00:00:00:00:0b STALE", "192.168.1.3 00:00:00:00:00:00 INCOMPLETE"}; !slices.Equal(lines, want) {
		t.Errorf("lines %q, want %q", lines, want)
	}
}

func TestLookupNoAlloc(t *testing.T) {
	c := NewCache(Config{})
	c.Input(pkt(t, OpRequest, macB, ipB, link.MAC{}, ipA), isLocalA, at(0))
	now := at(time.Second)
	n := testing.AllocsPerRun(1000, func() {
		if _, ok := c.Lookup(ipB); !ok {
			t.Fatal("miss")
		}
		if _, ok := c.Lookup(ipC); ok {
			t.Fatal("hit")
		}
		if _, ok, _ := c.Resolve(ipB, []byte{1}, now); !ok {
			t.Fatal("Resolve miss")
		}
	})
	if n != 0 {
		t.Errorf("Lookup/Resolve hit allocate %v times per run, want 0", n)
	}
	p := pkt(t, OpRequest, macB, ipB, link.MAC{}, ipC)
	n = testing.AllocsPerRun(1000, func() { c.Input(p, isLocalA, now) })
	if n != 0 {
		t.Errorf("Input refreshing an entry allocates %v times per run, want 0", n)
	}
}

func BenchmarkLookup(b *testing.B) {
	c := NewCache(Config{})
	for i := range 256 {
		ip := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
		c.Resolve(ip, nil, t0)
		c.Input(pkt(b, OpReply, macB, ip, macA, ipA), isLocalA, t0)
	}
	ip := netip.AddrFrom4([4]byte{10, 0, 0, 77})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Lookup(ip); !ok {
			b.Fatal("miss")
		}
	}
}

// TestGeneration: the generation moves when a MAC address handed out may
// be wrong or needs checking (changed, an entry in use gone STALE, expired,
// evicted), and not when entries are created, resolved or refreshed with
// the same address.
func TestGeneration(t *testing.T) {
	c := NewCache(Config{MaxEntries: 2})
	g := c.Generation()
	same := func(what string) {
		t.Helper()
		if c.Generation() != g {
			t.Errorf("%s moved the generation", what)
		}
	}
	moved := func(what string) {
		t.Helper()
		if c.Generation() == g {
			t.Errorf("%s left the generation", what)
		}
		g = c.Generation()
	}
	c.Resolve(ipB, nil, at(0))
	same("a new incomplete entry")
	c.Input(replyFrom(t, macB, ipB), isLocalA, at(0))
	same("its resolution")
	c.Input(replyFrom(t, macB, ipB), isLocalA, at(time.Second))
	same("a refresh with the same MAC")
	c.Input(replyFrom(t, macC, ipB), isLocalA, at(2*time.Second))
	moved("a changed MAC")
	if m, ok, _ := c.Resolve(ipB, nil, at(3*time.Second)); !ok || m != macC {
		t.Fatalf("Resolve = %v, %v", m, ok)
	}
	rt := c.Neigh().ReachableTime()
	tick(c, at(2*time.Second+rt))
	moved("an entry in use going STALE")
	tick(c, at(2*time.Second+rt+DefaultStaleTime))
	moved("expiry")
	c.Input(pkt(t, OpRequest, macC, ipC, link.MAC{}, ipA), isLocalA, at(200*time.Second))
	c.Input(pkt(t, OpRequest, macD, ipD, link.MAC{}, ipA), isLocalA, at(201*time.Second))
	same("learning from requests")
	c.Resolve(ipB, nil, at(202*time.Second)) // full: evicts the idle ipC
	moved("an eviction")
}
