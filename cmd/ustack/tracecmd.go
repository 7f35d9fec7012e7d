package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ustack/ustack/internal/trace"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/pcap"
)

// traceCmd prints the frames of a capture layer by layer.
func traceCmd(args []string) error { return runTrace(args, os.Stdout, os.Stderr) }

func runTrace(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	count := fs.Int("c", 0, "stop after this many frames (0: all)")
	noTime := fs.Bool("notime", false, "print no timestamps")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: ustack trace [-c N] [-notime] FILE.pcap

Prints each frame of a libpcap capture (serve -pcap, tcpdump -w: Ethernet,
raw IP, Linux cooked) through the layers, one indented line per layer: L2
(MACs, 802.1Q tags, EtherType), L3 (addresses, TTL or hop limit, fragment
fields, length; ARP), L4 (TCP 4-tuple, flags, seq/ack, window, options and
length; UDP; ICMP and ICMPv6). serve -trace prints the same live.

`)
		fs.PrintDefaults()
	}
	file, err := parseOneFile(fs, args)
	if err != nil {
		return err
	}
	if *count < 0 {
		return fmt.Errorf("-c %d is negative", *count)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := pcap.NewReader(bufio.NewReader(f))
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	lt := r.LinkType()
	switch lt {
	case pcap.LinkTypeEthernet, pcap.LinkTypeRaw, pcap.LinkTypeIPv4, pcap.LinkTypeIPv6, pcap.LinkTypeLinuxSLL, pcap.LinkTypeLinuxSLL2:
	default:
		return fmt.Errorf("%s: link type %d is not traced (Ethernet, raw IP and Linux cooked captures are)", file, lt)
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	name := filepath.Base(file)
	var buf []byte
	for n := 0; *count == 0 || n < *count; n++ {
		rec, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			out.Flush()
			return fmt.Errorf("%s: %w", file, err)
		}
		fr := trace.Frame{Dir: trace.Captured, NIC: name, Data: rec.Data, OrigLen: rec.OrigLen}
		if !*noTime {
			fr.Time = rec.Time
		}
		switch lt {
		case pcap.LinkTypeEthernet:
		case pcap.LinkTypeLinuxSLL, pcap.LinkTypeLinuxSLL2:
			et, pkt, err := pcap.Network(lt, rec.Data)
			if err != nil || (et != link.EtherTypeIPv4 && et != link.EtherTypeIPv6) {
				buf = fmt.Appendf(buf[:0], "%s %s %d bytes\n  L2 cooked capture: ", fr.Dir, name, len(rec.Data))
				if err != nil {
					buf = fmt.Appendf(buf, "%v\n", err)
				} else {
					buf = fmt.Appendf(buf, "EtherType 0x%04x not decoded\n", et)
				}
				out.Write(buf)
				continue
			}
			fr.Data, fr.Raw = pkt, true
		default:
			fr.Raw = true
		}
		buf = trace.Append(buf[:0], &fr)
		if _, err := out.Write(buf); err != nil {
			return err
		}
	}
	return nil
}
