package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aiclient"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/broker"
	"github.com/genpipe/genpipe/engine"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/scheduler"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Scenario is the system under test: partitions of every topic and the two
// AI services' capacity and latency (unscaled).
type Scenario struct {
	Name             string
	Partitions       int
	CheckCapacity    int
	CheckLatency     time.Duration
	GenerateCapacity int
	GenerateLatency  time.Duration
}

// Scenarios by name: the article's (64 partitions for 64 AI slots) and one
// with fewer partitions than AI slots, where only concurrency within a
// partition can reach the AI's limit.
var Scenarios = map[string]Scenario{
	"article":        {Name: "article", Partitions: 64, CheckCapacity: 64, CheckLatency: 500 * time.Millisecond, GenerateCapacity: 64, GenerateLatency: 3 * time.Second},
	"few-partitions": {Name: "few-partitions", Partitions: 8, CheckCapacity: 64, CheckLatency: 500 * time.Millisecond, GenerateCapacity: 64, GenerateLatency: 3 * time.Second},
}

// MaxRps is the physical limit: the minimum over stages of capacity/latency,
// unscaled. It is stated, not measured, and serves only as the denominator
// of utilization.
func (s Scenario) MaxRps() float64 {
	return min(float64(s.CheckCapacity)/s.CheckLatency.Seconds(), float64(s.GenerateCapacity)/s.GenerateLatency.Seconds())
}

// Defaults of Config.
const (
	// DefaultTimeScale runs the article's 3 s calls in 750 ms. The genpipe
	// profile schedules through a database queue, whose cost per task
	// (about 0.3 ms of CPU on SQLite, the same at any scale) must stay
	// small against a scaled call, as it is at real speed: at 0.05 (150 ms
	// calls, a thousand tasks a second through one writer) the queue, not
	// the pipeline, is what the lab would measure.
	DefaultTimeScale = 0.25
	// DefaultDrainTimeout bounds, unscaled, how long a profile run waits
	// after its last request was produced for the rest to complete; what
	// has not completed by then is lost. 30 minutes lets the article
	// profile finish the default workload on 8 partitions (about 17
	// minutes at 8 records at a time) while bounding the naive profile,
	// which never finishes there.
	DefaultDrainTimeout = 30 * time.Minute
)

// Progress is a snapshot of a profile run, for progress lines.
type Progress struct {
	Profile   string
	Produced  int
	Requests  int
	Completed int
	Rps       float64 // completions per unscaled second since the first produce
	Elapsed   time.Duration
}

// Config is one lab run.
type Config struct {
	Scenario  Scenario
	Profiles  []string // run one after another on the same workload; default naive, article, genpipe
	Workload  Workload
	TimeScale float64 // multiplies every duration; default DefaultTimeScale
	// Workers is how many engines (worker processes: separate group
	// members, each with its own client) run each stage of the genpipe
	// profile; default 1. They take from one scheduling queue per stage,
	// never more than the AI's capacity together.
	Workers int
	// Brokers of a Kafka cluster to use; empty starts an embedded one.
	Brokers []string
	// Kafka says how to connect to Brokers (TLS, SASL, client id,
	// compression, group protocol); the embedded broker ignores it. The
	// naive and article profiles join their groups with the classic
	// protocol whatever it says: they emulate the Java client's consumer.
	Kafka        []kafka.ConnOption
	DrainTimeout time.Duration  // unscaled; default DefaultDrainTimeout
	Progress     func(Progress) // called about once a second while a profile runs
	Logger       *slog.Logger   // default: warnings and errors to nowhere
}

// Run runs the workload through each profile in turn and reports what
// happened. Each profile gets fresh topics, groups and AI services.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.TimeScale <= 0 {
		cfg.TimeScale = DefaultTimeScale
	}
	if len(cfg.Profiles) == 0 {
		cfg.Profiles = Profiles
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	cfg.Workers = max(cfg.Workers, 1)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	sc := cfg.Scenario
	if sc.Partitions <= 0 || sc.CheckCapacity <= 0 || sc.GenerateCapacity <= 0 || sc.CheckLatency <= 0 || sc.GenerateLatency <= 0 {
		return nil, errors.New("loadtest: the scenario needs partitions, capacities and latencies")
	}
	profiles := make([]profile, len(cfg.Profiles))
	for i, name := range cfg.Profiles {
		p, err := lookupProfile(name)
		if err != nil {
			return nil, err
		}
		profiles[i] = p
	}
	sched, err := cfg.Workload.plan(sc.MaxRps())
	if err != nil {
		return nil, err
	}
	brokers, connOpts := cfg.Brokers, cfg.Kafka
	if len(brokers) == 0 {
		b, err := broker.Start(broker.WithGroupMinSessionTimeout(embeddedMinSession))
		if err != nil {
			return nil, fmt.Errorf("loadtest: start broker: %w", err)
		}
		defer b.Close()
		brokers, connOpts = b.Addrs(), nil
	}
	conn, err := kafka.NewConn(brokers, connOpts...)
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	t := timing{scale: cfg.TimeScale}
	t.minSession, t.maxSession = sessionBounds(ctx, conn, cfg.Logger)
	if scaled := t.scaledSession(); scaled != t.session() {
		cfg.Logger.Warn("loadtest: the scaled session timeout is outside what the brokers accept; using their bound",
			"scaled", scaled, "session", t.session(), "brokersAccept", fmt.Sprintf("%v to %v", t.minSession, t.maxSession))
	}
	javaConn, err := kafka.NewConn(brokers, append(slices.Clone(connOpts), kafka.WithGroupProtocol(kafka.GroupProtocolClassic))...)
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	rep := &Report{Scenario: sc.Name, Shape: cfg.Workload.shape(), Workload: cfg.Workload.Name, TimeScale: cfg.TimeScale, StartedAt: time.Now()}
	if len(cfg.Workload.Streams) > 0 {
		rep.Shape = ShapeTenants
	}
	runID := randomID()
	for _, p := range profiles {
		if ctx.Err() != nil {
			return rep, fmt.Errorf("loadtest: stopped before profile %s", p.name)
		}
		res, err := runProfile(ctx, cfg, t, conn, javaConn, p, runID, sched)
		if res.Profile != "" { // measured, if only in part
			rep.Results = append(rep.Results, res)
		}
		if err != nil {
			return rep, fmt.Errorf("loadtest: profile %s: %w", p.name, err)
		}
	}
	return rep, nil
}

// event is the value of every record of a run: the request id and when it
// was produced, padded to the size of a real request event (~300 bytes),
// so that batches hold as many records as the article's did. Like
// genpipe.Event it carries the request's share (JSON "tenant", "priority",
// "weight"; left out when empty), and every stage passes the value on
// unchanged, so a scheduling stage reads it as genpipe's would.
type event struct {
	ID         string `json:"id"`
	ProducedAt int64  `json:"producedAt"` // Unix nanoseconds
	Pad        string `json:"pad"`
	genpipe.Share
}

var pad = strings.Repeat("x", 220)

// runProfile runs p; genpipe's clients connect with conn, the Java
// emulation's with javaConn. It fails when the consumer groups do not
// settle, a consumer stops on an error, or no request completes; when ctx
// ends first it returns what it measured so far, with an error saying so.
func runProfile(ctx context.Context, cfg Config, t timing, conn, javaConn *kafka.Conn, p profile, runID string, sched []send) (Result, error) {
	sc, log := cfg.Scenario, cfg.Logger
	prefix := fmt.Sprintf("lt-%s-%s", p.name, runID)
	reqTopic, checkedTopic, resultsTopic := prefix+"-requests", prefix+"-checked", prefix+"-results"
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := conn.EnsureTopics(ectx, int32(sc.Partitions), reqTopic, checkedTopic, resultsTopic)
	cancel()
	if err != nil {
		return Result{}, err
	}

	checkAI, err := StartAI("check", sc.CheckCapacity, t.d(sc.CheckLatency))
	if err != nil {
		return Result{}, err
	}
	defer checkAI.Close()
	genAI, err := StartAI("generate", sc.GenerateCapacity, t.d(sc.GenerateLatency))
	if err != nil {
		return Result{}, err
	}
	defer genAI.Close()
	checker := aiclient.NewChecker(checkAI.URL())
	generator := aiclient.NewGenerator(genAI.URL())

	var out sender
	if p.keyed {
		kp, err := conn.NewProducer(kafka.WithLinger(t.d(10 * time.Millisecond)))
		if err != nil {
			return Result{}, err
		}
		out = keyedSender{kp}
	} else {
		ks, err := newKeylessSender(javaConn, t.d(javaLinger))
		if err != nil {
			return Result{}, err
		}
		out = ks
	}
	defer out.close()

	rec := newRecorder()
	retryWait := max(t.d(sc.CheckLatency)/4, time.Millisecond)
	// callAI retries a 429 (the AI at capacity) until the call is taken;
	// the engine also backs off when told. Every other error is a bug in
	// the lab and is returned.
	callAI := func(ctx context.Context, call func() error) error {
		return backoff.Retry(ctx, backoff.Constant(retryWait), call,
			backoff.RetryIf(func(err error) bool { return genpipe.ErrorCode(err) == genpipe.ETOOMANY }),
			backoff.OnRetry(func(int, error) { engine.ReportOverload(ctx); scheduler.ReportOverload(ctx) }))
	}
	stage := func(st int, next string, call func(ctx context.Context, id string) error) func(context.Context, *kgo.Record) error {
		return func(ctx context.Context, r *kgo.Record) error {
			var ev event
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				return err
			}
			rec.handle(st, ev.ID)
			if err := callAI(ctx, func() error { return call(ctx, ev.ID) }); err != nil {
				return err
			}
			return out.send(ctx, next, ev.ID, r.Value)
		}
	}
	checkHandle := stage(stageCheck, checkedTopic, func(ctx context.Context, id string) error {
		_, err := checker.Check(ctx, genpipe.CheckInput{RequestID: id, ImageURL: "http://loadtest.invalid/" + id})
		return err
	})
	genHandle := stage(stageGenerate, resultsTopic, func(ctx context.Context, id string) error {
		return generator.Generate(ctx, genpipe.GenerateInput{RequestID: id, ImageURL: "http://loadtest.invalid/" + id})
	})

	events := &groupEvents{}
	trouble := &groupTrouble{}
	var db *queueDB // the genpipe profile's scheduling queue
	if p.engine {
		dir, err := os.MkdirTemp("", "genpipe-loadtest-")
		if err != nil {
			return Result{}, err
		}
		defer os.RemoveAll(dir)
		db = newQueueDB(dir)
		defer db.close()
	}
	var groups []string
	var stages []stageRunner
	var javaStages []*javaStage
	for i, s := range []struct {
		stage    genpipe.Stage
		topic    string
		capacity int
		handle   func(context.Context, *kgo.Record) error
	}{{genpipe.StageCheck, reqTopic, sc.CheckCapacity, checkHandle}, {genpipe.StageGenerate, checkedTopic, sc.GenerateCapacity, genHandle}} {
		group := fmt.Sprintf("%s-stage%d", prefix, i)
		groups = append(groups, group)
		if p.engine {
			for range cfg.Workers {
				es, err := newScheduledStage(ctx, db, s.stage, conn, group, s.topic, s.capacity, sc.Partitions, cfg.Workers, t, s.handle, events, trouble, log)
				if err != nil {
					return Result{}, err
				}
				stages = append(stages, es)
			}
			continue
		}
		h := s.handle
		js := &javaStage{
			conn: javaConn, group: group, topic: s.topic, members: sc.Partitions, partition: sc.Partitions,
			maxPoll: p.maxPollRecords, t: t, events: events, trouble: trouble, log: log,
			handle: func(ctx context.Context, r *kgo.Record) {
				if err := h(ctx, r); err != nil && ctx.Err() == nil {
					log.Warn("loadtest: handler failed", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
				}
			},
		}
		js.owned = make([]atomic.Int32, js.members)
		javaStages = append(javaStages, js)
		stages = append(stages, js)
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	stageFailed := make(chan error, len(stages))
	for _, s := range stages {
		wg.Go(func() {
			if err := s.run(runCtx); err != nil && runCtx.Err() == nil {
				stageFailed <- fmt.Errorf("a consumer stopped: %w", err)
			}
		})
	}
	defer wg.Wait()
	defer stop()

	// The completion collector reads the results topic without a group.
	collector, err := kgo.NewClient(append(conn.Opts(),
		kgo.DisableClientMetrics(),
		kgo.ConsumeTopics(resultsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(50*time.Millisecond),
	)...)
	if err != nil {
		return Result{}, err
	}
	defer collector.Close()
	wg.Go(func() {
		for runCtx.Err() == nil {
			fs := collector.PollFetches(runCtx)
			fs.EachRecord(func(r *kgo.Record) {
				var ev event
				if json.Unmarshal(r.Value, &ev) == nil {
					rec.complete(ev.ID, r.Timestamp)
				}
			})
		}
	})

	// Wait until every partition of both stages has an owner, so the run
	// measures the pipeline, not the group forming. Groups that do not
	// settle would measure nothing.
	if err := waitSettled(ctx, stages, stageFailed, trouble); err != nil {
		return Result{}, err
	}
	events.start()

	// Produce the workload on schedule, each burst concurrently.
	start := time.Now()
	var prod sync.WaitGroup
	var produceErr error
	var errOnce sync.Once
	produceDone := make(chan struct{})
	go func() {
		defer close(produceDone)
		for _, s := range sched {
			if d := time.Until(start.Add(t.d(s.at))); d > 0 {
				_ = backoff.Sleep(runCtx, d)
			}
			if runCtx.Err() != nil {
				break
			}
			id := uuid.NewString()
			prod.Go(func() {
				now := time.Now()
				v, _ := json.Marshal(event{ID: id, ProducedAt: now.UnixNano(), Pad: pad, Share: s.share})
				if err := out.send(runCtx, reqTopic, id, v); err != nil {
					errOnce.Do(func() { produceErr = err })
					return
				}
				rec.produce(id, now, s.share)
			})
		}
		prod.Wait()
	}()

	progress := func() {
		if cfg.Progress == nil {
			return
		}
		produced, completed := rec.counts()
		el := time.Since(start)
		pr := Progress{Profile: p.name, Produced: produced, Requests: len(sched), Completed: completed, Elapsed: time.Duration(float64(el) / t.scale)}
		if s := el.Seconds() / t.scale; s > 0 {
			pr.Rps = float64(completed) / s
		}
		cfg.Progress(pr)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var drainBy <-chan time.Time
	var lagAt time.Time
	adm := kadm.NewClient(collector)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	var failed error
wait:
	for {
		select {
		case <-ctx.Done():
			produced, completed := rec.counts()
			failed = fmt.Errorf("stopped before the run ended: %d of %d requests completed (%d produced)", completed, len(sched), produced)
			break wait
		case err := <-stageFailed:
			failed = err
			break wait
		case <-produceDone:
			produceDone = nil
			drainBy = time.After(t.d(cfg.DrainTimeout))
		case <-drainBy:
			produced, completed := rec.counts()
			log.Warn("loadtest: drain timeout: stopping with requests not completed (lost) or consumers still handling records again",
				"profile", p.name, "produced", produced, "completed", completed)
			break wait
		case <-tick.C:
			progress()
		case <-poll.C:
			// Done when every request completed and both groups have
			// committed everything: a consumer still handling records
			// again (naive after leaving the group) is not done, and its
			// redeliveries count.
			if produceDone == nil && time.Since(lagAt) > 100*time.Millisecond {
				if produced, completed := rec.counts(); completed >= produced {
					lagAt = time.Now()
					if settled(ctx, adm, groups) {
						break wait
					}
				}
			}
		}
	}
	progress()
	events.stop()
	if produceErr != nil {
		log.Warn("loadtest: some requests could not be produced", "profile", p.name, "err", produceErr)
	}

	for _, js := range javaStages {
		log.Info("loadtest: java consumers", "profile", p.name, "topic", js.topic, "largestPoll", js.maxBatch.Load(), "leftGroup", js.leaves.Load())
	}
	res := Result{Profile: p.name, MaxRps: sc.MaxRps(), Workers: sc.Partitions}
	if p.engine {
		res.Workers = cfg.Workers
	}
	res.Requests, res.Completed = rec.counts()
	res.Lost = res.Requests - res.Completed
	rec.figures(&res, start, genAI.Stats().FirstCall, t.scale)
	if res.MaxRps > 0 {
		res.Utilization = res.ThroughputRps / res.MaxRps
	}
	res.IdealUtilization = Ideal(sc, planArrivals(sched)).Utilization
	if res.IdealUtilization > 0 {
		res.UtilizationOfIdeal = res.Utilization / res.IdealUtilization
	}
	gaps := slotGaps(checkAI.callLog(), genAI.callLog(), sc.GenerateCapacity)
	res.SlotGaps, res.SlotGapP50Ms, res.SlotGapP99Ms = len(gaps), percentile(gaps, 50), percentile(gaps, 99)
	if len(cfg.Workload.Streams) > 0 {
		rec.tenantFigures(&res, genAI.callLog(), sc.GenerateCapacity, start, genAI.Stats().FirstCall, t.scale)
		res.Targets = checkTargets(cfg.Workload.Name, res, sc)
	}
	cs, gs := checkAI.Stats(), genAI.Stats()
	res.DuplicateAICalls = int(cs.Calls - cs.UniqueRequests + gs.Calls - gs.UniqueRequests)
	res.AIMaxConcurrent = max(cs.MaxConcurrent, gs.MaxConcurrent)
	res.AIOverCapacity = cs.OverCapacity + gs.OverCapacity
	res.Redeliveries = rec.redeliveries()
	res.Rebalances = events.count()
	if cs.OverCapacity+gs.OverCapacity > 0 {
		log.Info("loadtest: the AI refused calls over capacity", "profile", p.name, "check", cs.OverCapacity, "generate", gs.OverCapacity)
	}

	switch {
	case failed != nil:
	case res.Requests == 0 && len(sched) > 0:
		failed = fmt.Errorf("no request could be produced: %v", produceErr)
	case res.Completed == 0 && res.Requests > 0:
		failed = fmt.Errorf("none of %d requests completed%s", res.Requests, trouble.why())
	}
	lctx, lcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	ends, err := adm.ListEndOffsets(lctx, reqTopic)
	lcancel()
	if err != nil {
		return res, errors.Join(failed, fmt.Errorf("end offsets of %s: %w", reqTopic, err))
	}
	res.RecordsPerPartition = make([]int64, sc.Partitions)
	ends.Each(func(o kadm.ListedOffset) {
		if int(o.Partition) < len(res.RecordsPerPartition) {
			res.RecordsPerPartition[o.Partition] = o.Offset
		}
	})
	res.PartitionMaxOverMean = maxOverMean(res.RecordsPerPartition)
	return res, failed
}

// planArrivals is the schedule the ideal pipeline is run on: every request
// at its planned time (not when the lab's producer managed to send it, so
// the producer's own delays count against the profile), each passing the
// check as the lab's check AI passes every request.
func planArrivals(sched []send) []Arrival {
	out := make([]Arrival, len(sched))
	for i, s := range sched {
		out[i] = Arrival{At: s.at}
	}
	return out
}

// settleTimeout bounds how long a profile waits for its consumer groups to
// give every partition an owner.
const settleTimeout = 60 * time.Second

// waitSettled waits until every partition of stages has an owner. It fails
// when a consumer stops, ctx ends, or settleTimeout passes, saying what the
// groups' last errors were.
func waitSettled(ctx context.Context, stages []stageRunner, stageFailed <-chan error, trouble *groupTrouble) error {
	timeout := time.NewTimer(settleTimeout)
	defer timeout.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !allReady(stages) {
		select {
		case err := <-stageFailed:
			return err
		case <-ctx.Done():
			return fmt.Errorf("stopped before the consumer groups settled%s", trouble.why())
		case <-timeout.C:
			return fmt.Errorf("the consumer groups did not give every partition an owner within %v%s", settleTimeout, trouble.why())
		case <-tick.C:
		}
	}
	return nil
}

// groupTrouble keeps the last group management error of each group, to say
// why a group does not settle or consumes nothing.
type groupTrouble struct {
	mu   sync.Mutex
	last map[string]error
}

// hook returns a franz-go hook that records group's errors.
func (g *groupTrouble) hook(group string) kgo.Hook { return troubleHook{g, group} }

func (g *groupTrouble) set(group string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.last == nil {
		g.last = map[string]error{}
	}
	g.last[group] = err
}

// why returns "" when no group had an error, else "; " and each group's
// last error.
func (g *groupTrouble) why() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var b strings.Builder
	for _, group := range slices.Sorted(maps.Keys(g.last)) {
		fmt.Fprintf(&b, "; group %s: %v", group, g.last[group])
	}
	return b.String()
}

type troubleHook struct {
	g     *groupTrouble
	group string
}

func (h troubleHook) OnGroupManageError(err error) { h.g.set(h.group, err) }

// The session bounds the lab assumes: the embedded broker's minimum (scaled
// tests need short sessions), and a stock Apache Kafka's for brokers whose
// own cannot be read.
const embeddedMinSession = 100 * time.Millisecond

// sessionBounds returns the session timeouts the brokers of conn accept
// from group members, or a stock Apache Kafka's when they cannot be read.
func sessionBounds(ctx context.Context, conn *kafka.Conn, log *slog.Logger) (lo, hi time.Duration) {
	cl, err := kgo.NewClient(append(conn.Opts(), kgo.DisableClientMetrics())...)
	if err == nil {
		defer cl.Close()
		bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if lo, hi, err = engine.SessionTimeoutBounds(bctx, cl); err == nil {
			return lo, hi
		}
	}
	log.Warn("loadtest: cannot read the brokers' session timeout bounds; assuming a stock Apache Kafka's",
		"min", engine.StockMinSessionTimeout, "max", engine.StockMaxSessionTimeout, "err", err)
	return engine.StockMinSessionTimeout, engine.StockMaxSessionTimeout
}

// settled reports whether groups have committed every record of their topics.
func settled(ctx context.Context, adm *kadm.Client, groups []string) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lags, err := adm.Lag(ctx, groups...)
	if err != nil {
		return false
	}
	for _, g := range groups {
		l, ok := lags[g]
		if !ok || l.Error() != nil || l.Lag.Total() != 0 {
			return false
		}
	}
	return true
}

func allReady(stages []stageRunner) bool {
	for _, s := range stages {
		if !s.ready() {
			return false
		}
	}
	return true
}

func randomID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}
