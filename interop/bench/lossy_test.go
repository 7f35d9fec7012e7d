package bench

import (
	"strings"
	"testing"
)

// nstatSample is the shape of /proc/net/snmp and /proc/net/netstat,
// shortened.
const nstatSample = `Ip: Forwarding DefaultTTL InReceives
Ip: 2 64 1043
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens RetransSegs
Tcp: 1 200 120000 -1 3 41
TcpExt: SyncookiesSent TCPTimeouts TCPLossProbes TCPDSACKRecv TCPDSACKOfoRecv TCPDSACKOldSent
TcpExt: 0 2 7 5 1 9
IpExt: InNoRoutes
IpExt: 0
`

func TestParseNstat(t *testing.T) {
	v := parseNstat(nstatSample)
	for k, want := range map[string]uint64{
		"Ip.InReceives": 1043, "Tcp.RetransSegs": 41, "Tcp.RtoMin": 200,
		"TcpExt.TCPTimeouts": 2, "TcpExt.TCPLossProbes": 7, "TcpExt.TCPDSACKRecv": 5,
		"TcpExt.TCPDSACKOfoRecv": 1, "TcpExt.TCPDSACKOldSent": 9, "IpExt.InNoRoutes": 0,
	} {
		if got, ok := v[k]; !ok || got != want {
			t.Errorf("%s = %d (present %v), want %d", k, got, ok, want)
		}
	}
	if _, ok := v["Tcp.MaxConn"]; ok {
		t.Errorf("Tcp.MaxConn (-1) parsed as a counter")
	}
	// A header without its values, or values of another group, pair
	// with nothing.
	v = parseNstat("Tcp: A B\nUdp: 1 2\nTcp: C\n")
	if len(v) != 0 {
		t.Errorf("mismatched lines parsed as %v", v)
	}
}

func FuzzParseNstat(f *testing.F) {
	f.Add(nstatSample)
	f.Add("")
	f.Add("Tcp:\nTcp:\n")
	f.Add("Tcp: A\nTcp: 18446744073709551616\n")
	f.Add("Tcp: A B\nTcp: 1\n")
	f.Fuzz(func(t *testing.T, s string) {
		for k := range parseNstat(s) {
			group, name, ok := strings.Cut(k, ".")
			if !ok || group == "" || name == "" {
				t.Errorf("key %q is not Group.Name", k)
			}
		}
	})
}
