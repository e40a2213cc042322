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
	"sync"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/broker"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/notifier"
	"github.com/genpipe/genpipe/objectstore"
	"github.com/genpipe/genpipe/s3"
	"github.com/genpipe/genpipe/slide"
	"github.com/genpipe/genpipe/sqlstore"
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
	// CheckAIURL and GenerateAIURL, when set, are AI services of the
	// caller's that up's workers call instead of starting simulated ones.
	CheckAIURL    string
	GenerateAIURL string
	Partitions    int
	KafkaPort     int    // the embedded broker's port (0 for a free one)
	S3Addr        string // the embedded object store's address
	CancelPoll    time.Duration
	MemoryLimit   int64 // soft limit of the process's Go memory: see memlimit.go
	Retention     retentionSettings
	API           apiSettings
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
	f.String(&c.CheckAIURL, "check-ai-url", "GENPIPE_CHECK_AI_URL", "",
		"a Checking AI's base URL to call instead of starting the simulated one (-check-latency does not apply then)", emptyOr(httpURL))
	f.String(&c.GenerateAIURL, "generate-ai-url", "GENPIPE_GENERATE_AI_URL", "",
		"a Generative AI's base URL to call instead of starting the simulated one (-generate-latency does not apply then)", emptyOr(httpURL))
	f.Int(&c.Partitions, "partitions", "GENPIPE_PARTITIONS", kafka.DefaultPartitions, "partitions of each topic", atLeast(1))
	f.Int(&c.KafkaPort, "kafka-port", "GENPIPE_KAFKA_PORT", 0, "embedded broker port on 127.0.0.1 (0 for a free one)", between(0, 65535))
	f.String(&c.S3Addr, "s3-addr", "GENPIPE_S3_ADDR", "127.0.0.1:0", "embedded object store address (port 0 for a free one)", nonEmpty)
	registerCancelPoll(f, &c.CancelPoll)
	registerMemoryLimit(f, &c.MemoryLimit)
	c.Retention.register(f)
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
// and database, the simulated AIs (unless cfg names AI services to call),
// and the same part runners as the
// standalone commands, configured from cfg and the embedded servers'
// addresses. started gets the URLs once everything serves.
func up(ctx context.Context, cfg upConfig, log *slog.Logger, started func(upURLs)) error {
	applyMemoryLimit(cfg.MemoryLimit, log)
	returnMemoryWhenIdle(ctx, log)
	warnMissingFonts(log, slide.MissingFonts())
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
	kafkaSrv, err := broker.Start(append(cfg.Retention.options(), broker.WithDataDir(filepath.Join(dataDir, "kafka")), broker.WithPort(cfg.KafkaPort),
		broker.WithPartitions(int32(cfg.Partitions)), broker.WithLogger(log.With("part", "broker")))...)
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
	// The bucket is made once, before the parts start: each part makes
	// sure of it, and the embedded store answers a CreateBucket that races
	// another with an internal error, printed on stderr.
	bucketMaker, err := openObjects(ctx, b.S3, log.With("part", "objectstore"))
	if err != nil {
		return err
	}
	bucketMaker.CloseIdleConnections()
	if b.store, err = sqlstore.Open(ctx, b.Database, sqlstore.WithLogger(log.With("part", "store"))); err != nil {
		return fmt.Errorf("status database: %w", err)
	}
	defer b.store.Close()
	// One registry and one tracing for every part: /metrics on the API
	// shows the whole system.
	obs, err := startObservability(ctx, "genpipe", cfg.MetricsAddr, b.Kafka, log)
	if err != nil {
		return err
	}
	defer obs.close()
	_, stopPprof, err := cfg.servePprof(ctx, log)
	if err != nil {
		return err
	}
	defer stopPprof()

	urls := upURLs{ObjectStore: objects.Endpoint(), Brokers: kafkaSrv.Addrs(), Database: b.Database,
		SecretsFile: secretsFile, WebhookSecret: secrets.WebhookSecret}
	var apiLn net.Listener
	if apiLn, urls.API, err = listen(cfg.Addr); err != nil {
		return err
	}
	ais, err := upAIs(cfg, &urls, log)
	if err != nil {
		apiLn.Close()
		return err
	}
	stages := defaultStageSettings()
	stages.CheckAIURL, stages.GenerateAIURL = urls.CheckAI, urls.GenerateAI
	stages.CheckCapacity, stages.GenerateCapacity = cfg.CheckCapacity, cfg.GenerateCapacity
	stages.CancelPoll = cfg.CancelPoll
	stages.TenantsFile = cfg.API.TenantsFile // the budgets
	part := servicePart{service: cfg.service, backends: b}
	apiCfg := apiConfig{servicePart: part, Addr: cfg.Addr, API: cfg.API}
	notifierCfg := notifierConfig{servicePart: part, WebhookSecret: secrets.WebhookSecret,
		AllowPrivateWebhooks: cfg.API.AllowPrivateWebhooks, ResultTTL: cfg.API.ResultTTL,
		LegacySignature: notifier.DefaultLegacySignature}
	workerCfg := func(stage string) workerConfig {
		return workerConfig{servicePart: part, Stage: stage, stageSettings: stages}
	}

	// Every part runs at once; they stop in dependency order, each tier
	// once the one before it has returned (see runTiers): the API first, so
	// that no request comes in; then the workers, which finish their
	// in-flight records (a retry after a 429 may still call an AI) and
	// publish their statuses; then the notifier, once it has recorded all
	// they published, so a clean stop leaves no stale status; the AIs last.
	topics := genpipe.DefaultTopics()
	err = runTiers(ctx, []tier{
		{parts: []upPart{{"api", func(ctx context.Context) error {
			return runAPI(ctx, apiCfg, obs, apiLn, log.With("part", "api"), func() { started(urls) })
		}}}},
		{parts: []upPart{
			{"check-worker", func(ctx context.Context) error {
				return runWorker(ctx, workerCfg("check"), obs, log.With("part", "check-worker"))
			}},
			{"generate-worker", func(ctx context.Context) error {
				return runWorker(ctx, workerCfg("generate"), obs, log.With("part", "generate-worker"))
			}},
		}},
		{
			parts: []upPart{{"notifier", func(ctx context.Context) error {
				return runNotifier(ctx, notifierCfg, obs, log.With("part", "notifier"))
			}}},
			drain: func() { waitNotified(b.Kafka, topics.Results, cfg.ShutdownTimeout, log) },
		},
		{parts: ais},
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// upPart is one of the parts up runs, by name.
type upPart struct {
	name string
	run  func(ctx context.Context) error // until ctx is done
}

// tier is parts that stop together.
type tier struct {
	parts []upPart
	// drain, when set, runs once every tier before this one has stopped,
	// before this one is told to stop: to let it finish what they left.
	drain func()
}

// runTiers runs every part of tiers until ctx is done or a part fails (or
// stops by itself, which for a server is a failure too), then stops them
// tier by tier, in order: a tier is told to stop once every part of the
// tiers before it has returned. It returns the first failure.
func runTiers(ctx context.Context, tiers []tier) error {
	var (
		mu       sync.Mutex
		first    error
		stopping = make(chan struct{})
		stopOnce sync.Once
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		stopOnce.Do(func() { close(stopping) })
	}
	stops := make([]context.CancelFunc, len(tiers))
	running := make([]sync.WaitGroup, len(tiers))
	for i, t := range tiers {
		tctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		stops[i] = stop
		for _, p := range t.parts {
			running[i].Go(func() {
				err := p.run(tctx)
				switch {
				case tctx.Err() == nil && err == nil:
					fail(fmt.Errorf("%s stopped by itself", p.name))
				case err != nil && !errors.Is(err, context.Canceled):
					fail(err)
				}
			})
		}
	}
	select {
	case <-ctx.Done():
	case <-stopping:
	}
	for i, t := range tiers {
		if t.drain != nil {
			t.drain()
		}
		stops[i]()
		running[i].Wait()
	}
	mu.Lock()
	defer mu.Unlock()
	return first
}

// waitNotified waits, up to timeout, until the notifier's group has
// committed every record of the results topic: what the stopped workers
// published last is then in the status database.
func waitNotified(k kafkaSettings, results string, timeout time.Duration, log *slog.Logger) {
	conn, err := k.conn()
	if err != nil {
		log.Warn("not waiting for the notifier", "err", err)
		return
	}
	lag, err := kafka.NewLagReader(conn.Opts()...)
	if err != nil {
		log.Warn("not waiting for the notifier", "err", err)
		return
	}
	defer lag.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	left := int64(-1)
	err = backoff.Retry(ctx, backoff.Constant(100*time.Millisecond), func() error {
		lags, err := lag.Lag(ctx, groupNotifier)
		if err != nil {
			return err
		}
		left = 0
		for _, n := range lags[results] {
			left += n
		}
		if left > 0 {
			return fmt.Errorf("%d status changes not yet recorded", left)
		}
		return nil
	})
	if err != nil {
		log.Warn("stopping the notifier before it recorded every status change; the rest is recorded at the next start",
			"left", left, "waited", timeout, "err", err)
	}
}

// upListeners opens the API's listener on addr and the AIs' on free ports.
// upAIs returns the simulated AIs up runs, each listening on a port of
// its own, with their URLs in urls; an AI cfg names a URL for is called
// there instead, and not simulated.
func upAIs(cfg upConfig, urls *upURLs, log *slog.Logger) ([]upPart, error) {
	var parts []upPart
	var lns []net.Listener
	for _, ai := range []struct {
		model, external string
		latency         time.Duration
		capacity        int
		url             *string
	}{
		{"check", cfg.CheckAIURL, cfg.CheckLatency, cfg.CheckCapacity, &urls.CheckAI},
		{"generate", cfg.GenerateAIURL, cfg.GenerateLatency, cfg.GenerateCapacity, &urls.GenerateAI},
	} {
		if ai.external != "" {
			*ai.url = ai.external
			continue
		}
		ln, u, err := listen("127.0.0.1:0")
		if err != nil {
			for _, ln := range lns {
				ln.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
		*ai.url = u
		aiCfg := aisimConfig{common: cfg.common, Model: ai.model, Latency: ai.latency, Capacity: ai.capacity, Abort: true}
		name := ai.model + "-ai"
		parts = append(parts, upPart{name: name, run: func(ctx context.Context) error {
			return runAISim(ctx, aiCfg, ln, log.With("part", name))
		}})
	}
	return parts, nil
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
