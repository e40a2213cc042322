// Package metrics is genpipe's Prometheus instrumentation. A Registry holds
// one process's metrics: the pipeline's own (genpipe_*), its Kafka clients'
// (genpipe_kafka_*, from franz-go's kprom plugin), and the Go runtime's and
// the process's (go_*, process_*). The parts only call the small API below;
// the Prometheus types stay in this package.
//
// Nothing is global: every Registry is separate, so two in one process (two
// parts in a test) never collide, and prometheus.DefaultRegisterer is never
// touched.
package metrics

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/genpipe/genpipe"
)

// Namespace prefixes every metric of this package.
const Namespace = "genpipe"

// The histograms' buckets, in seconds. Dashboards and alerts are written
// against them, so they are fixed rather than options.
var (
	// ProcessingBuckets span one record's handling: a fast check (tens of
	// milliseconds) to a generation retried with backoff (minutes).
	ProcessingBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	// EndToEndBuckets span a request from 202 to its terminal status:
	// seconds when the AIs keep up, up to an hour of backlog.
	EndToEndBuckets = []float64{.1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600}
)

// DefaultLagTimeout bounds the lag lookup of one scrape (see WatchStage).
const DefaultLagTimeout = 3 * time.Second

// Registry is one process's metrics. It is safe for concurrent use.
type Registry struct {
	reg *prometheus.Registry
	cfg config

	processing  *prometheus.HistogramVec
	endToEnd    *prometheus.HistogramVec
	aiRetries   *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	stages      *stageCollector
	tenants     *tenantCollector
	overhead    *prometheus.HistogramVec
	lifecycle   lifecycle                // lifecycle.go
	ledger      ledgerMetrics            // ledger.go
	estimateErr *prometheus.HistogramVec // estimate.go
	webhooks    webhooks                 // webhooks.go

	mu      sync.Mutex
	clients map[string]int // Kafka client labels handed out, see KafkaHooks
}

type config struct {
	lagTimeout time.Duration
	runtime    bool
	log        *slog.Logger
}

// Option configures New.
type Option func(*config)

// WithLagTimeout bounds how long a scrape waits for the brokers to answer the
// lag lookup, overriding DefaultLagTimeout (3s). On timeout or error the
// scrape leaves the lag out rather than failing: the other metrics matter
// most when the brokers are in trouble. Keep it under the scrape timeout.
func WithLagTimeout(d time.Duration) Option { return func(c *config) { c.lagTimeout = d } }

// WithoutRuntimeMetrics leaves out the go_* and process_* metrics, which are
// in by default: for tests, or several registries in one process.
func WithoutRuntimeMetrics() Option { return func(c *config) { c.runtime = false } }

// WithLogger sets where failed lag lookups are logged (at debug level: a
// scrape every few seconds would flood anything louder), overriding a
// logger that discards.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// New returns a Registry with the pipeline's metrics registered.
func New(opts ...Option) *Registry {
	cfg := config{
		lagTimeout: DefaultLagTimeout,
		runtime:    true,
		log:        slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&cfg)
	}
	r := &Registry{reg: prometheus.NewRegistry(), cfg: cfg, clients: map[string]int{}}
	r.processing = histogram("stage_processing_seconds",
		"Time one record took in a stage's handler (check, generate, notifier), AI call retries and dead-lettering included.",
		ProcessingBuckets, "stage")
	r.endToEnd = histogram("request_duration_seconds",
		"Time from a request's creation (its 202) to its terminal status (done, rejected or failed), "+
			"observed by the notifier once per request when it records that status.",
		EndToEndBuckets, "status")
	r.aiRetries = counter("ai_retries_total",
		"AI calls retried, by stage and by the error code of the failed attempt "+
			"(too_many_requests: the AI was at capacity; unavailable: 5xx, timeout or network; internal).",
		"stage", "code")
	r.deadLetters = counter("dead_letters_total",
		"Records written to the dead-letter topic, by the stage that set them aside (poison records and requests failed for good).",
		"stage")
	r.stages = newStageCollector(cfg.lagTimeout, cfg.log)
	r.tenants = newTenantCollector()
	r.overhead = histogram("scheduler_overhead_seconds",
		"Time from one of the stage's AI slots freeing to the next call starting on it, when a task was waiting: "+
			"what the scheduling queue costs in AI time.",
		SchedulingOverheadBuckets, "stage")
	r.reg.MustRegister(r.processing, r.endToEnd, r.aiRetries, r.deadLetters, r.stages, r.tenants, r.overhead)
	r.ledger = newLedgerMetrics()
	r.reg.MustRegister(r.ledger.collectors()...)
	r.estimateErr = newEstimateError()
	r.reg.MustRegister(r.estimateErr)
	if cfg.runtime {
		r.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return r
}

// histogram returns a histogram vector of Namespace, by labels.
func histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels)
}

// counter returns a counter vector of Namespace, by labels.
func counter(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
}

// Handler serves the registry in the Prometheus text format (or OpenMetrics
// when the scraper asks for it). A collector that fails is reported in the
// answer, and the other metrics are still served.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ObserveProcessing records how long one record took in stage's handler.
func (r *Registry) ObserveProcessing(stage string, d time.Duration) {
	r.processing.WithLabelValues(stage).Observe(d.Seconds())
}

// ObserveEndToEnd records how long a request took from its creation to its
// terminal status.
func (r *Registry) ObserveEndToEnd(status string, d time.Duration) {
	r.endToEnd.WithLabelValues(status).Observe(max(d, 0).Seconds())
}

// AIRetry counts one retried AI call of stage; code is the genpipe error
// code of the attempt that failed.
func (r *Registry) AIRetry(stage, code string) {
	r.aiRetries.WithLabelValues(stage, code).Inc()
}

// DeadLetter counts one record that stage wrote to the dead-letter topic.
func (r *Registry) DeadLetter(stage string) {
	r.deadLetters.WithLabelValues(stage).Inc()
}

// InitAIStage makes an AI stage's retry counters show from the start, at 0,
// for the codes a retried attempt has (the AI at capacity, unavailable, an
// internal error), so that rate() and alerts see the first retry.
func (r *Registry) InitAIStage(stage string) {
	for _, code := range []string{genpipe.ETOOMANY, genpipe.EUNAVAILABLE, genpipe.EINTERNAL} {
		r.aiRetries.WithLabelValues(stage, code)
	}
}

// InitStage makes stage's counters and histogram show from the start, at 0,
// so that rate() and alerts see them before the first event.
func (r *Registry) InitStage(stage string) {
	r.processing.WithLabelValues(stage)
	r.deadLetters.WithLabelValues(stage)
}
