package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
)

// Handler processes one record. It runs concurrently with other records, of
// other partitions and of the same one (see WithOrderByKey). It owns its
// retries: an error is logged and the record still counts as done, so one bad
// record never stalls its partition. An error that says the downstream
// service is overloaded (ErrOverloaded, or see WithOverloadTest) also makes
// the engine back off.
//
// The context is canceled when the engine gives up on the record: at the end
// of a revoke's or shutdown's timeout, or at once when the partition is lost.
// A handler that returns after that does not count as done, whatever it
// returns, and its record is not committed: the partition's next owner
// handles it again. A handler may still finish work it must not cut short
// once its context ends, such as a paid call already under way, as long as
// it records the outcome where the next owner finds it instead of doing the
// work again (genpipe's workers claim each call in a database; see package
// worker). Run waits for such handlers at shutdown, up to WithAbandonWait.
type Handler func(ctx context.Context, r *kgo.Record) error

// Engine consumes topics in a consumer group and runs a Handler for every
// record, at most a limit at once over all the partitions it owns.
//
// Records of one partition run concurrently, so the downstream service's
// capacity, not the partition count, bounds the work; per partition an
// OffsetTracker makes sure a committed offset never passes an unfinished
// record. The engine polls continuously and never waits for handlers in its
// poll loop; franz-go heartbeats in the background, so handler time never
// decides group membership: a slow handler can never get the engine thrown
// out of its group, as it gets a Java consumer that outlasts
// max.poll.interval.
//
// # Sharing the capacity
//
// Each partition carries a fixed part of the capacity: partition i of the
// consumed topics' total (numbered in one row, topics in name order) gets
// capacity/total slots, plus one if i < capacity%total, so all partitions'
// slots add up to the capacity exactly. Each engine's share is the sum of
// the slots of the partitions it owns, recomputed on every rebalance: the
// group's engines use the whole capacity and never more, without talking to
// each other: partitions 0-3 with capacity 6 carry 2, 2, 1 and 1 slots, so
// 3 engines on them get 4, 1 and 1, or 3, 2 and 1, whichever they own. The
// one exception: an engine that owns partitions gets at least 1 slot, so
// with more partitions than capacity, engines holding only slot-less
// partitions each add one. During a cooperative rebalance an engine that gives partitions up waits, within the
// shutdown timeout, until its running handlers fit its smaller share before
// the partitions move, so the sum holds then too.
//
// # Backing off
//
// The limit starts at the share. A handler that reports an overload (see
// ErrOverloaded and ReportOverload) halves it, at least 1, once per cooldown;
// after the cooldown it grows by one every few successes, back to the share
// (additive increase, multiplicative decrease, like TCP). Lowering the limit
// never stops running handlers: it holds back new ones until enough return.
//
// # Giving partitions up
//
// On a revoke and at shutdown the engine stops starting records of those
// partitions, waits up to the shutdown timeout for the running ones, cancels
// the rest, commits each partition's committable offset and only then lets
// the partitions go. Records not done are not committed: the next owner
// handles them again (at least once). Lost partitions (the session expired,
// or the brokers went away) are dropped without a commit, and their handlers
// canceled at once.
//
// Canceling a handler abandons its record, not necessarily its work: a
// handler may finish a call it must not cut short and record the outcome
// for the next owner (see Handler). The engine does not wait for that at a
// revoke — the group would wait with it — but it keeps counting such a
// handler in its running handlers, so the capacity it still uses downstream
// is not given to another record, and Run waits for it at shutdown, up to
// WithAbandonWait, so that the process does not exit under it.
//
// # Brokers that refuse
//
// franz-go retries every error of its group management forever. Some are
// the brokers refusing this member's own settings, which no retry fixes: a
// session timeout outside their bounds (INVALID_SESSION_TIMEOUT; a stock
// Apache Kafka accepts 6s to 30m), no right to the group, a group name or a
// KIP-848 assignor they refuse. Run stops on these and returns the error
// (*SessionTimeoutError for the session timeout, with the brokers' bounds),
// rather than run without ever consuming. When the client asks for KIP-848's
// consumer protocol and the brokers lack it, franz-go joins with the
// classic protocol; the engine logs a warning saying so.
type Engine struct {
	brokers []string
	group   string
	topics  []string
	handle  Handler
	cfg     config
	log     *slog.Logger
	running atomic.Bool

	handled   atomic.Int64 // records done
	failed    atomic.Int64 // records whose handler returned an error (also done)
	abandoned atomic.Int64 // records whose handler was canceled: not done

	commitMu sync.Mutex // serializes commits, so a later snapshot is never overwritten by an earlier one

	mu sync.Mutex
	st state // everything below mu
}

// New returns an engine that consumes topics in group from brokers and runs
// handle for every record. It does not connect until Run.
func New(brokers []string, group string, topics []string, handle Handler, opts ...Option) (*Engine, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxBuffered == 0 {
		cfg.maxBuffered = defaultBufferedPerHandle * cfg.capacity
	}
	if cfg.log == nil {
		cfg.log = slog.Default()
	}
	if err := validate(brokers, group, topics, handle, cfg); err != nil {
		return nil, fmt.Errorf("engine: new engine for group %q: %w", group, err)
	}
	return &Engine{
		brokers: brokers,
		group:   group,
		topics:  topics,
		handle:  handle,
		cfg:     cfg,
		log:     cfg.log.With("group", group),
	}, nil
}

func validate(brokers []string, group string, topics []string, handle Handler, cfg config) error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(len(brokers) == 0, "no brokers")
	check(group == "", "empty group")
	check(len(topics) == 0, "no topics")
	check(handle == nil, "nil handler")
	check(cfg.capacity < 1, "capacity %d, want at least 1", cfg.capacity)
	check(cfg.maxBuffered < 1, "max buffered %d, want at least 1", cfg.maxBuffered)
	check(cfg.shutdownTimeout < 0, "shutdown timeout %v, want at least 0", cfg.shutdownTimeout)
	check(cfg.commitInterval <= 0, "commit interval %v, want more than 0", cfg.commitInterval)
	check(cfg.sessionTimeout <= 0, "session timeout %v, want more than 0", cfg.sessionTimeout)
	check(cfg.abandonWait < 0, "abandon wait %v, want at least 0", cfg.abandonWait)
	check(cfg.cooldown < 0, "overload cooldown %v, want at least 0", cfg.cooldown)
	check(cfg.increaseAfter < 1, "increase after %d successes, want at least 1", cfg.increaseAfter)
	return errors.Join(errs...)
}

func (e *Engine) clientOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(e.brokers...),
		kgo.MaxDecompressBatchBytes(genpipe.MaxBatchBytes), // a batch over it is handed on unread (see skip)
		kgo.ConsumerGroup(e.group),
		kgo.ConsumeTopics(e.topics...),
		kgo.DisableAutoCommit(),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.OnPartitionsAssigned(e.onAssigned),
		kgo.OnPartitionsRevoked(e.onRevoked),
		kgo.OnPartitionsLost(e.onLost),
		kgo.WithHooks(groupHook{e}),
	}
	d := e.cfg.sessionTimeout
	opts = append(opts, kgo.SessionTimeout(d), kgo.HeartbeatInterval(min(d/3, 3*time.Second)))
	if d := e.cfg.rebalanceTimeout; d > 0 {
		opts = append(opts, kgo.RebalanceTimeout(d))
	}
	return append(opts, e.cfg.clientOpts...)
}

// Run joins the group and handles records until ctx is done. It then stops
// starting handlers, waits up to the shutdown timeout for the running ones,
// commits what is done, waits up to the abandon wait for handlers it gave up
// on, leaves the group and returns nil. Fetch, commit and group errors are
// logged and retried, never returned, except those the brokers will answer
// the same way on every retry (see Engine): Run then stops as at shutdown and
// returns the error. It also returns an error if the engine cannot start, or
// if it is already running.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return fmt.Errorf("engine: group %q: already running", e.group)
	}
	defer e.running.Store(false)

	// Handlers outlive ctx by up to the shutdown timeout: their contexts
	// derive from one of their own, canceled only when the engine gives
	// up on them.
	hctx, hcancel := context.WithCancel(context.WithValue(context.WithoutCancel(ctx), engineKey{}, e))
	defer hcancel()
	runCtx, stopRun := context.WithCancel(ctx) // also stopped by a fatal group error
	defer stopRun()
	e.mu.Lock()
	e.st.reset(hctx)
	e.st.stopRun = stopRun
	e.mu.Unlock()

	cl, err := kgo.NewClient(e.clientOpts()...)
	if err != nil {
		return fmt.Errorf("engine: group %q: new client: %w", e.group, err)
	}
	var chores sync.WaitGroup
	chores.Go(func() { e.warnWithoutKIP848(runCtx, cl) })
	commitCtx, stopCommits := context.WithCancel(context.WithoutCancel(ctx))
	chores.Go(func() { e.commitLoop(commitCtx, cl) })

	e.pollLoop(runCtx, cl)

	e.mu.Lock()
	e.st.stopping = true // start nothing more, whatever a late assignment brings
	fatal := e.st.fatal
	e.mu.Unlock()
	e.release(context.WithoutCancel(ctx), cl, nil, "shutdown")
	stopCommits()
	chores.Wait()
	e.waitAbandoned()
	if fatal != nil {
		err = e.fatalError(context.WithoutCancel(ctx), cl, fatal)
	}
	// Leaving the group revokes every partition once more; there is
	// nothing left to wait for, so it only commits what a straggler did.
	cl.Close()
	return err
}

// waitAbandoned waits up to the abandon wait for the handlers the engine gave
// up on, at this shutdown or at revokes and losses before, to return: they
// may be finishing work they record for the next owner (see Handler).
func (e *Engine) waitAbandoned() {
	if e.waitUntil(func() bool { return e.st.inflight == 0 }, e.cfg.abandonWait) {
		return
	}
	e.mu.Lock()
	n := e.st.inflight
	e.mu.Unlock()
	e.log.Warn("engine: handlers still running at exit; their records will be handled again",
		"running", n, "waited", e.cfg.abandonWait)
}

// pollLoop polls records into the engine until ctx is done, never more than
// the room left in the buffer, and pauses fetching while the buffer is full.
// A batch too large to read takes a place in the buffer too (see skip).
func (e *Engine) pollLoop(ctx context.Context, cl *kgo.Client) {
	var unread []unreadBatch
	for ctx.Err() == nil {
		room := e.room()
		switch {
		case room == 0:
			e.waitForRoom(ctx, cl)
		case len(unread) > 0:
			e.skip(cl, unread[0])
			unread = unread[1:]
		default:
			if closed := e.poll(ctx, cl, room, &unread); closed {
				return
			}
		}
	}
}

// An unreadBatch is a fetched batch that decompresses past
// genpipe.MaxBatchBytes: franz-go stops fetching its partition until the
// offsets are set past it. seq is the revoke sequence of the poll that met
// it.
type unreadBatch struct {
	*kgo.ErrDecompressTooLarge
	seq uint64
}

// skip hands the handler, in place of batch b, a record without a value at
// b's last offset, marked with genpipe.HeaderUnread (the handler's record
// path dead-letters it, see kafka.RecordHandler), and moves the
// partition's fetching past b. Once that record is done, the commit passes
// b: the partition is not stopped for good by one hostile batch, and
// nothing is skipped without a trace.
func (e *Engine) skip(cl *kgo.Client, b unreadBatch) {
	why := fmt.Sprintf("the batch at offsets %d to %d decompresses to more than %d MiB: not read",
		b.Offset, b.NextOffset-1, genpipe.MaxBatchBytes>>20)
	e.log.Warn("engine: batch too large to read, handing it on as one record", "topic", b.Topic, "partition", b.Partition,
		"offset", b.Offset, "next", b.NextOffset)
	r := &kgo.Record{Topic: b.Topic, Partition: b.Partition, Offset: b.NextOffset - 1, LeaderEpoch: b.Epoch, Timestamp: time.Now(),
		Headers: []kgo.RecordHeader{{Key: genpipe.HeaderUnread, Value: []byte(why)}}}
	e.enqueue([]*kgo.Record{r}, b.seq)
	cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{b.Topic: {b.Partition: {Epoch: b.Epoch, Offset: b.NextOffset}}})
}

// poll polls up to n records and hands them to the dispatcher; batches too
// large to read go to unread. It reports whether the client is closed.
func (e *Engine) poll(ctx context.Context, cl *kgo.Client, n int, unread *[]unreadBatch) (closed bool) {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	seq := e.st.revokeSeq
	e.st.pollCancel = cancel // a revoke interrupts the poll, see release
	e.mu.Unlock()

	fetches := cl.PollRecords(pctx, n)

	e.mu.Lock()
	e.st.pollCancel = nil
	e.mu.Unlock()
	if fetches.IsClientClosed() {
		return true
	}
	fetchErrs := 0
	fetches.EachError(func(topic string, partition int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return // our own ctx or a revoke's interruption
		}
		if big := (*kgo.ErrDecompressTooLarge)(nil); errors.As(err, &big) {
			*unread = append(*unread, unreadBatch{big, seq})
			return
		}
		fetchErrs++
		e.log.Warn("engine: fetch error, retrying", "topic", topic, "partition", partition, "err", err)
	})
	if recs := fetches.Records(); len(recs) > 0 {
		e.enqueue(recs, seq)
	} else if fetchErrs > 0 {
		sleep(ctx, 250*time.Millisecond) // do not spin on a partition that keeps failing
	}
	return false
}

// waitForRoom pauses fetching until half of the buffer has drained, so that
// franz-go drops what it buffered and fetches nothing more meanwhile.
// Resuming at half rather than at the first free slot avoids pausing and
// resuming for every record.
func (e *Engine) waitForRoom(ctx context.Context, cl *kgo.Client) {
	cl.PauseFetchTopics(e.topics...)
	e.setPaused(true)
	defer func() {
		cl.ResumeFetchTopics(e.topics...)
		e.setPaused(false)
	}()
	resumeAt := e.cfg.maxBuffered / 2
	for {
		e.mu.Lock()
		buffered, changed := e.st.buffered, e.st.waitChan()
		e.mu.Unlock()
		if buffered <= resumeAt {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

func (e *Engine) room() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return max(e.cfg.maxBuffered-e.st.buffered, 0)
}

func (e *Engine) setPaused(p bool) {
	e.mu.Lock()
	e.st.paused = p
	e.mu.Unlock()
}

// sleep waits d or until ctx is done, and reports whether ctx is still
// going.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
