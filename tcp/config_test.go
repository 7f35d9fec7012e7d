package tcp

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestConfigWithDefaults: every numeric field left at zero takes
// DefaultConfig's value, set fields and the "off" negatives stay, and
// DefaultConfig passes through unchanged.
func TestConfigWithDefaults(t *testing.T) {
	d := DefaultConfig()
	if got := d.WithDefaults(); !reflect.DeepEqual(got, d) {
		t.Errorf("DefaultConfig().WithDefaults() changed it:\n%+v\n%+v", got, d)
	}
	got := Config{SendBufferSize: 1000, ReceiveBufferSize: 2000}.WithDefaults()
	want := d
	want.SendBufferSize, want.ReceiveBufferSize = 1000, 2000
	want.WindowScale, want.Timestamps, want.SACKPermitted = false, false, false // booleans are taken as given
	want.MTUProbing = MTUProbingOff                                             // and enumerations
	if !reflect.DeepEqual(got, want) {
		t.Errorf("buffers only:\n got %+v\nwant %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	off := Config{DelayedAckTimeout: -1, MaxOutOfOrderBytes: -1, MaxHalfOpen: -1, InvalidRSTLimit: -1}.WithDefaults()
	if off.DelayedAckTimeout != -1 || off.MaxOutOfOrderBytes != -1 || off.MaxHalfOpen != -1 || off.InvalidRSTLimit != -1 {
		t.Errorf("negative \"off\" values not kept: %+v", off)
	}
	if err := off.Validate(); err != nil {
		t.Errorf("Validate of the \"off\" values: %v", err)
	}
}

// TestConfigValidate: each value the core cannot use is an error that
// wraps ErrInvalidConfig and names its field.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		field string
		set   func(*Config)
	}{
		{"SendBufferSize", func(c *Config) { c.SendBufferSize = -1 }},
		{"ReceiveBufferSize", func(c *Config) { c.ReceiveBufferSize = -5 }},
		{"MaxReceiveBufferSize", func(c *Config) { c.MaxReceiveBufferSize = -1 }},
		{"MaxSendBufferSize", func(c *Config) { c.MaxSendBufferSize = -1 }},
		{"MinRTO", func(c *Config) { c.MinRTO = -time.Millisecond }},
		{"MaxRTO", func(c *Config) { c.MaxRTO = -1 }},
		{"InitialRTO", func(c *Config) { c.InitialRTO = -1 }},
		{"MinRTO", func(c *Config) { c.MinRTO, c.MaxRTO = time.Minute, time.Second }},
		{"MaxRetries", func(c *Config) { c.MaxRetries = -1 }},
		{"SynRetries", func(c *Config) { c.SynRetries = -2 }},
		{"MSL", func(c *Config) { c.MSL = -1 }},
		{"DelayedAckTimeout", func(c *Config) { c.DelayedAckTimeout = 500 * time.Millisecond }},
		{"FinWait2Timeout", func(c *Config) { c.FinWait2Timeout = -1 }},
		{"KeepAliveIdle", func(c *Config) { c.KeepAliveIdle = -1 }},
		{"KeepAliveInterval", func(c *Config) { c.KeepAliveInterval = -1 }},
		{"KeepAliveCount", func(c *Config) { c.KeepAliveCount = -1 }},
		{"ChallengeACKLimit", func(c *Config) { c.ChallengeACKLimit = -1 }},
		{"SynAckRetries", func(c *Config) { c.SynAckRetries = -1 }},
		{"MTUProbeBaseMSS", func(c *Config) { c.MTUProbeBaseMSS = 40 }},
		{"MTUProbeBaseMSS", func(c *Config) { c.MTUProbeBaseMSS = 70000 }},
		{"MTUProbing", func(c *Config) { c.MTUProbing = 7 }},
		{"SYNCookies", func(c *Config) { c.SYNCookies = 9 }},
		{"CongestionControl", func(c *Config) { c.CongestionControl = "vegas" }},
	} {
		c := DefaultConfig()
		tc.set(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s out of range: Validate() = %v", tc.field, err)
		}
	}
	// A zero Config without WithDefaults is refused, naming the first
	// field that would break every connection.
	var zero Config
	if err := zero.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "SendBufferSize") {
		t.Errorf("zero Config: Validate() = %v", err)
	}
	if c := DefaultConfig(); c.Validate() != nil {
		t.Errorf("DefaultConfig invalid: %v", c.Validate())
	}
}
