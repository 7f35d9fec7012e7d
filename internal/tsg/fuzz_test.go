package tsg

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/ustack/ustack/link/pcap"
)

var fuzzLinkTypes = []uint32{pcap.LinkTypeRaw, pcap.LinkTypeEthernet, pcap.LinkTypeLinuxSLL, pcap.LinkTypeLinuxSLL2, pcap.LinkTypeIPv4}

// FuzzAnalyze feeds arbitrary bytes as packets to a Capture, analyses
// every connection in both directions and draws it: no panic, and the
// picture is always produced. The input is a link type selector byte, then
// packets each preceded by a 2-byte length and a 2-byte time step in µs.
func FuzzAnalyze(f *testing.F) {
	for _, e := range []*exchange{tlpExchange(&testing.T{}), rtoSeed()} {
		r, err := pcap.NewReader(bytes.NewReader(e.buf.Bytes()))
		if err != nil {
			f.Fatal(err)
		}
		seed := []byte{0}
		for {
			rec, err := r.Next()
			if err != nil {
				break
			}
			seed = binary.BigEndian.AppendUint16(seed, uint16(len(rec.Data)))
			seed = binary.BigEndian.AppendUint16(seed, 100)
			seed = append(seed, rec.Data...)
		}
		f.Add(seed)
	}
	f.Add([]byte{1, 0, 3, 0, 1, 0x45, 0, 0})
	f.Fuzz(runFuzz)
}

func runFuzz(t *testing.T, b []byte) {
	{
		if len(b) == 0 {
			return
		}
		lt := fuzzLinkTypes[int(b[0])%len(fuzzLinkTypes)]
		b = b[1:]
		c := NewCapture()
		ts := time.Unix(1700000000, 0)
		for len(b) >= 4 {
			n := int(binary.BigEndian.Uint16(b))
			ts = ts.Add(time.Duration(binary.BigEndian.Uint16(b[2:])) * time.Microsecond)
			b = b[4:]
			n = min(n, len(b))
			c.Add(ts, lt, b[:n], n+int(ts.Unix()%2)*40)
			b = b[n:]
		}
		for _, cn := range c.Conns() {
			for _, rev := range []bool{false, true} {
				g, err := c.Analyze(Options{Conn: cn.String(), Reverse: rev})
				if err != nil {
					t.Fatalf("Analyze of a listed connection %s: %v", cn, err)
				}
				if g.Retransmissions < g.RTOs || g.SACKBlocks < g.DSACKBlocks {
					t.Fatalf("counts %+v", g.Counts)
				}
				if err := g.WriteSVG(io.Discard, DrawOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// rtoSeed is a small exchange with an RTO, over Ethernet.
func rtoSeed() *exchange {
	e := newExchange(&testing.T{}, pcap.LinkTypeRaw)
	e.handshake(rtt)
	e.data(rtt, 1)
	e.data(rtt+ms, 2)
	e.ack(2*rtt, 1, [2]int{2, 2})
	e.data(300*ms, 1)
	e.ack(310*ms, 2, [2]int{1, 1})
	return e
}
