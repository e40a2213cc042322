// Package broker runs an embedded single-node Kafka-protocol broker
// (franz-go's kfake) on 127.0.0.1: the broker of `genpipe broker` and
// `genpipe up`, and of the tests.
//
// It is a development server, apart from the client: package kafka talks to
// any Kafka-protocol cluster and never imports this package, so a process
// that only connects to a real cluster does not compile a broker in. The
// broker speaks the same protocol as a real cluster, so producers and
// consumers use the same code against it as in production; it is not meant
// for more than one machine.
package broker

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kversion"
)

// The group session bounds the broker enforces unless told otherwise:
// Apache Kafka's defaults (group.min.session.timeout.ms and
// group.max.session.timeout.ms), so that a client that works here works on
// a stock cluster. A member asking for a session outside them is refused
// with INVALID_SESSION_TIMEOUT.
const (
	DefaultGroupMinSessionTimeout = 6 * time.Second
	DefaultGroupMaxSessionTimeout = 30 * time.Minute
)

// Server is a running broker.
type Server struct {
	c *kfake.Cluster
}

type config struct {
	dataDir           string
	port              int
	partitions        int32
	minSessionTimeout time.Duration
	kafkaVersion      string
	log               *slog.Logger
	tls               *tls.Config
	users             []user
}

type user struct{ mechanism, name, password string }

// Option configures Start.
type Option func(*config)

// WithDataDir persists topics, records, committed offsets and producer state
// under dir, overriding the default of keeping everything in memory. A broker
// started again on the same dir (on any port) has everything the previous one
// had, so a restart keeps queued requests.
//
// Records are written to the segment files as they arrive but fsynced only on
// segment roll and Close (like Kafka's default flush policy): a process crash
// loses nothing the OS already has, a machine crash may lose the last
// records. Only one broker may use a dir at a time.
func WithDataDir(dir string) Option { return func(c *config) { c.dataDir = dir } }

// WithPort listens on 127.0.0.1:port, overriding the default of a free port
// chosen by the OS (0 also means a free port). A fixed port lets clients
// configured with the address survive a broker restart, at the cost of
// failing to start when something else holds the port.
func WithPort(port int) Option { return func(c *config) { c.port = port } }

// WithPartitions sets the partition count of topics created without one
// (CreateTopics with -1 partitions; genpipe's clients always give a count),
// overriding kfake's default of 10. More partitions let more consumers share
// a topic, at the cost of more files and more requests per fetch.
func WithPartitions(n int32) Option { return func(c *config) { c.partitions = n } }

// WithGroupMinSessionTimeout sets the smallest session timeout the broker
// accepts from group members (group.min.session.timeout.ms), overriding
// DefaultGroupMinSessionTimeout (6s, Apache Kafka's). Tests lower it with
// short session timeouts so that a dead member leaves quickly; in
// production a short session turns every GC pause into a rebalance. The
// broker reports it as Kafka does, in its broker configs (DescribeConfigs),
// so clients that read it there see what it enforces.
func WithGroupMinSessionTimeout(d time.Duration) Option {
	return func(c *config) { c.minSessionTimeout = d }
}

// WithKafkaVersion makes the broker speak only the request versions of an
// Apache Kafka release, such as "2.4" or "3.9" (kversion.FromString's
// forms), overriding the newest it has: to test clients against older
// clusters, such as one without KIP-848's consumer group protocol (before
// 4.0). Start fails on a version it does not know.
func WithKafkaVersion(version string) Option {
	return func(c *config) { c.kafkaVersion = version }
}

// WithLogger sends kfake's logs to l, overriding the default of logging
// nothing. kfake logs little above debug: failed requests and persistence
// problems; at debug, every request.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithTLS serves TLS with cfg (which holds the broker's certificate),
// overriding the default of plaintext. kfake has one listener: every client
// must then connect with TLS. With cfg.ClientAuth set, it checks client
// certificates too.
func WithTLS(cfg *tls.Config) Option { return func(c *config) { c.tls = cfg } }

// WithSASL requires every client to authenticate, and adds a user allowed to
// do everything, overriding the default of no authentication. mechanism is
// Kafka's name of it: "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512" (the
// kafka.SASL* constants). Give it once per user and mechanism.
func WithSASL(mechanism, name, password string) Option {
	return func(c *config) { c.users = append(c.users, user{mechanism, name, password}) }
}

// Start starts a one-node broker on 127.0.0.1 and returns once it accepts
// connections. With WithDataDir it first loads what a previous broker
// persisted there.
func Start(opts ...Option) (*Server, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	minSession := cmp.Or(cfg.minSessionTimeout, DefaultGroupMinSessionTimeout)
	kopts := []kfake.Opt{
		kfake.NumBrokers(1), // kfake defaults to 3 nodes on 3 ports; one is enough on one machine
		kfake.Ports(cfg.port),
		// As broker configs rather than kfake's own session options, so
		// that DescribeConfigs reports what the broker enforces.
		kfake.BrokerConfigs(map[string]string{
			"group.min.session.timeout.ms": strconv.FormatInt(minSession.Milliseconds(), 10),
			"group.max.session.timeout.ms": strconv.FormatInt(DefaultGroupMaxSessionTimeout.Milliseconds(), 10),
		}),
	}
	if cfg.kafkaVersion != "" {
		v := kversion.FromString(cfg.kafkaVersion)
		if v == nil {
			return nil, fmt.Errorf("broker: Kafka version %q: want a release such as 2.4 or 3.9", cfg.kafkaVersion)
		}
		kopts = append(kopts, kfake.MaxVersions(v))
	}
	if cfg.dataDir != "" {
		kopts = append(kopts, kfake.DataDir(cfg.dataDir))
	}
	if cfg.partitions > 0 {
		kopts = append(kopts, kfake.DefaultNumPartitions(int(cfg.partitions)))
	}
	if cfg.log != nil {
		kopts = append(kopts, kfake.WithLogger(logger{cfg.log}))
	}
	if cfg.tls != nil {
		kopts = append(kopts, kfake.TLS(cfg.tls))
	}
	if len(cfg.users) > 0 {
		kopts = append(kopts, kfake.EnableSASL())
	}
	for _, u := range cfg.users {
		kopts = append(kopts, kfake.Superuser(u.mechanism, u.name, u.password))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		if cfg.dataDir != "" {
			return nil, fmt.Errorf("broker: start on port %d with data dir %s: %w", cfg.port, cfg.dataDir, err)
		}
		return nil, fmt.Errorf("broker: start on port %d: %w", cfg.port, err)
	}
	return &Server{c: c}, nil
}

// Addrs returns the broker's host:port addresses, to use as seed brokers.
func (s *Server) Addrs() []string { return s.c.ListenAddrs() }

// Close stops listening, drops client connections and, with WithDataDir,
// saves the rest of the broker's state to disk. It is safe to call more than
// once.
func (s *Server) Close() { s.c.Close() }

// logger adapts an *slog.Logger to kfake's printf-style Logger.
type logger struct{ l *slog.Logger }

func (k logger) Logf(level kfake.LogLevel, format string, args ...any) {
	lvl := slogLevel(level)
	if !k.l.Enabled(context.Background(), lvl) {
		return
	}
	k.l.Log(context.Background(), lvl, "kfake: "+fmt.Sprintf(format, args...))
}

func slogLevel(level kfake.LogLevel) slog.Level {
	switch level {
	case kfake.LogLevelError:
		return slog.LevelError
	case kfake.LogLevelWarn:
		return slog.LevelWarn
	case kfake.LogLevelInfo:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}
