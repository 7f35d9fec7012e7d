package ipv6

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// TestMLDv2ReportGolden rebuilds the report Linux sent when an interface
// came up (captured like the other testdata, filter ip6): from ::, two
// CHANGE_TO_EXCLUDE records with no sources, joining the solicited-node
// groups of its addresses.
func TestMLDv2ReportGolden(t *testing.T) {
	want := linux(t, "mldv2-report")
	b := make([]byte, 200)
	n := PutMLDv2Report(b, netip.IPv6Unspecified(), []MulticastAddressRecord{
		{Type: ChangeToExclude, Group: netip.MustParseAddr("ff02::1:ff00:1")},
		{Type: ChangeToExclude, Group: netip.MustParseAddr("ff02::1:ff97:71c2")},
	})
	if !bytes.Equal(b[:n], want) {
		t.Fatalf("PutMLDv2Report\n got %x\nwant %x", b[:n], want)
	}
	h, err := ParseHeader(want)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseExtensions(h)
	if err != nil || c.Proto != NextHeaderICMPv6 || !hasRouterAlert(h) {
		t.Fatalf("chain %+v, %v", c, err)
	}
	if _, err := ParseICMP(h[c.Offset:], h.Source(), h.Destination()); err != nil {
		t.Fatal(err)
	}
}

func TestPutMLDv2ReportRefuses(t *testing.T) {
	b := make([]byte, 200)
	if n := PutMLDv2Report(b, netip.IPv6Unspecified(), []MulticastAddressRecord{{Type: ChangeToExclude, Group: addr1}}); n != 0 {
		t.Errorf("unicast group: %d", n)
	}
	if n := PutMLDv2Report(b[:60], netip.IPv6Unspecified(), []MulticastAddressRecord{{Type: ChangeToExclude, Group: AllNodes}}); n != 0 {
		t.Errorf("short buffer: %d", n)
	}
	ll := netip.MustParseAddr("fe80::1")
	n := PutMLDv2Report(b, ll, []MulticastAddressRecord{{Type: AllowNewSources, Group: netip.MustParseAddr("ff05::1"), Sources: []netip.Addr{addr1, addr2}}})
	h, _ := ParseHeader(b[:n])
	c, _ := ParseExtensions(h)
	m, err := ParseICMP(h[c.Offset:], ll, AllMLDv2Routers)
	if err != nil || len(m) != 8+20+32 || m[8] != AllowNewSources || m[11] != 2 {
		t.Errorf("report with sources: %v % x", err, m)
	}
}

// mldQuery builds a query packet with or without the router alert.
func mldQuery(src netip.Addr, hl uint8, alert bool, body []byte) (Header, ICMP) {
	var exts []ext
	if alert {
		exts = []ext{optionsHeader(NextHeaderHopByHop, OptionRouterAlert, 2, 0, 0)}
	} else {
		exts = []ext{optionsHeader(NextHeaderHopByHop)}
	}
	m := append([]byte{TypeMulticastListenerQuery, 0, 0, 0}, body...)
	SetICMPChecksum(m, src, AllNodes)
	b := packet(src, AllNodes, exts, NextHeaderICMPv6, m)
	b[offHopLimit] = hl
	c, _ := ParseExtensions(b)
	return b, ICMP(b[c.Offset:])
}

func TestParseMLDQuery(t *testing.T) {
	ll := netip.MustParseAddr("fe80::1")
	v1 := make([]byte, 20)
	v1[0], v1[1] = 0x27, 0x10 // 10000 ms
	v2 := make([]byte, 24+16)
	v2[0], v2[1] = 0x8f, 0xff // exponential form: (0xfff|0x1000) << (0+3) ms
	copy(v2[4:], netip.MustParseAddr("ff05::2").AsSlice())
	v2[22], v2[23] = 0, 1 // one source
	copy(v2[24:], addr1.AsSlice())
	for _, tc := range []struct {
		name  string
		src   netip.Addr
		hl    uint8
		alert bool
		body  []byte
		err   error
	}{
		{"v1", ll, 1, true, v1, nil},
		{"v2", ll, 1, true, v2, nil},
		{"25 bytes", ll, 1, true, v2[:21], ErrMLDLength},
		{"sources past the end", ll, 1, true, v2[:24], ErrMLDLength},
		{"global source", addr1, 1, true, v1, ErrMLDSource},
		{"unspecified source", netip.IPv6Unspecified(), 1, true, v1, ErrMLDSource},
		{"hop limit 2", ll, 2, true, v1, ErrMLDHopLimit},
		{"no router alert", ll, 1, false, v1, ErrMLDRouterAlert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, m := mldQuery(tc.src, tc.hl, tc.alert, tc.body)
			q, err := ParseMLDQuery(h, m)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if q.IsV1() {
				if q.MaximumResponseDelay() != 10*time.Second || q.NumberOfSources() != 0 || !q.Group().IsUnspecified() {
					t.Errorf("v1 query % x", q)
				}
				return
			}
			if q.MaximumResponseDelay() != time.Duration(0x1fff<<3)*time.Millisecond || q.NumberOfSources() != 1 ||
				q.Source(0) != addr1 || q.Group().String() != "ff05::2" {
				t.Errorf("v2 query % x: delay %v", q, q.MaximumResponseDelay())
			}
		})
	}
}

func FuzzParseMLDQuery(f *testing.F) {
	ll := netip.MustParseAddr("fe80::1")
	h, _ := mldQuery(ll, 1, true, make([]byte, 20))
	f.Add([]byte(h))
	h, _ = mldQuery(ll, 1, true, append(make([]byte, 22), 0, 2))
	f.Add([]byte(h))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		c, err := ParseExtensions(h)
		if err != nil || c.Proto != NextHeaderICMPv6 || len(h)-c.Offset < ICMPHeaderLen {
			return
		}
		m := ICMP(h[c.Offset:]) // the checksum is not what is fuzzed here
		q, err := ParseMLDQuery(h, m)
		if err != nil {
			return
		}
		_, _ = q.Group(), q.MaximumResponseDelay()
		for i := range q.NumberOfSources() {
			_ = q.Source(i)
		}
	})
}
