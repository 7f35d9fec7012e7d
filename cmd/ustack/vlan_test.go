package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ustack/ustack/internal/leakcheck"
	"github.com/ustack/ustack/internal/netns"
	"github.com/ustack/ustack/stack"
)

// parseServeNICs runs serve's flag parsing of the NIC flags in args.
func parseServeNICs(args ...string) (nicConfig, error) {
	var nics nicFlags
	var gw string
	tap := "ustap0"
	for i := 0; i < len(args); i += 2 {
		var err error
		switch args[i] {
		case "-addr":
			err = addrValue{&nics}.Set(args[i+1])
		case "-vlan":
			err = vlanValue{&nics}.Set(args[i+1])
		case "-gw":
			gw = args[i+1]
		case "-tun":
			tap = ""
		}
		if err != nil {
			return nicConfig{}, err
		}
	}
	if tap == "" {
		return parseNICFlags("", "ustun0", &nics, gw, "", "")
	}
	return parseNICFlags(tap, "", &nics, gw, "", "")
}

func TestServeVLANFlags(t *testing.T) {
	cfg, err := parseServeNICs("-addr", "10.0.0.2/24", "-vlan", "10", "-addr", "10.10.0.2/24", "-vlan", "20", "-addr", "10.20.0.2/24", "-gw", "10.20.0.1")
	if err != nil {
		t.Fatal(err)
	}
	want := []vlanNIC{{10, netip.MustParsePrefix("10.10.0.2/24")}, {20, netip.MustParsePrefix("10.20.0.2/24")}}
	if cfg.addr != netip.MustParsePrefix("10.0.0.2/24") || len(cfg.vlans) != 2 || cfg.vlans[0] != want[0] || cfg.vlans[1] != want[1] {
		t.Errorf("cfg addr %v vlans %v", cfg.addr, cfg.vlans)
	}
	if d := describeNICs(cfg); d != "10.0.0.2/24, VLAN 10 10.10.0.2/24, VLAN 20 10.20.0.2/24" {
		t.Errorf("describeNICs = %q", d)
	}
	// VLANs alone: no untagged NIC.
	cfg, err = parseServeNICs("-vlan", "10", "-addr", "10.10.0.2/24")
	if err != nil || cfg.addr.IsValid() || len(cfg.vlans) != 1 {
		t.Errorf("VLAN only: %v %v %v", cfg.addr, cfg.vlans, err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"vlan without addr", []string{"-vlan", "10"}, "-vlan 10 has no -addr"},
		{"vlan 0", []string{"-vlan", "0"}, "not a VLAN ID"},
		{"vlan 4095", []string{"-vlan", "4095"}, "not a VLAN ID"},
		{"vlan twice", []string{"-vlan", "10", "-addr", "10.1.0.2/24", "-vlan", "10"}, "given twice"},
		{"two addrs for a vlan", []string{"-vlan", "10", "-addr", "10.1.0.2/24", "-addr", "10.2.0.2/24"}, "second -addr for VLAN 10"},
		{"bad vlan addr", []string{"-vlan", "10", "-addr", "nonsense"}, "VLAN 10: -addr"},
		{"no addr at all", nil, "-addr"},
		{"gw on no subnet", []string{"-vlan", "10", "-addr", "10.1.0.2/24", "-gw", "10.9.0.1"}, "on no NIC's subnet"},
		{"tun", []string{"-tun", "x", "-vlan", "10", "-addr", "10.1.0.2/24"}, "needs -tap"},
	} {
		_, err := parseServeNICs(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	if _, err := parseQueues(2, nicConfig{vlans: want}); err == nil {
		t.Error("-queues 2 with -vlan accepted")
	}
}

// serve's stack on a TAP trunk with an untagged NIC and a VLAN: the
// kernel reaches the untagged one, and, if it has 802.1Q VLAN devices,
// the VLAN's.
func TestServeVLANStack(t *testing.T) {
	leakcheck.Check(t)
	ns := netns.NewT(t)
	for _, c := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "tuntap", "add", "dev", "ustap0", "mode", "tap"},
		{"ip", "link", "set", "ustap0", "up"},
		{"ip", "addr", "add", "10.6.0.1/24", "dev", "ustap0"},
	} {
		if out, err := ns.Run(c...); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	cfg, err := parseServeNICs("-addr", "10.6.0.2/24", "-vlan", "10", "-addr", "10.16.0.2/24")
	if err != nil {
		t.Fatal(err)
	}
	var s *stack.Stack
	if err := ns.Do(func() (err error) {
		s, _, _, err = startStackTrunk(cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ping := func(dst string) {
		t.Helper()
		if out, err := ns.Run("ping", "-c", "2", "-i", "0.05", "-W", "2", dst); err != nil {
			t.Errorf("ping %s: %v\n%s", dst, err, out)
		}
	}
	ping("10.6.0.2")
	if out, err := ns.Run("ip", "link", "add", "link", "ustap0", "name", "ustap0.10", "type", "vlan", "id", "10"); err != nil {
		t.Logf("no 802.1Q VLAN devices in this kernel (%s): only the untagged NIC is reached from it (link/vlan's kernel test tags in userspace)", strings.TrimSpace(string(out)))
		return
	}
	for _, c := range [][]string{{"ip", "addr", "add", "10.16.0.1/24", "dev", "ustap0.10"}, {"ip", "link", "set", "ustap0.10", "up"}} {
		if out, err := ns.Run(c...); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	ping("10.16.0.2")
}
