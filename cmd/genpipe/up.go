package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/genpipe/genpipe/broker"
	"github.com/genpipe/genpipe/objectstore"
)

// upURLs is what `up` serves, for people and for tests.
type upURLs struct {
	API, ObjectStore, CheckAI, GenerateAI string
	Brokers                               []string
	Database, SecretsFile                 string
	WebhookSecret                         string
}

func cmdUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := flagSet("up", &cfg, stderr)
	stringFlag(fs, &cfg.Addr, "addr", "GENPIPE_ADDR", "127.0.0.1:8080", "API and web page listen address")
	stringFlag(fs, &cfg.DataDir, "data-dir", "GENPIPE_DATA_DIR", "./genpipe-data", "where Kafka, objects and the database persist")
	durationFlag(fs, &cfg.CheckLatency, "check-latency", "GENPIPE_CHECK_LATENCY", 500*time.Millisecond, "simulated Checking AI time per call")
	durationFlag(fs, &cfg.GenerateLatency, "generate-latency", "GENPIPE_GENERATE_LATENCY", 3*time.Second, "simulated Generative AI time per call")
	intFlag(fs, &cfg.CheckCapacity, "check-capacity", "GENPIPE_CHECK_CAPACITY", 64, "concurrent calls the Checking AI takes")
	intFlag(fs, &cfg.GenerateCapacity, "generate-capacity", "GENPIPE_GENERATE_CAPACITY", 64, "concurrent calls the Generative AI takes")
	intFlag(fs, &cfg.Partitions, "partitions", "GENPIPE_PARTITIONS", 16, "partitions of each topic")
	intFlag(fs, &cfg.KafkaPort, "kafka-port", "GENPIPE_KAFKA_PORT", 0, "embedded broker port on 127.0.0.1 (0 for a free one)")
	stringFlag(fs, &cfg.S3Addr, "s3-addr", "GENPIPE_S3_ADDR", "127.0.0.1:0", "embedded object store address (port 0 for a free one)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := cfg.logger(stderr, "")
	if err != nil {
		return err
	}
	return up(ctx, &cfg, log, func(u upURLs) { printURLs(stdout, u) })
}

// up runs the whole system in one process: embedded broker, object store
// and database, the simulated AIs, and the same part runners as the
// standalone commands. started gets the URLs once everything serves.
func up(ctx context.Context, cfg *config, log *slog.Logger, started func(upURLs)) error {
	// Absolute, because the embedded object store changes the process's
	// working directory while it runs.
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	cfg.DataDir = dataDir
	if cfg.AllowPrivateWebhooks == nil { // not set by flags: up's own default, as apiFlags says
		allow := true
		cfg.AllowPrivateWebhooks = &allow
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	secrets, secretsFile, err := loadSecrets(cfg.DataDir)
	if err != nil {
		return err
	}
	kafkaSrv, err := broker.Start(broker.WithDataDir(filepath.Join(cfg.DataDir, "kafka")), broker.WithPort(cfg.KafkaPort),
		broker.WithPartitions(int32(cfg.Partitions)), broker.WithLogger(log.With("part", "broker")))
	if err != nil {
		return fmt.Errorf("embedded broker: %w", err)
	}
	defer kafkaSrv.Close()
	objects, err := objectstore.Start(ctx, filepath.Join(cfg.DataDir, "objects"), objectstore.WithAddr(cfg.S3Addr),
		objectstore.WithCredentials(secrets.S3AccessKey, secrets.S3SecretKey))
	if err != nil {
		return fmt.Errorf("embedded object store: %w", err)
	}
	defer objects.Close()

	cfg.Brokers = kafkaSrv.Addrs()[0]
	cfg.S3Endpoint, cfg.S3Bucket, cfg.S3Region = objects.Endpoint(), "genpipe", objectstore.Region
	cfg.S3AccessKey, cfg.S3SecretKey = secrets.S3AccessKey, secrets.S3SecretKey
	cfg.DatabaseURL = "sqlite:" + filepath.Join(cfg.DataDir, "genpipe.db")
	cfg.WebhookSecret = secrets.WebhookSecret

	// One registry and one tracing for every part: /metrics on the API
	// shows the whole system.
	obs, err := newObservability(ctx, cfg, "genpipe", log)
	if err != nil {
		return err
	}
	defer obs.close()
	cfg.obs = obs
	_, stopMetrics, err := obs.serve(ctx, cfg.MetricsAddr)
	if err != nil {
		return err
	}
	defer stopMetrics()

	urls := upURLs{ObjectStore: objects.Endpoint(), Brokers: kafkaSrv.Addrs(), Database: cfg.DatabaseURL,
		SecretsFile: secretsFile, WebhookSecret: secrets.WebhookSecret}
	apiLn, checkLn, generateLn, err := upListeners(cfg.Addr, &urls)
	if err != nil {
		return err
	}
	cfg.CheckAIURL, cfg.GenerateAIURL = urls.CheckAI, urls.GenerateAI

	// The AIs outlive the parts that call them: at shutdown a worker
	// finishes its in-flight records, which may need another call (a
	// retry after a 429), before the AIs stop.
	aiCtx, stopAIs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAIs()
	ais, aiCtx := errgroup.WithContext(aiCtx)
	ais.Go(func() error {
		return runAISim(aiCtx, "check", checkLn, cfg.CheckLatency, cfg.CheckCapacity, log.With("part", "check-ai"))
	})
	ais.Go(func() error {
		return runAISim(aiCtx, "generate", generateLn, cfg.GenerateLatency, cfg.GenerateCapacity, log.With("part", "generate-ai"))
	})

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { // an AI that stops on its own stops everything
		select {
		case <-aiCtx.Done():
			return fmt.Errorf("simulated AI stopped: %w", context.Cause(aiCtx))
		case <-ctx.Done():
			return nil
		}
	})
	g.Go(func() error { return runWorker(ctx, cfg, "check", log.With("part", "check-worker")) })
	g.Go(func() error { return runWorker(ctx, cfg, "generate", log.With("part", "generate-worker")) })
	g.Go(func() error { return runNotifier(ctx, cfg, log.With("part", "notifier")) })
	g.Go(func() error { return runAPI(ctx, cfg, apiLn, log.With("part", "api"), func() { started(urls) }) })
	err = g.Wait()
	stopAIs()
	if aiErr := ais.Wait(); err == nil {
		err = aiErr
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// upListeners opens the API's listener on addr and the AIs' on free ports.
func upListeners(addr string, urls *upURLs) (api, check, generate net.Listener, err error) {
	if api, urls.API, err = listen(addr); err != nil {
		return nil, nil, nil, err
	}
	if check, urls.CheckAI, err = listen("127.0.0.1:0"); err != nil {
		api.Close()
		return nil, nil, nil, err
	}
	if generate, urls.GenerateAI, err = listen("127.0.0.1:0"); err != nil {
		api.Close()
		check.Close()
		return nil, nil, nil, err
	}
	return api, check, generate, nil
}

func printURLs(w io.Writer, u upURLs) {
	fmt.Fprintf(w, `genpipe is up
  web page        %[1]s/
  API             %[1]s/v1/
  metrics         %[1]s/metrics
  Kafka           %[2]s
  object store    %[3]s (bucket genpipe)
  Checking AI     %[4]s
  Generative AI   %[5]s
  database        %[6]s
  secrets         %[7]s (S3 keys, webhook signing secret)
Press Ctrl-C to stop.
`, u.API, u.Brokers[0], u.ObjectStore, u.CheckAI, u.GenerateAI, u.Database, u.SecretsFile)
}

// secrets are generated once per data dir, so a restart keeps access to
// the stored objects and receivers keep verifying webhooks.
type secrets struct {
	S3AccessKey   string `json:"s3AccessKey"`
	S3SecretKey   string `json:"s3SecretKey"`
	WebhookSecret string `json:"webhookSecret"`
}

func loadSecrets(dir string) (secrets, string, error) {
	path := filepath.Join(dir, "secrets.json")
	var s secrets
	data, err := os.ReadFile(path)
	if err == nil {
		if err := json.Unmarshal(data, &s); err != nil {
			return s, path, fmt.Errorf("read %s: %w", path, err)
		}
		return s, path, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return s, path, fmt.Errorf("read %s: %w", path, err)
	}
	s = secrets{S3AccessKey: "genpipe" + randomHex(6), S3SecretKey: randomHex(20), WebhookSecret: randomHex(32)}
	if env := os.Getenv("GENPIPE_WEBHOOK_SECRET"); env != "" {
		s.WebhookSecret = env
	}
	data, _ = json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return s, path, fmt.Errorf("write %s: %w", path, err)
	}
	return s, path, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
