package tcp

import (
	"testing"
	"time"
)

// pathSim is a path whose MTU silently drops larger segments (ICMP
// filtered: a black hole for them) in front of a receiver that
// acknowledges cumulatively, without SACK, one ACK per segment.
type pathSim struct {
	mtu     int
	rcvNxt  Value
	ooo     map[Value]int
	dropped int
	sizes   map[int]int // payload sizes sent
	supers  int         // super-segments cut
}

// deliver passes s through the path and returns the receiver's ACK.
func (p *pathSim) deliver(s Segment) (Value, bool) {
	n := len(s.Payload())
	if n == 0 {
		return 0, false
	}
	p.sizes[n]++
	if n+40 > p.mtu {
		p.dropped++
		return 0, false
	}
	if s.Seq().GreaterThan(p.rcvNxt) {
		p.ooo[s.Seq()] = max(p.ooo[s.Seq()], n)
	} else if end := s.Seq().Add(uint32(n)); end.GreaterThan(p.rcvNxt) {
		p.rcvNxt = end
	}
	for {
		advanced := false
		for seq, l := range p.ooo {
			if seq.LessThanEq(p.rcvNxt) {
				if end := seq.Add(uint32(l)); end.GreaterThan(p.rcvNxt) {
					p.rcvNxt = end
				}
				delete(p.ooo, seq)
				advanced = true
			}
		}
		if !advanced {
			break
		}
	}
	return p.rcvNxt, true
}

// pathTransfer moves total bytes from an established harness through p, the
// ACKs arriving rtt after each batch of segments, and returns when all
// are acknowledged.
func pathTransfer(t *testing.T, h *harness, p *pathSim, total int, rtt time.Duration) {
	t.Helper()
	p.rcvNxt, p.ooo, p.sizes = h.c.snd.UNA, map[Value]int{}, map[int]int{}
	data := pattern(total)
	end := h.c.snd.UNA.Add(uint32(total))
	now := t0.Add(ms(100))
	written := 0
	for step := 0; h.c.snd.UNA != end; step++ {
		if step > 100000 || h.c.Done() {
			t.Fatalf("transfer stuck at %d of %d bytes (state %v, err %v)", h.c.snd.UNA.Sub(end.Add(-uint32(total))), total, h.c.State(), h.c.Err())
		}
		if written < total {
			n, err := h.c.Write(now, data[written:], &h.out)
			if err != nil {
				t.Fatal(err)
			}
			written += n
		}
		h.checkErrs(t)
		segs := h.out.segs
		h.out.segs = nil
		if len(segs) == 0 {
			d := h.c.NextDeadline()
			if d.IsZero() {
				t.Fatal("nothing to send and no timer")
			}
			now = d
			h.c.Tick(now, &h.out)
			continue
		}
		now = now.Add(rtt)
		for _, s := range segs {
			pieces := []Segment{s}
			if mss := h.out.gsoSize(s); mss > 0 { // a super-segment: the link cuts it
				p.supers++
				pieces = pieces[:0]
				for _, b := range cutSuper(s, mss, localAP.Addr(), remoteAP.Addr()) {
					pieces = append(pieces, Segment(b))
				}
			}
			for _, s := range pieces {
				if ack, ok := p.deliver(s); ok {
					h.send(t, now.Sub(t0), sg{flags: ACK, seq: remoteISS + 1, ack: ack, win: 65535})
				}
			}
		}
	}
}

// RFC 4821 §7.7, RFC 8899 §4.3: a path that drops full-sized segments
// without an ICMP message (here MTU 1200 behind an interface of 1500) is
// detected by consecutive timeouts, the MSS falls to the base (1024), and
// probes then find the path MTU from below, their losses costing no
// timeout and no fast recovery.
func TestBlackHoleDetectedThenProbedUp(t *testing.T) {
	h := established(t)
	if h.cfg.MTUProbing != MTUProbingBlackHole {
		t.Fatalf("default MTUProbing %v, want MTUProbingBlackHole", h.cfg.MTUProbing)
	}
	p := &pathSim{mtu: 1200}
	pathTransfer(t, h, p, 400<<10, ms(5))
	st := h.cfg.Stats
	if got := st.PMTUBlackHoles.Load(); got != 1 {
		t.Fatalf("PMTUBlackHoles %d, want 1", got)
	}
	if got := st.Timeouts.Load(); got != blackHoleTimeouts {
		t.Errorf("%d timeouts, want the %d that detect the black hole", got, blackHoleTimeouts)
	}
	if got := st.FastRetransmits.Load(); got != 0 {
		t.Errorf("%d fast retransmits: probe losses were taken for congestion", got)
	}
	in := h.c.Info()
	if in.PathMTU > 1200 || in.PathMTU < 1200-probeThreshold {
		t.Errorf("path MTU %d after the search, want within %d below 1200", in.PathMTU, probeThreshold)
	}
	if st.PMTUProbeSuccesses.Load() == 0 || st.PMTUProbeFailures.Load() == 0 {
		t.Errorf("probes: %d succeeded, %d failed; want both", st.PMTUProbeSuccesses.Load(), st.PMTUProbeFailures.Load())
	}
	t.Logf("path MTU %d, MSS %d; probes %d (%d ok, %d lost); %d segments dropped; sizes %v",
		in.PathMTU, in.MSS, st.PMTUProbes.Load(), st.PMTUProbeSuccesses.Load(), st.PMTUProbeFailures.Load(), p.dropped, p.sizes)
}

// Probing never lowers the MSS of a healthy path: with MTUProbingAlways
// the connection starts at the base and climbs to the interface MTU.
func TestProbingAlwaysClimbsToInterfaceMTU(t *testing.T) {
	cfg := testConfig()
	cfg.MTUProbing = MTUProbingAlways
	h := newHarness(cfg)
	h.dial(t, 0)
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535, opts: mssOpt(1460)})
	h.out.segs = nil
	p := &pathSim{mtu: 1500}
	pathTransfer(t, h, p, 400<<10, ms(5))
	st := h.cfg.Stats
	if in := h.c.Info(); in.PathMTU != 1500 || in.MSS != 1460 {
		t.Fatalf("path MTU %d MSS %d, want 1500 1460", in.PathMTU, in.MSS)
	}
	if st.PMTUProbeFailures.Load() != 0 || p.dropped != 0 || st.Timeouts.Load() != 0 {
		t.Fatalf("%d probe failures, %d drops, %d timeouts on a clean path", st.PMTUProbeFailures.Load(), p.dropped, st.Timeouts.Load())
	}
	if p.sizes[1024] == 0 {
		t.Fatalf("never sent at the base MSS: sizes %v", p.sizes)
	}
	t.Logf("probes %d; sizes %v", st.PMTUProbes.Load(), p.sizes)
}

// With MTUProbingOff a black hole is not detected: the full-sized segment
// keeps timing out.
func TestProbingOffNoBlackHoleDetection(t *testing.T) {
	h := established(t)
	h.cfg.MTUProbing = MTUProbingOff
	h.cfg.MaxRetries = 5
	inFlight(t, h, ms(20), 2)
	for i := 0; i < 20 && !h.c.Done(); i++ {
		h.tick(t, h.c.NextDeadline().Sub(t0))
		for _, s := range h.out.segs {
			if n := len(s.Payload()); n != 0 && n != localMSS {
				t.Fatalf("retransmitted %d bytes with probing off", n)
			}
		}
		h.out.segs = nil
	}
	if !h.c.Done() || h.cfg.Stats.PMTUBlackHoles.Load() != 0 {
		t.Fatalf("done %v, black holes %d", h.c.Done(), h.cfg.Stats.PMTUBlackHoles.Load())
	}
}

// A frag-needed message for a probe ends it as failed and caps the search
// at the MTU it names.
func TestFragNeededForProbe(t *testing.T) {
	cfg := testConfig()
	cfg.MTUProbing = MTUProbingAlways
	h := newHarness(cfg)
	h.dial(t, 0)
	h.send(t, ms(10), sg{flags: SYNACK, seq: remoteISS, ack: localISS + 1, win: 65535, opts: mssOpt(1460)})
	h.out.segs = nil
	h.c.Write(t0.Add(ms(20)), pattern(20000), &h.out)
	probe, ok := h.out.pop()
	if !ok || len(probe.Payload()) <= 1024 {
		t.Fatalf("first segment %v, want a probe above the base", probe)
	}
	h.out.segs = nil
	r := h.c.HandleICMP(t0.Add(ms(21)), ICMPError{Kind: ICMPFragmentationNeeded, MTU: 1100, Seq: probe.Seq()}, &h.out)
	if r != ICMPIgnored { // 1100 is above the MTU in use (1064): only the search learns
		t.Fatalf("result %v", r)
	}
	if h.c.pmtu.high != 1100 || h.c.pmtu.probeSize != 0 {
		t.Fatalf("search high %d, probe %d", h.c.pmtu.high, h.c.pmtu.probeSize)
	}
	checkResent(t, h.out.segs, probe.Seq(), len(probe.Payload()), 1024)
}
