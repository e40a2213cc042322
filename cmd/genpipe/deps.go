package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/engine"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/s3"
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
	if d.store, err = sqlstore.Open(ctx, b.Database, sqlstore.WithLogger(log)); err != nil {
		return nil, fmt.Errorf("status database: %w", err)
	}
	d.closers = append(d.closers, func() { d.store.Close() })
	if d.objects, err = openObjects(ctx, b.S3, log); err != nil {
		return nil, err
	}
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
	capacity int               // the downstream's concurrency limit, see consume
	handle   func(context.Context, genpipe.Event) error
}

// consume runs c on the stage engine until ctx is done. Every record takes
// the one record path, kafka.RecordHandler: observed (timed and traced),
// decoded (poison to the dead-letter topic), handled, and dead-lettered when
// c.handle says so; the engine's state shows in the process's metrics.
// c.capacity is the downstream's concurrency limit, shared by every process
// of the group (each takes a share by the partitions it owns), so the AI
// behind it never sees more than its capacity however many workers run.
func consume(ctx context.Context, d *deps, c consumer, cfg common, log *slog.Logger, opts ...engine.Option) error {
	handle := kafka.RecordHandler(kafka.RecordPath{
		Stage:       c.stage,
		Event:       c.event,
		Observe:     d.obs.observeRecord(c.stage),
		Handle:      c.handle,
		DeadLetters: d.obs.deadLetters(kafka.NewDeadLetters(d.producer, genpipe.DefaultTopics().DeadLetters)),
		Log:         log,
	})
	opts = append([]engine.Option{engine.WithCapacity(c.capacity), engine.WithLogger(log),
		engine.WithShutdownTimeout(cfg.ShutdownTimeout), d.obs.engineOpts(c.stage, c.group),
		engine.WithOverloadTest(func(err error) bool { return genpipe.ErrorCode(err) == genpipe.ETOOMANY }),
		engine.WithClientOpts(append(d.conn.Opts(), kgo.WithLogger(kafka.NewKgoLogger(log.With("group", c.group))))...)}, opts...)
	e, err := engine.New(d.conn.Brokers(), c.group, []string{c.topic}, handle, opts...)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", c.group, err)
	}
	defer d.obs.watch(c.stage, c.group, e)()
	log.Info("consuming", "topic", c.topic, "group", c.group, "capacity", c.capacity)
	return e.Run(ctx)
}
