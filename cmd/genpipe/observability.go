package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/engine"
	"github.com/genpipe/genpipe/httpjson"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/metrics"
	"github.com/genpipe/genpipe/notifier"
	"github.com/genpipe/genpipe/scheduler"
	"github.com/genpipe/genpipe/tracing"
)

// observability is what one process measures and traces: a metrics
// registry and its tracing, shared by every part the process runs (`up`
// makes one for all of them, so one /metrics shows the whole system).
type observability struct {
	metrics *metrics.Registry
	tracing *tracing.Tracing
	kafka   kafkaSettings // how the lag reader connects
	log     *slog.Logger
	stop    func() // stops the -metrics-addr server, if any

	mu  sync.Mutex
	lag *kafka.LagReader // made on first use: only consumers need it
}

// newObservability returns the process's observability. Tracing is on when
// the standard OTEL_* environment asks for OTLP export (see tracing.FromEnv);
// service is its default service.name. Consumers' lag is read from the
// brokers k names.
func newObservability(ctx context.Context, service string, k kafkaSettings, log *slog.Logger) (*observability, error) {
	tr, err := tracing.FromEnv(ctx, service)
	if err != nil {
		return nil, err
	}
	if tr.On() {
		log.Info("tracing: exporting spans over OTLP", "service", service)
	}
	return &observability{metrics: metrics.New(metrics.WithLogger(log)), tracing: tr, kafka: k, log: log, stop: func() {}}, nil
}

// startObservability returns a new observability that also serves
// /metrics and /healthz on metricsAddr, when set, until it is closed.
func startObservability(ctx context.Context, service, metricsAddr string, k kafkaSettings, log *slog.Logger) (*observability, error) {
	obs, err := newObservability(ctx, service, k, log)
	if err != nil {
		return nil, err
	}
	if _, obs.stop, err = obs.serve(ctx, metricsAddr); err != nil {
		obs.close()
		return nil, err
	}
	return obs, nil
}

// serve serves /metrics and /healthz on addr until stop is called, and
// returns its URL; an empty addr serves nothing. It listens before
// returning, so a port in use fails the start rather than going unnoticed.
func (o *observability) serve(ctx context.Context, addr string) (url string, stop func(), err error) {
	if addr == "" {
		return "", func() {}, nil
	}
	ln, url, err := listen(addr)
	if err != nil {
		return "", nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", o.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := serveHTTP(ctx, ln, mux, o.log.With("server", "metrics"), metricsServer); err != nil {
			o.log.Error("metrics server", "err", err)
		}
	}()
	return url, func() { cancel(); <-done }, nil
}

// close stops the metrics server, flushes the spans still buffered and
// closes the lag reader.
func (o *observability) close() {
	if o.stop != nil {
		o.stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.tracing.Shutdown(ctx); err != nil {
		o.log.Warn("flushing traces", "err", err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lag != nil {
		o.lag.Close()
		o.lag = nil
	}
}

// producerHooks measures and traces a producer; client names it in the
// Kafka metrics (api-producer, ...).
func (o *observability) producerHooks(client string) kafka.ProducerOption {
	return kafka.WithProducerHooks(append([]kgo.Hook{o.metrics.KafkaHooks(client)}, o.tracing.KafkaHooks("")...)...)
}

// engineOpts measures and traces a stage engine's Kafka client.
func (o *observability) engineOpts(stage, group string) engine.Option {
	hooks := append([]kgo.Hook{o.metrics.KafkaHooks(stage + "-consumer")}, o.tracing.KafkaHooks(group)...)
	return engine.WithClientOpts(kgo.WithHooks(hooks...))
}

// observeRecord returns the observation of each record of stage (see
// kafka.RecordPath.Observe): a span that continues the record's trace, so
// what the handler produces and the AI calls it makes stay in the
// request's trace, and the record's processing time.
func (o *observability) observeRecord(stage string) func(context.Context, *kgo.Record) (context.Context, func(error)) {
	return func(ctx context.Context, r *kgo.Record) (context.Context, func(error)) {
		start := time.Now()
		ctx, end := o.tracing.StartRecord(ctx, r, stage)
		return ctx, func(err error) {
			end(err)
			o.metrics.ObserveProcessing(stage, time.Since(start))
		}
	}
}

// watch reports e's state and its partitions' lag at every scrape, until
// the returned func is called.
func (o *observability) watch(stage, group string, stats func() engine.Stats) (stop func()) {
	return o.metrics.WatchStage(stage, group, stats, o.groupLag)
}

// watchScheduler reports a dispatcher's per-tenant figures at every
// scrape, until the returned func is called: its queue's waiting tasks
// (over every process, read from the status database within
// countsTimeout; left out of a scrape that cannot read them), and its own
// running and completed tasks and shares.
func (o *observability) watchScheduler(d *scheduler.Dispatcher) (stop func()) {
	return o.metrics.WatchScheduler(string(d.Stats().Stage), func() metrics.SchedulerStats {
		st := d.Stats()
		tasks := map[scheduler.TenantPriority]metrics.TenantTasks{}
		for k, ts := range st.Tenants {
			tasks[k] = metrics.TenantTasks{Tenant: k.Tenant, Priority: k.Priority, Running: ts.Running, Completed: ts.Completed}
		}
		ctx, cancel := context.WithTimeout(context.Background(), countsTimeout)
		defer cancel()
		counts, err := d.Counts(ctx)
		if err != nil {
			o.log.Debug("metrics: waiting tasks", "stage", st.Stage, "err", err)
		}
		for _, c := range counts {
			if !c.Running {
				k := scheduler.TenantPriority{Tenant: c.Tenant, Priority: c.Priority}
				tt := tasks[k]
				tt.Tenant, tt.Priority, tt.Waiting = c.Tenant, c.Priority, c.N
				tasks[k] = tt
			}
		}
		out := metrics.SchedulerStats{Shares: st.Share}
		for _, tt := range tasks {
			out.Tasks = append(out.Tasks, tt)
		}
		return out
	})
}

// countsTimeout bounds the status database's answer to one scrape's count
// of waiting tasks.
const countsTimeout = 2 * time.Second

// overheadHook records a stage's scheduling overhead.
func (o *observability) overheadHook(stage string) scheduler.Option {
	return scheduler.WithOverheadHook(func(d time.Duration) { o.metrics.ObserveSchedulingOverhead(stage, d) })
}

// groupLag reads a group's lag through the process's one lag reader.
func (o *observability) groupLag(ctx context.Context, group string) (map[string]map[int32]int64, error) {
	o.mu.Lock()
	if o.lag == nil {
		lag, err := o.newLagReader()
		if err != nil {
			o.mu.Unlock()
			return nil, err
		}
		o.lag = lag
	}
	lag := o.lag
	o.mu.Unlock()
	return lag.Lag(ctx, group)
}

// newLagReader connects as every Kafka client of the process does (TLS,
// SASL).
func (o *observability) newLagReader() (*kafka.LagReader, error) {
	conn, err := o.kafka.conn()
	if err != nil {
		return nil, err
	}
	return kafka.NewLagReader(conn.Opts()...)
}

// retryHook counts a stage's AI retries by the failed attempt's code.
func (o *observability) retryHook(ctx context.Context, stage genpipe.Stage, err error) {
	o.metrics.AIRetry(string(stage), genpipe.ErrorCode(err))
}

// endToEndHook records a request's time from creation to terminal status.
func (o *observability) endToEndHook(ctx context.Context, status genpipe.Status, took time.Duration) {
	o.metrics.ObserveEndToEnd(string(status), took)
}

// webhookHook counts the notifier's webhook attempts by outcome; the
// webhook metrics show from its start, at 0.
func (o *observability) webhookHook() notifier.Option {
	o.metrics.InitWebhooks()
	return notifier.WithAttemptHook(func(state genpipe.WebhookState, took time.Duration) {
		outcome := string(state)
		if state == genpipe.WebhookPending {
			outcome = metrics.WebhookRetried
		}
		o.metrics.WebhookAttempt(outcome, took)
	})
}

// deadLetters counts what q writes to the dead-letter topic.
func (o *observability) deadLetters(q genpipe.DeadLetterQueue) genpipe.DeadLetterQueue {
	return countedDeadLetters{q: q, m: o.metrics}
}

type countedDeadLetters struct {
	q genpipe.DeadLetterQueue
	m *metrics.Registry
}

func (c countedDeadLetters) SendDeadLetter(ctx context.Context, d genpipe.DeadLetter) error {
	if err := c.q.SendDeadLetter(ctx, d); err != nil {
		return err
	}
	c.m.DeadLetter(d.Stage)
	return nil
}
