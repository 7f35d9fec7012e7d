// Package tcptest is a protocol test kit for ustack's TCP: it drives the
// pure core of package tcp in virtual time, lets a test play the remote
// peer segment by segment, and checks every segment the stack sends.
//
// A Stack is the stack under test at LocalAddr (192.168.0.1) talking to a
// scripted peer at RemoteAddr (192.0.2.1), packetdrill's addresses; an
// IPv6 Stack (NewStackFamily, NewFamily with IPv6) is LocalAddr6
// (fd3d:fa7b:d17d::1) talking to RemoteAddr6 (2001:db8::1), packetdrill's
// IPv6 defaults, with the IPv6 pseudo-header in every checksum, an MSS of
// the MTU less 60 (RFC 8200 §8.3), ICMPv6 numbers in InjectICMP and IPv6
// headers in captures. As package stack does, a path MTU an ICMP message
// lowers is remembered for its destination for 10 minutes (PathMTU) and
// given to the other connections to it. It
// demultiplexes with the code package stack runs (internal/tcpdemux): a
// 4-tuple table of tcp.Conn, the TIME-WAIT records that closed connections
// become, listeners, tcp.Reset for segments that reach none of them; an
// Output records every segment, and a clock only moves when told to. Moving it fires the connections' timers in
// deadline order, each at exactly its deadline, so a retransmission comes
// at exactly the RTO and a test never sleeps.
//
// Segments are described by a Spec, built with Seg:
//
//	tcptest.Seg().Flags("S").Seq(0).Win(65535).MSS(1460)
//
// with the numbers a packetdrill script would write: a Flow maps them to
// and from the wire the way packetdrill does (the peer's SYN carries its
// sequence number as written, everything after is relative to the
// initial sequence numbers; TSecr values name the TSval of a matched
// segment). A Flow sends Specs and matches the stack's segments against
// them; a MatchError names each field that differs.
//
// For Go tests, New binds a Stack to a testing.TB:
//
//	h := tcptest.New(t, nil)
//	l := h.Listen(8080, 16)
//	p := h.Peer(40000, 8080)
//	p.Send(tcptest.Seg().Flags("S").Seq(0).Win(65535).MSS(1460))
//	p.Expect(tcptest.Seg().Flags("S.").Seq(0).Ack(1))
//	p.Send(tcptest.Seg().Flags(".").Seq(1).Ack(1).Win(65535))
//	c := l.Accept()
//	c.Write([]byte("hello"))
//	p.Expect(tcptest.Seg().Flags("P.").Seq(1).Len(5).Ack(1))
//	p.ExpectAfter(200*time.Millisecond, tcptest.Seg().Flags("P.").Seq(1).Len(5))
//
// A failing test logs the expected and actual segments and the last
// packets of the exchange, and writes a pcap of the exchange into
// t.TempDir() (or into $TCPTEST_PCAP_DIR, which outlives the test).
//
// Package tcptest/script runs packetdrill-syntax scripts on the same
// engine.
package tcptest
