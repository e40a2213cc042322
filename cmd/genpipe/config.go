package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/api"
)

// config is everything a part may need. Each command registers the flags
// of the fields it uses; each flag defaults to its environment variable.
type config struct {
	Addr       string
	DataDir    string
	Brokers    string
	Partitions int

	S3Endpoint  string
	S3Bucket    string
	S3AccessKey string
	S3SecretKey string
	S3Region    string

	DatabaseURL   string
	CheckAIURL    string
	GenerateAIURL string
	WebhookSecret string

	// The API's security and admission control (api and up; see apiFlags).
	APIKeys              string // comma-separated
	AllowPrivateWebhooks *bool  // nil: the command's default (up allows them, api refuses)
	MaxBacklog           int
	RateLimit            float64
	RateBurst            int
	UploadTTL            time.Duration
	ResultTTL            time.Duration
	MaxUploadBytes       int

	CheckLatency     time.Duration
	GenerateLatency  time.Duration
	CheckCapacity    int
	GenerateCapacity int

	// Workers: how a stage claims requests, how many AI attempts it makes,
	// and how soon the group notices a dead worker.
	ClaimLease     time.Duration
	AIAttempts     int
	SessionTimeout time.Duration

	KafkaPort int    // up: the embedded broker's port (0 for a free one)
	S3Addr    string // up: the embedded object store's address

	ShutdownTimeout time.Duration // how long in-flight work may finish after SIGTERM (see signals.go)

	LogLevel string
	Topics   genpipe.Topics
}

// flagSet builds a command's flag set with the common -log-level flag.
func flagSet(name string, cfg *config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("genpipe "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.Topics = genpipe.DefaultTopics()
	stringFlag(fs, &cfg.LogLevel, "log-level", "GENPIPE_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	// Registered here, by name, because the API's flags belong to every
	// command that serves it.
	if name == "api" || name == "up" {
		apiFlags(fs, cfg, name == "up")
	}
	durationFlag(fs, &cfg.ShutdownTimeout, "shutdown-timeout", "GENPIPE_SHUTDOWN_TIMEOUT", defaultShutdownTimeout,
		"after SIGTERM, how long in-flight records and webhooks may finish before they are handed back (keep it under the group's 60s rebalance timeout); a second signal exits at once")
	return fs
}

func stringFlag(fs *flag.FlagSet, p *string, name, env, def, usage string) {
	fs.StringVar(p, name, envOr(env, def), withEnv(usage, env))
}

func intFlag(fs *flag.FlagSet, p *int, name, env string, def int, usage string) {
	if v, err := strconv.Atoi(os.Getenv(env)); err == nil && env != "" {
		def = v
	}
	fs.IntVar(p, name, def, withEnv(usage, env))
}

func durationFlag(fs *flag.FlagSet, p *time.Duration, name, env string, def time.Duration, usage string) {
	if v, err := time.ParseDuration(os.Getenv(env)); err == nil && env != "" {
		def = v
	}
	fs.DurationVar(p, name, def, withEnv(usage, env))
}

func floatFlag(fs *flag.FlagSet, p *float64, name, env string, def float64, usage string) {
	if v, err := strconv.ParseFloat(os.Getenv(env), 64); err == nil && env != "" {
		def = v
	}
	fs.Float64Var(p, name, def, withEnv(usage, env))
}

func boolFlag(fs *flag.FlagSet, p *bool, name, env string, def bool, usage string) {
	if v, err := strconv.ParseBool(os.Getenv(env)); err == nil && env != "" {
		def = v
	}
	fs.BoolVar(p, name, def, withEnv(usage, env))
}

func envOr(env, def string) string {
	if v, ok := os.LookupEnv(env); ok && env != "" {
		return v
	}
	return def
}

func withEnv(usage, env string) string {
	if env == "" {
		return usage
	}
	return usage + " ($" + env + ")"
}

// The flags shared by the parts that talk to each dependency.

func kafkaFlags(fs *flag.FlagSet, cfg *config) {
	stringFlag(fs, &cfg.Brokers, "brokers", "GENPIPE_KAFKA_BROKERS", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
	intFlag(fs, &cfg.Partitions, "partitions", "GENPIPE_PARTITIONS", 16, "partitions of each topic created at start (existing topics are left alone)")
}

func s3Flags(fs *flag.FlagSet, cfg *config) {
	stringFlag(fs, &cfg.S3Endpoint, "s3-endpoint", "GENPIPE_S3_ENDPOINT", "http://127.0.0.1:9000", "S3 endpoint URL")
	stringFlag(fs, &cfg.S3Bucket, "s3-bucket", "GENPIPE_S3_BUCKET", "genpipe", "S3 bucket for uploads and slides (created when missing)")
	stringFlag(fs, &cfg.S3AccessKey, "s3-access-key", "GENPIPE_S3_ACCESS_KEY", "", "S3 access key")
	stringFlag(fs, &cfg.S3SecretKey, "s3-secret-key", "GENPIPE_S3_SECRET_KEY", "", "S3 secret key")
	stringFlag(fs, &cfg.S3Region, "s3-region", "GENPIPE_S3_REGION", "us-east-1", "S3 region")
}

func databaseFlag(fs *flag.FlagSet, cfg *config) {
	stringFlag(fs, &cfg.DatabaseURL, "database-url", "GENPIPE_DATABASE_URL", "sqlite:genpipe.db", "status database: sqlite:PATH or postgres://user:password@host:port/dbname")
}

func (c *config) brokerList() []string { return splitList(c.Brokers) }

// logger returns a text logger on stderr at the configured level, tagged
// with the part that logs (none for `up`, whose parts tag themselves).
func (c *config) logger(stderr io.Writer, part string) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("bad -log-level %q: %w", c.LogLevel, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if part != "" {
		log = log.With("part", part)
	}
	return log, nil
}

func required(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return fmt.Errorf("-%s is required", pairs[i])
		}
	}
	return nil
}

// apiFlags are the API's security and admission settings. up allows
// webhooks to private addresses by default: its parts, and usually the
// receivers of whoever runs it, are on 127.0.0.1.
func apiFlags(fs *flag.FlagSet, cfg *config, up bool) {
	stringFlag(fs, &cfg.APIKeys, "api-keys", "GENPIPE_API_KEYS", "",
		"comma-separated API keys: when set, /v1/ needs Authorization: Bearer KEY and each key sees only its own requests; "+
			"none leaves the API open (prefer the environment variable: flags show in ps)")
	allowUsage := "accept webhook URLs whose host is or resolves to a loopback, private, link-local or other internal address"
	if up {
		allowUsage += " (up allows them: its parts and tests run on 127.0.0.1; set false to refuse them)"
	}
	cfg.AllowPrivateWebhooks = new(bool)
	boolFlag(fs, cfg.AllowPrivateWebhooks, "allow-private-webhooks", "GENPIPE_ALLOW_PRIVATE_WEBHOOKS", up, allowUsage)
	intFlag(fs, &cfg.MaxBacklog, "max-backlog", "GENPIPE_MAX_BACKLOG", 10000,
		"requests waiting for the AI (status received) at which POST /v1/requests answers 429 with Retry-After; 0 for no bound")
	floatFlag(fs, &cfg.RateLimit, "rate-limit", "GENPIPE_RATE_LIMIT", 0,
		"requests a second each client (its API key, else its IP address) may make to /v1/ on average, 429 with Retry-After above; 0 for no limit")
	intFlag(fs, &cfg.RateBurst, "rate-burst", "GENPIPE_RATE_BURST", 20, "requests a client may make at once on top of -rate-limit")
	durationFlag(fs, &cfg.UploadTTL, "upload-ttl", "GENPIPE_UPLOAD_TTL", 15*time.Minute, "how long a presigned upload URL accepts the image")
	durationFlag(fs, &cfg.ResultTTL, "result-ttl", "GENPIPE_RESULT_TTL", time.Hour,
		"how long the slide links in an answer or SSE event stay valid (each GET presigns new ones)")
	intFlag(fs, &cfg.MaxUploadBytes, "max-upload-bytes", "GENPIPE_MAX_UPLOAD_BYTES", 10<<20, "the largest image a request may use, in bytes")
}

// apiOptions turns the API's settings into options. Zero values keep the
// API's defaults, except MaxBacklog, whose 0 means no bound.
func (c *config) apiOptions() []api.Option {
	opts := []api.Option{
		api.WithAPIKeys(splitList(c.APIKeys)...),
		api.WithAllowPrivateWebhooks(c.AllowPrivateWebhooks != nil && *c.AllowPrivateWebhooks),
		api.WithMaxBacklog(c.MaxBacklog),
	}
	if c.RateLimit > 0 {
		opts = append(opts, api.WithRateLimit(c.RateLimit, c.RateBurst))
	}
	if c.UploadTTL > 0 {
		opts = append(opts, api.WithUploadTTL(c.UploadTTL))
	}
	if c.ResultTTL > 0 {
		opts = append(opts, api.WithResultTTL(c.ResultTTL))
	}
	if c.MaxUploadBytes > 0 {
		opts = append(opts, api.WithMaxUploadSize(int64(c.MaxUploadBytes)))
	}
	return opts
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
