package engine

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TopicPartition names one partition of one topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// state is the engine's mutable state, guarded by Engine.mu.
type state struct {
	hctx  context.Context // parent of every partition's handler context
	parts map[TopicPartition]*partition

	// A poll that began before a revoke may return records of the revoked
	// partitions; revokedAt[tp] > the revokeSeq read before the poll
	// tells enqueue to drop them.
	revokeSeq  uint64
	revokedAt  map[TopicPartition]uint64
	pollCancel context.CancelFunc // interrupts the poll in progress, if any

	ready    queue // records that may start, in poll order
	buffered int   // records polled and not finished: queued, waiting for their key, or running
	inflight int   // handlers running, including canceled ones that have not returned

	total     int            // partitions of the consumed topics; 0 until known
	firsts    map[string]int // each topic's first partition when all are numbered in one row
	share     int
	limit     int
	lim       aimd
	paused    bool
	stopping  bool
	stopRun   context.CancelFunc // ends Run's poll loop
	fatal     error              // the group error that stopped Run, if any
	changed   chan struct{}      // closed when buffered or inflight drops; nil if nobody waits
	overloads int64
	revokes   int64 // rebalances that took partitions from this engine
	losses    int64 // times partitions were lost without a clean revoke
}

func (st *state) reset(hctx context.Context) {
	*st = state{
		hctx:      hctx,
		parts:     make(map[TopicPartition]*partition),
		revokedAt: make(map[TopicPartition]uint64),
	}
}

// waitChan returns a channel closed at the next drop of buffered or
// inflight.
func (st *state) waitChan() <-chan struct{} {
	if st.changed == nil {
		st.changed = make(chan struct{})
	}
	return st.changed
}

func (st *state) notify() {
	if st.changed != nil {
		close(st.changed)
		st.changed = nil
	}
}

// partition is the engine's state of one partition it owns.
type partition struct {
	tp        TopicPartition
	tracker   OffsetTracker
	epoch     int32 // leader epoch of the newest polled record, sent with commits
	committed int64 // the last offset this engine committed; -1 if none
	inflight  int
	queued    int                // in ready or waiting for their key
	keys      map[string][]*item // with WithOrderByKey: keys with a record running or ready, and the records waiting behind it
	ctx       context.Context    // handlers' context, canceled when the engine gives up on them
	cancel    context.CancelFunc
	leaving   bool // revoked, lost or shutting down: start and accept nothing more
	gone      bool // released or lost: never commit it again
}

func (st *state) newPartition(tp TopicPartition) *partition {
	ctx, cancel := context.WithCancel(st.hctx)
	p := &partition{tp: tp, committed: -1, keys: make(map[string][]*item), ctx: ctx, cancel: cancel}
	st.parts[tp] = p
	return p
}

// item is one polled record on its way through the engine.
type item struct {
	p *partition
	r *kgo.Record
}

// enqueue takes polled records into the engine and starts what fits the
// limit. seq is the revoke sequence read before the poll.
func (e *Engine) enqueue(recs []*kgo.Record, seq uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := &e.st
	for _, r := range recs {
		tp := TopicPartition{r.Topic, r.Partition}
		if st.revokedAt[tp] > seq || st.stopping {
			continue // fetched while the partition was ours; its next owner reads it again
		}
		p := st.parts[tp]
		if p == nil {
			p = st.newPartition(tp) // assigned without the callback having run yet
		}
		if p.leaving {
			continue
		}
		if err := p.tracker.Start(r.Offset); err != nil {
			e.log.Warn("engine: dropping a record out of offset order", recordAttrs(r, "err", err)...)
			continue
		}
		p.epoch = r.LeaderEpoch
		st.buffered++
		p.queued++
		it := &item{p: p, r: r}
		if e.cfg.orderByKey && r.Key != nil {
			k := string(r.Key)
			if waiting, busy := p.keys[k]; busy {
				p.keys[k] = append(waiting, it)
				continue
			}
			p.keys[k] = nil
		}
		st.ready.push(it)
	}
	e.dispatchLocked()
}

// dispatchLocked starts ready records while the limit allows. The caller
// holds e.mu.
func (e *Engine) dispatchLocked() {
	st := &e.st
	for !st.stopping && st.inflight < st.limit {
		it, ok := st.ready.pop()
		if !ok {
			return
		}
		it.p.queued--
		it.p.inflight++
		st.inflight++
		go e.run(it)
	}
}

// run runs the handler of one record and accounts for its end.
func (e *Engine) run(it *item) {
	err := e.call(it)
	done := it.p.ctx.Err() == nil // a handler the engine gave up on is not done, whatever it returned
	switch {
	case !done:
		e.abandoned.Add(1)
	case err != nil:
		e.failed.Add(1)
		e.handled.Add(1)
		level := slog.LevelError
		if e.cfg.overloaded(err) {
			level = slog.LevelWarn // the service's state, not a bug; the limit adapts
		}
		e.log.Log(context.Background(), level, "engine: handler failed; record counts as done", recordAttrs(it.r, "err", err)...)
	default:
		e.handled.Add(1)
	}
	e.finish(it, done, err)
}

// call runs the handler, turning a panic into an error: a panicking handler
// is a bug like a failing one, and crashing would only make every member
// crash on the same record.
func (e *Engine) call(it *item) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return e.handle(it.p.ctx, it.r)
}

// finish releases a finished record's slot, marks it done in its tracker,
// lets the next record of its key go, adapts the limit and starts what fits.
func (e *Engine) finish(it *item, done bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, p := &e.st, it.p
	st.inflight--
	st.buffered--
	p.inflight--
	if done && !p.gone {
		if terr := p.tracker.Done(it.r.Offset); terr != nil {
			e.log.Error("engine: offset tracking", recordAttrs(it.r, "err", terr)...) // a bug
		}
	}
	if e.cfg.orderByKey && it.r.Key != nil {
		e.nextOfKeyLocked(p, string(it.r.Key))
	}
	switch {
	case e.cfg.overloaded(err):
		e.overloadLocked()
	case done && err == nil:
		e.successLocked()
	}
	e.dispatchLocked()
	st.notify()
}

// nextOfKeyLocked makes the next record waiting for key k ready, or frees
// the key.
func (e *Engine) nextOfKeyLocked(p *partition, k string) {
	waiting := p.keys[k]
	if len(waiting) == 0 || p.leaving {
		delete(p.keys, k)
		return
	}
	p.keys[k] = waiting[1:]
	e.st.ready.push(waiting[0])
}

// leaveLocked stops the partitions ps: they accept and start nothing more,
// and their queued records are dropped (they are not done, so nothing past
// them is committed). It returns the partitions it found. The caller holds
// e.mu.
func (e *Engine) leaveLocked(tps []TopicPartition) []*partition {
	st := &e.st
	st.revokeSeq++
	if st.pollCancel != nil {
		st.pollCancel() // so that no poll spans this revoke and a later reassignment
	}
	var ps []*partition
	for _, tp := range tps {
		st.revokedAt[tp] = st.revokeSeq
		p := st.parts[tp]
		if p == nil {
			continue
		}
		ps = append(ps, p)
		if p.leaving {
			continue
		}
		p.leaving = true
		dropped := p.queued
		st.buffered -= dropped
		p.queued = 0
		clear(p.keys)
		if dropped > 0 {
			st.ready.removeIf(func(it *item) bool { return it.p == p })
		}
	}
	e.recomputeShareLocked()
	st.notify()
	return ps
}

func recordAttrs(r *kgo.Record, more ...any) []any {
	return append([]any{"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "key", string(r.Key)}, more...)
}

// queue is a FIFO of items.
type queue struct {
	items []*item
	head  int
}

func (q *queue) len() int { return len(q.items) - q.head }

func (q *queue) push(it *item) { q.items = append(q.items, it) }

func (q *queue) pop() (*item, bool) {
	if q.head == len(q.items) {
		return nil, false
	}
	it := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head >= 1024 && q.head*2 >= len(q.items):
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return it, true
}

// removeIf removes the items for which drop is true, keeping the order.
func (q *queue) removeIf(drop func(*item) bool) {
	kept := q.items[:0]
	for _, it := range q.items[q.head:] {
		if !drop(it) {
			kept = append(kept, it)
		}
	}
	clear(q.items[len(kept):])
	q.items, q.head = kept, 0
}
