package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/api"
	"github.com/genpipe/genpipe/engine"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/s3"
	"github.com/genpipe/genpipe/sqlstore"
	"github.com/genpipe/genpipe/tenants"
)

// The groups of settings that several commands share. A command's
// configuration (apiConfig, workerConfig, ...) holds the groups it uses and
// registers their flags; each group turns its settings into the options of
// the package it configures.

// config is a command's configuration: it registers its flags and names
// the part that logs (none for up, whose parts name themselves).
type config interface {
	register(f *flags)
	part() string
	logger(stderr io.Writer, part string) (*slog.Logger, error)
}

// parse fills cfg from the flags and variables of `genpipe command` in
// args, and returns the logger of cfg's part: every part's command starts
// with it.
func parse(cfg config, command string, args []string, stderr io.Writer) (*slog.Logger, error) {
	f := newFlags(command, stderr)
	cfg.register(f)
	if err := f.Parse(args); err != nil {
		return nil, err
	}
	return cfg.logger(stderr, cfg.part())
}

// runAlone is the command of a long-running part (api, worker, notifier)
// that runs in a process of its own: it fills the part's configuration C
// from the flags of `genpipe command`, then runs it with observability of
// its own (serving /metrics on -metrics-addr, reading its consumers' lag
// from the part's brokers). up runs the same run functions with the
// observability all its parts share.
func runAlone[C any, P interface {
	*C
	config
	observed() (metricsAddr string, k kafkaSettings)
	servePprof(ctx context.Context, log *slog.Logger) (string, func(), error)
}](ctx context.Context, command string, args []string, stderr io.Writer,
	run func(ctx context.Context, cfg C, obs *observability, log *slog.Logger) error) error {
	return runProfiled[C, P](ctx, command, args, stderr, func(ctx context.Context, cfg C, log *slog.Logger) error {
		addr, k := P(&cfg).observed()
		obs, err := startObservability(ctx, "genpipe-"+P(&cfg).part(), addr, k, log)
		if err != nil {
			return err
		}
		defer obs.close()
		return run(ctx, cfg, obs, log)
	})
}

// runProfiled parses a command's flags into its configuration, serves its
// profiles when -pprof-addr asks, and runs it: what every long-running
// command does first.
func runProfiled[C any, P interface {
	*C
	config
	servePprof(ctx context.Context, log *slog.Logger) (string, func(), error)
}](ctx context.Context, command string, args []string, stderr io.Writer,
	run func(ctx context.Context, cfg C, log *slog.Logger) error) error {
	cfg := P(new(C))
	log, err := parse(cfg, command, args, stderr)
	if err != nil {
		return err
	}
	_, stop, err := cfg.servePprof(ctx, log)
	if err != nil {
		return err
	}
	defer stop()
	return run(ctx, *(*C)(cfg), log)
}

// common are the settings every command takes.
type common struct {
	LogLevel        string
	LogFormat       string
	ShutdownTimeout time.Duration
}

func (c *common) register(f *flags) {
	f.String(&c.LogLevel, "log-level", "GENPIPE_LOG_LEVEL", "info", "log level: debug, info, warn, error", logLevel)
	f.String(&c.LogFormat, "log-format", "GENPIPE_LOG_FORMAT", "text",
		"log format: text (key=value) or json (one object a line, for log collectors); lines about a request carry its id as \"request\"",
		oneOf("text", "json"))
	f.Duration(&c.ShutdownTimeout, "shutdown-timeout", "GENPIPE_SHUTDOWN_TIMEOUT", engine.DefaultShutdownTimeout,
		"after SIGTERM, how long in-flight records and webhooks may finish before they are handed back (keep it under the group's 60s rebalance timeout); a second signal exits at once",
		atLeast(time.Duration(0)))
}

// logLevel wants a level slog knows.
func logLevel(s string) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s)); err != nil {
		return fmt.Errorf("want debug, info, warn or error")
	}
	return nil
}

// logger returns a logger on stderr in the configured format and level,
// tagged with the part that logs (none for `up`, whose parts tag
// themselves).
func (c common) logger(stderr io.Writer, part string) (*slog.Logger, error) {
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

// service are the settings of the long-running parts (api, worker,
// notifier, up) besides the common ones.
type service struct {
	common
	MetricsAddr string
	pprofSettings
}

// servicePart is a long-running part that runs in a process of its own,
// with its backends.
type servicePart struct {
	service
	backends
}

// register adds the part's flags; servesHTTP says whether it has an HTTP
// server anyway, publicLinks whether it hands presigned URLs to people.
func (p *servicePart) register(f *flags, servesHTTP, publicLinks bool) {
	p.service.register(f, servesHTTP)
	p.backends.register(f)
	if publicLinks {
		p.S3.registerPublic(f)
	}
}

// observed says where the part serves its metrics and whose lag it reads.
func (p *servicePart) observed() (string, kafkaSettings) { return p.MetricsAddr, p.Kafka }

// register adds the common flags and -metrics-addr; also says what the
// address adds for a part that serves HTTP anyway (api, up).
func (s *service) register(f *flags, servesHTTP bool) {
	s.common.register(f)
	usage := "address serving Prometheus /metrics and /healthz, e.g. :9464; empty for none"
	if servesHTTP {
		usage = "another address serving Prometheus /metrics and /healthz, e.g. :9464; /metrics is on -addr anyway"
	}
	f.String(&s.MetricsAddr, "metrics-addr", "GENPIPE_METRICS_ADDR", "", usage)
	s.pprofSettings.register(f)
}

// kafkaSettings say where the brokers are, how to connect to them and how
// many partitions a topic created at start gets.
type kafkaSettings struct {
	Brokers    string
	Partitions int
	kafkaConnSettings
}

func (s *kafkaSettings) register(f *flags) {
	f.String(&s.Brokers, "brokers", "GENPIPE_KAFKA_BROKERS", kafka.DefaultBrokers, "Kafka bootstrap brokers, comma-separated", nonEmpty)
	f.Int(&s.Partitions, "partitions", "GENPIPE_PARTITIONS", kafka.DefaultPartitions,
		"partitions of each topic created at start (existing topics are left alone)", atLeast(1))
	s.kafkaConnSettings.register(f)
}

// conn is the connection every Kafka client of the process uses.
func (s kafkaSettings) conn() (*kafka.Conn, error) {
	opts, err := s.options()
	if err != nil {
		return nil, err
	}
	return kafka.NewConn(splitList(s.Brokers), opts...)
}

// kafkaConnSettings are how to connect to the brokers, for every command
// that talks to Kafka, including those that take -brokers their own way
// (doctor, loadtest).
type kafkaConnSettings struct {
	ClientID      string
	TLS           bool
	TLSCA         string
	TLSCert       string
	TLSKey        string
	TLSServerName string
	SASLMechanism string
	SASLUser      string
	SASLPassword  string
	Compression   string
	GroupProtocol string
}

func (s *kafkaConnSettings) register(f *flags) {
	f.String(&s.ClientID, "kafka-client-id", "GENPIPE_KAFKA_CLIENT_ID", kafka.DefaultClientID,
		"client id the brokers see in their logs, metrics and quotas", nonEmpty)
	f.Bool(&s.TLS, "kafka-tls", "GENPIPE_KAFKA_TLS", false,
		"connect to the brokers over TLS (implied by the other -kafka-tls-* flags); the system's root CAs unless -kafka-tls-ca")
	f.String(&s.TLSCA, "kafka-tls-ca", "GENPIPE_KAFKA_TLS_CA", "", "PEM file of the CA certificates that sign the brokers' certificates")
	f.String(&s.TLSCert, "kafka-tls-cert", "GENPIPE_KAFKA_TLS_CERT", "",
		"PEM file of the client certificate, for brokers that require one (mutual TLS; with -kafka-tls-key)")
	f.String(&s.TLSKey, "kafka-tls-key", "GENPIPE_KAFKA_TLS_KEY", "", "PEM file of the client certificate's private key")
	f.String(&s.TLSServerName, "kafka-tls-server-name", "GENPIPE_KAFKA_TLS_SERVER_NAME", "",
		"name to verify in the brokers' certificates (default: each broker's host name)")
	f.String(&s.SASLMechanism, "kafka-sasl-mechanism", "GENPIPE_KAFKA_SASL_MECHANISM", "",
		"SASL mechanism: PLAIN (only with TLS), SCRAM-SHA-256 or SCRAM-SHA-512; empty for no SASL")
	f.String(&s.SASLUser, "kafka-sasl-user", "GENPIPE_KAFKA_SASL_USER", "", "SASL user name")
	f.Secret(&s.SASLPassword, "kafka-sasl-password", "GENPIPE_KAFKA_SASL_PASSWORD",
		"SASL password (prefer the environment variable: flags show in ps)")
	f.String(&s.Compression, "kafka-compression", "GENPIPE_KAFKA_COMPRESSION", kafka.DefaultCompression,
		"compression of produced batches: none, gzip, snappy, lz4 or zstd")
	f.String(&s.GroupProtocol, "kafka-group-protocol", "GENPIPE_KAFKA_GROUP_PROTOCOL", kafka.DefaultGroupProtocol,
		"consumer group protocol: classic (any Kafka 2.4+, cooperative-sticky) or consumer (KIP-848, Kafka 4.0+; "+
			"falls back to classic where the broker lacks it; session timeout then set on the broker)")
	// The kafka package checks the values (and reads the TLS files) when
	// the connection is made, at start: its errors name the setting.
}

// options turns the settings into connection options. Empty settings (a
// configuration not built from flags) take the kafka package's defaults:
// plaintext, no SASL.
func (s kafkaConnSettings) options() ([]kafka.ConnOption, error) {
	var opts []kafka.ConnOption
	if s.ClientID != "" {
		opts = append(opts, kafka.WithClientID(s.ClientID))
	}
	if s.Compression != "" {
		opts = append(opts, kafka.WithCompression(s.Compression))
	}
	if s.GroupProtocol != "" {
		opts = append(opts, kafka.WithGroupProtocol(s.GroupProtocol))
	}
	if s.TLS || s.TLSCA != "" || s.TLSCert != "" || s.TLSKey != "" || s.TLSServerName != "" {
		tc, err := kafka.TLSFiles{CAFile: s.TLSCA, CertFile: s.TLSCert, KeyFile: s.TLSKey, ServerName: s.TLSServerName}.Config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kafka.WithTLS(tc))
	}
	if s.SASLMechanism != "" || s.SASLUser != "" || s.SASLPassword != "" {
		opts = append(opts, kafka.WithSASL(s.SASLMechanism, s.SASLUser, s.SASLPassword))
	}
	return opts, nil
}

// s3Settings say where the object store is and how to sign for it.
type s3Settings struct {
	Endpoint     string
	Bucket       string
	AccessKey    string
	SecretKey    string
	Region       string
	SessionToken string
	PathStyle    optionalBool // unset: path style except on AWS S3 (see s3.WithPathStyle)
	// PublicEndpoint is the store's URL in links handed to browsers (api,
	// notifier); empty: Endpoint.
	PublicEndpoint string
}

func (s *s3Settings) register(f *flags) {
	f.String(&s.Endpoint, "s3-endpoint", "GENPIPE_S3_ENDPOINT", s3.DefaultEndpoint,
		"S3 endpoint URL: http(s)://host[:port], e.g. https://s3.eu-west-1.amazonaws.com or http://minio:9000", httpURL)
	f.String(&s.Bucket, "s3-bucket", "GENPIPE_S3_BUCKET", s3.DefaultBucket, "S3 bucket for uploads and slides (created when missing)", nonEmpty)
	f.String(&s.AccessKey, "s3-access-key", "GENPIPE_S3_ACCESS_KEY", "", "S3 access key")
	f.Secret(&s.SecretKey, "s3-secret-key", "GENPIPE_S3_SECRET_KEY", "S3 secret key (prefer the environment variable: flags show in ps)")
	f.Secret(&s.SessionToken, "s3-session-token", "GENPIPE_S3_SESSION_TOKEN",
		"S3 session token of temporary credentials (AWS STS); they expire with it, and genpipe does not renew them")
	f.String(&s.Region, "s3-region", "GENPIPE_S3_REGION", s3.DefaultRegion, "S3 region the requests are signed for", nonEmpty)
	f.Value(&s.PathStyle, "s3-path-style", "GENPIPE_S3_PATH_STYLE", "path-style URLs (host/bucket/key: MinIO, versitygw, any endpoint without "+
		"wildcard DNS) if true, virtual-host style (bucket.host/key) if false; auto: path style except on AWS S3 and "+
		"other stores known to want virtual hosts")
	f.Check(func() error { return requiredFlags("s3-access-key", s.AccessKey, "s3-secret-key", s.SecretKey) })
}

// registerPublic adds -s3-public-endpoint, for the parts that hand
// presigned URLs to people (the API's upload URLs and result links, the
// notifier's webhook links), when browsers reach the store under another
// address than genpipe does. The workers' URLs go to the AI services,
// which reach the store as genpipe does, so they keep -s3-endpoint.
func (s *s3Settings) registerPublic(f *flags) {
	f.String(&s.PublicEndpoint, "s3-public-endpoint", "GENPIPE_S3_PUBLIC_ENDPOINT", "",
		"the object store's URL as browsers reach it, for presigned upload and result URLs (SigV4 signs the host, so "+
			"it cannot be rewritten later); empty: -s3-endpoint",
		func(v string) error {
			if v == "" {
				return nil
			}
			return httpURL(v)
		})
}

// options turns the settings other than the endpoint, bucket and keys into
// store options.
func (s s3Settings) options() []s3.Option {
	opts := []s3.Option{s3.WithSessionToken(s.SessionToken)}
	if s.Region != "" {
		opts = append(opts, s3.WithRegion(s.Region))
	}
	if s.PathStyle.set {
		opts = append(opts, s3.WithPathStyle(s.PathStyle.v))
	}
	if s.PublicEndpoint != "" {
		opts = append(opts, s3.WithPresignEndpoint(s.PublicEndpoint))
	}
	return opts
}

// clientConfig is the configuration of the commands that only talk to
// Kafka as a client (dlq, doctor, loadtest), their own switches aside.
type clientConfig struct {
	common
	Kafka kafkaSettings
}

// backends say where the dependencies of the api, the workers and the
// notifier are: Kafka, the object store and the status database.
type backends struct {
	Kafka    kafkaSettings
	S3       s3Settings
	Database string
	// store, when set, is the status store every part of the process
	// shares (up: one SQLite writer for all of them, instead of one per
	// part colliding in SQLite's busy handler); nil opens Database.
	store *sqlstore.Store
}

func (b *backends) register(f *flags) {
	b.Kafka.register(f)
	b.S3.register(f)
	f.SensitiveString(&b.Database, "database-url", "GENPIPE_DATABASE_URL", sqlstore.DefaultURL,
		"status database: sqlite:PATH or postgres://user:password@host:port/dbname", check[string](sqlstore.CheckURL))
}

// apiSettings are the API's security and admission settings (api and up).
type apiSettings struct {
	APIKeys              string // comma-separated
	TenantsFile          string
	AllowPrivateWebhooks bool
	MaxBacklog           int
	MaxStartWait         time.Duration
	EstimateReuse        time.Duration
	RateLimit            float64
	RateBurst            int
	UploadTTL            time.Duration
	ResultTTL            time.Duration
	MaxUploadBytes       int64
	MaxWait              time.Duration
}

// register adds the API's flags. up allows webhooks to private addresses
// by default: its parts, and usually the receivers of whoever runs it, are
// on 127.0.0.1.
func (s *apiSettings) register(f *flags, up bool) {
	f.Secret(&s.APIKeys, "api-keys", "GENPIPE_API_KEYS",
		"comma-separated API keys: when set, /v1/ needs Authorization: Bearer KEY and each key sees only its own requests; "+
			"each key is a tenant of its own (weight 1, priorities up to normal; see -tenants); "+
			"none leaves the API open (prefer the environment variable: flags show in ps)")
	f.String(&s.TenantsFile, "tenants", "GENPIPE_TENANTS", "",
		"tenants file (JSON or YAML): each tenant's name, weight (1-1000, default 1), maxPriority (high, normal or low; "+
			"default normal) and API keys as their SHA-256 in hex (printf %s KEY | sha256sum); turns API keys on; "+
			"combines with -api-keys when no key is in both; re-read on SIGHUP (a bad file keeps the tenants in force)")
	f.Check(func() error { _, err := s.tenants(); return err })
	allowUsage := "accept webhook URLs whose host is or resolves to a loopback, private, link-local or other internal address"
	if up {
		allowUsage += " (up allows them: its parts and tests run on 127.0.0.1; set false to refuse them)"
	}
	f.Bool(&s.AllowPrivateWebhooks, "allow-private-webhooks", "GENPIPE_ALLOW_PRIVATE_WEBHOOKS", up, allowUsage)
	f.Int(&s.MaxBacklog, "max-backlog", "GENPIPE_MAX_BACKLOG", api.DefaultMaxBacklog,
		"requests waiting for the AI (status received) at which POST /v1/requests answers 429 with Retry-After; 0 for no bound", atLeast(0))
	f.Duration(&s.MaxStartWait, "max-start-wait", "GENPIPE_MAX_START_WAIT", api.DefaultMaxStartWait,
		"refuse with 429 start_too_late (Retry-After the excess) a request whose AI calls are predicted to start later than this after it "+
			"arrives, from the work ahead of it and the stages' measured service times; a request's own startBy is always enforced so; 0 for no bound",
		atLeast(time.Duration(0)))
	f.Duration(&s.EstimateReuse, "estimate-reuse", "GENPIPE_ESTIMATE_REUSE", defaultEstimateReuse,
		"how long the predicted wait of a new request stands for the next new requests of the same tenant and priority, "+
			"so that a burst of submissions reads the queues once, not once each; -max-start-wait decides on it too; 0 estimates each anew",
		between(time.Duration(0), api.MaxEstimateReuse))
	f.Float(&s.RateLimit, "rate-limit", "GENPIPE_RATE_LIMIT", 0,
		"requests a second each client (its API key, else its IP address) may make to /v1/ on average, 429 with Retry-After above; 0 for no limit",
		atLeast(0.0))
	f.Int(&s.RateBurst, "rate-burst", "GENPIPE_RATE_BURST", api.DefaultRateBurst, "requests a client may make at once on top of -rate-limit", atLeast(1))
	f.Duration(&s.UploadTTL, "upload-ttl", "GENPIPE_UPLOAD_TTL", api.DefaultUploadTTL, "how long a presigned upload URL accepts the image",
		between(time.Second, api.MaxURLTTL))
	registerResultTTL(f, &s.ResultTTL)
	f.Int64(&s.MaxUploadBytes, "max-upload-bytes", "GENPIPE_MAX_UPLOAD_BYTES", api.DefaultMaxUploadSize,
		"the largest image a request may use, in bytes", atLeast(int64(1)))
	f.Duration(&s.MaxWait, "max-wait", "GENPIPE_MAX_WAIT", api.DefaultMaxWait,
		"the deadline of requests that bring no startBy or maxWaitSeconds: their AI calls must start within this of their submission, "+
			"else they end expired; 0 for none", between(time.Duration(0), genpipe.MaxWait))
}

// tenants returns the tenants of -tenants (none when unset), checked
// against -api-keys: a key in both is an error.
func (s apiSettings) tenants() (tenants.Set, error) {
	if s.TenantsFile == "" {
		return tenants.Set{}, nil
	}
	set, err := tenants.Load(s.TenantsFile)
	if err != nil {
		return tenants.Set{}, fmt.Errorf("-tenants: %w", err)
	}
	if _, err := tenants.Merge(tenants.FromKeys(splitList(s.APIKeys)), set); err != nil {
		return tenants.Set{}, fmt.Errorf("-tenants and -api-keys: %w", err)
	}
	return set, nil
}

// registerResultTTL adds -result-ttl, for every part that hands out
// result links (api, notifier; up gives its one value to both), so that
// the links of an answer, an SSE event and a webhook live as long.
func registerResultTTL(f *flags, ttl *time.Duration) {
	f.Duration(ttl, "result-ttl", "GENPIPE_RESULT_TTL", genpipe.DefaultResultTTL,
		"how long the slide links in an answer, an SSE event or a webhook stay valid (each GET presigns new ones); "+
			"give the api and the notifier the same value", between(time.Second, genpipe.MaxPresignTTL))
}

// options turns the settings into the API's options.
func (s apiSettings) options() []api.Option {
	opts := []api.Option{
		api.WithAPIKeys(splitList(s.APIKeys)...),
		api.WithAllowPrivateWebhooks(s.AllowPrivateWebhooks),
		api.WithMaxBacklog(s.MaxBacklog),
		api.WithMaxStartWait(s.MaxStartWait),
		api.WithEstimateReuse(s.EstimateReuse),
		api.WithUploadTTL(s.UploadTTL),
		api.WithResultTTL(s.ResultTTL),
		api.WithMaxUploadSize(s.MaxUploadBytes),
		api.WithMaxWait(s.MaxWait),
	}
	if s.RateLimit > 0 {
		opts = append(opts, api.WithRateLimit(s.RateLimit, s.RateBurst))
	}
	return opts
}

// requiredFlags returns an error naming the first flag of (name, value)
// pairs whose value is empty.
func requiredFlags(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return fmt.Errorf("-%s is required", pairs[i])
		}
	}
	return nil
}
