package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aiclient"
	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/api"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/engine"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/notifier"
	"github.com/genpipe/genpipe/s3"
	"github.com/genpipe/genpipe/sqlstore"
	"github.com/genpipe/genpipe/worker"
)

// This file holds one runner per part. The standalone commands and `up`
// call the same runners: there is one code path.

// Consumer group names.
const (
	groupCheck    = "genpipe-check"
	groupGenerate = "genpipe-generate"
	groupNotifier = "genpipe-notifier"
)

// runAPI serves the API on ln until ctx is done; ready is called once it
// is set up, just before it serves.
func runAPI(ctx context.Context, cfg *config, ln net.Listener, log *slog.Logger, ready func()) error {
	d, err := openDeps(ctx, cfg, "api", log)
	if err != nil {
		return err
	}
	defer d.close()
	hub := api.NewHub()
	opts := append(cfg.apiOptions(), api.WithLogger(log), api.WithMetricsHandler(d.obs.metrics.Handler()),
		api.WithReadinessCheck("kafka", d.producer.Ping),
		api.WithReadinessCheck("objectstore", d.objects.Ping),
		api.WithReadinessCheck("database", d.store.Ping))
	if d.obs.tracing.On() {
		opts = append(opts, api.WithTracerProvider(d.obs.tracing.TracerProvider()))
	}
	server := api.NewServer(d.store, genpipe.NewSubmitter(d.store, d.producer, cfg.Topics.Requests), d.objects, hub, opts...)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return tailStatus(ctx, cfg, hub, log) })
	g.Go(func() error {
		if ready != nil {
			ready()
		}
		return serveHTTP(ctx, ln, server.Handler(), log)
	})
	return g.Wait()
}

// tailStatus feeds every status event to the hub of SSE streams.
func tailStatus(ctx context.Context, cfg *config, hub *api.Hub, log *slog.Logger) error {
	conn, err := cfg.kafkaConn()
	if err != nil {
		return err
	}
	return conn.Tail(ctx, cfg.Topics.Results, func(r *kgo.Record) {
		e, err := genpipe.DecodeEvent(r.Value)
		if err != nil || e.Type != genpipe.EventStatus {
			log.Debug("status feed: skipping record", "offset", r.Offset, "err", err)
			return
		}
		hub.Publish(e.StatusChange())
	}, kafka.WithTailLogger(log))
}

// runWorker runs one AI stage until ctx is done.
func runWorker(ctx context.Context, cfg *config, stage string, log *slog.Logger) error {
	d, err := openDeps(ctx, cfg, stage+"-worker", log)
	if err != nil {
		return err
	}
	defer d.close()
	retry := backoff.Default
	if cfg.AIAttempts > 0 {
		retry.Attempts = cfg.AIAttempts
	}
	stageOpts := []worker.Option{worker.WithLogger(log), worker.WithOverloadReport(engine.ReportOverload),
		worker.WithLease(cfg.ClaimLease), worker.WithRetry(retry), worker.WithRetryHook(d.obs.retryHook)}
	aiOpts := []aiclient.Option{aiclient.WithTracerProvider(d.obs.tracing.TracerProvider())}
	c := consumer{stage: stage}
	switch stage {
	case "check":
		c.handle = worker.NewCheck(aiclient.NewChecker(cfg.CheckAIURL, aiOpts...), d.objects, d.producer, d.store, cfg.Topics, stageOpts...).Handle
		c.topic, c.event, c.group, c.capacity = cfg.Topics.Requests, genpipe.EventSubmitted, groupCheck, cfg.CheckCapacity
	case "generate":
		c.handle = worker.NewGenerate(aiclient.NewGenerator(cfg.GenerateAIURL, aiOpts...), d.objects, d.producer, d.store, cfg.Topics, stageOpts...).Handle
		c.topic, c.event, c.group, c.capacity = cfg.Topics.Checked, genpipe.EventChecked, groupGenerate, cfg.GenerateCapacity
	default:
		return fmt.Errorf("unknown stage %q: want check or generate", stage)
	}
	var engineOpts []engine.Option
	if cfg.SessionTimeout > 0 {
		engineOpts = append(engineOpts, engine.WithSessionTimeout(cfg.SessionTimeout))
	}
	return consume(ctx, cfg, d, c, log, engineOpts...)
}

// runNotifier records status events and sends webhooks until ctx is done.
func runNotifier(ctx context.Context, cfg *config, log *slog.Logger) error {
	if cfg.WebhookSecret == "" {
		return errors.New("a webhook secret is required (-webhook-secret or $GENPIPE_WEBHOOK_SECRET)")
	}
	// Its producer writes only dead letters (poison on the results topic).
	d, err := openDeps(ctx, cfg, "notifier", log)
	if err != nil {
		return err
	}
	defer d.close()
	n := notifier.New(d.store, d.store, d.objects, []byte(cfg.WebhookSecret), notifier.WithLogger(log), notifier.WithEndToEndHook(d.obs.endToEndHook),
		notifier.WithPrivateWebhooks(cfg.allowPrivateWebhooks()),
		notifier.WithShutdownTimeout(cfg.shutdownTimeout()))
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.RunWebhooks(ctx) })
	// 16 at once, ordered by key: one request's changes apply in topic
	// order, so its history has every step, while different requests
	// apply concurrently.
	g.Go(func() error {
		c := consumer{stage: "notifier", group: groupNotifier, topic: cfg.Topics.Results, event: genpipe.EventStatus,
			capacity: 16, handle: n.Handle}
		return consume(ctx, cfg, d, c, log, engine.WithOrderByKey())
	})
	return g.Wait()
}

// runAISim serves a simulated AI service on ln until ctx is done.
func runAISim(ctx context.Context, model string, ln net.Listener, latency time.Duration, capacity int, log *slog.Logger) error {
	svc, err := aisim.New(model, aisim.WithLatency(latency), aisim.WithCapacity(capacity), aisim.WithLogger(log))
	if err != nil {
		return err
	}
	return serveHTTP(ctx, ln, svc.Handler(), log)
}

// deps are what the API, the workers and the notifier each open: the
// part's observability, the status store, the object store and a producer
// (which also creates missing topics).
type deps struct {
	obs      *observability
	store    *sqlstore.Store
	objects  *s3.Store
	producer *kafka.Producer
	closers  []func() // in opening order; close runs them in reverse
}

// openDeps opens part's dependencies; close releases them, also after an
// error part way.
func openDeps(ctx context.Context, cfg *config, part string, log *slog.Logger) (d *deps, err error) {
	d = &deps{}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	obs, release, err := cfg.observe(ctx, part, log)
	if err != nil {
		return nil, err
	}
	d.obs, d.closers = obs, append(d.closers, release)
	if d.store, err = openStore(ctx, cfg.DatabaseURL, log); err != nil {
		return nil, err
	}
	d.closers = append(d.closers, func() { d.store.Close() })
	if d.objects, err = openObjects(ctx, cfg, log); err != nil {
		return nil, err
	}
	if d.producer, err = openProducer(ctx, cfg, log, obs.producerHooks(strings.TrimSuffix(part, "-worker")+"-producer")); err != nil {
		return nil, err
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
func consume(ctx context.Context, cfg *config, d *deps, c consumer, log *slog.Logger, opts ...engine.Option) error {
	conn, err := cfg.kafkaConn()
	if err != nil {
		return fmt.Errorf("consumer %s: %w", c.group, err)
	}
	handle := kafka.RecordHandler(kafka.RecordPath{
		Stage:       c.stage,
		Event:       c.event,
		Observe:     d.obs.observeRecord(c.stage),
		Handle:      c.handle,
		DeadLetters: d.obs.deadLetters(kafka.NewDeadLetters(d.producer, cfg.Topics.DeadLetters)),
		Log:         log,
	})
	opts = append([]engine.Option{engine.WithCapacity(c.capacity), engine.WithLogger(log),
		engine.WithShutdownTimeout(cfg.shutdownTimeout()), d.obs.engineOpts(c.stage, c.group),
		engine.WithOverloadTest(func(err error) bool { return genpipe.ErrorCode(err) == genpipe.ETOOMANY }),
		engine.WithClientOpts(append(conn.Opts(), kgo.WithLogger(kafka.NewKgoLogger(log.With("group", c.group))))...)}, opts...)
	e, err := engine.New(conn.Brokers(), c.group, []string{c.topic}, handle, opts...)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", c.group, err)
	}
	defer d.obs.watch(c.stage, c.group, e)()
	log.Info("consuming", "topic", c.topic, "group", c.group, "capacity", c.capacity)
	return e.Run(ctx)
}

// ensureTopics creates the pipeline's topics that are missing.
func ensureTopics(ctx context.Context, cfg *config) error {
	conn, err := cfg.kafkaConn()
	if err != nil {
		return err
	}
	return conn.EnsureTopics(ctx, int32(cfg.Partitions), cfg.Topics.All()...)
}

// openProducer creates missing topics (every producing part needs them)
// and returns a producer with opts.
func openProducer(ctx context.Context, cfg *config, log *slog.Logger, opts ...kafka.ProducerOption) (*kafka.Producer, error) {
	if err := ensureTopics(ctx, cfg); err != nil {
		return nil, err
	}
	conn, err := cfg.kafkaConn()
	if err != nil {
		return nil, err
	}
	p, err := conn.NewProducer(append([]kafka.ProducerOption{kafka.WithProducerLogger(log)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return p, nil
}

func openObjects(ctx context.Context, cfg *config, log *slog.Logger) (*s3.Store, error) {
	if err := required("s3-access-key", cfg.S3AccessKey, "s3-secret-key", cfg.S3SecretKey); err != nil {
		return nil, err
	}
	store, err := s3.New(cfg.S3Endpoint, cfg.S3Bucket, cfg.S3AccessKey, cfg.S3SecretKey,
		append(cfg.s3Options(), s3.WithLogger(log))...)
	if err != nil {
		return nil, fmt.Errorf("object store: %w", err)
	}
	if err := store.EnsureBucket(ctx); err != nil {
		return nil, fmt.Errorf("object store: %w", err)
	}
	return store, nil
}

// openStore opens the status database named by a URL: sqlite:PATH (the
// embedded default) or postgres://... / postgresql://... (PostgreSQL); see
// sqlstore.Open.
func openStore(ctx context.Context, url string, log *slog.Logger) (*sqlstore.Store, error) {
	store, err := sqlstore.Open(ctx, url, sqlstore.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("status database: %w", err)
	}
	return store, nil
}

// listen opens a TCP listener and returns it with its http:// URL.
func listen(addr string) (net.Listener, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, "http://" + ln.Addr().String(), nil
}

// serveHTTP serves h on ln until ctx is done, then shuts down gracefully.
// Requests under way finish (for up to 10 s); SSE streams end at once (see
// endStreamsWith).
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: endStreamsWith(ctx, h), ReadHeaderTimeout: 10 * time.Second}
	url := "http://" + ln.Addr().String()
	log.Info("serving", "url", url)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", url, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down %s: %w", url, err)
	}
	return nil
}
