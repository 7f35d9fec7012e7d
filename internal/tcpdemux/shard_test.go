package tcpdemux

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/ustack/ustack/tcp"
)

// shardTuple returns the i-th 4-tuple of a set of distinct ones.
func shardTuple(i int) tcp.Tuple {
	return tcp.Tuple{
		Local:  netip.AddrPortFrom(local, 80),
		Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, byte(i >> 16), byte(i >> 8)}), uint16(1024+i&0xff)),
	}
}

// TestShardsSpread: connections spread over the shards, and two Demuxes
// (two seeds) shard the same tuples differently.
func TestShardsSpread(t *testing.T) {
	d, e := newTestDemux(), newTestDemux()
	const n = 64 * Shards
	same := 0
	for i := range n {
		tu := shardTuple(i)
		if !d.Add(tu, &testConn{}) {
			t.Fatalf("Add %v failed", tu)
		}
		if d.shardIndex(tu) == e.shardIndex(tu) {
			same++
		}
	}
	for i := range d.shards {
		if l := len(d.shards[i].conns); l < n/Shards/4 || l > 4*n/Shards {
			t.Errorf("shard %d holds %d of %d connections (%d shards)", i, l, n, Shards)
		}
	}
	if same > n/4 {
		t.Errorf("%d of %d tuples on the same shard under two seeds", same, n)
	}
	if got := len(d.Conns()); got != n {
		t.Errorf("Conns: %d, want %d", got, n)
	}
	count := 0
	d.Range(func(tcp.Tuple, *testConn) bool { count++; return count < 10 })
	if count != 10 {
		t.Errorf("Range went on after false: %d calls", count)
	}
}

// TestShardsConcurrent adds, looks up and removes connections from
// several goroutines at once (run it with -race): each sees its own.
func TestShardsConcurrent(t *testing.T) {
	d := newTestDemux()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g * 1000; i < (g+1)*1000; i++ {
				tu, c := shardTuple(i), &testConn{}
				if !d.Add(tu, c) {
					t.Errorf("Add %v failed", tu)
					return
				}
				if got, ok := d.Lookup(tu); !ok || got != c {
					t.Errorf("Lookup %v: %v %v", tu, got, ok)
					return
				}
				if d.Free(tu) {
					t.Errorf("%v is free while held", tu)
				}
				if i%2 == 0 {
					d.Remove(tu, c)
					if _, ok := d.Lookup(tu); ok {
						t.Errorf("%v still there after Remove", tu)
					}
				}
			}
		}()
	}
	wg.Wait()
	if got := len(d.Conns()); got != 2000 {
		t.Errorf("%d connections left, want 2000", got)
	}
}
