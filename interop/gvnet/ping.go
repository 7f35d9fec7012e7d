package gvnet

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Ping sends one ICMP echo request with size bytes of data from the gVisor
// stack to dst, through a gVisor ICMP endpoint (a "ping socket"), and waits
// for the reply. It returns the round-trip time. The reply's data must
// equal the request's.
func (s *Stack) Ping(ctx context.Context, dst netip.Addr, size int) (time.Duration, error) {
	if !dst.Is4() {
		return 0, fmt.Errorf("gvnet: %v is not an IPv4 address", dst)
	}
	var wq waiter.Queue
	ep, terr := s.ns.NewEndpoint(icmp.ProtocolNumber4, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return 0, fmt.Errorf("gvnet: ping endpoint: %s", terr)
	}
	defer ep.Close()
	entry, readable := waiter.NewChannelEntry(waiter.ReadableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	if terr := ep.Connect(tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(dst.As4())}); terr != nil {
		return 0, fmt.Errorf("gvnet: ping connect: %s", terr)
	}

	// RFC 792, Echo or Echo Reply Message: type 8, code 0, checksum,
	// identifier (gVisor sets it to the endpoint's ident), sequence number,
	// data. gVisor computes the checksum.
	req := make([]byte, 8+size)
	req[0] = 8
	binary.BigEndian.PutUint16(req[6:], 1)
	for i := range req[8:] {
		req[8+i] = byte(i * 7)
	}
	start := time.Now()
	if _, terr := ep.Write(bytes.NewReader(req), tcpip.WriteOptions{}); terr != nil {
		return 0, fmt.Errorf("gvnet: ping write: %s", terr)
	}
	var reply bytes.Buffer
	for {
		_, terr := ep.Read(&reply, tcpip.ReadOptions{})
		if terr == nil {
			break
		}
		if _, ok := terr.(*tcpip.ErrWouldBlock); !ok {
			return 0, fmt.Errorf("gvnet: ping read: %s", terr)
		}
		select {
		case <-readable:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	rtt := time.Since(start)
	r := reply.Bytes()
	if len(r) != len(req) || r[0] != 0 || binary.BigEndian.Uint16(r[6:]) != 1 || !bytes.Equal(r[8:], req[8:]) {
		return 0, fmt.Errorf("gvnet: ping: unexpected reply of %d bytes (type %d)", len(r), r[0])
	}
	return rtt, nil
}
