package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"github.com/ustack/ustack/filter"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ustack/ustack/internal/trace"
	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/pcap"
	"github.com/ustack/ustack/link/vlan"
	"github.com/ustack/ustack/stack"
	"github.com/ustack/ustack/tcp"
)

// nicConfig is what serve and demo need to attach a stack to a device.
type nicConfig struct {
	tap, tun string
	addr     netip.Prefix
	// more are the addresses after the first (-addr repeated), IPv4 or
	// IPv6; gw6 the IPv6 default gateway; slaac turns on
	// stack.Options.SLAAC.
	more     []netip.Prefix
	gw6      netip.Addr
	slaac    bool
	gw       netip.Addr
	mac      link.MAC
	pcapFile string
	tcp      *tcp.Config // nil: the stack's defaults
	// noOffloads opens the device without its vnet header and offloads
	// (link.TAPOptions.NoOffloads).
	noOffloads bool
	// queues is the number of the device's queues
	// (link.TAPOptions.Queues), each read by its own goroutine; 0 or 1
	// means one.
	queues int
	// vlans are 802.1Q VLAN sub-NICs on the device (serve -vlan): the
	// device is then a trunk (link/vlan), and addr, if valid, the
	// address of its untagged NIC. vlanKeepMTU keeps the device's MTU
	// on them rather than 4 bytes less.
	vlans       []vlanNIC
	vlanKeepMTU bool
	// trace, if not nil, gets every frame of the device through the
	// layers and the connections' state changes (serve -trace).
	trace *trace.Writer
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ustack serve -tap NAME|-tun NAME -addr ADDR/LEN [-addr ADDR/LEN]... [-vlan ID -addr ADDR/LEN]... [-vlan-keep-mtu] [-gw ADDR] [-gw6 ADDR] [-slaac] [-mac MAC] [-pcap FILE] [-rules FILE] [-echo PORT] [-http PORT] [-discard PORT] [-chargen PORT] [-offloads=false] [-queues N] [-trace]\n\n")
		fs.PrintDefaults()
	}
	tap := fs.String("tap", "", "existing TAP device to attach to")
	tun := fs.String("tun", "", "existing TUN device to attach to (instead of -tap)")
	var nics nicFlags
	fs.Var(addrValue{&nics}, "addr", "ustack's address and prefix length, for example 10.0.0.2/24 or fd00::2/64; repeat for more (IPv6 ones are assigned after duplicate address detection); after a -vlan, that VLAN's")
	fs.Var(vlanValue{&nics}, "vlan", "an 802.1Q VLAN sub-NIC with this ID (1-4094) on the TAP device, a trunk; the -addr after it is its address (repeatable; an -addr before any -vlan is then the untagged NIC's, and optional)")
	traceFlag := fs.Bool("trace", false, "print every frame through the layers (L2, L3, L4, one indented line each), each TCP connection's opening and end, and with -rules the filter's verdict at each hook with the rule that gave it and the conntrack state, on standard output")
	vlanKeepMTU := fs.Bool("vlan-keep-mtu", false, "give VLAN sub-NICs the device's MTU, as Linux's VLAN devices have (default: 4 bytes less, for the tag)")
	gw := fs.String("gw", "", "default IPv4 gateway (optional)")
	gw6 := fs.String("gw6", "", "default IPv6 gateway, for example the router's fe80:: address (optional)")
	slaac := fs.Bool("slaac", false, "form IPv6 addresses from router advertisements (RFC 4862 SLAAC)")
	mac := fs.String("mac", "", "ustack's MAC address (default: random, locally administered)")
	pcapFile := fs.String("pcap", "", "write every frame to this libpcap file")
	echoPort := fs.Int("echo", 0, "serve the echo protocol on this TCP and UDP port (0: off)")
	httpPort := fs.Int("http", 0, "serve HTTP on this TCP port: GET / and GET /bytes/N (0: off)")
	discardPort := fs.Int("discard", 0, "serve discard (RFC 863) on this TCP and UDP port: what a client sends is thrown away (0: off)")
	chargenPort := fs.Int("chargen", 0, "serve chargen (RFC 864) on this TCP and UDP port: an endless stream to each TCP client (0: off)")
	cookies := fs.String("syncookies", "when-full", "when listeners answer SYNs with SYN cookies: when-full, never or always")
	offloads := fs.Bool("offloads", true, "open the device with a virtio_net_hdr and ask the kernel for checksum offload and TSO (Linux)")
	rulesFile := fs.String("rules", "", "apply the packet filter rules in this file (iptables-save form: *filter ... COMMIT, or one rule per line as iptables takes them: -A INPUT -p tcp --dport 80 -j ACCEPT); SIGUSR1 prints them with their counters and the connection tracking table")
	queues := fs.Int("queues", 1, "open the device with this many queues (IFF_MULTI_QUEUE; a device made beforehand needs ip tuntap add ... multi_queue), a reader goroutine each; needs -offloads and no -pcap")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, err := parseNICFlags(*tap, *tun, &nics, *gw, *mac, *pcapFile)
	if err == nil {
		err = cfg.parseGW6(*gw6)
	}
	cfg.slaac = *slaac
	cfg.noOffloads = !*offloads
	cfg.vlanKeepMTU = *vlanKeepMTU
	if *traceFlag {
		cfg.trace = trace.NewWriter(os.Stdout, time.Now)
	}
	if err == nil {
		cfg.queues, err = parseQueues(*queues, cfg)
	}
	if err == nil {
		err = errors.Join(parsePort("echo", *echoPort), parsePort("http", *httpPort),
			parsePort("discard", *discardPort), parsePort("chargen", *chargenPort))
	}
	if err == nil {
		var m tcp.SYNCookieMode
		if m, err = tcp.ParseSYNCookieMode(*cookies); err != nil {
			err = fmt.Errorf("-syncookies: %v", err)
		} else {
			tc := tcp.DefaultConfig()
			tc.SYNCookies = m
			cfg.tcp = &tc
		}
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
	s, trunk, closeCapture, err := startStackTrunk(cfg)
	if err != nil {
		return err
	}
	if rules != nil {
		if cfg.trace != nil {
			// Each hook's verdict, the rule that gave it and the
			// conntrack state, as a trace line.
			rules.SetTracer(cfg.trace.Decision)
		}
		s.SetFilter(rules)
		fmt.Printf("packet filter: %s\n", *rulesFile)
	}
	var sv services
	if *echoPort != 0 {
		if err := sv.startEcho(s, *echoPort); err != nil {
			s.Close()
			closeCapture()
			return err
		}
		fmt.Printf("echo on TCP and UDP port %d\n", *echoPort)
	}
	if *httpPort != 0 {
		if err := sv.startHTTP(s, *httpPort); err != nil {
			sv.stop()
			s.Close()
			closeCapture()
			return err
		}
		fmt.Printf("HTTP on TCP port %d (GET /, GET /bytes/N)\n", *httpPort)
	}
	for _, b := range []struct {
		name  string
		port  int
		start func(*stack.Stack, int) error
	}{
		{"discard", *discardPort, sv.startDiscard},
		{"chargen", *chargenPort, sv.startChargen},
	} {
		if b.port == 0 {
			continue
		}
		if err := b.start(s, b.port); err != nil {
			sv.stop()
			s.Close()
			closeCapture()
			return fmt.Errorf("-%s %d: %w", b.name, b.port, err)
		}
		fmt.Printf("%s on TCP and UDP port %d\n", b.name, b.port)
	}
	untilInterrupted(func() {
		fmt.Printf("ustack serving %s on %s (pid %d); SIGUSR1 prints the connection table, Ctrl-C stops\n", describeNICs(cfg), cfg.device(), os.Getpid())
	}, func() {
		printConnections(os.Stdout, s.Connections())
		sv.printListeners(os.Stdout)
		printFilter(os.Stdout, rules)
	})
	// Closing the stack resets the connections still open, which ends the
	// services' handlers; then the services can stop.
	err = s.Close()
	sv.stop()
	closeCapture()
	printStats(os.Stdout, s.Stats())
	if trunk != nil {
		printTrunkStats(os.Stdout, trunk.Stats())
	}
	return err
}

// untilInterrupted calls ready once the signals are caught (so that a
// SIGUSR1 sent as soon as ready's line is read does not kill the
// process), then dump at every SIGUSR1 until SIGINT or SIGTERM comes,
// and once more then.
func untilInterrupted(ready, dump func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	ready()
	for got := range sig {
		if got != syscall.SIGUSR1 {
			break
		}
		dump()
	}
	signal.Stop(sig)
	dump()
}

// loadRules reads the packet filter rules of file name. *s, once set, is
// the stack whose NICs' addresses MASQUERADE and REDIRECT use
// (stack.Stack.LocalAddr).
func loadRules(name string, s **stack.Stack) (*filter.Filter, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("-rules: %w", err)
	}
	local := func(nic string, v6 bool) (netip.Addr, bool) { return (*s).LocalAddr(nic, v6) }
	f := filter.New(filter.Config{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)), LocalAddr: local})
	if err := f.Load(bytes.NewReader(b)); err != nil {
		return nil, fmt.Errorf("-rules %s: %w", name, err)
	}
	return f, nil
}

// printFilter writes the rules of f with their counters (iptables -L -v
// -n) and its connection tracking table (conntrack -L); nothing for nil.
func printFilter(w io.Writer, f *filter.Filter) {
	if f == nil {
		return
	}
	fmt.Fprintln(w, "filter table:")
	fmt.Fprint(w, f.List(filter.TableFilter))
	fmt.Fprintln(w, "nat table:")
	fmt.Fprint(w, f.List(filter.TableNAT))
	fmt.Fprintln(w, "connection tracking:")
	f.Conntrack().List(w, time.Now())
}

func (c nicConfig) device() string {
	if c.tun != "" {
		return "TUN " + c.tun
	}
	return "TAP " + c.tap
}

func parseNICFlags(tap, tun string, nics *nicFlags, gw, mac, pcapFile string) (nicConfig, error) {
	cfg := nicConfig{tap: tap, tun: tun, pcapFile: pcapFile}
	if (tap == "") == (tun == "") {
		return cfg, errors.New("give exactly one of -tap and -tun")
	}
	var err error
	if cfg.vlans, err = nics.parseVLANs(); err != nil {
		return cfg, err
	}
	if len(cfg.vlans) > 0 && tun != "" {
		return cfg, errors.New("-vlan needs -tap: a TUN device carries no Ethernet frames to tag")
	}
	if len(cfg.vlans) > 0 && len(nics.native) > 1 {
		return cfg, errors.New("with -vlan, give the untagged NIC one -addr")
	}
	if len(nics.native) > 0 || len(cfg.vlans) == 0 {
		native := nics.native
		if len(native) == 0 {
			native = []string{""}
		}
		for i, a := range native {
			p, err := parseAddr(a)
			if err != nil {
				return cfg, err
			}
			if i == 0 {
				cfg.addr = p
			} else {
				cfg.more = append(cfg.more, p)
			}
		}
	}
	if gw != "" {
		var err error
		if cfg.gw, err = netip.ParseAddr(gw); err != nil || !cfg.gw.Is4() {
			return cfg, fmt.Errorf("-gw %q is not an IPv4 address", gw)
		}
		on := false
		for _, p := range append([]netip.Prefix{cfg.addr}, cfg.more...) {
			on = on || p.IsValid() && p.Contains(cfg.gw)
		}
		for _, v := range cfg.vlans {
			on = on || v.addr.Contains(cfg.gw)
		}
		if !on {
			return cfg, fmt.Errorf("-gw %v is on no NIC's subnet (%s)", cfg.gw, describeNICs(cfg))
		}
	}
	if mac != "" {
		var err error
		if cfg.mac, err = link.ParseMAC(mac); err != nil {
			return cfg, fmt.Errorf("-mac: %v", err)
		}
	}
	return cfg, nil
}

// parseGW6 checks the -gw6 flag: an IPv6 address, link-local or inside an
// IPv6 -addr's prefix.
func (c *nicConfig) parseGW6(gw6 string) error {
	if gw6 == "" {
		return nil
	}
	a, err := netip.ParseAddr(gw6)
	if err != nil || !a.Is6() || a.Is4In6() {
		return fmt.Errorf("-gw6 %q is not an IPv6 address", gw6)
	}
	a = a.WithZone("")
	ok := a.IsLinkLocalUnicast()
	for _, p := range append([]netip.Prefix{c.addr}, c.more...) {
		ok = ok || p.Contains(a)
	}
	if !ok {
		return fmt.Errorf("-gw6 %v is neither link-local nor inside an IPv6 -addr's prefix", a)
	}
	c.gw6 = a
	return nil
}

// maxQueues bounds -queues: Linux's MAX_TAP_QUEUES (DEFAULT_MAX_NUM_RSS_QUEUES,
// include/linux/netdevice.h) is 256.
const maxQueues = 256

// parseQueues checks the -queues flag against the rest of cfg.
func parseQueues(n int, cfg nicConfig) (int, error) {
	switch {
	case n < 1 || n > maxQueues:
		return 0, fmt.Errorf("-queues %d: want 1 to %d", n, maxQueues)
	case n > 1 && cfg.noOffloads:
		return 0, fmt.Errorf("-queues %d needs the vnet-header path: drop -offloads=false", n)
	case n > 1 && cfg.pcapFile != "":
		return 0, fmt.Errorf("-queues %d: -pcap records one queue only; capture on the kernel side instead", n)
	case n > 1 && cfg.trace != nil:
		return 0, fmt.Errorf("-queues %d: -trace follows one queue only", n)
	case n > 1 && len(cfg.vlans) > 0:
		return 0, fmt.Errorf("-queues %d: a VLAN trunk reads one queue only", n)
	}
	return n, nil
}

// openEndpoint opens the device of cfg, wrapped in a capture if asked.
func openEndpoint(cfg nicConfig) (link.Endpoint, func(), error) {
	var ep link.Endpoint
	var err error
	if cfg.tun != "" {
		ep, err = link.OpenTUN(cfg.tun, link.TUNOptions{NoOffloads: cfg.noOffloads, Queues: cfg.queues})
	} else {
		ep, err = link.OpenTAP(cfg.tap, link.TAPOptions{MAC: cfg.mac, NoOffloads: cfg.noOffloads, Queues: cfg.queues})
	}
	if err != nil {
		return nil, nil, err
	}
	ep, closeCapture, err := wrapCapture(ep, cfg)
	if err != nil || cfg.trace == nil {
		return ep, closeCapture, err
	}
	// Below a VLAN trunk, so that the trace shows the tags.
	name := cfg.tap
	if name == "" {
		name = cfg.tun
	}
	tep, err := trace.NewEndpoint(ep, cfg.trace, name)
	if err != nil {
		ep.Close()
		closeCapture()
		return nil, nil, err
	}
	return tep, closeCapture, nil
}

// wrapCapture wraps ep in a libpcap recorder when cfg asks for one.
func wrapCapture(ep link.Endpoint, cfg nicConfig) (link.Endpoint, func(), error) {
	closeCapture := func() {}
	if cfg.pcapFile != "" {
		f, err := os.Create(cfg.pcapFile)
		if err != nil {
			ep.Close()
			return nil, nil, err
		}
		pep, err := pcap.New(ep, f, pcap.Options{})
		if err != nil {
			f.Close()
			ep.Close()
			return nil, nil, err
		}
		ep = pep
		closeCapture = func() { f.Close() }
	}
	return ep, closeCapture, nil
}

// startStack attaches a new stack to the device of cfg.
func startStack(cfg nicConfig) (*stack.Stack, func(), error) {
	s, _, closeCapture, err := startStackTrunk(cfg)
	return s, closeCapture, err
}

// startStackTrunk is startStack that also returns the device's VLAN
// trunk when cfg has VLANs (nil otherwise).
func startStackTrunk(cfg nicConfig) (*stack.Stack, *vlan.Trunk, func(), error) {
	opts := stack.Options{TCP: cfg.tcp, SLAAC: cfg.slaac}
	if cfg.trace != nil {
		opts.Logger = slog.New(trace.NewEventHandler(cfg.trace))
	}
	s := stack.New(opts)
	trunk, closeCapture, err := attachDevice(s, cfg)
	if err != nil {
		s.Close()
		return nil, nil, nil, err
	}
	return s, trunk, closeCapture, nil
}

// attachDevice opens the device of cfg and attaches it to s: one NIC
// named after the device, or with VLANs a trunk with a NIC per VLAN
// (attachVLANs), with cfg's addresses and gateways. It returns the trunk
// (nil without VLANs) and what closes the capture. On failure the caller
// closes s, which closes the NICs attached so far.
func attachDevice(s *stack.Stack, cfg nicConfig) (*vlan.Trunk, func(), error) {
	ep, closeCapture, err := openEndpoint(cfg)
	if err != nil {
		return nil, nil, err
	}
	var trunk *vlan.Trunk
	id := stack.NICID(1)
	if len(cfg.vlans) > 0 {
		var native stack.NICID
		if trunk, native, err = attachVLANs(s, ep, cfg); native != 0 {
			id = native
		}
	} else if id, err = s.AddNIC(ep, cfg.addr); err != nil {
		ep.Close()
	} else {
		// The NIC is named after its device, for the filter's -i and -o,
		// whatever capture or trace wraps it.
		err = s.SetNICName(id, cfg.deviceName())
	}
	fail := func(err error) (*vlan.Trunk, func(), error) {
		closeCapture()
		return nil, nil, err
	}
	if err != nil {
		return fail(err)
	}
	for _, p := range cfg.more {
		if err := s.AddAddress(id, p); err != nil {
			return fail(fmt.Errorf("-addr %v: %w", p, err))
		}
	}
	if cfg.gw6.IsValid() {
		if err := s.AddRoute(ip.Route{Destination: netip.MustParsePrefix("::/0"), Gateway: cfg.gw6, NIC: int(id)}); err != nil {
			return fail(fmt.Errorf("-gw6: %w", err))
		}
	}
	if cfg.gw.IsValid() {
		if err := s.AddRoute(ip.Route{Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: cfg.gw}); err != nil {
			return fail(err)
		}
	}
	return trunk, closeCapture, nil
}

// deviceName is the name of cfg's TAP or TUN device.
func (c nicConfig) deviceName() string {
	if c.tun != "" {
		return c.tun
	}
	return c.tap
}

// printStats writes the non-zero counters, layer by layer.
func printStats(w io.Writer, st stack.Stats) {
	fmt.Fprintln(w, "counters (non-zero):")
	for _, line := range st.Lines() {
		fmt.Fprintln(w, "  "+line)
	}
}
