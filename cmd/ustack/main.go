// Command ustack is the command-line front door of the ustack userspace
// TCP/IP stack.
//
//	ustack serve -tap NAME -addr 10.0.0.2/24 [-gw 10.0.0.1] [-mac MAC] [-pcap FILE] [-echo PORT] [-http PORT] [-discard PORT] [-chargen PORT] [-offloads=false]
//	ustack serve -tap NAME [-addr 10.0.0.2/24] -vlan 10 -addr 10.10.0.2/24 [-vlan 20 -addr 10.20.0.2/24]... [-vlan-keep-mtu] [flags as above]
//	ustack route -tap NAME -addr 10.1.0.1/24 -tap NAME -addr 10.2.0.1/24 [-vlan ID -addr ADDR/LEN]... [-gw ADDR] [-gw6 ADDR] [-rules FILE]
//	ustack proxy -tun NAME [-addr 10.255.255.1/24] [-fullcone]
//	ustack demo [-pcap FILE] [-offloads=false]
//	ustack script [-v] [-lenient-options] FILE...
//	ustack tsg FILE.pcap [-conn LOCAL-REMOTE] [-o out.svg]
//	ustack trace [-c N] [-notime] FILE.pcap
//
// serve runs a stack on an existing TAP (or TUN) device until interrupted,
// with -vlan a NIC per 802.1Q VLAN on a TAP trunk;
// route runs a router between several TAP devices (and VLANs), with the
// packet filter's FORWARD chain and NAT;
// proxy relays every TCP connection and UDP flow that enters a TUN device
// through the host's own sockets (a transparent proxy, as tun2socks);
// demo builds a private network namespace with a TAP device, runs a stack in
// it, exercises it from the kernel side and removes everything again.
package main

import (
	"fmt"
	"os"
)

func usage() {
	fmt.Fprintf(os.Stderr, `usage: ustack <command> [flags]

commands:
  serve   run a stack on an existing TAP or TUN device until interrupted
  route   route between TAP devices (and VLANs on them): forwarding,
          the FORWARD chain, DNAT and MASQUERADE (-rules)
  proxy   relay every TCP connection and UDP flow entering a TUN device
          through the host's own sockets (a transparent proxy)
  demo    create a private namespace with a TAP device, run a stack there,
          exercise it from the kernel and clean up (needs root)
  script  run packetdrill-syntax .pkt scripts against ustack in virtual time
  tsg     draw the time-sequence graph of a TCP connection from a pcap
          capture (serve -pcap, tcpdump -w) as an SVG
  trace   print each frame of a pcap capture through the layers, one
          indented line per layer (serve -trace does it live)

Run "ustack <command> -h" for a command's flags.
`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "route":
		err = route(os.Args[2:])
	case "proxy":
		err = proxy(os.Args[2:])
	case "demo":
		err = demo(os.Args[2:])
	case "script":
		err = scriptCmd(os.Args[2:])
	case "tsg":
		err = tsgCmd(os.Args[2:])
	case "trace":
		err = traceCmd(os.Args[2:])
	case "-h", "-help", "--help", "help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "ustack: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ustack %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
