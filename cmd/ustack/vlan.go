package main

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/vlan"
	"github.com/ustack/ustack/stack"
)

// vlanNIC is a VLAN sub-NIC of serve's device: its VLAN ID and address.
type vlanNIC struct {
	vid  uint16
	addr netip.Prefix
}

// nicFlags collects serve's -addr and -vlan flags in their order: an
// -addr before any -vlan is the device's own (untagged) address, each one
// after a -vlan that VLAN's.
type nicFlags struct {
	native []string // the untagged NIC's addresses (IPv4, IPv6)
	vlans  []vlanFlag
}

type vlanFlag struct {
	vid  uint16
	addr string
}

// addrValue is the -addr flag of a nicFlags.
type addrValue struct{ n *nicFlags }

func (a addrValue) String() string {
	if a.n == nil {
		return ""
	}
	return strings.Join(a.n.native, ",")
}

func (a addrValue) Set(s string) error {
	if len(a.n.vlans) == 0 {
		a.n.native = append(a.n.native, s)
		return nil
	}
	v := &a.n.vlans[len(a.n.vlans)-1]
	if v.addr != "" {
		return fmt.Errorf("a second -addr for VLAN %d", v.vid)
	}
	v.addr = s
	return nil
}

// vlanValue is the -vlan flag of a nicFlags.
type vlanValue struct{ n *nicFlags }

func (v vlanValue) String() string { return "" }

func (v vlanValue) Set(s string) error {
	id, err := strconv.ParseUint(s, 10, 16)
	if err != nil || id < 1 || id > vlan.MaxVID {
		return fmt.Errorf("%q is not a VLAN ID (1 to %d)", s, vlan.MaxVID)
	}
	for _, o := range v.n.vlans {
		if o.vid == uint16(id) {
			return fmt.Errorf("VLAN %d given twice", id)
		}
	}
	v.n.vlans = append(v.n.vlans, vlanFlag{vid: uint16(id)})
	return nil
}

// parseAddr parses an -addr value: an IPv4 address with a prefix length.
func parseAddr(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("-addr %q is not an IP address with a prefix length", s)
	}
	return p, nil
}

// parseVLANs checks the VLANs of n: each with its address.
func (n *nicFlags) parseVLANs() ([]vlanNIC, error) {
	var out []vlanNIC
	for _, v := range n.vlans {
		if v.addr == "" {
			return nil, fmt.Errorf("-vlan %d has no -addr after it", v.vid)
		}
		p, err := parseAddr(v.addr)
		if err != nil {
			return nil, fmt.Errorf("VLAN %d: %v", v.vid, err)
		}
		out = append(out, vlanNIC{vid: v.vid, addr: p})
	}
	return out, nil
}

// attachVLANs makes ep a trunk and attaches to s its native NIC (if cfg
// has an untagged address), named after the device, and a sub-NIC per
// VLAN of cfg, named as Linux names VLAN devices (tap0.10), for the
// filter's -i and -o. It returns the native NIC's ID (0 without one). On
// failure the trunk, and so ep, is closed.
func attachVLANs(s *stack.Stack, ep link.Endpoint, cfg nicConfig) (*vlan.Trunk, stack.NICID, error) {
	tr, err := vlan.NewTrunk(ep)
	if err != nil {
		ep.Close()
		return nil, 0, err
	}
	fail := func(err error) (*vlan.Trunk, stack.NICID, error) {
		tr.Close()
		return nil, 0, err
	}
	var native stack.NICID
	if cfg.addr.IsValid() {
		nat, err := tr.Native(vlan.Config{})
		if err != nil {
			return fail(err)
		}
		if native, err = s.AddNIC(nat, cfg.addr); err != nil {
			return fail(fmt.Errorf("untagged NIC %v: %w", cfg.addr, err))
		}
		if err := s.SetNICName(native, cfg.deviceName()); err != nil {
			return fail(err)
		}
	}
	for _, v := range cfg.vlans {
		c := vlan.Config{}
		if cfg.vlanKeepMTU {
			c.MTU = ep.MTU()
		}
		sub, err := tr.Sub(v.vid, c)
		if err != nil {
			return fail(err)
		}
		id, err := s.AddNIC(sub, v.addr)
		if err != nil {
			return fail(fmt.Errorf("VLAN %d NIC %v: %w", v.vid, v.addr, err))
		}
		if err := s.SetNICName(id, fmt.Sprintf("%s.%d", cfg.deviceName(), v.vid)); err != nil {
			return fail(err)
		}
	}
	return tr, native, nil
}

// describeNICs is what serve says it serves: the untagged address and
// each VLAN's.
func describeNICs(cfg nicConfig) string {
	s := ""
	if cfg.addr.IsValid() {
		s = cfg.addr.String()
	}
	for _, p := range cfg.more {
		s += ", " + p.String()
	}
	for _, v := range cfg.vlans {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("VLAN %d %v", v.vid, v.addr)
	}
	return s
}

// printTrunkStats writes the trunk's non-zero counters.
func printTrunkStats(w io.Writer, st vlan.Stats) {
	fmt.Fprintln(w, "VLAN trunk (non-zero):")
	for _, c := range []struct {
		name string
		v    uint64
	}{
		{"frames in", st.FramesIn}, {"dropped, unknown VID", st.DropUnknownVID},
		{"dropped, untagged without a native NIC", st.DropUntagged},
		{"dropped, VID 4095", st.DropReservedVID}, {"dropped, malformed", st.DropMalformed},
		{"read errors", st.ReadErrors},
	} {
		if c.v != 0 {
			fmt.Fprintf(w, "  %s: %d\n", c.name, c.v)
		}
	}
	vids := make([]int, 0, len(st.VLANs))
	for vid := range st.VLANs {
		vids = append(vids, int(vid))
	}
	sort.Ints(vids)
	line := func(name string, c vlan.Counters) {
		fmt.Fprintf(w, "  %s: in %d frames (%d bytes), out %d frames (%d bytes)", name, c.FramesIn, c.BytesIn, c.FramesOut, c.BytesOut)
		if c.DropQueueFull != 0 {
			fmt.Fprintf(w, ", %d dropped (queue full)", c.DropQueueFull)
		}
		if c.PriorityTagged != 0 {
			fmt.Fprintf(w, ", %d priority-tagged", c.PriorityTagged)
		}
		fmt.Fprintln(w)
	}
	for _, vid := range vids {
		line(fmt.Sprintf("VLAN %d", vid), st.VLANs[uint16(vid)])
	}
	if st.Native != (vlan.Counters{}) {
		line("untagged", st.Native)
	}
}
