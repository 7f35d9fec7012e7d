package link_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vnet"
)

// htons is the network byte order of a 16-bit protocol number, as
// AF_PACKET takes it.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestTAPTaggedOffload sends, from the kernel's side of a TAP device, an
// 802.1Q-tagged TCP segment whose checksum is left partial, with its
// virtio_net_hdr (an AF_PACKET socket with PACKET_VNET_HDR, as the
// kernel's own VLAN device would hand it to the TAP: csum_start counted
// from the frame's start, the tag included). The TAP reads it with the
// offsets counted from the IP header, 4 bytes further in than for an
// untagged frame, and the checksum completes right; without
// link.L3Offset the frame would be dropped as malformed.
func TestTAPTaggedOffload(t *testing.T) {
	leakcheck.Check(t)
	ns := netns.NewT(t)
	var tap *link.TAP
	var fd int
	if err := ns.Do(func() (err error) {
		tap, err = link.OpenTAP("ustap0", link.TAPOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tap.Close() })
	// Up before the packet socket binds to it (bound to a device that is
	// down, the socket keeps ENETDOWN pending for its next write).
	if _, err := ns.Run("ip", "link", "set", "ustap0", "up"); err != nil {
		t.Fatal(err)
	}
	if err := ns.Do(func() (err error) {
		ifi, err := net.InterfaceByName("ustap0")
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL))); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if !tap.Offloads().RxChecksum {
		t.Skip("the kernel refused checksum offload on the TAP device")
	}

	// A tagged frame: VLAN 10, IPv4, TCP with 100 bytes, checksum partial.
	const l3 = link.EthernetHeaderLen + link.VLANTagLen
	src, dst := netip.MustParseAddr("10.10.0.1"), netip.MustParseAddr("10.10.0.2")
	f := make([]byte, l3+40+100)
	mac := tap.HardwareAddr()
	copy(f[0:6], mac[:])
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0x99})
	binary.BigEndian.PutUint16(f[12:], link.EtherTypeVLAN)
	binary.BigEndian.PutUint16(f[14:], 10)
	binary.BigEndian.PutUint16(f[16:], link.EtherTypeIPv4)
	ipv4.PutHeader(f[l3:], &ipv4.Fields{TotalLength: 140, TTL: 64, Protocol: ip.ProtocolTCP, Source: src, Destination: dst})
	th := f[l3+20:]
	binary.BigEndian.PutUint16(th[0:], 40000)
	binary.BigEndian.PutUint16(th[2:], 7)
	th[12], th[13] = 5<<4, 0x18
	binary.BigEndian.PutUint16(th[14:], 1000)
	for i := range 100 {
		th[20+i] = byte(i)
	}
	binary.BigEndian.PutUint16(th[16:], checksum.PseudoHeader(src, dst, ip.ProtocolTCP, 120))
	h := vnet.Header{Flags: vnet.FlagNeedsChecksum, CsumStart: l3 + 20, CsumOffset: 16}
	msg := make([]byte, vnet.HeaderLen+len(f))
	h.Put(msg)
	copy(msg[vnet.HeaderLen:], f)
	if _, err := unix.Write(fd, msg); err != nil {
		t.Fatalf("AF_PACKET write: %v", err)
	}

	got := make(chan error, 1)
	buf := make([]byte, 70000)
	var o ip.Offload
	var n int
	go func() {
		for {
			var err error
			n, err = tap.ReadFrameOffload(buf, &o)
			if err != nil || (n > 12 && binary.BigEndian.Uint16(buf[12:]) == link.EtherTypeVLAN) {
				got <- err
				return
			}
			// Something else the kernel sent (IPv6 router solicitations).
		}
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the tagged frame did not come out of the TAP (frames dropped for a bad vnet header: %d)", tap.Drops())
	}
	if n != len(f) || !o.NeedsChecksum || o.ChecksumStart != 20 || o.ChecksumOffset != 16 {
		t.Fatalf("read %d bytes with %+v; want %d with a partial checksum at 20+16 from the IP header", n, o, len(f))
	}
	if !vnet.CompleteChecksum(buf[l3:n], int(o.ChecksumStart), int(o.ChecksumOffset)) {
		t.Fatal("CompleteChecksum refused the offsets")
	}
	seg := buf[l3+20 : n]
	if checksum.Sum(seg, checksum.PseudoHeader(src, dst, ip.ProtocolTCP, uint16(len(seg)))) != 0xffff {
		t.Error("the completed checksum does not verify")
	}

	// And back: a tagged frame with a partial checksum written to the
	// TAP gets a virtio_net_hdr whose csum_start counts the tag.
	binary.BigEndian.PutUint16(th[16:], checksum.PseudoHeader(src, dst, ip.ProtocolTCP, 120))
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 0x99})
	if err := tap.WriteFrameOffload(f, &ip.Offload{NeedsChecksum: true, ChecksumStart: 20, ChecksumOffset: 16}); err != nil {
		t.Fatalf("WriteFrameOffload of a tagged frame: %v", err)
	}
	// The kernel's packet socket sees it arrive with a virtio_net_hdr
	// whose csum_start is the TCP header's, wherever the tag went (Linux
	// takes it out of the frame into the skb's metadata on receive).
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5}); err != nil {
		t.Fatal(err)
	}
	rb := make([]byte, 70000)
	for {
		n, err := unix.Read(fd, rb)
		if err != nil {
			t.Fatalf("the kernel did not see the frame: %v", err)
		}
		fr := rb[vnet.HeaderLen:n]
		at := link.L3Offset(fr)
		if len(fr) < at+40 || binary.BigEndian.Uint16(fr[at-2:]) != link.EtherTypeIPv4 || binary.BigEndian.Uint16(fr[at+20:]) != 40000 {
			continue // IPv6 chatter of the kernel's own
		}
		vh, _ := vnet.Parse(rb)
		if vh.Flags&vnet.FlagNeedsChecksum == 0 || int(vh.CsumStart)-at != 20 || vh.CsumOffset != 16 {
			t.Errorf("the kernel got csum_start %d, csum_offset %d for a frame whose IP header is at %d: want the TCP header's (+20) and 16", vh.CsumStart, vh.CsumOffset, at)
		}
		return
	}
}
