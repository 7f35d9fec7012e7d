package neigh

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ustack/ustack/link"
)

var (
	ip4 = netip.MustParseAddr("192.168.1.1")
	ip6 = netip.MustParseAddr("fe80::1")
	ipC = netip.MustParseAddr("192.168.1.3")
	ipD = netip.MustParseAddr("192.168.1.4")

	macOld = link.MAC{0x02, 0, 0, 0, 0, 0x0a}
	macNew = link.MAC{0x02, 0, 0, 0, 0, 0x0b}

	t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// at returns t0 plus d: the tests' virtual clock.
func at(d time.Duration) time.Time { return t0.Add(d) }

// mid is the random source that draws ReachableTime = BaseReachableTime.
func mid(n int64) int64 { return n / 2 }

// newCache returns a cache with ReachableTime exactly 30 s.
func newCache(cfg Config) *Cache {
	cfg.Rand = mid
	return New(cfg)
}

// tick runs c.Tick and returns the solicitations it asked for.
func tick(c *Cache, now time.Time) []Solicit {
	var got []Solicit
	c.Tick(now, func(s Solicit) { got = append(got, s) }, nil)
	return got
}

// inState puts ip's entry in state s at t0, with the address macOld (none
// for INCOMPLETE, which holds one packet), in use except when STALE.
func inState(t *testing.T, c *Cache, ip netip.Addr, s State) {
	t.Helper()
	switch s {
	case StateIncomplete:
		c.Resolve(ip, []byte("queued"), t0)
	case StateReachable:
		c.Resolve(ip, nil, t0)
		c.Advertisement(ip, macOld, Flags{Solicited: true}, t0)
	case StateStale:
		c.Learn(ip, macOld, true, t0)
	case StateDelay:
		c.Learn(ip, macOld, true, t0)
		c.Resolve(ip, nil, t0)
	case StateProbe:
		c.Learn(ip, macOld, true, at(-DefaultDelayFirstProbeTime))
		c.Resolve(ip, nil, at(-DefaultDelayFirstProbeTime))
		if got := tick(c, t0); len(got) != 1 || !got[0].Unicast {
			t.Fatalf("DELAY timeout sent %+v, want one unicast probe", got)
		}
	}
	if got, ok := c.State(ip); !ok || got != s {
		t.Fatalf("set up %v, got %v", s, got)
	}
}

// TestTransitions walks RFC 4861 Appendix C: every (state, event) row, for
// an IPv4 (ARP) and an IPv6 (NDP) address alike.
func TestTransitions(t *testing.T) {
	type event struct {
		name string
		do   func(c *Cache, ip netip.Addr, now time.Time) Result
	}
	na := func(mac link.MAC, f Flags) func(*Cache, netip.Addr, time.Time) Result {
		return func(c *Cache, ip netip.Addr, now time.Time) Result { return c.Advertisement(ip, mac, f, now) }
	}
	learn := func(mac link.MAC) func(*Cache, netip.Addr, time.Time) Result {
		return func(c *Cache, ip netip.Addr, now time.Time) Result { return c.Learn(ip, mac, true, now) }
	}
	confirm := func(c *Cache, ip netip.Addr, now time.Time) Result { c.Confirm(ip, now); return Result{} }
	send := func(c *Cache, ip netip.Addr, now time.Time) Result { c.Resolve(ip, nil, now); return Result{} }

	var (
		naS0O0Same = event{"NA S=0 O=0 same", na(macOld, Flags{})}
		naS0O0Diff = event{"NA S=0 O=0 different", na(macNew, Flags{})}
		naS0O1Same = event{"NA S=0 O=1 same", na(macOld, Flags{Override: true})}
		naS0O1Diff = event{"NA S=0 O=1 different", na(macNew, Flags{Override: true})}
		naS1O0Same = event{"NA S=1 O=0 same", na(macOld, Flags{Solicited: true})}
		naS1O0Diff = event{"NA S=1 O=0 different", na(macNew, Flags{Solicited: true})}
		naS1O1Diff = event{"NA S=1 O=1 different", na(macNew, Flags{Solicited: true, Override: true})}
		naS1NoLL   = event{"NA S=1 no link-layer address", na(link.MAC{}, Flags{Solicited: true})}
		naS0NoLL   = event{"NA S=0 no link-layer address", na(link.MAC{}, Flags{})}
		nsSame     = event{"NS/ARP request same address", learn(macOld)}
		nsDiff     = event{"NS/ARP request different address", learn(macNew)}
		upper      = event{"upper-layer confirmation", confirm}
		sending    = event{"packet to send", send}
	)
	tests := []struct {
		from      State
		ev        event
		want      State
		wantMAC   link.MAC
		released  int
		changed   bool
		genMoves  bool
		statDelta func(Stats) uint64
	}{
		// INCOMPLETE
		{from: StateIncomplete, ev: naS0O0Diff, want: StateStale, wantMAC: macNew, released: 1},
		{from: StateIncomplete, ev: naS0O1Diff, want: StateStale, wantMAC: macNew, released: 1},
		{from: StateIncomplete, ev: naS1O0Diff, want: StateReachable, wantMAC: macNew, released: 1},
		{from: StateIncomplete, ev: naS1O1Diff, want: StateReachable, wantMAC: macNew, released: 1},
		{from: StateIncomplete, ev: naS1NoLL, want: StateIncomplete, statDelta: func(s Stats) uint64 { return s.Ignored }},
		{from: StateIncomplete, ev: nsDiff, want: StateStale, wantMAC: macNew, released: 1},
		{from: StateIncomplete, ev: upper, want: StateIncomplete},
		{from: StateIncomplete, ev: sending, want: StateIncomplete},
		// REACHABLE
		{from: StateReachable, ev: naS1O0Same, want: StateReachable, wantMAC: macOld},
		{from: StateReachable, ev: naS1O0Diff, want: StateStale, wantMAC: macOld, genMoves: true},
		{from: StateReachable, ev: naS0O0Diff, want: StateStale, wantMAC: macOld, genMoves: true},
		{from: StateReachable, ev: naS1O1Diff, want: StateReachable, wantMAC: macNew, changed: true, genMoves: true},
		{from: StateReachable, ev: naS0O0Same, want: StateReachable, wantMAC: macOld},
		{from: StateReachable, ev: naS0O1Same, want: StateReachable, wantMAC: macOld},
		{from: StateReachable, ev: naS0O1Diff, want: StateStale, wantMAC: macNew, changed: true, genMoves: true},
		{from: StateReachable, ev: naS0NoLL, want: StateReachable, wantMAC: macOld},
		{from: StateReachable, ev: nsSame, want: StateReachable, wantMAC: macOld},
		{from: StateReachable, ev: nsDiff, want: StateStale, wantMAC: macNew, changed: true, genMoves: true},
		{from: StateReachable, ev: upper, want: StateReachable, wantMAC: macOld},
		{from: StateReachable, ev: sending, want: StateReachable, wantMAC: macOld},
	}
	// STALE, DELAY and PROBE share their rows but for a packet to send.
	for _, s := range []State{StateStale, StateDelay, StateProbe} {
		confirmed := func(st Stats) uint64 { return st.Confirmed }
		tests = append(tests, []struct {
			from      State
			ev        event
			want      State
			wantMAC   link.MAC
			released  int
			changed   bool
			genMoves  bool
			statDelta func(Stats) uint64
		}{
			{from: s, ev: naS1O0Same, want: StateReachable, wantMAC: macOld, statDelta: confirmed},
			{from: s, ev: naS1O0Diff, want: s, wantMAC: macOld, statDelta: func(st Stats) uint64 { return st.Ignored }},
			{from: s, ev: naS0O0Diff, want: s, wantMAC: macOld, statDelta: func(st Stats) uint64 { return st.Ignored }},
			{from: s, ev: naS1O1Diff, want: StateReachable, wantMAC: macNew, changed: true, genMoves: true, statDelta: confirmed},
			{from: s, ev: naS0O0Same, want: s, wantMAC: macOld},
			{from: s, ev: naS0O1Same, want: s, wantMAC: macOld},
			{from: s, ev: naS0O1Diff, want: StateStale, wantMAC: macNew, changed: true, genMoves: true},
			{from: s, ev: naS1NoLL, want: StateReachable, wantMAC: macOld, statDelta: confirmed},
			{from: s, ev: naS0NoLL, want: s, wantMAC: macOld},
			{from: s, ev: nsSame, want: s, wantMAC: macOld},
			{from: s, ev: nsDiff, want: StateStale, wantMAC: macNew, changed: true, genMoves: true},
			{from: s, ev: upper, want: StateReachable, wantMAC: macOld, statDelta: confirmed},
		}...)
	}
	tests = append(tests, []struct {
		from      State
		ev        event
		want      State
		wantMAC   link.MAC
		released  int
		changed   bool
		genMoves  bool
		statDelta func(Stats) uint64
	}{
		{from: StateStale, ev: sending, want: StateDelay, wantMAC: macOld},
		{from: StateDelay, ev: sending, want: StateDelay, wantMAC: macOld},
		{from: StateProbe, ev: sending, want: StateProbe, wantMAC: macOld},
	}...)
	for _, ip := range []netip.Addr{ip4, ip6} {
		for _, tt := range tests {
			t.Run(ip.String()+"/"+tt.from.String()+"/"+tt.ev.name, func(t *testing.T) {
				c := newCache(Config{})
				inState(t, c, ip, tt.from)
				before, gen := c.Stats(), c.Generation()
				now := at(100 * time.Millisecond)
				res := tt.ev.do(c, ip, now)
				got, ok := c.State(ip)
				if !ok || got != tt.want {
					t.Fatalf("state %v (present %v), want %v", got, ok, tt.want)
				}
				if mac, _ := c.Lookup(ip); mac != tt.wantMAC {
					t.Errorf("MAC %v, want %v", mac, tt.wantMAC)
				}
				if len(res.Released) != tt.released || res.Changed != tt.changed {
					t.Errorf("result %+v, want %d released, changed %v", res, tt.released, tt.changed)
				}
				if tt.released > 0 && (res.ReleasedMAC != tt.wantMAC || string(res.Released[0]) != "queued") {
					t.Errorf("released %q to %v", res.Released, res.ReleasedMAC)
				}
				if moved := c.Generation() != gen; moved != tt.genMoves {
					t.Errorf("generation moved %v, want %v", moved, tt.genMoves)
				}
				if tt.statDelta != nil && tt.statDelta(c.Stats())-tt.statDelta(before) != 1 {
					t.Errorf("counter grew by %d, want 1", tt.statDelta(c.Stats())-tt.statDelta(before))
				}
				// The state's timer is where the state says.
				e := c.Entries()[0]
				var want time.Time
				switch {
				case got == StateIncomplete:
					return // its retransmission timer runs on (TestTimers)
				case got == tt.from && tt.ev.name != upper.name && !(got == StateReachable && tt.ev.name == naS1O0Same.name):
					return // unchanged: the timer too (checked by TestTimers)
				case got == StateReachable:
					want = now.Add(30 * time.Second)
				case got == StateStale:
					want = now.Add(DefaultStaleTime)
				case got == StateDelay:
					want = now.Add(DefaultDelayFirstProbeTime)
				}
				if !e.Deadline.Equal(want) {
					t.Errorf("deadline %v, want %v", e.Deadline, want)
				}
			})
		}
	}
}

// TestNoEntryEvents: an advertisement for an unknown address creates
// nothing (RFC 4861 §7.2.5), nor does a confirmation; a solicitation does
// when create is set (§7.2.3), as STALE.
func TestNoEntryEvents(t *testing.T) {
	for _, f := range []Flags{{}, {Solicited: true}, {Override: true}, {Solicited: true, Override: true, Router: true}} {
		c := newCache(Config{})
		c.Advertisement(ip6, macNew, f, t0)
		if c.Len() != 0 || c.Stats().UnsolicitedIgnored != 1 {
			t.Errorf("NA %+v: Len %d, Unsolicited %d", f, c.Len(), c.Stats().UnsolicitedIgnored)
		}
	}
	c := newCache(Config{})
	if c.Confirm(ip4, t0) || c.Len() != 0 {
		t.Error("Confirm created an entry")
	}
	if res := c.Learn(ip4, macNew, false, t0); res.Created || c.Len() != 0 {
		t.Error("Learn without create created an entry")
	}
	if res := c.Learn(ip4, link.MAC{}, true, t0); res.Created || c.Len() != 0 {
		t.Error("Learn with no address created an entry")
	}
	gen := c.Generation()
	if res := c.Learn(ip4, macNew, true, t0); !res.Created {
		t.Error("Learn did not create")
	}
	if s, _ := c.State(ip4); s != StateStale || c.Generation() != gen || c.Stats().Learned != 1 {
		t.Errorf("learned entry %v, generation moved %v", s, c.Generation() != gen)
	}
}

// TestTimers follows each timer of Appendix C in virtual time.
func TestTimers(t *testing.T) {
	t.Run("INCOMPLETE retransmits then gives up", func(t *testing.T) {
		c := newCache(Config{})
		if _, ok, sol := c.Resolve(ip6, []byte{1}, t0); ok || !sol {
			t.Fatal("first Resolve did not solicit")
		}
		c.Resolve(ip6, []byte{2}, at(time.Millisecond))
		for i := 1; i < DefaultMaxMulticastSolicit; i++ {
			if got := tick(c, at(time.Duration(i)*time.Second-1)); got != nil {
				t.Fatalf("early Tick solicited %+v", got)
			}
			got := tick(c, at(time.Duration(i)*time.Second))
			if want := []Solicit{{Target: ip6}}; !slices.Equal(got, want) {
				t.Fatalf("retransmission %d: %+v, want %+v", i, got, want)
			}
			if d := c.NextDeadline(); !d.Equal(at(time.Duration(i+1) * time.Second)) {
				t.Fatalf("NextDeadline %v", d)
			}
		}
		var fails []Failure
		c.Tick(at(3*time.Second), nil, func(f Failure) { fails = append(fails, f) })
		if len(fails) != 1 || fails[0].Target != ip6 || !slices.EqualFunc(fails[0].Queued, [][]byte{{1}, {2}}, bytes.Equal) {
			t.Fatalf("failures %+v, want ip6's two packets", fails)
		}
		st := c.Stats()
		if c.Len() != 0 || st.Timeouts != 1 || st.TimeoutDrops != 2 || st.Solicits != 3 {
			t.Fatalf("Len %d, stats %+v", c.Len(), st)
		}
		if !c.NextDeadline().IsZero() {
			t.Fatal("NextDeadline of an empty cache is not zero")
		}
	})
	t.Run("Resolve retransmits at most once per RetransTimer", func(t *testing.T) {
		c := newCache(Config{})
		for _, s := range []struct {
			at   time.Duration
			want bool
		}{{0, true}, {0, false}, {999 * time.Millisecond, false}, {time.Second, true}, {1500 * time.Millisecond, false}, {2 * time.Second, true}, {3 * time.Second, false}} {
			if _, _, sol := c.Resolve(ip4, nil, at(s.at)); sol != s.want {
				t.Errorf("Resolve at %v solicit %v, want %v", s.at, sol, s.want)
			}
		}
	})
	t.Run("REACHABLE to STALE to deletion", func(t *testing.T) {
		c := newCache(Config{})
		inState(t, c, ip4, StateReachable)
		gen := c.Generation()
		c.Confirm(ip4, at(10*time.Second)) // restarts ReachableTime
		tick(c, at(40*time.Second-1))
		if s, _ := c.State(ip4); s != StateReachable {
			t.Fatalf("before ReachableTime: %v", s)
		}
		tick(c, at(40*time.Second))
		if s, _ := c.State(ip4); s != StateStale || c.Generation() == gen {
			t.Fatalf("after ReachableTime: %v, generation moved %v (the entry is in use)", s, c.Generation() != gen)
		}
		if got := tick(c, at(100*time.Second-1)); got != nil || c.Len() != 1 {
			t.Fatalf("STALE before StaleTime: %+v, Len %d", got, c.Len())
		}
		gen = c.Generation()
		tick(c, at(100*time.Second))
		if c.Len() != 0 || c.Stats().Expired != 1 || c.Generation() == gen {
			t.Fatalf("after StaleTime: Len %d, Expired %d", c.Len(), c.Stats().Expired)
		}
	})
	t.Run("a late Tick applies each timer at its own time", func(t *testing.T) {
		c := newCache(Config{})
		inState(t, c, ip4, StateReachable)
		tick(c, at(30*time.Second+DefaultStaleTime))
		if c.Len() != 0 || c.Stats().Expired != 1 {
			t.Fatalf("Len %d, Expired %d", c.Len(), c.Stats().Expired)
		}
	})
	t.Run("DELAY probes then PROBE gives up", func(t *testing.T) {
		c := newCache(Config{})
		inState(t, c, ip6, StateDelay)
		if got := tick(c, at(5*time.Second-1)); got != nil {
			t.Fatalf("early probe %+v", got)
		}
		probe := []Solicit{{Target: ip6, Unicast: true, MAC: macOld}}
		if got := tick(c, at(5*time.Second)); !slices.Equal(got, probe) {
			t.Fatalf("DELAY timeout: %+v, want %+v", got, probe)
		}
		if s, _ := c.State(ip6); s != StateProbe {
			t.Fatalf("after DELAY: %v", s)
		}
		for i := 1; i < DefaultMaxUnicastSolicit; i++ {
			if got := tick(c, at(5*time.Second+time.Duration(i)*time.Second)); !slices.Equal(got, probe) {
				t.Fatalf("probe %d: %+v", i+1, got)
			}
		}
		gen := c.Generation()
		if got := tick(c, at(8*time.Second)); got != nil || c.Len() != 0 {
			t.Fatalf("after the last probe: %+v, Len %d", got, c.Len())
		}
		if st := c.Stats(); st.Unreachable != 1 || st.UnicastSolicits != 3 || c.Generation() == gen {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("a confirmation in DELAY sends no probe", func(t *testing.T) {
		c := newCache(Config{})
		inState(t, c, ip6, StateDelay)
		c.Confirm(ip6, at(time.Second))
		if got := tick(c, at(5*time.Second)); got != nil {
			t.Fatalf("probe after confirmation: %+v", got)
		}
		if s, _ := c.State(ip6); s != StateReachable {
			t.Fatalf("state %v", s)
		}
	})
	t.Run("the probe's answer makes the entry REACHABLE", func(t *testing.T) {
		c := newCache(Config{})
		inState(t, c, ip4, StateProbe)
		c.Advertisement(ip4, macOld, Flags{Solicited: true, Override: true}, at(100*time.Millisecond))
		if s, _ := c.State(ip4); s != StateReachable || c.NextDeadline() != at(30*time.Second+100*time.Millisecond) {
			t.Fatalf("state %v, deadline %v", s, c.NextDeadline())
		}
	})
}

// TestReachableTimeRandom: ReachableTime is drawn in [0.5, 1.5] ×
// BaseReachableTime (RFC 4861 §6.3.2) from the injected source, again on
// SetBaseReachableTime and every RerandomizeInterval.
func TestReachableTimeRandom(t *testing.T) {
	var draws []int64
	next := int64(0)
	src := func(n int64) int64 { draws = append(draws, n); return next % n }
	c := New(Config{BaseReachableTime: 10 * time.Second, Rand: src})
	if got := c.ReachableTime(); got != 5*time.Second {
		t.Errorf("draw 0: %v, want 5s", got)
	}
	next = int64(20 * time.Second)
	if err := c.SetBaseReachableTime(20 * time.Second); err != nil || c.ReachableTime() != 30*time.Second {
		t.Errorf("after SetBaseReachableTime(20s): %v, %v; want 30s", c.ReachableTime(), err)
	}
	if err := c.SetBaseReachableTime(0); err == nil {
		t.Error("SetBaseReachableTime(0) accepted")
	}
	if err := c.SetRetransTimer(-1); err == nil {
		t.Error("SetRetransTimer(-1) accepted")
	}
	next = int64(7 * time.Second)
	c.Tick(t0, nil, nil)
	c.Tick(t0.Add(RerandomizeInterval-1), nil, nil)
	if c.ReachableTime() != 30*time.Second {
		t.Errorf("redrawn early: %v", c.ReachableTime())
	}
	c.Tick(t0.Add(RerandomizeInterval), nil, nil)
	if c.ReachableTime() != 17*time.Second {
		t.Errorf("after RerandomizeInterval: %v, want 17s", c.ReachableTime())
	}
	for _, n := range draws {
		if n != int64(10*time.Second)+1 && n != int64(20*time.Second)+1 {
			t.Errorf("drew in [0, %d)", n)
		}
	}
	// The default source stays in bounds.
	for range 100 {
		c := New(Config{})
		if r := c.ReachableTime(); r < DefaultBaseReachableTime/2 || r > DefaultBaseReachableTime*3/2 {
			t.Fatalf("ReachableTime %v out of [15s, 45s]", r)
		}
	}
}

func TestQueue(t *testing.T) {
	c := newCache(Config{QueueLen: 3})
	p0 := []byte{0}
	c.Resolve(ip6, p0, t0)
	for i := 1; i < 5; i++ {
		c.Resolve(ip6, []byte{byte(i)}, t0)
	}
	c.Resolve(ip6, nil, t0) // holds nothing
	p0[0] = 9               // the cache held copies
	res := c.Advertisement(ip6, macNew, Flags{Solicited: true}, t0)
	if want := [][]byte{{2}, {3}, {4}}; !slices.EqualFunc(res.Released, want, bytes.Equal) || res.ReleasedMAC != macNew {
		t.Errorf("released %v to %v, want %v", res.Released, res.ReleasedMAC, want)
	}
	if st := c.Stats(); st.QueueDrops != 2 || st.Released != 3 {
		t.Errorf("stats %+v", st)
	}
	c = newCache(Config{QueueLen: -1})
	c.Resolve(ip6, []byte{1}, t0)
	if res := c.Advertisement(ip6, macNew, Flags{Solicited: true}, t0); res.Released != nil {
		t.Errorf("QueueLen -1 held %v", res.Released)
	}
}

func TestRouterFlag(t *testing.T) {
	c := newCache(Config{})
	c.Resolve(ip6, nil, t0)
	c.Advertisement(ip6, macOld, Flags{Solicited: true, Router: true}, t0)
	if e := c.Entries()[0]; !e.Router {
		t.Fatal("IsRouter not set")
	}
	res := c.Advertisement(ip6, link.MAC{}, Flags{}, t0)
	if !res.RouterLost || c.Entries()[0].Router {
		t.Errorf("router → host: %+v", res)
	}
}

func TestEvictionOrder(t *testing.T) {
	t.Run("the least recently confirmed idle entry goes", func(t *testing.T) {
		c := newCache(Config{MaxEntries: 2})
		c.Learn(ip4, macOld, true, t0)
		c.Learn(ipC, macOld, true, at(time.Second))
		c.Advertisement(ip4, macOld, Flags{Solicited: true}, at(2*time.Second)) // confirms ip4
		c.Learn(ipD, macOld, true, at(3*time.Second))
		if _, ok := c.State(ipC); ok || c.Len() != 2 || c.Stats().Evictions != 1 {
			t.Errorf("entries %+v", c.Entries())
		}
	})
	t.Run("full of entries in use: Learn skips, Resolve evicts the least recently used", func(t *testing.T) {
		c := newCache(Config{MaxEntries: 2})
		inState(t, c, ip4, StateReachable)
		inState(t, c, ipC, StateReachable)
		c.Resolve(ip4, nil, at(time.Second))
		if res := c.Learn(ipD, macNew, true, at(2*time.Second)); res.Created || c.Stats().LearnSkipped != 1 {
			t.Fatalf("Learn into a table in use: %+v", res)
		}
		gen := c.Generation()
		c.Resolve(ipD, nil, at(3*time.Second))
		if _, ok := c.State(ipC); ok {
			t.Fatal("ipC, least recently used, stayed")
		}
		if st := c.Stats(); st.Evictions != 1 || st.EvictionsInUse != 1 || c.Generation() == gen {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("MaxIncomplete evicts the oldest INCOMPLETE with its queue", func(t *testing.T) {
		c := newCache(Config{MaxIncomplete: 2})
		inState(t, c, ip4, StateReachable)
		gen := c.Generation()
		for i := range 10 {
			c.Resolve(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), []byte{1}, t0)
		}
		st := c.Stats()
		if c.Len() != 3 || c.pending.n != 2 || st.Evictions != 8 || st.EvictionDrops != 8 || c.Generation() != gen {
			t.Fatalf("Len %d, stats %+v", c.Len(), st)
		}
		checkLists(t, c)
	})
}

func TestHitsDoNotAllocate(t *testing.T) {
	c := newCache(Config{})
	inState(t, c, ip4, StateReachable)
	n := testing.AllocsPerRun(1000, func() {
		if _, ok, _ := c.Resolve(ip4, []byte{1}, t0); !ok {
			t.Fatal("miss")
		}
		c.Confirm(ip4, t0)
		c.Lookup(ip4)
		c.Advertisement(ip4, macOld, Flags{Solicited: true}, t0)
		c.Learn(ip4, macOld, true, t0)
	})
	if n != 0 {
		t.Errorf("%v allocations per run, want 0", n)
	}
}

// checkLists verifies the eviction lists: every entry is on exactly the
// list its state says, linked both ways, and the counts agree.
func checkLists(t testing.TB, c *Cache) {
	t.Helper()
	seen := 0
	for _, l := range []*entryList{&c.idle, &c.active, &c.pending} {
		n := 0
		var prev *entry
		for e := l.head; e != nil; e = e.next {
			if e.list != l || e.prev != prev || c.entries[e.ip] != e {
				t.Fatalf("entry %v badly linked", e.ip)
			}
			switch {
			case l == &c.pending && e.state != StateIncomplete,
				l == &c.idle && (e.state == StateIncomplete || e.inUse),
				l == &c.active && (e.state == StateIncomplete || !e.inUse):
				t.Fatalf("entry %v (state %v, in use %v) on the wrong list", e.ip, e.state, e.inUse)
			}
			prev = e
			n++
		}
		if n != l.n || l.tail != prev {
			t.Fatalf("list count %d, walked %d", l.n, n)
		}
		seen += n
	}
	if seen != len(c.entries) {
		t.Fatalf("%d entries on lists, %d in the table", seen, len(c.entries))
	}
}

// BenchmarkResolveHit measures a send's lookup of a REACHABLE neighbour
// among 256, and BenchmarkConfirm TCP's confirmation of it.
func BenchmarkResolveHit(b *testing.B) {
	c := benchCache()
	ip := netip.AddrFrom4([4]byte{10, 0, 0, 77})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, _ := c.Resolve(ip, nil, t0); !ok {
			b.Fatal("miss")
		}
	}
}

func BenchmarkConfirm(b *testing.B) {
	c := benchCache()
	ip := netip.AddrFrom4([4]byte{10, 0, 0, 77})
	b.ReportAllocs()
	for b.Loop() {
		if !c.Confirm(ip, t0) {
			b.Fatal("miss")
		}
	}
}

func benchCache() *Cache {
	c := newCache(Config{})
	for i := range 256 {
		ip := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
		c.Resolve(ip, nil, t0)
		c.Advertisement(ip, macOld, Flags{Solicited: true}, t0)
	}
	return c
}
