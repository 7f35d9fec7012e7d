package stack

import (
	"bytes"
	"testing"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/link"
)

// TestARPFloodKeepsLiveNeighbour floods a stack with 100,000 forged ARP
// packets (requests to it, replies nobody asked for, announcements) from
// senders in a prefix routed nowhere, while one of its connections
// echoes between every 10,000: the connection keeps working with no new
// ARP round, its neighbour's entry keeps its MAC, and the counters show
// the forged entries evicting only each other.
func TestARPFloodKeepsLiveNeighbour(t *testing.T) {
	leakcheck.Check(t)
	p := newEchoedPair(t)
	ea, eb, a := p.ea, p.eb, p.a
	echo := func(round int) { p.echo(t, round, bytes.Repeat([]byte{byte(round)}, 500)) }
	echo(-1)
	before := a.Stats().ARP

	n := a.nicByID(1)
	macA := ea.HardwareAddr()
	const total, chunk = 100_000, 10_000
	for i := 0; i < total; i++ {
		ip := spoofedAddr(i)
		b4 := ip.As4()
		mac := link.MAC{0x02, 0xee, b4[0], b4[1], b4[2], b4[3]}
		switch i % 3 {
		case 0: // a request to us: RFC 826 enters the sender
			n.deliver(arpFrame(link.Broadcast, arp.OpRequest, mac, ip, link.MAC{}, addrA.Addr()))
		case 1: // a reply nobody asked for
			n.deliver(arpFrame(macA, arp.OpReply, mac, ip, macA, addrA.Addr()))
		case 2: // an announcement
			n.deliver(arpFrame(link.Broadcast, arp.OpRequest, mac, ip, link.MAC{}, ip))
		}
		if (i+1)%chunk == 0 {
			echo(i / chunk)
		}
	}

	st := a.Stats().ARP
	t.Logf("%d forged ARP packets: %+v", total, st)
	if st.RequestsOut != before.RequestsOut {
		t.Fatalf("the flood cost a new ARP round: %d requests out, %d before", st.RequestsOut, before.RequestsOut)
	}
	var found bool
	for _, nb := range a.Neighbors() {
		if nb.IP == addrB.Addr() {
			found = true
			if nb.MAC != eb.HardwareAddr() || nb.State != arp.StateComplete || !nb.InUse {
				t.Fatalf("the neighbour's entry changed: %+v", nb)
			}
		}
	}
	if !found {
		t.Fatal("the neighbour's entry is gone")
	}
	if st.EvictionsInUse != 0 || st.Evictions < total/3-arp.DefaultMaxEntries || st.DropUnsolicited < total/3 {
		t.Fatalf("counters: %+v", st)
	}
	if got := len(a.Neighbors()); got > arp.DefaultMaxEntries {
		t.Fatalf("%d neighbour entries, over the bound %d", got, arp.DefaultMaxEntries)
	}
}
