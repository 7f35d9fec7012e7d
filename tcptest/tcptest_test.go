package tcptest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ustack/ustack/tcp"
)

func TestFlags(t *testing.T) {
	for _, s := range []string{"S", "S.", ".", "P.", "F.", "R", "R.", "FP.", "-", "SEW", "U."} {
		f, err := ParseFlags(s)
		if err != nil {
			t.Fatalf("ParseFlags(%q): %v", s, err)
		}
		if got := FormatFlags(f); got != s {
			t.Errorf("FormatFlags(ParseFlags(%q)) = %q", s, got)
		}
	}
	if _, err := ParseFlags("SX"); err == nil {
		t.Error("ParseFlags(SX) succeeded")
	}
}

func TestSpecString(t *testing.T) {
	tests := []struct {
		name string
		sp   *Spec
		want string
	}{
		{"syn", Seg().Flags("S").Seq(0).Win(65535).MSS(1460).SACKOK().TS(1, 0).NOP().WScale(7),
			"S 0:0(0) win 65535 <mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7>"},
		{"data", Seg().Flags("P.").Seq(1).Len(100).Ack(1), "P. 1:101(100) ack 1"},
		{"any options", Seg().Flags(".").Seq(1).Ack(5).AnyOptions(), ". 1:1(0) ack 5 <...>"},
		{"ports and sack", Seg().Ports(1, 2).Flags(".").Seq(1).Ack(1).NOP().NOP().SACK(10, 20, 30, 40), "1>2 . 1:1(0) ack 1 <nop,nop,sack 10:20 30:40>"},
		{"unset", Seg(), "?"},
	}
	for _, tt := range tests {
		if got := tt.sp.String(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	if err := Seg().Flags("Q").Err(); err == nil {
		t.Error("Flags(Q) kept no error")
	}
	if err := Seg().SACK(1).Err(); err == nil {
		t.Error("SACK(1) kept no error")
	}
}

func TestParseOptionList(t *testing.T) {
	// A Linux SYN's options.
	b := []byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7}
	opts, err := ParseOptionList(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := FormatOptions(opts); got != "<mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7>" {
		t.Errorf("got %s", got)
	}
	if enc := appendOptions(nil, opts); !bytes.Equal(enc, b) {
		t.Errorf("encoded % x, want % x", enc, b)
	}
	malformed := []struct {
		name string
		b    []byte
	}{
		{"length 1", []byte{2, 1, 0, 0}},
		{"overrun", []byte{8, 10, 0, 0}},
		{"mss length", []byte{2, 3, 5}},
		{"missing length", []byte{1, 2}},
		{"sack length", []byte{5, 7, 0, 0, 0, 0, 0}},
	}
	for _, tt := range malformed {
		if _, err := ParseOptionList(tt.b); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	opts, err = ParseOptionList([]byte{1, 0, 9, 9})
	if err != nil || len(opts) != 2 || opts[1].Kind != KindEOL {
		t.Errorf("EOL: %v %v", opts, err)
	}
	opts, err = ParseOptionList([]byte{30, 4, 0xab, 0xcd})
	if err != nil || len(opts) != 1 || opts[0].String() != "kind30[abcd]" {
		t.Errorf("unknown kind: %v %v", opts, err)
	}
}

func FuzzParseOptionList(f *testing.F) {
	f.Add([]byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7})
	f.Add([]byte{1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		opts, err := ParseOptionList(b)
		if err != nil {
			return
		}
		// What parses encodes back to a list that parses to the same.
		again, err := ParseOptionList(appendOptions(nil, opts))
		if err != nil || FormatOptions(again) != FormatOptions(opts) {
			t.Fatalf("%s re-encoded as %s (%v)", FormatOptions(opts), FormatOptions(again), err)
		}
	})
}

// TestFlowBuild checks the remapping of a segment the peer sends: its SYN
// goes out as written, later sequence numbers add its ISN and ACK numbers
// the stack's ISN.
func TestFlowBuild(t *testing.T) {
	s := NewStack(tcp.DefaultConfig())
	if _, err := s.Listen(8080, 1, nil, 0); err != nil {
		t.Fatal(err)
	}
	f := s.Flow(40000, 8080)
	if err := f.Send(Seg().Flags("S").Seq(1000).Win(1000).MSS(1460).NOP().WScale(2)); err != nil {
		t.Fatal(err)
	}
	iss, ok := s.ISS(f.Tuple())
	if !ok {
		t.Fatal("no connection")
	}
	b, err := f.Build(Seg().Flags("P.").Seq(1).Ack(1).Win(77).Payload([]byte("hi")))
	if err != nil {
		t.Fatal(err)
	}
	seg, err := tcp.ParseSegment(b, RemoteAddr, LocalAddr)
	if err != nil {
		t.Fatalf("built segment does not parse: %v", err)
	}
	if seg.SourcePort() != 40000 || seg.DestinationPort() != 8080 || seg.Seq() != 1001 || seg.Ack() != iss+1 ||
		seg.Window() != 77 || seg.Flags() != tcp.FlagPSH|tcp.FlagACK || string(seg.Payload()) != "hi" {
		t.Errorf("built %v seq %d ack %d (ISS %d) win %d flags %v payload %q", seg.SourcePort(), seg.Seq(), seg.Ack(), iss,
			seg.Window(), seg.Flags(), seg.Payload())
	}
	// The SYN-ACK in script space.
	p, ok := s.Next()
	if !ok {
		t.Fatal("no SYN-ACK")
	}
	// Window scale 7 lets auto-tuning offer up to the default 6 MiB.
	if got := f.Format(p); got != "> S. 0:0(0) ack 1001 win 65535 <mss 1460,nop,wscale 7>" {
		t.Errorf("Format = %q", got)
	}
	if _, err := f.Build(Seg().Flags(".").Ports(1, 2)); err == nil {
		t.Error("Build with foreign ports succeeded")
	}
	if _, err := f.Build(Seg().Flags(".").Ack(1).TS(5, 99)); err == nil || !strings.Contains(err.Error(), "TS ecr 99") {
		t.Errorf("Build with an unknown TSecr: %v", err)
	}
}

// TestMatch checks that a mismatch names every field that differs.
func TestMatch(t *testing.T) {
	s := NewStack(tcp.DefaultConfig())
	s.Listen(8080, 1, nil, 0)
	f := s.Flow(40000, 8080)
	f.Send(Seg().Flags("S").Seq(0).Win(1000).MSS(1000))
	p, _ := s.Next()
	if err := f.Match(Seg().Flags("S.").Seq(0).Ack(1).Win(65535).MSS(1460), p, MatchOptions{}); err != nil {
		t.Errorf("exact match: %v", err)
	}
	if err := f.Match(Seg().Flags("S."), p, MatchOptions{}); err != nil {
		t.Errorf("partial match: %v", err)
	}
	err := f.Match(Seg().Flags("S").Seq(5).Ack(2).Win(1).MSS(1000).NOP(), p, MatchOptions{})
	var me *MatchError
	if !errors.As(err, &me) {
		t.Fatalf("mismatch: %v", err)
	}
	var fields []string
	for _, m := range me.Mismatches {
		fields = append(fields, m.Field)
	}
	if got := strings.Join(fields, ","); got != "flags,seq,ack,win,options" {
		t.Errorf("fields %s (%v)", got, err)
	}
	if !strings.Contains(err.Error(), "ack: got 1, want 2") {
		t.Errorf("message %q", err)
	}
	if err := f.Match(Seg().Flags("S.").MSS(1000).NOP(), p, MatchOptions{LenientOptions: true}); err != nil {
		t.Errorf("lenient: %v", err)
	}
	if err := f.Match(Seg().Flags("S.").SACKOK(), p, MatchOptions{LenientOptions: true}); err == nil {
		t.Error("lenient accepted a missing kind")
	}
	if err := f.Match(Seg().Flags("S.").Seq(0), Packet{Dir: Out, Tuple: tcp.Tuple{}, Data: p.Data}, MatchOptions{}); err == nil ||
		!strings.Contains(err.Error(), "connection") {
		t.Errorf("another connection: %v", err)
	}
}

func TestAggregate(t *testing.T) {
	s := NewStack(tcp.DefaultConfig())
	s.Listen(8080, 1, nil, 0)
	f := s.Flow(40000, 8080)
	f.Send(Seg().Flags("S").Seq(0).Win(65535).MSS(1000))
	s.Next()
	f.Send(Seg().Flags(".").Seq(1).Ack(1).Win(65535))
	l := s.listeners[8080]
	c := l.Accept()
	c.Write(make([]byte, 3000))
	ps := s.Queued()
	if len(ps) != 3 {
		t.Fatalf("%d segments", len(ps))
	}
	agg, err := Aggregate(ps)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Format(agg); got != "> P. 1:3001(3000) ack 1 win 65535" {
		t.Errorf("aggregate %q", got)
	}
	if _, err := Aggregate([]Packet{ps[0], ps[2]}); err == nil {
		t.Error("aggregated segments with a gap")
	}
	if _, err := Aggregate(nil); err == nil {
		t.Error("aggregated nothing")
	}
}

func TestWritePcap(t *testing.T) {
	s := NewStack(tcp.DefaultConfig())
	f := s.Flow(40000, 8080)
	f.Send(Seg().Flags("S").Seq(0).Win(1000))
	s.Advance(1500 * time.Millisecond)
	var buf bytes.Buffer
	if err := WritePcap(&buf, s.Log()); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 101 {
		t.Fatalf("bad pcap header % x", b[:min(len(b), 24)])
	}
	b = b[24:]
	for i, p := range s.Log() {
		n := int(binary.LittleEndian.Uint32(b[8:]))
		if n != 20+len(p.Data) || int(binary.LittleEndian.Uint32(b[12:])) != n {
			t.Fatalf("record %d: length %d", i, n)
		}
		ip := b[16 : 16+n]
		src, dst := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		wantSrc, wantDst := RemoteAddr, LocalAddr
		if p.Dir == Out {
			wantSrc, wantDst = LocalAddr, RemoteAddr
		}
		if ip[0] != 0x45 || ip[9] != 6 || src != wantSrc || dst != wantDst || !bytes.Equal(ip[20:], p.Data) {
			t.Errorf("record %d: % x", i, ip[:20])
		}
		if _, err := tcp.ParseSegment(ip[20:], src, dst); err != nil {
			t.Errorf("record %d: %v", i, err)
		}
		b = b[16+n:]
	}
	if len(b) != 0 {
		t.Errorf("%d bytes left", len(b))
	}
}

func TestStackReset(t *testing.T) {
	s := NewStack(tcp.DefaultConfig())
	f := s.Flow(40000, 9)
	if err := f.Send(Seg().Flags("S").Seq(7).Win(1000)); err != nil {
		t.Fatal(err)
	}
	p, ok := s.Next()
	if !ok {
		t.Fatal("no reset")
	}
	if err := f.Match(Seg().Flags("R.").Seq(0).Ack(1).Win(0), p, MatchOptions{}); err != nil {
		t.Error(err)
	}
	if s.Stats().DroppedNoConnection.Load() != 1 {
		t.Error("drop not counted")
	}
	// A malformed segment is rejected.
	if err := s.Inject(f.Tuple(), []byte{1, 2, 3}); err == nil {
		t.Error("short segment accepted")
	}
}
