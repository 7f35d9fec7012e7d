// Package link is the bottom layer of ustack: an Endpoint reads and writes
// one frame at a time. Frames are Ethernet II frames for endpoints that have
// a hardware address (TAP, Pipe) and bare IPv4 packets for those that do not
// (TUN).
//
// Implementations: TAP and TUN devices (github.com/songgao/water) and Pipe,
// an in-memory connected pair. A device of several queues is a MultiQueue,
// each queue an Endpoint of its own. The subpackages pcap and fault wrap any
// Endpoint to record or disturb its traffic.
package link

import (
	"errors"
	"fmt"
	"net"
)

// Endpoint is one network attachment: it reads and writes whole frames.
//
// ReadFrame blocks until a frame arrives, copies it into b and returns its
// length; a frame longer than b is truncated to len(b) and reported with
// ErrTruncated. After Close, ReadFrame and WriteFrame return net.ErrClosed,
// and Close unblocks a ReadFrame in progress.
//
// WriteFrame sends one frame; the endpoint does not retain b after it
// returns. Implementations are safe for one reader and several writers at
// once.
type Endpoint interface {
	ReadFrame(b []byte) (int, error)
	WriteFrame(b []byte) error
	// MTU is the largest network-layer packet the endpoint carries,
	// excluding the link header (1500 for an ordinary Ethernet).
	MTU() int
	// HardwareAddr is the endpoint's own MAC address, or the zero MAC for
	// endpoints without link-layer framing (TUN), whose frames are bare IP
	// packets.
	HardwareAddr() MAC
	// Close releases the endpoint and unblocks readers.
	Close() error
}

// ErrTruncated reports that a frame was longer than the read buffer.
var ErrTruncated = errors.New("link: frame truncated")

// ErrFrameTooLarge is returned by WriteFrame for a frame longer than the
// endpoint's MTU plus its link header.
var ErrFrameTooLarge = errors.New("link: frame larger than MTU")

// MAC is an IEEE 802 MAC-48 hardware address. It is a comparable value.
type MAC [6]byte

// Broadcast is the Ethernet broadcast address ff:ff:ff:ff:ff:ff.
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// String formats the address as six colon-separated hex bytes.
func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// IsMulticast reports whether the group bit (the least significant bit of
// the first octet) is set; broadcast is a multicast address.
func (m MAC) IsMulticast() bool { return m[0]&1 == 1 }

// ParseMAC parses a MAC-48 address in any form net.ParseMAC accepts.
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(s)
	if err != nil {
		return MAC{}, err
	}
	if len(hw) != 6 {
		return MAC{}, fmt.Errorf("link: %q is not a 6-byte MAC address", s)
	}
	return MAC(hw), nil
}
