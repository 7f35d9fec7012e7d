package stack

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ustack/ustack/arp"
	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/ipv6"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vnet"
	"github.com/ustack/ustack/neigh"
)

// maxFrame is the largest frame a NIC reads: an Ethernet header and the
// largest IPv4 datagram.
const maxFrame = link.EthernetHeaderLen + 65535

// headroom is the space reserved before a transport payload for the
// Ethernet and IPv4 headers (options are never sent).
const headroom = link.EthernetHeaderLen + ipv4.HeaderLen

// packetBuf is a reusable buffer for one outgoing frame. off, n and nic
// are set on a finished frame waiting in a frameQueue: it is b[off:off+n],
// to be written to nic.
type packetBuf struct {
	// b has room for the largest IPv4 frame and for an IPv6 packet of
	// the same payload, whose header is 20 bytes longer (headroom6).
	b      [maxFrame + ipv6.HeaderLen - ipv4.HeaderLen]byte
	off, n int
	nic    *nic
	// o is the offload metadata of the frame: a TCP super-segment for the
	// device, or software GSO, to cut (writeFrameOffload).
	o ip.Offload
}

// frameQueue takes finished frames (link header and all) to write
// later, in the order they come: a connection's frames made under its
// lock, written once it is released (tcpEndpoint.unlockAndFlush).
type frameQueue interface {
	// queueFrame takes pb, whose frame is pb.b[off:off+n], for via.
	queueFrame(pb *packetBuf, off, n int, via *nic)
}

// frame returns the frame a queued pb holds.
func (pb *packetBuf) frame() []byte { return pb.b[pb.off : pb.off+pb.n] }

// nic is one attached link endpoint with its IPv4 addresses, ARP cache
// and reassembler.
type nic struct {
	s    *Stack
	id   NICID
	name atomic.Pointer[string] // NICName
	ep   link.Endpoint
	mac  link.MAC // zero for endpoints without Ethernet framing (TUN)
	mtu  int
	// oep is ep when it carries offload metadata (link.OffloadEndpoint),
	// else nil; ofl is what it offers.
	oep link.OffloadEndpoint
	ofl link.Offloads
	// queues are ep's queues (link.MultiQueue), each read by its own
	// goroutine; ep alone for an endpoint of one queue. Never modified.
	queues []*nicQueue
	// addrs holds the NIC's addresses with their subnets, the first one
	// given to AddNIC first. The slice is never modified: AddAddress and
	// RemoveAddress, under s.mu, store a new one, so that the reader and
	// the senders read it without a lock.
	addrs atomic.Pointer[[]netip.Prefix]

	arpMu  sync.Mutex // guards arp and arpGen
	arp    *arp.Cache
	arpGen uint64 // arp.Generation() when last compared (arpChangedLocked)

	reasmMu sync.Mutex // guards reasm
	reasm   *ipv4.Reassembler

	fwd atomic.Pointer[forwarder] // SetForwarder's, or nil (forwarder.go)

	// IPv6 (ipv6.go). ndMu guards nd, ndGen, tent and what router
	// advertisements left (ipv6auto.go: routers6, prefixes6, auto6), and
	// serializes the writers of groups and deprecated6.
	ndMu      sync.Mutex
	nd        *neigh.Cache // the IPv6 neighbour cache (RFC 4861 §5.1)
	ndGen     uint64
	tent      []tentativeAddr // addresses under DAD (RFC 4862 §5.4)
	routers6  []defaultRouter // the Default Router List (RFC 4861 §5.1)
	prefixes6 []onLinkPrefix  // the Prefix List's entries from RAs (§5.1)
	auto6     []autoAddr      // addresses SLAAC formed (RFC 4862 §5.5.3)
	// deprecated6 holds the SLAAC addresses past their preferred
	// lifetime (RFC 4862 §5.5.4), copied on write, for sourceFor.
	deprecated6 atomic.Pointer[[]netip.Addr]
	// ll is the link-local address once DAD assigned it; groups the
	// multicast groups joined (all-nodes, the solicited-node groups),
	// copied on write.
	ll     atomic.Pointer[netip.Addr]
	groups atomic.Pointer[[]netip.Addr]
	mtu6   atomic.Int32 // an RA's MTU option below the link's (0: none)

	reasm6Mu sync.Mutex // guards reasm6
	reasm6   *ipv6.Reassembler
}

// ethernet reports whether the NIC's frames carry an Ethernet header.
func (n *nic) ethernet() bool { return !n.mac.IsZero() }

// readLoop is the reader goroutine of the NIC's queue q: it reads one
// frame at a time and processes it to the end (reply sent, data queued
// for the reader) before reading the next, so the segments of a
// connection stay in order. Each queue has one; the kernel keeps a flow
// on one queue (txQueue), so a connection's segments come through one
// reader.
func (n *nic) readLoop(q *nicQueue) {
	defer n.s.wg.Done()
	if br, ok := q.ep.(link.BatchReader); ok && !n.s.opts.NoGRO {
		n.readBatches(q, br)
		return
	}
	buf := make([]byte, maxFrame)
	st := q.rx.get()
	var rx rxOffload
	var o ip.Offload // outside the loop: &o escapes through the interface
	for {
		var sz int
		var err error
		o = ip.Offload{}
		if q.oep != nil {
			sz, err = q.oep.ReadFrameOffload(buf, &o)
		} else {
			sz, err = q.ep.ReadFrame(buf)
		}
		if err != nil {
			if n.readFailed(err) {
				return
			}
			continue
		}
		inc(&st.Link.FramesIn)
		add(&st.Link.BytesIn, uint64(sz))
		if o != (ip.Offload{}) {
			rx.deliver(n, buf[:sz], &o)
			continue
		}
		n.deliver(buf[:sz])
	}
}

// readFailed counts a failed read and reports whether the reader is to
// stop (the endpoint or the stack closed); after other errors it backs
// off from a failing device.
func (n *nic) readFailed(err error) bool {
	st := n.s.ctr.get()
	if errors.Is(err, link.ErrTruncated) {
		inc(&st.Link.DropTruncated)
		return false
	}
	if errors.Is(err, net.ErrClosed) || n.s.closing.Load() {
		return true
	}
	inc(&st.Link.ReadErrors)
	n.s.log.Warn("read failed", "nic", n.id, "err", err)
	select {
	case <-n.s.done:
		return true
	case <-time.After(10 * time.Millisecond): // back off from a failing device
	}
	return false
}

// rxOffload is a reader's state for frames that come with offload
// metadata: the buffer super-segments are cut in.
type rxOffload struct {
	seg []byte
}

// deliver acts on the metadata o of the frame f and delivers what it
// holds. TCP takes a TCP super-segment whole, over IPv4 or IPv6 (the
// kernel's TSO,
// tcp.Conn.InputSegments), and trusts a checksum the device verified
// (DataValid) or left partial (NEEDS_CSUM: the host's own segment,
// Linux's CHECKSUM_PARTIAL) without summing it; for the other protocols
// a partial checksum is completed here, and a UDP super-datagram cut
// into its datagrams.
func (rx *rxOffload) deliver(n *nic, f []byte, o *ip.Offload) {
	st := n.s.ctr.get()
	l3 := 0
	if n.ethernet() {
		l3 = link.EthernetHeaderLen
	}
	pkt := f[min(l3, len(f)):]
	tcp4 := len(pkt) >= 20 && pkt[0]>>4 == 4 && pkt[9] == ip.ProtocolTCP
	// IPv6: TCP right after the fixed header, where vnet.Check put the
	// offsets (a super-segment with extension headers is cut below).
	tcp6 := len(pkt) >= ipv6.HeaderLen && pkt[0]>>4 == 6 && pkt[6] == ip.ProtocolTCP
	gso := o.GSOType &^ vnet.GSOECN
	if gso != vnet.GSONone {
		inc(&st.Link.SuperSegmentsIn)
	}
	if (tcp4 && (gso == vnet.GSONone || gso == vnet.GSOTCPv4)) || (tcp6 && (gso == vnet.GSONone || gso == vnet.GSOTCPv6)) {
		n.deliverOffload(f, o)
		return
	}
	if gso == vnet.GSONone {
		if o.NeedsChecksum {
			if !vnet.CompleteChecksum(pkt, int(o.ChecksumStart), int(o.ChecksumOffset)) {
				inc(&st.Link.DropBadOffload)
				return
			}
			inc(&st.Link.ChecksumsCompleted)
		}
		n.deliver(f)
		return
	}
	if rx.seg == nil {
		rx.seg = make([]byte, maxFrame)
	}
	if err := vnet.Split(f, l3, int(o.GSOSize), rx.seg, func(seg []byte) error {
		n.deliver(seg)
		return nil
	}); err != nil {
		inc(&st.Link.DropBadOffload)
	}
}

// deliver demultiplexes one received frame by EtherType.
func (n *nic) deliver(frame []byte) { n.deliverOffload(frame, nil) }

// deliverOffload is deliver for a frame with offload metadata o (a TCP
// super-segment's), or none if o is nil.
func (n *nic) deliverOffload(frame []byte, o *ip.Offload) {
	st := n.s.ctr.get()
	if !n.ethernet() {
		// TUN: no link header; the version nibble tells the family.
		if len(frame) > 0 && frame[0]>>4 == 6 {
			n.deliverIPv6(frame, false, o)
			return
		}
		n.deliverIPv4Offload(frame, false, o)
		return
	}
	eth, err := link.ParseEthernet(frame)
	if err != nil {
		if errors.Is(err, link.ErrEthernetTruncated) {
			inc(&st.Link.DropTruncated)
		} else {
			inc(&st.Link.DropUnknownEtherType)
		}
		return
	}
	dst := eth.Destination()
	bcast := dst == link.Broadcast
	// RFC 2464 §7: IPv6 multicast goes to 33:33 and the group's low 32
	// bits; only the groups joined are taken.
	mcast := dst[0] == 0x33 && dst[1] == 0x33 && n.joinedMAC(dst)
	if dst != n.mac && !bcast && !mcast {
		inc(&st.Link.DropNotForUs)
		return
	}
	switch eth.Type() {
	case link.EtherTypeARP:
		n.deliverARP(eth.Payload())
	case link.EtherTypeIPv4:
		if mcast {
			inc(&st.Link.DropNotForUs)
			return
		}
		n.deliverIPv4Offload(eth.Payload(), bcast, o)
	case link.EtherTypeIPv6:
		n.deliverIPv6(eth.Payload(), bcast || mcast, o)
	default:
		inc(&st.Link.DropUnknownEtherType)
	}
}

// frameStart is where a frame built at pb.b[0:] (an Ethernet header's
// room first) begins: there with Ethernet, after that room without.
func (n *nic) frameStart() int {
	if n.ethernet() {
		return 0
	}
	return link.EthernetHeaderLen
}

// writeFrameOffload writes a frame with metadata o. A TCP super-segment
// goes to a device with TSO for its family (TSO4, TSO6) as it is, its
// checksum field holding the pseudo-header's sum (RFC 9293 §3.1; RFC 8200
// §8.1 over IPv6) for the device to complete (NEEDS_CSUM: csum_start at
// the TCP header, csum_offset 16), as the device cuts it; to any other
// endpoint it goes as its segments, cut here (software GSO, vnet.Split,
// with the checksum summed in the copy).
func (n *nic) writeFrameOffload(frame []byte, o *ip.Offload) {
	if o.GSOType == 0 {
		n.writeFrame(frame)
		return
	}
	q := n.txQueue(frame)
	st := q.tx.get()
	l3 := 0
	if n.ethernet() {
		l3 = link.EthernetHeaderLen
	}
	inc(&st.Link.SuperSegmentsOut)
	pkt := frame[l3:]
	v6 := o.GSOType&^vnet.GSOECN == vnet.GSOTCPv6
	tso, hl := n.ofl.TSO4, 40 // the IP and TCP headers at least
	if v6 {
		tso, hl = n.ofl.TSO6, ipv6.HeaderLen+20
	}
	if q.oep != nil && tso && n.ofl.TxChecksum && len(pkt) <= n.ofl.MaxGSOSize && len(pkt) >= hl {
		ihl := int(pkt[0]&0x0f) * 4
		src, dst := netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
		if v6 {
			ihl = ipv6.HeaderLen
			src, dst = netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40]))
		}
		th := pkt[ihl:]
		binary.BigEndian.PutUint16(th[16:], checksum.PseudoHeader(src, dst, ip.ProtocolTCP, uint16(len(th))))
		o.NeedsChecksum, o.ChecksumStart, o.ChecksumOffset = true, uint16(ihl), 16
		if err := q.oep.WriteFrameOffload(frame, o); err != nil {
			inc(&st.Link.WriteErrors)
			return
		}
		inc(&st.Link.FramesOut)
		add(&st.Link.BytesOut, uint64(len(frame)))
		return
	}
	fb := n.s.bufs.Get().(*packetBuf)
	defer n.s.bufs.Put(fb)
	if err := vnet.Split(frame, l3, int(o.GSOSize), fb.b[:], func(seg []byte) error {
		n.writeFrame(seg)
		return nil
	}); err != nil {
		inc(&st.Link.DropBadOffload)
	}
}

// writeFrame hands a complete frame to the endpoint, on the queue of its
// flow (txQueue).
func (n *nic) writeFrame(frame []byte) {
	q := n.txQueue(frame)
	st := q.tx.get()
	if err := q.ep.WriteFrame(frame); err != nil {
		inc(&st.Link.WriteErrors)
		return
	}
	inc(&st.Link.FramesOut)
	add(&st.Link.BytesOut, uint64(len(frame)))
}

// deliverARP handles an ARP packet: it updates the cache as RFC 826
// "Packet Reception" says, answers requests for our address and sends
// the packets that were waiting for the sender's MAC.
func (n *nic) deliverARP(b []byte) {
	st := n.s.ctr.get()
	p, err := arp.ParsePacket(b)
	if err != nil {
		inc(&st.ARP.DropMalformed)
		return
	}
	if p.Op() == arp.OpRequest {
		inc(&st.ARP.RequestsIn)
	} else {
		inc(&st.ARP.RepliesIn)
	}
	now := n.s.clock.Now()
	n.arpMu.Lock()
	res := n.arp.Input(p, n.hasAddr, now)
	n.arpChangedLocked()
	// The packets that waited for this MAC (RFC 1122 §2.3.2.2) leave
	// before the lock is released: a packet sent later learns the MAC
	// under this lock, so it cannot overtake them.
	for _, pkt := range res.Released {
		n.sendResolved(res.ReleasedMAC, pkt)
	}
	n.arpMu.Unlock()
	if res.Reply {
		var f [link.EthernetHeaderLen + arp.PacketLen]byte
		link.PutEthernetHeader(f[:], p.SenderHardwareAddr(), n.mac, link.EtherTypeARP)
		arp.PutPacket(f[link.EthernetHeaderLen:], arp.OpReply, n.mac, p.TargetProtocolAddr(), p.SenderHardwareAddr(), p.SenderProtocolAddr())
		inc(&st.ARP.RepliesOut)
		n.writeFrame(f[:])
	}
}

// announce sends a gratuitous ARP for the address a (RFC 5227 §3, "ARP
// Announcement"), so that neighbours refresh any stale entry.
func (n *nic) announce(a netip.Addr) {
	if !n.ethernet() {
		return
	}
	var f [link.EthernetHeaderLen + arp.PacketLen]byte
	link.PutEthernetHeader(f[:], link.Broadcast, n.mac, link.EtherTypeARP)
	arp.PutGratuitous(f[link.EthernetHeaderLen:], n.mac, a)
	inc(&n.s.ctr.get().ARP.GratuitousOut)
	n.writeFrame(f[:])
}

// sendARPRequest broadcasts "who has ip?", from the address on ip's
// subnet (sourceFor), so that the target learns an address it can reach.
func (n *nic) sendARPRequest(ip netip.Addr) {
	src := n.sourceFor(ip)
	if !src.IsValid() {
		return // the NIC has no address left
	}
	var f [link.EthernetHeaderLen + arp.PacketLen]byte
	link.PutEthernetHeader(f[:], link.Broadcast, n.mac, link.EtherTypeARP)
	arp.PutPacket(f[link.EthernetHeaderLen:], arp.OpRequest, n.mac, src, link.MAC{}, ip)
	inc(&n.s.ctr.get().ARP.RequestsOut)
	n.writeFrame(f[:])
}

// sendResolved sends an IP packet (no link header) that waited in the ARP
// queue to mac.
func (n *nic) sendResolved(mac link.MAC, pkt []byte) {
	pb := n.s.bufs.Get().(*packetBuf)
	f := pb.b[:link.EthernetHeaderLen+len(pkt)]
	link.PutEthernetHeader(f, mac, n.mac, link.EtherTypeIPv4)
	copy(f[link.EthernetHeaderLen:], pkt)
	n.writeFrame(f)
	n.s.bufs.Put(pb)
}

// runTimers retries or gives up ARP resolutions and expires reassemblies
// that are due at now, and returns the NIC's next deadline.
func (n *nic) runTimers(now time.Time) time.Time {
	var requests []netip.Addr
	n.arpMu.Lock()
	n.arp.Tick(now, func(ip netip.Addr) { requests = append(requests, ip) })
	next := n.arp.NextDeadline()
	n.arpChangedLocked()
	n.arpMu.Unlock()
	for _, ip := range requests {
		n.sendARPRequest(ip)
	}

	var expired [][]byte
	n.reasmMu.Lock()
	n.reasm.Expire(now, func(first []byte) { expired = append(expired, append([]byte(nil), first...)) })
	if d := n.reasm.NextDeadline(); !d.IsZero() && (next.IsZero() || d.Before(next)) {
		next = d
	}
	n.reasmMu.Unlock()
	for _, first := range expired {
		// RFC 792 / RFC 1122 §3.2.2.4: time exceeded, code 1, when fragment
		// zero arrived but the datagram never completed.
		if len(first) >= ipv4.HeaderLen {
			src := netip.AddrFrom4([4]byte(first[12:16]))
			n.s.sendICMPError(src, first, ipv4.TypeTimeExceeded, ipv4.CodeReassemblyTimeExceeded)
		}
	}
	if d := n.runTimers6(now); !d.IsZero() && (next.IsZero() || d.Before(next)) {
		next = d
	}
	return next
}
