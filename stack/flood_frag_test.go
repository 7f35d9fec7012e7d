package stack

import (
	"testing"
	"time"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
)

// TestFragmentFlood injects 200,000 fragments that never complete (tiny,
// full-sized, one block near 64 KiB, overlapping pairs, bad lengths, past
// 65535 octets), from sources in a prefix routed nowhere, into a stack
// while a neighbour's 3,000-byte echo request arrives in three fragments
// with 16 flood fragments between them, over and over. Every genuine
// request is reassembled and answered, the reassembler stays within its
// bounds, and the flood is counted.
func TestFragmentFlood(t *testing.T) {
	leakcheck.Check(t)
	clock := NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ea, eb := link.NewPipe(link.PipeOptions{QueueLen: 1024})
	s := New(Options{Clock: clock, ICMPEchoRate: -1})
	defer s.Close()
	if _, err := s.AddNIC(ea, addrA); err != nil {
		t.Fatal(err)
	}
	drain(t, eb)
	n := s.nicByID(1)
	macA, macB := ea.HardwareAddr(), eb.HardwareAddr()
	n.deliver(arpFrame(macA, arp.OpRequest, macB, addrB.Addr(), link.MAC{}, addrA.Addr()))

	// The genuine request's fragments, rebuilt with a new ID each round.
	req := echoRequest(9, 0, make([]byte, 3000-8))
	genuine := func(id uint16) [][]byte {
		pkt := ipFrame(macA, macB, ipv4.Fields{ID: id, Protocol: ipv4.ProtocolICMP, Source: addrB.Addr(), Destination: addrA.Addr()}, req)
		var out [][]byte
		if err := ipv4.Fragment(pkt[link.EthernetHeaderLen:], 1500, make([]byte, 1500), func(f []byte) error {
			fr := make([]byte, link.EthernetHeaderLen+len(f))
			link.PutEthernetHeader(fr, macA, macB, link.EtherTypeIPv4)
			copy(fr[link.EthernetHeaderLen:], f)
			out = append(out, fr)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}

	// Flood fragments: kind, offset, length, more-fragments.
	kinds := []struct {
		off, n int
		mf     bool
	}{
		{0, 8, true},       // tiny first fragment
		{1480, 1480, true}, // a middle fragment
		{64000, 8, true},   // one block near the end: a 64 KiB buffer
		{0, 16, true},      // the first of an overlapping pair
		{8, 5, true},       // MF and not a multiple of 8: invalid
		{65528, 8, false},  // ends past 65535 octets
	}
	frame := make([]byte, link.EthernetHeaderLen+ipv4.HeaderLen+1480)
	link.PutEthernetHeader(frame, macA, macB, link.EtherTypeIPv4)
	flood := func(i int, kind int, id uint16) {
		k := kinds[kind]
		f := frame[:link.EthernetHeaderLen+ipv4.HeaderLen+k.n]
		ipv4.PutHeader(f[link.EthernetHeaderLen:], &ipv4.Fields{TotalLength: uint16(ipv4.HeaderLen + k.n), ID: id, TTL: 64,
			MoreFragments: k.mf, FragmentOffset: uint16(k.off), Protocol: ipv4.ProtocolICMP,
			Source: spoofedAddr(i), Destination: addrA.Addr()})
		n.deliver(f)
		if kind == 3 { // the overlapping second half: same source and ID
			f = frame[:link.EthernetHeaderLen+ipv4.HeaderLen+16]
			ipv4.PutHeader(f[link.EthernetHeaderLen:], &ipv4.Fields{TotalLength: ipv4.HeaderLen + 16, ID: id, TTL: 64,
				MoreFragments: true, FragmentOffset: 8, Protocol: ipv4.ProtocolICMP,
				Source: spoofedAddr(i), Destination: addrA.Addr()})
			n.deliver(f)
		}
	}

	const total, between = 200_000, 16
	cfg := ipv4.ReassemblyConfig{MaxDatagrams: ipv4.DefaultMaxDatagrams, MaxBytes: ipv4.DefaultMaxBytes}
	rounds, part := 0, 0
	var frags [][]byte
	for i := 0; i < total; i++ {
		if i%between == 0 {
			if part == 0 {
				frags = genuine(uint16(rounds))
			}
			n.deliver(frags[part])
			if part++; part == len(frags) {
				part = 0
				rounds++
			}
		}
		flood(i, i%len(kinds), uint16(i))
		if i%1000 == 0 {
			n.reasmMu.Lock()
			rs := n.reasm.Stats()
			n.reasmMu.Unlock()
			if rs.Datagrams > cfg.MaxDatagrams || rs.Bytes > cfg.MaxBytes || rs.SpareBytes > cfg.MaxBytes {
				t.Fatalf("fragment %d: reassembler over its bounds: %+v", i, rs)
			}
		}
		if i%100 == 0 {
			clock.Advance(time.Millisecond)
		}
	}
	st := s.Stats()
	t.Logf("%d rounds; IPv4 %+v; ICMP replies %d", rounds, st.IPv4, st.ICMP.EchoRepliesOut)
	if st.IPv4.Reassembled != uint64(rounds) || st.ICMP.EchoRequestsIn != uint64(rounds) || st.ICMP.EchoRepliesOut != uint64(rounds) {
		t.Fatalf("%d genuine requests: %d reassembled, %d echo requests in, %d replies out",
			rounds, st.IPv4.Reassembled, st.ICMP.EchoRequestsIn, st.ICMP.EchoRepliesOut)
	}
	if st.IPv4.DropReassembly == 0 || st.IPv4.ReassemblyEvictions == 0 {
		t.Fatalf("the flood went uncounted: %+v", st.IPv4)
	}
	if want := uint64(total + total/len(kinds) + rounds*3); st.IPv4.FragmentsIn < want-10 {
		t.Fatalf("FragmentsIn %d, want about %d", st.IPv4.FragmentsIn, want)
	}
	// When the flood stops, what it left times out and the memory is
	// given back.
	clock.Advance(ipv4.DefaultReassemblyTimeout)
	waitFor(t, "the flood's datagrams to time out", func() bool {
		n.reasmMu.Lock()
		defer n.reasmMu.Unlock()
		rs := n.reasm.Stats()
		return rs.Datagrams == 0 && rs.Bytes == 0
	})
	if st := s.Stats(); st.IPv4.ReassemblyTimeouts == 0 {
		t.Fatalf("no timeouts counted: %+v", st.IPv4)
	}
}
