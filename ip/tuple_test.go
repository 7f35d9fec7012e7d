package ip

import (
	"net/netip"
	"testing"
)

func TestTuple(t *testing.T) {
	tu := Tuple{
		Local:  netip.MustParseAddrPort("10.0.0.2:80"),
		Remote: netip.MustParseAddrPort("10.0.0.1:41234"),
	}
	if got, want := tu.String(), "10.0.0.2:80 <-> 10.0.0.1:41234"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	r := tu.Reverse()
	if r.Local != tu.Remote || r.Remote != tu.Local {
		t.Errorf("Reverse() = %v", r)
	}
	if r.Reverse() != tu {
		t.Errorf("Reverse().Reverse() = %v, want %v", r.Reverse(), tu)
	}
	m := map[Tuple]int{tu: 1}
	same := Tuple{
		Local:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, 2}), 80),
		Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, 1}), 41234),
	}
	if m[same] != 1 || m[r] != 0 {
		t.Errorf("map lookup: same=%d reversed=%d, want 1, 0", m[same], m[r])
	}
}
