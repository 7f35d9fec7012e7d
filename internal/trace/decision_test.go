package trace

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/filter"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/ipv4"
	"github.com/ustack/ustack/ipv6"
)

// TestDecisionGolden: the lines a Writer prints for the decisions of a
// real filter (the notes' stateful rules) on a TCP handshake to an open
// port, a SYN to a rejected port, one dropped by the policy, an IPv6
// echo request and a neighbour solicitation (UNTRACKED, as Linux leaves
// NDP), compared with testdata/decisions.golden.
func TestDecisionGolden(t *testing.T) {
	f := filter.New(filter.Config{})
	if err := f.Load(strings.NewReader(`*filter
:INPUT DROP [0:0]
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p ipv6-icmp -j ACCEPT
-A INPUT -p tcp -s 10.0.0.0/24 -m tcp --dport 7 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 81 -j REJECT --reject-with tcp-reset
COMMIT
`)); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w := NewWriter(&out, nil)
	f.SetTracer(w.Decision)
	now := time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)
	pkt4 := func(b []byte) *ip.Packet {
		h, err := ipv4.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		return &ip.Packet{Source: h.Source(), Destination: h.Destination(), Protocol: h.Protocol(), Datagram: h, Payload: h.Payload()}
	}
	in := func(p *ip.Packet) {
		fp := filter.Packet{IP: p, In: "tap0"}
		if f.Hook(filter.Prerouting, &fp, now).Action == filter.Accept {
			f.Hook(filter.Input, &fp, now)
		}
	}
	in(pkt4(ip4(ip.ProtocolTCP, tcpSeg(ip4A, ip4B, 0x02, 1000, 0, synOp, 0), ipv4.Fields{})))
	// The reply, sent: from ip4B:7 to ip4A:40000.
	synAck := tcpSeg(ip4B, ip4A, 0x12, 5000, 1001, nil, 0)
	synAck[0], synAck[1], synAck[2], synAck[3] = 0, 7, 0x9c, 0x40
	rp := &ip.Packet{Source: ip4B, Destination: ip4A, Protocol: ip.ProtocolTCP, Payload: synAck}
	fp := filter.Packet{IP: rp, Out: "tap0"}
	f.Hook(filter.Output, &fp, now)
	in(pkt4(ip4(ip.ProtocolTCP, tcpSeg(ip4A, ip4B, 0x10, 1001, 5001, nil, 0), ipv4.Fields{})))
	rej := tcpSeg(ip4A, ip4B, 0x02, 1000, 0, nil, 0)
	rej[2], rej[3] = 0, 81
	in(pkt4(ip4(ip.ProtocolTCP, rej, ipv4.Fields{})))
	other := tcpSeg(ip4A, ip4B, 0x02, 1000, 0, nil, 0)
	other[2], other[3] = 0, 82
	in(pkt4(ip4(ip.ProtocolTCP, other, ipv4.Fields{})))
	echo := ip6(ipv6.NextHeaderICMPv6, icmpMsg(ipv6.TypeEchoRequest, 0, []byte{0, 1, 0, 1}))
	in(&ip.Packet{Source: ip6A, Destination: ip6B, Protocol: ip.ProtocolICMPv6, Datagram: echo, Payload: echo[ipv6.HeaderLen:]})
	ns := ip6(ipv6.NextHeaderICMPv6, icmpMsg(ipv6.TypeNeighborSolicitation, 0, append(make([]byte, 4), ip6B.AsSlice()...)))
	in(&ip.Packet{Source: ip6A, Destination: ip6B, Protocol: ip.ProtocolICMPv6, Datagram: ns, Payload: ns[ipv6.HeaderLen:]})

	path := filepath.Join("testdata", "decisions.golden")
	if *update {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("decisions:\n got:\n%s\nwant:\n%s", out.Bytes(), want)
	}
}
