package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/genpipe/genpipe"
)

// A writer runs a call's statements: on the write pool, or inside the
// transaction of a group commit.
type writer interface {
	exec(query string, args ...any) (sql.Result, error)
	queryRow(query string, args ...any) row
}

// poolWriter runs statements on the write pool, each on its own.
type poolWriter struct {
	ctx context.Context
	p   *pool
}

func (w poolWriter) exec(query string, args ...any) (sql.Result, error) {
	return w.p.ExecContext(w.ctx, query, args...)
}

func (w poolWriter) queryRow(query string, args ...any) row {
	return w.p.QueryRowContext(w.ctx, query, args...)
}

// grouped runs fn, the writes of one call. On SQLite they join a group
// commit (see groupCommit): concurrent calls share one transaction, and so
// one write of the WAL, instead of queueing for the one connection with a
// transaction each. On PostgreSQL, where writers run at once and commits
// share WAL flushes by themselves, fn runs its statements on the pool
// (creates and marks first coalesce into one statement each there, see
// batcher; fn is what runs when a call goes on its own): a
// group there would run its calls' statements one after the other on one
// connection, each call in a savepoint (a failed statement aborts the
// whole transaction there), three round trips instead of one, and
// measured half as fast (storetest's SubmitParallel, 32 submitters) with
// fsync on or off.
//
// queries are the statements fn may run: on SQLite they are prepared
// before the transaction begins. fn's genpipe errors (ECONFLICT,
// ENOTFOUND, ...) are its outcome, and its statement changed nothing;
// any other error fails the whole group (see groupCommit.run).
func (s *Store) grouped(ctx context.Context, queries []string, fn func(w writer) error) error {
	if s.group == nil {
		return fn(poolWriter{ctx, s.write})
	}
	for _, q := range queries {
		if _, err := s.write.stmt(ctx, q); err != nil {
			return err
		}
	}
	return s.group.do(ctx, fn)
}

// Bounds of a group commit.
const (
	// maxGroup is the most calls one transaction takes: enough to take
	// every submission of a busy API at once, few enough that the first
	// of them does not wait long for the last.
	maxGroup = 256
	// groupTimeout bounds one group's transaction. Its statements do not
	// run on any caller's context: a caller that goes away must not
	// interrupt the others' writes (an interrupt rolls the whole
	// transaction back).
	groupTimeout = 30 * time.Second
)

// groupCommit runs the writes of concurrent calls in one transaction on
// the store's single SQLite write connection. A call queues its writes and
// waits; one goroutine takes everything queued, up to maxGroup, runs it in
// one transaction and commits, and each call gets its own outcome once
// the commit is done: what a call wrote is durable (as any commit of the
// store) before it returns, as before. While a group commits, the next
// one gathers, so the more calls arrive at once, the fewer transactions
// they cost.
type groupCommit struct {
	s    *Store
	wake chan struct{} // a call queued: run a group
	quit chan struct{}
	done chan struct{}
	stop sync.Once

	mu     sync.Mutex
	queue  []*groupCall
	closed bool

	transactions atomic.Int64 // groups begun, for tests
	waiting      atomic.Int64 // calls in do, for tests
}

// groupCall is one call's writes and, once its group committed, their
// outcome.
type groupCall struct {
	ctx  context.Context
	fn   func(w writer) error
	err  error
	done chan struct{}
}

func newGroupCommit(s *Store) *groupCommit {
	g := &groupCommit{s: s, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go g.loop()
	return g
}

var errStoreClosed = errors.New("store closed")

// do queues fn and waits for its group's outcome. A call whose context
// ends before its group starts is skipped; once its group runs it waits
// for the commit, so that what it returns is what the store holds.
func (g *groupCommit) do(ctx context.Context, fn func(w writer) error) error {
	c := &groupCall{ctx: ctx, fn: fn, done: make(chan struct{})}
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errStoreClosed
	}
	g.queue = append(g.queue, c)
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
	<-c.done
	return c.err
}

// loop runs groups until close, then fails what is left.
func (g *groupCommit) loop() {
	defer close(g.done)
	for {
		select {
		case <-g.quit:
			g.mu.Lock()
			left := g.queue
			g.queue, g.closed = nil, true
			g.mu.Unlock()
			finish(left, errStoreClosed)
			return
		case <-g.wake:
		}
		for {
			g.mu.Lock()
			n := min(len(g.queue), maxGroup)
			calls := g.queue[:n:n]
			g.queue = g.queue[n:]
			if len(g.queue) == 0 {
				g.queue = nil // let the backing array go
			}
			g.mu.Unlock()
			if n == 0 {
				break
			}
			g.run(calls)
		}
	}
}

// run runs calls in one transaction and tells each its outcome. A call's
// genpipe error is its own (its statement changed nothing, and SQLite
// undoes only that statement); any other error, or a failed commit, fails
// every call of the group, since the transaction may be gone.
func (g *groupCommit) run(calls []*groupCall) {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	g.transactions.Add(1)
	tx, err := g.s.write.BeginTx(ctx, nil)
	if err != nil {
		finish(calls, err)
		return
	}
	defer tx.Rollback()   // after Commit, a no-op
	var live []*groupCall // run, outcome to give after the commit
	for i, c := range calls {
		if err := c.ctx.Err(); err != nil {
			finish([]*groupCall{c}, err)
			continue
		}
		if err := c.fn(&txn{ctx: ctx, s: g.s, tx: tx}); err != nil {
			if genpipe.ErrorCode(err) == "" {
				finish(live, err)
				finish(calls[i:], err)
				return
			}
			c.err = err
		}
		live = append(live, c)
	}
	if err := tx.Commit(); err != nil {
		finish(live, err)
		return
	}
	for _, c := range live {
		close(c.done)
	}
}

// finish gives each of calls err as its outcome.
func finish(calls []*groupCall, err error) {
	for _, c := range calls {
		c.err = err
		close(c.done)
	}
}

// close fails what is queued and stops the loop; closing twice is
// harmless.
func (g *groupCommit) close() {
	g.stop.Do(func() { close(g.quit) })
	<-g.done
}
