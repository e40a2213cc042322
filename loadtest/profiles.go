package loadtest

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/engine"
	"github.com/genpipe/genpipe/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Profiles.
const (
	ProfileNaive   = "naive"   // the article's starting point: Java client defaults
	ProfileArticle = "article" // the article's fixes: UUID keys, a small poll, commit after processing
	ProfileGenpipe = "genpipe" // the scheduling queue: consumers ingest, dispatchers run the AI calls within the capacity over every worker
)

// Profiles lists every profile, in the order a full run uses.
var Profiles = []string{ProfileNaive, ProfileArticle, ProfileGenpipe}

// Java client defaults the naive and article profiles emulate (unscaled).
const (
	javaMaxPollRecords    = 500
	javaMaxPollInterval   = 300 * time.Second
	javaSessionTimeout    = 45 * time.Second
	javaHeartbeatInterval = 3 * time.Second
	javaFetchMaxWait      = 500 * time.Millisecond
	javaBatchSize         = 16384
	// javaLinger is the Java producer's linger.ms (5 ms since Kafka 4.0),
	// scaled like every duration. A burst is handed to the client at once,
	// so its records still fill 16 KiB batches, one partition each.
	javaLinger = 5 * time.Millisecond
	// articleMaxPollRecords is the article's small max.poll.records: one
	// record per poll, committed as soon as it is processed.
	articleMaxPollRecords = 1
)

// profile says how one profile produces and consumes.
type profile struct {
	name           string
	keyed          bool // records carry the request UUID as key
	engine         bool // stages run on engine; otherwise on javaConsumer
	maxPollRecords int  // javaConsumer: max.poll.records
	// schedules says the profile starts waiting work by priority and the
	// tenants' weights, so that the multi-tenant targets are expected
	// of it; a first-come-first-served profile is expected to miss them.
	schedules bool
}

func lookupProfile(name string) (profile, error) {
	switch name {
	case ProfileNaive:
		return profile{name: name, maxPollRecords: javaMaxPollRecords}, nil
	case ProfileArticle:
		return profile{name: name, keyed: true, maxPollRecords: articleMaxPollRecords}, nil
	case ProfileGenpipe:
		return profile{name: name, keyed: true, engine: true, schedules: true}, nil
	}
	return profile{}, fmt.Errorf("loadtest: unknown profile %q (naive, article or genpipe)", name)
}

// sender produces one record and waits for the broker's acknowledgement.
type sender interface {
	send(ctx context.Context, topic, key string, value []byte) error
	close()
}

// keyedSender is genpipe's own producer: every record keyed, murmur2.
type keyedSender struct{ p *kafka.Producer }

func (s keyedSender) send(ctx context.Context, topic, key string, value []byte) error {
	return s.p.Publish(ctx, topic, key, value)
}
func (s keyedSender) close() { s.p.Close() }

// keylessSender emulates the Java producer the article started with:
// keyless records under the Java client's built-in partitioner since 3.3
// (KIP-794, refining KIP-480's sticky partitioner): it stays on one
// partition until batch.size (16 KiB) has been produced to it, then moves
// on, whether the records came in one burst or trickled in one at a time.
type keylessSender struct{ cl *kgo.Client }

func newKeylessSender(conn *kafka.Conn, linger time.Duration) (keylessSender, error) {
	cl, err := kgo.NewClient(append(conn.Opts(),
		kgo.DisableClientMetrics(),
		kgo.RecordPartitioner(kgo.UniformBytesPartitioner(javaBatchSize, true, true, nil)),
		kgo.ProducerLinger(linger),
		kgo.ProducerBatchMaxBytes(javaBatchSize),
	)...)
	return keylessSender{cl}, err
}

func (s keylessSender) send(ctx context.Context, topic, _ string, value []byte) error {
	return s.cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: value}).FirstErr()
}
func (s keylessSender) close() { s.cl.Close() }

// stageRunner runs one stage's consumers until ctx is done.
type stageRunner interface {
	run(ctx context.Context) error
	// ready reports whether every partition has an owner.
	ready() bool
}

// groupEvents counts a profile's rebalances while measuring: generations
// that revoked or lost partitions of the Java-emulating consumers, and the
// revokes and losses the engines count themselves.
type groupEvents struct {
	measuring atomic.Bool
	mu        sync.Mutex
	gens      map[int32]struct{} // javaConsumer generations that revoked or lost partitions
	engines   []*engine.Engine
	atStart   int64 // the engines' revokes and losses when measuring started
	atStop    int64 // and when it stopped
}

func (g *groupEvents) generation(gen int32) {
	if !g.measuring.Load() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gens == nil {
		g.gens = map[int32]struct{}{}
	}
	g.gens[gen] = struct{}{}
}

func (g *groupEvents) addEngine(e *engine.Engine) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.engines = append(g.engines, e)
}

// start and stop bracket the measured part of the run.
func (g *groupEvents) start() {
	g.mu.Lock()
	g.atStart = g.engineEventsLocked()
	g.mu.Unlock()
	g.measuring.Store(true)
}

func (g *groupEvents) stop() {
	g.measuring.Store(false)
	g.mu.Lock()
	g.atStop = g.engineEventsLocked()
	g.mu.Unlock()
}

func (g *groupEvents) engineEventsLocked() int64 {
	var n int64
	for _, e := range g.engines {
		st := e.Stats()
		n += st.Revokes + st.Losses
	}
	return n
}

func (g *groupEvents) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.gens) + int(g.atStop-g.atStart)
}

// timing holds the scaled durations of one run.
type timing struct {
	scale float64
	// the session timeouts the brokers accept; session stays within them
	minSession, maxSession time.Duration
}

func (t timing) d(unscaled time.Duration) time.Duration {
	return time.Duration(float64(unscaled) * t.scale)
}

// scaledSession is the scaled session timeout, at least a second:
// heartbeats of 100+ clients on a loaded 2-core machine miss shorter ones
// and the group would rebalance for reasons the article never had.
func (t timing) scaledSession() time.Duration { return max(t.d(javaSessionTimeout), time.Second) }

// session is the scaled session timeout within the brokers' bounds (6 s at
// least on a stock Apache Kafka, which refuses a join below it). A longer
// session only delays noticing a member that died, which no profile does:
// they leave their groups.
func (t timing) session() time.Duration {
	d := t.scaledSession()
	if t.minSession > 0 {
		d = max(d, t.minSession)
	}
	if t.maxSession > 0 {
		d = min(d, t.maxSession)
	}
	return d
}

func (t timing) heartbeat() time.Duration {
	return min(t.session()/3, max(t.d(javaHeartbeatInterval), 50*time.Millisecond))
}

// javaStage is one stage consumed the way the Java client does: one
// consumer per partition, each its own client in the group.
type javaStage struct {
	conn      *kafka.Conn // classic group protocol
	group     string
	topic     string
	members   int
	maxPoll   int
	t         timing
	handle    func(ctx context.Context, r *kgo.Record)
	events    *groupEvents
	trouble   *groupTrouble
	log       *slog.Logger
	owned     []atomic.Int32 // partitions each member owns now
	leaves    atomic.Int64   // max.poll.interval exceeded
	maxBatch  atomic.Int64   // the largest poll
	partition int
}

func (s *javaStage) ready() bool {
	total := 0
	for i := range s.owned {
		n := int(s.owned[i].Load())
		if n == 0 && s.members <= s.partition {
			return false
		}
		total += n
	}
	return total == s.partition
}

func (s *javaStage) run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := range s.members {
		wg.Go(func() { s.member(ctx, i) })
	}
	wg.Wait()
	return nil
}

// member is one Java consumer. Its loop is the Java application's:
//
//	for { records = poll(500); for r in records { process(r) }; commitSync() }
//
// Rebalances happen only inside poll (BlockRebalanceOnPoll), eagerly (the
// range assignor, Java's default), and when processing one poll's records
// outlasts max.poll.interval the member leaves the group, as the Java
// heartbeat thread does. It still finishes the batch (the Java loop does
// not know), its commit fails, and it joins again with a new client; the
// partition's next owner handles the uncommitted records again.
func (s *javaStage) member(ctx context.Context, i int) {
	for ctx.Err() == nil {
		s.session(ctx, i)
	}
}

func (s *javaStage) session(ctx context.Context, i int) {
	owned := &s.owned[i]
	var cl *kgo.Client
	track := func(gen bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, c *kgo.Client, m map[string][]int32) {
			n := int32(len(m[s.topic]))
			if gen {
				owned.Add(n)
				return
			}
			owned.Add(-n)
			if n > 0 {
				_, g := c.GroupMetadata()
				s.events.generation(g)
			}
		}
	}
	pollInterval := s.t.d(javaMaxPollInterval)
	cl, err := kgo.NewClient(append(s.conn.Opts(),
		kgo.DisableClientMetrics(),
		kgo.ConsumerGroup(s.group),
		kgo.ConsumeTopics(s.topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.SessionTimeout(s.t.session()),
		kgo.HeartbeatInterval(s.t.heartbeat()),
		kgo.RebalanceTimeout(pollInterval), // Java's rebalance timeout is max.poll.interval.ms
		kgo.FetchMaxWait(max(s.t.d(javaFetchMaxWait), 10*time.Millisecond)),
		kgo.OnPartitionsAssigned(track(true)),
		kgo.OnPartitionsRevoked(track(false)),
		kgo.OnPartitionsLost(track(false)),
		kgo.WithHooks(s.trouble.hook(s.group)),
		kgo.WithLogger(kafka.NewKgoLogger(s.log)),
	)...)
	if err != nil {
		s.log.Warn("loadtest: consumer client", "err", err)
		_ = backoff.Sleep(ctx, 100*time.Millisecond)
		return
	}
	var closed atomic.Bool // by the max.poll.interval timer
	defer func() {
		if !closed.Load() {
			cl.CloseAllowingRebalance()
		}
		owned.Store(0)
	}()
	for ctx.Err() == nil {
		cl.AllowRebalance()
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fetches := cl.PollRecords(pctx, s.maxPoll)
		cancel()
		recs := fetches.Records()
		if len(recs) == 0 {
			continue
		}
		for n := int64(len(recs)); ; {
			if m := s.maxBatch.Load(); n <= m || s.maxBatch.CompareAndSwap(m, n) {
				break
			}
		}
		done := make(chan struct{})
		timer := time.AfterFunc(pollInterval, func() {
			defer close(done)
			closed.Store(true)
			s.leaves.Add(1)
			cl.CloseAllowingRebalance() // the heartbeat thread's LeaveGroup
			owned.Store(0)
		})
		for _, r := range recs {
			if ctx.Err() != nil {
				break
			}
			s.handle(ctx, r)
		}
		if timer.Stop() {
			close(done)
		}
		<-done
		if closed.Load() {
			return // CommitFailedException; poll again with a new membership
		}
		if ctx.Err() != nil {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := cl.CommitRecords(cctx, recs...); err != nil && ctx.Err() == nil {
			s.log.Debug("loadtest: commit failed", "group", s.group, "err", err)
		}
		cancel()
	}
}

// engineStage is one stage on genpipe's stage engine.
type engineStage struct {
	e         *engine.Engine
	partition int
	members   int // engines in the group
}

func newEngineStage(conn *kafka.Conn, group, topic string, capacity, partitions, members int, t timing,
	handle engine.Handler, events *groupEvents, trouble *groupTrouble, log *slog.Logger) (*engineStage, error) {
	quiet := slog.New(warnOnly{log.Handler()})
	e, err := engine.New(conn.Brokers(), group, []string{topic}, handle,
		engine.WithCapacity(capacity),
		engine.WithSessionTimeout(t.session()),
		engine.WithRebalanceTimeout(max(t.d(60*time.Second), 2*time.Second)),
		engine.WithShutdownTimeout(max(t.d(30*time.Second), time.Second)),
		engine.WithCommitInterval(max(t.d(time.Second), 20*time.Millisecond)),
		engine.WithLogger(quiet),
		engine.WithClientOpts(append(conn.Opts(), kgo.WithLogger(kafka.NewKgoLogger(quiet.With("group", group))), kgo.WithHooks(trouble.hook(group)),
			kgo.DisableClientMetrics(), kgo.FetchMaxWait(max(t.d(javaFetchMaxWait), 10*time.Millisecond)))...),
	)
	if err != nil {
		return nil, err
	}
	events.addEngine(e)
	return &engineStage{e: e, partition: partitions, members: members}, nil
}

func (s *engineStage) run(ctx context.Context) error { return s.e.Run(ctx) }

// ready reports whether this engine owns its part of the partitions: all
// of them alone, some of them when it shares the group.
func (s *engineStage) ready() bool {
	owned := s.e.Stats().Owned
	if s.members == 1 {
		return owned == s.partition
	}
	return owned > 0
}

// warnOnly passes only warnings and errors: the engine logs every
// assignment at info, and a load test shows its rebalances in the table.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

func (h warnOnly) WithAttrs(as []slog.Attr) slog.Handler { return warnOnly{h.Handler.WithAttrs(as)} }

func (h warnOnly) WithGroup(name string) slog.Handler { return warnOnly{h.Handler.WithGroup(name)} }
