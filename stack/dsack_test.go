package stack

import (
	"testing"

	"github.com/ustack/ustack/internal/leakcheck"
)

// TestDSACKThroughDuplication: through a link that duplicates frames, the
// receivers report the duplicate data in D-SACK blocks (RFC 2883 §4), and
// the counters reach the stack's statistics.
func TestDSACKThroughDuplication(t *testing.T) {
	leakcheck.Check(t)
	a, b := faultyPair(t, 0, 0, 0.05)
	transfer(t, a, b, 1<<20)
	sa, sb := a.Stats().TCP, b.Stats().TCP
	t.Logf("D-SACKs sent: a %d, b %d; received: a %d, b %d", sa.DSACKsSent, sb.DSACKsSent, sa.DSACKsReceived, sb.DSACKsReceived)
	if sa.DSACKsSent == 0 || sb.DSACKsSent == 0 {
		t.Errorf("no D-SACK sent through 5%% duplication: a %d, b %d", sa.DSACKsSent, sb.DSACKsSent)
	}
}
