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
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/s3"
)

// config is everything a part may need. Each command registers the flags
// of the fields it uses; each flag defaults to its environment variable.
type config struct {
	Addr       string
	DataDir    string
	Brokers    string
	Partitions int

	// How every Kafka client of a process connects (see kafkaFlags and
	// kafkaConn); empty values take the kafka package's defaults.
	KafkaClientID      string
	KafkaTLS           bool
	KafkaTLSCA         string
	KafkaTLSCert       string
	KafkaTLSKey        string
	KafkaTLSServerName string
	KafkaSASLMechanism string
	KafkaSASLUser      string
	KafkaSASLPassword  string
	KafkaCompression   string
	KafkaGroupProtocol string

	S3Endpoint       string
	S3Bucket         string
	S3AccessKey      string
	S3SecretKey      string
	S3Region         string
	S3SessionToken   string
	S3PublicEndpoint string       // api, notifier: the store's URL in links handed to browsers
	S3PathStyle      optionalBool // unset: path style except on AWS S3 (see s3.WithPathStyle)

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

	LogLevel  string
	LogFormat string // text or json
	Topics    genpipe.Topics

	// Observability: where a part without an HTTP server serves /metrics,
	// and the registry and tracing the parts of one process share (set by
	// up, else by each part's runner; see observe).
	MetricsAddr string
	obs         *observability
}

// flagSet builds a command's flag set with the common -log-level flag.
func flagSet(name string, cfg *config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("genpipe "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.Topics = genpipe.DefaultTopics()
	stringFlag(fs, &cfg.LogLevel, "log-level", "GENPIPE_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	stringFlag(fs, &cfg.LogFormat, "log-format", "GENPIPE_LOG_FORMAT", "text",
		"log format: text (key=value) or json (one object a line, for log collectors); lines about a request carry its id as \"request\"")
	switch name {
	case "worker", "notifier":
		stringFlag(fs, &cfg.MetricsAddr, "metrics-addr", "GENPIPE_METRICS_ADDR", "",
			"address serving Prometheus /metrics and /healthz, e.g. :9464; empty for none")
	case "api", "up":
		stringFlag(fs, &cfg.MetricsAddr, "metrics-addr", "GENPIPE_METRICS_ADDR", "",
			"another address serving Prometheus /metrics and /healthz, e.g. :9464; /metrics is on -addr anyway")
	}
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
	kafkaConnFlags(fs, cfg)
}

// kafkaConnFlags are how to connect to the brokers, for the commands that
// take -brokers their own way (doctor, loadtest).
func kafkaConnFlags(fs *flag.FlagSet, cfg *config) {
	stringFlag(fs, &cfg.KafkaClientID, "kafka-client-id", "GENPIPE_KAFKA_CLIENT_ID", kafka.DefaultClientID,
		"client id the brokers see in their logs, metrics and quotas")
	boolFlag(fs, &cfg.KafkaTLS, "kafka-tls", "GENPIPE_KAFKA_TLS", false,
		"connect to the brokers over TLS (implied by the other -kafka-tls-* flags); the system's root CAs unless -kafka-tls-ca")
	stringFlag(fs, &cfg.KafkaTLSCA, "kafka-tls-ca", "GENPIPE_KAFKA_TLS_CA", "", "PEM file of the CA certificates that sign the brokers' certificates")
	stringFlag(fs, &cfg.KafkaTLSCert, "kafka-tls-cert", "GENPIPE_KAFKA_TLS_CERT", "",
		"PEM file of the client certificate, for brokers that require one (mutual TLS; with -kafka-tls-key)")
	stringFlag(fs, &cfg.KafkaTLSKey, "kafka-tls-key", "GENPIPE_KAFKA_TLS_KEY", "", "PEM file of the client certificate's private key")
	stringFlag(fs, &cfg.KafkaTLSServerName, "kafka-tls-server-name", "GENPIPE_KAFKA_TLS_SERVER_NAME", "",
		"name to verify in the brokers' certificates (default: each broker's host name)")
	stringFlag(fs, &cfg.KafkaSASLMechanism, "kafka-sasl-mechanism", "GENPIPE_KAFKA_SASL_MECHANISM", "",
		"SASL mechanism: PLAIN (only with TLS), SCRAM-SHA-256 or SCRAM-SHA-512; empty for no SASL")
	stringFlag(fs, &cfg.KafkaSASLUser, "kafka-sasl-user", "GENPIPE_KAFKA_SASL_USER", "", "SASL user name")
	secretFlag(fs, &cfg.KafkaSASLPassword, "kafka-sasl-password", "GENPIPE_KAFKA_SASL_PASSWORD",
		"SASL password (prefer the environment variable: flags show in ps)")
	stringFlag(fs, &cfg.KafkaCompression, "kafka-compression", "GENPIPE_KAFKA_COMPRESSION", kafka.DefaultCompression,
		"compression of produced batches: none, gzip, snappy, lz4 or zstd")
	stringFlag(fs, &cfg.KafkaGroupProtocol, "kafka-group-protocol", "GENPIPE_KAFKA_GROUP_PROTOCOL", kafka.DefaultGroupProtocol,
		"consumer group protocol: classic (any Kafka 2.4+, cooperative-sticky) or consumer (KIP-848, Kafka 4.0+; "+
			"falls back to classic where the broker lacks it; session timeout then set on the broker)")
}

// kafkaConn turns the Kafka flags into the connection every Kafka client
// of the process uses.
func (c *config) kafkaConn() (*kafka.Conn, error) {
	opts, err := c.kafkaConnOptions()
	if err != nil {
		return nil, err
	}
	return kafka.NewConn(c.brokerList(), opts...)
}

// kafkaConnOptions turns the Kafka connection flags into options. Empty
// settings (a config not built from flags, as up's) take the kafka
// package's defaults: plaintext, no SASL.
func (c *config) kafkaConnOptions() ([]kafka.ConnOption, error) {
	var opts []kafka.ConnOption
	if c.KafkaClientID != "" {
		opts = append(opts, kafka.WithClientID(c.KafkaClientID))
	}
	if c.KafkaCompression != "" {
		opts = append(opts, kafka.WithCompression(c.KafkaCompression))
	}
	if c.KafkaGroupProtocol != "" {
		opts = append(opts, kafka.WithGroupProtocol(c.KafkaGroupProtocol))
	}
	if c.KafkaTLS || c.KafkaTLSCA != "" || c.KafkaTLSCert != "" || c.KafkaTLSKey != "" || c.KafkaTLSServerName != "" {
		tc, err := kafka.TLSFiles{CAFile: c.KafkaTLSCA, CertFile: c.KafkaTLSCert, KeyFile: c.KafkaTLSKey,
			ServerName: c.KafkaTLSServerName}.Config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kafka.WithTLS(tc))
	}
	if c.KafkaSASLMechanism != "" || c.KafkaSASLUser != "" || c.KafkaSASLPassword != "" {
		opts = append(opts, kafka.WithSASL(c.KafkaSASLMechanism, c.KafkaSASLUser, c.KafkaSASLPassword))
	}
	return opts, nil
}

func s3Flags(fs *flag.FlagSet, cfg *config) {
	stringFlag(fs, &cfg.S3Endpoint, "s3-endpoint", "GENPIPE_S3_ENDPOINT", "http://127.0.0.1:9000",
		"S3 endpoint URL: http(s)://host[:port], e.g. https://s3.eu-west-1.amazonaws.com or http://minio:9000")
	stringFlag(fs, &cfg.S3Bucket, "s3-bucket", "GENPIPE_S3_BUCKET", "genpipe", "S3 bucket for uploads and slides (created when missing)")
	stringFlag(fs, &cfg.S3AccessKey, "s3-access-key", "GENPIPE_S3_ACCESS_KEY", "", "S3 access key")
	secretFlag(fs, &cfg.S3SecretKey, "s3-secret-key", "GENPIPE_S3_SECRET_KEY", "S3 secret key (prefer the environment variable: flags show in ps)")
	secretFlag(fs, &cfg.S3SessionToken, "s3-session-token", "GENPIPE_S3_SESSION_TOKEN",
		"S3 session token of temporary credentials (AWS STS); they expire with it, and genpipe does not renew them")
	stringFlag(fs, &cfg.S3Region, "s3-region", "GENPIPE_S3_REGION", "us-east-1", "S3 region the requests are signed for")
	cfg.S3PathStyle.set, cfg.S3PathStyle.v = parseOptionalBool(os.Getenv("GENPIPE_S3_PATH_STYLE"))
	fs.Var(&cfg.S3PathStyle, "s3-path-style", withEnv("path-style URLs (host/bucket/key: MinIO, versitygw, any endpoint without "+
		"wildcard DNS) if true, virtual-host style (bucket.host/key) if false; auto: path style except on AWS S3 and "+
		"other stores known to want virtual hosts", "GENPIPE_S3_PATH_STYLE"))
}

// publicS3Flag is for the parts that hand presigned URLs to people (the
// API's upload URLs and result links, the notifier's webhook links), when
// browsers reach the store under another address than genpipe does. The
// workers' URLs go to the AI services, which reach the store as genpipe
// does, so they keep -s3-endpoint.
func publicS3Flag(fs *flag.FlagSet, cfg *config) {
	stringFlag(fs, &cfg.S3PublicEndpoint, "s3-public-endpoint", "GENPIPE_S3_PUBLIC_ENDPOINT", "",
		"the object store's URL as browsers reach it, for presigned upload and result URLs (SigV4 signs the host, so "+
			"it cannot be rewritten later); empty: -s3-endpoint")
}

// s3Options turns the S3 flags other than the endpoint, bucket and keys
// into store options.
func (c *config) s3Options() []s3.Option {
	opts := []s3.Option{s3.WithSessionToken(c.S3SessionToken)}
	if c.S3Region != "" {
		opts = append(opts, s3.WithRegion(c.S3Region))
	}
	if c.S3PathStyle.set {
		opts = append(opts, s3.WithPathStyle(c.S3PathStyle.v))
	}
	if c.S3PublicEndpoint != "" {
		opts = append(opts, s3.WithPresignEndpoint(c.S3PublicEndpoint))
	}
	return opts
}

// secretFlag is a string flag whose environment variable does not show as
// its default in -h, so help output and the generated reference never
// print a secret.
func secretFlag(fs *flag.FlagSet, p *string, name, env, usage string) {
	fs.StringVar(p, name, "", withEnv(usage, env))
	*p = os.Getenv(env)
}

// optionalBool is a bool flag that can also be left to the code's choice
// ("auto", its default). -name alone means true.
type optionalBool struct{ set, v bool }

func (b *optionalBool) String() string {
	if b == nil || !b.set {
		return "auto"
	}
	return strconv.FormatBool(b.v)
}

func (b *optionalBool) Set(s string) error {
	set, v := parseOptionalBool(s)
	if !set && s != "auto" {
		return fmt.Errorf("want true, false or auto")
	}
	b.set, b.v = set, v
	return nil
}

func (b *optionalBool) IsBoolFlag() bool { return true }

// parseOptionalBool reads "true"/"false" (any strconv.ParseBool form);
// anything else, "auto" and "" included, leaves the choice unset.
func parseOptionalBool(s string) (set, v bool) {
	v, err := strconv.ParseBool(s)
	return err == nil, v
}

func databaseFlag(fs *flag.FlagSet, cfg *config) {
	stringFlag(fs, &cfg.DatabaseURL, "database-url", "GENPIPE_DATABASE_URL", "sqlite:genpipe.db", "status database: sqlite:PATH or postgres://user:password@host:port/dbname")
}

func (c *config) brokerList() []string { return splitList(c.Brokers) }

// logger returns a logger on stderr in the configured format and at the
// configured level, tagged with the part that logs (none for `up`, whose
// parts tag themselves).
func (c *config) logger(stderr io.Writer, part string) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("bad -log-level %q: %w", c.LogLevel, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch c.LogFormat {
	case "text", "":
		h = slog.NewTextHandler(stderr, opts)
	case "json":
		h = slog.NewJSONHandler(stderr, opts)
	default:
		return nil, fmt.Errorf("bad -log-format %q: want text or json", c.LogFormat)
	}
	log := slog.New(h)
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

// allowPrivateWebhooks reports -allow-private-webhooks: false when the
// command has no such flag.
func (c *config) allowPrivateWebhooks() bool {
	return c.AllowPrivateWebhooks != nil && *c.AllowPrivateWebhooks
}

// apiOptions turns the API's settings into options. Zero values keep the
// API's defaults, except MaxBacklog, whose 0 means no bound.
func (c *config) apiOptions() []api.Option {
	opts := []api.Option{
		api.WithAPIKeys(splitList(c.APIKeys)...),
		api.WithAllowPrivateWebhooks(c.allowPrivateWebhooks()),
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
