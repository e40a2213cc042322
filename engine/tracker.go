package engine

import (
	"fmt"
	"slices"
)

// OffsetTracker tracks the records of one partition that are being
// processed, so that only an offset every earlier record of which is done is
// ever committed, whatever order the records finish in.
//
// Records are started in offset order (the order a partition delivers them)
// and may be done in any order. Offsets need not be consecutive: compaction
// and transaction markers leave gaps, and a gap is never waited for, because
// only started offsets are tracked.
//
// The zero value is ready to use. An OffsetTracker is not safe for concurrent
// use; the engine guards each with its lock. Memory is proportional to the
// number of records between the oldest unfinished one and the newest started
// one, and each operation is amortized O(1), except Done which is O(log n) in
// that number.
type OffsetTracker struct {
	offs    []int64 // started offsets, increasing; offs[:head] are done and about to be compacted
	done    []bool  // done[i] reports whether offs[i] is done
	head    int     // index of the oldest unfinished offset; len(offs) if all are done
	last    int64   // the newest started offset, valid if started
	started bool
	pending int // started but not done
}

// Start records that the record at off is being processed. Offsets must be
// started in increasing order: a partition delivers them that way, so an
// offset at or below the newest started one is a bug or a rewound fetch, and
// Start returns an error and tracks nothing.
func (t *OffsetTracker) Start(off int64) error {
	if off < 0 {
		return fmt.Errorf("offset tracker: start %d: negative offset", off)
	}
	if t.started && off <= t.last {
		return fmt.Errorf("offset tracker: start %d: not after the last started offset %d", off, t.last)
	}
	t.offs = append(t.offs, off)
	t.done = append(t.done, false)
	t.last, t.started = off, true
	t.pending++
	return nil
}

// Done records that the record at off is processed. It returns an error if
// off was not started or is already done.
func (t *OffsetTracker) Done(off int64) error {
	i, found := slices.BinarySearch(t.offs[t.head:], off)
	i += t.head
	if !found {
		return fmt.Errorf("offset tracker: done %d: offset not started", off)
	}
	if t.done[i] {
		return fmt.Errorf("offset tracker: done %d: already done", off)
	}
	t.done[i] = true
	t.pending--
	for t.head < len(t.offs) && t.done[t.head] {
		t.head++
	}
	t.compact()
	return nil
}

// compact drops the done prefix once it is at least half of the slice, so
// that memory follows the unfinished window and copying stays amortized O(1).
func (t *OffsetTracker) compact() {
	if t.head == len(t.offs) {
		t.offs, t.done, t.head = t.offs[:0], t.done[:0], 0
		return
	}
	if t.head < 64 || t.head*2 < len(t.offs) {
		return
	}
	n := copy(t.offs, t.offs[t.head:])
	copy(t.done, t.done[t.head:])
	t.offs, t.done, t.head = t.offs[:n], t.done[:n], 0
}

// Committable returns the offset to commit, which is the offset of the next
// record to process: the oldest unfinished started offset, or the newest
// started offset + 1 when every started record is done. Committing it never
// skips an unfinished record. ok is false before anything was started.
//
// Committing the oldest unfinished offset rather than the last contiguous
// done offset + 1 is the same when offsets are consecutive, and moves past a
// gap (a transaction marker, a compacted record) as soon as possible.
func (t *OffsetTracker) Committable() (off int64, ok bool) {
	switch {
	case !t.started:
		return 0, false
	case t.head < len(t.offs):
		return t.offs[t.head], true
	default:
		return t.last + 1, true
	}
}

// Pending returns how many started records are not done.
func (t *OffsetTracker) Pending() int { return t.pending }
