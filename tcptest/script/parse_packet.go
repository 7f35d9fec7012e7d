package script

import (
	"github.com/ustack/ustack/tcptest"
)

// packet parses a TCP packet line (packetdrill's tcp_packet_spec):
//
//	< [ip info] [src>dst] FLAGS start:end(len) [ack N] [win N] [urg N] [<options>]
func (p *parser) packet(e *event) error {
	d := p.next()
	e.kind = evPacket
	e.dir = tcptest.In
	if d.text == ">" {
		e.dir = tcptest.Out
	}
	// IP-level information: [noecn], (tos 0x..), ...; ustack's test stack
	// has no IP layer, so only "no ECN" can hold. [start:end(len)] is the
	// segment an ICMP line quotes.
	var quote icmpLine
	for p.isPunct("[") || p.isPunct("(") {
		if p.isPunct("[") && p.peek2().kind == tInt {
			if err := p.quotedSegment(&quote); err != nil {
				return err
			}
			continue
		}
		open := p.next()
		closer := "]"
		if open.text == "(" {
			closer = ")"
		}
		var words []string
		for !p.isPunct(closer) {
			t := p.next()
			if t.kind == tEOF {
				return p.errf(t, "unterminated IP information")
			}
			words = append(words, t.text)
		}
		p.next()
		if len(words) != 1 || words[0] != "noecn" {
			return p.errf(open, "IP information %s%v%s is not supported (the test stack has no IP layer)", open.text, words, closer)
		}
	}
	t := p.peek()
	switch {
	case t.kind == tWord && (t.text == "icmp" || t.text == "ICMP"):
		return p.icmp(e, &quote)
	case quote.quoted:
		return p.errf(t, "a quoted segment [start:end(len)] belongs to an ICMP packet, found %s", t)
	case t.kind == tWord && (t.text == "udp" || t.text == "UDP"):
		return p.errf(t, "%s packets are not supported: the test stack runs TCP and ICMP errors only", t.text)
	case t.kind == tWord && (t.text == "ipv4" || t.text == "ipv6" || t.text == "gre" || t.text == "GREv0" || t.text == "mpls" || t.text == "psp" || t.text == "encap"):
		return p.errf(t, "encapsulation %q is not supported", t.text)
	}
	// Ports: src>dst.
	if t.kind == tInt && p.peek2().kind == tPunct && p.peek2().text == ">" {
		src, err := p.u16("source port")
		if err != nil {
			return err
		}
		p.next()
		dst, err := p.u16("destination port")
		if err != nil {
			return err
		}
		e.ports, e.src, e.dst = true, src, dst
	}
	sp := tcptest.Seg()
	flags, err := p.flags()
	if err != nil {
		return err
	}
	sp.Flags(flags)
	if err := sp.Err(); err != nil {
		return p.errf(t, "%v", err)
	}
	// start:end(len)
	seqTok := p.peek()
	start, err := p.u32("TCP start sequence number")
	if err != nil {
		return err
	}
	if err := p.expectPunct(":"); err != nil {
		return err
	}
	end, err := p.u32("TCP end sequence number")
	if err != nil {
		return err
	}
	if err := p.expectPunct("("); err != nil {
		return err
	}
	n, err := p.u16("TCP payload size")
	if err != nil {
		return err
	}
	if err := p.expectPunct(")"); err != nil {
		return err
	}
	if end != start+uint32(n) {
		return p.errf(seqTok, "inconsistent TCP sequence numbers and payload size")
	}
	sp.Seq(start).Len(int(n))
	// packetdrill compares the acknowledgment field always (0 when not
	// written) and the window only when written.
	var ack uint32
	if p.isWord("ack") {
		p.next()
		if ack, err = p.u32("TCP ack sequence number"); err != nil {
			return err
		}
	}
	sp.Ack(ack)
	if p.isWord("win") {
		p.next()
		w, err := p.u16("TCP window value")
		if err != nil {
			return err
		}
		sp.Win(w)
	} else if e.dir == tcptest.In {
		return p.errf(t, "window must be specified for inbound packets")
	}
	var urg uint16
	if p.isWord("urg") {
		p.next()
		if urg, err = p.u16("urg_ptr value"); err != nil {
			return err
		}
	}
	sp.Urg(urg)
	sp.NoOptions()
	if p.isPunct("<") {
		lt := p.next()
		if p.peek().kind == tEllipsis {
			p.next()
			if e.dir == tcptest.In {
				return p.errf(lt, "<...> for TCP options can only be used with outbound packets")
			}
			sp.AnyOptions()
			if err := p.expectPunct(">"); err != nil {
				return err
			}
		} else {
			opts, err := p.options()
			if err != nil {
				return err
			}
			if l := tcptest.OptionsLen(opts); l%4 != 0 {
				return p.errf(lt, "TCP options are not padded correctly to ensure TCP header is a multiple of 4 bytes: %d excess bytes", l%4)
			} else if l > 40 {
				return p.errf(lt, "TCP option list too long")
			}
			sp.Options(opts...)
		}
	}
	if e.ports {
		sp.Ports(e.src, e.dst)
	}
	e.spec = sp
	return nil
}

// flags parses the flags of a packet: WORD [.] | . | -
func (p *parser) flags() (string, error) {
	t := p.next()
	switch {
	case t.kind == tPunct && (t.text == "." || t.text == "-"):
		return t.text, nil
	case t.kind == tInt || t.kind == tFloat:
		return "", p.errf(t, "AccECN flags %q are not supported", t.text)
	case t.kind == tWord:
		f := t.text
		if p.isPunct(".") {
			p.next()
			f += "."
		}
		for _, r := range f {
			if r >= '0' && r <= '7' || r == 'A' {
				return "", p.errf(t, "AccECN flags %q are not supported", f)
			}
		}
		return f, nil
	}
	return "", p.errf(t, "expected TCP flags, found %s", t)
}

// options parses a TCP option list up to ">".
func (p *parser) options() ([]tcptest.Option, error) {
	var opts []tcptest.Option
	for {
		t := p.next()
		if t.kind != tWord {
			return nil, p.errf(t, "expected a TCP option, found %s", t)
		}
		switch t.text {
		case "nop":
			opts = append(opts, tcptest.Option{Kind: tcptest.KindNOP})
		case "eol":
			opts = append(opts, tcptest.Option{Kind: tcptest.KindEOL})
		case "mss":
			v, err := p.u16("MSS")
			if err != nil {
				return nil, err
			}
			opts = append(opts, tcptest.Option{Kind: tcptest.KindMSS, Value: uint32(v)})
		case "wscale":
			v, tk, err := p.expectInt("window scale")
			if err != nil {
				return nil, err
			}
			if v < 0 || v > 255 {
				return nil, p.errf(tk, "window scale out of range: %d", v)
			}
			opts = append(opts, tcptest.Option{Kind: tcptest.KindWScale, Value: uint32(v)})
		case "sackOK":
			opts = append(opts, tcptest.Option{Kind: tcptest.KindSACKOK})
		case "sack":
			o := tcptest.Option{Kind: tcptest.KindSACK}
			for p.peek().kind == tInt {
				l, err := p.u32("SACK left edge")
				if err != nil {
					return nil, err
				}
				if err := p.expectPunct(":"); err != nil {
					return nil, err
				}
				r, err := p.u32("SACK right edge")
				if err != nil {
					return nil, err
				}
				o.Blocks = append(o.Blocks, [2]uint32{l, r})
			}
			if len(o.Blocks) == 0 {
				return nil, p.errf(t, "sack needs at least one block")
			}
			opts = append(opts, o)
		case "TS":
			if !p.isWord("val") {
				return nil, p.errf(p.peek(), "expected \"val\" after TS, found %s", p.peek())
			}
			p.next()
			val, err := p.u32("TS val")
			if err != nil {
				return nil, err
			}
			if !p.isWord("ecr") {
				return nil, p.errf(p.peek(), "expected \"ecr\", found %s", p.peek())
			}
			p.next()
			ecr, err := p.u32("TS ecr")
			if err != nil {
				return nil, err
			}
			opts = append(opts, tcptest.Option{Kind: tcptest.KindTS, TSVal: val, TSEcr: ecr})
		case "md5", "FO", "FOEXP", "ECN", "exp":
			return nil, p.errf(t, "TCP option %q is not supported by ustack", t.text)
		default:
			return nil, p.errf(t, "unknown TCP option %q", t.text)
		}
		n := p.next()
		if n.kind == tPunct && n.text == ">" {
			return opts, nil
		}
		if n.kind != tPunct || n.text != "," {
			return nil, p.errf(n, "expected \",\" or \">\" in TCP options, found %s", n)
		}
	}
}
