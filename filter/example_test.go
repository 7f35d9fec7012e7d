package filter_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/ustack/ustack/filter"
	"github.com/ustack/ustack/internal/checksum"
	"github.com/ustack/ustack/ip"
)

// tcpSYN builds an IPv4 TCP SYN from src to dst, every checksum filled in.
func tcpSYN(src, dst netip.AddrPort) *ip.Packet {
	b := make([]byte, 40)
	b[0], b[8], b[9] = 0x45, 64, ip.ProtocolTCP
	binary.BigEndian.PutUint16(b[2:], 40)
	copy(b[12:], src.Addr().AsSlice())
	copy(b[16:], dst.Addr().AsSlice())
	binary.BigEndian.PutUint16(b[10:], checksum.Checksum(b[:20], 0))
	t := b[20:]
	binary.BigEndian.PutUint16(t[0:], src.Port())
	binary.BigEndian.PutUint16(t[2:], dst.Port())
	t[12], t[13] = 5<<4, 0x02 // 20-byte header, SYN
	binary.BigEndian.PutUint16(t[14:], 65535)
	binary.BigEndian.PutUint16(t[16:], checksum.Checksum(t, checksum.PseudoHeader(src.Addr(), dst.Addr(), ip.ProtocolTCP, 20)))
	return &ip.Packet{Source: src.Addr(), Destination: dst.Addr(), Protocol: ip.ProtocolTCP, Datagram: b, Payload: t}
}

// Load a rule file in iptables-save form and ask what INPUT does with
// two SYNs.
func ExampleFilter_Load() {
	rules := `
*filter
:INPUT DROP [0:0]
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p tcp -s 192.168.1.0/24 -m tcp --dport 80 -j ACCEPT
-A INPUT -p tcp -j REJECT --reject-with tcp-reset
COMMIT
`
	f := filter.New(filter.Config{})
	if err := f.Load(strings.NewReader(rules)); err != nil {
		fmt.Println(err)
		return
	}
	now := time.Now()
	for _, src := range []string{"192.168.1.7:40000", "203.0.113.9:40000"} {
		p := &filter.Packet{IP: tcpSYN(netip.MustParseAddrPort(src), netip.MustParseAddrPort("192.168.1.1:80")), In: "eth0"}
		v := f.Hook(filter.Prerouting, p, now)
		if v.Action == filter.Accept {
			v = f.Hook(filter.Input, p, now)
		}
		fmt.Printf("%s: %v\n", src, v)
	}
	fmt.Print(f.Save(filter.TableFilter))
	// Output:
	// 192.168.1.7:40000: ACCEPT
	// 203.0.113.9:40000: REJECT --reject-with tcp-reset
	// -P INPUT DROP
	// -P FORWARD ACCEPT
	// -P OUTPUT ACCEPT
	// -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
	// -A INPUT -s 192.168.1.0/24 -p tcp -m tcp --dport 80 -j ACCEPT
	// -A INPUT -p tcp -j REJECT --reject-with tcp-reset
}

// Masquerade a LAN behind a router's WAN address: the first packet of a
// flow picks the binding, and conntrack applies it from then on.
func ExampleFilter_Hook_masquerade() {
	f := filter.New(filter.Config{LocalAddr: func(nic string, v6 bool) (netip.Addr, bool) {
		if nic == "wan0" && !v6 {
			return netip.MustParseAddr("198.51.100.1"), true
		}
		return netip.Addr{}, false
	}})
	if err := f.Exec("-t nat -A POSTROUTING -o wan0 -j MASQUERADE"); err != nil {
		fmt.Println(err)
		return
	}
	now := time.Now()
	p := &filter.Packet{IP: tcpSYN(netip.MustParseAddrPort("192.168.1.10:40000"), netip.MustParseAddrPort("203.0.113.5:443")), In: "lan0", Out: "wan0"}
	for _, h := range []filter.Hook{filter.Prerouting, filter.Forward, filter.Postrouting} {
		f.Hook(h, p, now)
	}
	sport := binary.BigEndian.Uint16(p.IP.Payload)
	fmt.Printf("out: %v:%d -> %v\n", p.IP.Source, sport, p.IP.Destination)
	fmt.Println("IPv4 header checksum ok:", checksum.Checksum(p.IP.Datagram[:20], 0) == 0)
	var b strings.Builder
	f.Conntrack().List(&b, now)
	fmt.Print(b.String())
	// Output:
	// out: 198.51.100.1:40000 -> 203.0.113.5
	// IPv4 header checksum ok: true
	// tcp      6 120 SYN_SENT src=192.168.1.10 dst=203.0.113.5 sport=40000 dport=443 [UNREPLIED] src=203.0.113.5 dst=198.51.100.1 sport=443 dport=40000 mark=0 use=1
}

// A tracer learns, for every hook, the verdict, the rule that gave it
// (its number in its chain and its -S text) or the policy, and the
// packet's conntrack state: what ustack serve -trace prints.
func ExampleFilter_SetTracer() {
	f := filter.New(filter.Config{})
	for _, cmd := range []string{
		"-P INPUT DROP",
		"-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
		"-A INPUT -p tcp -s 192.168.1.0/24 -m tcp --dport 80 -j ACCEPT",
	} {
		if err := f.Exec(cmd); err != nil {
			fmt.Println(err)
			return
		}
	}
	f.SetTracer(func(d *filter.Decision) {
		if d.Hook == filter.Input {
			fmt.Printf("%s from %v\n", d, d.IP.Source)
		}
	})
	now := time.Now()
	for _, src := range []string{"192.168.1.7:40000", "203.0.113.9:40000"} {
		p := &filter.Packet{IP: tcpSYN(netip.MustParseAddrPort(src), netip.MustParseAddrPort("192.168.1.1:80")), In: "eth0"}
		if f.Hook(filter.Prerouting, p, now).Action == filter.Accept {
			f.Hook(filter.Input, p, now)
		}
	}
	// Output:
	// INPUT ACCEPT by rule 2 "-A INPUT -s 192.168.1.0/24 -p tcp -m tcp --dport 80 -j ACCEPT", ct NEW SYN_SENT from 192.168.1.7
	// INPUT DROP by policy of INPUT, ct NEW SYN_SENT from 203.0.113.9
}
