package tcpdemux

import (
	"encoding/binary"
	"hash/maphash"
	"time"

	"github.com/ustack/ustack/tcp"
)

// twChunkLen is the number of records in one chunk of the arena: 48 KiB
// of 96-byte records, so that the arena grows and shrinks by small steps
// and never copies a record to grow.
const twChunkLen = 512

// twMinIndex is the smallest index (2 KiB), allocated with the first record.
const twMinIndex = 256

// twCompactMin is the number of dead slots below which the arena is not
// compacted, however few records are live.
const twCompactMin = 256

// twMaxRecords bounds Config.MaxTimeWait, so that ring positions (32
// bits, with the dead slots compaction allows) and the index (31-bit
// home buckets) cannot overflow.
const twMaxRecords = 1 << 30

// twChunk is one chunk of the arena. It holds no pointer: the collector
// does not scan it.
type twChunk [twChunkLen]tcp.TimeWait

// timeWaitTable holds the connections in TIME-WAIT whose users closed
// them, each as a 96-byte tcp.TimeWait record instead of its Conn,
// buffers and endpoint, with no allocation per record.
//
// The records live in an arena that is a ring in deadline order: every
// record lasts 2*MSL from the peer's last FIN, so records are appended at
// the tail and expire from the head, FIFO, without a heap or a queue
// beside the arena. Ring positions are uint32 and wrap; position p is
// slot p%twChunkLen of chunks[(p-base)/twChunkLen]. A record that leaves
// early (a RST, a SYN reusing the 4-tuple, RFC 6191) leaves a dead slot,
// the zero TimeWait; a record whose deadline a retransmitted FIN restarted
// moves to the tail, leaving a dead slot too. Dead slots are dropped when
// the head reaches them, or by compaction once they outnumber the live
// records (so a flood of FINs cannot grow the arena past twice the
// records plus twCompactMin).
//
// The index maps a 4-tuple to its position: open addressing with linear
// probing over uint64 entries, 8 bytes each at a load of at most 3/4
// (10.7 to 21 bytes a record), keyed by maphash with a seed of the
// table's own (a random key, so that an attacker cannot aim 4-tuples at
// one bucket, as Go's maps defend themselves). An entry is
//
//	1<<63 | h>>33<<32 | position
//
// where h>>33, the top 31 bits of the hash, both picks the home bucket and
// filters candidates before their record's 4-tuple is compared, so that a
// miss rarely touches the arena. Deletion shifts the entries after it back
// (Knuth's Algorithm R), so the index has no tombstones.
//
// The table is not safe for concurrent use: Demux guards it with its
// records' lock.
type timeWaitTable struct {
	max  int // the bound (Config.MaxTimeWait); 0: none kept
	seed maphash.Seed

	chunks           []*twChunk
	spare            *twChunk // one emptied chunk, zeroed, kept for the next
	base, head, tail uint32   // chunks[0] holds positions from base; the records are in [head, tail)
	live             int      // records in the index; the other slots in [head, tail) are dead

	index []uint64
}

const twUsed = 1 << 63

func (tw *timeWaitTable) init(max int) {
	switch {
	case max == 0:
		max = DefaultMaxTimeWait
	case max < 0:
		max = 0
	case max > twMaxRecords:
		max = twMaxRecords
	}
	tw.max = max
	tw.seed = maphash.MakeSeed()
}

// hash is the keyed hash of t's 4-tuple in its 16-byte form.
func (tw *timeWaitTable) hash(t tcp.Tuple) uint64 {
	var b [36]byte
	la, ra := t.Local.Addr().As16(), t.Remote.Addr().As16()
	copy(b[0:16], la[:])
	copy(b[16:32], ra[:])
	binary.BigEndian.PutUint16(b[32:34], t.Local.Port())
	binary.BigEndian.PutUint16(b[34:36], t.Remote.Port())
	return maphash.Bytes(tw.seed, b[:])
}

// slot returns the record at position p of the ring.
func (tw *timeWaitTable) slot(p uint32) *tcp.TimeWait {
	d := p - tw.base
	return &tw.chunks[d/twChunkLen][d%twChunkLen]
}

// lookup returns the index entry of t and its position, if t has a
// record.
func (tw *timeWaitTable) lookup(t tcp.Tuple) (i int, pos uint32, ok bool) {
	if tw.live == 0 {
		return 0, 0, false
	}
	h := tw.hash(t) >> 33
	mask := len(tw.index) - 1
	for i = int(h) & mask; ; i = (i + 1) & mask {
		e := tw.index[i]
		if e == 0 {
			return 0, 0, false
		}
		if (e>>32)&^(twUsed>>32) == h {
			if pos = uint32(e); tw.slot(pos).Is(t) {
				return i, pos, true
			}
		}
	}
}

// entryOf returns the index entry that points at position pos, whose
// record is r; -1 if none does.
func (tw *timeWaitTable) entryOf(r *tcp.TimeWait, pos uint32) int {
	if len(tw.index) == 0 {
		return -1
	}
	h := tw.hash(r.Tuple()) >> 33
	mask := len(tw.index) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		e := tw.index[i]
		if e == 0 {
			return -1
		}
		if uint32(e) == pos {
			return i
		}
	}
}

// insert adds the entry for hash h at position pos; the index has room.
func (tw *timeWaitTable) insert(h uint64, pos uint32) {
	h >>= 33
	mask := len(tw.index) - 1
	i := int(h) & mask
	for tw.index[i] != 0 {
		i = (i + 1) & mask
	}
	tw.index[i] = twUsed | h<<32 | uint64(pos)
}

// unindex deletes entry i, shifting back the entries of its probe run
// that may take its place (Knuth, TAOCP vol. 3 §6.4, Algorithm R).
func (tw *timeWaitTable) unindex(i int) {
	mask := len(tw.index) - 1
	for j := i; ; {
		tw.index[i] = 0
		for {
			j = (j + 1) & mask
			e := tw.index[j]
			if e == 0 {
				return
			}
			// The entry at j may move to i unless its home bucket lies
			// cyclically in (i, j].
			home := int(e>>32) & mask
			if (j-home)&mask >= (j-i)&mask {
				tw.index[i] = e
				i = j
				break
			}
		}
	}
}

// reindex rebuilds the index with n buckets (a power of two) from the
// records of the ring.
func (tw *timeWaitTable) reindex(n int) {
	tw.index = make([]uint64, n)
	for p := tw.head; p != tw.tail; p++ {
		if r := tw.slot(p); !r.IsZero() {
			tw.insert(tw.hash(r.Tuple()), p)
		}
	}
}

// indexSize returns the index size for n records: the smallest power of
// two, at least twMinIndex, that holds them at a load of at most 1/2.
func indexSize(n int) int {
	size := twMinIndex
	for size < 2*n {
		size *= 2
	}
	return size
}

// push appends r at the tail of the ring and returns its position.
func (tw *timeWaitTable) push(r tcp.TimeWait) uint32 {
	if int(tw.tail-tw.base) == len(tw.chunks)*twChunkLen {
		c := tw.spare
		tw.spare = nil
		if c == nil {
			c = new(twChunk)
		}
		tw.chunks = append(tw.chunks, c)
	}
	p := tw.tail
	*tw.slot(p) = r
	tw.tail++
	return p
}

// release gives back a chunk of dead slots: kept as the spare if there is
// none, else to the collector.
func (tw *timeWaitTable) release(c *twChunk) {
	if tw.spare == nil {
		tw.spare = c
	}
}

// advance moves the head past its slot, which is dead, releasing the
// first chunk when the head leaves it.
func (tw *timeWaitTable) advance() {
	tw.head++
	if tw.head-tw.base == twChunkLen {
		c := tw.chunks[0]
		tw.chunks[0] = nil
		tw.chunks = tw.chunks[1:]
		tw.base += twChunkLen
		tw.release(c)
	}
}

// add enters r and reports whether there was room under the bound. A
// record the 4-tuple had (none should: Demux.Add refuses its 4-tuple, a
// SYN that reopens it deletes it) is replaced.
func (tw *timeWaitTable) add(r tcp.TimeWait) bool {
	if i, pos, ok := tw.lookup(r.Tuple()); ok {
		tw.remove(i, pos)
	}
	if tw.live >= tw.max {
		return false
	}
	if len(tw.index) == 0 {
		tw.index = make([]uint64, twMinIndex)
	} else if 4*(tw.live+1) > 3*len(tw.index) {
		tw.reindex(2 * len(tw.index))
	}
	tw.insert(tw.hash(r.Tuple()), tw.push(r))
	tw.live++
	return true
}

// remove deletes the record at pos, found at index entry i: its slot
// becomes dead.
func (tw *timeWaitTable) remove(i int, pos uint32) {
	tw.unindex(i)
	*tw.slot(pos) = tcp.TimeWait{}
	tw.live--
	tw.tidy()
}

// moveToTail moves the record at pos, found at index entry i, to the tail
// of the ring: its deadline was restarted, to later than any other's.
func (tw *timeWaitTable) moveToTail(i int, pos uint32) {
	r := tw.slot(pos)
	p := tw.push(*r)
	*r = tcp.TimeWait{}
	tw.index[i] = tw.index[i]&^0xffffffff | uint64(p)
	tw.tidy()
}

// tidy compacts the ring when dead slots outnumber the records, and
// shrinks the index when the records fill less than an eighth of it.
func (tw *timeWaitTable) tidy() {
	if dead := int(tw.tail-tw.head) - tw.live; dead > tw.live && dead >= twCompactMin {
		tw.compact()
		return
	}
	if len(tw.index) > twMinIndex && 8*tw.live < len(tw.index) {
		tw.reindex(indexSize(tw.live))
	}
}

// compact moves the records of the ring together, in order, dropping the
// dead slots, releases the chunks left empty and rebuilds the index.
func (tw *timeWaitTable) compact() {
	w := tw.head
	for p := tw.head; p != tw.tail; p++ {
		r := tw.slot(p)
		if r.IsZero() {
			continue
		}
		if p != w {
			*tw.slot(w) = *r
			*r = tcp.TimeWait{}
		}
		w++
	}
	tw.tail = w
	need := (int(w-tw.base) + twChunkLen - 1) / twChunkLen
	for len(tw.chunks) > need {
		last := len(tw.chunks) - 1
		tw.release(tw.chunks[last])
		tw.chunks[last] = nil
		tw.chunks = tw.chunks[:last]
	}
	tw.reindex(indexSize(tw.live))
}

// expire deletes the records at the head whose 2*MSL timeout has ended
// at now and returns the deadline of the first record left, zero if none.
// Records are in deadline order but for one entered late (its user closed
// it after its peer's FIN): such a record waits behind later ones, and
// lookups treat it as expired meanwhile (Demux.TimeWaitInput).
func (tw *timeWaitTable) expire(now time.Time) time.Time {
	var next time.Time
	for tw.head != tw.tail {
		r := tw.slot(tw.head)
		if !r.IsZero() {
			if !r.Expired(now) {
				next = r.Deadline()
				break
			}
			if i := tw.entryOf(r, tw.head); i >= 0 {
				tw.unindex(i)
			}
			*r = tcp.TimeWait{}
			tw.live--
		}
		tw.advance()
	}
	tw.tidy()
	return next
}
