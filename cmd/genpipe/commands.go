package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/broker"
	"github.com/genpipe/genpipe/objectstore"
)

// The standalone commands: each part as its own process.

func cmdAPI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := flagSet("api", &cfg, stderr)
	stringFlag(fs, &cfg.Addr, "addr", "GENPIPE_ADDR", "127.0.0.1:8080", "listen address")
	kafkaFlags(fs, &cfg)
	s3Flags(fs, &cfg)
	publicS3Flag(fs, &cfg)
	databaseFlag(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := cfg.logger(stderr, "api")
	if err != nil {
		return err
	}
	ln, url, err := listen(cfg.Addr)
	if err != nil {
		return err
	}
	return runAPI(ctx, &cfg, ln, log, func() { fmt.Fprintf(stdout, "genpipe api serving %s/\n", url) })
}

func cmdWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	var stage string
	fs := flagSet("worker", &cfg, stderr)
	stringFlag(fs, &stage, "stage", "GENPIPE_STAGE", "", "the stage to run: check or generate")
	kafkaFlags(fs, &cfg)
	s3Flags(fs, &cfg)
	databaseFlag(fs, &cfg) // the stage claims live in the status database
	stringFlag(fs, &cfg.CheckAIURL, "check-ai-url", "GENPIPE_CHECK_AI_URL", "http://127.0.0.1:8081", "Checking AI base URL")
	stringFlag(fs, &cfg.GenerateAIURL, "generate-ai-url", "GENPIPE_GENERATE_AI_URL", "http://127.0.0.1:8082", "Generative AI base URL")
	intFlag(fs, &cfg.CheckCapacity, "check-capacity", "GENPIPE_CHECK_CAPACITY", 64, "concurrent calls the Checking AI takes")
	intFlag(fs, &cfg.GenerateCapacity, "generate-capacity", "GENPIPE_GENERATE_CAPACITY", 64, "concurrent calls the Generative AI takes")
	durationFlag(fs, &cfg.ClaimLease, "claim-lease", "GENPIPE_CLAIM_LEASE", 30*time.Second,
		"how long a worker's claim on a request's AI call holds unrenewed: a dead worker's requests wait this long before another takes them over")
	intFlag(fs, &cfg.AIAttempts, "ai-attempts", "GENPIPE_AI_ATTEMPTS", backoff.Default.Attempts,
		"AI call attempts (429, 5xx, timeouts retried with exponential backoff and jitter) before a request fails and goes to the dead-letter topic")
	durationFlag(fs, &cfg.SessionTimeout, "session-timeout", "GENPIPE_SESSION_TIMEOUT", 45*time.Second,
		"how long the consumer group waits for a dead worker's heartbeat before giving its partitions to the others (within the broker's group.min/max.session.timeout.ms)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := cfg.logger(stderr, stage+"-worker")
	if err != nil {
		return err
	}
	return runWorker(ctx, &cfg, stage, log)
}

func cmdNotifier(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := flagSet("notifier", &cfg, stderr)
	kafkaFlags(fs, &cfg)
	s3Flags(fs, &cfg)
	publicS3Flag(fs, &cfg)
	databaseFlag(fs, &cfg)
	stringFlag(fs, &cfg.WebhookSecret, "webhook-secret", "GENPIPE_WEBHOOK_SECRET", "", "HMAC-SHA256 key that signs webhook bodies")
	cfg.AllowPrivateWebhooks = new(bool)
	boolFlag(fs, cfg.AllowPrivateWebhooks, "allow-private-webhooks", "GENPIPE_ALLOW_PRIVATE_WEBHOOKS", false,
		"let webhook POSTs connect to loopback, private, link-local and other internal addresses (checked on the address dialed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := cfg.logger(stderr, "notifier")
	if err != nil {
		return err
	}
	return runNotifier(ctx, &cfg, log)
}

func cmdAISim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		cfg                config
		model              string
		latency            time.Duration
		capacity           int
		failRate, busyRate float64
	)
	fs := flagSet("aisim", &cfg, stderr)
	// A malformed environment value falls back to the default, as intFlag does.
	rateFlag := func(p *float64, name, env, usage string) {
		v, _ := strconv.ParseFloat(os.Getenv(env), 64)
		fs.Float64Var(p, name, v, withEnv(usage, env))
	}
	stringFlag(fs, &model, "model", "GENPIPE_AI_MODEL", "", "the AI to simulate: check or generate")
	stringFlag(fs, &cfg.Addr, "addr", "GENPIPE_ADDR", "127.0.0.1:0", "listen address")
	durationFlag(fs, &latency, "latency", "GENPIPE_AI_LATENCY", 0, "time per call (default 500ms for check, 3s for generate)")
	intFlag(fs, &capacity, "capacity", "GENPIPE_AI_CAPACITY", 64, "concurrent calls; more get 429")
	rateFlag(&failRate, "fail-rate", "GENPIPE_AI_FAIL_RATE",
		"probability (0 to 1) of answering a call 500 on arrival, before it takes a slot: for fault tests")
	rateFlag(&busyRate, "busy-rate", "GENPIPE_AI_BUSY_RATE",
		"probability (0 to 1) of answering a call 429 with Retry-After on arrival: for fault tests")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !(failRate >= 0 && busyRate >= 0 && failRate+busyRate <= 1) {
		return fmt.Errorf("-fail-rate %g and -busy-rate %g: want probabilities from 0 to 1 that add up to at most 1", failRate, busyRate)
	}
	log, err := cfg.logger(stderr, "aisim-"+model)
	if err != nil {
		return err
	}
	if latency == 0 {
		latency = defaultLatency(model)
	}
	svc, err := aisim.New(model, aisim.WithLatency(latency), aisim.WithCapacity(capacity),
		aisim.WithFaultRate(failRate), aisim.WithBusyRate(busyRate), aisim.WithLogger(log))
	if err != nil {
		return err
	}
	ln, url, err := listen(cfg.Addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "genpipe aisim %s serving %s (latency %s, capacity %d, fail rate %g, busy rate %g)\n",
		model, url, latency, capacity, failRate, busyRate)
	return serveHTTP(ctx, ln, svc.Handler(), log)
}

// defaultLatency is the article's figure for each AI.
func defaultLatency(model string) time.Duration {
	if model == "generate" {
		return 3 * time.Second
	}
	return 500 * time.Millisecond
}

func cmdBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	var port int
	fs := flagSet("broker", &cfg, stderr)
	intFlag(fs, &port, "port", "GENPIPE_KAFKA_PORT", 9092, "port on 127.0.0.1 (0 for a free one)")
	stringFlag(fs, &cfg.DataDir, "data-dir", "GENPIPE_DATA_DIR", "./genpipe-data/kafka", "where topics, records and offsets persist")
	intFlag(fs, &cfg.Partitions, "partitions", "GENPIPE_PARTITIONS", 16, "default partitions of auto-created topics")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := cfg.logger(stderr, "broker")
	if err != nil {
		return err
	}
	b, err := broker.Start(broker.WithDataDir(cfg.DataDir), broker.WithPort(port),
		broker.WithPartitions(int32(cfg.Partitions)), broker.WithLogger(log))
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintf(stdout, "genpipe broker listening on %s (data in %s)\n", b.Addrs()[0], cfg.DataDir)
	<-ctx.Done()
	return nil
}

func cmdObjectStore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := flagSet("objectstore", &cfg, stderr)
	stringFlag(fs, &cfg.Addr, "addr", "GENPIPE_S3_ADDR", "127.0.0.1:9000", "listen address")
	stringFlag(fs, &cfg.DataDir, "data-dir", "GENPIPE_DATA_DIR", "./genpipe-data/objects", "where objects are stored, as files")
	stringFlag(fs, &cfg.S3AccessKey, "access-key", "GENPIPE_S3_ACCESS_KEY", "", "root access key")
	stringFlag(fs, &cfg.S3SecretKey, "secret-key", "GENPIPE_S3_SECRET_KEY", "", "root secret key")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := required("access-key", cfg.S3AccessKey, "secret-key", cfg.S3SecretKey); err != nil {
		return err
	}
	srv, err := objectstore.Start(ctx, cfg.DataDir, objectstore.WithAddr(cfg.Addr), objectstore.WithCredentials(cfg.S3AccessKey, cfg.S3SecretKey))
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(stdout, "genpipe objectstore serving %s (data in %s)\n", srv.Endpoint(), cfg.DataDir)
	<-ctx.Done()
	return nil
}
