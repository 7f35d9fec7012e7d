package stack

import (
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// testDNS is a tiny authoritative DNS server (RFC 1035) on a stack's UDP
// and TCP port 53, for the resolver tests: it answers A queries for the
// names it knows, NXDOMAIN for the others and an empty answer for every
// other type. Over UDP it answers the names in truncate with the TC bit
// and no records, so that the client must ask again over TCP (RFC 1123
// §6.1.3.2).
type testDNS struct {
	names    map[string][]netip.Addr // rooted, lower-case names
	truncate map[string]bool

	udpQueries, tcpQueries atomic.Int64

	mu      sync.Mutex
	queried []string // the names asked for, in order
}

// serveDNS starts d on s at addr (port 53) and stops it when the test
// ends.
func serveDNS(t *testing.T, s *Stack, addr netip.Addr, d *testDNS) {
	t.Helper()
	uc, err := s.ListenUDP(netip.AddrPortFrom(addr, 53))
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.ListenTCP(netip.AddrPortFrom(addr, 53))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65535)
		for {
			n, from, err := uc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			d.udpQueries.Add(1)
			if resp := d.answer(buf[:n], true); resp != nil {
				uc.WriteToUDPAddrPort(resp, from)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				for {
					// RFC 1035 §4.2.2: each message after a two-byte length.
					var hdr [2]byte
					if _, err := io.ReadFull(c, hdr[:]); err != nil {
						return
					}
					msg := make([]byte, binary.BigEndian.Uint16(hdr[:]))
					if _, err := io.ReadFull(c, msg); err != nil {
						return
					}
					d.tcpQueries.Add(1)
					resp := d.answer(msg, false)
					if resp == nil {
						return
					}
					c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(resp))))
					c.Write(resp)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		uc.Close()
		l.Close()
		wg.Wait()
	})
}

// queriedNames returns the names queried so far.
func (d *testDNS) queriedNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.queried...)
}

// answer returns the response to the query msg, or nil if it is not one
// this server can parse.
func (d *testDNS) answer(msg []byte, udp bool) []byte {
	if len(msg) < 12 || binary.BigEndian.Uint16(msg[4:]) != 1 || msg[2]&0x80 != 0 {
		return nil
	}
	name, end, err := parseQName(msg, 12)
	if err != nil || end+4 > len(msg) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(msg[end:])
	d.mu.Lock()
	d.queried = append(d.queried, name)
	d.mu.Unlock()
	question := msg[12 : end+4]

	flags := uint16(0x8000 | 0x0400 | 0x0080)          // QR, AA, RA
	flags |= binary.BigEndian.Uint16(msg[2:]) & 0x0100 // RD as asked
	addrs, known := d.names[strings.ToLower(name)]
	var answers []netip.Addr
	switch {
	case !known:
		flags |= 3 // NXDOMAIN
	case qtype == 1 && udp && d.truncate[strings.ToLower(name)]:
		flags |= 0x0200 // TC
	case qtype == 1:
		answers = addrs
	}
	resp := make([]byte, 12, 12+len(question)+16*len(answers))
	copy(resp, msg[:2])
	binary.BigEndian.PutUint16(resp[2:], flags)
	binary.BigEndian.PutUint16(resp[4:], 1)
	binary.BigEndian.PutUint16(resp[6:], uint16(len(answers)))
	resp = append(resp, question...)
	for _, a := range answers {
		resp = append(resp, 0xc0, 12)                  // the name: a pointer to the question's
		resp = binary.BigEndian.AppendUint16(resp, 1)  // A
		resp = binary.BigEndian.AppendUint16(resp, 1)  // IN
		resp = binary.BigEndian.AppendUint32(resp, 60) // TTL
		resp = binary.BigEndian.AppendUint16(resp, 4)
		resp = append(resp, a.AsSlice()...)
	}
	return resp
}

// parseQName reads the uncompressed name at msg[off:] and returns it
// rooted ("a.b.") and the offset after it.
func parseQName(msg []byte, off int) (string, int, error) {
	var b strings.Builder
	for {
		if off >= len(msg) {
			return "", 0, errors.New("short name")
		}
		l := int(msg[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(msg) {
			return "", 0, errors.New("bad label")
		}
		b.Write(msg[off : off+l])
		b.WriteByte('.')
		off += l
	}
	if b.Len() == 0 {
		return ".", off, nil
	}
	return b.String(), off, nil
}
