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

	CheckLatency     time.Duration
	GenerateLatency  time.Duration
	CheckCapacity    int
	GenerateCapacity int

	KafkaPort int    // up: the embedded broker's port (0 for a free one)
	S3Addr    string // up: the embedded object store's address

	LogLevel string
	Topics   genpipe.Topics
}

// flagSet builds a command's flag set with the common -log-level flag.
func flagSet(name string, cfg *config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("genpipe "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.Topics = genpipe.DefaultTopics()
	stringFlag(fs, &cfg.LogLevel, "log-level", "GENPIPE_LOG_LEVEL", "info", "log level: debug, info, warn, error")
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

func (c *config) brokerList() []string {
	var out []string
	for _, b := range strings.Split(c.Brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

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
