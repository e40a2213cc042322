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

	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/broker"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/notifier"
	"github.com/genpipe/genpipe/objectstore"
	"github.com/genpipe/genpipe/s3"
)

// upURLs is what `up` serves, for people and for tests.
type upURLs struct {
	API, ObjectStore, CheckAI, GenerateAI string
	Brokers                               []string
	Database, SecretsFile                 string
	WebhookSecret                         string
}

// upConfig is the configuration of `genpipe up`: the whole system in one
// process on embedded defaults.
type upConfig struct {
	service
	Addr             string
	DataDir          string
	CheckLatency     time.Duration
	GenerateLatency  time.Duration
	CheckCapacity    int
	GenerateCapacity int
	Partitions       int
	KafkaPort        int    // the embedded broker's port (0 for a free one)
	S3Addr           string // the embedded object store's address
	API              apiSettings
}

func (c *upConfig) register(f *flags) {
	c.service.register(f, true)
	f.String(&c.Addr, "addr", "GENPIPE_ADDR", defaultAPIAddr, "API and web page listen address", nonEmpty)
	f.String(&c.DataDir, "data-dir", "GENPIPE_DATA_DIR", "./genpipe-data", "where Kafka, objects and the database persist", nonEmpty)
	f.Duration(&c.CheckLatency, "check-latency", "GENPIPE_CHECK_LATENCY", aisim.DefaultCheckLatency, "simulated Checking AI time per call",
		atLeast(time.Duration(0)))
	f.Duration(&c.GenerateLatency, "generate-latency", "GENPIPE_GENERATE_LATENCY", aisim.DefaultGenerateLatency,
		"simulated Generative AI time per call", atLeast(time.Duration(0)))
	f.Int(&c.CheckCapacity, "check-capacity", "GENPIPE_CHECK_CAPACITY", aisim.DefaultCapacity, "concurrent calls the Checking AI takes", atLeast(1))
	f.Int(&c.GenerateCapacity, "generate-capacity", "GENPIPE_GENERATE_CAPACITY", aisim.DefaultCapacity,
		"concurrent calls the Generative AI takes", atLeast(1))
	f.Int(&c.Partitions, "partitions", "GENPIPE_PARTITIONS", kafka.DefaultPartitions, "partitions of each topic", atLeast(1))
	f.Int(&c.KafkaPort, "kafka-port", "GENPIPE_KAFKA_PORT", 0, "embedded broker port on 127.0.0.1 (0 for a free one)", between(0, 65535))
	f.String(&c.S3Addr, "s3-addr", "GENPIPE_S3_ADDR", "127.0.0.1:0", "embedded object store address (port 0 for a free one)", nonEmpty)
	c.API.register(f, true)
}

func (c *upConfig) part() string { return "" } // its parts name themselves

func cmdUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg upConfig
	log, err := parse(&cfg, "up", args, stderr)
	if err != nil {
		return err
	}
	return up(ctx, cfg, log, func(u upURLs) { printURLs(stdout, u) })
}

// up runs the whole system in one process: embedded broker, object store
// and database, the simulated AIs, and the same part runners as the
// standalone commands, configured from cfg and the embedded servers'
// addresses. started gets the URLs once everything serves.
func up(ctx context.Context, cfg upConfig, log *slog.Logger, started func(upURLs)) error {
	// Absolute, because the embedded object store changes the process's
	// working directory while it runs.
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	secrets, secretsFile, err := loadSecrets(dataDir)
	if err != nil {
		return err
	}
	kafkaSrv, err := broker.Start(broker.WithDataDir(filepath.Join(dataDir, "kafka")), broker.WithPort(cfg.KafkaPort),
		broker.WithPartitions(int32(cfg.Partitions)), broker.WithLogger(log.With("part", "broker")))
	if err != nil {
		return fmt.Errorf("embedded broker: %w", err)
	}
	defer kafkaSrv.Close()
	objects, err := objectstore.Start(ctx, filepath.Join(dataDir, "objects"), objectstore.WithAddr(cfg.S3Addr),
		objectstore.WithCredentials(secrets.S3AccessKey, secrets.S3SecretKey))
	if err != nil {
		return fmt.Errorf("embedded object store: %w", err)
	}
	defer objects.Close()

	b := backends{
		Kafka: kafkaSettings{Brokers: kafkaSrv.Addrs()[0], Partitions: cfg.Partitions},
		S3: s3Settings{Endpoint: objects.Endpoint(), Bucket: s3.DefaultBucket, Region: objectstore.Region,
			AccessKey: secrets.S3AccessKey, SecretKey: secrets.S3SecretKey},
		Database: "sqlite:" + filepath.Join(dataDir, "genpipe.db"),
	}
	// One registry and one tracing for every part: /metrics on the API
	// shows the whole system.
	obs, err := startObservability(ctx, "genpipe", cfg.MetricsAddr, b.Kafka, log)
	if err != nil {
		return err
	}
	defer obs.close()

	urls := upURLs{ObjectStore: objects.Endpoint(), Brokers: kafkaSrv.Addrs(), Database: b.Database,
		SecretsFile: secretsFile, WebhookSecret: secrets.WebhookSecret}
	apiLn, checkLn, generateLn, err := upListeners(cfg.Addr, &urls)
	if err != nil {
		return err
	}
	stages := defaultStageSettings()
	stages.CheckAIURL, stages.GenerateAIURL = urls.CheckAI, urls.GenerateAI
	stages.CheckCapacity, stages.GenerateCapacity = cfg.CheckCapacity, cfg.GenerateCapacity
	part := servicePart{service: cfg.service, backends: b}
	apiCfg := apiConfig{servicePart: part, Addr: cfg.Addr, API: cfg.API}
	notifierCfg := notifierConfig{servicePart: part, WebhookSecret: secrets.WebhookSecret,
		AllowPrivateWebhooks: cfg.API.AllowPrivateWebhooks, ResultTTL: cfg.API.ResultTTL,
		LegacySignature: notifier.DefaultLegacySignature}
	workerCfg := func(stage string) workerConfig {
		return workerConfig{servicePart: part, Stage: stage, stageSettings: stages}
	}
	aiCfg := func(model string, latency time.Duration, capacity int) aisimConfig {
		return aisimConfig{common: cfg.common, Model: model, Latency: latency, Capacity: capacity}
	}

	// The AIs outlive the parts that call them: at shutdown a worker
	// finishes its in-flight records, which may need another call (a
	// retry after a 429), before the AIs stop.
	aiCtx, stopAIs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAIs()
	ais, aiCtx := errgroup.WithContext(aiCtx)
	ais.Go(func() error {
		return runAISim(aiCtx, aiCfg("check", cfg.CheckLatency, cfg.CheckCapacity), checkLn, log.With("part", "check-ai"))
	})
	ais.Go(func() error {
		return runAISim(aiCtx, aiCfg("generate", cfg.GenerateLatency, cfg.GenerateCapacity), generateLn, log.With("part", "generate-ai"))
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
	g.Go(func() error { return runWorker(ctx, workerCfg("check"), obs, log.With("part", "check-worker")) })
	g.Go(func() error { return runWorker(ctx, workerCfg("generate"), obs, log.With("part", "generate-worker")) })
	g.Go(func() error { return runNotifier(ctx, notifierCfg, obs, log.With("part", "notifier")) })
	g.Go(func() error {
		return runAPI(ctx, apiCfg, obs, apiLn, log.With("part", "api"), func() { started(urls) })
	})
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
// the stored objects and receivers keep verifying webhooks. The webhook
// secret is in the Standard Webhooks form (whsec_); one written by an
// earlier release (hex) still signs as it did (see notifier.ParseSecret).
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
	s = secrets{S3AccessKey: "genpipe" + randomHex(6), S3SecretKey: randomHex(20), WebhookSecret: notifier.NewSecret()}
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
