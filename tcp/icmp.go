package tcp

import (
	"encoding/binary"
	"errors"
	"time"
)

// ICMPKind is what an ICMP error message (RFC 792) reports about a
// segment a connection sent. The stack maps the message's type and code to
// a kind; the core decides what the kind means for the connection.
type ICMPKind uint8

// ICMP error kinds, after RFC 792's Destination Unreachable codes and the
// other error types RFC 1122 §4.2.3.9 lists for TCP.
const (
	// ICMPNetUnreachable is Destination Unreachable code 0, and the codes
	// RFC 1812 §5.2.7.1 added for networks (6 unknown, 9 prohibited, 11
	// for the TOS).
	ICMPNetUnreachable ICMPKind = iota + 1
	// ICMPHostUnreachable is Destination Unreachable code 1, and 7 (host
	// unknown), 10 (prohibited), 12 (for the TOS), 13 (communication
	// administratively prohibited, RFC 1812) and 14, 15.
	ICMPHostUnreachable
	// ICMPProtocolUnreachable is Destination Unreachable code 2.
	ICMPProtocolUnreachable
	// ICMPPortUnreachable is Destination Unreachable code 3.
	ICMPPortUnreachable
	// ICMPFragmentationNeeded is Destination Unreachable code 4,
	// "fragmentation needed and DF set", with the Next-Hop MTU of
	// RFC 1191 §4; over IPv6, Packet Too Big with its MTU (RFC 4443
	// §3.2, RFC 8201).
	ICMPFragmentationNeeded
	// ICMPSourceRouteFailed is Destination Unreachable code 5.
	ICMPSourceRouteFailed
	// ICMPTimeExceeded is Time Exceeded (type 11), either code.
	ICMPTimeExceeded
	// ICMPParameterProblem is Parameter Problem (type 12).
	ICMPParameterProblem
)

// ICMPKindOf maps an ICMP error's type and code (RFC 792) to what it means
// for TCP. Destination Unreachable (type 3) codes 0-5 are RFC 792's; codes
// 6-15 (RFC 1812 §5.2.7.1) count as net or host unreachable, as Linux's
// icmp_err_convert has them. Time Exceeded is type 11, Parameter Problem
// type 12. Other types (Source Quench, deprecated by RFC 6633; Redirect,
// which is the IP layer's) and unknown codes report false.
func ICMPKindOf(typ, code uint8) (ICMPKind, bool) {
	switch typ {
	case 3: // Destination Unreachable
		switch code {
		case 0, 6, 9, 11: // net; unknown, prohibited, for TOS
			return ICMPNetUnreachable, true
		case 1, 7, 8, 10, 12, 13, 14, 15: // host; unknown, isolated, prohibited, TOS, filtered, precedence
			return ICMPHostUnreachable, true
		case 2:
			return ICMPProtocolUnreachable, true
		case 3:
			return ICMPPortUnreachable, true
		case 4:
			return ICMPFragmentationNeeded, true
		case 5:
			return ICMPSourceRouteFailed, true
		}
	case 11:
		return ICMPTimeExceeded, true
	case 12:
		return ICMPParameterProblem, true
	}
	return 0, false
}

// ICMPv6KindOf maps an ICMPv6 error's type and code (RFC 4443) to what it
// means for TCP, as ICMPKindOf does for ICMPv4:
//
//   - Destination Unreachable (type 1, RFC 4443 §3.1): code 0 "no route
//     to destination" is net unreachable; 1 "communication with
//     destination administratively prohibited", 2 "beyond scope of
//     source address", 3 "address unreachable", 5 "source address failed
//     ingress/egress policy" and 6 "reject route to destination" are host
//     unreachable; 4 "port unreachable" is port unreachable.
//   - Packet Too Big (type 2, RFC 4443 §3.2) is fragmentation needed: its
//     MTU field goes in ICMPError.MTU, and HandleICMP applies RFC 8201.
//   - Time Exceeded (type 3, §3.3) is time exceeded, either code.
//   - Parameter Problem (type 4, §3.4) is a parameter problem, except
//     code 1 "unrecognized Next Header type encountered": the destination
//     does not know TCP (RFC 8200 §4 sends that code for an unrecognized
//     Next Header value), IPv6's protocol unreachable.
//
// Informational messages (types 128 and up) and unknown codes report
// false.
func ICMPv6KindOf(typ, code uint8) (ICMPKind, bool) {
	switch typ {
	case 1: // Destination Unreachable
		switch code {
		case 0:
			return ICMPNetUnreachable, true
		case 1, 2, 3, 5, 6:
			return ICMPHostUnreachable, true
		case 4:
			return ICMPPortUnreachable, true
		}
	case 2: // Packet Too Big
		return ICMPFragmentationNeeded, true
	case 3: // Time Exceeded
		return ICMPTimeExceeded, true
	case 4: // Parameter Problem
		if code == 1 {
			return ICMPProtocolUnreachable, true
		}
		return ICMPParameterProblem, true
	}
	return 0, false
}

// ICMPError describes an ICMP error message about a segment of a
// connection: what the stack read from the message and from the IPv4
// header and first 8 octets of TCP header it quotes (RFC 792: "the
// internet header plus the first 64 bits of the original datagram's
// data", which hold the ports and the sequence number).
type ICMPError struct {
	Kind ICMPKind
	// MTU is the Next-Hop MTU of a fragmentation-needed message
	// (RFC 1191 §4); 0 from routers that predate RFC 1191.
	MTU int
	// QuotedLength is the Total Length field of the quoted IPv4 header:
	// with a zero MTU, RFC 1191 §5 searches the plateau table below it.
	QuotedLength int
	// Seq is the sequence number of the quoted segment.
	Seq Value
}

// ICMPResult says what HandleICMP did with an ICMP error.
type ICMPResult uint8

// Results of HandleICMP.
const (
	// ICMPIgnored: the message was stale, forged or inapplicable (the
	// quoted sequence number is not in flight, the MTU is invalid or not
	// smaller than the path MTU, the state takes no ICMP) and changed
	// nothing. Counted in Stats.ICMPIgnored.
	ICMPIgnored ICMPResult = iota
	// ICMPMTULowered: a fragmentation-needed message lowered the path MTU
	// and the MSS (PathMTU returns the new value).
	ICMPMTULowered
	// ICMPSoftError: the error was recorded as the connection's soft
	// error (Info.SoftError), reported if the connection then times out.
	ICMPSoftError
	// ICMPAborted: a hard error ended a connection that was not yet
	// synchronized (Err returns the error).
	ICMPAborted
)

// String returns the result's name.
func (r ICMPResult) String() string {
	switch r {
	case ICMPIgnored:
		return "ignored"
	case ICMPMTULowered:
		return "MTU lowered"
	case ICMPSoftError:
		return "soft error"
	case ICMPAborted:
		return "aborted"
	}
	return "ICMPResult(" + itoa(int(r)) + ")"
}

// Errors reported for ICMP errors (RFC 1122 §4.2.3.9); the stack maps
// them to the errnos Linux uses for the same messages.
var (
	// ErrNetUnreachable: ICMP Destination Unreachable (net) (ENETUNREACH).
	ErrNetUnreachable = errors.New("tcp: network is unreachable")
	// ErrHostUnreachable: ICMP Destination Unreachable (host), or Time
	// Exceeded (EHOSTUNREACH).
	ErrHostUnreachable = errors.New("tcp: no route to host")
	// ErrProtocolUnreachable: ICMP Destination Unreachable (protocol)
	// (ENOPROTOOPT, as Linux reports it).
	ErrProtocolUnreachable = errors.New("tcp: protocol not available")
	// ErrSourceRouteFailed: ICMP Destination Unreachable (source route
	// failed) (EOPNOTSUPP, as Linux reports it).
	ErrSourceRouteFailed = errors.New("tcp: source route failed")
	// ErrProtocolError: ICMP Parameter Problem (EPROTO).
	ErrProtocolError = errors.New("tcp: protocol error")
)

// ParseQuotedSegment reads the ports and the sequence number from the
// first 8 octets of a TCP header quoted in an ICMP error (RFC 792). It
// fails with ErrTruncated if fewer than 8 octets are quoted.
func ParseQuotedSegment(b []byte) (srcPort, dstPort uint16, seq Value, err error) {
	if len(b) < 8 {
		return 0, 0, 0, ErrTruncated
	}
	return binary.BigEndian.Uint16(b[0:]), binary.BigEndian.Uint16(b[2:]), Value(binary.BigEndian.Uint32(b[4:])), nil
}

// HandleICMP acts on an ICMP error about a segment this connection sent
// (RFC 1122 §4.2.3.9: "TCP MUST act on an ICMP error message passed up
// from the IP layer, directing it to the connection that created the
// error"), then sends what became due.
//
// The quoted sequence number must be in flight, SND.UNA =< SEG.SEQ <
// SND.NXT, or the message is ignored (RFC 5927 §4.1, TCP sequence number
// checking: implementations "check that the TCP sequence number contained
// in the payload of the ICMP error message is within the range SND.UNA =<
// SEG.SEQ < SND.NXT"; SND.MAX stands for SND.NXT, which goes back after a
// timeout).
//
//   - Fragmentation needed lowers the path MTU (RFC 1191, pmtu.go).
//   - Net and host unreachable, source route failed, time exceeded and
//     parameter problem are soft errors (RFC 1122 §4.2.3.9: "Since these
//     Unreachable messages indicate soft error conditions, TCP MUST NOT
//     abort the connection"): recorded in Info.SoftError and reported
//     instead of ErrTimeout if the connection then times out, as Linux
//     reports sk_err_soft.
//   - Protocol and port unreachable are hard errors (RFC 1122
//     §4.2.3.9: "These are hard error conditions, so TCP SHOULD abort
//     the connection"). They abort a connection in SYN-SENT or
//     SYN-RECEIVED (ErrConnectionRefused for port unreachable, as Linux's
//     ECONNREFUSED; ErrProtocolUnreachable). In the synchronized states
//     they are soft errors: RFC 5927 §5.2, the counter-measure to the
//     blind connection-reset attack, treats hard errors received in the
//     synchronized states as soft ones (so do RFC 5461 and Linux).
func (c *Conn) HandleICMP(now time.Time, e ICMPError, out Output) ICMPResult {
	r := c.handleICMP(now, e, out)
	if c.stats != nil {
		switch r {
		case ICMPIgnored:
			c.stats.ICMPIgnored.Add(1)
		case ICMPMTULowered:
			c.stats.PMTUDecreases.Add(1)
		case ICMPSoftError:
			c.stats.ICMPSoftErrors.Add(1)
		case ICMPAborted:
			c.stats.ICMPAborts.Add(1)
		}
	}
	if c.state != StateClosed {
		c.flush(now, out)
	}
	return r
}

func (c *Conn) handleICMP(now time.Time, e ICMPError, out Output) ICMPResult {
	switch c.state {
	case StateClosed, StateListen, StateTimeWait:
		return ICMPIgnored
	}
	if !(c.snd.UNA.LessThanEq(e.Seq) && e.Seq.LessThan(c.snd.MAX)) {
		return ICMPIgnored
	}
	var err error
	switch e.Kind {
	case ICMPFragmentationNeeded:
		if c.fragNeeded(now, e, out) {
			return ICMPMTULowered
		}
		return ICMPIgnored
	case ICMPNetUnreachable:
		err = ErrNetUnreachable
	case ICMPHostUnreachable, ICMPTimeExceeded:
		err = ErrHostUnreachable
	case ICMPSourceRouteFailed:
		err = ErrSourceRouteFailed
	case ICMPParameterProblem:
		err = ErrProtocolError
	case ICMPProtocolUnreachable, ICMPPortUnreachable:
		err = ErrConnectionRefused
		if e.Kind == ICMPProtocolUnreachable {
			err = ErrProtocolUnreachable
		}
		if c.state == StateSynSent || c.state == StateSynReceived {
			c.fail(now, err)
			return ICMPAborted
		}
	default:
		return ICMPIgnored
	}
	c.softErr = softErrorOf(err)
	return ICMPSoftError
}

// softErrors are the errors an ICMP message may leave as a connection's
// soft error, indexed by Conn.softErr (0: none): a byte instead of an
// interface value in every connection.
var softErrors = [...]error{nil, ErrNetUnreachable, ErrHostUnreachable, ErrSourceRouteFailed, ErrProtocolError, ErrConnectionRefused, ErrProtocolUnreachable}

// softErrorOf is err's index in softErrors (0 for an error not there).
func softErrorOf(err error) uint8 {
	for i, e := range softErrors {
		if e == err {
			return uint8(i)
		}
	}
	return 0
}

// giveUpError is the error of a connection that gave up: the soft error
// an ICMP message reported, if any, else ErrTimeout (RFC 1122 §4.2.3.9
// wants soft errors reported to the application; Linux's tcp_write_err
// reports sk_err_soft in place of ETIMEDOUT).
func (c *Conn) giveUpError() error {
	if c.softErr != 0 {
		return softErrors[c.softErr]
	}
	return ErrTimeout
}
