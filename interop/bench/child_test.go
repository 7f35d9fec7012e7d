package bench

import (
	"strings"
	"testing"
)

func TestStatusKB(t *testing.T) {
	status := "Name:\tub\nVmHWM:\t   31520 kB\nVmRSS:\t   24160 kB\nThreads:\t9\n"
	if got := statusKB([]byte(status), "VmRSS:"); got != 24160<<10 {
		t.Errorf("VmRSS = %d, want %d", got, 24160<<10)
	}
	if got := statusKB([]byte(status), "VmHWM:"); got != 31520<<10 {
		t.Errorf("VmHWM = %d, want %d", got, 31520<<10)
	}
	for _, bad := range []string{"", "VmRSS:", "VmRSS:\tlots kB", "VmRSS:\t-1 kB", "VmRSS:\t99999999999999999999 kB"} {
		if got := statusKB([]byte(bad), "VmRSS:"); got != 0 {
			t.Errorf("statusKB(%q) = %d, want 0", bad, got)
		}
	}
}

func FuzzStatusKB(f *testing.F) {
	for _, s := range []string{"VmRSS:\t 24160 kB\n", "VmRSS:", "VmRSS: x", "VmRSS:\t18446744073709551615 kB", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := statusKB([]byte(s), "VmRSS:")
		if n%1024 != 0 {
			t.Errorf("statusKB(%q) = %d, not a whole number of kB", s, n)
		}
		if !strings.Contains(s, "VmRSS:") && n != 0 {
			t.Errorf("statusKB(%q) = %d without the field", s, n)
		}
	})
}

func TestParseLLAddr(t *testing.T) {
	mac, err := parseLLAddr("10.77.0.2 lladdr 02:aa:bb:cc:dd:ee REACHABLE\n")
	if err != nil || mac.String() != "02:aa:bb:cc:dd:ee" {
		t.Errorf("parseLLAddr = %v, %v", mac, err)
	}
	for _, bad := range []string{"", "10.77.0.2 FAILED", "10.77.0.2 lladdr", "10.77.0.2 lladdr zz:zz", "x lladdr 01:00:5e:00:00:01", "x lladdr 00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"} {
		if mac, err := parseLLAddr(bad); err == nil {
			t.Errorf("parseLLAddr(%q) = %v, want an error", bad, mac)
		}
	}
}

func FuzzParseLLAddr(f *testing.F) {
	for _, s := range []string{"10.77.0.2 lladdr 02:aa:bb:cc:dd:ee REACHABLE", "lladdr", "lladdr 01:00:5e:00:00:01", "a lladdr b lladdr 02:00:00:00:00:01", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mac, err := parseLLAddr(s)
		if err == nil && (len(mac) != 6 || mac[0]&1 != 0) {
			t.Errorf("parseLLAddr(%q) = %v: not a unicast Ethernet address", s, mac)
		}
	})
}
