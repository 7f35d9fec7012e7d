package stack

import (
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/tcp"
)

// TestBlindInjectionFlood floods the server end of an established
// connection with 40,000 blind segments that carry the connection's
// 4-tuple (RFC 5961 §3-§5): RSTs, SYNs and bare ACKs with random sequence
// numbers, and data with random sequence and acknowledgment numbers. An
// echo round trip between every 5,000 of them must come back intact; at
// the end the connection is still up, nothing was reset, and the
// challenge ACKs stayed within ChallengeACKLimit a second.
func TestBlindInjectionFlood(t *testing.T) {
	leakcheck.Check(t)
	p := newEchoedPair(t)
	ea, eb, a, b, server, c := p.ea, p.eb, p.a, p.b, p.server, p.c
	client := c.LocalAddr().(*net.TCPAddr).AddrPort()

	rng := rand.New(rand.NewPCG(5961, 2))
	echo := func(round int) {
		t.Helper()
		msg := make([]byte, 1000)
		for i := range msg {
			msg[i] = byte(rng.Uint32())
		}
		p.echo(t, round, msg)
	}
	echo(-1)

	nb := b.nicByID(1)
	frame := make([]byte, link.EthernetHeaderLen+ipv4.HeaderLen+tcp.HeaderLen+100)
	link.PutEthernetHeader(frame, eb.HardwareAddr(), ea.HardwareAddr(), link.EtherTypeIPv4)
	inject := func(flags tcp.Flags, seq, ack tcp.Value, n int) {
		seg := frame[link.EthernetHeaderLen+ipv4.HeaderLen : link.EthernetHeaderLen+ipv4.HeaderLen+tcp.HeaderLen+n]
		h := tcp.Header{SrcPort: client.Port(), DstPort: server.Port(), Seq: seq, Ack: ack, Flags: flags, Window: 65535}
		h.Encode(seg)
		tcp.SetChecksum(seg, client.Addr(), server.Addr())
		ipv4.PutHeader(frame[link.EthernetHeaderLen:], &ipv4.Fields{TotalLength: uint16(ipv4.HeaderLen + len(seg)), TTL: 64,
			Protocol: ipv4.ProtocolTCP, Source: client.Addr(), Destination: server.Addr()})
		nb.deliver(frame[:link.EthernetHeaderLen+ipv4.HeaderLen+len(seg)])
	}
	const total, chunk = 40000, 5000
	start := time.Now()
	for i := 0; i < total; i++ {
		seq, ack := tcp.Value(rng.Uint32()), tcp.Value(rng.Uint32())
		switch i % 4 {
		case 0:
			inject(tcp.FlagRST, seq, 0, 0)
		case 1:
			inject(tcp.FlagSYN, seq, 0, 0)
		case 2:
			inject(tcp.FlagACK, seq, ack, 0)
		case 3:
			inject(tcp.FlagACK|tcp.FlagPSH, seq, ack, 100)
		}
		if (i+1)%chunk == 0 {
			echo(i / chunk)
		}
	}
	elapsed := time.Since(start)
	echo(total / chunk)

	sa, sb := a.Stats().TCP, b.Stats().TCP
	t.Logf("%d blind segments in %v: server TCP %+v", total, elapsed.Round(time.Millisecond), sb)
	if sa.ResetsReceived != 0 || sb.ResetsReceived != 0 || sa.EstablishedResets != 0 || sb.EstablishedResets != 0 {
		t.Fatalf("a blind RST reset a connection: client %+v, server %+v", sa, sb)
	}
	// Challenge ACKs are limited per connection per second: the flood
	// spans at most ceil(elapsed)+1 one-second windows.
	limit := uint64(tcp.DefaultConfig().ChallengeACKLimit)
	windows := uint64(elapsed/time.Second) + 2
	if sb.ChallengeACKs == 0 || sb.ChallengeACKs > limit*windows {
		t.Fatalf("%d challenge ACKs in %v, want 1..%d (%d a second)", sb.ChallengeACKs, elapsed, limit*windows, limit)
	}
	// Segments that arrive while the echo server owns the connection wait
	// on its backlog, and past its bound are dropped before the core sees
	// them (DropBacklogFull): those count for what they would have met.
	if sb.ChallengeACKsLimited+sb.DropBacklogFull < total/2-limit*windows {
		t.Fatalf("%d challenge ACKs limited and %d dropped from the backlog, want at least %d (the SYNs and bare ACKs)",
			sb.ChallengeACKsLimited, sb.DropBacklogFull, total/2-limit*windows)
	}
	if sb.DroppedOutOfWindow+sb.DropBacklogFull < total*9/10 {
		t.Fatalf("DroppedOutOfWindow %d and %d dropped from the backlog, want about %d", sb.DroppedOutOfWindow, sb.DropBacklogFull, total)
	}
}
