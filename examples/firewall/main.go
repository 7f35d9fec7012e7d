// Command firewall shows, in memory, what a stateful packet filter does
// that a stateless one cannot: the same server (a service on port 80, a
// connection of its own out to port 9000) behind three rule sets, the
// ones in this directory, each tried with three connections:
//
//   - a client in to the service on port 80;
//   - the server out to the client's port 9000;
//   - the client, from port 9000, in to the server's port 22, which no
//     rule means to open.
//
// The first set, stateless as first written (an AWS network ACL,
// iptables without conntrack), drops the replies of every connection;
// the second adds a rule for each reply direction, and with it a hole:
// anything from port 9000 comes in; the third, stateful (a security
// group, iptables with -m conntrack), lets in the replies of known
// connections only. Two ustack stacks talk over an in-memory link
// (link.Pipe), the server's behind the filter. See README.md for the
// same rules in front of `ustack serve` on a TAP device.
package main

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/ustack/ustack/filter"
	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/stack"
)

//go:embed *.rules
var ruleFiles embed.FS

// The two hosts: the client and the server, behind the filter.
var (
	clientAddr = netip.MustParsePrefix("10.9.0.1/24")
	serverAddr = netip.MustParsePrefix("10.9.0.2/24")
)

// patience is how long a connection may take before it counts as
// dropped: a filtered SYN or SYN-ACK is never answered.
const patience = 300 * time.Millisecond

func main() {
	if err := run(os.Stdout, true); err != nil {
		log.Fatal(err)
	}
}

// run tries the three rule sets and writes what happens to w, with each
// set's listing and counters when list is set.
func run(w io.Writer, list bool) error {
	for _, set := range []struct{ file, title, why string }{
		{"stateless-naive.rules", "stateless, as first written (a network ACL)",
			"each packet alone: the service's replies (from port 80) match no OUTPUT rule, the SYN-ACK from port 9000 no INPUT rule"},
		{"stateless.rules", "stateless, with a rule for each reply direction",
			"the replies get through, and so does anything from port 9000: the rule for replies cannot tell them from new connections"},
		{"stateful.rules", "stateful (a security group: conntrack)",
			"replies are ESTABLISHED: let in because conntrack saw the connection go out; the SYN from port 9000 is NEW, and dropped"},
	} {
		rules, err := ruleFiles.ReadFile(set.file)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "== %s: %s\n", set.file, set.title)
		f, err := try(w, string(rules))
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  (%s)\n", set.why)
		if list {
			fmt.Fprintf(w, "\n%s\n", f.List(filter.TableFilter))
		}
	}
	return nil
}

// try runs the three connections with the server behind rules, on a new
// pair of stacks, and returns the filter with its counters.
func try(w io.Writer, rules string) (*filter.Filter, error) {
	f := filter.New(filter.Config{})
	if err := f.Load(strings.NewReader(rules)); err != nil {
		return nil, err
	}
	ec, es := link.NewPipe(link.PipeOptions{})
	client, server := stack.New(stack.Options{}), stack.New(stack.Options{})
	defer client.Close()
	defer server.Close()
	if _, err := client.AddNIC(ec, clientAddr); err != nil {
		return nil, err
	}
	if _, err := server.AddNIC(es, serverAddr); err != nil {
		return nil, err
	}
	server.SetFilter(f)
	for _, l := range []struct {
		s    *stack.Stack
		addr netip.Prefix
		port uint16
	}{{server, serverAddr, 80}, {server, serverAddr, 22}, {client, clientAddr, 9000}} {
		ln, err := l.s.ListenTCP(netip.AddrPortFrom(l.addr.Addr(), l.port))
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		go echo(ln)
	}
	report(w, "client -> server:80", dialEcho(client, netip.AddrPort{}, netip.AddrPortFrom(serverAddr.Addr(), 80)))
	report(w, "server -> client:9000", dialEcho(server, netip.AddrPort{}, netip.AddrPortFrom(clientAddr.Addr(), 9000)))
	report(w, "client:9000 -> server:22", dialEcho(client, netip.AddrPortFrom(clientAddr.Addr(), 9000), netip.AddrPortFrom(serverAddr.Addr(), 22)))
	return f, nil
}

// report writes one connection's outcome.
func report(w io.Writer, what string, err error) {
	switch {
	case err == nil:
		fmt.Fprintf(w, "  %-26s connected, echoed\n", what)
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintf(w, "  %-26s no answer within %v: dropped\n", what, patience)
	default:
		fmt.Fprintf(w, "  %-26s %v\n", what, err)
	}
}

// dialEcho connects from laddr (any, if zero) to raddr and has a line
// echoed within patience.
func dialEcho(s *stack.Stack, laddr, raddr netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var c *stack.TCPConn
	var err error
	if laddr.IsValid() {
		c, err = s.DialTCPFrom(ctx, laddr, raddr)
	} else {
		c, err = s.DialTCP(ctx, raddr)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(patience))
	msg := []byte("hello\n")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return context.DeadlineExceeded
		}
		return err
	}
	return nil
}

// echo serves the echo protocol (RFC 862) on l until it is closed.
func echo(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}
