package trace

import (
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/filter"
	"github.com/ustack/ustack/ip"
)

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// FuzzAppend: any bytes, as an Ethernet frame or a raw IP packet, trace
// without a panic into well-shaped lines.
func FuzzAppend(f *testing.F) {
	for _, tc := range goldenCases() {
		f.Add(tc.f.Data, tc.f.Raw)
	}
	f.Fuzz(func(t *testing.T, b []byte, raw bool) {
		fr := Frame{Dir: In, NIC: "fuzz", Data: b, Raw: raw}
		checkShape(t, "fuzz", Append(nil, &fr))
	})
}

// FuzzDecision: the filter's decision on any transport bytes, of any
// protocol, formats without a panic into one line.
func FuzzDecision(f *testing.F) {
	for _, tc := range goldenCases() {
		f.Add(tc.f.Data, uint8(6))
	}
	f.Add([]byte{1, 2}, uint8(17))
	f.Add([]byte{135, 0}, uint8(58))
	f.Fuzz(func(t *testing.T, b []byte, proto uint8) {
		p := &ip.Packet{Source: ip4A, Destination: ip4B, Protocol: proto, Payload: b}
		if proto == ip.ProtocolICMPv6 {
			p.Source, p.Destination = ip6A, ip6B
		}
		d := filter.Decision{Hook: filter.Input, Chain: "INPUT", RuleNum: 1, Rule: "-A INPUT -j DROP", Verdict: filter.Verdict{Action: filter.Drop}, IP: p, In: "fuzz"}
		out := string(AppendDecision(nil, &d))
		if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
			t.Fatalf("not one line: %q", out)
		}
	})
}
