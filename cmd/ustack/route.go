package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/ustack/ustack/filter"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link/vlan"
	"github.com/ustack/ustack/stack"
)

// routeDev is one -tap of route with the -addr and -vlan flags after it.
type routeDev struct {
	tap  string
	nics nicFlags
}

// routeDevs collects route's -tap, -addr and -vlan flags in their order:
// each -addr and -vlan belongs to the latest -tap, as for serve's one
// device (nicFlags).
type routeDevs struct{ devs []*routeDev }

// last returns the latest -tap, or an error naming flag before any.
func (r *routeDevs) last(flag string) (*routeDev, error) {
	if len(r.devs) == 0 {
		return nil, fmt.Errorf("-%s before any -tap", flag)
	}
	return r.devs[len(r.devs)-1], nil
}

type routeTapValue struct{ r *routeDevs }

func (v routeTapValue) String() string { return "" }

func (v routeTapValue) Set(s string) error {
	if s == "" {
		return errors.New("empty device name")
	}
	for _, d := range v.r.devs {
		if d.tap == s {
			return fmt.Errorf("-tap %s given twice", s)
		}
	}
	v.r.devs = append(v.r.devs, &routeDev{tap: s})
	return nil
}

type routeAddrValue struct{ r *routeDevs }

func (v routeAddrValue) String() string { return "" }

func (v routeAddrValue) Set(s string) error {
	d, err := v.r.last("addr")
	if err != nil {
		return err
	}
	return addrValue{&d.nics}.Set(s)
}

type routeVLANValue struct{ r *routeDevs }

func (v routeVLANValue) String() string { return "" }

func (v routeVLANValue) Set(s string) error {
	d, err := v.r.last("vlan")
	if err != nil {
		return err
	}
	return vlanValue{&d.nics}.Set(s)
}

// configs checks the devices and returns each one's nicConfig.
func (r *routeDevs) configs(noOffloads bool) ([]nicConfig, error) {
	if len(r.devs) == 0 {
		return nil, errors.New("give at least one -tap with its -addr")
	}
	var out []nicConfig
	for _, d := range r.devs {
		if len(d.nics.native) == 0 && len(d.nics.vlans) == 0 {
			return nil, fmt.Errorf("-tap %s has no -addr or -vlan after it", d.tap)
		}
		cfg, err := parseNICFlags(d.tap, "", &d.nics, "", "", "")
		if err != nil {
			return nil, fmt.Errorf("-tap %s: %w", d.tap, err)
		}
		cfg.noOffloads = noOffloads
		out = append(out, cfg)
	}
	return out, nil
}

func route(args []string) error {
	fs := flag.NewFlagSet("route", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: ustack route -tap NAME -addr ADDR/LEN [-addr ADDR/LEN]... [-vlan ID -addr ADDR/LEN]... [-tap NAME ...]... [-gw ADDR] [-gw6 ADDR] [-rules FILE] [-offloads=false]

Runs a router: one stack with forwarding on (RFC 1812, RFC 8200) and a NIC
per -tap device, or per VLAN of a -tap trunk. Each -addr and -vlan applies
to the latest -tap. NICs are named after their devices (tap0, and tap0.10
for VLAN 10 on tap0), as the rules' -i and -o name them. SIGUSR1 prints
the routing table, the rules with their counters, the connection tracking
table and the counters; Ctrl-C stops.

`)
		fs.PrintDefaults()
	}
	var devs routeDevs
	fs.Var(routeTapValue{&devs}, "tap", "an existing TAP device to route on (repeatable)")
	fs.Var(routeAddrValue{&devs}, "addr", "the latest -tap's address and prefix length, IPv4 or IPv6 (repeatable); after a -vlan, that VLAN's")
	fs.Var(routeVLANValue{&devs}, "vlan", "an 802.1Q VLAN sub-NIC with this ID (1-4094) on the latest -tap, a trunk; the -addr after it is its address (repeatable)")
	gw := fs.String("gw", "", "the IPv4 default route's next hop, on one NIC's subnet (optional)")
	gw6 := fs.String("gw6", "", "the IPv6 default route's next hop, inside an IPv6 -addr's prefix (optional)")
	rulesFile := fs.String("rules", "", "apply the packet filter rules in this file (iptables-save form, or one rule per line as iptables takes them): FORWARD and the nat table's PREROUTING (DNAT) and POSTROUTING (MASQUERADE, SNAT) see the routed traffic")
	offloads := fs.Bool("offloads", true, "open the devices with a virtio_net_hdr and ask the kernel for checksum offload and TSO (Linux)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfgs, err := devs.configs(!*offloads)
	var gateways []ip.Route
	if err == nil {
		gateways, err = routeGateways(cfgs, *gw, *gw6)
	}
	var rules *filter.Filter
	var s *stack.Stack
	if err == nil && *rulesFile != "" {
		rules, err = loadRules(*rulesFile, &s)
	}
	if err != nil {
		fs.Usage()
		return err
	}
	s = stack.New(stack.Options{Forwarding: true})
	var closers []func()
	var trunks []*vlan.Trunk
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for _, cfg := range cfgs {
		trunk, closeCapture, err := attachDevice(s, cfg)
		if err != nil {
			s.Close()
			closeAll()
			return fmt.Errorf("-tap %s: %w", cfg.tap, err)
		}
		closers = append(closers, closeCapture)
		if trunk != nil {
			trunks = append(trunks, trunk)
		}
	}
	for _, r := range gateways {
		if err := s.AddRoute(r); err != nil {
			s.Close()
			closeAll()
			return fmt.Errorf("default route via %v: %w", r.Gateway, err)
		}
	}
	if rules != nil {
		s.SetFilter(rules)
		fmt.Printf("packet filter: %s\n", *rulesFile)
	}
	var names []string
	for _, cfg := range cfgs {
		names = append(names, fmt.Sprintf("%s (%s)", cfg.tap, describeNICs(cfg)))
	}
	untilInterrupted(func() {
		fmt.Printf("ustack routing between %s (pid %d); SIGUSR1 prints the routes, rules, connection tracking and counters, Ctrl-C stops\n", strings.Join(names, ", "), os.Getpid())
	}, func() { printRouter(os.Stdout, s, rules) })
	err = s.Close()
	closeAll()
	for _, tr := range trunks {
		printTrunkStats(os.Stdout, tr.Stats())
	}
	return err
}

// routeGateways checks -gw and -gw6 against the devices' subnets and
// returns the default routes they make.
func routeGateways(cfgs []nicConfig, gw, gw6 string) ([]ip.Route, error) {
	var out []ip.Route
	var prefixes []netip.Prefix
	for _, c := range cfgs {
		if c.addr.IsValid() {
			prefixes = append(prefixes, c.addr)
		}
		prefixes = append(prefixes, c.more...)
		for _, v := range c.vlans {
			prefixes = append(prefixes, v.addr)
		}
	}
	on := func(a netip.Addr) bool {
		for _, p := range prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if gw != "" {
		a, err := netip.ParseAddr(gw)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("-gw %q is not an IPv4 address", gw)
		}
		if !on(a) {
			return nil, fmt.Errorf("-gw %v is on no NIC's subnet", a)
		}
		out = append(out, ip.Route{Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: a})
	}
	if gw6 != "" {
		a, err := netip.ParseAddr(gw6)
		if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
			return nil, fmt.Errorf("-gw6 %q is not an IPv6 address", gw6)
		}
		if !on(a) {
			return nil, fmt.Errorf("-gw6 %v is inside no IPv6 -addr's prefix", a)
		}
		out = append(out, ip.Route{Destination: netip.MustParsePrefix("::/0"), Gateway: a})
	}
	return out, nil
}

// printRouter writes what SIGUSR1 asks of a router: its routing table,
// the rules with their counters and the connection tracking table
// (printFilter), and the stack's counters.
func printRouter(w io.Writer, s *stack.Stack, rules *filter.Filter) {
	fmt.Fprintln(w, "routes:")
	for _, r := range s.Routes() {
		fmt.Fprintf(w, "  %v (%s)\n", r, s.NICName(stack.NICID(r.NIC)))
	}
	printFilter(w, rules)
	printStats(w, s.Stats())
}
