package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ustack/ustack/internal/tsg"
)

// tsgCmd draws the time-sequence graph of one TCP connection of a capture.
func tsgCmd(args []string) error { return runTSG(args, os.Stdout, os.Stderr) }

func runTSG(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tsg", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conn := fs.String("conn", "", "the connection to draw, `LOCAL-REMOTE` as 10.0.0.2:7-10.0.0.1:40000 (either order); default: the one with the most payload bytes")
	out := fs.String("o", "", "write the SVG to `FILE` (- for standard output); default: the capture's name with .svg")
	reverse := fs.Bool("reverse", false, "draw the direction that sent fewer bytes (default: the one that sent more)")
	from := fs.Duration("from", 0, "start the time axis this long after the connection's first segment")
	to := fs.Duration("to", 0, "end the time axis this long after the connection's first segment (0: its end)")
	width := fs.Int("width", 1280, "picture width in pixels")
	height := fs.Int("height", 800, "picture height in pixels")
	list := fs.Bool("list", false, "list the capture's TCP connections instead of drawing")
	minSilence := fs.Duration("min-silence", tsg.DefaultMinSilence, "the shortest pause of the sender after which a send can count as RTO- or TLP-like")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: ustack tsg FILE.pcap [-conn LOCAL-REMOTE] [-reverse] [-o out.svg] [-from D] [-to D] [-list]

Draws the time-sequence graph (Stevens/tcptrace style) of one TCP connection
of a libpcap capture (ustack's -pcap, tcpdump -w: Ethernet, raw IP, Linux
cooked): sequence numbers relative to the ISN against time, the sender's
segments as vertical bars (retransmissions, RTO-like and TLP-like sends in
their own colours), the ACK and receive-window lines, SACK and D-SACK blocks.
The result is a self-contained SVG for a browser.

`)
		fs.PrintDefaults()
	}
	in, err := parseOneFile(fs, args)
	if err != nil {
		return err
	}
	if *width < 1 || *height < 1 {
		return fmt.Errorf("-width %d -height %d: both must be positive", *width, *height)
	}
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	c, err := tsg.ReadPcap(f)
	f.Close()
	if err != nil {
		if c == nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		fmt.Fprintf(stderr, "ustack tsg: %s: %v; using the %d packets before it\n", in, err, c.Stats.Packets)
	}
	if *list {
		fmt.Fprintf(stdout, "%d packets, %d IPv4 TCP segments\n", c.Stats.Packets, c.Stats.TCP)
		for _, cn := range c.Conns() {
			fmt.Fprintf(stdout, "%s\t%d segments\t%d bytes from %s\t%d bytes from %s\n",
				cn, cn.Segments, cn.Bytes[0], cn.A, cn.Bytes[1], cn.B)
		}
		return nil
	}
	if *minSilence <= 0 {
		return fmt.Errorf("-min-silence %v: must be positive", *minSilence)
	}
	g, err := c.Analyze(tsg.Options{Conn: *conn, Reverse: *reverse, MinSilence: *minSilence})
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	name := *out
	if name == "" {
		name = strings.TrimSuffix(in, filepath.Ext(in)) + ".svg"
	}
	var w io.Writer = stdout
	var file *os.File
	if name != "-" {
		if file, err = os.Create(name); err != nil {
			return err
		}
		w = file
	}
	err = g.WriteSVG(w, tsg.DrawOptions{Width: *width, Height: *height, From: *from, To: *to})
	if file != nil {
		if cerr := file.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	msg := stdout
	if name == "-" {
		msg = stderr
	}
	fmt.Fprintf(msg, "%s: %s -> %s: %d segments, %d retransmissions (%d RTO-like, %d TLP-like), %d duplicates, %d SACK blocks (%d D-SACK)\n",
		name, g.Sender, g.Receiver, g.DataSegments, g.Retransmissions, g.RTOs, g.TLPs, g.Duplicates, g.SACKBlocks, g.DSACKBlocks)
	return nil
}
