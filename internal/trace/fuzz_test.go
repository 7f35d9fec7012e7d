package trace

import (
	"testing"
	"time"
)

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// FuzzAppend: any bytes, as an Ethernet frame or a raw IP packet, trace
// without a panic into well-shaped lines.
func FuzzAppend(f *testing.F) {
	for _, tc := range goldenCases() {
		f.Add(tc.f.Data, tc.f.Raw)
	}
	f.Fuzz(func(t *testing.T, b []byte, raw bool) {
		fr := Frame{Dir: In, NIC: "fuzz", Data: b, Raw: raw}
		checkShape(t, "fuzz", Append(nil, &fr))
	})
}
