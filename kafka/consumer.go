package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Defaults of the consumer options.
const (
	DefaultMaxPollRecords  = 64
	DefaultConcurrency     = 64
	DefaultShutdownTimeout = 30 * time.Second
)

// commitTimeout bounds one offset commit, so that a broker that went away
// cannot hold a shutdown forever.
const commitTimeout = 10 * time.Second

// Handler processes one record. It runs concurrently with other records, of
// other partitions and of the same one. An error is logged with the record's
// coordinates and the record still counts as processed: retries and dead
// letters are the handler's business, and one bad record must not stall its
// partition. The context is canceled only when the consumer gives up on
// in-flight handlers at the end of its shutdown timeout; a handler that
// returns after that is not counted as processed.
type Handler func(ctx context.Context, r *kgo.Record) error

// Consumer consumes topics as a member of a consumer group and runs a Handler
// for every record, at most a fixed number at once.
//
// It polls a bounded number of records, runs their handlers concurrently,
// waits for all of them, commits their offsets, and polls again: an offset is
// committed only after its record's handler returned. Group membership does
// not depend on handler time: franz-go heartbeats in the background and has
// no max.poll.interval, so slow handlers never make the member leave the
// group (lesson 2 of DESIGN.md). When partitions are revoked in a rebalance,
// what is done so far is committed first, and nothing is committed for them
// afterwards, so a member never overwrites the commits of the partition's next
// owner. Records whose handlers were still running are handled again by that
// owner: delivery is at least once.
type Consumer struct {
	brokers []string
	group   string
	topics  []string
	handle  Handler
	cfg     consumerConfig
	sem     chan struct{} // one token per running handler, shared by every poll
	running atomic.Bool

	commitMu sync.Mutex // serializes commits so that a later snapshot is never overwritten by an earlier one

	mu         sync.Mutex
	cur        *batch                    // the poll being processed; nil between Runs
	revokeSeq  uint64                    // incremented on every revoke or loss
	revokedSeq map[topicPartition]uint64 // revokeSeq at the partition's last revoke or loss
}

type consumerConfig struct {
	maxPollRecords   int
	concurrency      int
	log              *slog.Logger
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	shutdownTimeout  time.Duration
	startOffset      *kgo.Offset
}

// ConsumerOption configures NewConsumer.
type ConsumerOption func(*consumerConfig)

// WithMaxPollRecords bounds how many records one poll returns, overriding
// DefaultMaxPollRecords (64). The consumer waits for a whole poll before the
// next, so a poll much larger than the concurrency leaves capacity idle while
// its last records finish; a poll as large as the concurrency keeps every
// record's wait short. franz-go fetches ahead of polls regardless, so a small
// poll costs no extra round trips.
func WithMaxPollRecords(n int) ConsumerOption {
	return func(c *consumerConfig) { c.maxPollRecords = n }
}

// WithConcurrency bounds how many handlers run at once in this consumer,
// across all its partitions, overriding DefaultConcurrency (64). Set it to the
// capacity of the service the handler calls: more only queues inside that
// service, fewer leaves it idle. Several consumer processes share a service's
// capacity, so divide it among them.
func WithConcurrency(n int) ConsumerOption { return func(c *consumerConfig) { c.concurrency = n } }

// WithConsumerLogger sends the consumer's logs (handler errors, fetch and
// commit errors) and franz-go's group logs to l, overriding the default
// slog.Default(). Unlike the producer, the consumer logs by default because a
// handler error is a bug that must be seen.
func WithConsumerLogger(l *slog.Logger) ConsumerOption { return func(c *consumerConfig) { c.log = l } }

// WithSessionTimeout sets how long the group waits for a heartbeat from this
// member before it declares it dead and rebalances, overriding franz-go's
// default of 45s. Heartbeats come from a background goroutine, so handler
// time does not count. Shorter detects crashed members sooner but rebalances
// on long GC or network pauses; it must be within the broker's
// group.min/max.session.timeout.ms (6s to 30m by default). The heartbeat
// interval is set to a third of it, at most franz-go's default of 3s.
func WithSessionTimeout(d time.Duration) ConsumerOption {
	return func(c *consumerConfig) { c.sessionTimeout = d }
}

// WithRebalanceTimeout sets how long the group waits for members to rejoin
// once a rebalance has begun, overriding franz-go's default of 60s. It bounds
// how long a rebalance can take when a member is slow to give up partitions;
// the consumer's revoke only commits what is done, so it is quick.
func WithRebalanceTimeout(d time.Duration) ConsumerOption {
	return func(c *consumerConfig) { c.rebalanceTimeout = d }
}

// WithShutdownTimeout bounds how long Run waits, once its context is done,
// for handlers that are running, overriding DefaultShutdownTimeout (30s).
// Records whose handlers did not finish in time are not committed and are
// handled again by the group, so the timeout trades a prompt stop against
// repeated work (for genpipe, a paid AI call claimed but not finished); 0
// gives up at once.
func WithShutdownTimeout(d time.Duration) ConsumerOption {
	return func(c *consumerConfig) { c.shutdownTimeout = d }
}

// WithStartOffset sets where a group without a committed offset for a
// partition starts, overriding franz-go's default of the earliest offset
// (kgo.NewOffset().AtStart(); Java's default is the latest). Earliest never
// skips a request that was queued before its group first started.
func WithStartOffset(o kgo.Offset) ConsumerOption {
	return func(c *consumerConfig) { c.startOffset = &o }
}

// NewConsumer returns a consumer of topics in group that runs handle for every
// record. It does not join the group until Run.
func NewConsumer(brokers []string, group string, topics []string, handle Handler, opts ...ConsumerOption) (*Consumer, error) {
	cfg := consumerConfig{
		maxPollRecords:  DefaultMaxPollRecords,
		concurrency:     DefaultConcurrency,
		shutdownTimeout: DefaultShutdownTimeout,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.log == nil {
		cfg.log = slog.Default()
	}
	var errs []error
	if len(brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	if group == "" {
		errs = append(errs, errors.New("empty group"))
	}
	if len(topics) == 0 {
		errs = append(errs, errors.New("no topics"))
	}
	if handle == nil {
		errs = append(errs, errors.New("nil handler"))
	}
	if cfg.maxPollRecords < 1 {
		errs = append(errs, fmt.Errorf("max poll records %d, want at least 1", cfg.maxPollRecords))
	}
	if cfg.concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency %d, want at least 1", cfg.concurrency))
	}
	if cfg.shutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout %v, want at least 0", cfg.shutdownTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("kafka: new consumer for group %q: %w", group, err)
	}
	return &Consumer{
		brokers:    brokers,
		group:      group,
		topics:     topics,
		handle:     handle,
		cfg:        cfg,
		sem:        make(chan struct{}, cfg.concurrency),
		revokedSeq: make(map[topicPartition]uint64),
	}, nil
}

func (c *Consumer) clientOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.brokers...),
		kgo.DisableClientMetrics(), // KIP-714 telemetry: nothing reads it, and it delays Close after a broker restart
		kgo.ConsumerGroup(c.group),
		kgo.ConsumeTopics(c.topics...),
		kgo.DisableAutoCommit(),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.WithLogger(kgoLogger{c.cfg.log}),
	}
	if d := c.cfg.sessionTimeout; d > 0 {
		opts = append(opts, kgo.SessionTimeout(d), kgo.HeartbeatInterval(min(d/3, 3*time.Second)))
	}
	if d := c.cfg.rebalanceTimeout; d > 0 {
		opts = append(opts, kgo.RebalanceTimeout(d))
	}
	if c.cfg.startOffset != nil {
		opts = append(opts, kgo.ConsumeStartOffset(*c.cfg.startOffset))
	}
	return opts
}

// Run joins the group and handles records until ctx is done. It then stops
// starting handlers, waits up to the shutdown timeout for the running ones,
// commits what is done, leaves the group and returns nil. Fetch and commit
// errors are logged and retried, never returned. It returns an error only if
// the consumer cannot start, or if it is already running.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return fmt.Errorf("kafka: consumer for group %q: already running", c.group)
	}
	defer c.running.Store(false)

	cl, err := kgo.NewClient(c.clientOpts()...)
	if err != nil {
		return fmt.Errorf("kafka: consumer for group %q: %w", c.group, err)
	}
	// Handlers outlive ctx by up to the shutdown timeout: they get a
	// context of their own, canceled only when Run gives up on them.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()

	for ctx.Err() == nil {
		seq := c.currentRevokeSeq()
		fetches := cl.PollRecords(ctx, c.cfg.maxPollRecords)
		if fetches.IsClientClosed() {
			break
		}
		fetchErrs := 0
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return // our own ctx; the loop condition ends Run
			}
			fetchErrs++
			c.cfg.log.Warn("kafka: fetch error, retrying", "group", c.group, "topic", topic, "partition", partition, "err", err)
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			if fetchErrs > 0 {
				sleep(ctx, 250*time.Millisecond) // do not spin on a partition that keeps failing
			}
			continue
		}
		b := c.startBatch(recs, seq)
		c.process(ctx, hctx, hcancel, b)
		c.commitDone(context.WithoutCancel(ctx), cl, "after poll")
	}

	// Leaving the group revokes every partition, which commits once more
	// in onRevoked: that picks up a straggler that finished in between.
	cl.Close()
	c.mu.Lock()
	c.cur = nil
	c.mu.Unlock()
	return nil
}

// process runs the handlers of b's records, at most concurrency at once, and
// returns when all have returned. Once ctx is done it starts no more and
// waits up to the shutdown timeout for those running.
func (c *Consumer) process(ctx, hctx context.Context, hcancel context.CancelFunc, b *batch) {
	var wg sync.WaitGroup
start:
	for _, it := range b.items {
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			break start
		}
		if ctx.Err() != nil { // select picks at random when both are ready
			<-c.sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-c.sem }()
			if c.run(hctx, it.rec) {
				c.markDone(b, it)
			}
		}()
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	t := time.NewTimer(c.cfg.shutdownTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		c.cfg.log.Warn("kafka: shutdown timeout: giving up on running handlers; their records will be handled again",
			"group", c.group, "timeout", c.cfg.shutdownTimeout)
		hcancel()
	}
}

// run calls the handler and reports whether the record counts as processed:
// it does unless the handler returned after Run gave up on it.
func (c *Consumer) run(ctx context.Context, r *kgo.Record) (processed bool) {
	defer func() {
		if p := recover(); p != nil {
			// A panicking handler is a bug like a failing one; crashing
			// would only make every member crash on the same record.
			c.cfg.log.Error("kafka: handler panicked", c.recordAttrs(r, "panic", p, "stack", string(debug.Stack()))...)
			processed = ctx.Err() == nil
		}
	}()
	err := c.handle(ctx, r)
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		c.cfg.log.Error("kafka: handler failed; record counts as processed", c.recordAttrs(r, "err", err)...)
	}
	return true
}

func (c *Consumer) recordAttrs(r *kgo.Record, more ...any) []any {
	return append([]any{"group", c.group, "topic", r.Topic, "partition", r.Partition,
		"offset", r.Offset, "key", string(r.Key)}, more...)
}

// onRevoked commits what is done before the partitions go to another member,
// then makes sure nothing more is committed for them from this poll. franz-go
// calls it from its group goroutine, concurrently with handlers, and also
// when leaving the group.
func (c *Consumer) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.commitDoneLocked(ctx, cl, "on revoke")
	if len(revoked) > 0 {
		c.cfg.log.Info("kafka: partitions revoked; committed what was done", "group", c.group, "revoked", revoked)
	}
	c.forget(revoked)
}

// onLost forgets partitions the member lost without a clean revoke (its
// session expired): committing for them would fail, or worse, succeed.
func (c *Consumer) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.cfg.log.Warn("kafka: partitions lost; their running records will be handled again", "group", c.group, "lost", lost)
	c.forget(lost)
}

func (c *Consumer) forget(parts map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.revokeSeq++
	for topic, ps := range parts {
		for _, p := range ps {
			tp := topicPartition{topic, p}
			c.revokedSeq[tp] = c.revokeSeq
			if c.cur != nil {
				if pp := c.cur.parts[tp]; pp != nil {
					pp.gone = true
				}
			}
		}
	}
}

func (c *Consumer) currentRevokeSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.revokeSeq
}

// commitDone commits, for every partition of the current poll, the offset
// after the last record of its contiguous prefix of processed records.
func (c *Consumer) commitDone(ctx context.Context, cl *kgo.Client, why string) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.commitDoneLocked(ctx, cl, why)
}

func (c *Consumer) commitDoneLocked(ctx context.Context, cl *kgo.Client, why string) {
	c.mu.Lock()
	b := c.cur
	var (
		offsets map[string]map[int32]kgo.EpochOffset
		upTo    map[*partProgress]int
	)
	if b != nil {
		offsets, upTo = b.toCommit()
	}
	c.mu.Unlock()
	if len(offsets) == 0 {
		return
	}

	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	var err error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, cerr error) {
		if cerr != nil {
			err = cerr
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil {
					err = errors.Join(err, fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, perr))
				}
			}
		}
	})
	if err != nil {
		// The next commit covers these offsets; if there is none, the
		// records are handled again: at least once.
		c.cfg.log.Warn("kafka: commit failed", "group", c.group, "when", why, "offsets", offsets, "err", err)
		return
	}
	c.mu.Lock()
	for pp, n := range upTo {
		pp.committed = max(pp.committed, n)
	}
	c.mu.Unlock()
}

func (c *Consumer) markDone(b *batch, it item) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pp := b.parts[it.tp]
	pp.done[it.idx] = true
	for pp.doneN < len(pp.done) && pp.done[pp.doneN] {
		pp.doneN++
	}
}

// startBatch makes recs the current poll. seq is the revoke sequence from
// before the poll: a partition revoked since may have records in recs that
// were fetched while it was still ours, and they must not be committed.
func (c *Consumer) startBatch(recs []*kgo.Record, seq uint64) *batch {
	b := &batch{parts: make(map[topicPartition]*partProgress)}
	for _, r := range recs {
		tp := topicPartition{r.Topic, r.Partition}
		pp := b.parts[tp]
		if pp == nil {
			pp = new(partProgress)
			b.parts[tp] = pp
		}
		b.items = append(b.items, item{tp: tp, idx: len(pp.recs), rec: r})
		pp.recs = append(pp.recs, r)
		pp.done = append(pp.done, false)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for tp, pp := range b.parts {
		if c.revokedSeq[tp] > seq {
			pp.gone = true
		}
	}
	c.cur = b
	return b
}

// batch tracks the records of one poll.
type batch struct {
	items []item // in poll order
	parts map[topicPartition]*partProgress
}

type topicPartition struct {
	topic     string
	partition int32
}

type item struct {
	tp  topicPartition
	idx int // index in parts[tp].recs
	rec *kgo.Record
}

// partProgress is one partition's records in a poll, in offset order.
type partProgress struct {
	recs      []*kgo.Record
	done      []bool
	doneN     int  // length of the prefix of recs that is done
	committed int  // length of the prefix of recs that is committed
	gone      bool // revoked or lost since the poll: never commit it again
}

// toCommit returns the offsets to commit and, per partition, the prefix
// length they stand for. The caller holds Consumer.mu.
func (b *batch) toCommit() (map[string]map[int32]kgo.EpochOffset, map[*partProgress]int) {
	var (
		offsets map[string]map[int32]kgo.EpochOffset
		upTo    map[*partProgress]int
	)
	for tp, pp := range b.parts {
		if pp.gone || pp.doneN <= pp.committed {
			continue
		}
		if offsets == nil {
			offsets = make(map[string]map[int32]kgo.EpochOffset)
			upTo = make(map[*partProgress]int)
		}
		if offsets[tp.topic] == nil {
			offsets[tp.topic] = make(map[int32]kgo.EpochOffset)
		}
		last := pp.recs[pp.doneN-1]
		offsets[tp.topic][tp.partition] = kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}
		upTo[pp] = pp.doneN
	}
	return offsets, upTo
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
