package stack

import (
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/ustack/ustack/tcp"
)

// Stats is a snapshot of the stack's counters, one struct per layer. Every
// packet the stack drops is counted under the reason it was dropped.
type Stats struct {
	Link LinkStats
	ARP  ARPStats
	IPv4 IPv4Stats
	ICMP ICMPStats
	// IPv6, ICMPv6 and NDP count the IPv6 network layer (RFC 8200),
	// ICMPv6 (RFC 4443) and neighbour discovery (RFC 4861, RFC 4862).
	IPv6   IPv6Stats
	ICMPv6 ICMPv6Stats
	NDP    NDPStats
	TCP    TCPStats
	UDP    UDPStats
	// Forward counts what forwarders did (SetForwarder).
	Forward ForwardStats
	// Filter counts what the packet filter did (SetFilter).
	Filter FilterStats
}

// LinkStats counts frames at the link boundary of every NIC.
type LinkStats struct {
	FramesIn, FramesOut uint64
	BytesIn, BytesOut   uint64
	// DropTruncated counts frames too short for an Ethernet header.
	DropTruncated uint64
	// DropNotForUs counts frames addressed to another unicast MAC or to a
	// multicast group.
	DropNotForUs uint64
	// DropUnknownEtherType counts frames of an EtherType the stack does not
	// speak (802.3 length frames, ...).
	DropUnknownEtherType uint64
	// WriteErrors counts frames the endpoint failed to send.
	WriteErrors uint64
	// ReadErrors counts failed reads other than the endpoint closing.
	ReadErrors uint64
	// SuperSegmentsIn counts frames read from an endpoint with offloads
	// (link.OffloadEndpoint) that held several segments (GRO, the
	// kernel's TSO); FramesIn counts each once. ChecksumsCompleted counts
	// frames whose partial checksum (NEEDS_CSUM) the stack completed.
	SuperSegmentsIn, ChecksumsCompleted uint64
	// SuperSegmentsOut counts TCP super-segments written (the core's
	// GSO): to a device with TSO as one frame, else cut into segments
	// here, each counted in FramesOut.
	SuperSegmentsOut uint64
	// SegmentsCoalesced counts the super-segments the stack's software
	// GRO made of segments read in one batch (Options.NoGRO).
	SegmentsCoalesced uint64
	// DropBadOffload counts frames whose offload metadata did not fit
	// them (a super-segment that could not be cut, checksum offsets out
	// of range).
	DropBadOffload uint64
}

// ARPStats counts ARP traffic and the neighbour cache's drops.
type ARPStats struct {
	RequestsIn, RepliesIn   uint64
	RequestsOut, RepliesOut uint64
	GratuitousOut           uint64
	// DropMalformed counts ARP packets that failed to parse.
	DropMalformed uint64
	// DropTimeout counts IP packets discarded because their next hop never
	// answered ARP.
	DropTimeout uint64
	// DropQueueFull counts IP packets discarded because too many were
	// already waiting for the same next hop.
	DropQueueFull uint64
	// DropUnsolicited counts replies for addresses the stack never asked
	// about: they create no entry (RFC 826's merge rule).
	DropUnsolicited uint64
	// Evictions counts neighbour entries removed to make room
	// (arp.Config's MaxEntries and MaxIncomplete); EvictionsInUse those of
	// them that a send was using; LearnSkipped requests to us whose sender
	// was not entered because every entry was in use or incomplete.
	Evictions, EvictionsInUse, LearnSkipped uint64
}

// IPv4Stats counts IPv4 datagrams.
type IPv4Stats struct {
	PacketsIn, PacketsOut uint64
	// DropTruncated counts packets shorter than their header or total length.
	DropTruncated uint64
	// DropBadChecksum counts headers whose checksum does not verify.
	DropBadChecksum uint64
	// DropBadHeader counts a wrong version, header length or option list.
	DropBadHeader uint64
	// DropNotForUs counts packets to addresses the stack does not own
	// when it does not forward (Options.Forwarding; a NIC's Forwarder
	// takes only TCP and UDP).
	DropNotForUs uint64
	// DropUnknownProtocol counts packets for a transport the stack lacks.
	DropUnknownProtocol uint64
	// DropNoRoute counts outgoing packets with no route to the destination.
	DropNoRoute uint64
	// DropFragmentationNeeded counts outgoing packets larger than the MTU
	// with the DF bit set.
	DropFragmentationNeeded   uint64
	FragmentsIn, FragmentsOut uint64
	Reassembled               uint64
	// DropReassembly counts fragments discarded by the reassembler
	// (overlap, memory bound, timeout, too long).
	DropReassembly uint64
	// ReassemblyEvictions counts datagrams discarded incomplete to make
	// room for newer ones (ipv4.ReassemblyConfig's bounds: the oldest, or
	// a source's own oldest beyond its share); ReassemblyTimeouts those
	// that did not complete in time.
	ReassemblyEvictions, ReassemblyTimeouts uint64
	// The Forward fields count a router's datagrams (Options.Forwarding,
	// RFC 1812 §5). Each error is answered with the ICMP message RFC
	// 1812 names where §4.3.2.7 allows one, within the error rate limit.
	// Forwarded counts datagrams routed on to another node.
	Forwarded uint64
	// ForwardTimeExceeded counts datagrams whose TTL or Hop Limit would
	// have reached 0 (RFC 1812 §5.3.1, RFC 8200 §3): ICMP time exceeded.
	ForwardTimeExceeded uint64
	// ForwardNoRoute counts datagrams with no route to their
	// destination: destination unreachable.
	ForwardNoRoute uint64
	// ForwardTooBig counts datagrams larger than the outgoing MTU that
	// may not be fragmented (DF set, RFC 1191 §4; any IPv6 packet, RFC
	// 8200 §5): fragmentation needed, or Packet Too Big (RFC 4443 §3.2).
	ForwardTooBig uint64
	// ForwardFragmented counts IPv4 datagrams cut into fragments on the
	// way out (RFC 791 §3.2); FragmentsOut counts the fragments.
	ForwardFragmented uint64
	// ForwardNotForwardable counts datagrams a router must not forward,
	// dropped silently: sent as a link-layer broadcast, with a martian,
	// multicast or link-local source or destination (RFC 1812 §5.3.7,
	// §5.3.4; RFC 3927 §7; RFC 4291 §2.5.6), or to a subnet's directed
	// broadcast address (RFC 2644). An IPv6 link-local source with a
	// global destination is answered with destination unreachable,
	// beyond scope (RFC 4443 §3.1).
	ForwardNotForwardable uint64
}

// IPv6Stats counts IPv6 packets.
type IPv6Stats struct {
	PacketsIn, PacketsOut uint64
	// DropTruncated counts packets shorter than their header or payload
	// length.
	DropTruncated uint64
	// DropBadHeader counts a wrong version, a jumbogram, a multicast
	// source (RFC 8200, RFC 4291 §2.7).
	DropBadHeader uint64
	// DropBadExtension counts packets whose extension header chain
	// package ipv6 refused (RFC 8200 §4: truncated, out of order, an
	// unrecognized option or routing header, too many headers).
	DropBadExtension uint64
	// DropNotForUs counts packets to addresses the stack does not own or
	// to multicast groups it has not joined.
	DropNotForUs uint64
	// DropUnknownProtocol counts packets for a transport the stack lacks.
	DropUnknownProtocol uint64
	// DropNoRoute counts outgoing packets with no route or no source
	// address for the destination.
	DropNoRoute uint64
	// DropTooBig counts outgoing packets that could not be fragmented.
	DropTooBig                uint64
	FragmentsIn, FragmentsOut uint64
	Reassembled               uint64
	// DropReassembly counts fragments the reassembler refused.
	DropReassembly uint64
	// ReassemblyEvictions and ReassemblyTimeouts are the reassembler's
	// (ipv6.ReassemblyStats).
	ReassemblyEvictions, ReassemblyTimeouts uint64
	// The Forward fields count a router's packets (Options.Forwarding,
	// RFC 8200 §3), each error answered with the ICMPv6 message of RFC
	// 4443 where §2.4 (e) allows one, within the error rate limit.
	// Forwarded counts datagrams routed on to another node.
	Forwarded uint64
	// ForwardTimeExceeded counts datagrams whose TTL or Hop Limit would
	// have reached 0 (RFC 1812 §5.3.1, RFC 8200 §3): ICMP time exceeded.
	ForwardTimeExceeded uint64
	// ForwardNoRoute counts datagrams with no route to their
	// destination: destination unreachable.
	ForwardNoRoute uint64
	// ForwardTooBig counts datagrams larger than the outgoing MTU that
	// may not be fragmented (DF set, RFC 1191 §4; any IPv6 packet, RFC
	// 8200 §5): fragmentation needed, or Packet Too Big (RFC 4443 §3.2).
	ForwardTooBig uint64
	// ForwardNotForwardable counts datagrams a router must not forward,
	// dropped silently: sent as a link-layer broadcast, with a martian,
	// multicast or link-local source or destination (RFC 1812 §5.3.7,
	// §5.3.4; RFC 3927 §7; RFC 4291 §2.5.6), or to a subnet's directed
	// broadcast address (RFC 2644). An IPv6 link-local source with a
	// global destination is answered with destination unreachable,
	// beyond scope (RFC 4443 §3.1).
	ForwardNotForwardable uint64
}

// ICMPv6Stats counts ICMPv6 messages other than NDP's.
type ICMPv6Stats struct {
	EchoRequestsIn, EchoRepliesOut uint64
	EchoRequestsOut, EchoRepliesIn uint64
	// EchoRepliesRateLimited counts echo requests left unanswered because
	// of the echo-reply rate limit (Options.ICMPEchoRate).
	EchoRepliesRateLimited uint64
	ErrorsIn, ErrorsOut    uint64
	// ErrorsRateLimited counts errors not sent because of the rate limit.
	ErrorsRateLimited uint64
	// DropMalformed counts messages that were truncated or failed their
	// checksum.
	DropMalformed uint64
	// DropBadQuote counts errors whose quoted packet is truncated or not
	// from one of our addresses.
	DropBadQuote uint64
	// Ignored counts messages of a type the stack does not act on.
	Ignored uint64
}

// NDPStats counts neighbour discovery (RFC 4861), duplicate address
// detection (RFC 4862 §5.4) and MLD reports (RFC 3810).
type NDPStats struct {
	SolicitationsIn, SolicitationsOut   uint64
	AdvertisementsIn, AdvertisementsOut uint64
	RouterAdvertisementsIn              uint64
	RouterSolicitationsOut              uint64
	MLDReportsOut                       uint64
	// DropInvalid counts NDP messages that failed RFC 4861 §6.1/§7.1
	// validation (hop limit not 255, code not 0, too short, multicast
	// target, bad options, ...).
	DropInvalid uint64
	// DropNotOurTarget counts solicitations for an address the NIC does
	// not have.
	DropNotOurTarget uint64
	// DropUnsolicited counts advertisements for addresses the stack never
	// asked about: they create no entry (RFC 4861 §7.2.5).
	DropUnsolicited uint64
	// DropTimeout counts packets discarded because their next hop never
	// answered; DropQueueFull those dropped from a full queue.
	DropTimeout, DropQueueFull uint64
	// DADStarted, DADSucceeded and DADFailed count duplicate address
	// detections: a failed one found the address in use (RFC 4862
	// §5.4.5) and the address was not assigned.
	DADStarted, DADSucceeded, DADFailed uint64
	// AddressesAutoconfigured counts SLAAC addresses formed from router
	// advertisements (RFC 4862 §5.5.3).
	AddressesAutoconfigured uint64
	// AddressesExpired counts SLAAC addresses removed when their valid
	// lifetime ran out (RFC 4862 §5.5.4).
	AddressesExpired uint64
}

// ICMPStats counts ICMP messages.
type ICMPStats struct {
	EchoRequestsIn, EchoRepliesOut uint64
	EchoRequestsOut, EchoRepliesIn uint64
	// EchoRepliesRateLimited counts echo requests left unanswered because
	// of the echo-reply rate limit (Options.ICMPEchoRate).
	EchoRepliesRateLimited uint64
	ErrorsIn, ErrorsOut    uint64
	// ErrorsRateLimited counts errors not sent because of the rate limit.
	ErrorsRateLimited uint64
	// DropMalformed counts ICMP messages that failed to parse or verify.
	DropMalformed uint64
	// DropBadQuote counts errors whose quoted datagram is truncated, not
	// IPv4, not from one of our addresses, or a later fragment.
	DropBadQuote uint64
	// ErrorsNoConnection counts errors quoting a TCP segment of no
	// connection (stale or forged, RFC 5927) or a UDP datagram of no
	// connected UDP socket.
	ErrorsNoConnection uint64
	// ErrorsIgnored counts errors that mean nothing to a transport here:
	// source quench (RFC 6633), redirect, unknown codes, quotes of other
	// transports, and soft errors about a connected UDP socket's datagram
	// (see UDPStats.ICMPErrorsReported).
	ErrorsIgnored uint64
}

// TCPStats counts TCP segments and connections. The fields after the
// first three mirror tcp.Stats, the protocol core's counters.
type TCPStats struct {
	// DropMalformed counts segments that failed to parse (truncated, bad
	// data offset, bad options, port 0).
	DropMalformed uint64
	// DropBadChecksum counts segments whose checksum does not verify.
	DropBadChecksum uint64
	// DropBroadcast counts segments sent to a broadcast address.
	DropBroadcast uint64
	// DropNoConnection counts segments for no connection and no listener;
	// each but a RST is answered with a RST (RFC 9293 §3.10.7.1).
	DropNoConnection uint64
	// DropSYNNoRoute counts SYNs dropped before any lookup or state
	// because no route leads back to their source, so that nothing could
	// answer them, neither a SYN-ACK nor a reset (Linux counts those to a
	// listener in ListenDrops): spoofed floods from unroutable prefixes
	// cost one route lookup each.
	DropSYNNoRoute uint64
	// Backlogged counts segments that arrived while a user call or the
	// timer owned their connection, and waited on its socket backlog for
	// the owner to process them instead of holding up the NIC reader.
	Backlogged uint64
	// DropBacklogFull counts segments dropped because the connection's
	// socket backlog was full: they arrived while a user call or the
	// timer owned the connection, past the receive and send buffer sizes
	// already queued (as Linux's TCPBacklogDrop).
	DropBacklogFull uint64

	SegmentsIn, SegmentsOut             uint64
	Retransmits, FastRetransmits        uint64
	Timeouts                            uint64
	ResetsSent, ResetsReceived          uint64
	ChallengeACKs, ChallengeACKsLimited uint64
	DroppedBadOptions                   uint64
	DroppedOutOfWindow, DroppedPAWS     uint64
	DroppedOutOfOrder                   uint64
	ListenOverflows                     uint64
	ActiveOpens, PassiveOpens           uint64
	EstablishedResets                   uint64
	ConnectionTimeouts                  uint64
	KeepAliveProbes, WindowProbes       uint64
	TLPProbes, RACKLosses               uint64
	DSACKsSent, DSACKsReceived          uint64
	SpuriousRetransmits, SpuriousRTOs   uint64
	Undos                               uint64
	// ICMP errors and path MTU discovery, counted by the TCP core (the
	// stack's own ICMP drops are in ICMPStats).
	ICMPIgnored, ICMPSoftErrors, ICMPAborts           uint64
	PMTUDecreases, PMTUBlackHoles                     uint64
	PMTUProbes, PMTUProbeSuccesses, PMTUProbeFailures uint64
	// DroppedOutOfOrderMemory counts out-of-order segments dropped because
	// the stack-wide budget (tcp.Config.MaxOutOfOrderBytes) was spent;
	// OutOfOrderBytes is the budget in use now (a level, not a total).
	DroppedOutOfOrderMemory, OutOfOrderBytes uint64
	// TimeWait is the number of closed connections in TIME-WAIT now, each
	// kept as a small record (a gauge, not a counter);
	// TimeWaitOverflows counts connections that closed without TIME-WAIT
	// because Options.MaxTimeWait records were held (Linux's
	// TCPTimeWaitOverflow).
	TimeWait, TimeWaitOverflows uint64
	// Listeners: the SYN queue and SYN cookies (RFC 4987 §3.6); see
	// tcp.Stats. HalfOpen is a gauge: the half-open entries held now.
	SYNsReceived, SYNQueueDrops, SYNQueueOldestDropped, SYNQueueTimeouts uint64
	SYNACKRetransmits                                                    uint64
	SYNCookiesSent, SYNCookiesAccepted, SYNCookiesRejected               uint64
	ResetsRateLimited                                                    uint64
	HalfOpen                                                             uint64
}

// UDPStats counts UDP datagrams (RFC 768) and the reasons they were
// dropped, like Linux's Udp lines in /proc/net/snmp.
type UDPStats struct {
	// DatagramsIn counts datagrams queued on a socket (Linux's
	// InDatagrams); DatagramsOut those sent (OutDatagrams).
	DatagramsIn, DatagramsOut uint64
	// NoPort counts unicast datagrams to a port no socket has; each is
	// answered with an ICMP port unreachable, within the ICMP error rate
	// limit (RFC 1122 §4.1.3.1; Linux's NoPorts).
	NoPort uint64
	// IgnoredBroadcast counts broadcast datagrams to a port no socket
	// has: RFC 1122 §3.2.2 forbids an ICMP error for them (Linux's
	// IgnoredMulti).
	IgnoredBroadcast uint64
	// DropBadChecksum counts datagrams whose non-zero checksum does not
	// verify (RFC 1122 §4.1.3.4; Linux's InCsumErrors).
	DropBadChecksum uint64
	// DropBadLength counts datagrams shorter than the 8-byte header or
	// whose Length field is below 8 or beyond the IP payload.
	DropBadLength uint64
	// DropBadSource counts datagrams from a broadcast or multicast source
	// address (RFC 1122 §4.1.3.6: they "must be discarded").
	DropBadSource uint64
	// DropReceiveBuffer counts datagrams refused because the socket's
	// receive queue was full (Linux's RcvbufErrors; see SetReadBuffer).
	DropReceiveBuffer uint64
	// ICMPErrorsIn counts ICMP errors that quote a UDP datagram sent from
	// one of our addresses; ICMPErrorsReported those of them, hard errors
	// about a datagram of a connected socket, that its next Read or Write
	// returns (ECONNREFUSED for a port unreachable).
	ICMPErrorsIn, ICMPErrorsReported uint64
}

// copyTCPStats fills the fields of dst that tcp.Stats also has.
func copyTCPStats(dst *TCPStats, src *tcp.Stats) {
	d := reflect.ValueOf(dst).Elem()
	v := reflect.ValueOf(src).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := d.FieldByName(v.Type().Field(i).Name)
		if a, ok := v.Field(i).Addr().Interface().(*atomic.Uint64); ok && f.IsValid() {
			f.SetUint(a.Load())
		}
	}
	dst.HalfOpen = uint64(max(src.HalfOpen.Load(), 0))
}

// counters holds the live counters; its fields are updated with atomic
// operations and read into a Stats by snapshot.
type counters struct{ s Stats }

func inc(p *uint64)             { atomic.AddUint64(p, 1) }
func add(p *uint64, n uint64)   { atomic.AddUint64(p, n) }
func (c *counters) get() *Stats { return &c.s }

// snapshot copies every counter with an atomic load.
func (c *counters) snapshot() Stats {
	var out Stats
	copyAtomic(reflect.ValueOf(&out).Elem(), reflect.ValueOf(&c.s).Elem())
	return out
}

func copyAtomic(dst, src reflect.Value) {
	for i := 0; i < src.NumField(); i++ {
		f := src.Field(i)
		switch f.Kind() {
		case reflect.Struct:
			copyAtomic(dst.Field(i), f)
		case reflect.Uint64:
			dst.Field(i).SetUint(atomic.LoadUint64(f.Addr().Interface().(*uint64)))
		}
	}
}

// Lines formats the non-zero counters as "Layer.Name value" lines, in
// declaration order, for logs and command-line output.
func (s Stats) Lines() []string {
	var out []string
	v := reflect.ValueOf(s)
	for i := 0; i < v.NumField(); i++ {
		layer := v.Type().Field(i).Name
		f := v.Field(i)
		for j := 0; j < f.NumField(); j++ {
			if f.Field(j).Kind() == reflect.Uint64 && f.Field(j).Uint() != 0 {
				out = append(out, fmt.Sprintf("%s.%s %d", layer, f.Type().Field(j).Name, f.Field(j).Uint()))
			}
		}
	}
	return out
}
