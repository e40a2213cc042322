package sqlstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// Bounds of a batcher.
const (
	// maxBatch is the most calls one batch takes: enough to take every
	// submission of a busy API at once (as maxGroup), few enough that one
	// statement's arrays stay small.
	maxBatch = 256
	// maxBatchesInFlight is how many batches run at once. While that
	// many run, calls queue, and the next batch to start takes all of
	// them: the busier the store, the larger the batches, with no timer.
	// More batches in flight run more, smaller statements, and what costs
	// the server is per statement (parse, executor start, commit); fewer
	// leave calls waiting for a round trip the server could have
	// overlapped. Measured with genpipe bench intake on PostgreSQL (32
	// connections, the server on the same 2 cores, 20 s runs, one batcher
	// for creates and marks): medians of 4,050 requests/s with 3 (six
	// runs), 3,790 with 2, 3,250 with 4 and 2,840 with 1 (three to seven
	// runs each; the runs of one setting spread by a third on that shared
	// machine).
	maxBatchesInFlight = 3
	// batchTimeout bounds one batch's statement. It does not run on any
	// caller's context: a caller that goes away must not fail the others
	// of its batch. As long as a group commit's transaction.
	batchTimeout = groupTimeout
)

// errAlone is a batch's answer to a call that the batch did not settle: the
// caller runs its call on its own (see createRequest).
var errAlone = errors.New("run the call on its own")

// A batcher coalesces concurrent calls into batches, each run by one
// function (run), for PostgreSQL one statement: what costs the server
// there is per statement (parse, bind, executor start, commit and its WAL
// flush), not per row. A call queues; if fewer than
// maxBatchesInFlight batches run, it runs at once, as a batch of one, in
// its caller's goroutine; otherwise it waits, and the next batch to finish
// starts the next one, in a goroutine of its own, taking everything queued
// (at most maxBatch calls). A call never waits for a timer.
//
// run gets the batch's items and returns one result per item, in order, or
// an error that every call of the batch returns (errAlone among them).
type batcher[T, R any] struct {
	run func(ctx context.Context, items []T) ([]R, error)

	mu      sync.Mutex
	queue   []*batchCall[T, R]
	running int // batches in flight
	largest int // the most calls one batch took, for tests
}

// A batchCall is one call's item and, once its batch ran, its outcome.
type batchCall[T, R any] struct {
	ctx   context.Context
	item  T
	state atomic.Int32 // callQueued, then callTaken or callGone
	res   R
	err   error
	done  chan struct{}
}

const (
	callQueued = iota
	callTaken  // in a batch: its outcome comes
	callGone   // its caller went away before a batch took it
)

func newBatcher[T, R any](run func(ctx context.Context, items []T) ([]R, error)) *batcher[T, R] {
	return &batcher[T, R]{run: run}
}

// do queues item and returns its outcome. A call whose context ends
// before a batch takes it returns the context's error, and is skipped;
// once taken, it waits for the outcome, so that what it returns is what
// the store holds.
func (b *batcher[T, R]) do(ctx context.Context, item T) (R, error) {
	c := &batchCall[T, R]{ctx: ctx, item: item, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	var calls []*batchCall[T, R]
	if b.running < maxBatchesInFlight {
		if calls = b.take(); calls != nil {
			b.running++
		}
	}
	b.mu.Unlock()
	if calls != nil { // a free slot: run here, and hand the slot on
		b.runBatch(calls)
		b.handOn()
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		if c.state.CompareAndSwap(callQueued, callGone) {
			var none R
			return none, ctx.Err()
		}
		<-c.done
	}
	return c.res, c.err
}

// take removes the next batch from the queue, at most maxBatch calls
// whose callers still wait; b.mu is held. A call whose context has ended
// (its caller is about to go) gets the context's error instead.
func (b *batcher[T, R]) take() []*batchCall[T, R] {
	var calls []*batchCall[T, R]
	n := 0
	for ; n < len(b.queue) && len(calls) < maxBatch; n++ {
		c := b.queue[n]
		if !c.state.CompareAndSwap(callQueued, callTaken) {
			continue // gone
		}
		if err := c.ctx.Err(); err != nil {
			c.err = err
			close(c.done)
			continue
		}
		calls = append(calls, c)
	}
	b.queue = b.queue[n:]
	b.largest = max(b.largest, len(calls))
	if len(b.queue) == 0 {
		b.queue = nil // let the backing array go
	}
	return calls
}

// handOn gives the slot of a batch that finished to the calls queued
// meanwhile, in a goroutine of their own, or frees it.
func (b *batcher[T, R]) handOn() {
	b.mu.Lock()
	calls := b.take()
	if calls == nil {
		b.running--
	}
	b.mu.Unlock()
	if calls != nil {
		go func() {
			b.runBatch(calls)
			b.handOn()
		}()
	}
}

// runBatch runs calls as one batch and tells each its outcome.
func (b *batcher[T, R]) runBatch(calls []*batchCall[T, R]) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	items := make([]T, len(calls))
	for i, c := range calls {
		items[i] = c.item
	}
	res, err := b.run(ctx, items)
	for i, c := range calls {
		if err != nil {
			c.err = err
		} else {
			c.res = res[i]
		}
		close(c.done)
	}
}
