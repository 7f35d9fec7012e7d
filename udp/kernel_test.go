package udp_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/udp"
)

// The kernel's side of the TAP and the peer behind it, which is this test
// writing and reading frames. Both live only in the test's namespace.
var (
	kernel4 = netip.MustParseAddr("192.0.2.1")
	peer4   = netip.MustParseAddr("192.0.2.2")
	kernel6 = netip.MustParseAddr("2001:db8::1")
	peer6   = netip.MustParseAddr("2001:db8::2")
)

const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	ipv6Len   = 40 // RFC 8200 §3: the fixed IPv6 header
)

type kernelLink struct {
	tap       *link.TAP
	ns        *netns.NS
	kernelMAC link.MAC
	frames    chan []byte
	sock4     *net.UDPConn // the kernel's sockets, bound to port 7000
	sock6     *net.UDPConn
}

// sock returns the kernel's socket of one family.
func (k *kernelLink) sock(v6 bool) *net.UDPConn {
	if v6 {
		return k.sock6
	}
	return k.sock4
}

// openKernelLink creates a namespace with a TAP device whose kernel side
// has kernel4 and kernel6, a static neighbour entry that sends the peer's
// addresses to the TAP, and a kernel UDP socket per family. Everything is
// removed at Cleanup.
func openKernelLink(t *testing.T) *kernelLink {
	t.Helper()
	leakcheck.Check(t)
	ns := netns.NewT(t)
	k := &kernelLink{ns: ns, frames: make(chan []byte, 256)}
	err := ns.Do(func() (err error) {
		if k.tap, err = link.OpenTAP("udpk0", link.TAPOptions{}); err != nil {
			return err
		}
		ni, err := net.InterfaceByName("udpk0")
		if err != nil {
			return err
		}
		k.kernelMAC = link.MAC(ni.HardwareAddr)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.tap.Close() })
	mac := k.tap.HardwareAddr().String()
	for _, cmd := range [][]string{
		{"ip", "link", "set", "udpk0", "up"},
		{"ip", "addr", "add", kernel4.String() + "/24", "dev", "udpk0"},
		{"ip", "addr", "add", kernel6.String() + "/64", "dev", "udpk0", "nodad"},
		{"ip", "neigh", "replace", peer4.String(), "lladdr", mac, "dev", "udpk0", "nud", "permanent"},
		{"ip", "-6", "neigh", "replace", peer6.String(), "lladdr", mac, "dev", "udpk0", "nud", "permanent"},
	} {
		if out, err := ns.Run(cmd...); err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, out)
		}
	}
	err = ns.Do(func() (err error) {
		if k.sock4, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(kernel4, 7000))); err != nil {
			return err
		}
		k.sock6, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(kernel6, 7000)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.sock4.Close(); k.sock6.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := k.tap.ReadFrame(buf)
			if err != nil {
				close(k.frames)
				return
			}
			select {
			case k.frames <- bytes.Clone(buf[:n]):
			default: // nobody is waiting for frames now
			}
		}
	}()
	return k
}

// ipUDP returns the source, destination and UDP bytes of an IPv4 or IPv6
// frame carrying UDP, or ok false.
func ipUDP(t *testing.T, frame []byte) (src, dst netip.Addr, b []byte, ok bool) {
	e, err := link.ParseEthernet(frame)
	if err != nil {
		return src, dst, nil, false
	}
	switch e.Type() {
	case etherIPv4:
		h, err := ipv4.ParseHeader(e.Payload())
		if err != nil || h.Protocol() != udp.ProtocolNumber || h.IsFragment() {
			return src, dst, nil, false
		}
		return h.Source(), h.Destination(), h.Payload(), true
	case etherIPv6:
		p := e.Payload()
		if len(p) < ipv6Len || p[6] != udp.ProtocolNumber {
			return src, dst, nil, false
		}
		n := int(binary.BigEndian.Uint16(p[4:]))
		if ipv6Len+n > len(p) {
			t.Fatalf("IPv6 payload length %d beyond a frame of %d", n, len(frame))
		}
		return netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40])), p[ipv6Len : ipv6Len+n], true
	}
	return src, dst, nil, false
}

// TestParseKernelDatagrams has the kernel send datagrams of many sizes,
// odd and even, over both families out of the TAP, and parses each with
// Parse: the kernel's checksums must verify and the payload must be what
// was sent.
func TestParseKernelDatagrams(t *testing.T) {
	k := openKernelLink(t)
	for _, v6 := range []bool{false, true} {
		src, dst := kernel4, peer4
		maxLen := 1500 - 20 - udp.HeaderLen // unfragmented at the TAP's MTU
		if v6 {
			src, dst = kernel6, peer6
			maxLen = 1500 - ipv6Len - udp.HeaderLen
		}
		for _, n := range []int{0, 1, 2, 3, 7, 8, 9, 255, 1000, 1001, maxLen - 1, maxLen} {
			msg := make([]byte, n)
			for i := range msg {
				msg[i] = byte(n + i*13)
			}
			if _, err := k.sock(v6).WriteToUDPAddrPort(msg, netip.AddrPortFrom(dst, 9)); err != nil {
				t.Fatalf("kernel send of %d bytes over IPv6 %v: %v", n, v6, err)
			}
			timeout := time.After(10 * time.Second)
			for found := false; !found; {
				select {
				case f, open := <-k.frames:
					if !open {
						t.Fatal("TAP closed")
					}
					s, d, b, ok := ipUDP(t, f)
					if !ok || s != src || d != dst {
						continue
					}
					dg, err := udp.Parse(b, s, d)
					if err != nil {
						t.Fatalf("%d bytes %v > %v: Parse: %v\n% x", n, s, d, err, b)
					}
					if dg.SourcePort() != 7000 || dg.DestinationPort() != 9 || !bytes.Equal(dg.Payload(), msg) {
						t.Fatalf("%d bytes: parsed %d > %d, %d bytes", n, dg.SourcePort(), dg.DestinationPort(), len(dg.Payload()))
					}
					found = true
				case <-timeout:
					t.Fatalf("no %d-byte datagram from %v within 10 s", n, src)
				}
			}
		}
	}
}

// frame builds an Ethernet frame to the kernel carrying a UDP datagram
// from the peer's port 9 to the kernel's port 7000, built with PutHeader
// and SetChecksum; mangle, if not nil, then edits the UDP bytes.
func (k *kernelLink) frame(t *testing.T, v6 bool, msg []byte, mangle func(d []byte)) []byte {
	t.Helper()
	ipLen, et := ipv4.HeaderLen, uint16(etherIPv4)
	src, dst := peer4, kernel4
	if v6 {
		ipLen, et = ipv6Len, etherIPv6
		src, dst = peer6, kernel6
	}
	f := make([]byte, link.EthernetHeaderLen+ipLen+udp.HeaderLen+len(msg))
	link.PutEthernetHeader(f, k.kernelMAC, k.tap.HardwareAddr(), et)
	ip := f[link.EthernetHeaderLen:]
	d := ip[ipLen:]
	if v6 {
		// RFC 8200 §3: version 6, no traffic class or flow label, the
		// payload length, next header UDP, hop limit 64.
		ip[0] = 6 << 4
		binary.BigEndian.PutUint16(ip[4:], uint16(len(d)))
		ip[6], ip[7] = udp.ProtocolNumber, 64
		s, t := src.As16(), dst.As16()
		copy(ip[8:24], s[:])
		copy(ip[24:40], t[:])
	} else {
		ipv4.PutHeader(ip, &ipv4.Fields{TotalLength: uint16(len(ip)), TTL: 64, Protocol: ipv4.ProtocolUDP, Source: src, Destination: dst})
	}
	if err := udp.PutHeader(d, 9, 7000, len(msg)); err != nil {
		t.Fatal(err)
	}
	copy(d[udp.HeaderLen:], msg)
	if err := udp.SetChecksum(d, src, dst); err != nil {
		t.Fatal(err)
	}
	if mangle != nil {
		mangle(d)
	}
	return f
}

// snmpCounter reads one UDP counter of the namespace: name from the "Udp:"
// table of /proc/net/snmp, or a "Udp6..." line of /proc/net/snmp6.
func snmpCounter(t *testing.T, ns *netns.NS, name string) uint64 {
	t.Helper()
	file := "/proc/net/snmp"
	if strings.HasPrefix(name, "Udp6") {
		file = "/proc/net/snmp6"
	}
	out, err := ns.Run("cat", file)
	if err != nil {
		t.Fatalf("cat %s: %v", file, err)
	}
	lines := strings.Split(string(out), "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == name {
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		if len(f) > 0 && f[0] == "Udp:" && i+1 < len(lines) {
			vals := strings.Fields(lines[i+1])
			for j := range f {
				if f[j] == name && j < len(vals) {
					v, err := strconv.ParseUint(vals[j], 10, 64)
					if err != nil {
						t.Fatal(err)
					}
					return v
				}
			}
		}
	}
	t.Fatalf("no counter %s in %s", name, file)
	return 0
}

// TestKernelAcceptsBuiltDatagrams writes datagrams built with PutHeader
// and SetChecksum into the TAP and reads them from kernel sockets. Datagrams
// the kernel must drop (a bad checksum, a zero checksum over IPv6) go
// first and a good one after: the good one arriving first shows the bad
// one was dropped, without waiting for something not to happen, and the
// kernel's checksum-error counter says why.
func TestKernelAcceptsBuiltDatagrams(t *testing.T) {
	k := openKernelLink(t)
	zeroChecksum := func(d []byte) { d[6], d[7] = 0, 0 }
	flipPayload := func(d []byte) { d[udp.HeaderLen] ^= 0x40 }
	tests := []struct {
		name    string
		v6      bool
		size    int
		mangle  func([]byte)
		dropped bool // the kernel must drop it, and so must Parse
	}{
		{name: "IPv4 empty", size: 0},
		{name: "IPv4 odd", size: 1001},
		{name: "IPv4 full frame", size: 1472},
		{name: "IPv4 zero checksum", size: 100, mangle: zeroChecksum},
		{name: "IPv4 bad checksum", size: 100, mangle: flipPayload, dropped: true},
		{name: "IPv6 empty", v6: true, size: 0},
		{name: "IPv6 odd", v6: true, size: 3},
		{name: "IPv6 full frame", v6: true, size: 1452},
		{name: "IPv6 zero checksum", v6: true, size: 100, mangle: zeroChecksum, dropped: true},
		{name: "IPv6 bad checksum", v6: true, size: 100, mangle: flipPayload, dropped: true},
	}
	buf := make([]byte, 2000)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counter := "InCsumErrors"
			if tt.v6 {
				counter = "Udp6InCsumErrors"
			}
			before := snmpCounter(t, k.ns, counter)
			msg := []byte(strings.Repeat(fmt.Sprintf("%02d", i), tt.size)[:tt.size])
			f := k.frame(t, tt.v6, msg, tt.mangle)
			_, _, d, ok := ipUDP(t, f)
			if !ok {
				t.Fatal("built frame does not parse")
			}
			src, dst := peer4, kernel4
			if tt.v6 {
				src, dst = peer6, kernel6
			}
			if _, err := udp.Parse(d, src, dst); (err != nil) != tt.dropped {
				t.Fatalf("Parse of what the kernel should %s: %v", map[bool]string{false: "accept", true: "drop"}[tt.dropped], err)
			}
			if err := k.tap.WriteFrame(f); err != nil {
				t.Fatal(err)
			}
			want := msg
			if tt.dropped {
				want = []byte(fmt.Sprintf("after %s", tt.name))
				if err := k.tap.WriteFrame(k.frame(t, tt.v6, want, nil)); err != nil {
					t.Fatal(err)
				}
			}
			sock := k.sock(tt.v6)
			sock.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, from, err := sock.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("kernel socket: %v", err)
			}
			if from != netip.AddrPortFrom(src, 9) || !bytes.Equal(buf[:n], want) {
				t.Fatalf("kernel read %d bytes from %v, want %d bytes from %v:9 (%q)", n, from, len(want), src, want[:min(len(want), 16)])
			}
			after := snmpCounter(t, k.ns, counter)
			if tt.dropped && after != before+1 || !tt.dropped && after != before {
				t.Fatalf("%s went from %d to %d", counter, before, after)
			}
		})
	}
}
