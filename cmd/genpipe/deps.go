package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/engine"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/s3"
	"github.com/genpipe/genpipe/scheduler"
	"github.com/genpipe/genpipe/sqlstore"
)

// What the parts share: their dependencies and how a stage consumes (how
// an HTTP server runs is in httpserver.go). The standalone commands and
// `up` call the same runners (runAPI, runWorker, runNotifier, runAISim):
// there is one code path.

// Consumer group names.
const (
	groupCheck    = "genpipe-check"
	groupGenerate = "genpipe-generate"
	groupNotifier = "genpipe-notifier"
)

// deps are what the API, the workers and the notifier each open: the
// status store, the object store and a producer (which also creates
// missing topics).
type deps struct {
	obs      *observability
	store    *sqlstore.Store
	objects  *s3.Store
	producer *kafka.Producer
	conn     *kafka.Conn
	closers  []func() // in opening order; close runs them in reverse
}

// openDeps opens part's dependencies at b, its producer configured with
// producerOpts; close releases them, also after an error part way.
func openDeps(ctx context.Context, b backends, obs *observability, part string, log *slog.Logger,
	producerOpts ...kafka.ProducerOption) (_ *deps, err error) {
	d := &deps{obs: obs}
	defer func() { // d, not the nil returned with err: it holds what opened so far
		if err != nil {
			d.close()
		}
	}()
	if d.conn, err = b.Kafka.conn(); err != nil {
		return nil, err
	}
	if d.store = b.store; d.store == nil {
		if d.store, err = sqlstore.Open(ctx, b.Database, sqlstore.WithLogger(log)); err != nil {
			return nil, fmt.Errorf("status database: %w", err)
		}
		d.closers = append(d.closers, func() { d.store.Close() })
	}
	if d.objects, err = openObjects(ctx, b.S3, log); err != nil {
		return nil, err
	}
	d.closers = append(d.closers, d.objects.CloseIdleConnections)
	if err := d.conn.EnsureTopics(ctx, int32(b.Kafka.Partitions), genpipe.DefaultTopics().All()...); err != nil {
		return nil, err
	}
	hooks := obs.producerHooks(strings.TrimSuffix(part, "-worker") + "-producer")
	if d.producer, err = d.conn.NewProducer(append([]kafka.ProducerOption{kafka.WithProducerLogger(log), hooks}, producerOpts...)...); err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	d.closers = append(d.closers, d.producer.Close)
	return d, nil
}

func (d *deps) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
}

func openObjects(ctx context.Context, s s3Settings, log *slog.Logger) (*s3.Store, error) {
	store, err := s3.New(s.Endpoint, s.Bucket, s.AccessKey, s.SecretKey, append(s.options(), s3.WithLogger(log))...)
	if err != nil {
		return nil, fmt.Errorf("object store: %w", err)
	}
	if err := store.EnsureBucket(ctx); err != nil {
		store.CloseIdleConnections()
		return nil, fmt.Errorf("object store: %w", err)
	}
	return store, nil
}

// consumer is one stage's consumer: what it reads, how many records it
// handles at once, and what it does with each event.
type consumer struct {
	stage    string            // check, generate or notifier
	group    string            // its consumer group
	topic    string            // the topic it reads
	event    genpipe.EventType // the type of the topic's events
	capacity int               // the notifier's concurrency limit, see consume; AI stages: see schedule
	handle   func(context.Context, genpipe.Event) error
}

// recordPath is the path of c's records through its stage: observed (timed
// and traced), decoded, handled, dead-lettered when c.handle says so.
func (d *deps) recordPath(c consumer, log *slog.Logger) kafka.RecordPath {
	return kafka.RecordPath{
		Stage:       c.stage,
		Event:       c.event,
		Observe:     d.obs.observeRecord(c.stage),
		Handle:      c.handle,
		DeadLetters: d.obs.deadLetters(kafka.NewDeadLetters(d.producer, genpipe.DefaultTopics().DeadLetters)),
		Log:         log,
	}
}

// consume runs c on the stage engine until ctx is done. Every record takes
// the one record path, kafka.RecordHandler: observed (timed and traced),
// decoded (poison to the dead-letter topic), handled, and dead-lettered when
// c.handle says so; the engine's state shows in the process's metrics.
// c.capacity is the notifier's concurrency limit, shared by every process
// of the group (each takes a share by the partitions it owns).
func consume(ctx context.Context, d *deps, c consumer, cfg common, log *slog.Logger, opts ...engine.Option) error {
	handle := kafka.RecordHandler(d.recordPath(c, log))
	e, err := newConsumer(d, c, handle, cfg, log, append([]engine.Option{engine.WithCapacity(c.capacity)}, opts...)...)
	if err != nil {
		return err
	}
	defer d.obs.watch(c.stage, c.group, e.Stats)()
	log.Info("consuming", "topic", c.topic, "group", c.group, "capacity", c.capacity)
	return e.Run(ctx)
}

// newConsumer returns the engine of c's consumer group, running handle on
// each record.
func newConsumer(d *deps, c consumer, handle engine.Handler, cfg common, log *slog.Logger, opts ...engine.Option) (*engine.Engine, error) {
	opts = append([]engine.Option{engine.WithLogger(log),
		engine.WithShutdownTimeout(cfg.ShutdownTimeout), d.obs.engineOpts(c.stage, c.group),
		engine.WithOverloadTest(func(err error) bool { return genpipe.ErrorCode(err) == genpipe.ETOOMANY }),
		engine.WithClientOpts(append(d.conn.Opts(), kgo.WithLogger(kafka.NewKgoLogger(log.With("group", c.group))))...)}, opts...)
	e, err := engine.New(d.conn.Brokers(), c.group, []string{c.topic}, handle, opts...)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", c.group, err)
	}
	return e, nil
}

// ingestCapacity is how many records an AI stage's consumer stores in its
// scheduling queue at once: enough that a burst's records fill the
// dispatcher's rounds (each stores what came in meanwhile in one
// transaction).
const ingestCapacity = 256

// schedule runs the AI stage c until ctx is done, in two halves around the
// stage's scheduling queue in the status database: the stage's consumer
// group only ingests (kafka.RecordIngest: decode, poison to the dead-letter
// topic, store the task, commit), and a dispatcher takes the tasks in the
// stage's fair schedule, within the stage's capacity over every process,
// and runs the rest of the record path on each (kafka.RecordHandler:
// observed, handled, dead-lettered). The dispatcher stops after the
// consumer, so that every record the consumer took is stored or not
// committed.
func schedule(ctx context.Context, d *deps, c consumer, cfg common, log *slog.Logger, sopts []scheduler.Option, eopts ...engine.Option) error {
	stage := genpipe.Stage(c.stage)
	path := d.recordPath(c, log)
	run := kafka.RecordHandler(path)
	disp, err := scheduler.New(d.store, stage, func(ctx context.Context, t genpipe.Task) error {
		return run(ctx, kafka.TaskRecord(t))
	}, append([]scheduler.Option{scheduler.WithLogger(log), scheduler.WithShutdownTimeout(cfg.ShutdownTimeout), d.obs.overheadHook(c.stage),
		scheduler.WithOverloadTest(func(err error) bool { return genpipe.ErrorCode(err) == genpipe.ETOOMANY })}, sopts...)...)
	if err != nil {
		return fmt.Errorf("dispatcher %s: %w", c.stage, err)
	}
	ingest := kafka.RecordIngest(path, func(ctx context.Context, r *kgo.Record, e genpipe.Event) error {
		return enqueue(ctx, disp, kafka.NewTask(stage, r, e))
	})
	e, err := newConsumer(d, c, ingest, cfg, log, append([]engine.Option{engine.WithCapacity(ingestCapacity)}, eopts...)...)
	if err != nil {
		return err
	}
	defer d.obs.watch(c.stage, c.group, scheduledStats(e, disp))()
	defer d.obs.watchScheduler(disp)()
	dctx, stopDispatcher := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDispatcher()
	dispatched := make(chan error, 1)
	go func() { dispatched <- disp.Run(dctx) }()
	log.Info("scheduling", "topic", c.topic, "group", c.group, "capacity", disp.Stats().Capacity, "owner", disp.Owner())
	err = e.Run(ctx)
	stopDispatcher()
	return errors.Join(err, <-dispatched)
}

// enqueue stores t through disp, retrying until ctx ends: the engine
// counts a record whose handler returned an error as done, so the record
// must not return before its task is stored. A task the queue refuses is
// a dead letter.
func enqueue(ctx context.Context, disp *scheduler.Dispatcher, t genpipe.Task) error {
	err := backoff.Retry(ctx, backoff.Policy{Base: 10 * time.Millisecond, Max: time.Second}, func() error {
		return disp.Enqueue(ctx, t)
	}, backoff.RetryIf(func(err error) bool { return genpipe.ErrorCode(err) != genpipe.EINVALID }))
	if genpipe.ErrorCode(err) == genpipe.EINVALID {
		return &genpipe.DeadLetterError{Reason: genpipe.ErrorMessage(err)}
	}
	return err
}

// scheduledStats are an AI stage's figures for the stage metrics: the
// consumer's (records ingested, partitions, lag) with the dispatcher's
// capacity, limit and running tasks. A process may use the whole capacity,
// so its share is the capacity.
func scheduledStats(e *engine.Engine, disp *scheduler.Dispatcher) func() engine.Stats {
	return func() engine.Stats {
		s, ds := e.Stats(), disp.Stats()
		s.Capacity, s.Share, s.Limit, s.InFlight, s.Overloads = ds.Capacity, ds.Capacity, ds.Limit, ds.Running, ds.Overloads
		return s
	}
}
