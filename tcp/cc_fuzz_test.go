package tcp

import (
	"fmt"
	"testing"
	"time"
)

// ccInput reads a fuzz input as a stream of small numbers; past its end
// every read is zero, so any input decodes.
type ccInput struct {
	b []byte
}

func (in *ccInput) byte() byte {
	if len(in.b) == 0 {
		return 0
	}
	v := in.b[0]
	in.b = in.b[1:]
	return v
}

func (in *ccInput) uint16() uint16 { return uint16(in.byte())<<8 | uint16(in.byte()) }

func (in *ccInput) uint32() uint32 { return uint32(in.uint16())<<16 | uint32(in.uint16()) }

func (in *ccInput) uint64() uint64 { return uint64(in.uint32())<<32 | uint64(in.uint32()) }

// size is a byte count from plausible to absurd: small, around a window,
// or any 32-bit value.
func (in *ccInput) size() uint32 {
	switch k := in.byte(); k % 4 {
	case 0:
		return uint32(in.byte())
	case 1:
		return uint32(in.uint16())
	case 2:
		return uint32(in.uint16()) << (k >> 4)
	default:
		return in.uint32()
	}
}

// duration is a time span from zero to centuries, occasionally negative.
func (in *ccInput) duration() time.Duration {
	switch k := in.byte(); k % 8 {
	case 0:
		return 0
	case 1, 2, 3:
		return time.Duration(in.uint16()) * time.Microsecond
	case 4, 5:
		return time.Duration(in.uint16()) * time.Millisecond
	case 6:
		return time.Duration(in.uint16()) * 24 * time.Hour // up to 179 years
	default:
		return time.Duration(int64(in.uint64())) // anything, negative too
	}
}

// mss is an MSS in [1, 65535].
func (in *ccInput) mss() int {
	switch k := in.byte(); k % 4 {
	case 0:
		return 1460
	case 1:
		return 1 + int(in.byte())
	default:
		return 1 + int(in.uint16()%65535)
	}
}

// runCCEvents drives cc through the events the input decodes to and
// checks the invariants of CongestionControl after each one.
func runCCEvents(cc CongestionControl, data []byte) error {
	in := &ccInput{b: data}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mss := in.mss()
	cc.Init(now, mss, in.size(), in.size())
	var una Value
	check := func(step int, what string, mss int, afterCut bool) error {
		w := cc.Window()
		if w < uint32(mss) || w > MaxCongestionWindow {
			return fmt.Errorf("%s: step %d %s (mss %d): window %d outside [mss, %d]", cc.Name(), step, what, mss, w, MaxCongestionWindow)
		}
		if afterCut && cc.SlowStartThreshold() < 2*uint32(mss) {
			return fmt.Errorf("%s: step %d %s (mss %d): ssthresh %d below 2 MSS", cc.Name(), step, what, mss, cc.SlowStartThreshold())
		}
		return nil
	}
	if err := check(0, "Init", mss, false); err != nil {
		return err
	}
	for step := 1; len(in.b) > 0; step++ {
		var err error
		switch op := in.byte(); op % 10 {
		case 0, 1, 2, 3: // the common case: an ACK
			s := AckSample{
				Now:        now,
				Acked:      in.size(),
				Flight:     in.size(),
				AppLimited: op&0x80 != 0,
				RTT:        in.duration(),
				MinRTT:     in.duration(),
				SRTT:       in.duration(),
				MSS:        in.mss(),
			}
			una = una.Add(in.size())
			s.UNA, s.NXT = una, una.Add(in.size())
			cc.OnAck(s)
			err = check(step, "OnAck", s.MSS, false)
		case 4:
			mss = in.mss()
			cc.OnCongestionEvent(now, in.size(), mss)
			err = check(step, "OnCongestionEvent", mss, true)
		case 5:
			mss = in.mss()
			cc.OnRecoveryExit(now, mss)
			err = check(step, "OnRecoveryExit", mss, false)
		case 6:
			mss = in.mss()
			cc.OnRTO(now, in.size(), mss)
			err = check(step, "OnRTO", mss, true)
		case 7:
			mss = in.mss()
			cc.Undo(now, mss)
			err = check(step, "Undo", mss, false)
		case 8:
			mss = in.mss()
			cc.Restart(now, in.size(), mss)
			err = check(step, "Restart", mss, false)
		default: // time passes, or goes backwards now and then
			d := in.duration()
			if op&0x80 != 0 && d > 0 {
				d = -d
			}
			now = now.Add(d)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// FuzzCongestionControl drives Reno and Cubic through arbitrary event
// sequences (ACKs with absurd sizes, RTTs and MSSs, congestion events,
// timeouts, undo, restart, time jumping forward by years or backwards)
// and checks CongestionControl's invariants after every event: the
// window within [MSS, MaxCongestionWindow], ssthresh at least 2 MSS after
// a reduction, and no panic (google/gvisor#11632 is a CUBIC overflow).
// The seed corpus in testdata/fuzz/FuzzCongestionControl holds a slow
// start with a rising RTT into a loss and recovery, a timeout with undo
// and restart, a week without loss, absurd sizes and times, and a Reno
// window left below the MSS by an application-limited ACK (fixed).
func FuzzCongestionControl(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, name := range []string{CongestionReno, CongestionCubic} {
			cc, err := NewCongestionControl(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := runCCEvents(cc, data); err != nil {
				t.Fatal(err)
			}
		}
	})
}
