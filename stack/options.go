package stack

import (
	"fmt"
	"math"
)

// Validate reports the first field of o out of range, naming it: a
// negative or non-finite ICMP rate where negative does not mean "off", a
// negative burst, a nameserver that is not a unicast IPv4 address, or a
// TCP config that tcp.Config.Validate refuses once its zero fields took
// their defaults (tcp.Config.WithDefaults). Zero fields are never an
// error: they mean the default.
func (o *Options) Validate() error {
	if math.IsNaN(o.ICMPErrorRate) || math.IsInf(o.ICMPErrorRate, 0) || o.ICMPErrorRate < 0 {
		return fmt.Errorf("stack: Options.ICMPErrorRate %v is not a finite rate >= 0", o.ICMPErrorRate)
	}
	if o.ICMPErrorBurst < 0 {
		return fmt.Errorf("stack: Options.ICMPErrorBurst %d is negative", o.ICMPErrorBurst)
	}
	if math.IsNaN(o.ICMPEchoRate) || math.IsInf(o.ICMPEchoRate, 1) {
		return fmt.Errorf("stack: Options.ICMPEchoRate %v is not a finite rate", o.ICMPEchoRate)
	}
	if o.ICMPEchoBurst < 0 {
		return fmt.Errorf("stack: Options.ICMPEchoBurst %d is negative", o.ICMPEchoBurst)
	}
	for i, a := range o.Nameservers {
		ip := a.Addr().Unmap()
		switch {
		case !a.IsValid():
			return fmt.Errorf("stack: Options.Nameservers[%d] is not an address", i)
		case !ip.Is4():
			return fmt.Errorf("stack: Options.Nameservers[%d] %v is not an IPv4 address", i, a)
		case ip.IsUnspecified() || ip.IsMulticast() || ip == ipv4Broadcast:
			return fmt.Errorf("stack: Options.Nameservers[%d] %v is not a unicast address", i, a)
		}
	}
	if o.StableSecret != nil && len(o.StableSecret) < 16 {
		// RFC 7217 §5: secret_key "of at least 128 bits".
		return fmt.Errorf("stack: Options.StableSecret has %d bytes, want at least 16 (RFC 7217 §5)", len(o.StableSecret))
	}
	if o.TCP != nil {
		cfg := o.TCP.WithDefaults()
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("stack: Options.TCP: %w", err)
		}
	}
	return nil
}
