package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/api"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/metrics"
	"github.com/genpipe/genpipe/tenants"
)

// defaultAPIAddr is where `genpipe api` and `genpipe up` serve the API and
// the web page.
const defaultAPIAddr = "127.0.0.1:8080"

// submitPublishTimeout bounds how long POST /v1/requests waits for Kafka to
// take a submission (the API producer's delivery timeout): with Kafka
// unreachable the client gets 503 with Retry-After within about this long,
// rather than hang on the producer's 10 s default. A broker that needs
// longer to acknowledge costs a retry (with the same Idempotency-Key, which
// queues nothing twice).
const submitPublishTimeout = 2 * time.Second

// defaultEstimateReuse is -estimate-reuse's default: the API package's
// estimates are exact unless asked (api.DefaultEstimateReuse), but a
// service taking thousands of requests a second reads the queues ten
// times a second, not once a request (measured: a seventh of the API's CPU
// per request; see genpipe bench intake).
const defaultEstimateReuse = 100 * time.Millisecond

// apiConfig is the configuration of `genpipe api`: the HTTP API and the web
// page.
type apiConfig struct {
	servicePart
	Addr string
	API  apiSettings
}

func (c *apiConfig) register(f *flags) {
	c.servicePart.register(f, true, true)
	f.String(&c.Addr, "addr", "GENPIPE_ADDR", defaultAPIAddr, "listen address", nonEmpty)
	c.API.register(f, false)
}

func (c *apiConfig) part() string { return "api" }

func cmdAPI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runAlone(ctx, "api", args, stderr, func(ctx context.Context, cfg apiConfig, obs *observability, log *slog.Logger) error {
		ln, url, err := listen(cfg.Addr)
		if err != nil {
			return err
		}
		return runAPI(ctx, cfg, obs, ln, log, func() { fmt.Fprintf(stdout, "genpipe api serving %s/\n", url) })
	})
}

// runAPI serves the API on ln until ctx is done; ready is called once it
// is set up, just before it serves.
func runAPI(ctx context.Context, cfg apiConfig, obs *observability, ln net.Listener, log *slog.Logger, ready func()) error {
	d, err := openDeps(ctx, cfg.backends, obs, "api", log, kafka.WithDeliveryTimeout(submitPublishTimeout))
	if err != nil {
		return err
	}
	defer d.close()
	hub := api.NewHub()
	opts := append(cfg.API.options(), api.WithLogger(log), api.WithMetricsHandler(obs.metrics.Handler()),
		api.WithReadinessCheck("kafka", d.producer.Ping),
		api.WithReadinessCheck("objectstore", d.objects.Ping),
		api.WithReadinessCheck("database", d.store.Ping),
		api.WithLedger(d.store, func(tenant string, stage genpipe.Stage) {
			obs.metrics.BudgetRefused(tenant, string(stage), metrics.BudgetAtSubmit)
		}),
		api.WithEstimator(genpipe.NewQueueEstimator(d.store)), api.WithEstimateObserver(obs.metrics.ObserveEstimateError))
	if obs.tracing.On() {
		opts = append(opts, api.WithTracerProvider(obs.tracing.TracerProvider()))
	}
	set, err := cfg.API.tenants()
	if err != nil {
		return err
	}
	opts = append(opts, api.WithTenants(set))
	topics := genpipe.DefaultTopics()
	opts = append(opts, cancelOptions(d, topics, obs, log)...)
	server, err := api.NewServer(d.store, genpipe.NewSubmitter(d.store, d.producer, topics.Requests), d.objects, hub, opts...)
	if err != nil {
		return err
	}
	if cfg.API.TenantsFile != "" {
		log.Info("tenants file read; SIGHUP re-reads it", "file", cfg.API.TenantsFile, "tenants", len(set.Tenants), "keys", len(set.Keys))
		stop := onHangup(func() { set = reloadTenants(cfg.API.TenantsFile, server, set, log) })
		defer stop()
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return tailStatus(ctx, cfg.Kafka, topics.Results, hub, log) })
	g.Go(func() error {
		if ready != nil {
			ready()
		}
		return serveHTTP(ctx, ln, server.Handler(), log, apiServer)
	})
	return g.Wait()
}

// reloadTenants re-reads the tenants file at path and, when it is good,
// puts it in force in server and logs what changed; it returns the tenants
// in force. A file that cannot be read, or is not valid, changes nothing:
// the tenants in force stay, and the error is logged.
func reloadTenants(path string, server *api.Server, current tenants.Set, log *slog.Logger) tenants.Set {
	set, err := tenants.Load(path)
	if err == nil {
		err = server.SetTenants(set)
	}
	if err != nil {
		log.Error("tenants file not reloaded: the tenants in force stay", "file", path, "err", err)
		return current
	}
	changes := set.Changes(current)
	if len(changes) == 0 {
		changes = []string{"nothing changed"}
	}
	log.Info("tenants file reloaded", "file", path, "changes", strings.Join(changes, "; "))
	return set
}

// tailStatus feeds every status event of topic to the hub of SSE streams.
func tailStatus(ctx context.Context, k kafkaSettings, topic string, hub *api.Hub, log *slog.Logger) error {
	conn, err := k.conn()
	if err != nil {
		return err
	}
	from := time.Now()
	hub.From(from) // it vouches for the requests created after
	return conn.Tail(ctx, topic, func(r *kgo.Record) {
		e, err := genpipe.DecodeEvent(r.Value)
		if err != nil || e.Type != genpipe.EventStatus {
			log.Debug("status feed: skipping record", "offset", r.Offset, "err", err)
			return
		}
		hub.Publish(e.StatusChange())
	}, kafka.WithTailFrom(from), kafka.WithTailLogger(log))
}
